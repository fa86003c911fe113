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

    def values(self) -> np.ndarray:
        if self.array is not None:
            return np.asarray(self.array)
        with self.open() as src:
            return src.read_all() if hasattr(src, "read_all") else np.concatenate(
                list(src.blocks(1 << 16)) or [np.zeros((0, src.dim), src.dtype)]
            ).reshape(src.shape)

    def source(self):
        if self.array is not None:
            return from_array(self.array, self.name)
        return self.open()

SAFETENSORS_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32",
                      "F64": "float64", "I8": "int8", "I16": "int16", "I32": "int32",
                      "I64": "int64", "U8": "uint8", "U16": "uint16", "U32": "uint32",
                      "U64": "uint64", "BOOL": "bool"}
MAX_SAFETENSORS_HEADER = 100 << 20  # the safetensors package's own limit
