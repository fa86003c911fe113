"""The table of file layouts: what a .tqz file holds, told by its first 16 bytes.

Two layouts: a single array (tqcli/format/container.py, spec sections 2-13) and a collection of
named members (tqcli/format/collection.py, spec section 18), told apart by bit 15 of `flags`.
A layout is an entry here with its own `matches` test on the leading bytes (magic, version,
flags) and its own reader; `open_reader` hands a stream to the first layout that claims it,
and a stream no layout claims gets the single-array reader's refusal (bad magic,
unsupported version, unknown flags).
"""

from __future__ import annotations

import io
import os
import stat

from .container import MAGIC, VERSION, ContainerReader

PREFIX = 16  # bytes every layout's test may look at
COLLECTION_BIT = 0x8000


def _version_one(prefix: bytes) -> bool:
    return (len(prefix) >= 16 and prefix[:8] == MAGIC
            and int.from_bytes(prefix[8:10], "little") == VERSION)


class ArrayLayout:
    name = "array"
    summary = "one array: header, chunks, index, footer (spec/tqz-v1.md)"

    def matches(self, prefix: bytes) -> bool:
        return _version_one(prefix) and not int.from_bytes(prefix[10:12], "little") \
            & COLLECTION_BIT

    def reader(self, stream, size: int | None, prefix: bytes,
               memory_limit: int | None = None) -> ContainerReader:
        return ContainerReader(stream, size=size, prefix=prefix)


class CollectionLayout:
    name = "collection"
    summary = "named members, each a single-array .tqz or raw values, with a table of " \
              "contents (spec/tqz-v1.md section 18)"

    def matches(self, prefix: bytes) -> bool:
        return _version_one(prefix) and bool(int.from_bytes(prefix[10:12], "little")
                                              & COLLECTION_BIT)

    def reader(self, stream, size: int | None, prefix: bytes,
               memory_limit: int | None = None):
        from .collection_reader import CollectionReader

        return CollectionReader(stream, size=size, prefix=prefix, memory_limit=memory_limit)


ARRAY = ArrayLayout()
COLLECTION = CollectionLayout()
LAYOUTS = (ARRAY, COLLECTION)


def open_reader(stream, size: int | None = None, memory_limit: int | None = None):
    """A reader for the container in `stream` (positioned at its start), by layout;
    memory_limit bounds what the reader holds (a collection's table of contents)."""
    prefix = stream.read(PREFIX)
    for layout in LAYOUTS:
        if layout.matches(prefix):
            return layout.reader(stream, size, prefix, memory_limit)
    return ARRAY.reader(stream, size, prefix)  # refuses with the reason that applies


def open_source(src, memory_limit: int | None = None):
    """(reader, file opened here or None) for bytes, a path or a binary stream.

    A path is opened here (the caller closes the file it gets back).  A FIFO, /dev/stdin
    or a process substitution is read as the stream it is: its st_size says nothing and it
    cannot seek, so only a regular file, bytes or a seekable stream has a known length.
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        stream = io.BytesIO(bytes(src))
        return open_reader(stream, len(stream.getbuffer()), memory_limit), None
    if isinstance(src, (str, os.PathLike)):
        own = io.open(src, "rb")
        try:
            st = os.fstat(own.fileno())
            return open_reader(own, st.st_size if stat.S_ISREG(st.st_mode) else None,
                               memory_limit), own
        except BaseException:
            own.close()
            raise
    size = None
    try:
        if src.seekable():
            size = src.seek(0, os.SEEK_END) - src.seek(0)
    except (OSError, AttributeError):
        size = None
    return open_reader(src, size, memory_limit), None


class OpenContainer:
    """A container opened from bytes, a path or a binary stream: its reader, and the file
    opened here, which close() closes (a stream passed in stays open).  A subclass checks
    what it was given in _check(); if that (or opening) fails, the file is closed again."""

    def __init__(self, src, reader=None, own=None):
        self._own = own  # the file this object opened and must close
        try:
            if reader is None:  # a subclass's memory_limit, if it has one, bounds the reader
                reader, self._own = open_source(src, getattr(self, "memory_limit", None))
            self._reader = reader
            self._check()
        except BaseException:
            self.close()
            raise

    def _check(self) -> None:
        pass

    @property
    def seekable(self) -> bool:
        """Whether the parts can be read in any order (False for a pipe: once, in order)."""
        return self._reader.seekable

    def close(self) -> None:
        """Close the file this object opened (a stream passed in stays open)."""
        if self._own is not None:
            self._own.close()
            self._own = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
