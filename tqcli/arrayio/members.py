"""A named array of a collection, as the readers of whole files (arrayio.containers) give it
and the collection writer (tqcli.library.collections) takes it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .sources import from_array


# names an output kind keeps for itself: a safetensors header's metadata
RESERVED = {"safetensors": ("__metadata__",)}


def reserved_name_problem(kind: str | None, names) -> str | None:
    """A member name that an output kind reserves (a tensor named `__metadata__` would be
    taken for a safetensors header's metadata, or replace it); kind None: any kind's."""
    kinds = RESERVED if kind is None else {kind: RESERVED.get(kind, ())}
    for n in names:
        for k, reserved in kinds.items():
            if n in reserved:
                return (f"member name {n!r} is reserved in {k} files (the header's "
                        f"metadata); " + ("rename the member" if kind is None else
                                          "write .npz or .h5 instead"))
    return None


@dataclass
class MemberInput:
    """One member to write: `array` (in memory) or `open` (a callable returning an
    arrayio.ArraySource, for a float member read block by block)."""

    name: str
    shape: tuple
    dtype: np.dtype
    attrs: dict = field(default_factory=dict)
    array: np.ndarray | None = None
    open: object = None
    # or a callable returning the values as consecutive 1-d pieces in C order (a member
    # stored raw, read piece by piece: arrayio.streamed)
    pieces: object = None

    def values(self) -> np.ndarray:
        if self.array is not None:
            return np.asarray(self.array)
        if self.pieces is not None:
            parts = list(self.pieces())
            return (np.concatenate(parts) if parts else np.zeros(0, self.dtype)).reshape(
                self.shape)
        with self.open() as src:
            return src.read_all() if hasattr(src, "read_all") else np.concatenate(
                list(src.blocks(1 << 16)) or [np.zeros((0, src.dim), src.dtype)]
            ).reshape(src.shape)

    def flat_values(self):
        """The values as consecutive 1-d pieces in C order, never the whole member at once
        unless it is held in memory already."""
        if self.array is not None:
            yield from flat_pieces(self.array)
        elif self.pieces is not None:
            yield from self.pieces()
        else:
            with self.open() as src:
                for block in src.blocks(max(1, PIECE // max(1, src.dim * src.dtype.itemsize))):
                    yield block.reshape(-1)

    def source(self):
        if self.array is not None:
            return from_array(self.array, self.name)
        return self.open()

SAFETENSORS_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32",
                      "F64": "float64", "I8": "int8", "I16": "int16", "I32": "int32",
                      "I64": "int64", "U8": "uint8", "U16": "uint16", "U32": "uint32",
                      "U64": "uint64", "BOOL": "bool"}
MAX_SAFETENSORS_HEADER = 100 << 20  # the safetensors package's own limit


class StreamedArray:
    """A member decoded as it is written: its `shape` and `dtype`, and `blocks()`, the
    values in C order as consecutive 1-d pieces (each valid until the next is asked for),
    so that a writer holds one piece, never the member (spec 13.7)."""

    def __init__(self, name: str, shape, dtype, blocks):
        self.name, self.shape, self.dtype = name, tuple(int(s) for s in shape), np.dtype(dtype)
        self._blocks = blocks

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def blocks(self):
        blocks, self._blocks = self._blocks, None
        if blocks is None:
            raise ValueError(f"member {self.name!r} was read already")
        return blocks

    def __repr__(self) -> str:
        return f"<streamed member {self.name!r} {self.dtype} {self.shape}>"


PIECE = 1 << 24  # bytes of one piece of an array in memory written by flat_pieces


def flat_pieces(arr):
    """The values of an array in memory (C order, as 1-d views where it is contiguous) or
    of a StreamedArray, as consecutive pieces."""
    if isinstance(arr, StreamedArray):
        yield from arr.blocks()
        return
    a = np.require(arr, requirements="C").reshape(-1)
    step = max(1, PIECE // max(1, a.itemsize))
    for i in range(0, a.size, step):
        yield a[i:i + step]


def flat_slabs(shape, start: int, count: int):
    """Split values [start, start+count) of a C-order array of `shape` into hyperslabs:
    (selection, lo, hi), values lo:hi of the piece going to array[selection] (whose shape
    is the selection's), few per piece whatever the rank (HDF5 writes each at once)."""
    shape = tuple(int(s) for s in shape)
    if not shape:
        yield (), 0, count
        return
    strides = [1] * len(shape)
    for j in range(len(shape) - 2, -1, -1):
        strides[j] = strides[j + 1] * shape[j + 1]
    done = 0
    while done < count:
        pos, idx = start + done, []
        for st in strides:
            idx.append(pos // st)
            pos %= st
        left = count - done
        # the outermost axis j from which a whole run of sub-blocks can be taken
        for j in range(len(shape)):
            if all(i == 0 for i in idx[j + 1:]) and strides[j] <= left:
                take = min(shape[j] - idx[j], left // strides[j])
                sel = tuple(idx[:j]) + (slice(idx[j], idx[j] + take),) + tuple(
                    slice(None) for _ in shape[j + 1:])
                n = take * strides[j]
                yield sel, done, done + n
                done += n
                break


def write_slabs(ds, arr: StreamedArray) -> None:
    """A streamed member into its (h5py) dataset, piece by piece (flat_slabs)."""
    pos = 0
    for piece in arr.blocks():
        if not arr.shape:
            ds[()] = piece[0]
        else:
            for sel, lo, hi in flat_slabs(arr.shape, pos, piece.shape[0]):
                ds[sel] = piece[lo:hi].reshape(_sel_shape(arr.shape, sel))
        pos += piece.shape[0]


def _sel_shape(shape, sel) -> tuple:
    """The shape of array[sel] for a selection of flat_slabs (integers, then slices)."""
    out = []
    for s, k in zip(shape, sel):
        if isinstance(k, slice):
            a, b, _ = k.indices(s)
            out.append(b - a)
    return tuple(out)


def le_bytes(piece: np.ndarray):
    """A 1-d piece's bytes as a collection file stores them: little-endian, bfloat16 as its
    16-bit patterns (a buffer, not a copy, where no conversion is needed)."""
    from . import bf16

    if bf16.is_bf16(piece.dtype):
        piece = piece.view(np.uint16)
    elif piece.dtype.byteorder == ">":
        piece = piece.astype(piece.dtype.newbyteorder("<"))
    return np.ascontiguousarray(piece).data.cast("B")
