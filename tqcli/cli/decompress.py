"""tq decompress: each IN.tqz back into an array file, a zarr store, or the kind of file a
collection came from."""

from __future__ import annotations

import sys

import click

from .. import limits
from ..errors import TqError
from .options import (CONTEXT, _each, _Engine, _input_list, _refuse_rm, _remove_input,
                      _rows_option, _select_option, common_keep, common_memory,
                      common_output_dir, common_threads)
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
@click.option("-c", "--stdout", "to_stdout", is_flag=True, help="Write to stdout.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output file.")
@common_keep
@click.option("--rm", "remove", is_flag=True, help="Delete IN.tqz after a complete write.")
@click.option("-q", "--quiet", is_flag=True, help="No summary, no progress.")
@click.option("-v", "--verbose", is_flag=True, help="Print a summary line.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: only when stderr is a terminal).")
@common_memory
@common_threads
def decompress(inputs, output, output_dir, dtype, select, rows, dataset, member, zarr_codec,
               to_stdout, force, keep, remove, quiet, verbose, progress, memory_limit,
               threads):
    """Decompress each IN.tqz ('-' or none: stdin) into a .npy or HDF5 file, or a zarr
    store (OUT.zarr); a collection into the kind of file it came from."""
    from .. import files

    if select is not None and rows is not None:
        raise click.UsageError("--select and --rows are two ways to choose; give one")
    if zarr_codec != "plain" and not (output or "").rstrip("/").lower().endswith(".zarr"):
        raise click.UsageError("--zarr-codec is for a zarr output: -o OUT.zarr")
    inputs = _input_list(inputs, output, to_stdout, output_dir, keep, remove)
    engine = _Engine(threads)

    def one(input):
        out = "-" if to_stdout else output
        if out is None:
            out = "-" if input == "-" else files.decompressed_name(input, output_dir)
        if remove:
            _refuse_rm(out, input)
        if input == "-" and sys.stdin.isatty():  # before the engine starts: refuse at once
            raise TqError("refusing to read binary data from a terminal", "-")
        from .. import fileio

        coll, src = fileio.sniff(input)
        try:
            if coll:
                _decompress_collection(src, input, "-" if to_stdout else output, engine,
                                       member, select, rows, dtype, force, memory_limit,
                                       output_dir, remove, verbose,
                                       _progress_enabled(progress, quiet))
                return
            if member:
                raise TqError("--member given but the file holds one array, not a "
                              "collection", input)
            api = engine.start()
            with _Progress(_progress_enabled(progress, quiet), "decompress") as bar:
                done = api.decompress_file(src, out, rows=rows, select=select, dtype=dtype,
                                           dataset=dataset, force=force, progress=bar,
                                           memory_limit=memory_limit, clip_rows=False,
                                           zarr_codec=zarr_codec)
        except TqError as e:  # a refusal of the stream as it opened names no file yet
            raise e.with_source(input)
        finally:
            if not isinstance(src, str):
                src.close()
        if remove:
            _remove_input(input)
        if verbose:
            click.echo(f"{input}: {' x '.join(map(str, done.shape))} {done.dtype.name} "
                       f"-> {out}", err=True)

    _each(inputs, one)


def _decompress_collection(src, input, target, engine, member, select, rows, dtype, force,
                           memory_limit, output_dir, remove, verbose, show_progress) -> None:
    """One collection: the same kind of file back (or what -o names), or one --member."""
    if select is not None or rows is not None:
        raise click.UsageError("--select and --rows read one array; for a collection "
                               "choose members with --member")
    api = engine.start()
    with _Progress(show_progress, "decompress members") as bar:
        done = api.decompress_collection_file(src, target, members=list(member) or None,
                                              dtype=dtype, force=force, progress=bar,
                                              memory_limit=memory_limit,
                                              output_dir=output_dir)
    if remove:
        if done["output"] == "-":
            _refuse_rm("-", input)
        _remove_input(input)
    if verbose:
        from ..report import plural

        click.echo(f"{input}: {plural(len(done['members']), 'member')} -> {done['output']}",
                   err=True)
