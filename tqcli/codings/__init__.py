"""The table of payload codings (bits 0-7 of the header's `flags` field).

Each entry is a PayloadCoding (tqcli/codings/base.py) in a module of its own; adding a
coding is that module, one line below, its section in spec/tqz-v1.md and test vectors
(tests parametrise over this table).
"""

from __future__ import annotations

from ..tables import Table
from .base import PayloadCoding
from .entropy import ENTROPY
from .packed import PACKED

CODINGS = Table("payload coding", "coding", [
    PACKED,
    ENTROPY,
])

DEFAULT = PACKED.name

__all__ = ["CODINGS", "DEFAULT", "PayloadCoding"]
