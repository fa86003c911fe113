"""Members of a file of many arrays read in blocks (arrayio.containers lists the members):
a float .npz member through the zip stream (a deflated member that inflates to GiB costs
one block of memory), and the values of any member as consecutive 1-d pieces, for the
members a collection stores raw (HDF5 by hyperslabs, .npz through the zip stream, a
.npy or .safetensors range by its byte offset)."""

from __future__ import annotations

import zipfile

import numpy as np

from ..errors import InputError
from .base import ArraySource, check_shape


class ZipMemberSource(ArraySource):
    """A float .npy member of an .npz, read in blocks of rows through the zip stream (the
    header was checked when the members were listed).  Each block is inflated straight into
    its own array (read_into): the block is the only copy, never bytes beside it."""

    def __init__(self, path: str, info, dt, shape: tuple, offset: int):
        check_shape(shape)
        self.name, self.shape = path, shape
        self._stored, self.dtype = dt, dt.newbyteorder("=")
        self._info, self._offset = info, offset

    def blocks(self, rows: int):
        n, d = self.n_rows, self.dim
        with zipfile.ZipFile(self.name) as z, z.open(self._info) as m:
            m.read(self._offset)
            for a in range(0, n, rows):
                block = np.empty((min(rows, n - a), d), self._stored)
                read_into(m, block, self._info.filename)
                if self._stored != self.dtype:  # the same values, in native byte order
                    block = block.byteswap(inplace=True).view(self.dtype)
                yield block
                del block  # not held while the next block is read


READ = 1 << 18  # bytes inflated by one read of a zip member


def read_into(m, out: np.ndarray, member: str) -> None:
    """Fill the C-contiguous array `out` from the zip member stream `m`, READ bytes at a
    time: zipfile's read(n) inflates n bytes into pieces and joins them (twice n at its
    peak) before a caller could copy them, so a whole block read at once costs three
    blocks."""
    view = memoryview(out).cast("B")
    at = 0
    while at < len(view):
        data = m.read(min(READ, len(view) - at))
        if not data:
            raise InputError(f"member {member!r} is truncated")
        view[at:at + len(data)] = data
        at += len(data)


PIECE = 1 << 24  # bytes of one piece of a raw member


def _step(dt: np.dtype) -> int:
    return max(1, PIECE // max(1, dt.itemsize))


def zip_pieces(path: str, info, dt: np.dtype, offset: int, count: int):
    """The `count` values of dtype `dt` after `offset` bytes of a zip member, in pieces
    (each inflated straight into its array, as ZipMemberSource's blocks)."""
    with zipfile.ZipFile(path) as z, z.open(info) as m:
        m.read(offset)
        for a in range(0, count, _step(dt)):
            piece = np.empty(min(_step(dt), count - a), dt)
            read_into(m, piece, info.filename)
            yield piece
            del piece


def file_pieces(path: str, offset: int, dt: np.dtype, count: int, step: int | None = None):
    """The `count` values of dtype `dt` at byte `offset` of a file, in pieces (of `step`
    values, by default at most PIECE bytes)."""
    step = step or _step(dt)
    with open(path, "rb") as f:
        f.seek(offset)
        for a in range(0, count, step):
            k = min(step, count - a)
            data = f.read(k * dt.itemsize)
            if len(data) != k * dt.itemsize:
                raise InputError(f"{path}: truncated (the file changed while it was read)")
            yield np.frombuffer(data, dt)


def h5_pieces(path: str, name: str):
    """The values of an HDF5 dataset in C order, in pieces read by hyperslabs."""
    import h5py

    from .members import flat_slabs

    with h5py.File(path, "r") as f:
        ds = f[name]
        if ds.dtype.kind not in "biuf" or ds.dtype.fields is not None:
            raise InputError(f"dataset {name} has dtype {ds.dtype}, which tq cannot store")
        shape, dt = tuple(ds.shape), np.dtype(ds.dtype)
        if not shape:
            yield np.asarray(ds[()], dt).reshape(1)
            return
        count = 1
        for s in shape:
            count *= s
        for a in range(0, count, _step(dt)):
            k = min(_step(dt), count - a)
            out = np.empty(k, dt)
            for sel, lo, hi in flat_slabs(shape, a, k):
                out[lo:hi] = np.asarray(ds[sel]).reshape(-1)
            yield out
