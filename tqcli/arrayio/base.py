"""What an input array is to tq (ArraySource), and which arrays it accepts.

Every source -- a .npy file or stream, an HDF5 dataset, an array in memory -- checks its
dtype and shape here before it reads a data byte, so that the three input paths refuse
the same arrays with the same words.  The limits come from tqcli.limits, which imports no
numpy and no container code.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, TqError
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

    # whether every block blocks() yields stays as it is after the next one is asked for
    # (not a buffer the source fills again): a consumer that holds several at once copies
    # the blocks of a source that does not say so
    fresh_blocks = False

    def check_unchanged(self) -> None:
        """After its blocks were read: refuse (InputError, kind "changed") a source that
        changed meanwhile, where it can tell (a regular file, arrayio.stable); a consumer
        that reads ahead of its work calls it once the work is done, so that a change
        during the work is refused as one between reads is."""

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


def row_runs(shape: tuple[int, ...], start: int, count: int):
    """Split rows [start, start+count) of an array viewed as (rows, d) into selections of
    the N-d array (numpy basic indexing, as HDF5 and zarr take them).

    Yields (selection in the N-d array, lo, hi) with lo:hi the matching rows of the block;
    each run stays inside one index of the axes before the last two.
    """
    if len(shape) < 2:
        yield (), 0, count
        return
    per = shape[-2]
    k = 0
    while k < count:
        prefix, j = divmod(start + k, per)
        take = min(per - j, count - k)
        lead = tuple(int(i) for i in np.unravel_index(prefix, shape[:-2])) if len(shape) > 2 else ()
        yield lead + (slice(j, j + take), slice(None)), k, k + take
        k += take


class SelectionSource(ArraySource):
    """A source read by selections of an N-d array held elsewhere (an HDF5 dataset, a zarr
    array): each block is a fresh native-order array filled run by run (row_runs), so a
    chunked or compressed array costs one block of memory as a contiguous one does.

    A subclass reads with _read_whole(out) (a 1-d array: its one vector) and
    _read_run(out, sel, lo, hi), and turns a failed read into its own error with
    _read_error(e) (None: let the exception through).
    """

    fresh_blocks = True

    def _read_whole(self, out: np.ndarray) -> None:
        raise NotImplementedError

    def _read_run(self, out: np.ndarray, sel, lo: int, hi: int) -> None:
        raise NotImplementedError

    def _read_error(self, e: Exception) -> TqError | None:
        return None

    def blocks(self, rows: int):
        d, n = self.dim, self.n_rows
        native = self.dtype.newbyteorder("=")
        for a in range(0, n, rows):
            k = min(rows, n - a)
            out = np.empty((k, d), dtype=native)
            try:
                if len(self.shape) == 1:
                    self._read_whole(out)
                else:
                    for sel, lo, hi in row_runs(self.shape, a, k):
                        self._read_run(out, sel, lo, hi)
            except TqError:
                raise
            except Exception as e:  # noqa: BLE001 - each subclass says which it translates
                err = self._read_error(e)
                if err is None:
                    raise
                raise err from None
            yield out
