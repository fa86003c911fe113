"""tqcli.load_index: a .tqz's codes held in memory for repeated searches (search.py does
the searching; this module adds only where the codes come from).

An mse file of the packed coding is held in the scan's layout (search_scan: candidates
from the codes, proven, re-scored from the decoded candidates); any other file as its
chunk payloads, decoded chunk by chunk at each search.  Either way the hits are the
exact top-k of the decoded rows, as TqFile.search gives them.
"""

from __future__ import annotations

import copy

import numpy as np

from ..errors import TqError
from . import search as searching
from . import search_scan
from .search import DEFAULT_K, _Query, _finish, decode_chunk, run_search
from .tqfile import TqFile, output_dtype, resolve_rows


class Index:
    """A .tqz held in memory for repeated searches: its header and every chunk's payload
    (the codes as the file stores them; RSS about the file's size).  search() decodes
    chunk by chunk into fresh buffers, so one Index serves many threads at once."""

    def __init__(self, f, scan: bool | None = None):
        """scan: hold the codes in the scan's layout (None: whenever the file allows)."""
        h = f.header
        self.header = h
        self.codec = f.codec
        self.out_dtype = output_dtype(h, None)
        self._payloads, self.scan = [], None
        if scan is None or scan:
            scan = search_scan.scannable(h) and h.n_vectors > 0
        if scan:
            def chunks():  # one chunk's codes and decoded rows at a time
                for i in range(h.n_chunks):
                    cc = f._chunk_codes(i).copy()
                    yield cc, _decode_codes(self.codec, cc, i, self.out_dtype)

            self.scan = search_scan.ScanData(self.codec, chunks())
        else:
            self._payloads = [bytes(f._reader.read_chunk(i)) for i in range(h.n_chunks)]
        f._reader.finish_stream()

    def __len__(self) -> int:
        return self.header.n_vectors

    @property
    def dim(self) -> int:
        return self.header.dim

    @property
    def nbytes(self) -> int:
        """Bytes of codes held (and, in the scan's layout, 24 bytes per row of scale,
        norm and centre term)."""
        if self.scan is not None:
            return self.scan.nbytes
        return sum(len(p) for p in self._payloads)

    def _blocks(self, query):
        """(first row, decoded chunk) of the chunks the query searches."""
        h = self.header
        for i in query.chunks(h):
            first = i * h.chunk_rows
            if self.scan is not None:
                rows = np.arange(first, first + h.chunk_rows_of(i))
                yield first, self.scan.decode_rows(rows, self.out_dtype)
            else:
                yield first, decode_chunk(self.codec, self._payloads[i], h.chunk_rows_of(i),
                                          i, self.out_dtype)

    def search(self, queries, k: int = DEFAULT_K, *, metric: str = "ip", rows=None,
               ids=None, rerank=None, candidates: int | None = None,
               threads: int | None = None, memory_limit: int | None = None):
        """As TqFile.search, over the codes in memory."""
        h = self.header
        query = _Query(h, queries, k, metric, searching.rows_span(rows, h.n_vectors, resolve_rows),
                       ids, candidates, rerank)
        if self.scan is None:
            return _finish(query, *run_search(h, self._blocks(query), query, threads,
                                              memory_limit))
        from .. import kernels

        workers = kernels.thread_count() if not threads or threads <= 0 else int(threads)
        ids, keys, left = search_scan.scan_search(self.scan, query, self.out_dtype, workers)
        if left.size:  # unproven by the scan: every decoded row
            rest = copy.copy(query)
            rest.q = query.q[left]
            ids[left], keys[left] = run_search(h, self._blocks(rest), rest, threads,
                                               memory_limit)
        return _finish(query, ids, keys)

    def __repr__(self) -> str:
        h = self.header
        return f"<Index {h.n_vectors} x {h.dim} {h.mode} {h.bits} bits, {self.nbytes} bytes>"


def _decode_codes(codec, cc, i: int, out_dtype):
    """Chunk i's rows from its codes, as decompress gives them (a refusal names it)."""
    from .. import arrayio
    from ..errors import FormatError
    from .blocks import decode_block

    try:
        x = decode_block(cc, codec)
        if not np.isfinite(x).all():
            raise FormatError("decoded values overflow to infinity (corrupt or crafted file)",
                              rule="decoded-finite")
        return arrayio.saturating_cast(x, out_dtype)
    except FormatError as e:
        e.chunk, e.reason = i, f"chunk {i}: {e.reason}"
        raise


def load_index(src, memory_limit: int | None = None, scan: bool | None = None) -> Index:
    """An Index of the container `src` (a path, bytes or a binary stream), every chunk's
    CRC checked as it is read.  scan=False keeps the chunk payloads even where the scan's
    layout applies (the search is then the streaming one's, over memory)."""
    try:
        with TqFile(src, memory_limit) as f:
            return Index(f, scan)
    except TqError as e:
        if e.source is None and isinstance(src, str):
            raise e.with_source(src)
        raise
