"""Plain-numpy twins of the scan kernels (tests compare them bit for bit).

They work from the codebook indices (rows, dim), not from the scan's layout, so a test of
the kernels against them checks the layout as well.  They materialise (m, rows) matrices:
for tests and small inputs only.
"""

from __future__ import annotations

import numpy as np

from .scan import _CPN, QueryTables, ScanCodes, positions_of


def position_values(idx: np.ndarray, bits: int) -> np.ndarray:
    """(rows, positions) the value each position of each row looks up (module scan)."""
    rows, dim = idx.shape
    npos = positions_of(bits, dim)
    if bits > 4:
        return idx.astype(np.int64)
    cpn = _CPN[bits]
    full = np.zeros((rows, npos * cpn), np.int64)
    full[:, :dim] = idx
    full = full.reshape(rows, npos, cpn)
    return sum(full[:, :, u] << (u * bits) for u in range(cpn))


def scan_sums_reference(idx, tables: QueryTables) -> np.ndarray:
    """S[i, j] = sum_g tables[i, g, value of position g of row j], (m, rows) uint32."""
    idx = idx.indices() if isinstance(idx, ScanCodes) else np.asarray(idx)
    vals = position_values(idx, tables.bits)
    m = tables.m
    out = np.zeros((m, idx.shape[0]), np.uint32)
    g = np.arange(vals.shape[1])
    for i in range(m):
        out[i] = tables.tables[i][g[None, :], vals].astype(np.uint32).sum(axis=1)
    return out


def scan_scores_reference(idx, tables: QueryTables, *, scale, qconst=None, vweight=None,
                          vbias=None) -> np.ndarray:
    """approx (m, rows) float64 in the kernels' order of operations (scan_portable)."""
    s = scan_sums_reference(idx, tables).astype(np.float64)
    a = tables.delta[:, None] * s
    a = a + tables.offset[:, None]
    out = np.asarray(scale, np.float64)[None, :] * a
    if qconst is not None:
        out = out + np.asarray(qconst, np.float64)[:, None] * np.asarray(vweight, np.float64)[None, :]
    if vbias is not None:
        out = out + np.asarray(vbias, np.float64)[None, :]
    return out


def scan_topk_reference(idx, tables: QueryTables, kk: int, *, scale, qconst=None,
                        vweight=None, vbias=None, allow=None, row_offset: int = 0):
    """scan_topk by a full sort of scan_scores_reference (NaN scores never chosen)."""
    approx = scan_scores_reference(idx, tables, scale=scale, qconst=qconst, vweight=vweight,
                                   vbias=vbias)
    m, n = approx.shape
    ids = np.full((m, kk), -1, np.int64)
    out = np.full((m, kk), -np.inf)
    keep = np.ones(n, bool) if allow is None else np.asarray(allow, bool)
    rows = np.arange(n)
    for i in range(m):
        ok = keep & ~np.isnan(approx[i])
        r, s = rows[ok], approx[i][ok]
        order = np.lexsort((r, -s))[:kk]
        ids[i, :order.size] = r[order] + row_offset
        out[i, :order.size] = s[order]
    return ids, out


def exact_unscaled(idx, y, centroids) -> np.ndarray:
    """sum_t y[i, t] c[idx[j, t]] in float64 (the right side the bound is for)."""
    c = np.asarray(centroids, np.float32).astype(np.float64)
    return np.asarray(y, np.float32).astype(np.float64) @ c[np.asarray(idx)].T


def exact_tables(y: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """E (m, positions, entries) float64: each position's exact table (module scan)."""
    c = np.asarray(centroids, np.float32).astype(np.float64)
    bits = int(c.size).bit_length() - 1
    y = np.asarray(y, np.float32).astype(np.float64)
    m, dim = y.shape
    npos = positions_of(bits, dim)
    if bits > 4:
        return y[:, :, None] * c[None, None, :]
    cpn = _CPN[bits]
    yy = np.zeros((m, npos * cpn))
    yy[:, :dim] = y
    yy = yy.reshape(m, npos, cpn)
    k = np.arange(16)
    mask = (1 << bits) - 1
    e = yy[:, :, 0, None] * c[k & mask][None, None, :]
    for u in range(1, cpn):
        e = e + yy[:, :, u, None] * c[(k >> (u * bits)) & mask][None, None, :]
    return e


def prepare_queries_reference(y: np.ndarray, centroids: np.ndarray) -> QueryTables:
    """The numpy twin of scan.prepare_queries (scan_portable.tables_kernel)."""
    y = np.atleast_2d(np.asarray(y, np.float32))
    e = exact_tables(y, centroids)
    m, npos, _ = e.shape
    bits = int(np.asarray(centroids).size).bit_length() - 1
    lo = e.min(axis=2)
    span = (e.max(axis=2) - lo).max(axis=1)
    delta = np.where(span > 0, span / 255.0, 1.0)
    q = np.clip(np.rint((e - lo[:, :, None]) / delta[:, None, None]), 0.0, 255.0)
    err = delta[:, None, None] * q + lo[:, :, None] - e
    eplus, eminus = err.max(axis=2), (-err).max(axis=2)
    eplus, eminus = np.maximum(eplus, 0.0), np.maximum(eminus, 0.0)
    emax = np.abs(e).max(axis=2)
    over, under, big_e, big_lo = (np.zeros(m) for _ in range(4))
    s, comp = np.zeros(m), np.zeros(m)
    for g in range(npos):  # in position order, as the kernel
        over = over + eplus[:, g]
        under = under + eminus[:, g]
        big_e = big_e + emax[:, g]
        big_lo = big_lo + np.abs(lo[:, g])
        x = lo[:, g]
        t = s + x
        comp = comp + np.where(np.abs(s) >= np.abs(x), (s - t) + x, (x - t) + s)
        s = t
    dm = np.where(span > 0, delta, 0.0)
    worst = np.maximum(over, under)
    margin = (8.0 * big_e + 4.0 * big_lo + 4.0 * 255.0 * float(npos) * dm
              + float(npos + 2) * worst) * 2.0 ** -50
    return QueryTables(q.astype(np.uint8), delta, s + comp, worst + margin, bits, y.shape[1])
