"""Exceptions that the command line turns into one-line `tq: FILE: reason` messages.

Each failure carries an identifier besides its words: a FormatError the reader rule it
breaks (the `rule` names of spec/tqz-v1.md section 13, e.g. "header-crc"), an InputError the
kind of input it refuses (e.g. "non-finite").  Tests and the fuzz corpus match on those,
so the wording of a message can improve without breaking them.
"""

from __future__ import annotations


class TqError(Exception):
    """A failure the user can act on; `source` names the file (or '-') it concerns."""

    kind = "error"

    def __init__(self, reason: str, source: str | None = None, kind: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.source = source
        if kind is not None:
            self.kind = kind

    def with_source(self, source: str) -> "TqError":
        if self.source is None:
            self.source = source
        return self

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}" if self.source else self.reason


class FormatError(TqError):
    """A .tqz container that is corrupt, truncated, or not one this version can read.

    `rule` is the identifier of the reader rule it breaks (spec section 13); `chunk` the
    index of the chunk it concerns, when it concerns one.
    """

    kind = "format"

    def __init__(self, reason: str, rule: str = "format", source: str | None = None,
                 chunk: int | None = None):
        super().__init__(reason, source)
        self.rule = rule
        self.chunk = chunk


class InputError(TqError):
    """An input array tq refuses: wrong dtype or shape, non-finite values, unreadable file."""

    kind = "input"


class ScaleRangeError(InputError):
    """A vector's scale does not fit the scale dtype (overflow, or too small to keep)."""

    kind = "scale-range"

    def __init__(self, reason: str, row: int, scale_dtype: str):
        super().__init__(reason)
        self.row = row
        self.scale_dtype = scale_dtype


class OutputExistsError(TqError):
    """An output that already exists, written without permission to replace it.

    The words are the library's (its keyword is force=True); the command line says the same
    with its own flag, -f (cli.py words errors of this kind itself).
    """

    kind = "exists"

    def __init__(self, source: str | None = None):
        super().__init__("already exists; pass force=True to overwrite", source)
