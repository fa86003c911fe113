"""An open .tqz container: `with tqcli.open(src) as f:` gives its header, chunks and rows.

A TqFile owns what it opened (a path's file is closed by close() or the `with` block, also
when an error ends it) and never closes a stream the caller passed in.  A seekable container
(bytes, a file, a seekable stream) has had its length, index and footer checked against
the header when it opened, so any chunk or row range can be read in any order and memory
for a read is allocated up front.  A pipe can be read once, in order, to its end: the
index and footer are checked after the last chunk.
"""

from __future__ import annotations

import io
import os

import numpy as np

from . import arrayio
from .codec import Codec
from .container import Header, check_memory
from .errors import FormatError
from .layouts import open_reader
from .limits import OUTPUT_DTYPES


def resolve_rows(rows, n: int) -> tuple[int, int]:
    """A row selection -> (start, stop) with 0 <= start <= stop <= n.

    rows is None (all), a slice with step 1, or a pair (start, stop); either end may be
    None, negative ends count from the end, and ends beyond the array are clipped, as
    in Python slicing.  Text such as "A:B" is the command line's business (tq --rows).
    """
    if rows is None:
        return 0, n
    if isinstance(rows, slice):
        if rows.step not in (None, 1):
            raise ValueError(f"rows must be a slice with step 1, got step {rows.step}")
        sel = rows
    elif isinstance(rows, tuple):
        if len(rows) != 2:
            raise ValueError(f"rows must be a pair (start, stop), got {len(rows)} values")
        sel = slice(*rows)
    else:
        raise TypeError(f"rows must be None, a slice or a (start, stop) pair, not "
                        f"{type(rows).__name__}")
    for end in (sel.start, sel.stop):
        if end is not None and not isinstance(end, (int, np.integer)):
            raise TypeError(f"row indices must be integers, not {type(end).__name__}")
    start, stop, _ = sel.indices(n)
    return start, max(start, stop)


def output_dtype(header: Header, dtype: str | None) -> np.dtype:
    """The dtype of decoded rows: the source's ("original" or None) or one of OUTPUT_DTYPES."""
    if dtype in (None, "original"):
        return np.dtype(header.source_dtype)
    if dtype not in OUTPUT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(OUTPUT_DTYPES)}")
    return np.dtype(dtype)


class TqFile:
    """A container opened from bytes, a path, or a binary stream (see module docstring)."""

    def __init__(self, src, memory_limit: int | None = None):
        """memory_limit: bytes of decoding state the header may imply (spec 13.7; None:
        limits.DEFAULT_MEMORY_LIMIT, 64 MiB; math.inf: none); a file above it is refused
        here, before any table is built (FormatError, rule "memory")."""
        self._own = None  # the file this object opened and must close
        try:
            self._reader = self._open(src)
            check_memory(self._reader.header, memory_limit)
        except BaseException:
            self.close()
            raise

    def _open(self, src):
        if isinstance(src, (bytes, bytearray, memoryview)):
            stream = io.BytesIO(bytes(src))
            return open_reader(stream, size=len(stream.getbuffer()))
        if isinstance(src, (str, os.PathLike)):
            self._own = io.open(src, "rb")
            return open_reader(self._own, size=os.fstat(self._own.fileno()).st_size)
        size = None
        try:
            if src.seekable():
                size = src.seek(0, os.SEEK_END) - src.seek(0)
        except (OSError, AttributeError):
            size = None
        return open_reader(src, size=size)

    # ------------------------------------------------------------------ what it holds

    @property
    def header(self) -> Header:
        return self._reader.header

    @property
    def seekable(self) -> bool:
        """Whether chunks can be read in any order (False for a pipe: once, in order)."""
        return self._reader.seekable

    @property
    def n_chunks(self) -> int:
        return self.header.n_chunks

    @property
    def n_vectors(self) -> int:
        return self.header.n_vectors

    # ------------------------------------------------------------------ reading

    def chunk(self, i: int) -> np.ndarray:
        """The decoded rows of chunk i, a new float32 array (float64 with float64 scales)."""
        h = self.header
        if not 0 <= i < h.n_chunks:
            raise IndexError(f"chunk {i} out of range (the container has {h.n_chunks})")
        payload = self._reader.read_chunk(i)
        block = _decode_chunk(Codec(h), payload, h.chunk_rows_of(i), i)
        if i == h.n_chunks - 1:
            self._reader.finish_stream()
        return block

    def iter_blocks(self, rows=None, *, progress=None, buffers: int = 1):
        """Yield decoded row blocks (float32, or float64 with float64 scales) covering `rows`.

        A seekable container reads only the chunks it needs; a stream is read to its end so
        that its index and footer are checked too.  The blocks are views of `buffers` chunk
        buffers used in turn: a block stays valid until `buffers - 1` more have been yielded
        (with the default, use or copy each before asking for the next).  progress, if
        given, is called as progress(rows done, rows wanted), first with 0.
        """
        reader, h = self._reader, self.header
        start, stop = resolve_rows(rows, h.n_vectors)
        if progress is not None:
            progress(0, stop - start)
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
            n = h.chunk_rows_of(i)
            if codec is None:
                codec = Codec(h)
            if len(pool) < buffers:  # allocated once a chunk has proved the header honest
                pool.append(np.empty((min(cr, h.n_vectors), h.dim), codec.out_dtype))
            block = _decode_chunk(codec, payload, n, i, pool[turn % len(pool)])
            turn += 1
            lo = max(start - i * cr, 0)
            hi = min(stop - i * cr, n)
            yield block[lo:hi]
            done += hi - lo
            if progress is not None:
                progress(done, stop - start)
        reader.finish_stream()

    def read(self, rows=None, dtype: str | None = None) -> np.ndarray:
        """Decode `rows` (None: all, in the original shape; else a 2-D (rows, d) array).

        dtype: None or "original" (the source's), "float32", "float16" or "float64";
        values beyond a narrower type's range saturate at its largest finite value.
        """
        h = self.header
        a, b = resolve_rows(rows, h.n_vectors)
        out_dtype = output_dtype(h, dtype)
        if self.seekable:
            # the file's real length has been checked against the header: safe to allocate
            out = np.empty((b - a, h.dim), dtype=out_dtype)
            pos = 0
            for block in self.iter_blocks((a, b)):
                out[pos:pos + block.shape[0]] = arrayio.saturating_cast(block, out_dtype)
                pos += block.shape[0]
        else:
            # a stream's header is unchecked until its data arrives: grow with the data
            parts = [arrayio.saturating_cast(block, out_dtype).copy()
                     for block in self.iter_blocks((a, b))]
            out = np.concatenate(parts) if parts else np.empty((0, h.dim), out_dtype)
        return out.reshape(h.shape) if rows is None else out

    def verify(self, checksums: bool = True) -> None:
        """Read every chunk and check its CRC-32 and floats, then index and footer (what
        `tq inspect --verify` does); raises FormatError at the first fault.

        checksums=False reads a stream through to check only its index and footer (what
        a plain `tq inspect -` does; for a seekable container those were checked at open).
        """
        for i in range(self.n_chunks):
            self._reader.read_chunk(i, verify=checksums)
        self._reader.finish_stream()

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close the file this object opened (a stream passed in stays open)."""
        if self._own is not None:
            self._own.close()
            self._own = None

    def __enter__(self) -> "TqFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        h = self.header
        return (f"<TqFile {h.n_vectors} x {h.dim} {h.mode} {h.bits} bits, "
                f"{h.n_chunks} chunks{'' if self.seekable else ', stream'}>")


def _decode_chunk(codec: Codec, payload, rows: int, i: int, out=None) -> np.ndarray:
    """codec.decode of chunk i; a refusal of its decoded values names the chunk."""
    try:
        return codec.decode(payload, rows, out=out)
    except FormatError as e:
        e.chunk, e.reason = i, f"chunk {i}: {e.reason}"
        raise


def open(src, memory_limit: int | None = None) -> TqFile:  # noqa: A001 - tqcli.open
    """Open a container given as bytes, a path, or a binary stream (see TqFile)."""
    return TqFile(src, memory_limit)
