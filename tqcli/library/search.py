"""Search inside a .tqz: the exact top-k of the DECODED vectors, streamed or from an index.

    with tqcli.open("db.tqz") as f:
        ids, scores = f.search(queries, k=10, metric="ip")
    index = tqcli.load_index("db.tqz")        # the file's codes held in memory (search_index)
    ids, scores = index.search(queries, k=10, rerank="db.npy", candidates=100)

The result of a search without `rerank` is exactly what numpy gives on `tq decompress`'s
output: for every query the k rows with the largest canonical key (search_topk: float64
scores summed pairwise; ip, cosine, or l2 as the squared distance), ties broken by the
smaller id.  Blocks of rows are decoded chunk by chunk (a chunk's decode is the
decoder's own, bit for bit) and scored by search_topk.block_topk, which proves every
block's answer exact, so the merge of blocks -- in whatever order threads finish them --
gives the same ids and scores on any thread count.  With `rerank` (an array or a file
of the original floats), the best `candidates` hits of the decoded vectors are re-scored
from the original rows, read by id (search_rerank).

Memory: a few decoded chunks and, per worker thread, one queries-by-chunk block of
float64 scores, with queries taken in batches that keep it within the budget.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import limits
from ..codec.state import Codec
from ..errors import InputError
from . import search_rerank, search_topk as st

DEFAULT_K = 10
DEFAULT_CANDIDATES = 100
SCAN_QUERIES = 32


def prepare_queries(queries, d: int) -> tuple[np.ndarray, bool]:
    """Queries as float64 (m, d) and whether one 1-D query was given; refuses a wrong
    dimension, a non-float array and NaN or infinite values (InputError)."""
    q = np.asarray(queries)
    single = q.ndim == 1
    if q.ndim not in (1, 2):
        raise InputError(f"queries must be one vector or a 2-D array of vectors, got "
                         f"shape {q.shape}")
    if q.shape[-1] != d:
        raise InputError(f"queries have {q.shape[-1]} values per vector, the file {d}")
    if q.dtype.kind not in "fiu" and q.dtype.name != "bfloat16":
        raise InputError(f"queries must hold numbers, not {q.dtype}")
    q = np.atleast_2d(q.astype(np.float64))
    bad = ~np.isfinite(q).all(axis=1)
    if bad.any():
        raise InputError(f"query {int(np.flatnonzero(bad)[0])} holds NaN or infinity")
    return np.ascontiguousarray(q), single


def allow_list(ids, n: int, rows=None) -> np.ndarray:
    """Sorted unique allowed ids from an integer array-like, each in [0, n) (InputError
    otherwise), restricted to `rows` (a range from resolve_rows) when given."""
    a = np.asarray(ids)
    if a.size and a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise InputError(f"allow-list ids must be integers, not {a.dtype}")
    a = np.unique(a.reshape(-1).astype(np.int64))
    if a.size and (a[0] < 0 or a[-1] >= n):
        worst = int(a[0] if a[0] < 0 else a[-1])
        raise InputError(f"allow-list id {worst} is out of range for {n} vectors")
    if rows is not None:
        a = a[(a >= rows[0]) & (a < rows[1])]
    return a


def rows_span(rows, n: int, resolve) -> tuple[int, int]:
    """`rows` as a (start, stop) by `resolve` (tqfile.resolve_rows; out of range refused)."""
    try:
        return resolve(rows, n, clip=False)
    except (ValueError, TypeError) as e:
        raise InputError(f"rows: {e}") from None


class _Query:
    """One search's settings, checked once."""

    def __init__(self, header, queries, k, metric, span, ids, candidates, rerank):
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k <= 0:
            raise InputError(f"k must be a positive integer, got {k!r}")
        self.metric = st.check_metric(metric)
        n, d = header.n_vectors, header.dim
        self.n = n
        if n == 0:
            raise InputError("the file holds no vectors to search")
        self.q, self.single = prepare_queries(queries, d)
        self.k = int(k)
        self.rows = (0, n) if span is None else (int(span[0]), int(span[1]))
        self.allowed = None if ids is None else allow_list(ids, n, self.rows)
        self.count = (self.rows[1] - self.rows[0]) if self.allowed is None \
            else int(self.allowed.size)
        self.rerank = rerank
        if candidates is not None and (not isinstance(candidates, (int, np.integer))
                                       or candidates <= 0):
            raise InputError(f"candidates must be a positive integer, got {candidates!r}")
        if rerank is not None:
            self.depth = max(self.k, int(candidates or DEFAULT_CANDIDATES))
        elif candidates is not None:
            raise InputError("candidates are re-scored from a source: give rerank too")
        else:
            self.depth = self.k

    def mask(self, first: int, rows: int):
        """The allow mask of rows [first, first + rows), or None when all may be hits."""
        if self.allowed is None:
            return None
        a, b = np.searchsorted(self.allowed, [first, first + rows])
        m = np.zeros(rows, bool)
        m[self.allowed[a:b] - first] = True
        return m

    def chunks(self, header) -> list[int]:
        """The chunks that hold a row that may be a hit."""
        cr = header.chunk_rows
        a, b = self.rows
        if self.allowed is not None:
            return np.unique(self.allowed // cr).tolist()
        return list(range(a // cr, -(-b // cr))) if b > a else []


def _query_batch(m: int, rows: int, d: int, depth: int, budget: int) -> int:
    """Queries scored at once against a block of `rows` so that the scores, their
    partition and the candidates' float64 rows stay within `budget` bytes."""
    per_query = 8 * (4 * rows + (depth + st.MARGIN) * (d + 2))
    return int(max(1, min(m, budget // max(per_query, 1))))


def _score_block(query: _Query, block, first: int, batch: int):
    """(ids, keys) of every query among a decoded block's rows (exact, search_topk), or
    for a block given as (codes, rows), by the scan of its codes (search_scan)."""
    if isinstance(block, tuple):
        from . import search_scan

        cc, x, codec, tables, out_dtype = block
        return search_scan.chunk_search(query, first, cc, x, codec, tables, out_dtype)
    rows = block.shape[0]
    lo, hi = max(query.rows[0] - first, 0), min(query.rows[1] - first, rows)
    mask = query.mask(first, rows)  # an allow-list is already within query.rows
    if mask is None and (lo > 0 or hi < rows):
        mask = np.zeros(rows, bool)
        mask[lo:hi] = True
    x64 = block.astype(np.float64)
    qn = st.row_norms(query.q)
    parts_ids, parts_keys = [], []
    for a in range(0, query.q.shape[0], batch):
        ids, keys = st.block_topk(query.q[a:a + batch], x64, query.depth, first, mask,
                                  query.metric, qn[a:a + batch])
        parts_ids.append(ids)
        parts_keys.append(keys)
    return np.concatenate(parts_ids), np.concatenate(parts_keys)


def run_search(header, blocks, query: _Query, threads: int | None = None,
               memory_limit: int | None = None, progress=None):
    """The exact top `query.depth` over decoded `blocks` ((first row, rows) pairs in
    order): (ids, keys), the ids -1 where fewer rows may be hits.  Blocks are scored by
    worker threads while the next is decoded; merged in order."""
    from .. import kernels

    if query.q.shape[0] == 0:  # no queries: no hits, nothing to read
        width = min(query.depth, query.count)
        return np.zeros((0, width), np.int64), np.zeros((0, width))
    workers = kernels.thread_count() if not threads or threads <= 0 else int(threads)
    budget = limits.DEFAULT_MEMORY_LIMIT if memory_limit is None else memory_limit
    if budget == math.inf:
        budget = 1 << 40
    d = header.dim
    batch = _query_batch(query.q.shape[0], header.chunk_rows, d, query.depth,
                         max(1 << 20, int(budget) // (2 * workers + 2)))
    top = st.TopK(query.q.shape[0], query.depth)
    total = query.count
    done = 0
    if progress is not None:
        progress(0, total)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tq-search") \
        if workers > 1 else None
    pending = []
    try:
        for first, block in blocks:
            if pool is None:
                top.merge(*_score_block(query, block, first, batch))
            else:
                pending.append(pool.submit(_score_block, query, block, first, batch))
                if len(pending) >= workers:
                    top.merge(*pending.pop(0).result())
            done += _hits_in(query, first, (block[1] if isinstance(block, tuple)
                                            else block).shape[0])
            if progress is not None:
                progress(done, total)
        for f in pending:
            top.merge(*f.result())
        pending = []
    finally:
        for f in pending:
            f.cancel()
        if pool is not None:
            pool.shutdown(wait=True)
    return top.result(query.count)


def _hits_in(query: _Query, first: int, rows: int) -> int:
    a, b = max(first, query.rows[0]), min(first + rows, query.rows[1])
    if b <= a:
        return 0
    if query.allowed is None:
        return b - a
    return int(np.searchsorted(query.allowed, b) - np.searchsorted(query.allowed, a))


def _finish(query: _Query, ids: np.ndarray, keys: np.ndarray):
    """Re-rank if asked, cut to k, keys -> scores, a 1-D query's result 1-D."""
    if query.rerank is not None:
        own = not isinstance(query.rerank, search_rerank.RowSource)
        src = search_rerank.RowSource(query.rerank) if own else query.rerank
        try:
            ids, keys = search_rerank.rerank(src, query.q, ids, query.k, query.metric,
                                             query.n)
        finally:
            if own:
                src.close()
    ids, keys = ids[:, :query.k], keys[:, :query.k]
    scores = st.scores_of_keys(keys, query.metric)
    if query.single:
        return ids[0], scores[0]
    return ids, scores


def search_tqfile(f, queries, k: int = DEFAULT_K, *, metric: str = "ip", span=None,
                  ids=None, rerank=None, candidates: int | None = None,
                  threads: int | None = None, memory_limit: int | None = None,
                  progress=None, out_dtype=None, scan: bool | None = None):
    """TqFile.search: the exact top-k of the decoded rows, chunk by chunk (module
    docstring); span the (start, stop) of rows searched, out_dtype the dtype decompress
    gives; scan (mse packed files) takes each chunk's candidates from its codes.  Returns
    (ids (m, k) int64, scores (m, k) float64), 1-D for one 1-D query; fewer than k
    columns when fewer rows may be hits (rows, ids)."""
    h = f.header
    query = _Query(h, queries, k, metric, span, ids, candidates, rerank)
    from . import search_scan

    # scan: candidates of each chunk from its codes (search_scan.chunk_search); by default
    # from SCAN_QUERIES queries on, where the tables pay for themselves (measured on the
    # sentence set, 1000 queries, one thread: 2.5 s against 3.5 s with BLAS at 2 bits,
    # 3.0 s against 3.5 s at 4 bits; a chunk's own proofs fail more often than an index's)
    if scan is None:
        scan = query.q.shape[0] >= SCAN_QUERIES
    if scan and search_scan.scannable(h) and query.q.shape[0]:
        tables = search_scan.prepare(query.q, f.codec)
        blocks = ((first, (cc, x, f.codec, tables, out_dtype))
                  for first, cc, x in _file_chunks(f, query, out_dtype))
    else:
        blocks = _file_blocks(f, query, out_dtype)
    out = run_search(h, blocks, query, threads, memory_limit, progress)
    return _finish(query, *out)


def _file_chunks(f, query: _Query, out_dtype):
    """(first row, ChunkCodes (own copy), decoded rows) of each chunk holding a candidate
    row, read as _file_blocks reads them."""
    h = f.header
    want = set(query.chunks(h))
    codec = f.codec
    for i in (sorted(want) if f.seekable else range(h.n_chunks)):
        payload = f._reader.read_chunk(i)
        if i not in want:
            continue
        x = decode_chunk(codec, payload, h.chunk_rows_of(i), i, out_dtype)
        cc = h.payload_coding.chunk_codes(codec, payload, h.chunk_rows_of(i)).copy()
        yield i * h.chunk_rows, cc, x
    f._reader.finish_stream()


def _file_blocks(f, query: _Query, out_dtype):
    """(first row, decoded chunk) for each chunk holding a candidate row; a stream is
    read through to its end (its index and footer checked)."""
    h = f.header
    wanted = query.chunks(h)
    if f.seekable:
        runs = wanted
    else:
        runs = range(h.n_chunks)
    want = set(wanted)
    codec = None
    for i in runs:
        if i not in want:
            f._reader.read_chunk(i)
            continue
        payload = f._reader.read_chunk(i)
        codec = codec or f.codec
        yield i * h.chunk_rows, decode_chunk(codec, payload, h.chunk_rows_of(i), i,
                                             out_dtype)
    f._reader.finish_stream()


def decode_chunk(codec: Codec, payload, rows: int, i: int, out_dtype=None) -> np.ndarray:
    """Chunk i decoded as decompress gives it: the decoder's rows cast to out_dtype, the
    original dtype (float32 for a float32 source, whatever the scale dtype)."""
    from .. import arrayio
    from ..errors import FormatError

    try:
        block = codec.decode(payload, rows)
        return block if out_dtype is None else arrayio.saturating_cast(block, out_dtype)
    except FormatError as e:
        e.chunk, e.reason = i, f"chunk {i}: {e.reason}"
        raise
