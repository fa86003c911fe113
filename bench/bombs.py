#!/usr/bin/env python3
"""The crafted files of issue 23 through real `tq` processes: seconds and peak memory of
each refusal, beside `tq --version` (what any run costs before it reads a byte).

    python bench/bombs.py [--baseline TREE]      # TREE: another tq source tree to compare

The files come from tests/bombs.py (a few seconds to build, a few MB): a valid 0.7 MB
entropy-coded .tqz declaring 625 GiB, a 2 MB .npz deflating 2 GiB of zeros, zarr stores
(v2 zlib, v3 gzip) and an HDF5 file whose one chunk decodes to 1 GiB.  Acceptance (issue
23): each refused within 1 s and 100 MB above the start-up, the flag to raise the limit
named.  A baseline tree that does not refuse a case is stopped after 20 s or at 3 GB of
memory (ulimit), and its row says so.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))


def peak(tree, args, cwd, stdin=None):
    """(exit, seconds, peak RSS MB, first stderr line) via /usr/bin/time-like wait4."""
    env = dict(os.environ, PYTHONPATH=tree)
    t0 = time.perf_counter()
    inp = open(stdin, "rb") if stdin else open(os.devnull, "rb")
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        os.dup2(inp.fileno(), 0)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        err = os.open(os.path.join(cwd, ".err"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(err, 2)
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        os.execve(sys.executable, [sys.executable, "-m", "tqcli"] + args, env)
    deadline = t0 + 20
    while True:
        wpid, status, usage = os.wait4(pid, os.WNOHANG)
        if wpid:
            break
        if time.perf_counter() > deadline:
            os.kill(pid, 9)
        time.sleep(0.005)
    inp.close()
    seconds = time.perf_counter() - t0
    with open(os.path.join(cwd, ".err"), errors="replace") as f:
        lines = f.read().strip().splitlines()
    os.remove(os.path.join(cwd, ".err"))
    return os.waitstatus_to_exitcode(status), seconds, usage.ru_maxrss / 1024, (
        lines[0] if lines else "")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="another tq source tree, measured the same way")
    a = ap.parse_args()
    import bombs

    trees = [("this tree", os.path.dirname(HERE))] + ([("baseline", a.baseline)]
                                                      if a.baseline else [])
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "b.tqz"), "wb") as f:
            f.write(bombs.entropy_bomb())
        bombs.zip_bomb_npz(os.path.join(tmp, "zip.npz"), gib=2.0)
        bombs.zarr_chunk_bomb(os.path.join(tmp, "v2.zarr"), 2)
        bombs.zarr_chunk_bomb(os.path.join(tmp, "v3.zarr"), 3)
        bombs.hdf5_chunk_bomb(os.path.join(tmp, "h.h5"))
        size = {n: sum(os.path.getsize(os.path.join(r, x)) for r, _, fs in
                       os.walk(os.path.join(tmp, n)) for x in fs)
                if os.path.isdir(os.path.join(tmp, n)) else os.path.getsize(os.path.join(tmp, n))
                for n in ("b.tqz", "zip.npz", "v2.zarr", "v3.zarr", "h.h5")}
        # outputs go to stdout, which is /dev/null: a tree that does not refuse writes
        # nothing to disk while it runs out its 20 s
        cases = [("625 GiB .tqz", ["decompress", "b.tqz", "-c"], None),
                 ("625 GiB .tqz", ["inspect", "b.tqz"], None),
                 ("625 GiB .tqz, pipe", ["decompress", "-", "-c"], "b.tqz"),
                 ("2 GiB .npz member", ["compress", "zip.npz", "-c"], None),
                 ("1 GiB zarr v2 chunk", ["compress", "v2.zarr", "-c"], None),
                 ("1 GiB zarr v3 chunk", ["compress", "v3.zarr", "-c"], None),
                 ("1 GiB HDF5 chunk", ["compress", "h.h5", "-c"], None)]
        print(f"{'tree':10} {'case':22} {'command':10} {'exit':>4} {'s':>6} {'MB':>7} "
              f"{'extra MB':>8}  message")
        for label, tree in trees:
            starts = [peak(tree, ["--version"], tmp) for _ in range(3)]
            base, base_s = min(r[2] for r in starts), min(r[1] for r in starts)
            print(f"{label:10} {'(tq --version)':22} {'':10} {0:>4} {base_s:6.2f} "
                  f"{base:7.0f} {0:8.0f}")
            for what, args, stdin in cases:
                code, s, mb, line = peak(tree, args, tmp, stdin and os.path.join(tmp, stdin))
                print(f"{label:10} {what:22} {args[0]:10} {code:>4} {s:6.2f} {mb:7.0f} "
                      f"{mb - base:8.0f}  {line[:150]}")
        print("input sizes: " + ", ".join(f"{n} {v / 1e6:.2f} MB" for n, v in size.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
