#!/usr/bin/env python3
"""Peak resident memory of `tq` commands on crafted worst cases of each form (issue 23).

    python bench/memory.py                         # this tree, at the default budget
    git worktree add /tmp/tq-old 45bb676
    python bench/memory.py --baseline /tmp/tq-old  # the old figures beside the new

Each command runs as a child of a small helper that reports its peak RSS from os.wait4
(Linux keeps a parent's peak across fork and exec, so a child of this script would report
this script's size).  The inputs are made once in --dir (default: a temporary folder,
about 2.5 GB of disk at its largest, removed at the end); outputs are removed after each
run.  A line "refused" is a command that stopped before allocating, with the reason.
The budget is the default (256 MiB) unless a case says otherwise; the constant beside it
is the peak of `tq` on a tiny input of the same command (first lines of the table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELPER = ("import json, os, subprocess, sys\n"
          "p = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, "
          "stdout=subprocess.DEVNULL, stderr=open('.err', 'wb'))\n"
          "_, status, usage = os.wait4(p.pid, 0)\n"
          "print(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss]))\n")


def run(tree: str, args, cwd: str, pipe_from: str | None = None):
    """(exit status, stderr's first line, peak RSS in MB) of `tq ARGS` with tqcli from tree."""
    env = dict(os.environ, PYTHONPATH=tree)
    tq = [sys.executable, "-m", "tqcli", *args]
    if pipe_from:
        tq = ["bash", "-c", 'cat "$0" | exec "$@"', pipe_from, *tq]
    out = subprocess.run([sys.executable, "-c", HELPER, *tq], cwd=cwd, env=env,
                         capture_output=True, check=True).stdout
    code, kib = json.loads(out)
    with open(os.path.join(cwd, ".err"), "rb") as f:
        err = f.read().decode(errors="replace").strip().splitlines()
    return code, (err[-1] if err else ""), kib / 1024


def npy_header(shape, dtype) -> bytes:
    from tqcli.arrayio.npy import npy_header_bytes

    return npy_header_bytes(shape, np.dtype(dtype))


def make_inputs(w: str) -> None:
    """The crafted inputs (made with this tree's tqcli)."""
    import h5py

    import tqcli
    from tqcli.arrayio.base import ArraySource
    from tqcli.arrayio.members import MemberInput

    class Zeros(ArraySource):
        def __init__(self, shape):
            self.name, self.shape, self.dtype = "zeros", shape, np.dtype("float64")

        def blocks(self, rows):
            z = np.zeros((rows, self.shape[-1]))
            for a in range(0, self.n_rows, rows):
                yield z[:min(rows, self.n_rows - a)]

    rng = np.random.default_rng(0)
    p = lambda name: os.path.join(w, name)  # noqa: E731
    np.save(p("tiny.npy"), rng.standard_normal((64, 64), dtype=np.float32))
    tqcli.compress_file(p("tiny.npy"), p("tiny.tqz"), bits=4, force=True)
    np.savez(p("tiny.npz"), x=rng.standard_normal((64, 64), dtype=np.float32))
    tqcli.compress_collection_file(p("tiny.npz"), p("tinycoll.tqz"), force=True)
    # the item 3: 8 x 2^20 float64, entropy, 1 bit, chunks of 8, float16 scales
    x = rng.standard_normal((8, 1 << 20))
    np.save(p("e8.npy"), x)
    with open(p("e8.tqz"), "wb") as f:
        f.write(tqcli.compress(x, bits=1, coding="entropy", chunk_rows=8,
                               scale_dtype="float16"))
    # a collection bomb: one entropy-coded float64 member of 64 x 2^20 zeros (512 MiB)
    shape = (64, 1 << 20)
    m = MemberInput("big", shape, np.dtype("float64"), {}, open=lambda: Zeros(shape))
    with open(p("bomb.tqz"), "wb") as f:
        tqcli.compress_collection([m], f, bits=1, coding="entropy", chunk_rows=8,
                                  scale_dtype="float16")
    # a real (2^22, 64) float32 HDF5 dataset (1 GiB)
    with h5py.File(p("big.h5"), "w") as f:
        ds = f.create_dataset("x", shape=(1 << 22, 64), dtype="f4")
        for a in range(0, 1 << 22, 1 << 18):
            ds[a:a + (1 << 18)] = rng.standard_normal((1 << 18, 64), dtype=np.float32)
    # a 2 MB .npz that inflates to 2 GiB of float32 zeros
    with zipfile.ZipFile(p("zipbomb.npz"), "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("x.npy", "w", force_zip64=True) as mm:
            mm.write(npy_header((1 << 23, 64), "<f4"))
            zero = bytes(1 << 24)
            for _ in range(128):
                mm.write(zero)
    # 256 MiB of random float32 (768 wide) as .npy, .safetensors, a folder
    y = rng.standard_normal((87381, 768), dtype=np.float32)
    np.save(p("y.npy"), y)
    from safetensors.numpy import save_file

    save_file({"y": y, "ids": np.arange(1 << 20, dtype=np.int64)}, p("y.safetensors"))
    os.makedirs(p("ydir"), exist_ok=True)
    shutil.copy(p("y.npy"), p("ydir/y.npy"))
    del y
    tqcli.compress_file(p("y.npy"), p("y.tqz"), bits=4, force=True)
    # 20,000 members: a table of contents of 2 MB
    tqcli.compress_collection({f"m{i}": np.arange(3, dtype=np.int8) for i in range(20000)},
                              open(p("many.tqz"), "wb"))


CASES = [  # (form, args, outputs to remove, file piped in)
    ("tiny: compress .npy", ["compress", "tiny.npy", "-o", "o.tqz", "-f"], ["o.tqz"], None),
    ("tiny: decompress .npy", ["decompress", "tiny.tqz", "-o", "o.npy", "-f"], ["o.npy"], None),
    ("tiny: decompress collection .npz", ["decompress", "tinycoll.tqz", "-o", "o.npz", "-f"],
     ["o.npz"], None),
    ("tiny: inspect --verify", ["inspect", "--verify", "tiny.tqz"], [], None),
    ("tiny: eval", ["eval", "tiny.npy", "-b", "4"], [], None),
    ("entropy 8x2^20 f64: decompress --memory 100M",
     ["decompress", "e8.tqz", "-o", "o.npy", "-f", "--memory", "100M"], ["o.npy"], None),
    ("entropy 8x2^20 f64: decompress", ["decompress", "e8.tqz", "-o", "o.npy", "-f"],
     ["o.npy"], None),
    ("entropy 8x2^20 f64: decompress .h5", ["decompress", "e8.tqz", "-o", "o.h5", "-f"],
     ["o.h5"], None),
    ("entropy 8x2^20 f64: decompress .zarr", ["decompress", "e8.tqz", "-o", "o.zarr", "-f"],
     ["o.zarr"], None),
    ("entropy 8x2^20 f64: inspect --verify", ["inspect", "--verify", "e8.tqz"], [], None),
    ("entropy 8x2^20 f64: eval FILE.tqz", ["eval", "e8.npy", "e8.tqz"], [], None),
    ("entropy 8x2^20 f64: compress", ["compress", "e8.npy", "--coding", "entropy", "-b", "1",
                                      "--chunk-rows", "8", "--scale-dtype", "float16",
                                      "-o", "o.tqz", "-f"], ["o.tqz"], None),
    ("collection bomb (512 MiB member): decompress .npz",
     ["decompress", "bomb.tqz", "-o", "o.npz", "-f"], ["o.npz"], None),
    ("collection bomb: decompress .h5", ["decompress", "bomb.tqz", "-o", "o.h5", "-f"],
     ["o.h5"], None),
    ("collection bomb: decompress .safetensors",
     ["decompress", "bomb.tqz", "-o", "o.safetensors", "-f"], ["o.safetensors"], None),
    ("collection bomb: --member to .npy",
     ["decompress", "bomb.tqz", "--member", "big", "-o", "o.npy", "-f"], ["o.npy"], None),
    ("collection bomb: inspect --verify", ["inspect", "--verify", "bomb.tqz"], [], None),
    ("HDF5 (2^22, 64) f32: compress", ["compress", "big.h5", "-o", "h.tqz", "-f"], [], None),
    ("HDF5 (2^22, 64) f32: decompress .h5", ["decompress", "h.tqz", "-o", "o.h5", "-f"],
     ["o.h5"], None),
    ("HDF5 (2^22, 64) f32: eval", ["eval", "big.h5", "-b", "4"], ["h.tqz"], None),
    ("2 MB npz of 2 GiB zeros: compress", ["compress", "zipbomb.npz", "-o", "o.tqz", "-f"],
     ["o.tqz"], None),
    (".npy 256 MiB on a pipe: compress", ["compress", "-", "-o", "o.tqz", "-f"], ["o.tqz"],
     "y.npy"),
    (".tqz on a pipe: decompress .npy", ["decompress", "-", "-o", "o.npy", "-f"], ["o.npy"],
     "y.tqz"),
    (".npy 256 MiB: decompress .zarr", ["decompress", "y.tqz", "-o", "o.zarr", "-f"],
     ["o.zarr"], None),
    (".npy 256 MiB: eval", ["eval", "y.npy", "-b", "4"], [], None),
    (".safetensors 264 MiB: compress", ["compress", "y.safetensors", "-o", "s.tqz", "-f"], [],
     None),
    (".safetensors: decompress .safetensors",
     ["decompress", "s.tqz", "-o", "o.safetensors", "-f"], ["o.safetensors", "s.tqz"], None),
    ("folder of 256 MiB: compress", ["compress", "ydir", "--directory", "-o", "d.tqz", "-f"],
     [], None),
    ("folder: decompress to a folder", ["decompress", "d.tqz", "-o", "odir"], ["odir", "d.tqz"],
     None),
    ("20,000 members (2 MB TOC): inspect", ["inspect", "many.tqz"], [], None),
    ("20,000 members: decompress .npz", ["decompress", "many.tqz", "-o", "o.npz", "-f"],
     ["o.npz"], None),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", help="another tree (its tqcli) to run beside this one")
    ap.add_argument("--dir", help="where to make the inputs (kept)")
    ap.add_argument("--only", help="run only the cases whose name holds this text")
    a = ap.parse_args()
    w = a.dir or tempfile.mkdtemp(prefix="tq-memory-")
    os.makedirs(w, exist_ok=True)
    try:
        if not os.path.exists(os.path.join(w, "many.tqz")):
            make_inputs(w)
        trees = ([("old", a.baseline)] if a.baseline else []) + [("new", HERE)]
        head = "| case | " + " | ".join(f"{n} peak MB" for n, _ in trees) + " | new result |"
        print(head)
        print("|" + "---|" * (len(trees) + 2))
        for name, args, outputs, pipe in CASES:
            if a.only and a.only not in name:
                continue
            cells, note = [], ""
            for label, tree in trees:
                code, err, mb = run(tree, args, w, os.path.join(w, pipe) if pipe else None)
                cells.append(f"{mb:.0f}" + ("" if code == 0 else f" (exit {code})"))
                if label == "new":
                    note = "ok" if code == 0 else err.replace("|", "/")[:110]
                for o in outputs:
                    if label != trees[-1][0] and o in ("h.tqz", "s.tqz", "d.tqz"):
                        continue  # made by the command, used by the next case
                    path = os.path.join(w, o)
                    if os.path.isdir(path):
                        shutil.rmtree(path)
                    elif os.path.exists(path):
                        os.remove(path)
            print(f"| {name} | " + " | ".join(cells) + f" | {note} |", flush=True)
    finally:
        if not a.dir:
            shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
