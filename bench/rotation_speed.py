#!/usr/bin/env python3
"""Compress and decompress throughput of the rotation kinds, side by side in one process.

    python bench/rotation_speed.py                    # d = 384, 768, 1000, 1536, b = 4
    python bench/rotation_speed.py --dims 1032 --bits 3 --mb 100 --repeat 9

For each d the same float32 array (about --mb MB of Gaussian rows) goes through
tqcli.compress and tqcli.decompress with every rotation kind, the kinds taking turns
(A B A B ...) so that a noisy machine slows both alike; each figure is the best of
--repeat runs, in GB/s of float32 input (compress) and output (decompress), after a warm-up
call that compiles the kernels.  The ratio column is tiled / hadamard2 (> 1: tiled faster).
Everything else -- the container, the quantiser, the threads -- is the same code, so the
difference is the rotation's.  On a noisy VM these whole-call figures move by +-10% from one
run to the next; --kernels times the encode and decode kernels alone on 32768 rows, the
kinds alternating 25 times, which is steadier.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def best_time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", default="384,768,1000,1536")
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--mb", type=float, default=200.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--kernels", action="store_true", help="time the kernels alone")
    a = ap.parse_args()
    if a.kernels:
        return kernel_times([int(v) for v in a.dims.split(",")], a.bits)
    import tqcli
    from tqcli.codec.rotations import ROTATIONS

    kinds = ROTATIONS.names
    print(f"{'d':>5} {'kind':>10} {'compress GB/s':>14} {'decompress GB/s':>16}")
    for d in (int(v) for v in a.dims.split(",")):
        n = int(a.mb * 1e6 / (4 * d))
        x = np.random.default_rng(d).standard_normal((n, d)).astype(np.float32)
        blobs = {k: tqcli.compress(x, bits=a.bits, rotation=k) for k in kinds}  # warm-up
        for k in kinds:
            tqcli.decompress(blobs[k])
        comp = {k: float("inf") for k in kinds}
        dec = {k: float("inf") for k in kinds}
        for _ in range(a.repeat):  # the kinds in turns, one run each per turn
            for k in kinds:
                comp[k] = min(comp[k], best_time(lambda: tqcli.compress(x, bits=a.bits,
                                                                         rotation=k), 1))
                dec[k] = min(dec[k], best_time(lambda: tqcli.decompress(blobs[k]), 1))
        for k in kinds:
            print(f"{d:>5} {k:>10} {x.nbytes / comp[k] / 1e9:>14.3f} "
                  f"{x.nbytes / dec[k] / 1e9:>16.3f}")
        print(f"{d:>5} {'ratio':>10} {comp['hadamard2'] / comp['tiled']:>13.2f}x "
              f"{dec['hadamard2'] / dec['tiled']:>15.2f}x", flush=True)


def kernel_times(dims: list[int], bits: int, n: int = 32768, turns: int = 25) -> None:
    """Best-of-`turns` time of kernels.encode_mse and decode_mse for each kind."""
    from tqcli import kernels
    from tqcli.codec.state import Codec
    from tqcli.format.header import make_header
    from tqcli.codec.rotations import ROTATIONS

    print(f"{'d':>5} {'kind':>10} {'encode ms':>10} {'decode ms':>10}   ({n} rows)")
    for d in dims:
        x = np.random.default_rng(d).standard_normal((n, d)).astype(np.float32)
        codecs = {k: Codec(make_header(d, bits, rotation=k, shape=(n, d)))
                  for k in ROTATIONS.names}
        codes = np.zeros(-(-n * d * bits // 8), np.uint8)
        scales = np.empty(n)
        out = np.empty((n, d), np.float32)
        best = {k: [float("inf")] * 2 for k in codecs}
        for _ in range(turns):
            for k, c in codecs.items():
                t = time.perf_counter()
                kernels.encode_mse(x, c.plan, *c.quantizer, bits, 0, codes, scales)
                best[k][0] = min(best[k][0], time.perf_counter() - t)
                s32 = scales.astype(np.float32)
                t = time.perf_counter()
                kernels.decode_mse(codes, s32, c.plan, c.centroids, bits, out)
                best[k][1] = min(best[k][1], time.perf_counter() - t)
        for k in codecs:
            print(f"{d:>5} {k:>10} {best[k][0] * 1e3:>10.1f} {best[k][1] * 1e3:>10.1f}")
        h, t = best["hadamard2"], best["tiled"]
        print(f"{d:>5} {'speed-up':>10} {h[0] / t[0]:>9.2f}x {h[1] / t[1]:>9.2f}x", flush=True)


if __name__ == "__main__":
    main()
