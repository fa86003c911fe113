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

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1 << 20
BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
CHECK_ROWS = 4096          # rows compared against the input for the nmse sanity column
GEN_BLOCK = 1 << 16        # rows per block when writing synthetic inputs


# =============================================================================== workers
#
# `bench.py --worker SPEC` runs one in-memory measurement in its own process, so that its
# peak RSS (taken with os.wait4 by the launcher that starts it, see run()) belongs to that
# measurement alone.  It prints one JSON line on stdout.


def _vmrss() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _nmse(x, y) -> float:
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    den = np.sum(x * x, axis=1)
    return float(np.mean(np.sum((x - y) ** 2, axis=1) / np.where(den > 0, den, 1.0)))


class _TqLib:
    """tqcli.compress / tqcli.decompress; the artifact is the .tqz bytes."""

    def __init__(self, d, bits):
        import tqcli

        self.tq, self.bits = tqcli, bits

    def warm(self, x):
        self.tq.decompress(self.tq.compress(x, bits=self.bits))

    def compress(self, x):
        return self.tq.compress(x, bits=self.bits)

    def size(self, blob):
        return len(blob)

    def save(self, blob, path):
        with open(path, "wb") as f:
            f.write(blob)

    def load(self, path):
        with open(path, "rb") as f:
            return f.read()

    def decompress(self, blob, n):
        return self.tq.decompress(blob)

    def stages(self):
        return {}


class _Dense:
    """bench/dense_baseline.py; the artifact is (packed codes, norms)."""

    def __init__(self, d, bits):
        from dense_baseline import DenseTurboQuant

        self.q = DenseTurboQuant(d, bits, seed=0)

    def warm(self, x):
        p, nr = self.q.compress(x)
        self.q.decompress(p, nr, x.shape[0])

    def compress(self, x):
        self.q.stages = {}
        return self.q.compress(x)

    def size(self, art):
        return art[0].nbytes + art[1].nbytes

    def save(self, art, path):
        import numpy as np

        with open(path, "wb") as f:
            np.save(f, art[0])
            np.save(f, art[1])

    def load(self, path):
        import numpy as np

        with open(path, "rb") as f:
            return np.load(f), np.load(f)

    def decompress(self, art, n):
        self.q.stages = {}
        return self.q.decompress(art[0], art[1], n)

    def stages(self):
        return dict(self.q.stages)


class _Faiss:
    """faiss ScalarQuantizer QT_<b>bit_tqmse behind a RandomRotationMatrix.

    faiss's TurboQuant-MSE type quantises unit vectors coordinate by coordinate with the
    Lloyd-Max codebook of the sphere, but it neither rotates nor normalises: fed raw vectors
    it is not TurboQuant.  So the pipeline here is the full algorithm built from faiss parts:
    rotate with faiss.RandomRotationMatrix (BLAS), keep each norm as float32, normalise,
    compute_codes; and decode, times the norm, reverse_transform.  Blocks of 64k rows,
    written into preallocated arrays through faiss's no-copy entry points.
    """

    BLOCK = 1 << 16

    def __init__(self, d, bits):
        import faiss
        import numpy as np

        self.faiss, self.np, self.d = faiss, np, d
        name = faiss_qtype(bits)
        self.sq = faiss.ScalarQuantizer(d, getattr(faiss.ScalarQuantizer, name))
        self.sq.train(np.zeros((1, d), np.float32))   # the tqmse codebook ignores the data
        self.rr = faiss.RandomRotationMatrix(d, d)
        self.rr.init(0)
        self._stages = {}

    def _tick(self, k, t):
        t1 = time.perf_counter()
        self._stages[k] = self._stages.get(k, 0.0) + t1 - t
        return t1

    def warm(self, x):
        art = self.compress(x)
        self.decompress(art, x.shape[0])

    def compress(self, x):
        np, sp = self.np, self.faiss.swig_ptr
        self._stages = {}
        n = x.shape[0]
        codes = np.empty((n, self.sq.code_size), np.uint8)
        norms = np.empty(n, np.float32)
        buf = np.empty((min(self.BLOCK, n), self.d), np.float32)
        for a in range(0, n, self.BLOCK):
            m = min(self.BLOCK, n - a)
            t = time.perf_counter()
            xr = buf[:m]
            self.rr.apply_noalloc(m, sp(x[a:a + m]), sp(xr))
            t = self._tick("rotate", t)
            nr = np.sqrt(np.einsum("ij,ij->i", xr, xr))
            norms[a:a + m] = nr
            xr *= np.divide(1.0, nr, out=np.zeros_like(nr), where=nr > 0)[:, None]
            t = self._tick("norm", t)
            self.sq.compute_codes_c(sp(xr), sp(codes[a:a + m]), m)
            self._tick("quantise", t)
        return codes, norms

    def size(self, art):
        return art[0].nbytes + art[1].nbytes

    save = _Dense.save
    load = _Dense.load

    def decompress(self, art, n):
        np, sp = self.np, self.faiss.swig_ptr
        self._stages = {}
        codes, norms = art
        out = np.empty((n, self.d), np.float32)
        buf = np.empty((min(self.BLOCK, n), self.d), np.float32)
        for a in range(0, n, self.BLOCK):
            m = min(self.BLOCK, n - a)
            t = time.perf_counter()
            y = buf[:m]
            self.sq.decode_c(sp(codes[a:a + m]), sp(y), m)
            t = self._tick("decode", t)
            y *= norms[a:a + m, None]
            t = self._tick("scale", t)
            self.rr.reverse_transform_c(m, sp(y), sp(out[a:a + m]))
            self._tick("rotate", t)
        return out

    def stages(self):
        return dict(self._stages)


IMPLS = {"tq": _TqLib, "dense": _Dense, "faiss": _Faiss}


def faiss_qtype(bits: int) -> str:
    """The faiss ScalarQuantizer type used for b bits (TurboQuant-MSE when faiss has it)."""
    import faiss

    for name in (f"QT_{bits}bit_tqmse", f"QT_{bits}bit"):
        if hasattr(faiss.ScalarQuantizer, name):
            return name
    raise RuntimeError(f"faiss has no {bits}-bit scalar quantizer")


def worker(spec: dict) -> None:
    import numpy as np

    impl = IMPLS[spec["impl"]](spec["d"], spec["bits"])
    rng = np.random.default_rng(12345)
    impl.warm(rng.standard_normal((256, spec["d"])).astype(np.float32))   # compile / load
    n = spec["n"]
    times, best_stages = [], {}
    result = {}
    if spec["op"] == "compress":
        x = np.load(spec["input"])                                        # into memory
        rss_before = _vmrss()
        art = None
        for _ in range(spec["repeat"]):
            art = None
            t0 = time.perf_counter()
            art = impl.compress(x)
            times.append(time.perf_counter() - t0)
            if times[-1] == min(times):
                best_stages = impl.stages()
        impl.save(art, spec["artifact"])
        result["out_bytes"] = impl.size(art)
    else:
        art = impl.load(spec["artifact"])
        rss_before = _vmrss()
        y = None
        for _ in range(spec["repeat"]):
            y = None
            t0 = time.perf_counter()
            y = impl.decompress(art, n)
            times.append(time.perf_counter() - t0)
            if times[-1] == min(times):
                best_stages = impl.stages()
        k = min(n, CHECK_ROWS)
        x0 = np.load(spec["input"], mmap_mode="r")[:k]
        result["nmse"] = _nmse(x0, np.asarray(y).reshape(-1, spec["d"])[:k])
    result.update(times=times, rss_before=rss_before, stages=best_stages)
    print(json.dumps(result))


# =============================================================================== running


# A child's ru_maxrss counts the memory image it was forked from: Linux records the old
# image's high-water mark at exec, and posix_spawn / vfork children share the parent's
# image until then.  Children spawned straight from this process (numpy, faiss, ...
# loaded) would all report at least this process's size.  So every measured command is
# started by a minimal launcher (python -S, a few MiB), which times it and takes its
# rusage; the launcher's own size is the floor of every RSS figure (reported at the top).
LAUNCHER = r"""
import os, sys, time
out, err, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
fa = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
      (os.POSIX_SPAWN_OPEN, 1, out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
      (os.POSIX_SPAWN_OPEN, 2, err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]
t0 = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=fa)
_, st, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
print(repr(wall), ru.ru_maxrss, os.waitstatus_to_exitcode(st))
"""


def run(argv, env=None, stdout_path=None):
    """Run argv alone; return (wall seconds, peak RSS bytes of the child, exit status, err).

    The launcher times the command from spawn to exit (os.wait4) and reports that child's
    ru_maxrss.
    """
    fd, errpath = tempfile.mkstemp(prefix="tqbench-err-")
    os.close(fd)
    try:
        exe = shutil.which(argv[0]) or argv[0]
        res = subprocess.run([sys.executable, "-S", "-E", "-c", LAUNCHER,
                              stdout_path or os.devnull, errpath, exe, *argv[1:]],
                             env=os.environ if env is None else env, capture_output=True,
                             text=True)
        if res.returncode != 0:
            raise Failure(f"launcher failed: {res.stderr.strip()[-300:]}")
        wall, maxrss, code = res.stdout.split()
        with open(errpath, errors="replace") as f:
            errtext = f.read().strip()
    finally:
        os.unlink(errpath)
    return float(wall), int(maxrss) * 1024, int(code), errtext


def rss_floor() -> int:
    """Peak RSS reported for a process that allocates nothing (/bin/true): the floor."""
    true = shutil.which("true") or "/bin/true"
    return min(run([true])[1] for _ in range(3))


def warm_cache(path: str) -> None:
    """Read a file once so that it is in the page cache before timing."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 * MIB)
        while f.readinto(buf):
            pass


def remove(*paths) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Failure(Exception):
    pass


def measure_cmd(label, argv, repeat, before=None, env=None):
    """Best of `repeat` runs of a command: {'times', 'rss', 'best', 'peak_rss'}."""
    times, rss = [], []
    for _ in range(repeat):
        if before:
            before()
        wall, peak, code, err = run(argv, env=env)
        if code != 0:
            raise Failure(f"{label}: exit {code}: {(err.splitlines() or [''])[-1]}")
        times.append(wall)
        rss.append(peak)
    return {"times": times, "rss": rss, "best": min(times), "peak_rss": max(rss)}


def measure_worker(label, spec, env=None, workdir="."):
    out = os.path.join(workdir, "worker-out.json")
    argv = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    try:
        wall, peak, code, err = run(argv, env=env, stdout_path=out)
        with open(out) as f:
            text = f.read().strip()
    finally:
        remove(out)
    if code != 0:
        raise Failure(f"{label}: exit {code}: {(err.splitlines() or [''])[-1]}")
    res = json.loads(text.splitlines()[-1])
    res.update(best=min(res["times"]), peak_rss=peak, process_wall=wall)
    return res


def nmse_of_files(a: str, b: str) -> float:
    import numpy as np

    x = np.load(a, mmap_mode="r")
    y = np.load(b, mmap_mode="r")
    d = x.shape[-1]
    k = min(x.shape[0], CHECK_ROWS)
    return _nmse(x.reshape(-1, d)[:k], y.reshape(-1, d)[:k])


# =============================================================================== inputs


def vectors_for(mb: float, d: int) -> int:
    """--mb M means M * 256,000 / d vectors: 600 -> 200,000 vectors (614 MB) at d = 768."""
    return max(8, int(round(mb * 256000 / d)))


def ensure_input(path: str, n: int, d: int, seed: int) -> str:
    """A float32 N(0, 1) array of shape (n, d) at path, reused when it is already there."""
    import numpy as np
    from numpy.lib.format import open_memmap

    if os.path.exists(path):
        try:
            a = np.load(path, mmap_mode="r")
            if a.shape == (n, d) and a.dtype == np.float32:
                return "reused"
        except (ValueError, OSError):
            pass
        remove(path)
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


def prime(tq, bits_list, workdir) -> None:
    """One untimed tq compress + decompress per bit width: numba's on-disk cache is filled
    (it is recompiled after any change to the kernels) before anything is timed."""
    log("priming tq (numba cache) ...")
    small = small_input(workdir)
    out, back = os.path.join(workdir, "out-prime.tqz"), os.path.join(workdir, "out-prime.npy")
    try:
        for b in sorted(set(bits_list) | {4}):
            for argv in ([tq, "compress", small, "-b", str(b), "-o", out, "-f", "-q"],
                         [tq, "decompress", out, "-o", back, "-f", "-q"]):
                _, _, code, err = run(argv)
                if code != 0:
                    sys.exit(f"bench: {' '.join(argv)} failed: {err}")
    finally:
        remove(small, out, back)


def bench_startup(tq, zstd, workdir, results):
    log("start-up ...")
    small = small_input(workdir)
    out = os.path.join(workdir, "out-small.tqz")
    zout = os.path.join(workdir, "out-small.zst")
    cases = [("python -c pass", [sys.executable, "-c", "pass"]),
             ("tq --help", [tq, "--help"]),
             ("tq compress 1 MiB .npy (1024 x 256, -b 4)",
              [tq, "compress", small, "-b", "4", "-o", out, "-f", "-q"])]
    if zstd:
        cases.append(("zstd -1 -T0, same 1 MiB file", [zstd, "-1", "-T0", "-q", "-f", small,
                                                         "-o", zout]))
    warm_cache(small)
    try:
        for label, argv in cases:
            r = measure_cmd(label, argv, 5)
            results.append({"section": "startup", "label": label, **r})
    finally:
        remove(small, out, zout)


def bench_dim(d, bits_list, args, tq, zstd, have_faiss, results):
    n = vectors_for(args.mb, d)
    path = os.path.join(args.workdir, f"gauss-d{d}-n{n}.npy")
    log(f"d={d}: input {path} ({n} x {d}) ...")
    how = ensure_input(path, n, d, seed=d)
    nbytes = n * d * 4
    file_bytes = os.path.getsize(path)
    base = {"d": d, "n": n, "in_bytes": nbytes, "input": path}
    w = args.workdir
    zst, back = os.path.join(w, "out.zst"), os.path.join(w, "out-back.npy")
    tqz = os.path.join(w, "out.tqz")
    art = os.path.join(w, "out-artifact.bin")
    log(f"d={d}: input {how}")

    def record(tool, op, bits, res, **extra):
        results.append({"section": "main", "tool": tool, "op": op, "bits": bits, **base,
                        **res, **extra})
        log(f"  d={d} b={bits if bits is not None else '-'} {tool:<6} {op:<10} "
            f"{nbytes / res['best'] / 1e9:6.3f} GB/s  peak {res['peak_rss'] / MIB:7.0f} MiB")

    def failed(tool, op, bits, e):
        results.append({"section": "main", "tool": tool, "op": op, "bits": bits, **base,
                        "error": str(e)})
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
        # (a) the tq command, file to file
        try:
            warm_cache(path)
            r = measure_cmd("tq compress", [tq, "compress", path, "-b", str(b), "-o", tqz,
                                            "-f", "-q"], args.repeat, before=lambda: remove(tqz))
            record("tq-cli", "compress", b, r, out_bytes=os.path.getsize(tqz),
                   file_bytes=file_bytes)
            r = measure_cmd("tq decompress", [tq, "decompress", tqz, "-o", back, "-f", "-q"],
                            args.repeat, before=lambda: remove(back))
            record("tq-cli", "decompress", b, r, nmse=nmse_of_files(path, back))
        except Failure as e:
            failed("tq-cli", "compress", b, e)
        finally:
            remove(tqz, back)

        # (b) the library, (d) the dense numpy baseline, (e) faiss: in memory, own process
        impls = [("tq-lib", "tq", None), ("dense", "dense", dense_env())]
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


def bench_memory(args, tq, results):
    gb = args.big_gb
    d, b = 768, 4
    n = max(8, int(round(gb * 1e9 / (4 * d), -3)))
    path = os.path.join(args.workdir, f"gauss-d{d}-n{n}.npy")
    log(f"memory: input {path} ({n} x {d}, {n * d * 4 / 1e9:.2f} GB) ...")
    how = ensure_input(path, n, d, seed=10_000 + d)
    log(f"memory: input {how}")
    tqz = os.path.join(args.workdir, "out-big.tqz")
    back = os.path.join(args.workdir, "out-big-back.npy")
    base = {"section": "memory", "d": d, "bits": b, "n": n, "in_bytes": n * d * 4}
    try:
        warm_cache(path)
        r = measure_cmd("tq compress (big)", [tq, "compress", path, "-b", str(b), "-o", tqz,
                                              "-f", "-q"], 1)
        results.append({**base, "tool": "tq-cli", "op": "compress", **r,
                        "out_bytes": os.path.getsize(tqz)})
        log(f"  big compress {n * d * 4 / r['best'] / 1e9:.3f} GB/s peak "
            f"{r['peak_rss'] / MIB:.0f} MiB")
        r = measure_cmd("tq decompress (big)", [tq, "decompress", tqz, "-o", back, "-f", "-q"],
                        1)
        results.append({**base, "tool": "tq-cli", "op": "decompress", **r})
        log(f"  big decompress {n * d * 4 / r['best'] / 1e9:.3f} GB/s peak "
            f"{r['peak_rss'] / MIB:.0f} MiB")
    except Failure as e:
        results.append({**base, "tool": "tq-cli", "op": "compress", "error": str(e)})
        log(f"  FAILED {e}")
    finally:
        remove(tqz, back)


# =============================================================================== report

TOOL_LABEL = {
    "tq-cli": "tq CLI        file->file",
    "tq-lib": "tq library    in memory",
    "dense": "dense numpy   in memory",
    "faiss": "faiss SQ+rot  in memory",
    "zstd": "zstd -1 -T0   file->file",
}


def _rate(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.0f}k"
    return f"{v:.0f}"


def _find(results, **kw):
    for r in results:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def report(meta, results, args) -> str:
    L = []
    add = L.append
    gib = meta["mem_bytes"] / (1 << 30)
    add(f"tq benchmark  {meta['date']}")
    add(f"machine   {meta['nproc']} cores (nproc), {meta['cpu']}, {gib:.1f} GiB RAM; "
        f"load average {meta['loadavg_start']:.2f} at start, {meta['loadavg_end']:.2f} at end")
    fa = (f"faiss {meta['faiss']}" if meta["faiss"] else
          "faiss skipped" if meta.get("faiss_skipped") else "faiss not installed")
    add(f"versions  tq {meta['tq']} ({meta['tq_git'] or 'no git'}), python {meta['python']}, "
        f"numpy {meta['numpy']}, numba {meta['numba']}, "
        f"zstd {meta['zstd'] or 'not found'}, {fa}")
    add(f"tq        {meta['tq_path']}")
    add(f"rss floor {meta['rss_floor'] / MIB:.1f} MiB (what the launcher reports for /bin/true; "
        f"included in every peak RSS figure)")
    blas = ", ".join(f"{k}={v}" for k, v in meta["blas_env"].items())
    runs = f"{args.repeat} runs" if args.repeat > 1 else "1 run"
    add(f"runs      best of {runs}, one process at a time; inputs: N(0,1) float32 "
        f".npy in {args.workdir}, page-cached")
    add("units     GB/s = 1e9 bytes of float32 input (= output of decompress) per second; "
        "vec/s = vectors per second; MiB = 2^20 bytes")
    if blas:
        add(f"note      {blas} set here; removed for the dense baseline only")
    add("")

    # ---- start-up
    st = [r for r in results if r.get("section") == "startup"]
    if st:
        add("START-UP (wall time of the whole command, warm cache; best / median of 5)")
        for r in st:
            ts = sorted(r["times"])
            add(f"  {r['label']:<44}{ts[0] * 1e3:8.0f} ms {ts[len(ts) // 2] * 1e3:8.0f} ms"
                f"   peak {r['peak_rss'] / MIB:5.0f} MiB")
        add("")

    # ---- main table
    main = [r for r in results if r.get("section") == "main"]
    if main:
        add("THROUGHPUT AND MEMORY (peak RSS of the process; in-memory rows: peak, and "
            "in brackets its growth during the timed calls)")
        h1 = (f"{'d':>5} {'b':>2} {'n':>9}  {'tool':<26}"
              f"{'compress':>9} {'':>7} {'':>13}  "
              f"{'decompress':>10} {'':>7} {'':>13}  {'size':>6}  {'nmse':>8}")
        h2 = (f"{'':>5} {'':>2} {'':>9}  {'':<26}"
              f"{'GB/s':>9} {'vec/s':>7} {'peak MiB':>13}  "
              f"{'GB/s':>10} {'vec/s':>7} {'peak MiB':>13}  {'ratio':>6}  {'':>8}")
        add(h1)
        add(h2)
        add("-" * len(h1))
        dims = sorted({r["d"] for r in main})
        for d in dims:
            bits = sorted({r["bits"] for r in main if r["d"] == d and r["bits"] is not None})
            for b in bits:
                first = True
                for tool in ("tq-cli", "tq-lib", "dense", "faiss", "zstd"):
                    bsel = None if tool == "zstd" else b
                    c = _find(main, d=d, bits=bsel, tool=tool, op="compress")
                    x = _find(main, d=d, bits=bsel, tool=tool, op="decompress")
                    if c is None and x is None:
                        continue
                    lead = (f"{d:>5} {b:>2} {c['n'] if c else x['n']:>9}" if first
                            else f"{'':>5} {'':>2} {'':>9}")
                    first = False
                    label = TOOL_LABEL[tool]
                    add(f"{lead}  {label:<26}{_cells(c)}  {_cells(x)}  "
                        f"{_ratio(c):>6}  {_nmse_cell(x):>8}")
            add("")
        if any(r["tool"] == "zstd" for r in main):
            add("zstd does not depend on b: it runs once per d and its row is repeated under "
                "each b")
        if any(r["tool"] == "faiss" for r in main):
            qts = ", ".join(f"QT_{q}" for q in meta.get("faiss_qtypes", {}).values())
            add(f"faiss SQ+rot = faiss.ScalarQuantizer {qts} behind faiss.RandomRotationMatrix,"
                " norms kept as float32")
            add("")
        if any(r.get("error") for r in main):
            add("errors:")
            for r in main:
                if r.get("error"):
                    add(f"  d={r['d']} b={r['bits']} {r['tool']}: {r['error']}")
            add("")

        # ---- the figures that count
        add("FIGURES THAT COUNT: tq throughput / baseline throughput, same run "
            "(> 1: tq is faster)")
        cols = [("CLI/zstd", "tq-cli", "zstd", "comp"), ("CLI/zstd", "tq-cli", "zstd", "dec"),
                ("lib/dense", "tq-lib", "dense", "comp"), ("lib/dense", "tq-lib", "dense", "dec")]
        if meta["faiss"]:
            cols += [("lib/faiss", "tq-lib", "faiss", "comp"),
                     ("lib/faiss", "tq-lib", "faiss", "dec")]
        add(f"{'d':>5} {'b':>2}  " + "".join(f"{c[0] + ' ' + c[3]:>16}" for c in cols))
        for d in dims:
            for b in sorted({r["bits"] for r in main if r["d"] == d and r["bits"] is not None}):
                cells = []
                for _, mine, theirs, op in cols:
                    opn = "compress" if op == "comp" else "decompress"
                    a = _find(main, d=d, bits=b, tool=mine, op=opn)
                    z = _find(main, d=d, bits=None if theirs == "zstd" else b, tool=theirs,
                              op=opn)
                    if a and z and "best" in a and "best" in z:
                        cells.append(f"{z['best'] / a['best']:.2f}x")
                    else:
                        cells.append("-")
                add(f"{d:>5} {b:>2}  " + "".join(f"{c:>16}" for c in cells))
        if meta.get("faiss_skipped"):
            add("  (faiss skipped: --no-faiss)")
        elif not meta["faiss"]:
            add("  (faiss not installed: pip install faiss-cpu==1.15.1 adds the lib/faiss "
                "columns)")
        add("")

    # ---- memory
    mem = [r for r in results if r.get("section") == "memory"]
    if mem:
        add("MEMORY: peak RSS of the tq command against input size (d=768, b=4, file->file)")
        add(f"  {'input':<32}{'compress':>10} {'':>9}   {'decompress':>10} {'':>9}")
        add(f"  {'':<32}{'GB/s':>10} {'peak MiB':>9}   {'GB/s':>10} {'peak MiB':>9}")
        rows = []
        small_c = _find(results, section="main", d=768, bits=4, tool="tq-cli", op="compress")
        small_x = _find(results, section="main", d=768, bits=4, tool="tq-cli",
                        op="decompress")
        if small_c and "best" in small_c:
            rows.append((small_c, small_x))
        big_c = _find(mem, op="compress")
        big_x = _find(mem, op="decompress")
        rows.append((big_c, big_x))
        for c, x in rows:
            n, nb = c["n"], c["in_bytes"]
            name = f"{nb / 1e9:.2f} GB ({n:,} vectors)"
            add(f"  {name:<32}{_gbps(c):>10} {_mib(c):>9}   {_gbps(x):>10} {_mib(x):>9}")
        if len(rows) == 2 and all(r and "peak_rss" in r for pair in rows for r in pair):
            grow = [rows[1][i]["peak_rss"] - rows[0][i]["peak_rss"] for i in (0, 1)]
            k = rows[1][0]["in_bytes"] / rows[0][0]["in_bytes"]
            flat = all(g <= 0.15 * rows[0][i]["peak_rss"] + 16 * MIB
                       for i, g in enumerate(grow))
            g0, g1 = (int(round(g / MIB)) for g in grow)
            add(f"  {k:.1f}x the input: peak RSS {g0:+d} MiB (compress), "
                f"{g1:+d} MiB (decompress) -> "
                + ("flat: memory does not grow with input size" if flat
                   else "GROWS with input size"))
        elif len(rows) == 1:
            add("  (run with d=768 and b=4 in --dims/--bits for the comparison row)")
        add("")
    return "\n".join(L)


def _gbps(r):
    if not r or "best" not in r:
        return "error" if r else "-"
    return f"{r['in_bytes'] / r['best'] / 1e9:.3f}"


def _mib(r):
    return f"{r['peak_rss'] / MIB:.0f}" if r and "peak_rss" in r else "-"


def _cells(r) -> str:
    if r is None:
        return f"{'-':>9} {'':>7} {'':>13}"
    if "best" not in r:
        return f"{'error':>9} {'':>7} {'':>13}"
    gbps = r["in_bytes"] / r["best"] / 1e9
    vps = r["n"] / r["best"]
    peak = r["peak_rss"] / MIB
    if "rss_before" in r:
        mem = f"{peak:.0f} (+{max(0, r['peak_rss'] - r['rss_before']) / MIB:.0f})"
    else:
        mem = f"{peak:.0f}"
    return f"{gbps:>9.3f} {_rate(vps):>7} {mem:>13}"


def _ratio(c) -> str:
    if not c or "out_bytes" not in c:
        return "-"
    return f"{c['in_bytes'] / c['out_bytes']:.2f}x"


def _nmse_cell(x) -> str:
    if not x or "nmse" not in x:
        return "-"
    v = x["nmse"]
    return "lossless" if v == 0 else f"{v:.5f}"


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
    if a.repeat < 1 or a.mb <= 0 or a.big_gb < 0:
        p.error("--repeat >= 1, --mb > 0, --big-gb >= 0")
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
    meta["rss_floor"] = rss_floor()
    prime(tq, args.bits, args.workdir)
    t_start = time.perf_counter()
    results: list[dict] = []
    try:
        if not args.no_startup:
            bench_startup(tq, zstd, args.workdir, results)
        for d in args.dims:
            bench_dim(d, args.bits, args, tq, zstd, have_faiss, results)
        if args.big_gb > 0:
            bench_memory(args, tq, results)
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
