#!/usr/bin/env python3
"""First-use times: each command as a new user first runs it, from an empty cache.

    python bench/first_use.py                         # this tree
    python bench/first_use.py --baseline ../old       # and an older checkout, side by side

Seven cases, each a `tq` process on the 1000 x 384 sample (samples/sentences.npy, made
float16 and float64 for those cases) with an empty numba cache and an empty codebook cache
(fresh NUMBA_CACHE_DIR and TQ_CACHE_DIR): compress in mse and prod mode, compress of float16
and float64 input, decompress of an mse and a prod file, and eval -b 4.  With --baseline the
two trees take turns case by case (A B A B ...), so that a noisy machine slows both alike;
--repeat N runs every case N times and keeps the best.  Then "in a row": the seven cases one
after the other sharing one cache, cleared once before the first (what a new user pays in
all).  Work files go to --workdir (default /dev/shm, else the temp folder).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from trees import trees_for

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "..", "samples", "sentences.npy")


def cases(w: str, suffix: str) -> list[tuple[str, list[str]]]:
    o = f"{w}/out{suffix}"
    return [
        ("compress mse float32", ["compress", f"{w}/f32.npy", "-o", o + ".tqz", "-f"]),
        ("compress prod float32", ["compress", f"{w}/f32.npy", "--mode", "prod", "-o",
                                   o + ".tqz", "-f"]),
        ("compress mse float16", ["compress", f"{w}/f16.npy", "-o", o + ".tqz", "-f"]),
        ("compress mse float64", ["compress", f"{w}/f64.npy", "-o", o + ".tqz", "-f"]),
        ("decompress mse", ["decompress", f"{w}/mse{suffix}.tqz", "-o", o + ".npy", "-f"]),
        ("decompress prod", ["decompress", f"{w}/prod{suffix}.tqz", "-o", o + ".npy", "-f"]),
        ("eval -b 4", ["eval", f"{w}/f32.npy", "-b", "4"]),
    ]


def run(tq: list[str], args: list[str], env: dict, cache: str | None) -> float:
    env = dict(env)
    if cache is not None:
        env.update(NUMBA_CACHE_DIR=cache, TQ_CACHE_DIR=os.path.join(cache, "tq"))
    t = time.perf_counter()
    res = subprocess.run(tq + args, env=env, capture_output=True, cwd="/")
    dt = time.perf_counter() - t
    if res.returncode != 0:
        sys.exit(f"bench: tq {' '.join(args)} failed: {res.stderr.decode()[-500:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", metavar="TREE", help="another tq checkout to compare with")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case; the best is kept")
    ap.add_argument("--workdir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    a = ap.parse_args()
    trees = trees_for(a.baseline)
    tq = [sys.executable, "-m", "tqcli"]
    work = tempfile.mkdtemp(prefix="tq-first-use-", dir=a.workdir)
    try:
        x = np.load(SAMPLE)
        for name, dt in (("f32", np.float32), ("f16", np.float16), ("f64", np.float64)):
            np.save(f"{work}/{name}.npy", x.astype(dt))
        for t in trees:  # the decompress inputs, made with each tree's own cache
            env = os.environ if t.env is None else t.env
            run(tq, ["compress", f"{work}/f32.npy", "-o", f"{work}/mse{t.suffix}.tqz", "-f"],
                env, None)
            run(tq, ["compress", f"{work}/f32.npy", "--mode", "prod", "-o",
                     f"{work}/prod{t.suffix}.tqz", "-f"], env, None)
        best = {t.key: {} for t in trees}
        for i, (name, _) in enumerate(cases(work, "")):
            for _ in range(a.repeat):
                for t in trees:
                    env = os.environ if t.env is None else t.env
                    cache = tempfile.mkdtemp(prefix="cache-", dir=work)
                    dt = run(tq, cases(work, t.suffix)[i][1], env, cache)
                    shutil.rmtree(cache)
                    best[t.key][name] = min(best[t.key].get(name, float("inf")), dt)
        in_row = {}
        for t in trees:
            env = os.environ if t.env is None else t.env
            cache = tempfile.mkdtemp(prefix="cache-", dir=work)
            in_row[t.key] = sum(run(tq, args, env, cache) for _, args in cases(work, t.suffix))
            shutil.rmtree(cache)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    heads = [t.short for t in trees]
    print(f"first use from an empty cache, seconds (best of {a.repeat}; "
          f"{os.cpu_count()} cores)")
    print(f"{'case':24s}" + "".join(f"{h:>14s}" for h in heads))
    for name, _ in cases(work, ""):
        print(f"{name:24s}" + "".join(f"{best[t.key][name]:14.1f}" for t in trees))
    print(f"{'sum of the seven':24s}" + "".join(f"{sum(best[t.key].values()):14.1f}"
                                              for t in trees))
    print(f"{'in a row, one cache':24s}" + "".join(f"{in_row[t.key]:14.1f}" for t in trees))


if __name__ == "__main__":
    main()
