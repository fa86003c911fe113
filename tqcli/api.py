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

import io
import itertools
import math
import os
from typing import NamedTuple

import numpy as np

from . import arrayio, codings, report, rotations
from .codec import Codec, make_center, make_header
from .container import ContainerWriter, Header
from .errors import FormatError, InputError, ScaleRangeError, TqError
from .pipeline import BackgroundConsumer
from .tqfile import CollectionError, TqFile, output_dtype, plan_read, resolve_rows  # noqa: F401

ROTATION = rotations.DEFAULT  # the rotation kind new files get
CODING = codings.DEFAULT      # the payload coding new files get
BATCH_INPUT_BYTES = 1 << 24  # float32 input per kernel call when compressing (16 MiB)


# ---------------------------------------------------------------------- compress


def compress_to(source, out, *, bits: float | None = 4, mode: str = "mse", seed: int = 0,
                rounds: int = 3, scale_rule: str | None = None, scale_dtype: str = "auto",
                chunk_rows: int | None = None, rotation: str = ROTATION,
                coding: str = CODING, center=False, nmse: float | None = None,
                progress=None) -> Header:
    """Compress every row of `source` (an array, or an arrayio.ArraySource) into a container
    written to the binary stream `out`; returns its header.

    scale_dtype "auto" stores float32 scales, and switches to float64 -- starting again
    from the first row, with every other option unchanged -- when a vector's scale is
    outside the f32 rule of spec 11.5 (above a quarter of float32's range, or rounding
    to 0); that needs a source that can be read again and an output that can seek, otherwise the error says
    which option to use.

    center: False (none), True (subtract the mean of the first chunk's vectors, stored in
    the header and added back on decoding: less error when the vectors share an offset), or
    the d values of a centre to use.

    coding: "packed" (alias "fixed", the default: b-bit fields, fast random access) or
    "entropy" (entropy-coded indices on a uniform grid: about a third less error at the
    same size); with "entropy", `bits` is any rate from 1 to 8 bits per coordinate (2.5,
    say), or None with `nmse`, the expected error to meet (0.01 = 1% of the energy).
    """
    coding, bits = _coding_and_bits(coding, bits, nmse)
    if not isinstance(source, arrayio.ArraySource):
        source = arrayio.from_array(source)
    # one set of options for both attempts, so that the restart cannot lose one
    options = dict(bits=bits, mode=mode, seed=seed, rounds=rounds, scale_rule=scale_rule,
                   chunk_rows=chunk_rows, rotation=rotation, coding=coding, center=center,
                   nmse=nmse)
    if scale_dtype != "auto":
        return _compress_once(source, out, options, scale_dtype, progress)
    start = _tell(out)
    try:
        return _compress_once(source, out, options, "float32", progress)
    except ScaleRangeError:
        if start is None or not source.rereadable:
            raise
    out.seek(start)
    out.truncate()
    return _compress_once(source, out, options, "float64", progress)


CODING_ALIASES = {"fixed": "packed"}  # the command line's name for the packed coding


def _coding_and_bits(coding: str, bits, nmse):
    """The coding's table name, and bits checked against it (InputError if refused)."""
    coding = CODING_ALIASES.get(coding, coding)
    if nmse is not None and coding != "entropy":
        raise InputError("a target error (nmse) needs the entropy coding (coding='entropy')")
    if nmse is not None:
        return coding, None
    if coding != "entropy" and isinstance(bits, float):
        if not bits.is_integer():
            raise InputError(f"a fractional rate ({bits:g} bits) needs the entropy coding "
                             f"(--coding entropy)")
        bits = int(bits)
    return coding, bits


def _tell(out) -> int | None:
    try:
        return out.tell() if out.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


def _compress_once(source, out, options: dict, scale_dtype: str, progress) -> Header:
    options = dict(options)
    center = options.pop("center")
    fields = dict(scale_dtype=scale_dtype, source_dtype=source.dtype.newbyteorder("=").name,
                  shape=source.shape, **options)
    header = _new_header(source.dim, fields)
    # several chunks go through the kernels at once (fewer calls, fewer thread launches);
    # each is checksummed and written while the next batch is encoded
    batch = max(1, BATCH_INPUT_BYTES // (header.chunk_rows * header.dim * 4))
    blocks = source.blocks(header.chunk_rows * batch)
    if arrayio.bf16.is_bf16(source.dtype):  # exact float32 values: no new kernel
        blocks = (arrayio.bf16.to_f32(b) for b in blocks)
    if center is not None and center is not False:
        # the header holds the centre, so it is known before the first chunk is written:
        # from the first chunk's vectors (also on a pipe), or given
        first = next(blocks, None)
        if center is True:
            rows = (first[:header.chunk_rows] if first is not None
                    else np.zeros((0, header.dim), np.float32))
            _refuse_non_finite(rows)
            center = make_center(rows)
        header = _new_header(source.dim, dict(fields, center=center))
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


def _new_header(dim: int, fields: dict) -> Header:
    try:
        header = make_header(dim, **fields)
        header.validate()
    except (ValueError, FormatError) as e:
        raise InputError(str(e)) from None
    return header


def _refuse_non_finite(rows: np.ndarray) -> None:
    """The encoder's message for the first row holding NaN or infinity (the mean of such
    rows is not a centre)."""
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        raise InputError(f"row {int(np.argmax(bad))}: contains NaN or infinite values",
                         kind="non-finite")


def compress(array, *, bits: float | None = 4, mode: str = "mse", seed: int = 0,
             rounds: int = 3, scale_rule: str | None = None, scale_dtype: str = "auto",
             chunk_rows: int | None = None, rotation: str = ROTATION,
             coding: str = CODING, center=False, nmse: float | None = None) -> bytes:
    """Compress a float16/32/64 array (last axis = vectors) and return the .tqz bytes.

    mode "mse" (least error) or "prod" (unbiased inner products); scale_rule "ls", "norm"
    or "ip" (default: ls for mse, norm for prod); scale_dtype "auto" (float32, or float64
    when a norm needs it), "float32", "float16" or "float64"; chunk_rows a multiple of 8
    (default: about 4 MiB of float32 input per chunk); rotation and coding name entries of
    the rotation and payload-coding tables (tqcli.rotations, tqcli.codings); center as in
    compress_to (False, True for the mean of the first chunk, or a vector); coding
    "entropy" takes a fractional `bits` or a target `nmse` (compress_to).
    """
    buf = io.BytesIO()
    compress_to(array, buf, bits=bits, mode=mode, seed=seed, rounds=rounds,
                scale_rule=scale_rule, scale_dtype=scale_dtype, chunk_rows=chunk_rows,
                rotation=rotation, coding=coding, center=center, nmse=nmse)
    return buf.getvalue()


def compress_file(input, output, **options) -> Header:
    """Compress the array in `input` into the container `output` (tqcli.fileio.compress_file,
    where the per-file policy lives: names, same-file and terminal refusals, atomic output)."""
    from . import fileio

    return fileio.compress_file(input, output, **options)




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


def decompress_file(input, output, **options) -> Decompressed:
    """Decode the container `input` into the array file `output` (tqcli.fileio.decompress_file,
    where the per-file policy lives)."""
    from . import fileio

    return fileio.decompress_file(input, output, **options)


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
        from .fileio import open_named

        f, name = open_named(src, refuse_directory=False, memory_limit=memory_limit)
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
    if h.coding == "entropy":
        from . import evaluation

        result["coding"] = evaluation.entropy_report(h, payload)
    if verify:
        result["verified"] = True
    return result


# ---------------------------------------------------------------------- evaluate


def evaluate_file(input, container=None, *, bits=(2, 3, 4), mode: str = "mse",
                  seed: int = 0, scale_rule: str | None = None, queries: int = 1000,
                  dataset: str | None = None, center: bool = False,
                  memory_limit: int | None = None, sample: int | None = None,
                  codings=("fixed",), progress=None) -> list[dict]:
    """Distortion and search quality (tqcli.evaluation) of tq on the array in `input`.

    Without `container`, one report per bit width of a fresh compression -- two with
    `center`, without and with mean-centring, to show what it gains; with `container`,
    one report of that container against its source `input` (memory_limit as for
    decompress).  Each report says whether the vectors were centred ("centered").

    The source is read once, block by block, whatever its size: nmse, cosine and the
    inner-product bias cover every vector; recall and the inner-product rmse a sample of
    `sample` rows (default: evaluation.default_sample) with `queries` of them held out
    (at most half; the reports say how many were used).  An input without vectors is
    refused.  codings: "fixed" and/or "entropy" (mse mode): each b is evaluated with
    each, the entropy coding at rate b, so at about the bytes of fixed-length b bits.
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
            settings = [dict(bits=b, mode=mode, seed=seed, scale_rule=scale_rule, center=c,
                             coding=CODING_ALIASES.get(k, k))
                        for b in bits for k in codings
                        if k == "entropy" or float(b).is_integer()
                        for c in ((False, True) if center else (False,))]
            size = evaluation.default_sample(n, d, len(settings)) if sample is None \
                else sample
            try:
                return _evaluate_fresh(source, settings, size, queries, progress, "float32")
            except ScaleRangeError:
                if not source.rereadable:
                    raise
            return _evaluate_fresh(source, settings, size, queries, progress, "float64")
        except TqError as e:
            raise e.with_source(source.name)


def _evaluate_fresh(source, settings, sample, queries, progress, scale_dtype) -> list[dict]:
    from . import evaluation

    encodings = evaluation.FreshEncodings(source, settings, scale_dtype)
    ev = evaluation.Evaluator(source.n_rows, source.dim, len(settings), sample, queries,
                              source.dtype)
    _feed(ev, encodings, progress)
    return [evaluation.finish_report(r, h, evaluation.file_bytes_of(h, p), h.centered,
                                     requested=s["bits"])
            for r, h, p, s in zip(ev.results(), encodings.headers, encodings.payload_bytes,
                                  settings)]


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


def compress_collection_file(input, output, **options) -> list[dict]:
    """tqcli.fileio.compress_collection_file: every array of a file into one collection."""
    from . import fileio

    return fileio.compress_collection_file(input, output, **options)


def decompress_collection_file(input, output, **options) -> dict:
    """tqcli.fileio.decompress_collection_file: a collection back into a file."""
    from . import fileio

    return fileio.decompress_collection_file(input, output, **options)


from .members import compress_collection, open_collection  # noqa: E402
__all__ = ["compress_collection", "compress_collection_file", "decompress_collection_file",
           "open_collection", "compress", "compress_to", "compress_file", "decompress", "decompress_file",
           "read_header", "inspect", "evaluate_file", "set_threads", "TqFile", "Header",
           "TqError", "Decompressed"]
