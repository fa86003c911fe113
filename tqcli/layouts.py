"""The table of file layouts: what a .tqz file holds, told by its first 16 bytes.

Two layouts: a single array (tqcli/container.py, spec sections 2-13) and a collection of
named members (tqcli/collection.py, spec section 18), told apart by bit 15 of `flags`.
A layout is an entry here with its own `matches` test on the leading bytes (magic, version,
flags) and its own reader; `open_reader` hands a stream to the first layout that claims it,
and a stream no layout claims gets the single-array reader's refusal (bad magic,
unsupported version, unknown flags).
"""

from __future__ import annotations

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

    def reader(self, stream, size: int | None, prefix: bytes) -> ContainerReader:
        return ContainerReader(stream, size=size, prefix=prefix)


class CollectionLayout:
    name = "collection"
    summary = "named members, each a single-array .tqz or raw values, with a table of " \
              "contents (spec/tqz-v1.md section 18)"

    def matches(self, prefix: bytes) -> bool:
        return _version_one(prefix) and bool(int.from_bytes(prefix[10:12], "little")
                                              & COLLECTION_BIT)

    def reader(self, stream, size: int | None, prefix: bytes):
        from .collection import CollectionReader

        return CollectionReader(stream, size=size, prefix=prefix)


ARRAY = ArrayLayout()
COLLECTION = CollectionLayout()
LAYOUTS = (ARRAY, COLLECTION)


def open_reader(stream, size: int | None = None):
    """A reader for the container in `stream` (positioned at its start), by layout."""
    prefix = stream.read(PREFIX)
    for layout in LAYOUTS:
        if layout.matches(prefix):
            return layout.reader(stream, size, prefix)
    return ARRAY.reader(stream, size, prefix)  # refuses with the reason that applies
