"""Writing a decoded array block by block: a .npy stream (NpySink), and the cast that
every sink applies (saturating_cast).

A sink is given the full shape first and then consecutive row blocks, so that a decoded
array of any size costs one block of memory.  The HDF5 sink, which needs h5py, is in
arrayio.hdf5.
"""

from __future__ import annotations

import numpy as np

from . import bf16
from .npy import npy_header_bytes


def saturating_cast(block: np.ndarray, dtype) -> np.ndarray:
    """block as a C-contiguous array of `dtype`; values beyond a narrower float type's range
    become its largest finite value instead of infinity (a reconstruction may overshoot
    a source value that sat near the top of the range)."""
    dtype = np.dtype(dtype)
    if bf16.is_bf16(dtype):
        return np.ascontiguousarray(bf16.f32_to_bits(block).view(dtype))
    if dtype.itemsize < block.dtype.itemsize:
        top = np.finfo(dtype).max
        block = np.clip(block, -top, top)
    return np.ascontiguousarray(block, dtype=dtype)


CAST_PIECE = 1 << 22  # bytes of one piece of a block cast for writing (at least one row)


def cast_pieces(block: np.ndarray, dtype):
    """(first row, piece) of `block` cast to `dtype` (saturating_cast) in pieces of rows of
    at most CAST_PIECE bytes each in the wider of the two dtypes, so that the cast of a
    large decoded chunk costs a few MiB rather than another chunk."""
    dtype = np.dtype(dtype)
    if block.ndim != 2:
        yield 0, saturating_cast(block, dtype)
        return
    width = max(block.dtype.itemsize, dtype.itemsize) * max(1, block.shape[1])
    step = max(1, CAST_PIECE // width)
    for a in range(0, block.shape[0], step):
        yield a, saturating_cast(block[a:a + step], dtype)


class NpySink:
    """Writes a C-order .npy of known shape to a binary stream, block by block."""

    def __init__(self, stream, shape, dtype):
        self.stream = stream
        self.dtype = np.dtype(dtype).newbyteorder("<")
        stream.write(npy_header_bytes(shape, self.dtype))

    def write(self, block: np.ndarray) -> None:
        for _, out in cast_pieces(block, self.dtype):
            if bf16.is_bf16(out.dtype):  # a buffer of ml_dtypes' type is not exportable
                out = out.view(np.uint16)
            self.stream.write(out.data)

    def close(self) -> None:
        self.stream.flush()
