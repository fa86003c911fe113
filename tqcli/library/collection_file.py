"""An opened collection (tqcli.open_collection): a read-only Mapping of member names to lazily
read members (Member: shape, dtype, numpy basic indexing reading only the chunks or bytes
needed), with the table of contents, one member's TqFile, and the inspect report."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..arrayio import selection
from ..arrayio.lazyarray import LazyArray, split_index
from ..errors import FormatError, TqError
from ..format import collection
from ..format.collection import stored_shape
from ..arrayio.members import StreamedArray
from ..arrayio.sinks import cast_pieces
from ..format.collection_reader import iter_raw, read_raw
from ..format.layouts import OpenContainer
from .tqfile import TqFile, output_dtype

# ---------------------------------------------------------------------- reading


class Member(LazyArray):
    """One member of an open collection, read when it is indexed: `c["layers/0/key"]`.

    `.shape` and `.dtype` are the member's original ones (from its record; nothing is read
    to know them), `.name`, `.kind` ("tqz" or "raw"), `.attrs`, `.record`; `m[key]` (numpy
    basic indexing, tqcli.arrayio.lazyarray) and `np.asarray(m)` read it: a compressed member
    through its TqFile, only the chunks the key needs; a raw member, only its own bytes.
    Valid while its collection is open.
    """

    def __init__(self, owner: "CollectionFile", rec: dict):
        self._owner, self.record = owner, rec

    @property
    def name(self) -> str:
        return self.record["name"]

    @property
    def kind(self) -> str:
        return self.record["kind"]

    @property
    def attrs(self) -> dict:
        return self.record.get("attrs", {})

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.record["shape"])

    @property
    def dtype(self) -> np.dtype:
        """What read(name) returns: bfloat16 through ml_dtypes (a raw member's as uint16
        bit patterns without it)."""
        dt = collection.numpy_dtype(self.record["dtype"], required=self.kind == "tqz")
        return np.dtype("<u2") if dt is None else dt

    def open(self) -> TqFile:
        """The member's own TqFile (a compressed member; close it, or use `with`)."""
        return self._owner.open_member(self.name)

    def __getitem__(self, key):
        if not self.shape:  # a 0-d (raw) member: numpy's own rules
            split_index(key, (1,))  # refuse advanced indexing as for any other shape
            return self._owner.read(self.name)[key]
        return super().__getitem__(key)

    def _read_selected(self, select: tuple) -> np.ndarray:
        if self.kind != "tqz":
            return self._owner.read(self.name)[select]
        # the member's rows are its file's rows; with a vector size below the last axis the
        # file's shape has one more axis, (..., last / vector, vector), joined again here
        shape = selection.selected_shape(selection.normalize(select, self.shape), self.shape)
        try:
            with self.open() as f:
                return f.read(select=select).reshape(shape)
        except TqError as e:
            e.reason = f"member {self.name!r}: {e.reason}"
            raise

    def __repr__(self) -> str:
        return (f"<tq member {self.name!r}: {self.kind} {self.record['dtype']} "
                f"{'x'.join(map(str, self.shape)) or 'scalar'}>")


class CollectionFile(OpenContainer, Mapping):
    """An open collection (bytes, a path or a binary stream).  Seekable: `members` is the
    table of contents and read(name) reads only that member's bytes.  A pipe: items()
    once, in order.

    A seekable collection is also a read-only Mapping of member names to lazily read
    arrays, as h5py's Group is: `c[name]` is a Member (shape, dtype, basic indexing that
    reads only what it needs; KeyError naming an unknown member), `len(c)`, `iter(c)` and
    `c.keys()` in stored order, `name in c`, `c.values()`, `c.get(name)`.  `c.items()`
    keeps its own meaning: (record, array) of every member, read in order (also from a
    pipe).  A collection is always true, and equal only to itself.
    """

    __hash__ = object.__hash__

    def __eq__(self, other) -> bool:
        return self is other

    def __bool__(self) -> bool:
        return True

    def __getitem__(self, name: str) -> Member:
        if not self.seekable:
            raise TqError("a stream's members are read in order; use items()")
        try:
            rec = self._reader.entry(name)
        except (KeyError, TypeError):
            shown = ", ".join(self.names[:6]) + (" ..." if len(self.names) > 6 else "")
            raise KeyError(f"no member {name!r} (members: {shown})") from None
        return Member(self, rec)

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, name) -> bool:
        return self.members is not None and self._reader.has(name)  # a stream: TqError

    def __init__(self, src, memory_limit: int | None = None, reader=None, own=None,
                 max_ratio: float | None = None):
        self.memory_limit = memory_limit
        self.max_ratio = max_ratio  # each tqz member's expansion limit (spec 13.9)
        self._codings = {}  # member name -> its coding's member_report, where it has one
        super().__init__(src, reader, own)

    def _note(self, name: str, f: TqFile) -> None:
        report = f.header.payload_coding.member_report(f.header, f.payload_bytes)
        if report is not None:
            self._codings[name] = report

    @property
    def codings(self) -> dict:
        """name -> the coding report (member_report) of the members opened or read so far
        whose coding has one (the entropy coding: the rate achieved)."""
        return dict(self._codings)

    def coding(self, name: str) -> dict | None:
        """The coding report of a compressed member whose coding has one (the entropy
        coding: its achieved bits per coordinate, which the header's `bits` and the
        record's are not); None for a fixed-length or lossless member."""
        rec = self._entry(name)
        if rec["kind"] != "tqz":
            return None
        if name not in self._codings and self.seekable:
            self.open_member(name).close()
        return self._codings.get(name)

    def _check(self) -> None:
        if getattr(self._reader, "layout", "array") != "collection":
            raise TqError("is a single-array .tqz, not a collection")

    @property
    def info(self) -> dict:
        return self._reader.info

    @property
    def members(self) -> list[dict]:
        if not self.seekable:
            raise TqError("a stream's table of contents is at its end; use items()")
        return self._reader.members

    @property
    def names(self) -> list[str]:
        return [e["name"] for e in self.members]

    def _decode(self, rec: dict, window, dtype=None, progress=None):
        name = rec["name"]
        try:
            if rec["kind"] == "raw":
                return read_raw(window, rec, name)
            with TqFile(window, self.memory_limit, self.max_ratio) as f:
                _check_member_header(f.header, rec)
                out = f.read(dtype=dtype).reshape(rec["shape"])
                self._note(name, f)
            if not self.seekable:
                window.skip_rest()
            return out
        except TqError as e:
            e.reason = f"member {name!r}: {e.reason}"
            raise

    def open_member(self, name: str) -> TqFile:
        """The TqFile of a compressed member (select=, iter_blocks, ... as for any file)."""
        rec = self._entry(name)
        if rec["kind"] != "tqz":
            raise TqError(f"member {name!r} is stored losslessly (use read)")
        f = TqFile(self._reader.open_member(rec), self.memory_limit,
                   self.max_ratio)
        _check_member_header(f.header, rec)
        self._note(name, f)
        return f

    def _entry(self, name: str) -> dict:
        try:
            return self._reader.entry(name)
        except KeyError:
            raise TqError(f"no member {name!r} (members: "
                          f"{', '.join(self.names[:6])}{' ...' if len(self.names) > 6 else ''})"
                          ) from None

    def read(self, name: str, dtype: str | None = None) -> np.ndarray:
        """One member, in its original shape and dtype (or `dtype` for a compressed one)."""
        rec = self._entry(name)
        return self._decode(rec, self._reader.open_member(rec), dtype)

    def items(self, names=None, dtype: str | None = None):
        """(record, array) of every member in file order (only `names`, if given); a
        stream is read to its end, so that its table of contents is checked."""
        for rec, window in self._windows(names):
            yield rec, self._decode(rec, window, dtype)

    def stream_items(self, names=None, dtype: str | None = None):
        """(record, StreamedArray) of every member in file order (only `names`, if given),
        as items() but decoded while it is consumed: the array's blocks() gives its values
        chunk by chunk (a raw member's bytes in pieces), each checked as read_member checks
        it, so that a member of any size costs one chunk of memory (spec 13.7).  Consume
        (or drop) each array before asking for the next item."""
        for rec, window in self._windows(names):
            yield from self._streamed(rec, window, dtype)

    def _windows(self, names=None):
        """(record, its member's window) of every member in file order (only `names`, if
        given): opened through the TOC when seekable, else read in turn from the stream,
        skipping the members not wanted, to its end (so that its TOC is checked)."""
        wanted = None if names is None else set(names)
        if self.seekable:
            for rec in self.members:
                if wanted is None or rec["name"] in wanted:
                    yield rec, self._reader.open_member(rec)
            return
        while True:
            nxt = self._reader.next_member()
            if nxt is None:
                return
            rec, window = nxt
            if wanted is None or rec["name"] in wanted:
                yield rec, window
            else:
                window.skip_rest()

    def _streamed(self, rec: dict, window, dtype):
        """Yield (rec, StreamedArray) of one member; after the consumer is done with it,
        read what it left (a stream's next member follows its bytes)."""
        name, shape = rec["name"], tuple(rec["shape"])
        try:
            if rec["kind"] == "raw":
                dt = collection.numpy_dtype(rec["dtype"], required=False)
                member = StreamedArray(name, shape, np.dtype("<u2") if dt is None else dt,
                                       iter_raw(window, rec, name))
            else:
                f = TqFile(window, self.memory_limit)
                _check_member_header(f.header, rec)
                member = StreamedArray(name, shape, output_dtype(f.header, dtype),
                                       self._member_blocks(f, name, dtype))
        except TqError as e:
            e.reason = f"member {name!r}: {e.reason}"
            raise
        yield rec, member
        rest = member._blocks
        if rest is not None:  # not consumed: read it through all the same (every check)
            for _ in _named(rest, name):
                pass
        if not self.seekable:
            window.skip_rest()

    def _member_blocks(self, f: TqFile, name: str, dtype):
        """A compressed member's values: chunk by chunk, cast in pieces, flattened."""
        out = output_dtype(f.header, dtype)
        with f:
            for block in _named(f.iter_blocks(), name):
                for _, piece in cast_pieces(block, out):
                    yield piece.reshape(-1)
            self._note(name, f)

    def verify(self) -> list[dict]:
        """Read every member (checksums, every rule; a compressed one decoded chunk by
        chunk); returns the records."""
        recs = []
        for rec, arr in self.stream_items():
            for _ in _named(arr.blocks(), rec["name"]):
                pass
            recs.append(rec)
        return recs

    def report(self, verify: bool = False) -> dict:
        """The inspect report: every member's name, shape, dtype, bits or lossless, bytes,
        ratio; and the total."""
        if verify or not self.seekable:
            recs = self.verify()
        else:
            recs = self.members
            for rec in recs:  # each member's header, checked against its record
                if rec["kind"] == "tqz":
                    self.open_member(rec["name"]).close()
        rows, total_raw, total = [], 0, 0
        for rec in recs:
            n = 1
            for s in rec["shape"]:
                n *= s
            raw = n * collection.itemsize(rec["dtype"])
            total_raw += raw
            total += rec["length"]
            rows.append({"name": rec["name"], "shape": rec["shape"], "dtype": rec["dtype"],
                         "kind": rec["kind"], "bits": rec.get("bits"),
                         "vector": rec.get("vector"), "bytes": rec["length"],
                         "original_bytes": raw,
                         "ratio": raw / rec["length"] if rec["length"] else None,
                         "attrs": rec.get("attrs", {})})
            if rec["name"] in self._codings:  # only then: a fixed member's record is as before
                rows[-1]["coding"] = self._codings[rec["name"]]
        size = self._reader.size
        out = {"format": "tqz", "version": 1, "layout": "collection",
               "source": self.info.get("source", "arrays"), "members": rows,
               "member_count": len(rows), "original_bytes": total_raw,
               "member_bytes": total, "file_bytes": size,
               "ratio_vs_original": total_raw / size if size else None}
        if self.info.get("metadata") is not None:
            out["metadata"] = self.info["metadata"]
        if verify:
            out["verified"] = True
        return out



def _named(blocks, name: str):
    """The blocks of a member, an error among them naming the member."""
    try:
        yield from blocks
    except TqError as e:
        if not e.reason.startswith("member "):
            e.reason = f"member {name!r}: {e.reason}"
        raise


def _check_member_header(h, rec: dict) -> None:
    if tuple(h.shape) != stored_shape(rec) or h.source_dtype != rec["dtype"] or \
            h.bits != rec["bits"]:
        raise FormatError(f"its header ({h.shape} {h.source_dtype}, {h.bits} bits) differs "
                          f"from its record", rule="member-header")


def open_collection(src, memory_limit: int | None = None,
                    max_ratio: float | None = None) -> CollectionFile:
    """Open a collection given as bytes, a path or a binary stream (memory_limit and
    max_ratio hold each compressed member as TqFile does)."""
    return CollectionFile(src, memory_limit, max_ratio=max_ratio)


__all__ = ["open_collection", "CollectionFile", "Member"]
