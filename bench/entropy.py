#!/usr/bin/env python3
"""The entropy coding against the fixed-length coding and zstd, side by side in one run.

    python bench/entropy.py [--dim 768] [--bits 3] [--mb 600] [--repeat 2] [--workdir /dev/shm/x]

One float32 file of N(0, 1) rows (--mb M: M * 256,000 / d vectors, 614 MB at the default),
in /dev/shm by default.  Compress and decompress it with

    tq compress -b B                      (fixed-length, B-bit codes)
    tq compress -b B --coding entropy     (entropy-coded, rate B)
    zstd -1 -T0  /  zstd -d               (lossless, the speed reference)

each command in turns with the others (A B C A B C ...), best of --repeat, and print one table:
MB/s of float32 input (the same file for all, so the figures compare), peak RSS, output
size and the error.  Every tq command runs on all cores (its default); zstd with -T0.
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench import ensure_input, tq_executable, vectors_for  # noqa: E402
from measure import MIB, log, measure_cmds, nmse_of_files, remove  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--bits", type=float, default=3.0)
    ap.add_argument("--mb", type=float, default=600)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workdir", default="/dev/shm/tq-bench-entropy")
    ap.add_argument("--tq", default=None)
    ap.add_argument("--zstd", default="zstd")
    args = ap.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    tq = tq_executable(args.tq)
    n, d = vectors_for(args.mb, args.dim), args.dim
    src = os.path.join(args.workdir, f"x_{n}x{d}.npy")
    log(f"input: {ensure_input(src, n, d, seed=1)} {src}")
    mb = n * d * 4 / 1e6
    b = f"{args.bits:g}"
    out = {k: os.path.join(args.workdir, f"out.{k}") for k in ("fixed", "entropy", "zst")}
    back = {k: os.path.join(args.workdir, f"back.{k}.npy") for k in ("fixed", "entropy")}
    back["zst"] = os.path.join(args.workdir, "back.zst.npy")
    fixed_bits = str(int(round(args.bits)))
    compress = {
        "fixed": [tq, "compress", src, "-b", fixed_bits, "-f", "-q", "-o", out["fixed"]],
        "entropy": [tq, "compress", src, "-b", b, "--coding", "entropy", "-f", "-q",
                    "-o", out["entropy"]],
        "zst": [args.zstd, "-1", "-T0", "-q", "-f", src, "-o", out["zst"]],
    }
    decompress = {
        "fixed": [tq, "decompress", out["fixed"], "-f", "-q", "-o", back["fixed"]],
        "entropy": [tq, "decompress", out["entropy"], "-f", "-q", "-o", back["entropy"]],
        "zst": [args.zstd, "-d", "-q", "-f", out["zst"], "-o", back["zst"]],
    }
    keys = list(compress)
    log("compress, in turns ...")
    comp = dict(zip(keys, measure_cmds("compress", [(compress[k], None, None) for k in keys],
                                       args.repeat)))
    log("decompress, in turns ...")
    dec = dict(zip(keys, measure_cmds("decompress", [(decompress[k], None, None)
                                                     for k in keys], args.repeat)))
    names = {"fixed": f"tq -b {fixed_bits} (fixed)", "entropy": f"tq -b {b} --coding entropy",
             "zst": "zstd -1 -T0 / zstd -d"}
    print(f"input: {n} x {d} float32, {mb:.0f} MB, in {args.workdir}; best of {args.repeat}, "
          f"the tools in turns; {os.cpu_count()} cores")
    print(f"{'tool':<28} {'compress MB/s':>13} {'decompress MB/s':>15} {'peak RSS c/d MiB':>17} "
          f"{'output':>11} {'ratio':>7} {'nmse':>9}")
    for k in keys:
        size = os.path.getsize(out[k])
        err = 0.0 if k == "zst" else nmse_of_files(src, back[k])
        print(f"{names[k]:<28} {mb / comp[k]['best']:>13.0f} {mb / dec[k]['best']:>15.0f} "
              f"{comp[k]['peak_rss'] / MIB:>8.0f}/{dec[k]['peak_rss'] / MIB:<8.0f} "
              f"{size / 1e6:>9.1f}MB {n * d * 4 / size:>6.2f}x {err:>9.3e}")
    remove(*out.values(), *back.values())
    return 0


if __name__ == "__main__":
    sys.exit(main())
