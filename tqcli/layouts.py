"""The table of file layouts: what a .tqz file holds, told by its first 16 bytes.

Version 1 defines one layout, a single array (tqcli/container.py).  A layout that holds
something else -- a collection of named arrays, say -- is an entry here with its own
`matches` test on the leading bytes (magic and version) and its own reader; `open_reader`
hands a stream to the first layout that claims it, and a stream no layout claims gets the
single-array reader's refusal (bad magic, unsupported version).
"""

from __future__ import annotations

from .container import MAGIC, VERSION, ContainerReader

PREFIX = 16  # bytes every layout's test may look at


class ArrayLayout:
    name = "array"
    summary = "one array: header, chunks, index, footer (spec/tqz-v1.md)"

    def matches(self, prefix: bytes) -> bool:
        return prefix[:8] == MAGIC and int.from_bytes(prefix[8:10], "little") == VERSION

    def reader(self, stream, size: int | None, prefix: bytes) -> ContainerReader:
        return ContainerReader(stream, size=size, prefix=prefix)


ARRAY = ArrayLayout()
LAYOUTS = (ARRAY,)


def open_reader(stream, size: int | None = None):
    """A reader for the container in `stream` (positioned at its start), by layout."""
    prefix = stream.read(PREFIX)
    for layout in LAYOUTS:
        if layout.matches(prefix):
            return layout.reader(stream, size, prefix)
    return ARRAY.reader(stream, size, prefix)  # refuses with the reason that applies
