"""Acceptance of issue 15: tq's zarr codec on a Dask LocalCluster, next to `tq compress` and
next to plain zarr with zstd level 1, all in one run.

    python bench/zarr_dask.py                 # 2 GB: 699 050 x 768 float32, about 3-5 min
    python bench/zarr_dask.py --gb 0.2        # a smoke run

What it does, in --workdir (default /dev/shm/tq-zarr-bench, removed at the end unless --keep):

1. writes the input: N(0, 1) float32 rows, (n, 768), n = gb * 2^30 / 3072, as a .npy;
2. `tq compress x.npy -b 4` (the command, one process): time, ratio, nmse over every row;
3. a LocalCluster of 2 worker processes (1 thread each; tq's kernels use numba threads)
   reads the .npy block by block (memory-mapped on the workers, --chunk-rows rows a block)
   and writes it to zarr v3 with tq.turboquant bits=4, then with zarr's default serializer
   and zstd level 1 (zarr.codecs.ZstdCodec, numcodecs' Zstd underneath), and to zarr v2
   with the numcodecs codec `tq`; each store is read back on the cluster (decoding every
   chunk: a sum over the array) -- write and read wall times, store size, and each
   worker's peak RSS during that phase (VmHWM, reset before each phase via
   /proc/self/clear_refs; the worker's resident size before the phase is shown too);
4. nmse of the zarr store over every row (on the cluster) and its ratio, against step 2's;
5. the v2 store reads back the same values as the v3 store (every element compared);
6. a fresh interpreter that runs only `import zarr; zarr.open_array(store)[a:b]` decodes
   the store (tq's entry point loads the codec): its rows equal this process's read.
   The entry points come from pyproject.toml through a dist-info made for the check, so
   that it works from a checkout that is not installed (an installed tq has the same).

Timings depend on the machine and on what else runs; the ratios within one run are what to
compare.  Nothing here is part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
D = 768


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_input(path: Path, n: int, seed: int = 0) -> None:
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, D))
    rng = np.random.default_rng(seed)
    for a in range(0, n, 65536):
        k = min(65536, n - a)
        x[a:a + k] = rng.standard_normal((k, D), dtype=np.float32)
    x.flush()
    del x


def file_nmse(npy: Path, tqz: Path) -> float:
    import tqcli

    x = np.load(npy, mmap_mode="r")
    total, row = 0.0, 0
    with tqcli.open(str(tqz)) as f:
        for block in f.iter_blocks():
            xs = np.asarray(x[row:row + block.shape[0]], dtype=np.float64)
            err = ((xs - block) ** 2).sum(1) / (xs ** 2).sum(1)
            total += float(err.sum())
            row += block.shape[0]
    return total / row


def store_bytes(path: Path) -> int:
    return sum(os.path.getsize(os.path.join(top, f))
               for top, _, names in os.walk(path) for f in names)


# ------------------------------------------------------------------- on the workers


def _warm() -> int:
    """Load tq's kernels (numba's cache) and zarr, so that no phase pays for it."""
    import zarr  # noqa: F401

    import tqcli
    import tqcli.integrations.zarr_codecs  # noqa: F401

    x = np.random.default_rng(0).standard_normal((64, D)).astype(np.float32)
    tqcli.decompress(tqcli.compress(x, bits=4))
    return os.getpid()


def _reset_peak() -> int:
    """Reset this process's VmHWM to its current RSS; returns that RSS (bytes)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _peak() -> int:
    return _status("VmHWM")


# ------------------------------------------------------------------- the run


def phase(client, label, fn):
    before = client.run(_reset_peak)
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    peaks = client.run(_peak)
    log(f"  {label}: {dt:.1f} s")
    return dt, [peaks[w] for w in sorted(peaks)], [before[w] for w in sorted(before)], out


def fresh_interpreter_read(store: Path, start: int, stop: int, out: Path, site: Path) -> str:
    import tomllib

    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    info = site / "tq-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tq\nVersion: 0\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in items.items()) + "\n"
        for g, items in eps.items()))
    script = ("import sys, numpy, zarr\n"
              "a = zarr.open_array(sys.argv[1])\n"
              "numpy.save(sys.argv[4], a[int(sys.argv[2]):int(sys.argv[3])])\n"
              "print('tqcli loaded by the entry point:', 'tqcli' in sys.modules)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    r = subprocess.run([sys.executable, "-c", script, str(store), str(start), str(stop),
                        str(out)], capture_output=True, text=True, env=env, timeout=600)
    if r.returncode:
        raise SystemExit(f"fresh interpreter failed:\n{r.stderr}")
    return r.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gb", type=float, default=2.0, help="input size in GiB (default 2)")
    ap.add_argument("--chunk-rows", type=int, default=16384,
                    help="rows per Dask block and zarr chunk (default 16384: 48 MiB)")
    ap.add_argument("--workdir", default="/dev/shm/tq-zarr-bench" if os.path.isdir("/dev/shm")
                    else "/tmp/tq-zarr-bench")
    ap.add_argument("--keep", action="store_true", help="keep the workdir")
    args = ap.parse_args()

    import dask.array as da
    import zarr
    from dask.distributed import Client, LocalCluster

    sys.path.insert(0, str(ROOT))
    from tqcli.integrations.numcodecs_codec import TurboQuant
    from tqcli.integrations.zarr_codecs import TurboQuantCodec

    spec = importlib.util.spec_from_file_location("dask_compress",
                                                  ROOT / "examples" / "dask_compress.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    n = int(args.gb * (1 << 30)) // (4 * D)
    npy = work / "x.npy"
    try:
        log(f"writing {n} x {D} float32 ({n * D * 4 / 1e9:.2f} GB) to {npy}")
        write_input(npy, n)
        raw = n * D * 4

        log("tq compress")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tqcli", "compress", str(npy), "-b", "4", "-o",
                        str(work / "x.tqz"), "-f", "-q"], check=True, env=env)
        tq_time = time.perf_counter() - t
        tq_size = (work / "x.tqz").stat().st_size
        tq_nmse = file_nmse(npy, work / "x.tqz")
        (work / "x.tqz").unlink()

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
        rows = {}
        try:
            client.run(_warm)
            x = example.npy_array(str(npy), args.chunk_rows)
            stores = {
                "tq v3 (tq.turboquant b=4)": (work / "tq.zarr", dict(
                    serializer=TurboQuantCodec(bits=4), compressors=None)),
                "zstd -1 v3 (bytes + zstd)": (work / "zstd.zarr", dict(
                    compressors=zarr.codecs.ZstdCodec(level=1))),
                "tq v2 (numcodecs tq b=4)": (work / "tq2.zarr", dict(
                    zarr_format=2, compressors=TurboQuant(bits=4), filters=None)),
            }
            for label, (path, kw) in stores.items():
                log(label)
                w = phase(client, "write", lambda: x.to_zarr(str(path), mode="w", **kw))
                y = da.from_zarr(str(path))
                r = phase(client, "read", lambda: float(y.sum(dtype=np.float64).compute()))
                rows[label] = dict(write=w, read=r, size=store_bytes(path))
            y3 = da.from_zarr(str(work / "tq.zarr"))
            log("nmse of the tq store")
            z_nmse = example.row_nmse(x, y3)
            log("v2 store against v3 store")
            same_v2 = bool((da.from_zarr(str(work / "tq2.zarr")) == y3).all().compute())
        finally:
            client.close()
            cluster.close()

        log("fresh interpreter")
        a, b = n // 3, n // 3 + 5000
        note = fresh_interpreter_read(work / "tq.zarr", a, b, work / "fresh.npy", work / "site")
        fresh = np.load(work / "fresh.npy")
        same_fresh = bool(np.array_equal(fresh, zarr.open_array(str(work / "tq.zarr"))[a:b]))

        tq_ratio = raw / tq_size
        print(f"\nzarr + Dask LocalCluster(2 workers x 1 thread, processes): {n} x {D} float32 "
              f"= {raw / 1e9:.2f} GB in {work}, chunks ({args.chunk_rows}, {D}) = "
              f"{args.chunk_rows * D * 4 / 2**20:.0f} MiB of input each\n")
        head = (f"{'method':<28} {'write s':>8} {'read s':>7} {'MB':>8} {'ratio':>7} "
                f"{'peak RSS/worker MiB (write; read)':>36} {'RSS before':>11}")
        print(head)
        print("-" * len(head))
        print(f"{'tq compress -b 4 (CLI)':<28} {tq_time:>8.1f} {'':>7} {tq_size / 1e6:>8.1f} "
              f"{tq_ratio:>6.2f}x {'(one process, not a cluster)':>36}")
        for label, r in rows.items():
            wt, wpk, wb, _ = r["write"]
            rt, rpk, rb, _ = r["read"]
            pk = (f"{'/'.join(f'{p / 2**20:.0f}' for p in wpk)}; "
                  f"{'/'.join(f'{p / 2**20:.0f}' for p in rpk)}")
            print(f"{label:<28} {wt:>8.1f} {rt:>7.1f} {r['size'] / 1e6:>8.1f} "
                  f"{raw / r['size']:>6.2f}x {pk:>36} "
                  f"{'/'.join(f'{p / 2**20:.0f}' for p in wb):>11}")
        z_ratio = raw / rows["tq v3 (tq.turboquant b=4)"]["size"]
        zs = rows["zstd -1 v3 (bytes + zstd)"]
        tq3 = rows["tq v3 (tq.turboquant b=4)"]
        print()
        print(f"nmse: tq compress {tq_nmse:.6f}, zarr tq.turboquant {z_nmse:.6f} "
              f"({100 * (z_nmse / tq_nmse - 1):+.3f}%); ratio {tq_ratio:.3f}x vs {z_ratio:.3f}x "
              f"({100 * (z_ratio / tq_ratio - 1):+.3f}%)")
        print(f"time against zstd -1 on the same cluster: write {tq3['write'][0] / zs['write'][0]:.2f}x,"
              f" read {tq3['read'][0] / zs['read'][0]:.2f}x (tq / zstd; < 1 is faster)")
        print(f"zarr v2 store (numcodecs tq) reads back the same values as the v3 store: {same_v2}")
        print(f"fresh interpreter, only `import zarr`, rows {a}:{b}: equal {same_fresh} ({note})")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
