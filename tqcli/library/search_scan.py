"""Candidates from the codes themselves (tqcli.kernels.scan), proven, then scored exactly.

For an mse file of the packed coding (bits 1..8) whose only fitted stage is a centre c,
a decoded row is x_j = c + s_j R^T c[idx_j] up to float32 rounding (codec/codes.py), so
with y = R (q - c) (blocks.query_transform)

    <q, x_j> = s_j <y, c[idx_j]> + <c, x_j - c> + <q, c>

and each metric's key (search_topk) is scale_j * <y, c[idx_j]> + qconst_i * vweight_j +
vbias_j plus a per-query constant:

    ip      scale s_j        vweight 1        vbias <c, x_j - c>                + 0
    cosine  s_j / |x_j|      1 / |x_j|        <c, x_j - c> / |x_j|              / |q| after
    l2      2 s_j            2                2 <c, x_j - c> - |x_j|^2          - |q|^2

(|x_j| and <c, x_j - c> from the decoded rows, once, when the index is built, and kept
as float32: 4 or 8 bytes per row beside the codes and the scale).  The scan
returns each query's kk best rows by that approximation; the kernel's proven table bound
b_i gives |approx - key| <= |scale_j| b_i + E_i for every row, where E_i covers the
float32 roundings of the query's rotation and of the decoded rows (a relative 2^-12 of
the magnitudes involved: a thousand times the largest rounding seen, stated in the README).
The candidates are decoded (only those rows) and scored canonically; a query whose k-th
exact key does not exceed the kk-th approximation plus that bound is scanned again with
16 kk (at most MAX_DEPTH), and past that or a quarter of the rows, scored on every decoded
row (search.run_search).  A deeper pass decodes only the candidates whose approximation
plus the bound reaches the k-th exact key of the pass before (_narrow): the others are
strictly worse than k rows already found, so the deep pass costs a scan, not a decode of
every candidate.  (On random unit vectors at d = 768, b = 4, 200k rows, the bound is
about a score deviation and the proof needs ~700 candidates: two passes, not three.)
"""

from __future__ import annotations

import numpy as np

from ..codec import reference
from ..codec.codes import ChunkCodes
from ..codec.stages import STAGES
from . import search_topk as st
from .blocks import decode_block, query_transform

REL = 2.0 ** -12
MAX_DEPTH = 4096  # candidates per query past which an unproven query is scored on every row
GROWTH = 16  # an unproven query's next pass looks this many times deeper (up to MAX_DEPTH)
EXACT_ELEMENTS = 1 << 22  # decoded candidate values held at once (float64: 32 MiB)
UNLAYOUT_ROWS = 1 << 22  # codes of candidate rows gathered at once


def scannable(header) -> bool:
    """Whether the scan applies: mse, the packed coding, at most a centre as stage."""
    stages = {s.name for s, _ in STAGES.present(header)}
    return (header.mode == "mse" and header.payload_coding.name == "packed"
            and 1 <= header.bits <= 8 and stages <= {"center"})


def unpack_rows(cc: ChunkCodes) -> np.ndarray:
    """The (rows, dim) codebook indices of packed codes: by shifts and masks when codes
    do not straddle bytes (1, 2, 4, 8 bits; ~20x numpy's bit planes), else by bit planes."""
    bits, count = cc.bits, cc.rows * cc.dim
    if bits in (1, 2, 4, 8):
        per = 8 // bits
        buf = np.asarray(cc.codes, np.uint8)[: -(-count // per)]
        out = np.empty((buf.size, per), np.uint8)
        mask = np.uint8((1 << bits) - 1)
        for j in range(per):
            np.bitwise_and(np.right_shift(buf, np.uint8(j * bits)), mask, out=out[:, j])
        return out.reshape(-1)[:count].reshape(cc.rows, cc.dim)
    return cc.indices()


def pack_rows(idx: np.ndarray, bits: int) -> np.ndarray:
    """The LSB-first bit stream of indices idx (spec section 6), by shifts and ors for 1,
    2, 4, 8 bits (codec.reference.pack, its bit-plane twin, otherwise)."""
    if bits not in (1, 2, 4, 8):
        return reference.pack(idx, bits)
    per = 8 // bits
    flat = np.ascontiguousarray(idx, np.uint8).reshape(-1)
    pad = (-flat.size) % per
    if pad:
        flat = np.concatenate([flat, np.zeros(pad, np.uint8)])
    g = flat.reshape(-1, per)
    out = g[:, 0].copy()
    for j in range(1, per):
        out |= np.left_shift(g[:, j], np.uint8(j * bits))
    return out


class ScanData:
    """What the scan needs of every row, built once from the chunks' codes and their
    decoded rows: the codes in the scan's layout, the scales, |x_j|, <c, x_j - c>."""

    def __init__(self, codec, chunks, keep_decoded: bool = False):
        """chunks: (ChunkCodes, decoded rows as decompress gives them) per chunk;
        keep_decoded (one streamed chunk): keep its decoded rows for the candidates."""
        from ..kernels import scan

        h = codec.header
        self.codec, self.dim, self.bits = codec, h.dim, h.bits
        self.centre = -np.asarray(codec.to_format(np.zeros((1, h.dim))), np.float64)[0]
        parts, scales, norms, cdot = [], [], [], []
        self.scale_dtype = np.dtype(np.float32)
        # chunks of whole blocks go straight into one array: no second copy of the codes
        whole = h.chunk_rows % scan.BLOCK == 0 and not keep_decoded
        data, filled = None, 0
        for cc, x in chunks:
            self.scale_dtype = cc.scales.dtype
            laid = scan.layout_indices(unpack_rows(cc), h.bits)
            if whole:
                if data is None:
                    data = np.empty((-(-h.n_vectors // scan.BLOCK), laid.data.shape[1]),
                                    np.uint8)
                data[filled:filled + laid.nblocks] = laid.data
                filled += laid.nblocks
            else:
                parts.append(laid)
            scales.append(np.asarray(cc.scales))
            x64 = np.asarray(x, np.float64)
            norms.append(st.row_norms(x64))
            cdot.append((x64 - self.centre) @ self.centre if h.centered else
                        np.zeros(cc.rows))
        self.decoded = x if keep_decoded and len(parts) == 1 else None
        if whole and data is not None:
            data.setflags(write=False)
            self.codes = scan.ScanCodes(data[:filled], h.n_vectors, h.dim, h.bits)
        else:
            self.codes = scan.concat_codes(parts)
        self.scales = np.concatenate(scales).astype(self.scale_dtype)
        # approximations only (float32): the exact keys come from the decoded candidates,
        # and REL covers their rounding
        self.norms = np.concatenate(norms).astype(np.float32)
        self.cdot = np.concatenate(cdot).astype(np.float32) if h.centered else None
        self.spread = float(np.max(st.row_norms(self.centre) + self.norms) * (1 + 2 ** -20)
                            if self.norms.size else 0.0)

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.scales.nbytes + self.norms.nbytes + (
            0 if self.cdot is None else self.cdot.nbytes)

    def terms(self, metric: str):
        """(scale, vweight, vbias, row weight bound) of the metric (module docstring)."""
        s, nx = self.scales.astype(np.float64), self.norms.astype(np.float64)
        cd = np.zeros_like(s) if self.cdot is None else self.cdot.astype(np.float64)
        if metric == "ip":
            return s, np.ones_like(s), cd, 1.0
        if metric == "l2":
            return 2 * s, np.full_like(s, 2.0), 2 * cd - nx * nx, 2.0
        inv = np.where(nx > 0, 1.0 / np.where(nx > 0, nx, 1.0), 0.0)
        return s * inv, inv, cd * inv, float(inv.max()) if inv.size else 0.0

    def decode_rows(self, rows: np.ndarray, out_dtype) -> np.ndarray:
        """The decoded rows `rows` (sorted unique), as the decoder gives them: their codes
        repacked into a block of their own (a row's decode does not depend on the others)."""
        from .. import arrayio

        if self.decoded is not None:
            return self.decoded[rows]
        idx = np.empty((rows.size, self.dim), np.uint8)
        step = max(1, UNLAYOUT_ROWS // self.dim)  # rows gathered at once
        for a in range(0, rows.size, step):  # only these rows' bytes are read
            idx[a:a + step] = self.codes.row_indices(rows[a:a + step])
        cc = ChunkCodes("packed", rows.size, self.dim, self.bits,
                        pack_rows(idx, self.bits),
                        self.scales[rows])
        return arrayio.saturating_cast(decode_block(cc, self.codec), out_dtype)


def prepare(q: np.ndarray, codec):
    """The scan's tables of queries q (float64, (m, d)): once per search."""
    from ..kernels import scan

    return scan.prepare_queries(query_transform(q, codec), codec.centroids)


def scan_search(data: ScanData, query, out_dtype, threads: int = 1, tables=None):
    """(ids, keys) of the exact top query.depth for every query, or for the queries the
    scan could not prove: their positions in `left` (to be scored on decoded rows).
    Returns ids, keys, left.  tables: prepare(query.q, codec), if made already."""
    from ..kernels import scan

    q, metric, depth = query.q, query.metric, query.depth
    m, n = q.shape[0], data.codes.rows
    if m == 0:
        width = min(depth, query.count)
        return np.zeros((0, width), np.int64), np.zeros((0, width)), np.zeros(0, np.int64)
    allow = _allow(query, n)
    count = query.count
    scale, vweight, vbias, wmax = data.terms(metric)
    if tables is None:
        tables = prepare(q, data.codec)
    qc = q @ data.centre
    qn = st.row_norms(q)
    qd = st.row_norms(q - data.centre)
    smax = float(np.abs(scale).max()) if scale.size else 0.0
    err = smax * tables.bound + REL * wmax * (qd + qn) * data.spread \
        + REL * (np.abs(qc) * wmax + float(np.abs(vbias).max() if vbias.size else 0.0))
    if metric == "l2":
        err = err + REL * (qn + data.spread) ** 2
    ids_out = np.full((m, min(depth, count)), -1, np.int64)
    keys_out = np.full((m, min(depth, count)), -np.inf)
    todo = np.arange(m)
    floor = np.full(m, -np.inf)  # a proven lower bound of each query's depth-th key
    kk = min(count, max(2 * depth, depth + 32))
    left = []
    while todo.size:
        sub = scan.QueryTables(tables.tables[todo], tables.delta[todo], tables.offset[todo],
                               tables.bound[todo], tables.bits, tables.dim)
        cand, approx = _scan(data, sub, kk, scale, qc[todo], vweight, vbias, allow, threads)
        bound = err[todo]
        if metric == "cosine":
            qd1 = np.where(qn[todo] > 0, qn[todo], 1.0)
            approx, bound = approx / qd1[:, None], bound / qd1
        elif metric == "l2":
            approx = approx - (qn[todo] ** 2)[:, None]
        last = approx[:, -1] if kk < count else np.full(todo.size, -np.inf)
        cand = _narrow(cand, approx, bound, floor, depth)
        keys = _exact(data, q[todo], cand, metric, out_dtype)
        ids, keys = st.sort_hits(cand, keys, depth)
        proven = keys[:, -1] > last + bound if kk < count else np.ones(todo.size, bool)
        done = todo[proven]
        ids_out[done], keys_out[done] = ids[proven], keys[proven]
        todo, floor = todo[~proven], keys[~proven, -1]
        if kk >= count:
            break
        kk = min(count, GROWTH * kk, max(MAX_DEPTH, kk + 1))
        if (kk > count // 4 or kk > MAX_DEPTH) and todo.size:
            left = todo
            break
    return ids_out, keys_out, np.asarray(left, np.int64)


class LocalQuery:
    """A search's query restricted to one chunk's rows [first, first + rows), ids local."""

    def __init__(self, query, first: int, rows: int):
        self.q, self.metric, self.depth = query.q, query.metric, query.depth
        a, b = max(query.rows[0] - first, 0), min(query.rows[1] - first, rows)
        self.rows = (a, max(a, b))
        if query.allowed is None:
            self.allowed = None
            self.count = self.rows[1] - self.rows[0]
        else:
            lo, hi = np.searchsorted(query.allowed, [first, first + rows])
            self.allowed = query.allowed[lo:hi] - first
            self.count = int(self.allowed.size)


def chunk_search(query, first: int, cc: ChunkCodes, x: np.ndarray, codec, tables,
                 out_dtype):
    """The exact top query.depth of one streamed chunk (codes cc, decoded rows x): the
    scan's candidates, proven, and for unproven queries every row (block_topk); global
    ids."""
    local = LocalQuery(query, first, cc.rows)
    m = query.q.shape[0]
    if local.count == 0:
        return np.full((m, 0), -1, np.int64), np.full((m, 0), -np.inf)
    data = ScanData(codec, [(cc, x)], keep_decoded=True)
    ids, keys, left = scan_search(data, local, out_dtype, 1, tables)
    if left.size:
        mask = _allow(local, cc.rows)
        ids[left], keys[left] = st.block_topk(query.q[left], x, query.depth, 0, mask,
                                              query.metric)
    return np.where(ids >= 0, ids + first, -1), keys


def _allow(query, n: int):
    if query.allowed is not None:
        mask = np.zeros(n, bool)
        mask[query.allowed] = True
        return mask
    if query.rows == (0, n):
        return None
    mask = np.zeros(n, bool)
    mask[query.rows[0]:query.rows[1]] = True
    return mask


def _scan(data: ScanData, tables, kk, scale, qconst, vweight, vbias, allow, threads):
    """scan_topk over the rows, in `threads` ranges of whole blocks run at once (the
    kernel releases the GIL), merged by approximation then id."""
    from concurrent.futures import ThreadPoolExecutor

    from ..kernels import scan

    codes = data.codes
    nb = codes.nblocks
    parts = max(1, min(threads, nb))
    cuts = [nb * i // parts for i in range(parts + 1)]

    def one(i):
        b0, b1 = cuts[i], cuts[i + 1]
        r0, r1 = b0 * scan.BLOCK, min(codes.rows, b1 * scan.BLOCK)
        sl = slice(r0, r1)
        return scan.scan_topk(codes.blocks(b0, b1), tables, kk, scale=scale[sl],
                              qconst=qconst, vweight=vweight[sl], vbias=vbias[sl],
                              allow=None if allow is None else allow[sl], row_offset=r0)

    if parts == 1:
        return one(0)
    with ThreadPoolExecutor(parts) as pool:
        res = list(pool.map(one, range(parts)))
    ids = np.concatenate([r[0] for r in res], 1)
    approx = np.concatenate([r[1] for r in res], 1)
    order = np.lexsort((np.where(ids < 0, np.iinfo(np.int64).max, ids), -approx), axis=1)
    order = order[:, :kk]
    return np.take_along_axis(ids, order, 1), np.take_along_axis(approx, order, 1)


def _narrow(cand, approx, bound, floor, depth):
    """The candidates that can still be among the best `depth`: a row whose approximation
    plus its bound is below `floor` (the depth-th exact key of an earlier, shallower pass:
    depth rows at least that good are among these candidates again), or below the
    depth-th largest approximation minus its bound, is strictly worse than depth rows
    kept.  The others left-packed in scan order, -1 after them, at least min(depth,
    candidates) columns."""
    valid = cand >= 0
    if cand.shape[1] >= depth:  # depth candidates have a key >= approx - bound >= this
        low = np.where(valid, approx - bound[:, None], -np.inf)
        floor = np.maximum(floor, -np.partition(-low, depth - 1, axis=1)[:, depth - 1])
    keep = valid & (approx + bound[:, None] >= floor[:, None])
    width = max(int(keep.sum(axis=1).max()) if keep.size else 0,
                min(depth, cand.shape[1]))
    order = np.argsort(~keep, axis=1, kind="stable")
    return np.take_along_axis(np.where(keep, cand, -1), order, 1)[:, :width]


def _exact(data: ScanData, q, cand, metric, out_dtype):
    """Canonical keys of each query's candidates (-1: none, key -inf) from their decoded
    rows."""
    valid = cand >= 0
    keys = np.full(cand.shape, -np.inf)
    step = max(1, EXACT_ELEMENTS // max(1, cand.shape[1] * data.dim))
    for a in range(0, cand.shape[0], step):  # a batch of queries: their rows, decoded once
        c, ok = cand[a:a + step], valid[a:a + step]
        rows = np.unique(c[ok])
        if rows.size == 0:
            continue
        x = data.decode_rows(rows, out_dtype).astype(np.float64)
        g = x[np.searchsorted(rows, np.where(ok, c, rows[0]))]
        keys[a:a + step] = np.where(ok, st.canonical_keys(q[a:a + step, None, :], g, metric),
                                    -np.inf)
    return keys
