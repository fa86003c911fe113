#!/usr/bin/env python3
"""The entropy coding's acceptance figures: error and recall@1 at the bytes of the
fixed-length coding, and the file size of fractional rates.

    python bench/entropy_quality.py [--data ../shared/data/minilm_sentences.npy]

Error and recall: the shared sentence embeddings and 10 000 random unit vectors at d = 384,
768 and 1536, each compressed with -b 2, 3, 4 and with -b 2, 3, 4 --coding entropy (the same
bytes); recall@1 of 5 000 queries (the first rows) against the other 5 000.  Sizes:
10 000 x 768 N(0, 1) rows at rates 1 to 8, against n (d R / 8 + 4) bytes, with the bits per
coordinate achieved, the law's rate, and the law's error against the measured one.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

import tqcli

HERE = os.path.dirname(os.path.abspath(__file__))


def unit_rows(rng, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def nmse(x: np.ndarray, y: np.ndarray) -> float:
    x64 = x.astype(np.float64)
    return float(np.sum((x64 - y) ** 2) / np.sum(x64 * x64))


def recall_at_1(x: np.ndarray, y: np.ndarray, queries: int) -> float:
    q, base, approx = x[:queries], x[queries:], y[queries:]
    truth = np.argmax(q @ base.T, axis=1)
    return float(np.mean(np.argmax(q @ approx.T, axis=1) == truth))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data",
                                                   "minilm_sentences.npy"))
    args = ap.parse_args(argv)
    data = {}
    if os.path.exists(args.data):
        x = np.load(args.data)
        data[f"sentences ({x.shape[0]} x {x.shape[1]})"] = x
    for d in (384, 768, 1536):
        data[f"unit d={d} (10000)"] = unit_rows(np.random.default_rng(d), 10000, d)
    print(f"{'data':<26}{'b':>2} {'fixed bytes':>12} {'entropy bytes':>14} {'nmse fixed':>11} "
          f"{'nmse ent':>10} {'ratio':>6} {'R@1 fixed':>10} {'R@1 ent':>8}")
    for name, x in data.items():
        queries = x.shape[0] // 2
        for b in (2, 3, 4):
            f = tqcli.compress(x, bits=b)
            e = tqcli.compress(x, bits=b, coding="entropy")
            yf, ye = tqcli.decompress(f), tqcli.decompress(e)
            nf, ne = nmse(x, yf), nmse(x, ye)
            print(f"{name:<26}{b:>2} {len(f):>12} {len(e):>14} {nf:>11.5f} {ne:>10.5f} "
                  f"{ne / nf:>6.3f} {recall_at_1(x, yf, queries):>10.4f} "
                  f"{recall_at_1(x, ye, queries):>8.4f}", flush=True)
    print("\nfractional rates, 10000 x 768 N(0, 1): the file against n (d R / 8 + 4) bytes")
    n, d = 10000, 768
    x = np.random.default_rng(1).standard_normal((n, d)).astype(np.float32)
    for rate in (1.0, 1.5, 2.5, 3.3, 4.0, 5.7, 7.0, 8.0):
        blob = tqcli.compress(x, bits=rate, coding="entropy")
        want = n * (d * rate / 8 + 4)
        info = tqcli.inspect(blob)["coding"]
        print(f"R={rate:<4} requested {want:>10.0f} real {len(blob):>10} ratio "
              f"{len(blob) / want:.5f}  achieved {info['achieved_bits']:.4f} bits, model "
              f"{info['model_bits']:.4f} + flush; nmse law {info['expected_nmse']:.3e} "
              f"measured {nmse(x, tqcli.decompress(blob)):.3e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
