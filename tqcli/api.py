"""The library: compress an array, decompress a container, read a header.

Whole-array helpers (compress, decompress) sit on top of streaming ones (compress_source,
iter_decoded) that hold one chunk in memory at a time.
"""

from __future__ import annotations

import io
import os

import numpy as np

from . import arrayio
from .codec import Codec, make_header
from .container import ContainerReader, ContainerWriter, Header
from .errors import FormatError, InputError, ScaleRangeError, TqError
from .pipeline import BackgroundConsumer

OUTPUT_DTYPES = ("original", "float32", "float16", "float64")
BATCH_INPUT_BYTES = 1 << 24  # float32 input per kernel call when compressing (16 MiB)


def compress_source(source: arrayio.ArraySource, out, *, bits: int = 4, mode: str = "mse",
                    seed: int = 0, rounds: int = 3, scale_rule: str | None = None,
                    scale_dtype: str = "auto", chunk_rows: int | None = None,
                    progress=None) -> Header:
    """Compress every row of `source` into a container written to the binary stream `out`.

    scale_dtype "auto" stores float32 scales, and switches to float64 -- starting again
    from the first row -- when a vector's scale is outside float32's normal range (norms
    beyond 3.4e38 or below 1.2e-38); that needs a source that can be read again and an
    output that can seek, otherwise the error says which option to use.
    """
    if scale_dtype != "auto":
        return _compress_once(source, out, bits, mode, seed, rounds, scale_rule, scale_dtype,
                              chunk_rows, progress)
    start = _tell(out)
    try:
        return _compress_once(source, out, bits, mode, seed, rounds, scale_rule, "float32",
                              chunk_rows, progress)
    except ScaleRangeError:
        if start is None or not source.rereadable:
            raise
    out.seek(start)
    out.truncate()
    return _compress_once(source, out, bits, mode, seed, rounds, scale_rule, "float64",
                          chunk_rows, progress)


def _tell(out) -> int | None:
    try:
        return out.tell() if out.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


def _compress_once(source, out, bits, mode, seed, rounds, scale_rule, scale_dtype, chunk_rows,
                   progress) -> Header:
    try:
        header = make_header(source.dim, bits, mode=mode, seed=seed, rounds=rounds,
                             scale_rule=scale_rule, scale_dtype=scale_dtype,
                             source_dtype=source.dtype.newbyteorder("=").name,
                             shape=source.shape, chunk_rows=chunk_rows)
        header.validate()
    except (ValueError, FormatError) as e:
        raise InputError(str(e)) from None
    codec = Codec(header)
    writer = ContainerWriter(out, header)
    row = 0
    # several chunks go through the kernels at once (fewer calls, fewer thread launches);
    # each is checksummed and written while the next batch is encoded
    batch = max(1, BATCH_INPUT_BYTES // (header.chunk_rows * header.dim * 4))
    with BackgroundConsumer(writer.write_chunk, depth=2 * batch) as background:
        for block in source.blocks(header.chunk_rows * batch):
            for payload in codec.encode_chunks(block, row):
                background.put(payload)
            row += block.shape[0]
            if progress is not None:
                progress(row)
    writer.finish()
    return header


def compress(array, bits: int = 4, **options) -> bytes:
    """Compress a float16/32/64 array (last axis = vectors) and return the .tqz bytes.

    Options: mode ('mse' or 'prod'), seed, rounds, scale_rule ('ls', 'norm', 'ip'),
    scale_dtype ('auto' = float32, or float64 when a norm needs it; 'float32', 'float16',
    'float64'), chunk_rows.
    """
    buf = io.BytesIO()
    compress_source(arrayio.from_array(array), buf, bits=bits, **options)
    return buf.getvalue()


def open_container(src) -> tuple[ContainerReader, object]:
    """A reader over bytes, a path, or a binary stream; returns (reader, stream to close)."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        stream = io.BytesIO(bytes(src))
        return ContainerReader(stream, size=len(stream.getbuffer())), stream
    if isinstance(src, (str, os.PathLike)):
        stream = open(src, "rb")
        try:
            return ContainerReader(stream, size=os.fstat(stream.fileno()).st_size), stream
        except BaseException:
            stream.close()
            raise
    size = None
    try:
        if src.seekable():
            size = src.seek(0, os.SEEK_END) - src.seek(0)
    except (OSError, AttributeError):
        size = None
    return ContainerReader(src, size=size), None


def read_header(src) -> Header:
    """The header of a container given as bytes, a path, or a binary stream."""
    reader, stream = open_container(src)
    if stream is not None:
        stream.close()
    return reader.header


def parse_rows(spec: str | None, n: int) -> tuple[int, int]:
    """'A:B' (Python slice rules, either end optional, negatives from the end) -> (a, b)."""
    if spec is None:
        return 0, n
    parts = spec.split(":")
    if len(parts) != 2:
        raise ValueError(f"rows must look like A:B, got {spec!r}")
    try:
        a = int(parts[0]) if parts[0].strip() else None
        b = int(parts[1]) if parts[1].strip() else None
    except ValueError:
        raise ValueError(f"rows must look like A:B with integers, got {spec!r}") from None
    start, stop, _ = slice(a, b).indices(n)
    return start, max(start, stop)


def output_dtype(header: Header, dtype: str | None) -> np.dtype:
    if dtype in (None, "original"):
        return np.dtype(header.source_dtype)
    if dtype not in OUTPUT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(OUTPUT_DTYPES)}")
    return np.dtype(dtype)


def iter_decoded(reader: ContainerReader, start: int = 0, stop: int | None = None,
                 progress=None, buffers: int = 1):
    """Yield float32 row blocks covering rows [start, stop) of the container.

    A seekable container reads only the chunks it needs; a stream is read to its end so
    that its index and footer are checked too.  The blocks are views of `buffers` chunk
    buffers used in turn: a block stays valid until `buffers - 1` more have been yielded
    (with the default, use or copy each before asking for the next).
    """
    h = reader.header
    stop = h.n_vectors if stop is None else stop
    codec = None  # built once a chunk has arrived: a header alone costs nothing
    cr = h.chunk_rows
    first, last = start // cr, -(-stop // cr)
    wanted = range(first, last) if start < stop else range(0)
    chunks = wanted if reader.seekable else range(h.n_chunks)
    done = 0
    pool: list[np.ndarray] = []
    turn = 0
    for i in chunks:
        payload = reader.read_chunk(i)
        if i not in wanted:
            continue
        rows = h.chunk_rows_of(i)
        if codec is None:
            codec = Codec(h)
        if len(pool) < buffers:  # allocated once a chunk has proved the header honest
            pool.append(np.empty((min(cr, h.n_vectors), h.dim), codec.out_dtype))
        block = codec.decode(payload, rows, out=pool[turn % len(pool)])
        turn += 1
        lo = max(start - i * cr, 0)
        hi = min(stop - i * cr, rows)
        yield block[lo:hi]
        done += hi - lo
        if progress is not None:
            progress(done)
    reader.finish_stream()


def decompress(src, rows: str | tuple[int, int] | None = None,
               dtype: str | None = None) -> np.ndarray:
    """Decode a container (bytes, path or stream) into an array of its original shape.

    rows selects vectors A:B of the flattened (n, d) view and returns a 2-D array.
    """
    reader, stream = open_container(src)
    try:
        h = reader.header
        if isinstance(rows, tuple):
            a, b = rows
        else:
            a, b = parse_rows(rows, h.n_vectors)
        out_dtype = output_dtype(h, dtype)
        if reader.seekable:
            # the file's real length has been checked against the header: safe to allocate
            out = np.empty((b - a, h.dim), dtype=out_dtype)
            pos = 0
            for block in iter_decoded(reader, a, b):
                out[pos:pos + block.shape[0]] = arrayio.saturating_cast(block, out_dtype)
                pos += block.shape[0]
        else:
            # a stream's header is unchecked until its data arrives: grow with the data
            parts = [arrayio.saturating_cast(block, out_dtype).copy()
                     for block in iter_decoded(reader, a, b)]
            out = np.concatenate(parts) if parts else np.empty((0, h.dim), out_dtype)
        return out.reshape(h.shape) if rows is None else out
    finally:
        if stream is not None:
            stream.close()


def set_threads(n: int | None) -> int:
    """Use n worker threads in the kernels (default: all cores); output does not change."""
    import numba

    limit = numba.config.NUMBA_NUM_THREADS
    n = limit if n is None or n <= 0 else min(n, limit)
    numba.set_num_threads(n)
    return n


__all__ = ["compress", "compress_source", "decompress", "iter_decoded", "read_header",
           "open_container", "parse_rows", "set_threads", "Header", "TqError"]
