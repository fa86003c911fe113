"""Distortion and search-quality report of a quantised array against its source."""

from __future__ import annotations

import math

import numpy as np

from . import codebook


def split_queries(n: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out split of ../shared/data/README.md: permutation by default_rng(1)."""
    perm = np.random.default_rng(1).permutation(n)
    return perm[:queries], perm[queries:]


def theory(d: int, bits: int, mode: str) -> dict:
    """Expected normalised error for unit vectors: the Lloyd-Max optimum and 4^-b."""
    if mode == "mse":
        expected = codebook.expected_distortion(d, bits)
    else:
        # mse part of b-1 bits plus the 1-bit sketch: E||r - r_est||^2 ~ (pi/2) ||r||^2
        base = codebook.expected_distortion(d, bits - 1) if bits > 1 else 1.0
        expected = math.pi / 2 * base
    return {"optimum": expected, "lower_bound": 4.0 ** -bits}


def _topk(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return part


def search_metrics(x: np.ndarray, xh: np.ndarray, queries: int, block: int = 65536) -> dict:
    """Inner-product error and recall of exact search over decoded vectors (float64)."""
    n = x.shape[0]
    queries = min(queries, n // 2)
    if queries < 1:
        return {}
    qi, di = split_queries(n, queries)
    q = x[qi].astype(np.float64)
    k = min(10, len(di))
    best = np.full((queries, k), -np.inf)
    best_id = np.zeros((queries, k), np.int64)
    best_h = np.full((queries, k), -np.inf)
    best_h_id = np.zeros((queries, k), np.int64)
    s1 = s2 = 0.0
    count = 0
    for a in range(0, len(di), block):
        ids = di[a:a + block]
        exact = q @ x[ids].astype(np.float64).T
        approx = q @ xh[ids].astype(np.float64).T
        diff = approx - exact
        s1 += float(diff.sum())
        s2 += float((diff * diff).sum())
        count += diff.size
        for scores, top, top_id in ((exact, best, best_id), (approx, best_h, best_h_id)):
            allscores = np.concatenate([top, scores], axis=1)
            allids = np.concatenate([top_id, np.broadcast_to(ids, scores.shape)], axis=1)
            sel = _topk(allscores, k)
            top[:] = np.take_along_axis(allscores, sel, 1)
            top_id[:] = np.take_along_axis(allids, sel, 1)
    order = np.argsort(-best, axis=1, kind="stable")
    order_h = np.argsort(-best_h, axis=1, kind="stable")
    top1 = np.take_along_axis(best_id, order[:, :1], 1)[:, 0]
    top1_h = np.take_along_axis(best_h_id, order_h[:, :1], 1)[:, 0]
    overlap = [len(np.intersect1d(a, b)) for a, b in zip(best_id, best_h_id)]
    mean = s1 / count
    return {
        "queries": int(queries),
        "ip_bias": mean,
        "ip_rmse": math.sqrt(s2 / count),
        "ip_bias_stderr": math.sqrt(max(s2 / count - mean * mean, 0.0) / count),
        "recall_at_1": float(np.mean(top1 == top1_h)),
        "recall_10_at_10": float(np.mean(overlap)) / k,
    }


def distortion_metrics(x: np.ndarray, xh: np.ndarray) -> dict:
    x = x.astype(np.float64)
    xh = xh.astype(np.float64)
    nx = np.einsum("ij,ij->i", x, x)
    nz = nx > 0
    err = np.einsum("ij,ij->i", x - xh, x - xh)
    nh = np.einsum("ij,ij->i", xh, xh)
    dots = np.einsum("ij,ij->i", x, xh)
    ok = nz & (nh > 0)
    return {
        "nmse": float(np.mean(err[nz] / nx[nz])) if nz.any() else 0.0,
        "mean_cosine": float(np.mean(dots[ok] / np.sqrt(nx[ok] * nh[ok]))) if ok.any() else 1.0,
    }


def evaluate(x: np.ndarray, xh: np.ndarray, *, bits: int, mode: str, file_bytes: int,
             source_itemsize: int, queries: int = 1000) -> dict:
    n, d = x.shape
    report = {"bits": bits, "mode": mode, "vectors": int(n), "dim": int(d)}
    report.update(distortion_metrics(x, xh))
    report.update(theory(d, bits, mode))
    report["nmse_vs_optimum"] = report["nmse"] / report["optimum"]
    report.update(search_metrics(x, xh, queries))
    report["bytes"] = int(file_bytes)
    report["bytes_per_vector"] = file_bytes / n if n else 0.0
    report["ratio_vs_float32"] = 4 * n * d / file_bytes
    report["ratio_vs_original"] = source_itemsize * n * d / file_bytes
    return report
