"""Arrays read on demand: numpy's basic indexing over an array that lives in a file.

A LazyArray (a TqFile, a collection's member) has `.shape`, `.dtype`, `.ndim`, `.size`,
`len()`, `np.asarray(a)` and `a[key]`, as an h5py Dataset does.  `a[key]` takes numpy's
basic indexing over the ORIGINAL shape -- integers (negative count from the end), slices
with any step (negative too), Ellipsis, None (np.newaxis) and tuples of them -- and returns
exactly what `np.asarray(a)[key]` would (values, shape and dtype, a numpy scalar for a
single element), reading only the rows it needs: the key is split (split_index) into a
selection of the leading axes, which tqcli.arrayio.selection turns into row runs and the reader
into chunks, and an index applied to what was read (the vector axis, reversed steps,
new axes).  Advanced indexing (lists, arrays, booleans) is refused with a TypeError, as
h5py refuses what it cannot read in place; read everything with np.asarray(a) first.
"""

from __future__ import annotations

import operator

import numpy as np



def _integer(k):
    """k as a Python int if numpy would take it as an integer index, else None."""
    if isinstance(k, (bool, np.bool_)):
        return None
    if isinstance(k, np.ndarray) and k.ndim != 0:
        return None
    try:
        return operator.index(k)
    except TypeError:
        return None


def split_index(key, shape: tuple[int, ...]) -> tuple[tuple, tuple]:
    """numpy basic indexing `key` over `shape` (its last axis the vector) as (select, after).

    `select` holds one entry per leading axis (shape[:-1]): an int in [0, size) or a slice
    with 0 <= start <= stop <= size and step >= 1, as tqcli.arrayio.selection takes them;
    `after` is the index that, applied to x[select] (of selection.selected_shape), gives
    x[key] exactly.  Raises what numpy raises for a bad basic index (IndexError out of
    range or too many indices, ValueError for a zero step, TypeError for a non-integer
    slice end) and a TypeError for advanced indexing.
    """
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    entries = key if isinstance(key, tuple) else (key,)
    for k in entries:
        if k is None or k is Ellipsis or isinstance(k, slice) or _integer(k) is not None:
            continue
        if isinstance(k, (list, np.ndarray, bool, np.bool_)):
            raise TypeError(f"advanced indexing ({type(k).__name__}) is not supported: a "
                            f"tq array takes numpy's basic indexing (integers, slices, ..., "
                            f"None); read it with np.asarray first")
        raise IndexError("only integers, slices (`:`), ellipsis (`...`) and numpy.newaxis "
                         "(`None`) are valid indices of a tq array")
    if sum(k is Ellipsis for k in entries) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    real = sum(k is not None and k is not Ellipsis for k in entries)
    if real > ndim:
        raise IndexError(f"too many indices for array: array is {ndim}-dimensional, "
                         f"but {real} were indexed")
    if any(k is Ellipsis for k in entries):
        at = next(j for j, k in enumerate(entries) if k is Ellipsis)
        entries = entries[:at] + (slice(None),) * (ndim - real) + entries[at + 1:]
    else:
        entries = entries + (slice(None),) * (ndim - real)
    select, after, axis = [], [], 0
    for k in entries:
        if k is None:
            after.append(None)
            continue
        size, lead = shape[axis], axis < ndim - 1
        i = _integer(k)
        if i is not None:
            if not -size <= i < size:
                raise IndexError(f"index {i} is out of bounds for axis {axis} with size {size}")
            if lead:
                select.append(i % size)
            else:
                after.append(i % size)
        elif not lead:
            after.append(k)
        else:
            r = range(*k.indices(size))
            if len(r) == 0:
                select.append(slice(0, 0, 1))
                after.append(slice(None))
            elif r.step > 0:
                select.append(slice(r[0], r[-1] + 1, r.step))
                after.append(slice(None))
            else:  # read in increasing order, reverse what was read
                select.append(slice(r[-1], r[0] + 1, -r.step))
                after.append(slice(None, None, -1))
        axis += 1
    return tuple(select), tuple(after)


class LazyArray:
    """The numpy face of an array in a file (module docstring).  A subclass provides
    `shape`, `dtype` and `_read_selected(select)`: x[select] for a `select` of
    split_index, in the shape selection.selected_shape gives over `shape`."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def _read_selected(self, select: tuple) -> np.ndarray:
        raise NotImplementedError

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __bool__(self) -> bool:
        return True  # an open file, not a test of its length (h5py's Dataset does so too)

    def __getitem__(self, key):
        select, after = split_index(key, self.shape)
        return self._read_selected(select)[after]

    def __iter__(self):
        """The sub-arrays along the first axis, read a chunk's worth at a time."""
        if not self.shape:
            raise TypeError("iteration over a 0-d array")
        per = max(1, int(np.prod(self.shape[1:-1], dtype=np.int64)))
        step = max(1, self._rows_per_read() // per)
        for a in range(0, self.shape[0], step):
            yield from self[a:a + step]

    def _rows_per_read(self) -> int:
        return 1 << 16

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("a tq array cannot be viewed without a copy (it is decoded)")
        out = self[...]
        return out if dtype is None else out.astype(dtype, copy=False)
