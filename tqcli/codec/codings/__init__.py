"""The table of payload codings (bits 0-7 of the header's `flags` field).

Each entry is a PayloadCoding (tqcli/codec/codings/base.py) in a module of its own; adding a
coding is that module, one line below, its section in spec/tqz-v1.md and test vectors
(tests parametrise over this table).
"""

from __future__ import annotations

from ..tables import Table
from .adaptive import ADAPTIVE
from .base import PayloadCoding
from .entropy import ENTROPY
from .packed import PACKED



class CodingTable(Table):
    """The coding table, with the names the command line and the options accept."""

    def resolve(self, name: str) -> PayloadCoding:
        """The entry called `name`: its table name, command-line name or an alias;
        ValueError listing the command-line names if there is none."""
        for e in self:
            if name in e.names:
                return e
        raise ValueError(f"unknown {self.what} {name!r} (known: "
                         f"{', '.join(self.cli_names)})")

    @property
    def cli_names(self) -> tuple[str, ...]:
        """--coding's choices, in code order (the default first)."""
        return tuple(e.cli_name for e in self)

    @property
    def default(self) -> PayloadCoding:
        return self.by_name(DEFAULT)


CODINGS = CodingTable("payload coding", "coding", [
    PACKED,
    ENTROPY,
    ADAPTIVE,
])

DEFAULT = PACKED.name

__all__ = ["CODINGS", "DEFAULT", "PayloadCoding"]
