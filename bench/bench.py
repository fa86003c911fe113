#!/usr/bin/env python3
"""tq speed and memory, side by side with baselines measured in the same run.

    python bench/bench.py                         # full default run (6-8 min on 2 cores)
    python bench/bench.py --quick --dims 128 --bits 2 --big-gb 0    # smoke run, seconds
    python bench/bench.py --dims 768 --bits 4 --json out.json

For every d in --dims and b in --bits it measures, on one synthetic float32 .npy of about
--mb MB that sits in the page cache:

  tq CLI      `tq compress IN -b B -o OUT -f -q` / `tq decompress OUT -o BACK -f -q`,
              file to file, wall time of the whole command, peak RSS of that child
  tq lib      tqcli.compress(x, bits=b) / tqcli.decompress(blob), in memory, timed inside
              a separate Python process after a warm-up call
  dense       bench/dense_baseline.py: numpy TurboQuant with a dense QR rotation (BLAS)
  faiss       faiss's TurboQuant-MSE scalar quantizer (QT_<b>bit_tqmse) behind a faiss
              RandomRotationMatrix, with the norms kept aside, when faiss is installed
  zstd        `zstd -1 -T0` / `zstd -d`, file to file (lossless, for scale)

Each figure is the best (least time) of --repeat runs; every process runs alone.  Then a
start-up section (tq --help, tq compress of a 1 MiB file) and a memory section (peak RSS of
the tq command on a --big-gb file next to the --mb one).  bench/README.md explains it all.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

from inmemory import faiss_qtype, worker
from measure import (MIB, Failure, log, measure_cmd, measure_cmds, measure_worker,
                     measure_worker_trees, nmse_of_files, remove, reusable, rss_floor, run, sha256_of,
                     warm_cache)
from report import report
from trees import trees_for

HERE = os.path.dirname(os.path.abspath(__file__))
BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
GEN_BLOCK = 1 << 16        # rows per block when writing synthetic inputs


# =============================================================================== inputs


def vectors_for(mb: float, d: int) -> int:
    """--mb M means M * 256,000 / d vectors: 600 -> 200,000 vectors (614 MB) at d = 768."""
    return max(8, int(round(mb * 256000 / d)))


def ensure_input(path: str, n: int, d: int, seed: int) -> str:
    """A float32 N(0, 1) array of shape (n, d) at path, reused when it is already there."""
    import numpy as np
    from numpy.lib.format import open_memmap

    if reusable(path, n, d):
        return "reused"
    tmp = path + ".part"
    open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))   # header + sparse body
    rng = np.random.default_rng(seed)
    for a in range(0, n, GEN_BLOCK):
        m = min(GEN_BLOCK, n - a)
        # map, write one block, unmap: the generator holds one block, not the whole file
        mm = open_memmap(tmp, mode="r+")
        mm[a:a + m] = rng.standard_normal((m, d), dtype=np.float32)
        mm.flush()
        del mm
    os.replace(tmp, path)
    return "written"


# =============================================================================== the run


def tq_executable(explicit: str | None) -> str:
    """The tq console script: --tq, else the one next to this Python, else PATH.

    The script next to sys.executable is preferred over a PATH lookup because a pyenv shim
    on PATH is a bash script that re-executes pyenv and adds ~50 ms to every command.
    """
    if explicit:
        return shutil.which(explicit) or explicit
    local = os.path.join(os.path.dirname(sys.executable), "tq")
    if os.access(local, os.X_OK):
        return local
    found = shutil.which("tq")
    if not found:
        sys.exit("bench: no tq executable found (pip install -e . first, or pass --tq)")
    return found


def machine_info(tq: str, zstd: str | None) -> dict:
    import numba
    import numpy

    import tqcli

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    zv = None
    if zstd:
        out = subprocess.run([zstd, "--version"], capture_output=True, text=True).stdout
        m = re.search(r"v(\d+\.\d+\.\d+)", out)
        zv = m.group(1) if m else out.strip()
    try:
        import faiss

        fv = faiss.__version__
    except Exception:  # noqa: BLE001 -- any import failure means "no faiss"
        fv = None
    try:
        git = subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        git = ""
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(), "cpu": cpu,
        "mem_bytes": mem, "loadavg_start": os.getloadavg()[0],
        "python": platform.python_version(), "tq": tqcli.__version__, "tq_git": git,
        "tq_path": tq, "numpy": numpy.__version__, "numba": numba.__version__,
        "zstd": zv, "zstd_path": zstd, "faiss": fv,
        "blas_env": {k: os.environ[k] for k in BLAS_VARS if k in os.environ},
    }


def default_workdir() -> str:
    """/dev/shm/tq-bench on Linux (tmpfs: files live in the page cache and writing one
    costs a copy, as for every tool compared), else the temporary folder."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return os.path.join(shm, "tq-bench")
    return os.path.join(tempfile.gettempdir(), "tq-bench")


def small_input(workdir) -> str:
    import numpy as np

    path = os.path.join(workdir, "small-1mib.npy")
    np.save(path, np.random.default_rng(1).standard_normal((1024, 256), dtype=np.float32))
    return path


def prime(tq, bits_list, workdir, trees) -> None:
    """One untimed tq compress + decompress per bit width and tree: numba's on-disk cache
    (next to each tree's sources; recompiled after any change to the kernels) is filled
    before anything is timed, so that no compilation lands in a timing."""
    small = small_input(workdir)
    out, back = os.path.join(workdir, "out-prime.tqz"), os.path.join(workdir, "out-prime.npy")
    try:
        for t in trees:
            log("priming tq (numba cache) ..." if not t.compared else
                f"priming tq, {t.key} tree {t.short} (numba cache) ...")
            for b in sorted(set(bits_list) | {4}):
                for argv in ([tq, "compress", small, "-b", str(b), "-o", out, "-f", "-q"],
                             [tq, "decompress", out, "-o", back, "-f", "-q"]):
                    _, _, code, err = run(argv, env=t.env)
                    if code != 0:
                        sys.exit(f"bench: {' '.join(argv)} ({t.key} tree) failed: {err}")
    finally:
        remove(small, out, back)


def bench_startup(tq, zstd, workdir, results, trees):
    log("start-up ...")
    small = small_input(workdir)
    outs = {t.key: os.path.join(workdir, f"out-small{t.suffix}.tqz") for t in trees}
    zout = os.path.join(workdir, "out-small.zst")
    cases = [("python -c pass", lambda t: [sys.executable, "-c", "pass"], False),
             ("tq --help", lambda t: [tq, "--help"], True),
             ("tq compress 1 MiB .npy (1024 x 256, -b 4)",
              lambda t: [tq, "compress", small, "-b", "4", "-o", outs[t.key], "-f", "-q"], True)]
    if zstd:
        cases.append(("zstd -1 -T0, same 1 MiB file",
                      lambda t: [zstd, "-1", "-T0", "-q", "-f", small, "-o", zout], False))
    warm_cache(small)
    try:
        for label, argv_of, per_tree in cases:
            who = trees if per_tree else trees[:1]
            rs = measure_cmds(label, [(argv_of(t), t.env, None) for t in who], 5)
            for t, r in zip(who, rs):
                results.append({"section": "startup", "label": label, **r,
                                **(t.tag if per_tree else {})})
    finally:
        remove(small, zout, *outs.values())


def bench_dim(d, bits_list, args, tq, zstd, have_faiss, results, trees):
    n = args.rows or vectors_for(args.mb, d)
    path = os.path.join(args.workdir, f"gauss-d{d}-n{n}.npy")
    log(f"d={d}: input {path} ({n} x {d}) ...")
    how = ensure_input(path, n, d, seed=d)
    nbytes = n * d * 4
    file_bytes = os.path.getsize(path)
    base = {"d": d, "n": n, "in_bytes": nbytes, "input": path}
    w = args.workdir
    zst, back = os.path.join(w, "out.zst"), os.path.join(w, "out-back.npy")
    tqzs = {t.key: os.path.join(w, f"out{t.suffix}.tqz") for t in trees}
    backs = {t.key: os.path.join(w, f"out-back{t.suffix}.npy") for t in trees}
    arts = {t.key: os.path.join(w, f"out-artifact{t.suffix}.bin") for t in trees}
    art = arts[trees[0].key]
    log(f"d={d}: input {how}")

    def record(tool, op, bits, res, tree=None, **extra):
        tag = tree.tag if tree else {}
        results.append({"section": "main", "tool": tool, "op": op, "bits": bits, **base,
                        **res, **extra, **tag})
        who = f" {tree.key:<8}" if tag else ""
        log(f"  d={d} b={bits if bits is not None else '-'} {tool:<6}{who} {op:<10} "
            f"{nbytes / res['best'] / 1e9:6.3f} GB/s  peak {res['peak_rss'] / MIB:7.0f} MiB")

    def failed(tool, op, bits, e, who=()):
        for t in who or [None]:
            results.append({"section": "main", "tool": tool, "op": op, "bits": bits, **base,
                            "error": str(e), **(t.tag if t else {})})
        log(f"  FAILED {e}")

    # (c) zstd: independent of b, once per d
    if zstd:
        try:
            warm_cache(path)
            r = measure_cmd("zstd -1", [zstd, "-1", "-T0", "-q", "-f", path, "-o", zst],
                            args.repeat, before=lambda: remove(zst))
            record("zstd", "compress", None, r, out_bytes=os.path.getsize(zst),
                   file_bytes=file_bytes)
            r = measure_cmd("zstd -d", [zstd, "-d", "-q", "-f", zst, "-o", back],
                            args.repeat, before=lambda: remove(back))
            same = os.path.getsize(back) == file_bytes
            record("zstd", "decompress", None, r, nmse=0.0 if same else float("nan"))
        except Failure as e:
            failed("zstd", "compress", None, e)
        finally:
            remove(zst, back)

    for b in bits_list:
        # (a) the tq command, file to file; with a baseline the two trees take turns
        try:
            warm_cache(path)
            rs = measure_cmds("tq compress", [
                ([tq, "compress", path, "-b", str(b), "-o", tqzs[t.key], "-f", "-q"], t.env,
                 lambda p=tqzs[t.key]: remove(p)) for t in trees], args.repeat)
            for t, r in zip(trees, rs):
                same = {"out_sha256": sha256_of(tqzs[t.key])} if t.compared else {}
                record("tq-cli", "compress", b, r, t, out_bytes=os.path.getsize(tqzs[t.key]),
                       file_bytes=file_bytes, **same)
            rs = measure_cmds("tq decompress", [
                ([tq, "decompress", tqzs[t.key], "-o", backs[t.key], "-f", "-q"], t.env,
                 lambda p=backs[t.key]: remove(p)) for t in trees], args.repeat)
            for t, r in zip(trees, rs):
                record("tq-cli", "decompress", b, r, t, nmse=nmse_of_files(path, backs[t.key]))
        except Failure as e:
            failed("tq-cli", "compress", b, e, trees)
        finally:
            remove(*tqzs.values(), *backs.values())

        # (b) the library, for each tree: in memory, own process
        spec = {"impl": "tq", "d": d, "bits": b, "n": n, "input": path,
                "repeat": args.repeat}
        try:
            warm_cache(path)
            for op in ("compress", "decompress"):
                rs = measure_worker_trees(f"tq-lib {op}", dict(spec, op=op), trees, arts, w)
                for t, r in zip(trees, rs):
                    record("tq-lib", op, b, r, t)
        except Failure as e:
            failed("tq-lib", "compress", b, e, trees)
        finally:
            remove(*arts.values())

        # (d) the dense numpy baseline, (e) faiss: in memory, own process
        impls = [("dense", "dense", dense_env())]
        if have_faiss:
            impls.append(("faiss", "faiss", None))
        for tool, impl, env in impls:
            spec = {"impl": impl, "d": d, "bits": b, "n": n, "input": path,
                    "artifact": art, "repeat": args.repeat}
            try:
                warm_cache(path)
                r = measure_worker(f"{tool} compress", dict(spec, op="compress"), env, w)
                record(tool, "compress", b, r)
                r = measure_worker(f"{tool} decompress", dict(spec, op="decompress"), env, w)
                record(tool, "decompress", b, r)
            except Failure as e:
                failed(tool, "compress", b, e)
            finally:
                remove(art)


def dense_env() -> dict:
    """The dense baseline's environment: without the variables that can slow OpenBLAS."""
    return {k: v for k, v in os.environ.items() if k not in BLAS_VARS}


def bench_memory(args, tq, results, trees):
    gb = args.big_gb
    d, b = 768, 4
    n = max(8, int(round(gb * 1e9 / (4 * d), -3)))
    path = os.path.join(args.workdir, f"gauss-d{d}-n{n}.npy")
    log(f"memory: input {path} ({n} x {d}, {n * d * 4 / 1e9:.2f} GB) ...")
    how = ensure_input(path, n, d, seed=10_000 + d)
    log(f"memory: input {how}")
    tqzs = {t.key: os.path.join(args.workdir, f"out-big{t.suffix}.tqz") for t in trees}
    backs = {t.key: os.path.join(args.workdir, f"out-big-back{t.suffix}.npy") for t in trees}
    base = {"section": "memory", "d": d, "bits": b, "n": n, "in_bytes": n * d * 4}
    try:
        warm_cache(path)
        rs = measure_cmds("tq compress (big)", [
            ([tq, "compress", path, "-b", str(b), "-o", tqzs[t.key], "-f", "-q"], t.env, None)
            for t in trees], 1)
        for t, r in zip(trees, rs):
            results.append({**base, "tool": "tq-cli", "op": "compress", **r,
                            "out_bytes": os.path.getsize(tqzs[t.key]), **t.tag})
            log(f"  big compress {n * d * 4 / r['best'] / 1e9:.3f} GB/s peak "
                f"{r['peak_rss'] / MIB:.0f} MiB" + (f" ({t.key})" if t.compared else ""))
        # each tree decodes its own file; each run first deletes the output of the one
        # before, so that only one 3 GB output sits in the workdir at a time
        rs = measure_cmds("tq decompress (big)", [
            ([tq, "decompress", tqzs[t.key], "-o", backs[t.key], "-f", "-q"], t.env,
             lambda: remove(*backs.values())) for t in trees], 1)
        for t, r in zip(trees, rs):
            results.append({**base, "tool": "tq-cli", "op": "decompress", **r, **t.tag})
            log(f"  big decompress {n * d * 4 / r['best'] / 1e9:.3f} GB/s peak "
                f"{r['peak_rss'] / MIB:.0f} MiB" + (f" ({t.key})" if t.compared else ""))
    except Failure as e:
        for t in trees:
            results.append({**base, "tool": "tq-cli", "op": "compress", "error": str(e),
                            **t.tag})
        log(f"  FAILED {e}")
    finally:
        remove(*tqzs.values(), *backs.values())


# =============================================================================== main


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="tq speed and memory next to zstd, a dense numpy TurboQuant and faiss, "
                    "all measured in the same run.  See bench/README.md.")
    p.add_argument("--dims", default="128,384,768,1536",
                   help="comma-separated dimensions (default: %(default)s)")
    p.add_argument("--bits", default="2,4", help="comma-separated bit widths (default: 2,4)")
    p.add_argument("--mb", type=float, default=None,
                   help="input size per d in MB: M*256000/d vectors (default 600: 200,000 "
                        "vectors at d=768; --quick: 100)")
    p.add_argument("--repeat", type=int, default=None,
                   help="runs per measurement, the best is kept (default 3; --quick: 1)")
    p.add_argument("--big-gb", type=float, default=None,
                   help="size of the memory-section input in GB, d=768 (default 3; "
                        "--quick: 0.5; 0 skips the section)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: --mb 100 --repeat 1 --big-gb 0.5 unless given")
    p.add_argument("--workdir", default=default_workdir(),
                   help="folder for the inputs (kept and reused) and the temporary outputs "
                        "(deleted after each measurement); the default is in memory "
                        "(/dev/shm) where there is one, so that what is timed is the tools, "
                        "not a disk's write-back (default: %(default)s)")
    p.add_argument("--json", metavar="FILE", help="also save the raw numbers as JSON")
    p.add_argument("--tq", metavar="PATH", help="tq executable (default: the one installed "
                   "next to this Python, else tq on PATH)")
    p.add_argument("--zstd", metavar="PATH", default=None,
                   help="zstd executable (default: /usr/bin/zstd, else zstd on PATH)")
    p.add_argument("--rows", type=int, default=None, metavar="N",
                   help="vectors per d (overrides --mb): the same n at every d, e.g. to keep "
                        "a --baseline run at several d short")
    p.add_argument("--baseline", metavar="TREE",
                   help="another tq source checkout (e.g. a `git worktree add` of an older "
                        "commit): every tq measurement also runs with TREE first on "
                        "PYTHONPATH, the two trees taking turns, and the report adds a "
                        "baseline row and new/baseline ratios")
    p.add_argument("--no-faiss", action="store_true", help="skip faiss even if installed")
    p.add_argument("--no-startup", action="store_true", help="skip the start-up section")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        return a
    a.mb = a.mb if a.mb is not None else (100 if a.quick else 600)
    a.repeat = a.repeat if a.repeat is not None else (1 if a.quick else 3)
    a.big_gb = a.big_gb if a.big_gb is not None else (0.5 if a.quick else 3.0)
    try:
        a.dims = [int(v) for v in a.dims.split(",") if v.strip()]
        a.bits = [int(v) for v in a.bits.split(",") if v.strip()]
    except ValueError:
        p.error("--dims and --bits take comma-separated integers")
    if not a.dims or not a.bits or min(a.dims) < 2 or not all(1 <= b <= 8 for b in a.bits):
        p.error("need dims >= 2 and bits in 1..8")
    if a.repeat < 1 or a.mb <= 0 or a.big_gb < 0 or (a.rows is not None and a.rows < 8):
        p.error("--repeat >= 1, --mb > 0, --big-gb >= 0, --rows >= 8")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        sys.path.insert(0, HERE)
        worker(json.loads(args.worker))
        return 0

    os.makedirs(args.workdir, exist_ok=True)
    tq = tq_executable(args.tq)
    zstd = args.zstd or ("/usr/bin/zstd" if os.access("/usr/bin/zstd", os.X_OK)
                         else shutil.which("zstd"))
    meta = machine_info(tq, zstd)
    have_faiss = bool(meta["faiss"]) and not args.no_faiss
    if args.no_faiss:
        meta["faiss"] = None
        meta["faiss_skipped"] = True
    if have_faiss:
        meta["faiss_qtypes"] = {str(b): faiss_qtype(b).replace("QT_", "")
                                for b in args.bits}
    if not zstd:
        log("zstd not found: the zstd rows and ratios are left out")
    trees = trees_for(args.baseline)
    if args.baseline:
        meta["trees"] = {t.key: t.info for t in trees}
        meta["numba_cache_dir_removed"] = "NUMBA_CACHE_DIR" in os.environ
    meta["rss_floor"] = rss_floor()
    prime(tq, args.bits, args.workdir, trees)
    t_start = time.perf_counter()
    results: list[dict] = []
    try:
        if not args.no_startup:
            bench_startup(tq, zstd, args.workdir, results, trees)
        for d in args.dims:
            bench_dim(d, args.bits, args, tq, zstd, have_faiss, results, trees)
        if args.big_gb > 0:
            bench_memory(args, tq, results, trees)
    except KeyboardInterrupt:
        log("interrupted: reporting what was measured")
    meta["loadavg_end"] = os.getloadavg()[0]
    meta["elapsed_s"] = round(time.perf_counter() - t_start, 1)
    text = report(meta, results, args)
    print(text)
    print(f"(bench took {meta['elapsed_s']:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "args": {k: v for k, v in vars(args).items()
                                              if k != "worker"},
                       "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
