"""Tables of format choices: each maps a header code to the object that implements it.

A format choice -- a rotation kind, a payload coding, a file layout -- is an entry in one
table: an object that knows its header code, its name, its parameters and everything the
encoder, the decoder and the reader checks need from it.  The header, the codec, the reader
and the tests look entries up here, so adding a choice is one module, one line in its
table and the tests (which parametrise over the tables).  A code without an entry is
refused by the reader with the table's rule identifier (spec/tqz-v1.md section 13).

The tables and their entries import nothing heavy when they load (no numpy), so the
command line can list their names at start-up.
"""

from __future__ import annotations

from ..errors import FormatError


class Table:
    """Entries of one format choice, by header code and by name."""

    def __init__(self, what: str, rule: str, entries):
        self.what = what    # e.g. "rotation kind", for messages
        self.rule = rule    # the reader rule refusing an unknown code
        self._by_code = {}
        self._by_name = {}
        for e in entries:
            if e.code in self._by_code or e.name in self._by_name:
                raise ValueError(f"{what} {e.name!r} / {e.code} is defined twice")
            self._by_code[e.code] = e
            self._by_name[e.name] = e

    def by_code(self, code: int):
        """The entry for a header code; FormatError (this table's rule) if there is none."""
        try:
            return self._by_code[code]
        except KeyError:
            raise FormatError(f"unknown {self.what} {code}", rule=self.rule) from None

    def by_name(self, name: str):
        """The entry called `name`; ValueError listing the names if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise ValueError(f"unknown {self.what} {name!r} (known: "
                             f"{', '.join(self.names)})") from None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    @property
    def codes(self) -> tuple[int, ...]:
        return tuple(self._by_code)

    def __iter__(self):
        return iter(self._by_code.values())

    def __len__(self) -> int:
        return len(self._by_code)
