"""tq decompress: each IN.tqz back into an array file, a zarr store, or the kind of file a
collection came from."""

from __future__ import annotations

import click

from .. import limits
from . import process
from .options import (
    CONTEXT,
    _each,
    _Engine,
    _input_list,
    _rows_option,
    _select_option,
    common_force,
    common_keep,
    common_max_ratio,
    common_memory,
    common_output_dir,
    common_progress,
    common_quiet_verbose,
    common_rm,
    common_stdout,
    common_threads,
    usage_errors,
)
from .progress import _Progress, _progress_enabled


@click.command(context_settings=CONTEXT)
@click.argument("inputs", metavar="[IN.tqz]...", nargs=-1)
@click.option("-o", "--output", metavar="OUT", help="Output file, for one IN.tqz: .npy, "
              "HDF5 when it ends in .h5/.hdf5, a zarr store when it ends in .zarr; '-' for a "
              ".npy on stdout. Default: IN without .tqz (plus .npy when that has no "
              "extension).")
@common_output_dir
@click.option("--dtype", type=click.Choice(limits.OUTPUT_DTYPES), default="original",
              show_default=True, help="dtype of the decoded array.")
@click.option("--select", metavar="SEL", callback=_select_option, help="Decode only x[SEL] "
              "of the original shape, numpy basic indexing over the leading axes: 3,0 or 2:4 "
              "or ::2,-1 (reads only the chunks that hold it; out of range is an error).")
@click.option("--rows", metavar="A:B", callback=_rows_option, help="Decode only vectors A:B "
              "(of the flattened (n, d) view; the result is 2-D; out of range is an error).")
@click.option("--dataset", metavar="PATH", default="data", show_default=True,
              help="Dataset name for HDF5 output.")
@click.option("--member", "member", metavar="NAME", multiple=True,
              help="Collections: decode only this member (repeatable); one member may be "
                   "written as .npy or to stdout.")
@click.option("--zarr-codec", type=click.Choice(limits.ZARR_CODECS), default="plain",
              show_default=True, help="For an OUT ending in .zarr (a zarr v3 store, the zarr "
              "extra): plain = zarr's default codecs, the decoded values exactly; tq = the "
              "tq.turboquant codec with IN.tqz's settings, about as small as IN.tqz.")
@common_stdout
@common_force
@common_keep
@common_rm("IN.tqz")
@common_quiet_verbose
@common_progress
@common_memory
@common_max_ratio
@common_threads
def decompress(inputs, output, output_dir, dtype, select, rows, dataset, member, zarr_codec,
               to_stdout, force, keep, remove, quiet, verbose, progress, memory_limit,
               max_ratio, threads):
    """Decompress each IN.tqz ('-' or none: stdin) into a .npy or HDF5 file, or a zarr
    store (OUT.zarr); a collection into the kind of file it came from."""
    if select is not None and rows is not None:
        raise click.UsageError("--select and --rows are two ways to choose; give one")
    if zarr_codec != "plain" and not (output or "").rstrip("/").lower().endswith(".zarr"):
        raise click.UsageError("--zarr-codec is for a zarr output: -o OUT.zarr")
    inputs = _input_list(inputs, output, to_stdout, output_dir, keep, remove)
    engine = _Engine(threads)

    def one(input):
        fileio = process.load_fileio()
        with usage_errors():
            plan = fileio.plan_decompress(
                input, output=output, to_stdout=to_stdout, output_dir=output_dir,
                remove=remove, members=member,
                one_array_options=select is not None or rows is not None)
        with plan:
            fileio.check_container(plan, memory_limit, max_ratio)  # before the kernels load
            engine.start()
            with _Progress(_progress_enabled(progress, quiet),
                           "decompress members" if plan.collection else "decompress") as bar:
                done = fileio.decompress_planned(
                    plan, members=list(member) or None, progress=bar, output_dir=output_dir,
                    memory_limit=memory_limit, max_ratio=max_ratio, dtype=dtype, force=force, rows=rows,
                    select=select, dataset=dataset, zarr_codec=zarr_codec)
        out = done["output"] if plan.collection else plan.output
        with usage_errors():
            fileio.finish(plan, out)
        if verbose and plan.collection:
            from ..library.report import plural

            click.echo(f"{input}: {plural(len(done['members']), 'member')} -> {out}", err=True)
        elif verbose:
            click.echo(f"{input}: {' x '.join(map(str, done.shape))} {done.dtype.name} "
                       f"-> {out}", err=True)

    _each(inputs, one)
