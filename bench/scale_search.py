"""Does searching a few scales of the rotated vector lower the error for the same bytes?

Issue 11, item 4.  With the `ls` scale rule a vector's reconstruction is lambda * R^T c[idx],
lambda the least-squares scale, so its normalised error is

    err = 1 - A^2 / (B * |y|^2),   A = <y, c[idx]>,  B = |c[idx]|^2

for the rotated unit direction y.  Today's encoder takes idx = quantize(y).  Any other
code vector is as valid for the decoder; the candidates here are idx_j = quantize(alpha_j * y)
for a few scales alpha_j, keeping the one with the largest A^2 / B.  Designs measured:

    grid m,delta   alpha_j = 1 + j * delta, j = -m..m (2m + 1 candidates, today's included)
    up m,delta     alpha_j = 1 + j * delta, j = 0..m (only larger scales)
    lloyd k        k rounds of alpha <- alpha * B / A (re-quantise at the scale the least
                   squares fit asked for), keeping the best seen
    exact          the best alpha over all of (0, inf): a sweep over every breakpoint
                   theta_j / |y_i| (the bound no candidate set can beat)

The y come from tq itself (its unit directions, its default rotation); the errors are
computed in float64 from y, which equals the decoded error up to float32 rounding.
Run:  PYTHONPATH=$PWD python bench/scale_search.py [--rows N]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tqcli.codec import codebook, reference  # noqa: E402
from tqcli.codec.state import Codec
from tqcli.format.header import make_header  # noqa: E402
from tqcli.kernels import rotate_rows  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def rotated(x: np.ndarray, bits: int):
    """tq's rotated unit directions of x, with the float64 thresholds and centroids."""
    codec = Codec(make_header(x.shape[1], bits))
    u, _ = reference.unit_directions(x)
    y = np.ascontiguousarray(u, dtype=np.float32)
    rotate_rows(y, codec.plan, False)
    cents = codec.centroids.astype(np.float64)
    return y.astype(np.float64), codebook.boundaries(codec.centroids), cents


def fit(y, idx, cents):
    """(A, B) of every row for codes idx."""
    c = cents[idx]
    return (y * c).sum(1), (c * c).sum(1)


def error(y, a, b):
    return 1.0 - a * a / (b * (y * y).sum(1))


def search(y, bounds, cents, alphas):
    """Best A^2/B over quantize(alpha * y) for the given alphas (today's encoder first)."""
    best_a, best_b = fit(y, np.searchsorted(bounds, y, side="left"), cents)
    for alpha in alphas:
        a, b = fit(y, np.searchsorted(bounds, alpha * y, side="left"), cents)
        better = a * a * best_b > best_a * best_a * b
        best_a = np.where(better, a, best_a)
        best_b = np.where(better, b, best_b)
    return best_a, best_b


def lloyd(y, bounds, cents, rounds):
    a0, b0 = fit(y, np.searchsorted(bounds, y, side="left"), cents)
    best_a, best_b = a0, b0
    alpha = np.ones(y.shape[0])
    a, b = a0, b0
    for _ in range(rounds):
        alpha = alpha * b / a
        a, b = fit(y, np.searchsorted(bounds, alpha[:, None] * y, side="left"), cents)
        better = a * a * best_b > best_a * best_a * b
        best_a = np.where(better, a, best_a)
        best_b = np.where(better, b, best_b)
    return best_a, best_b


def exact(y, bounds, cents, batch=512):
    """max over alpha > 0 of A^2/B: sort every breakpoint of every coordinate (the
    codebook is symmetric, so |y| and the positive half suffice)."""
    k = cents.size
    pos_c = cents[k // 2:]                    # centroid magnitudes, innermost first
    pos_t = bounds[k // 2:]                   # positive thresholds (the 0 one excluded)
    da = np.diff(pos_c)
    db = np.diff(pos_c * pos_c)
    out_a, out_b = [], []
    for s in range(0, y.shape[0], batch):
        m = np.abs(y[s:s + batch])
        n, d = m.shape
        with np.errstate(divide="ignore"):
            brk = pos_t[None, None, :] / m[:, :, None]          # (n, d, P)
        inc_a = (m[:, :, None] * da[None, None, :]).reshape(n, -1)
        inc_b = np.broadcast_to(db, (n, d, da.size)).reshape(n, -1)
        order = np.argsort(brk.reshape(n, -1), axis=1, kind="stable")
        a = m.sum(1)[:, None] * pos_c[0] + np.cumsum(np.take_along_axis(inc_a, order, 1), 1)
        b = d * pos_c[0] ** 2 + np.cumsum(np.take_along_axis(inc_b, order, 1), 1)
        a = np.concatenate([(m.sum(1) * pos_c[0])[:, None], a], 1)
        b = np.concatenate([np.full((n, 1), d * pos_c[0] ** 2), b], 1)
        j = np.argmax(a * a / b, axis=1)
        out_a.append(a[np.arange(n), j])
        out_b.append(b[np.arange(n), j])
    return np.concatenate(out_a), np.concatenate(out_b)


def designs():
    out = []
    for m, delta in ((1, 0.02), (1, 0.04), (1, 0.06), (2, 0.02), (2, 0.03), (2, 0.05),
                     (3, 0.02), (4, 0.015), (8, 0.01)):
        alphas = [1 + j * delta for j in range(-m, m + 1) if j != 0]
        out.append((f"grid {m},{delta}", 2 * m + 1, alphas))
    for m, delta in ((1, 0.03), (2, 0.03), (4, 0.02)):
        out.append((f"up {m},{delta}", m + 1, [1 + j * delta for j in range(1, m + 1)]))
    return out


def inputs(rows: int):
    rng = np.random.default_rng(0)
    yield "gauss d=384", rng.standard_normal((rows, 384)).astype(np.float32)
    yield "gauss d=768", rng.standard_normal((rows, 768)).astype(np.float32)
    path = os.path.join(DATA, "minilm_sentences.npy")
    if os.path.exists(path):
        yield "minilm d=384", np.load(path)[:rows]
    path = os.path.join(DATA, "minilm_kv.npy")
    if os.path.exists(path):
        kv = np.load(path).reshape(-1, 32)
        yield "kv d=32", kv[np.random.default_rng(1).permutation(kv.shape[0])[:rows * 4]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--bits", default="2,3,4")
    args = ap.parse_args()
    bits_list = [int(b) for b in args.bits.split(",")]
    for name, x in inputs(args.rows):
        print(f"\n== {name} ({x.shape[0]} rows): mean error, and change vs today's encoder")
        print(f"{'design':<16}{'cands':>6}" + "".join(f"{f'b={b}':>22}" for b in bits_list))
        rows = {}
        for bits in bits_list:
            y, bounds, cents = rotated(x, bits)
            base = error(y, *fit(y, np.searchsorted(bounds, y, side="left"), cents)).mean()
            rows.setdefault(("today", 1), []).append((base, base))
            for label, count, alphas in designs():
                rows.setdefault((label, count), []).append(
                    (error(y, *search(y, bounds, cents, alphas)).mean(), base))
            for k in (1, 2, 3):
                rows.setdefault((f"lloyd {k}", k + 1), []).append(
                    (error(y, *lloyd(y, bounds, cents, k)).mean(), base))
            rows.setdefault(("exact", 0), []).append((error(y, *exact(y, bounds, cents)).mean(), base))
        for (label, count), vals in rows.items():
            cells = "".join(f"{e:>12.6f} {100 * (e / b - 1):>+8.2f}%" for e, b in vals)
            print(f"{label:<16}{count if count else '-':>6}{cells}")


if __name__ == "__main__":
    main()
