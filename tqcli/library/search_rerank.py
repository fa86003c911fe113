"""Re-ranking search hits from the original floats: only the candidates' rows are read.

A source is an in-memory array (anything numpy reads as (n, d) or (..., d)), or a name
as the command line gives one: a .npy file (memory-mapped), an HDF5 dataset
(FILE.h5:/path) or a local zarr array.  Rows are read sorted and once each, in batches
of queries so that memory stays bounded, and scored canonically (search_topk) against
the original values: the result is the exact top-k of the source among the candidates.
"""

from __future__ import annotations

import numpy as np

from .. import arrayio
from ..errors import InputError
from . import search_topk as st

READ_BYTES = 32 << 20  # float64 rows held at once for one batch of queries


class RowSource:
    """Rows of an original array by id: take(ids) for sorted unique ids -> (len, d)."""

    def __init__(self, src, name: str | None = None):
        self._close = None
        self.name = name
        if isinstance(src, (str, bytes)) or hasattr(src, "__fspath__"):
            self._open(str(src))
        else:
            a = np.asarray(src)
            if a.ndim == 0:
                raise InputError("the re-rank source must be an array of vectors")
            self._array = a.reshape(-1, a.shape[-1])
            self.name = name or "<array>"
        self.n, self.dim = self._array.shape[0], self._array.shape[1]

    def _open(self, spec: str) -> None:
        from ..arrayio.hdf5 import H5Source
        from ..arrayio.sources import NpyStreamSource
        from ..arrayio.zarrio import ZarrSource

        src = arrayio.open_input(spec)
        self.name = self.name or spec
        if isinstance(src, NpyStreamSource):
            path = src.name
            src.close()
            if path == "-":
                raise InputError("the re-rank source cannot be stdin", "-")
            try:
                a = np.load(path, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as e:
                raise InputError(f"cannot map as .npy ({e})", path) from None
            self._array = a.reshape(-1, a.shape[-1]) if a.ndim else a
        elif isinstance(src, H5Source):
            self._close = src.close
            ds = src.ds
            self._array = _NdRows(lambda sel: ds[sel], tuple(ds.shape))
        elif isinstance(src, ZarrSource):
            arr = src.array
            self._array = _NdRows(lambda sel: np.asarray(arr[sel]), tuple(arr.shape))
        else:  # pragma: no cover - open_input gives only these
            src.close()
            raise InputError("cannot read rows of this source", spec)

    def take(self, ids: np.ndarray) -> np.ndarray:
        rows = np.asarray(self._array[ids])
        if rows.dtype.kind != "f":
            rows = rows.astype(np.float32)
        return rows

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _NdRows:
    """Row access to an N-d dataset (HDF5, zarr) seen as (n, d): sorted ids are read one
    leading-axes run at a time (contiguous runs of rows)."""

    def __init__(self, read, shape):
        self.read, self.nd_shape = read, shape
        self.shape = (int(np.prod(shape[:-1], dtype=np.int64)), shape[-1])

    def __getitem__(self, ids):
        ids = np.asarray(ids, np.int64)
        out = None
        if len(self.nd_shape) == 2:
            runs = np.flatnonzero(np.diff(ids) != 1) + 1
            parts = [self.read(np.s_[int(r[0]):int(r[-1]) + 1])
                     for r in np.split(ids, runs) if r.size]
        else:
            parts = [self.read(tuple(int(i) for i in np.unravel_index(j, self.nd_shape[:-1])))
                     [None, :] for j in ids]
        out = np.concatenate(parts) if parts else np.empty((0, self.shape[1]), np.float32)
        return out


def rerank(source: RowSource, q: np.ndarray, cand: np.ndarray, k: int, metric: str,
           n: int):
    """The best k of each query's candidate ids (m, c) (-1: none) by the canonical key
    against the source's rows: (ids, keys).  The source must hold n vectors of q's
    dimension, as the file does (another array would re-rank by the wrong rows)."""
    m, c = cand.shape
    if source.dim != q.shape[1]:
        raise InputError(f"the re-rank source has vectors of {source.dim} values, the "
                         f"file {q.shape[1]}", source.name)
    if source.n != n:
        raise InputError(f"the re-rank source has {source.n} vectors, the file {n} "
                         f"(it must be the file's source)", source.name)
    out_ids = np.full((m, min(k, c)), -1, np.int64)
    out_keys = np.full((m, min(k, c)), -np.inf)
    per_query = max(1, c * q.shape[1] * 8)
    step = max(1, READ_BYTES // per_query)
    for a in range(0, m, step):
        block = cand[a:a + step]
        valid = block >= 0
        uniq = np.unique(block[valid])
        rows = np.asarray(source.take(uniq), np.float64)
        pos = np.searchsorted(uniq, np.where(valid, block, uniq[0] if uniq.size else 0))
        gathered = rows[pos] if uniq.size else np.zeros(block.shape + (q.shape[1],))
        keys = st.canonical_keys(q[a:a + step, None, :], gathered, metric)
        keys = np.where(valid, keys, -np.inf)
        ids, keys = st.sort_hits(np.where(valid, block, -1), keys, k)
        out_ids[a:a + step], out_keys[a:a + step] = ids, keys
    return out_ids, out_keys
