"""tq compress: each INPUT into a .tqz file (a collection for HDF5, .safetensors, .npz and
folders)."""

from __future__ import annotations

import os
import sys

import click

from .. import limits
from ..errors import TqError
from ..rotations import DEFAULT as DEFAULT_ROTATION, ROTATIONS
from .options import (CODING_CHOICES, CONTEXT, _check_coding_options, _check_encoder_options,
                      _each, _Engine, _input_list, _refuse_rm, _remove_input, _warner,
                      common_keep, common_mode, common_output_dir, common_seed,
                      common_threads)
from .progress import _Progress, _progress_enabled


@click.command(context_settings=CONTEXT)
@click.argument("inputs", metavar="[INPUT]...", nargs=-1)
@click.option("-o", "--output", metavar="OUT", help="Output file ('-' for stdout), for one "
              "INPUT. Default: INPUT.tqz, or stdout when INPUT is '-'.")
@common_output_dir
@click.option("-b", "--bits", type=click.FloatRange(limits.MIN_BITS, limits.MAX_BITS),
              default=None, metavar="B", help=f"Bits per coordinate [default: {limits.DEFAULT_BITS}]; "
              "with --coding entropy any rate from 1 to 8, e.g. 2.5.")
@click.option("--coding", type=click.Choice(CODING_CHOICES), default="fixed",
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
@click.option("-c", "--stdout", "to_stdout", is_flag=True, help="Write to stdout.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output file.")
@common_keep
@click.option("--rm", "remove", is_flag=True, help="Delete INPUT after a complete write.")
@click.option("-q", "--quiet", is_flag=True, help="No summary, no progress.")
@click.option("-v", "--verbose", is_flag=True, help="Print a summary line.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: only when stderr is a terminal).")
@common_threads
def compress(inputs, output, output_dir, bits, coding, nmse, mode, seed, scale_rule,
             scale_dtype, rounds, rotation, center, chunk_rows, dataset, bits_for, lossless,
             vector_size, strict, directory, input_dtype, to_stdout, force, keep, remove,
             quiet, verbose, progress, threads):
    """Compress each INPUT (.npy, .h5/.hdf5, .safetensors, .npz, a zarr array folder STORE
    or STORE/ARRAY, or '-' for a .npy on stdin; none: stdin) into a .tqz file.  An HDF5
    file (or group), a .safetensors file and an .npz become one collection of named
    members; FILE.h5:/dataset one array."""
    from .. import arrayio, files

    _check_encoder_options(mode, scale_rule, chunk_rows)
    bits, coding = _check_coding_options(bits, coding, nmse, mode)
    from ..members import parse_bits_for

    try:
        parse_bits_for(bits_for)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--bits-for") from None
    inputs = _input_list(inputs, output, to_stdout, output_dir, keep, remove)
    engine = _Engine(threads)

    def one(input):
        out = "-" if to_stdout else output
        if out is None and input != "-" and arrayio.is_zarr_store(input):
            if output_dir is None:  # INPUT.tqz would land inside the zarr store
                raise TqError("a zarr array is a folder: name the output with -o OUT.tqz "
                              "or --output-dir DIR", input)
            input_name = input.rstrip("/") or input
            out = files.compressed_name(input_name, output_dir)
        if out is None:
            out = "-" if input == "-" else files.compressed_name(
                arrayio.split_h5_spec(input.rstrip("/") or input)[0], output_dir)
        if remove:
            _refuse_rm(out, input)
        from .. import fileio

        if directory and not os.path.isdir(input):
            raise TqError("--directory: not a folder", input)
        if directory and remove:
            raise click.UsageError("--rm is refused for a folder")
        coll = (input, None) if directory else fileio.collection_input(input, dataset)
        if coll is not None:
            if input_dtype is not None:
                raise click.UsageError("--input-dtype is for .npy input (a collection's "
                                       "members carry their dtypes)")
            if remove and arrayio.is_hdf5_name(coll[0]):
                raise TqError("--rm refused for HDF5 input (the file may hold other data)",
                              coll[0])
            api = engine.start()
            with _Progress(_progress_enabled(progress, quiet), "compress members") as bar:
                toc = api.compress_collection_file(
                    coll[0], out, group=coll[1], force=force, progress=bar, bits=bits,
                    bits_for=bits_for, lossless=lossless, vector_size=vector_size,
                    mode=mode, seed=seed, rounds=rounds, rotation=rotation, center=center,
                    scale_rule=scale_rule, scale_dtype=scale_dtype, chunk_rows=chunk_rows,
                    coding=coding, nmse=nmse, strict=strict, warn=_warner(coll[0]))
            if remove:
                _remove_input(coll[0])
            if verbose or (not quiet and sys.stderr.isatty() and out != "-"):
                from ..report import collection_summary

                written = os.path.getsize(out) if out != "-" and os.path.isfile(out) else None
                click.echo(collection_summary(coll[0], toc, out, written), err=True)
            return
        if bits_for or lossless or vector_size:
            raise click.UsageError("--bits-for, --lossless and --vector-size apply to "
                                   "collections (HDF5, .safetensors, .npz input)")
        with arrayio.open_input(input, dataset, input_dtype) as source:
            api = engine.start()  # the kernels load once the input is good
            if remove and isinstance(source, arrayio.ZarrSource):
                raise TqError("--rm refused for zarr input (a store is a folder that may hold "
                              "other data)", source.name)
            if remove and isinstance(source, arrayio.H5Source):
                raise TqError("--rm refused for HDF5 input (the file may hold other data)",
                              source.name)
            with _Progress(_progress_enabled(progress, quiet), "compress") as bar:
                header = api.compress_file(source, out, force=force, progress=bar, bits=bits,
                                           mode=mode, seed=seed, rounds=rounds,
                                           rotation=rotation, center=center,
                                           scale_rule=scale_rule, scale_dtype=scale_dtype,
                                           chunk_rows=chunk_rows, coding=coding, nmse=nmse)
        if remove:
            _remove_input(source.name)
        if verbose or (not quiet and sys.stderr.isatty() and out != "-"):
            from ..report import compress_summary

            written = os.path.getsize(out) if out != "-" and os.path.isfile(out) else None
            click.echo(compress_summary(source.name, header, out, written), err=True)

    _each(inputs, one)
