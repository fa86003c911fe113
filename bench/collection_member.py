#!/usr/bin/env python3
"""Reading one member of a 1 GiB collection reads only that member's bytes.

    python bench/collection_member.py [--dir /dev/shm]

Writes a collection of about 1.0 GiB into DIR (deleted at the end): eight float32 members of
128 MiB stored losslessly (--lossless, so that writing it is quick) and one float32 member
of 16 MiB compressed at 4 bits.  Then, each in a fresh reader over the file: the bytes read
from the file (a counting wrapper around it) and the time to read the compressed member,
one lossless member, and every member; tracemalloc's peak for each.  Prints a table.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tqcli  # noqa: E402


class Counting(io.RawIOBase):
    def __init__(self, f):
        self.f, self.read_bytes = f, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, pos, whence=0):
        return self.f.seek(pos, whence)

    def tell(self):
        return self.f.tell()

    def readinto(self, b):
        k = self.f.readinto(b)
        self.read_bytes += k or 0
        return k


def measure(path: str, what) -> tuple[int, float, int]:
    with open(path, "rb", buffering=0) as raw:
        src = Counting(raw)
        tracemalloc.start()
        t0 = time.perf_counter()
        with tqcli.open_collection(src) as c:
            what(c)
        dt = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return src.read_bytes, dt, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/dev/shm")
    args = ap.parse_args()
    path = os.path.join(args.dir, "tq-collection-bench.tqz")
    rng = np.random.default_rng(0)
    arrays = {f"raw/{i}": np.full((1 << 15, 1024), i, np.float32) for i in range(8)}
    arrays["kv/key"] = rng.standard_normal((1 << 14, 256)).astype(np.float32)
    try:
        t0 = time.perf_counter()
        with open(path, "wb") as out:
            tqcli.compress_collection(arrays, out, bits=4, lossless=["raw/*"])
        size = os.path.getsize(path)
        print(f"wrote {path}: {size / 2**20:.1f} MiB in {time.perf_counter() - t0:.1f} s")
        with tqcli.open_collection(path) as c:
            lengths = {e["name"]: e["length"] for e in c.members}
        rows = [("read the compressed member kv/key", lambda c: c.read("kv/key"),
                 lengths["kv/key"]),
                ("read one lossless member raw/3", lambda c: c.read("raw/3"),
                 lengths["raw/3"]),
                ("read every member (one at a time)", lambda c: [None for _ in c.items()], size)]
        print(f"| what | member bytes | bytes read from the file | share of the file | "
              f"time | peak traced memory |")
        print("|---|---|---|---|---|---|")
        for label, fn, member in rows:
            n, dt, peak = measure(path, fn)
            print(f"| {label} | {member:,} | {n:,} | {n / size:.4%} | {dt * 1000:.0f} ms | "
                  f"{peak / 2**20:.1f} MiB |")
    finally:
        if os.path.exists(path):
            os.remove(path)


if __name__ == "__main__":
    main()
