"""Exceptions that the command line turns into one-line `tq: FILE: reason` messages."""

from __future__ import annotations


class TqError(Exception):
    """A failure the user can act on; `source` names the file (or '-') it concerns."""

    def __init__(self, reason: str, source: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.source = source

    def with_source(self, source: str) -> "TqError":
        if self.source is None:
            self.source = source
        return self

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}" if self.source else self.reason


class FormatError(TqError):
    """A .tqz container that is corrupt, truncated, or not one this version can read."""


class InputError(TqError):
    """An input array tq refuses: wrong dtype or shape, non-finite values, unreadable file."""


class ScaleRangeError(InputError):
    """A vector's scale does not fit the scale dtype (overflow, or too small to keep)."""

    def __init__(self, reason: str, row: int, scale_dtype: str):
        super().__init__(reason)
        self.row = row
        self.scale_dtype = scale_dtype
