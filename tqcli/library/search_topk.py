"""Exact top-k over blocks of float rows: the one implementation that `tq search`, the
search API and `tq eval`'s recall share.

Every score that decides a result is the CANONICAL score of a query q and a row x, both
widened to float64:

    ip      sum_t q_t x_t                       (numpy's pairwise sum over the last axis)
    cosine  ip / (||q|| ||x||)                  (0 when either norm is 0)
    l2      sum_t (q_t - x_t)^2                 (squared distance; smaller is better)

computed row by row with numpy's pairwise summation, so a row's score does not depend
on which other rows or queries are scored with it: the same pair gives the same bits in
any block, any batch and on any thread count.  Results are ordered by KEY, larger first
(ip and cosine: the score; l2: minus the score), ties broken by the smaller id.

Finding the candidates is cheaper: a block's keys are approximated with one BLAS product
(float64), whose error against the canonical key is bounded (approx_error); the best
`kk` rows by that approximation are re-scored canonically, and the result is kept only
when it is PROVEN: the k-th exact key among them must exceed every other row's
approximation plus its bound.  Otherwise every allowed row of the block is scored
canonically for that query.  So a block's answer is the exact top-k whatever the
approximation, and merging blocks in any order gives the same ids and scores.
"""

from __future__ import annotations

import numpy as np

METRICS = ("ip", "cosine", "l2")
EPS64 = 2.0 ** -53
MARGIN = 8  # extra candidates per block beyond k, re-scored canonically
ROW_ELEMENTS = 1 << 21  # float64 products held at once when every row is scored (16 MiB)


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    return metric


def row_norms(x: np.ndarray) -> np.ndarray:
    """||x_j|| in float64, canonically (pairwise sums of the squares)."""
    x = np.asarray(x, np.float64)
    return np.sqrt((x * x).sum(axis=-1))


def canonical_keys(q: np.ndarray, x: np.ndarray, metric: str, qn=None, xn=None) -> np.ndarray:
    """Keys of queries q (..., d) against rows x (..., d), float64, broadcast over the
    leading axes (e.g. q (m, 1, d) and x (m, kk, d)); qn and xn the norms for cosine."""
    q = np.asarray(q, np.float64)
    x = np.asarray(x, np.float64)
    if metric == "l2":
        diff = x - q
        return -(diff * diff).sum(axis=-1)
    ip = (x * q).sum(axis=-1)
    if metric == "cosine":
        den = (row_norms(q) if qn is None else qn) * (row_norms(x) if xn is None else xn)
        return np.where(den > 0, ip / np.where(den > 0, den, 1.0), 0.0)
    return ip


def scores_of_keys(keys: np.ndarray, metric: str) -> np.ndarray:
    """What a user reads: the score itself (l2: the squared distance, not its negation)."""
    return -keys if metric == "l2" else keys


def sort_hits(ids: np.ndarray, keys: np.ndarray, k: int):
    """Per row of (m, c) ids and keys: the k best, larger key first, ties by smaller id;
    missing entries carry id -1 and key -inf and sort last."""
    m, c = ids.shape
    k = min(k, c)
    # lexsort: last key is primary: -keys ascending, then ids ascending, missing (-1) last
    missing = ids < 0
    order = np.lexsort((np.where(missing, np.iinfo(np.int64).max, ids), -keys), axis=1)
    order = order[:, :k]
    return np.take_along_axis(ids, order, 1), np.take_along_axis(keys, order, 1)


class TopK:
    """The running exact top-k of m queries over blocks of rows (deterministic merge)."""

    def __init__(self, m: int, k: int):
        self.k = k
        self.ids = np.full((m, 0), -1, np.int64)
        self.keys = np.full((m, 0), -np.inf)

    def merge(self, ids: np.ndarray, keys: np.ndarray, rows=None) -> None:
        """Add candidates (q, c) for the queries `rows` (default all)."""
        sel = slice(None) if rows is None else rows
        if rows is not None and self.ids.shape[1] < self.k:
            # widen once so that a subset can be merged in place
            pad = self.k - self.ids.shape[1]
            self.ids = np.concatenate([self.ids, np.full((self.ids.shape[0], pad), -1,
                                                         np.int64)], 1)
            self.keys = np.concatenate([self.keys, np.full((self.keys.shape[0], pad),
                                                           -np.inf)], 1)
        all_ids = np.concatenate([self.ids[sel], ids], 1)
        all_keys = np.concatenate([self.keys[sel], keys], 1)
        new_ids, new_keys = sort_hits(all_ids, all_keys, self.k)
        if rows is None:
            self.ids, self.keys = new_ids, new_keys
        else:
            if new_ids.shape[1] < self.k:
                pad = self.k - new_ids.shape[1]
                new_ids = np.concatenate([new_ids, np.full((len(new_ids), pad), -1,
                                                           np.int64)], 1)
                new_keys = np.concatenate([new_keys, np.full((len(new_keys), pad),
                                                             -np.inf)], 1)
            self.ids[sel], self.keys[sel] = new_ids, new_keys

    def result(self, count: int | None = None):
        """(ids, keys) with min(k, count) columns (count: the rows that could be hits)."""
        k = self.k if count is None else min(self.k, count)
        ids, keys = self.ids, self.keys
        if ids.shape[1] < k:
            pad = k - ids.shape[1]
            ids = np.concatenate([ids, np.full((len(ids), pad), -1, np.int64)], 1)
            keys = np.concatenate([keys, np.full((len(keys), pad), -np.inf)], 1)
        return ids[:, :k], keys[:, :k]


def approx_error(qn: np.ndarray, xmax: float, d: int, metric: str) -> np.ndarray:
    """A bound on |BLAS key - canonical key| per query: two float64 dot products of d
    terms each err by at most ~d eps sum|q_t x_t| <= d eps ||q|| ||x|| (Higham's gamma_d,
    with a factor 4 to spare); for cosine the norms are the same numbers on both sides,
    for l2 the expansion ||x||^2 - 2 q.x + ||q||^2 adds its own cancellation."""
    g = 4.0 * (d + 4) * EPS64
    if metric == "ip":
        return g * qn * xmax
    if metric == "cosine":
        return g * np.ones_like(qn)
    return 4.0 * g * (qn + xmax) ** 2


def block_topk(q: np.ndarray, x: np.ndarray, k: int, first: int = 0, allow=None,
               metric: str = "ip", qn=None, margin: int = MARGIN):
    """The exact top-k (ids, keys) of queries q (m, d) float64 among the rows of x (rows,
    d), with ids first + row; `allow` a boolean mask of rows that may be hits (None:
    all).  The candidates come from one BLAS product, are re-scored canonically and
    proven (module docstring); an unproven query is scored canonically on every row."""
    m, rows = q.shape[0], x.shape[0]
    x64 = np.asarray(x, np.float64)
    if qn is None:
        qn = row_norms(q)
    allowed = rows if allow is None else int(np.count_nonzero(allow))
    if allowed == 0 or m == 0:
        return np.full((m, 0), -1, np.int64), np.full((m, 0), -np.inf)
    xn = row_norms(x64)
    approx = q @ x64.T
    if metric == "cosine":
        approx = np.where(xn > 0, approx / np.where(xn > 0, xn, 1.0), 0.0)
        approx /= np.where(qn > 0, qn, 1.0)[:, None]
    elif metric == "l2":
        approx = 2.0 * approx - (xn * xn)[None, :] - (qn * qn)[:, None]
    if allow is not None:
        approx[:, ~allow] = -np.inf
    kk = min(k + margin, allowed)
    if kk < allowed:
        part = np.argpartition(-approx, kk, axis=1)
        cand = part[:, :kk]
        rest = np.take_along_axis(approx, part[:, kk:kk + 1], 1)[:, 0]
        xmax = float(xn[allow].max() if allow is not None else xn.max())
        err = approx_error(qn, xmax, x.shape[1], metric)
        threshold = rest + 2.0 * err
    else:
        cand = np.argsort(-approx, axis=1, kind="stable")[:, :kk]
        threshold = np.full(m, -np.inf)
    keys = canonical_keys(q[:, None, :], x64[cand], metric, qn[:, None], xn[cand])
    ids, keys = sort_hits(cand.astype(np.int64), keys, k)
    bad = np.flatnonzero(~(keys[:, -1] > threshold))
    if bad.size:
        ids[bad], keys[bad] = _all_rows(q[bad], x64, xn, qn[bad], allow, k, metric)
    return ids + first, keys


def _all_rows(q, x64, xn, qn, allow, k, metric):
    """Every allowed row scored canonically for queries q (the unproven ones)."""
    top = TopK(q.shape[0], k)
    idx = np.arange(x64.shape[0]) if allow is None else np.flatnonzero(allow)
    step = max(1, ROW_ELEMENTS // (q.shape[0] * x64.shape[1]))
    for a in range(0, idx.size, step):
        rows = idx[a:a + step]
        keys = canonical_keys(q[:, None, :], x64[rows][None, :, :], metric, qn[:, None],
                              xn[rows][None, :])
        top.merge(np.broadcast_to(rows.astype(np.int64), keys.shape).copy(), keys)
    return top.result(idx.size)
