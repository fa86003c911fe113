"""The library: compress and decompress arrays, streams and files; inspect a container.

Three levels, each built on the one below:
  * whole arrays in memory: compress(array) -> bytes, decompress(src) -> array;
  * streams, one chunk in memory at a time: compress_to(source, out), and
    `with tqcli.open(src) as f:` (tqfile.TqFile) for the header, chunks and row ranges;
  * files by name, as the `tq` command uses them: compress_file, decompress_file,
    inspect -- atomic outputs, '-' for stdin/stdout, errors that name the file.

Row selections are None, a slice (step 1) or a (start, stop) pair, as in Python slicing.
Progress callbacks are called as progress(rows done, rows in all), first with 0.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import os
import sys
from typing import NamedTuple

import numpy as np

from . import arrayio, codings, files, report, rotations, stages
from .codec import Codec, make_header
from .codings import CODINGS
from .container import ContainerWriter, Header
from .errors import FormatError, InputError, ScaleRangeError, TqError
from .options import EncodeOptions, OptionError, option_keywords, options_of
from .pipeline import BackgroundConsumer
from .tqfile import CollectionError, TqFile, output_dtype, plan_read, resolve_rows  # noqa: F401

ROTATION = rotations.DEFAULT  # the rotation kind new files get
CODING = codings.DEFAULT      # the payload coding new files get
BATCH_INPUT_BYTES = 1 << 24  # float32 input per kernel call when compressing (16 MiB)


# ---------------------------------------------------------------------- compress


@option_keywords
def compress_to(source, out, options: EncodeOptions | None = None, *, progress=None,
                **keywords) -> Header:
    """Compress every row of `source` (an array, or an arrayio.ArraySource) into a container
    written to the binary stream `out`; returns its header.

    The encoder's options are an EncodeOptions (tqcli.options) or its fields as keywords:
    bits=4, mode="mse", seed=0, rounds=3, scale_rule=None, scale_dtype="auto",
    chunk_rows=None, rotation, coding, center=False, nmse=None (an unknown keyword is a
    TypeError, a refused value an OptionError naming the option).

    scale_dtype "auto" stores float32 scales, and switches to float64 -- starting again
    from the first row, with every other option unchanged -- when a vector's scale is
    outside the f32 rule of spec 11.5 (above a quarter of float32's range, or rounding
    to 0); that needs a source that can be read again and an output that can seek, otherwise the error says
    which option to use.

    center: False (none), True (subtract the mean of the first chunk's vectors, stored in
    the header and added back on decoding: less error when the vectors share an offset), or
    the d values of a centre to use.

    coding: packed (alias fixed, the default: b-bit fields, fast random access) or
    entropy (entropy-coded indices on a uniform grid: about a third less error at the
    same size); with the entropy coding, `bits` is any rate from 1 to 8 bits per
    coordinate (2.5, say), or None with `nmse`, the expected error to meet (0.01 = 1% of
    the energy).  tqcli.codings.CODINGS says which coding takes what.
    """
    options = options_of(options, **keywords)
    if not isinstance(source, arrayio.ArraySource):
        source = arrayio.from_array(source)
    # one set of options for both attempts, so that the restart cannot lose one
    if options.scale_dtype != "auto":
        return _compress_once(source, out, options, options.scale_dtype, progress)
    start = _tell(out)
    try:
        return _compress_once(source, out, options, "float32", progress)
    except ScaleRangeError:
        if start is None or not source.rereadable:
            raise
    out.seek(start)
    out.truncate()
    return _compress_once(source, out, options, "float64", progress)


def _tell(out) -> int | None:
    try:
        return out.tell() if out.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


def _compress_once(source, out, options: EncodeOptions, scale_dtype: str,
                   progress) -> Header:
    fields = dict(scale_dtype=scale_dtype, source_dtype=source.dtype.newbyteorder("=").name,
                  shape=source.shape)
    header = _new_header(source.dim, options, fields)
    # several chunks go through the kernels at once (fewer calls, fewer thread launches);
    # each is checksummed and written while the next batch is encoded
    batch = max(1, BATCH_INPUT_BYTES // (header.chunk_rows * header.dim * 4))
    blocks = source.blocks(header.chunk_rows * batch)
    if arrayio.bf16.is_bf16(source.dtype):  # exact float32 values: no new kernel
        blocks = (arrayio.bf16.to_f32(b) for b in blocks)
    if any(s.wanted(options) for s in stages.STAGES):
        # the header holds the fitted stages' parameters, so they are known before the
        # first chunk is written: fitted once, from the first chunk's vectors (also on a
        # pipe), by the one function eval uses too
        first = next(blocks, None)
        rows = (first[:header.chunk_rows] if first is not None
                else np.zeros((0, header.dim), np.float32))
        fields["fitted"] = stages.fit_stages(options, rows)
        header = _new_header(source.dim, options, fields)
        blocks = itertools.chain([] if first is None else [first], blocks)
    codec = Codec(header)
    writer = ContainerWriter(out, header)
    row = 0
    if progress is not None:
        progress(0, source.n_rows)
    with BackgroundConsumer(writer.write_chunk, depth=2 * batch) as background:
        for block in blocks:
            for payload in codec.encode_chunks(block, row):
                background.put(payload)
            row += block.shape[0]
            if progress is not None:
                progress(row, source.n_rows)
    writer.finish()
    return header


def _new_header(dim: int, options: EncodeOptions, fields: dict) -> Header:
    try:
        header = make_header(dim, options, **fields)
        header.validate()
    except OptionError:
        raise
    except (ValueError, FormatError) as e:
        raise InputError(str(e)) from None
    return header


@option_keywords
def compress(array, options: EncodeOptions | None = None, **keywords) -> bytes:
    """Compress a float16/32/64 array (last axis = vectors) and return the .tqz bytes.

    Options: an EncodeOptions, or its fields as keywords (as for compress_to):
    bits (4), mode "mse" (least error) or "prod" (unbiased inner products), seed (0),
    rounds (3), scale_rule "ls", "norm" or "ip" (default: ls for mse, norm for prod),
    scale_dtype "auto" (float32, or float64 when a norm needs it), "float32", "float16" or
    "float64"; chunk_rows a multiple of 8 (default: about 4 MiB of float32 input per
    chunk); rotation and coding name entries of the rotation and payload-coding tables
    (tqcli.rotations, tqcli.codings); center as in compress_to (False, True for the mean
    of the first chunk, or a vector); nmse: with the entropy coding, a target error
    instead of bits (compress_to).
    """
    buf = io.BytesIO()
    compress_to(array, buf, options_of(options, **keywords))
    return buf.getvalue()


@option_keywords
def compress_file(input, output, options: EncodeOptions | None = None, *,
                  dataset: str | None = None, force: bool = False, progress=None,
                  **keywords) -> Header:
    """Compress the array in `input` into the container `output`; returns its header.

    input: a .npy or HDF5 path ('FILE.h5:/dataset' or `dataset`), '-' for a .npy on stdin,
    or an already open arrayio.ArraySource (left open).  output: a path, written to a
    temporary file renamed into place when complete (never over the input; an existing
    file only with force; a FIFO or device in place; never a name that says another
    format, such as .npy: files.check_container_output_name), '-' for stdout, or a binary
    stream.  Errors name the file.  The options: an EncodeOptions or its fields as
    keywords (bits, mode, seed, rounds, scale_rule, scale_dtype, chunk_rows, rotation,
    coding, center, nmse), as for compress_to.
    """
    options = options_of(options, **keywords)
    opened = (contextlib.nullcontext(input) if isinstance(input, arrayio.ArraySource)
              else arrayio.open_input(os.fspath(input), dataset))
    with opened as source:
        if _is_path(output) and source.name != "-" and _same_file(source.name, output):
            raise TqError("output would overwrite the input", os.fspath(output))
        if _is_path(output):
            files.check_container_output_name(os.fspath(output))
        try:
            with files.open_output(output, force) as sink:
                header = compress_to(source, sink.stream, options, progress=progress)
                sink.commit()
        except TqError as e:
            raise e.with_source(source.name)
    return header


# ---------------------------------------------------------------------- decompress


def decompress(src, rows=None, dtype: str | None = None,
               memory_limit: int | None = None, select=None) -> np.ndarray:
    """Decode a container (bytes, path or stream) into an array of its original shape.

    rows (None, a slice, or (start, stop)) selects vectors of the flattened (n, d) view
    and returns a 2-D array; select picks part of the original shape as numpy basic
    indexing over its leading axes would (a tuple of ints and slices, or text such as
    "3,0" or "2:4"; out-of-range is a ValueError; tqcli.selection), reading only the
    chunks that hold it.  dtype is None/"original", "float32", "float16" or "float64".
    memory_limit: bytes of decoding state the header may ask for (spec 13.7; None: 256 MiB).
    """
    with TqFile(src, memory_limit) as f:
        return f.read(rows, dtype, select=select)


def read_header(src) -> Header:
    """The header of a container given as bytes, a path, or a binary stream (read whatever
    its decoding would cost: nothing is decoded)."""
    with TqFile(src, memory_limit=math.inf) as f:
        return f.header


class Decompressed(NamedTuple):
    """What decompress_file wrote: rows start:stop of `header`'s vectors (stop - start of
    them, for a selection of several runs), as `dtype`, an array of `shape`."""

    header: Header
    start: int
    stop: int
    dtype: np.dtype
    shape: tuple = ()


def decompress_file(input, output, *, rows=None, dtype: str | None = None,
                    dataset: str = "data", force: bool = False, progress=None,
                    memory_limit: int | None = None, select=None,
                    clip_rows: bool = True, zarr_codec: str = "plain") -> Decompressed:
    """Decode the container `input` into the array file `output`.

    input: a path, '-' for stdin, or a binary stream.  output: a .npy path, or HDF5 when it
    ends in .h5/.hdf5 (the array as `dataset`), written to a temporary file renamed into
    place when complete (never over the input; an existing file only with force; a FIFO
    or device is written in place); '-' for a .npy on stdout, or a binary stream.  A name
    that says another format (.npz, .tqz, ...) is refused (files.check_array_output_name).
    With rows, the result is the 2-D (rows, d) view; with select (as for decompress) the
    shape numpy gives x[select].  clip_rows=False refuses a rows range beyond the array
    (the command line's --rows) instead of clipping it.  Chunk k is written while chunk
    k+1 is decoded.  Errors name the file.  memory_limit as for decompress.
    An output named *.zarr is a zarr v3 store (the zarr extra; arrayio.ZarrSink) holding
    the array at its root, with zarr's default codecs (zarr_codec "plain": the decoded
    values exactly) or the tq.turboquant codec with this container's settings ("tq").
    """
    f, name = _open_named(input, refuse_directory=True, memory_limit=memory_limit)
    try:
        with f:
            h = f.header
            try:
                shape, starts, stops = plan_read(h, rows, select, clip_rows=clip_rows)
            except ValueError as e:
                raise TqError(f"{'--select' if select is not None else '--rows'}: {e}")
            dt = output_dtype(h, dtype)
            if _is_path(output) and _is_path(input) and _same_file(input, output):
                raise TqError("output would overwrite the input", os.fspath(output))
            if _is_path(output):
                files.check_array_output_name(os.fspath(output))
            if _is_path(output) and arrayio.is_zarr_name(os.fspath(output)):
                _decompress_to_zarr(f, os.fspath(output), shape, dt, starts, stops, force,
                                    progress, zarr_codec)
                count = int((stops - starts).sum())
                start = int(starts[0]) if starts.size else 0
                return Decompressed(h, start, start + count, dt, tuple(shape))
            h5 = _is_path(output) and arrayio.is_hdf5_name(os.fspath(output))
            with files.open_output(output, force) as sink:
                if h5:
                    writer = arrayio.H5Sink(sink.writer_path(), shape, dt, dataset,
                                            name=os.fspath(output))
                else:
                    writer = arrayio.NpySink(sink.stream, shape, dt)
                try:
                    # three buffers in turn and a queue of one keep the block being written
                    # out of the decoder's way
                    with BackgroundConsumer(writer.write, depth=1) as background:
                        for block in f.iter_runs(starts, stops, progress=progress,
                                                 buffers=3):
                            background.put(block)
                finally:
                    writer.close()
                sink.commit()
    except TqError as e:
        raise e.with_source(name)
    count = int((stops - starts).sum())
    start = int(starts[0]) if starts.size else 0
    return Decompressed(h, start, start + count, dt, tuple(shape))


def _decompress_to_zarr(f: TqFile, output: str, shape, dt, starts, stops, force, progress,
                        zarr_codec: str) -> None:
    """decompress_file's zarr branch: the rows into a new zarr store at `output`."""
    h = f.header
    options = None
    if zarr_codec == "tq":  # the container's own settings, chunk for chunk
        bits = h.bits
        coding = h.payload_coding
        if coding.fractional_rates and f.seekable and h.n_vectors:  # the rate it achieved
            achieved = coding.achieved_bits(h, f.payload_bytes)
            bits = min(float(coding.max_rate), max(float(coding.min_rate), round(achieved, 3)))
        options = dict(bits=bits, mode=h.mode, seed=h.seed, rounds=h.rounds,
                       scale_rule=h.scale_rule, scale_dtype=h.scale_dtype,
                       rotation=h.rotation, coding=h.coding, center=h.centered)
    with arrayio.ZarrSink(output, shape, dt, codec=zarr_codec, options=options,
                          chunk_rows=h.chunk_rows, force=force) as writer:
        with BackgroundConsumer(writer.write, depth=1) as background:
            for block in f.iter_runs(starts, stops, progress=progress, buffers=3):
                background.put(block)
        writer.commit()


# ---------------------------------------------------------------------- inspect


def inspect(src, verify: bool = False, memory_limit: int | None = None) -> dict:
    """The inspect report of a container (path, '-' for stdin, bytes or a stream).

    The keys and values are the schema of `tq inspect --json` (spec/vectors/*.inspect.json).
    A stream is always read to its end, so that its index and footer are checked; verify
    reads every chunk of any container and checks its CRC-32 (FormatError at a fault) and
    adds "verified": true.  A file whose decoding would need more than memory_limit
    (as for decompress) is refused like any file a decoder refuses.
    """
    try:
        f, name = _open_named(src, refuse_directory=False, memory_limit=memory_limit)
    except CollectionError as e:  # a collection: its members and the total
        from .members import CollectionFile

        name = os.fspath(src) if isinstance(src, (str, os.PathLike)) else None
        try:
            reopen = name not in (None, "-")
            with CollectionFile(src if reopen else None, memory_limit,
                                reader=None if reopen else e.reader) as c:
                return c.report(verify)
        except TqError as e:
            raise e.with_source(name if e.source is None else e.source)
    try:
        with f:
            if verify:
                f.verify()
            elif not f.seekable:
                f.verify(checksums=False)
            h = f.header
            size, payload = f.file_size, f.payload_bytes
    except TqError as e:
        raise e.with_source(name)
    result = report.header_report(h, size, payload)
    coding = h.payload_coding.inspect_report(h, payload)
    if coding is not None:
        result["coding"] = coding
    if verify:
        result["verified"] = True
    return result


# ---------------------------------------------------------------------- evaluate


def evaluate_file(input, container=None, *, bits=(2, 3, 4), mode: str = "mse",
                  seed: int = 0, scale_rule: str | None = None, queries: int = 1000,
                  dataset: str | None = None, center: bool = False,
                  memory_limit: int | None = None, sample: int | None = None,
                  codings=(CODINGS.default.cli_name,), progress=None) -> list[dict]:
    """Distortion and search quality (tqcli.evaluation) of tq on the array in `input`.

    Without `container`, one report per bit width of a fresh compression -- two with
    `center`, without and with mean-centring, to show what it gains; with `container`,
    one report of that container against its source `input` (memory_limit as for
    decompress).  Each report says whether the vectors were centred ("centered").

    The source is read once, block by block, whatever its size: nmse, cosine and the
    inner-product bias cover every vector; recall and the inner-product rmse a sample of
    `sample` rows (default: evaluation.default_sample) with `queries` of them held out
    (at most half; the reports say how many were used).  An input without vectors is
    refused.  codings: names of the coding table (tqcli.codings.CODINGS.cli_names: fixed
    and/or entropy, mse mode): each b is evaluated with each, a coding with fractional
    rates (entropy) at rate b, so at about the bytes of fixed-length b bits.
    progress(rows done, rows) as for compress_to.
    """
    from . import evaluation

    with arrayio.open_input(input, dataset) as source:
        try:
            n, d = source.n_rows, source.dim
            if n == 0:
                raise InputError("holds no vectors to evaluate", kind="empty")
            if container is not None:
                return [_evaluate_container(source, container, queries, sample,
                                            memory_limit, progress)]
            requested = [(b, k, c) for b in bits for k in codings
                         if CODINGS.resolve(k).fractional_rates or float(b).is_integer()
                         for c in ((False, True) if center else (False,))]
            settings = [EncodeOptions(bits=b, mode=mode, seed=seed, scale_rule=scale_rule,
                                      center=c, coding=k) for b, k, c in requested]
            requested = [b for b, _, _ in requested]
            size = evaluation.default_sample(n, d, len(settings)) if sample is None \
                else sample
            try:
                return _evaluate_fresh(source, settings, requested, size, queries, progress,
                                       "float32")
            except ScaleRangeError:
                if not source.rereadable:
                    raise
            return _evaluate_fresh(source, settings, requested, size, queries, progress,
                                   "float64")
        except TqError as e:
            raise e.with_source(source.name)


def _evaluate_fresh(source, settings, requested, sample, queries, progress,
                    scale_dtype) -> list[dict]:
    from . import evaluation

    encodings = evaluation.FreshEncodings(source, settings, scale_dtype)
    ev = evaluation.Evaluator(source.n_rows, source.dim, len(settings), sample, queries,
                              source.dtype)
    _feed(ev, encodings, progress)
    return [evaluation.finish_report(r, h, evaluation.file_bytes_of(h, p), h.centered,
                                     requested=b)
            for r, h, p, b in zip(ev.results(), encodings.headers, encodings.payload_bytes,
                                  requested)]


def _evaluate_container(source, container, queries, sample, memory_limit,
                        progress) -> dict:
    from . import evaluation

    n, d = source.n_rows, source.dim
    try:
        if not os.path.exists(container):
            raise TqError("no such file")
        with TqFile(container, memory_limit) as f:
            h = f.header
            if h.n_vectors != n or h.dim != d:
                raise TqError(f"holds {h.n_vectors} x {h.dim} vectors, INPUT has {n} x {d}")
            ev = evaluation.Evaluator(n, d, 1, evaluation.default_sample(n, d, 1)
                                      if sample is None else sample, queries, source.dtype)

            def pairs():
                decoded = f.iter_blocks()
                for block in source.blocks(h.chunk_rows):
                    yield block, [next(decoded)]
                next(decoded, None)  # a stream is read to its end (index, footer)

            _feed(ev, pairs(), progress)
    except TqError as e:
        raise e.with_source(container)
    (r,) = ev.results()
    return evaluation.finish_report(r, h, os.path.getsize(container), h.centered)


def _feed(ev, pairs, progress) -> None:
    if progress is not None:
        progress(0, ev.n)
    for block, decoded in pairs:
        ev.add(block, decoded)
        if progress is not None:
            progress(ev.done, ev.n)


# ---------------------------------------------------------------------- helpers


def set_threads(n: int | None) -> int:
    """Use n worker threads in the kernels (default: all cores); output does not change."""
    from . import kernels

    return kernels.set_threads(n)


def on_first_compile(callback):
    """Call callback(kernel name, estimated seconds) once, if and when this process starts
    compiling a kernel that numba's cache does not hold yet (first use after installing
    or upgrading tq); for a front end that wants to say why it is waiting.  Returns a
    function that withdraws the request."""
    from . import kernels

    return kernels.on_first_compile(callback)


def _is_path(target) -> bool:
    return isinstance(target, (str, os.PathLike)) and os.fspath(target) != "-"


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _open_named(src, refuse_directory: bool,
                memory_limit: int | None = None) -> tuple[TqFile, str | None]:
    """TqFile of `src`, with '-' for stdin (never a terminal) and one-line errors for a
    path that is missing (or a directory); returns it and the name errors should carry."""
    if isinstance(src, (str, os.PathLike)):
        name = os.fspath(src)
        if name == "-" and sys.stdin.isatty():
            raise TqError("refusing to read binary data from a terminal", "-")
        try:
            if name == "-":
                return TqFile(sys.stdin.buffer, memory_limit), name
            if not os.path.exists(name):
                raise TqError("no such file")
            if refuse_directory and os.path.isdir(name):
                raise TqError("is a directory")
            return TqFile(name, memory_limit), name
        except TqError as e:
            raise e.with_source(name)
    return TqFile(src, memory_limit), getattr(src, "name", None) if not isinstance(
        src, (bytes, bytearray, memoryview)) else None


from .members import (compress_collection, compress_collection_file,  # noqa: E402
                      decompress_collection_file, open_collection)

__all__ = ["compress_collection", "compress_collection_file", "decompress_collection_file",
           "open_collection", "compress", "compress_to", "compress_file", "decompress", "decompress_file",
           "read_header", "inspect", "evaluate_file", "set_threads", "TqFile", "Header",
           "TqError", "Decompressed"]
