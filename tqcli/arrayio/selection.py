"""Selections by the original shape: numpy basic indexing over the leading axes.

A .tqz holds the vectors of an array of any rank (the last axis is the vector), stored as
the rows of its flattened (n, d) view.  `tq decompress --select 3,0` (library: select=)
picks part of that array as numpy would, x[3, 0] -- layer 3's keys of a (layers, 2, heads,
tokens, head_dim) dump -- and the decoder reads only the chunks that hold it.

What is accepted: up to ndim - 1 entries, each an integer (negative counts from the end)
or a slice with a step >= 1; the last axis (the vector) cannot be indexed.  Unlike numpy,
nothing out of range is clamped: an index or a slice end beyond its axis is an error
(ValueError), so that a typo cannot silently return less than was asked for.

A selection becomes *runs*: sorted, disjoint [start, stop) ranges of flattened rows, one
per index combination of the selected axes, merged where they touch.  Their number is at
most the number of rows selected, and they are computed with numpy, never row by row.
"""

from __future__ import annotations

import numpy as np


def parse_select(text: str) -> tuple:
    """'3,0' -> (3, 0); '2:4' -> (slice(2, 4),); '::2,-1' -> (slice(None, None, 2), -1)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a selection must be non-empty, e.g. 3,0 or 2:4")
    entries = []
    for part in text.split(","):
        fields = part.split(":")
        if len(fields) > 3:
            raise ValueError(f"{part.strip()!r} is not an index or a slice A:B:STEP")
        try:
            values = [int(f) if f.strip() else None for f in fields]
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not an index or a slice of integers") \
                from None
        if len(fields) == 1:
            if values[0] is None:
                raise ValueError("an empty entry in the selection (two commas?)")
            entries.append(values[0])
        else:
            entries.append(slice(*values))
    return tuple(entries)


def normalize(select, shape: tuple[int, ...]) -> tuple:
    """select (text, an int, a slice or a tuple of them) checked against `shape`: a tuple of
    ints in [0, size) and slices with non-negative start/stop and step >= 1."""
    if isinstance(select, str):
        select = parse_select(select)
    if not isinstance(select, tuple):
        select = (select,)
    lead = shape[:-1]
    if len(select) > len(lead):
        raise ValueError(f"{len(select)} indices for the {len(lead)} leading axes of shape "
                         f"{tuple(shape)} (the last axis, the vector, cannot be indexed)")
    out = []
    for axis, (s, size) in enumerate(zip(select, lead)):
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            i = int(s)
            if not -size <= i < size:
                raise ValueError(f"index {i} is out of range for axis {axis} of size {size}")
            out.append(i % size)
        elif isinstance(s, slice):
            out.append(_checked_slice(s, axis, size))
        else:
            raise TypeError(f"a selection holds integers and slices, not {type(s).__name__}")
    return tuple(out)


def _checked_slice(s: slice, axis: int, size: int) -> slice:
    ends = []
    for end in (s.start, s.stop):
        if end is not None and (not isinstance(end, (int, np.integer)) or isinstance(end, bool)):
            raise TypeError(f"slice ends must be integers, not {type(end).__name__}")
        if end is not None and not -size <= end <= size:
            raise ValueError(f"slice end {end} is out of range for axis {axis} of size {size}")
        ends.append(None if end is None else int(end) % size if end < 0 else int(end))
    step = 1 if s.step is None else s.step
    if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step < 1:
        raise ValueError(f"slice step must be an integer >= 1, got {s.step}")
    start = 0 if ends[0] is None else ends[0]
    stop = size if ends[1] is None else ends[1]
    return slice(start, max(start, stop), int(step))


def selected_shape(select: tuple, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape numpy gives x[select] for a normalised selection."""
    dims = [len(range(s.start, s.stop, s.step)) for s in select if isinstance(s, slice)]
    return tuple(dims) + tuple(shape[len(select):])


def runs(select: tuple, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint (starts, stops) of the flattened rows a normalised selection holds."""
    lead = shape[:-1]
    k = len(select)
    per_index = int(np.prod(lead[k:], dtype=np.int64))  # rows under one selected index
    strides = [int(np.prod(lead[a + 1:k], dtype=np.int64)) * per_index for a in range(k)]
    starts = np.zeros(1, np.int64)
    for s, stride in zip(select, strides):
        idx = (np.array([s], np.int64) if not isinstance(s, slice)
               else np.arange(s.start, s.stop, s.step, dtype=np.int64))
        starts = (starts[:, None] + idx[None, :] * stride).ravel()
    stops = starts + per_index
    if starts.size == 0 or per_index == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # merge runs that touch (a step-1 slice of the last selected axis, whole axes)
    new = np.ones(starts.size, bool)
    new[1:] = starts[1:] != stops[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:], starts.size) - 1
    return starts[first], stops[last]


def rows_runs(rows: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The run of a contiguous (start, stop) row range (none when it is empty)."""
    a, b = rows
    return (np.array([a], np.int64), np.array([b], np.int64)) if b > a else \
        (np.zeros(0, np.int64), np.zeros(0, np.int64))
