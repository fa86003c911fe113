"""tqcli.load_index: a .tqz's codes held in memory for repeated searches (search.py does
the searching; this module adds only where the codes come from)."""

from __future__ import annotations

from ..errors import TqError
from . import search as searching
from .search import DEFAULT_K, _Query, _finish, decode_chunk, run_search
from .tqfile import TqFile, output_dtype, resolve_rows


class Index:
    """A .tqz held in memory for repeated searches: its header and every chunk's payload
    (the codes as the file stores them; RSS about the file's size).  search() decodes
    chunk by chunk into fresh buffers, so one Index serves many threads at once."""

    def __init__(self, f):
        h = f.header
        self.header = h
        self.codec = f.codec
        self.out_dtype = output_dtype(h, None)
        self._payloads = [bytes(f._reader.read_chunk(i)) for i in range(h.n_chunks)]
        f._reader.finish_stream()

    def __len__(self) -> int:
        return self.header.n_vectors

    @property
    def dim(self) -> int:
        return self.header.dim

    @property
    def nbytes(self) -> int:
        """Bytes of codes held."""
        return sum(len(p) for p in self._payloads)

    def search(self, queries, k: int = DEFAULT_K, *, metric: str = "ip", rows=None,
               ids=None, rerank=None, candidates: int | None = None,
               threads: int | None = None, memory_limit: int | None = None):
        """As TqFile.search, over the codes in memory."""
        h = self.header
        query = _Query(h, queries, k, metric, searching.rows_span(rows, h.n_vectors, resolve_rows),
                       ids, candidates, rerank)
        blocks = ((i * h.chunk_rows, decode_chunk(self.codec, self._payloads[i],
                                                  h.chunk_rows_of(i), i, self.out_dtype))
                  for i in query.chunks(h))
        out = run_search(h, blocks, query, threads, memory_limit)
        return _finish(query, *out)

    def __repr__(self) -> str:
        h = self.header
        return f"<Index {h.n_vectors} x {h.dim} {h.mode} {h.bits} bits, {self.nbytes} bytes>"


def load_index(src, memory_limit: int | None = None) -> Index:
    """An Index of the container `src` (a path, bytes or a binary stream), every chunk's
    CRC checked as it is read."""
    try:
        with TqFile(src, memory_limit) as f:
            return Index(f)
    except TqError as e:
        if e.source is None and isinstance(src, str):
            raise e.with_source(src)
        raise
