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
