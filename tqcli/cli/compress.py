"""tq compress: each INPUT into a .tqz file (a collection for HDF5, .safetensors, .npz and
folders)."""

from __future__ import annotations

import os
import sys

import click

from .. import limits
from ..codec.rotations import DEFAULT as DEFAULT_ROTATION
from ..codec.rotations import ROTATIONS
from . import process
from .options import (
    CONTEXT,
    adapt_and_inputs,
    common_adapt,
    _each,
    _Engine,
    _input_list,
    _warner,
    coding_choices,
    common_force,
    common_keep,
    common_max_ratio,
    common_mode,
    common_output_dir,
    common_progress,
    common_quiet_verbose,
    common_rm,
    common_seed,
    common_stdout,
    common_threads,
    common_encode_memory,
    encode_options,
    usage_errors,
)
from .progress import _Progress, _progress_enabled


@click.command(context_settings=CONTEXT)
@click.argument("inputs", metavar="[INPUT]...", nargs=-1)
@click.option("-o", "--output", metavar="OUT", help="Output file ('-' for stdout), for one "
              "INPUT. Default: INPUT.tqz, or stdout when INPUT is '-'.")
@common_output_dir
@click.option("-b", "--bits", type=click.FloatRange(limits.MIN_BITS, limits.MAX_BITS),
              default=None, metavar="B",
              help=f"Bits per coordinate [default: {limits.DEFAULT_BITS}]; "
              "with --coding entropy any rate from 1 to 8, e.g. 2.5.")
@click.option("--coding", type=click.Choice(coding_choices()), default=coding_choices()[0],
              show_default=True, help="fixed: b-bit codes (fastest, in-place random access); "
              "entropy: entropy-coded indices, about a third less error at the same size.")
@click.option("--nmse", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=None, metavar="X", help="With --coding entropy, instead of -b: the "
              "rate whose expected error is X (0.01 = 1% of the energy).")
@common_mode
@common_seed
@click.option("--scale", "scale_rule", type=click.Choice(limits.SCALE_RULES), default=None,
              help="Per-vector scale: ls (least squares, mse default), norm, or ip "
                   "(unbiased inner products); prod mode always uses norm.")
@click.option("--scale-dtype", type=click.Choice(limits.SCALE_DTYPE_CHOICES),
              default=limits.DEFAULT_SCALE_DTYPE, show_default=True,
              help="Storage of the per-vector scale: auto is float32 (4 bytes), or float64 "
                   "when a norm is beyond float32's range.")
@click.option("--rounds", type=click.IntRange(limits.MIN_ROUNDS, limits.MAX_ROUNDS),
              default=limits.DEFAULT_ROUNDS, show_default=True,
              help="Rounds of the structured rotation (expert).")
@click.option("--rotation", type=click.Choice(ROTATIONS.names), default=DEFAULT_ROTATION,
              show_default=True, help="Rotation kind (expert; hadamard2 is tq 1.0's).")
@click.option("--center", is_flag=True, help="Subtract the mean of the first chunk's vectors "
              "(stored in the header, added back on decoding): less error for data with a "
              "common offset.")
@common_adapt("A basis fitted to the data (a sample over a file, the first 16 MiB of a "
              "pipe), stored in the file: its components on one uniform step, "
              "entropy-coded; -b means the fixed coding's bytes at b bits, basis included, "
              "or give --nmse.  --adapt auto: only where the basis is predicted to pay "
              "(else the file is what the command writes without --adapt).")
@click.option("--chunk-rows", type=click.IntRange(limits.MIN_CHUNK_ROWS, limits.MAX_CHUNK_ROWS),
              default=None, help="Vectors per chunk, a multiple of 8: the unit of random "
                                 "access (default: about 4 MiB of float32 input).")
@click.option("--dataset", metavar="PATH",
              help="HDF5 dataset to read (or write INPUT as FILE.h5:/path).")
@click.option("--bits-for", "bits_for", metavar="PATTERN=B", multiple=True,
              help="Collections: B bits for members whose name matches the shell pattern "
                   "(repeatable; the last match wins), e.g. '*key*=8'.")
@click.option("--lossless", metavar="PATTERN", multiple=True,
              help="Collections: store members matching PATTERN losslessly (repeatable).")
@click.option("--vector-size", type=click.IntRange(limits.MIN_DIM, limits.MAX_DIM),
              default=None, metavar="D", help="Collections: cut the last axis into vectors "
              "of D values (e.g. the head dimension of [tokens, heads * head_dim]).")
@click.option("--strict", is_flag=True, help="Collections: refuse (exit 1, nothing written) "
              "when a --bits-for or --lossless pattern matches no member, instead of a "
              "warning.")
@click.option("--directory", "directory", is_flag=True,
              help="INPUT is a folder: its .npy files (recursively) become one collection, "
                   "named by their paths; decompress gives the folder back.")
@click.option("--input-dtype", type=click.Choice(["bfloat16"]), default=None,
              help="Read a .npy's 2-byte items as bfloat16 (ml_dtypes saves it as '<V2').")
@common_stdout
@common_force
@common_keep
@common_rm("INPUT")
@common_quiet_verbose
@common_progress
@common_max_ratio
@common_threads
@common_encode_memory
def compress(inputs, output, output_dir, bits, coding, nmse, mode, seed, scale_rule,
             scale_dtype, rounds, rotation, center, adapt, chunk_rows, dataset, bits_for, lossless,
             vector_size, strict, directory, input_dtype, to_stdout, force, keep, remove,
             quiet, verbose, progress, threads, memory_limit, max_ratio):
    """Compress each INPUT (.npy, .h5/.hdf5, .safetensors, .npz, a zarr array folder STORE
    or STORE/ARRAY, or '-' for a .npy on stdin; none: stdin) into a .tqz file.  An HDF5
    file (or group), a .safetensors file and an .npz become one collection of named
    members; FILE.h5:/dataset one array."""
    adapt, inputs = adapt_and_inputs(adapt, inputs)
    options = encode_options(bits=bits, nmse=nmse, coding=coding, mode=mode, seed=seed,
                             rounds=rounds, rotation=rotation, center=center,
                             scale_rule=scale_rule, scale_dtype=scale_dtype,
                             chunk_rows=chunk_rows, adapt=adapt)
    from ..library.collections import parse_bits_for

    try:
        parse_bits_for(bits_for)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--bits-for") from None
    inputs = _input_list(inputs, output, to_stdout, output_dir, keep, remove)
    engine = _Engine(threads)

    def one(input):
        fileio = process.load_fileio()
        with usage_errors():
            plan = fileio.plan_compress(
                input, output=output, to_stdout=to_stdout, output_dir=output_dir,
                dataset=dataset, directory=directory, remove=remove, input_dtype=input_dtype,
                collection_options=bool(bits_for or lossless or vector_size))
        coll, out = plan.input.collection, plan.output
        more = dict(bits_for=bits_for, lossless=lossless, vector_size=vector_size,
                    strict=strict, warn=_warner(plan.input.path)) if coll else {}
        with fileio.open_compress_input(plan, input_dtype, memory_limit=memory_limit,
                                        max_ratio=max_ratio) as source:
            engine.start()  # the kernels load once the input is good
            with _Progress(_progress_enabled(progress, quiet),
                           "compress members" if coll else "compress") as bar:
                done = fileio.compress_planned(plan, source, options, force=force,
                                               progress=bar, memory_limit=memory_limit,
                                               max_ratio=max_ratio, **more)
        fileio.finish(plan, out)
        if verbose or (not quiet and sys.stderr.isatty() and out != "-"):
            from ..library import report

            written = os.path.getsize(out) if out != "-" and os.path.isfile(out) else None
            click.echo(report.collection_summary(plan.input.path, done, out, written) if coll
                       else report.compress_summary(source.name, done, out, written), err=True)

    _each(inputs, one)
