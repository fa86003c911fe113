#!/usr/bin/env python3
"""Collections of many tiny members: time against the member count.

    python bench/many_members.py [--counts 1000,10000,100000] [--dir /dev/shm] [--tq TQ]

For each count N: an .npz of N one-byte uint8 members and a folder of N one-byte .npy
files are written into DIR (deleted at the end); then, each timed as the wall time of the
whole command (start-up included):

    tq compress M.npz -o M.tqz                     (an npz collection)
    tq decompress M.tqz -o OUT.npz / OUT.h5 / OUT.safetensors
    tq compress --directory FOLDER -o F.tqz;  tq decompress F.tqz -o OUT   (a folder collection)

Prints one table: seconds per command and microseconds per member.  Time linear in N
shows as a constant per-member figure down each column.  `--tq` runs another tq (e.g.
an older tree's `python -m tqcli`) for before/after figures.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def make_inputs(folder: str, n: int) -> tuple[str, str]:
    from tqcli.arrayio.containers import write_npy  # the same .npy bytes numpy writes

    npz = os.path.join(folder, f"m{n}.npz")
    np.savez(npz, **{f"a{i}": np.array([i % 256], np.uint8) for i in range(n)})
    tree = os.path.join(folder, f"d{n}")
    os.makedirs(tree)
    for i in range(n):
        sub = os.path.join(tree, f"g{i // 1000}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"a{i}.npy"), "wb") as f:
            write_npy(f, np.array([i % 256], np.uint8))
    return npz, tree


def timed(tq: list[str], *args: str) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(tq + list(args) + ["-q"], capture_output=True)
    dt = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"{' '.join(args)}: {r.stderr.decode().strip()}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="1000,10000,100000")
    ap.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    ap.add_argument("--tq", default=f"{sys.executable} -m tqcli",
                    help="the tq command to time (default: this tree's)")
    a = ap.parse_args()
    tq = shlex.split(a.tq)
    counts = [int(c) for c in a.counts.split(",")]
    cols = ["compress npz", "-> npz", "-> h5", "-> safetensors", "compress folder",
            "-> folder"]
    rows = []
    for n in counts:
        work = tempfile.mkdtemp(prefix="tq-many-", dir=a.dir)
        try:
            npz, tree = make_inputs(work, n)
            out = os.path.join(work, "o")
            t = [timed(tq, "compress", npz, "-o", out + ".tqz")]
            for ext in ("npz", "h5", "safetensors"):
                t.append(timed(tq, "decompress", out + ".tqz", "-o", f"{out}.{ext}"))
            t.append(timed(tq, "compress", "--directory", tree, "-o", out + "-dir.tqz"))
            t.append(timed(tq, "decompress", out + "-dir.tqz", "-o", out + "-dir"))
            rows.append((n, t))
            print(f"{n} members done", file=sys.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{'members':>8}  " + "  ".join(f"{c:>15}" for c in cols))
    for n, t in rows:
        print(f"{n:>8}  " + "  ".join(f"{s:>13.2f} s" for s in t))
    print(f"{'us/member':>8}")
    for n, t in rows:
        print(f"{n:>8}  " + "  ".join(f"{s / n * 1e6:>12.0f} us" for s in t))


if __name__ == "__main__":
    main()
