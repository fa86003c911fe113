"""What an input array is to tq (ArraySource), and which arrays it accepts.

Every source -- a .npy file or stream, an HDF5 dataset, an array in memory -- checks its
dtype and shape here before it reads a data byte, so that the three input paths refuse
the same arrays with the same words.  The limits come from tqcli.limits, which imports no
numpy and no container code.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..limits import MAX_DIM, MAX_NDIM, MAX_VECTORS, MIN_DIM, SOURCE_DTYPE_SIZES

FLOAT_DTYPES = frozenset(SOURCE_DTYPE_SIZES)  # float16, float32, float64


def check_dtype(dtype: np.dtype) -> None:
    """Refuse anything but a plain float16/32/64 (either byte order) or bfloat16."""
    dt = np.dtype(dtype)
    if dt.fields is not None or dt.subdtype is not None:
        raise InputError(f"structured dtype {dt} is not supported (need float16/32/64)",
                         kind="dtype")
    if dt.name == "bfloat16" and dt.itemsize == 2:  # ml_dtypes' (kind "V")
        return
    if dt.kind == "V" and dt.itemsize == 2:
        raise InputError(f"dtype {dt} is not supported (bfloat16 as ml_dtypes saves it? "
                         f"use --input-dtype bfloat16)", kind="dtype")
    if dt.kind != "f" or dt.newbyteorder("=").name not in FLOAT_DTYPES:
        raise InputError(f"dtype {dt} is not supported (need float16, float32 or float64)",
                         kind="dtype")


def check_shape(shape: tuple[int, ...]) -> None:
    """Refuse a shape the .tqz header cannot describe: the last axis is the vector."""
    if len(shape) == 0:
        raise InputError("a 0-dimensional array holds no vector", kind="shape")
    if len(shape) > MAX_NDIM:
        raise InputError(f"rank {len(shape)} is above the limit of {MAX_NDIM}", kind="shape")
    if shape[-1] < MIN_DIM:
        raise InputError(f"vector dimension (last axis) is {shape[-1]}; need at least "
                         f"{MIN_DIM}", kind="shape")
    if shape[-1] > MAX_DIM:
        raise InputError(f"vector dimension (last axis) is {shape[-1]}; the limit is "
                         f"{MAX_DIM}", kind="shape")
    n = 1
    for s in shape[:-1]:
        n *= s
    if n > MAX_VECTORS:
        raise InputError(f"{n} vectors is above the limit of {MAX_VECTORS}", kind="shape")


class ArraySource:
    """An input array seen as n rows of d values (the last axis is the vector)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def dim(self) -> int:
        return self.shape[-1]

    @property
    def n_rows(self) -> int:
        return int(np.prod(self.shape[:-1], dtype=object)) if len(self.shape) > 1 else 1

    def blocks(self, rows: int):
        """Yield consecutive (k, d) native-order arrays with k == rows except the last."""
        raise NotImplementedError

    @property
    def rereadable(self) -> bool:
        """Whether blocks() may be called again to read everything once more."""
        return True

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
