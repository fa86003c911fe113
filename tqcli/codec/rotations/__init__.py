"""The table of rotation kinds (the header's `rotation` byte).

Each entry is a RotationKind (tqcli/codec/rotations/base.py) in a module of its own; adding a
kind is that module, one line below, its section in spec/tqz-v1.md and test vectors
(tests parametrise over this table).
"""

from __future__ import annotations

from ..tables import Table
from .base import RotationKind, RotationPlan
from .hadamard2 import HADAMARD2
from .tiled import TILED

ROTATIONS = Table("rotation kind", "rotation", [
    HADAMARD2,
    TILED,
])

DEFAULT = TILED.name  # since tq 1.1; tq 1.0 wrote every file with hadamard2

__all__ = ["ROTATIONS", "DEFAULT", "RotationKind", "RotationPlan"]
