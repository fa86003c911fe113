"""An open .tqz container: `with tqcli.open(src) as f:` gives its header, chunks and rows.

A TqFile owns what it opened (a path's file is closed by close() or the `with` block, also
when an error ends it) and never closes a stream the caller passed in.  A seekable container
(bytes, a file, a seekable stream) has had its length, index and footer checked against
the header when it opened, so any chunk or row range can be read in any order and memory
for a read is allocated up front.  A pipe can be read once, in order, to its end: the
index and footer are checked after the last chunk.
"""

from __future__ import annotations

import numpy as np

from .. import arrayio
from ..arrayio import selection
from ..codec.state import Codec
from ..format.header import Header, check_memory
from ..errors import FormatError, TqError
from ..format.layouts import OpenContainer
from ..arrayio.lazyarray import LazyArray
from ..limits import OUTPUT_DTYPES


def resolve_rows(rows, n: int, clip: bool = True) -> tuple[int, int]:
    """A row selection -> (start, stop) with 0 <= start <= stop <= n.

    rows is None (all), a slice with step 1, or a pair (start, stop); either end may be
    None, negative ends count from the end, and ends beyond the array are clipped, as
    in Python slicing -- or, with clip=False (the command line's --rows), refused with a
    ValueError, so that a range past the end cannot silently return fewer rows.  Text
    such as "A:B" is the command line's business (tq --rows).
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
    if not clip:
        for end in (sel.start, sel.stop):
            if end is not None and not -n <= end <= n:
                raise ValueError(f"row {end} is out of range for {n} vectors "
                                 f"(-{n} to {n})")
    start, stop, _ = sel.indices(n)
    return start, max(start, stop)


def output_dtype(header: Header, dtype: str | None) -> np.dtype:
    """The dtype of decoded rows: the source's ("original" or None) or one of OUTPUT_DTYPES."""
    if dtype in (None, "original"):
        if header.source_dtype == "bfloat16":
            return arrayio.bf16.dtype()
        return np.dtype(header.source_dtype)
    if dtype not in OUTPUT_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(OUTPUT_DTYPES)}")
    return np.dtype(dtype)


def plan_read(header: Header, rows=None, select=None, clip_rows: bool = True):
    """What a read of `rows` or `select` returns: (shape, starts, stops), the shape of the
    result and the sorted row runs it holds (tqcli.arrayio.selection).  rows None and select None
    is everything, in the original shape; rows gives the 2-D (rows, d) view."""
    if select is not None:
        if rows is not None:
            raise ValueError("give rows or select, not both")
        sel = selection.normalize(select, header.shape)
        starts, stops = selection.runs(sel, header.shape)
        return selection.selected_shape(sel, header.shape), starts, stops
    a, b = resolve_rows(rows, header.n_vectors, clip=clip_rows)
    starts, stops = selection.rows_runs((a, b))
    return (header.shape if rows is None else (b - a, header.dim)), starts, stops


class CollectionError(TqError):
    """A collection where one array was expected (tqcli.open_collection reads it)."""

    def __init__(self, reader):
        count = reader.info["members"]
        super().__init__(f"holds a collection of {count} member{'s' * (count != 1)}; "
                         f"choose one with --member NAME (tqcli.open_collection)")
        self.reader = reader


class TqFile(OpenContainer, LazyArray):
    """A container opened from bytes, a path, or a binary stream (see module docstring).

    As numpy users expect (tqcli.arrayio.lazyarray): `f.shape`, `f.dtype` (the original ones, as
    decompress gives them), `f.ndim`, `f.size`, `len(f)`, `np.asarray(f)` and `f[key]`,
    numpy basic indexing over the original shape that reads only the chunks it needs and
    equals `tqcli.decompress(src)[key]` exactly.  A stream can be read once.
    """

    def __init__(self, src, memory_limit: int | None = None, max_ratio: float | None = None):
        """memory_limit: bytes of decoding state the header may imply (spec 13.7; None:
        limits.DEFAULT_MEMORY_LIMIT, 256 MiB; math.inf: none); a file above it is refused
        here, before any table is built (FormatError, rule "memory").  max_ratio: decoded
        bytes the file may declare per byte it holds, per chunk and per file (spec 13.9;
        None: limits.DEFAULT_MAX_RATIO, 256; math.inf: none); a file of known length above
        it is refused here, a stream at the first chunk above it (rule "ratio")."""
        self._memory_limit = self.memory_limit = memory_limit  # the reader's too (its TOC)
        self._max_ratio = max_ratio
        super().__init__(src)

    def _check(self) -> None:
        if getattr(self._reader, "layout", "array") == "collection":
            raise CollectionError(self._reader)
        self._reader.check_expansion(self._max_ratio)
        check_memory(self._reader.header, self._memory_limit)

    # ------------------------------------------------------------------ what it holds

    @property
    def header(self) -> Header:
        return self._reader.header

    @property
    def n_chunks(self) -> int:
        return self.header.n_chunks

    @property
    def file_size(self) -> int:
        """The container's bytes (a stream's once it has been read to its end)."""
        return self._reader.file_size

    @property
    def payload_bytes(self) -> int:
        return self._reader.payload_bytes

    @property
    def n_vectors(self) -> int:
        return self.header.n_vectors

    @property
    def shape(self) -> tuple[int, ...]:
        """The original array's shape (the last axis is the vector)."""
        return tuple(self.header.shape)

    @property
    def dtype(self) -> np.dtype:
        """The original array's dtype, as decompress returns it (bfloat16 via ml_dtypes)."""
        return output_dtype(self.header, None)

    def _read_selected(self, select: tuple) -> np.ndarray:
        return self.read(select=select)

    def _rows_per_read(self) -> int:
        return self.header.chunk_rows

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
        starts, stops = selection.rows_runs(resolve_rows(rows, self.header.n_vectors))
        return self.iter_runs(starts, stops, progress=progress, buffers=buffers)

    def iter_runs(self, starts, stops, *, progress=None, buffers: int = 1):
        """iter_blocks over sorted, disjoint row runs [starts[j], stops[j])
        (tqcli.arrayio.selection):
        the rows of every run, in order, each chunk decoded once.  A chunk that one run
        covers yields a view of its buffer (valid as for iter_blocks); one that holds
        several runs yields a new array of their rows, gathered with one numpy index."""
        reader, h = self._reader, self.header
        starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
        total = int((stops - starts).sum())
        if progress is not None:
            progress(0, total)
        codec = None  # built once a chunk has arrived: a header alone costs nothing
        cr = h.chunk_rows
        c_lo, c_hi = _chunk_intervals(starts, stops, cr)
        if reader.seekable:
            chunks = (i for a, b in zip(c_lo.tolist(), c_hi.tolist()) for i in range(a, b + 1))
        else:
            chunks = range(h.n_chunks)
        done = 0
        pool: list[np.ndarray] = []
        turn = 0
        for i in chunks:
            payload = reader.read_chunk(i)
            k = int(np.searchsorted(c_hi, i))
            if k == c_lo.size or c_lo[k] > i:  # a stream's chunk outside the selection
                continue
            n = h.chunk_rows_of(i)
            if codec is None:
                codec = Codec(h)
            if len(pool) < buffers:  # allocated once a chunk has proved the header honest
                pool.append(np.empty((min(cr, h.n_vectors), h.dim), codec.out_dtype))
            block = _decode_chunk(codec, payload, n, i, pool[turn % len(pool)])
            turn += 1
            part = _part_of(block, i * cr, starts, stops)
            yield part
            done += part.shape[0]
            if progress is not None:
                progress(done, total)
        reader.finish_stream()

    def decode_runs(self, starts, stops, emit, *, progress=None, pipelines: int = 2) -> None:
        """emit(block) for the blocks iter_runs(starts, stops) yields, in order, with
        `pipelines` chunks decoded at once, each by a thread of its own into buffers of its
        own, while an earlier one is emitted (tqcli.arrayio.pipeline.run_ordered): decoding
        and writing overlap without a hand-over, and each thread's kernels use
        thread_count() // pipelines threads.  emit is called from any of those threads,
        one call at a time; a block is valid until emit returns.  Errors are raised as
        iter_runs raises them, after every earlier block was emitted."""
        from .. import kernels
        from ..arrayio.pipeline import run_ordered

        reader, h = self._reader, self.header
        starts, stops = np.asarray(starts, np.int64), np.asarray(stops, np.int64)
        total = int((stops - starts).sum())
        if progress is not None:
            progress(0, total)
        cr = h.chunk_rows
        c_lo, c_hi = _chunk_intervals(starts, stops, cr)
        if reader.seekable:
            chunks = iter([i for a, b in zip(c_lo.tolist(), c_hi.tolist())
                           for i in range(a, b + 1)])
        else:
            chunks = iter(range(h.n_chunks))
        share = max(1, kernels.thread_count() // max(1, pipelines))
        run = {"codec": None, "done": 0}

        def take(state):
            for i in chunks:
                into = None
                if reader.seekable:  # its sizes are checked: a buffer of each thread's own
                    if "payload" not in state:
                        room = h.max_payload_size(min(cr, h.n_vectors)) + 4  # and its CRC
                        state["payload"] = bytearray(room)
                    into = state["payload"]
                payload = reader.read_chunk(i, into=into)
                k = int(np.searchsorted(c_hi, i))
                if k == c_lo.size or c_lo[k] > i:  # a stream's chunk outside the selection
                    continue
                if run["codec"] is None:
                    run["codec"] = Codec(h)
                return i, payload
            reader.finish_stream()
            return None

        def work(item, state):
            i, payload = item
            codec = run["codec"]
            if "out" not in state:  # allocated once a chunk has proved the header honest
                state["out"] = np.empty((min(cr, h.n_vectors), h.dim), codec.out_dtype)
            with kernels.local_threads(share):
                block = _decode_chunk(codec, payload, h.chunk_rows_of(i), i, state["out"])
            return _part_of(block, i * cr, starts, stops)

        def put(part):
            emit(part)
            run["done"] += part.shape[0]
            if progress is not None:
                progress(run["done"], total)

        run_ordered(take, work, put, pipelines)

    def read(self, rows=None, dtype: str | None = None, select=None) -> np.ndarray:
        """Decode `rows` (None: all, in the original shape; else a 2-D (rows, d) array), or
        the part `select` of the original shape (tqcli.arrayio.selection: e.g. (3, 0), "3,0" or
        "2:4"; the result has the shape numpy gives x[select]).

        dtype: None or "original" (the source's), "float32", "float16" or "float64";
        values beyond a narrower type's range saturate at its largest finite value.
        """
        h = self.header
        out_dtype = output_dtype(h, dtype)
        shape, starts, stops = plan_read(h, rows, select)
        count = int((stops - starts).sum())
        if self.seekable:
            # the file's real length has been checked against the header: safe to allocate
            from .. import kernels
            from ..format import memory

            out = np.empty((count, h.dim), dtype=out_dtype)
            pos = [0]

            def put(block):
                out[pos[0]:pos[0] + block.shape[0]] = arrayio.saturating_cast(block, out_dtype)
                pos[0] += block.shape[0]

            pipes = memory.decode_pipelines(h, kernels.thread_count())
            if pipes > 1:  # two chunks decoded at once, each copied out in turn
                self.decode_runs(starts, stops, put, pipelines=pipes)
            else:
                for block in self.iter_runs(starts, stops):
                    put(block)
        else:
            # a stream's header is unchecked until its data arrives: grow with the data
            parts = [arrayio.saturating_cast(block, out_dtype).copy()
                     for block in self.iter_runs(starts, stops)]
            out = np.concatenate(parts) if parts else np.empty((0, h.dim), out_dtype)
        return out.reshape(shape)

    # ------------------------------------------------------------------ codes (search)

    @property
    def codec(self) -> Codec:
        """The decoder's state for this header (rotation plan, codebook, prod's sketch),
        built on first use."""
        if getattr(self, "_codec", None) is None:
            self._codec = Codec(self.header)
        return self._codec

    def chunk_codes(self, i: int):
        """Chunk i's codes and scales without decoding them to floats: a
        tqcli.codec.codes.ChunkCodes (the packed coding's bit streams are views of the payload;
        the entropy coding's cell indices come out of its rANS stage).  Its arrays stay
        valid until the next read from this file (.copy() keeps them)."""
        h = self.header
        if not 0 <= i < h.n_chunks:
            raise IndexError(f"chunk {i} out of range (the container has {h.n_chunks})")
        codes = self._chunk_codes(i)
        if i == h.n_chunks - 1:
            self._reader.finish_stream()
        return codes

    def _chunk_codes(self, i: int):
        h = self.header
        payload = self._reader.read_chunk(i)
        try:
            return h.payload_coding.chunk_codes(self.codec, payload, h.chunk_rows_of(i))
        except FormatError as e:
            e.chunk, e.reason = i, f"chunk {i}: {e.reason}"
            raise

    def iter_codes(self, rows=None):
        """Yield (first row, ChunkCodes) of every chunk that holds some of `rows` (as for
        iter_blocks), whole chunks in order: the caller trims to its rows.  A stream is
        read to its end.  Each ChunkCodes is valid until the next is yielded."""
        h = self.header
        a, b = resolve_rows(rows, h.n_vectors)
        wanted = range(a // h.chunk_rows, -(-b // h.chunk_rows)) if b > a else range(0)
        for i in (wanted if self.seekable else range(h.n_chunks)):
            if i in wanted:
                yield i * h.chunk_rows, self._chunk_codes(i)
            else:  # a stream's chunk outside the rows: read past it, checked
                self._reader.read_chunk(i)
        self._reader.finish_stream()

    def query_transform(self, q, normalize: bool = False) -> np.ndarray:
        """y = R (q - centre) for queries q (..., d), float32: the forward rotation of
        this file after subtracting its centre (if it has one), and with normalize each
        query divided by its norm first; so that s <y, c[idx]> from chunk_codes is
        <q - centre, x_hat - centre> (tqcli.library.blocks.query_transform,
        tqcli/codec/codes.py)."""
        from .blocks import query_transform

        return query_transform(q, self.codec, normalize)

    def search(self, queries, k: int = 10, *, rows=None, **options):
        """The exact top-k of the decoded rows for each query: (ids, scores), streamed
        chunk by chunk (tqcli.library.search.search_tqfile: metric, ids, rerank,
        candidates, threads, memory_limit, progress); rows a range as for read."""
        from .search import rows_span, search_tqfile

        return search_tqfile(self, queries, k, span=rows_span(rows, self.n_vectors,
                                                              resolve_rows),
                             out_dtype=self.dtype, **options)

    def verify(self, checksums: bool = True) -> None:
        """Make every check the decoder makes except the finiteness of the decoded values
        (spec 13.5; what `tq inspect --verify` does): every chunk's CRC-32, stored floats
        and the coding's own checks (the entropy coding's rANS streams, by the decoder's
        code: Coding.check_decodable), then index and footer; raises FormatError at the
        first fault.

        checksums=False reads a stream through to check only its index and footer (what
        a plain `tq inspect -` does; for a seekable container those were checked at open).
        """
        h = self.header
        scratch: dict = {}
        for i in range(self.n_chunks):
            payload = self._reader.read_chunk(i, verify=checksums)
            if checksums:
                try:
                    h.payload_coding.check_decodable(h, payload, h.chunk_rows_of(i), scratch)
                except FormatError as e:
                    e.chunk, e.reason = i, f"chunk {i}: {e.reason}"
                    raise
        self._reader.finish_stream()

    # ------------------------------------------------------------------ lifetime

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


def _part_of(block: np.ndarray, base: int, starts: np.ndarray, stops: np.ndarray):
    """The rows of sorted, disjoint runs [starts[j], stops[j]) in a decoded chunk whose
    first row is `base`: a view when one run covers them, else a gathered copy."""
    n = block.shape[0]
    j0 = int(np.searchsorted(stops, base, side="right"))
    j1 = int(np.searchsorted(starts, base + n, side="left"))
    lo = np.maximum(starts[j0:j1] - base, 0)
    hi = np.minimum(stops[j0:j1] - base, n)
    if j1 - j0 == 1:
        return block[int(lo[0]):int(hi[0])]
    return block[_gather_index(lo, hi)]


def _chunk_intervals(starts: np.ndarray, stops: np.ndarray, cr: int):
    """The chunks (of cr rows) that sorted, disjoint row runs touch, as merged intervals
    [lo[k], hi[k]] of chunk indices -- never an array over all chunks, whose count a
    stream's header only claims until its data arrive."""
    if starts.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo, hi = starts // cr, (stops - 1) // cr
    first = np.flatnonzero(np.r_[True, lo[1:] > hi[:-1] + 1])
    return lo[first], np.maximum.reduceat(hi, first)


def _gather_index(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The row indices of the ranges [lo[j], hi[j]) in order, without a loop over them."""
    lengths = hi - lo
    offsets = np.repeat(lo - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) + offsets


def open(src, memory_limit: int | None = None,  # noqa: A001 - tqcli.open
         max_ratio: float | None = None) -> TqFile:
    """Open a container given as bytes, a path, or a binary stream (see TqFile)."""
    return TqFile(src, memory_limit, max_ratio)
