"""Compress an array larger than memory into zarr with tq's codec, on a Dask cluster.

    python examples/dask_compress.py --rows 200000 --dim 768 --out /tmp/emb.zarr
    python examples/dask_compress.py --npy big.npy --out /data/big.zarr --bits 3
    python examples/dask_compress.py --npy big.npy --out /shared/big.zarr \\
        --scheduler tcp://10.0.0.5:8786        # an existing cluster instead of a local one

The array is either a .npy file, memory-mapped block by block on the workers (never loaded
whole, anywhere), or Gaussian rows generated on the fly from a seed.  It is written to a
zarr v3 store with the tq.turboquant codec (pip install "tq[zarr]"), each Dask block one
zarr chunk spanning the whole vector axis; then read back, and the mean of
|x - x^|^2 / |x|^2 over every row and the compression ratio are printed.  Without
--scheduler a dask.distributed.LocalCluster of 2 worker processes does the work; with it,
the same code runs on that cluster (its workers need tq installed and must see --out and
--npy under the same paths).
"""

from __future__ import annotations

import argparse
import os
import time

import dask
import dask.array as da
import numpy as np
from dask.distributed import Client, LocalCluster

from tqcli.integrations.zarr_codecs import TurboQuantCodec


def _npy_block(path: str, start: int, stop: int) -> np.ndarray:
    """Rows start:stop of a .npy, read on a worker through a memory map of its own."""
    mm = np.load(path, mmap_mode="r")
    block = np.array(mm[start:stop])
    del mm
    return block


def npy_array(path: str, chunk_rows: int) -> da.Array:
    """A Dask array over a .npy of shape (n, d), one block per chunk_rows rows."""
    mm = np.load(path, mmap_mode="r")
    if mm.ndim != 2:
        raise SystemExit(f"{path}: expected a 2-D (n, d) array, got shape {mm.shape}")
    n, d = mm.shape
    dtype = mm.dtype
    del mm
    blocks = [da.from_delayed(dask.delayed(_npy_block)(path, a, min(a + chunk_rows, n)),
                              shape=(min(a + chunk_rows, n) - a, d), dtype=dtype)
              for a in range(0, n, chunk_rows)]
    return da.concatenate(blocks, axis=0)


def generated_array(rows: int, dim: int, chunk_rows: int, seed: int) -> da.Array:
    """Gaussian float32 rows, each block generated on a worker from the seed."""
    rng = da.random.default_rng(seed)
    return rng.standard_normal((rows, dim), chunks=(chunk_rows, dim), dtype=np.float32)


def store_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(top, f))
               for top, _, names in os.walk(path) for f in names)


def row_nmse(x: da.Array, y: da.Array) -> float:
    """Mean over rows of |x - y|^2 / |x|^2, in float64, block by block on the workers."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    err = ((x64 - y64) ** 2).sum(axis=1)
    den = (x64 ** 2).sum(axis=1)
    return float(da.where(den > 0, err / da.where(den > 0, den, 1.0), err).mean().compute())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--npy", help="an (n, d) float .npy (memory-mapped on the workers)")
    src.add_argument("--rows", type=int, default=200_000, help="rows to generate (default "
                     "200000) when no --npy is given")
    ap.add_argument("--dim", type=int, default=768, help="vector length of generated rows")
    ap.add_argument("--seed", type=int, default=0, help="seed of generated rows")
    ap.add_argument("--out", required=True, help="the zarr store to write (replaced)")
    ap.add_argument("--bits", type=int, default=4, help="bits per coordinate (default 4)")
    ap.add_argument("--chunk-rows", type=int, default=16384,
                    help="rows per Dask block and zarr chunk (default 16384)")
    ap.add_argument("--scheduler", metavar="ADDRESS",
                    help="an existing cluster's scheduler, e.g. tcp://host:8786 (default: a "
                         "LocalCluster of --workers processes)")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster workers (default 2)")
    args = ap.parse_args()

    if args.scheduler:
        client = Client(args.scheduler)
        cluster = None
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        if args.npy:
            x = npy_array(args.npy, args.chunk_rows)
        else:
            x = generated_array(args.rows, args.dim, args.chunk_rows, args.seed)
        codec = TurboQuantCodec(bits=args.bits)
        t = time.perf_counter()
        x.to_zarr(args.out, serializer=codec, compressors=None, mode="w")
        written = time.perf_counter() - t
        y = da.from_zarr(args.out)
        t = time.perf_counter()
        err = row_nmse(x, y)
        checked = time.perf_counter() - t
        raw = x.size * x.dtype.itemsize
        stored = store_bytes(args.out)
        print(f"{x.shape[0]} x {x.shape[1]} {x.dtype} ({raw / 1e9:.2f} GB) -> {args.out}: "
              f"{stored / 1e6:.1f} MB, ratio {raw / stored:.2f}x, nmse {err:.6f} "
              f"(bits {args.bits}, {len(client.scheduler_info()['workers'])} workers; "
              f"write {written:.1f} s, read back and compare {checked:.1f} s)")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    main()
