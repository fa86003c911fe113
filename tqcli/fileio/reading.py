"""The library's read-only verbs on containers by name (tqcli.inspect, and open_named, which
search and decompress share): what `tq inspect` needs and nothing more -- no encoder, no
output files, no kernels -- so that inspecting a file imports only the readers."""

from __future__ import annotations

import os

from ..errors import TqError
from ..library import report
from ..library.collection_file import CollectionFile
from ..library.tqfile import CollectionError, TqFile
from .probe import stdin


def open_named(src, refuse_directory: bool,
                memory_limit: int | None = None,
                max_ratio: float | None = None) -> tuple[TqFile, str | None]:
    """TqFile of `src`, with '-' for stdin (never a terminal) and one-line errors for a
    path that is missing (or a directory); returns it and the name errors should carry."""
    if isinstance(src, (str, os.PathLike)):
        name = os.fspath(src)
        try:
            if name == "-":
                return TqFile(stdin(), memory_limit, max_ratio), name
            if not os.path.exists(name):
                raise TqError("no such file")
            if refuse_directory and os.path.isdir(name):
                raise TqError("is a directory")
            return TqFile(name, memory_limit, max_ratio), name
        except TqError as e:
            raise e.with_source(name)
    return TqFile(src, memory_limit, max_ratio), getattr(src, "name", None) if not isinstance(
        src, (bytes, bytearray, memoryview)) else None


def inspect(src, verify: bool = False, memory_limit: int | None = None,
            max_ratio: float | None = None) -> dict:
    """The inspect report of a container (path, '-' for stdin, bytes or a stream).

    The keys and values are the schema of `tq inspect --json` (spec/vectors/*.inspect.json).
    A stream is always read to its end, so that its index and footer are checked; verify
    reads every chunk of any container and checks its CRC-32 (FormatError at a fault) and
    adds "verified": true.  A file whose decoding would need more than memory_limit
    (as for decompress), or that declares more than max_ratio times its size decoded
    (spec 13.9), is refused like any file a decoder refuses.
    """
    try:
        f, name = open_named(src, refuse_directory=False, memory_limit=memory_limit,
                             max_ratio=max_ratio)
    except CollectionError as e:  # a collection: its members and the total
        name = os.fspath(src) if isinstance(src, (str, os.PathLike)) else None
        try:
            reopen = name not in (None, "-")
            with CollectionFile(src if reopen else None, memory_limit,
                                reader=None if reopen else e.reader,
                                max_ratio=max_ratio) as c:
                return c.report(verify)
        except TqError as e:
            raise e.with_source(name if e.source is None else e.source)
    try:
        with f:
            if verify:
                f.verify()
            elif not f.seekable:
                f.verify(checksums=False)
            h = f.header
            size, payload = f.file_size, f.payload_bytes
    except TqError as e:
        raise e.with_source(name)
    result = report.header_report(h, size, payload)
    coding = h.payload_coding.inspect_report(h, payload)
    if coding is not None:
        result["coding"] = coding
    if verify:
        result["verified"] = True
    return result
