"""Collections in the library: compress named arrays into one .tqz, read them back.

compress_collection(members, out, ...) writes the collection layout (tqcli/collection.py):
floating-point members are compressed, each into a single-array .tqz of its own (so every
option of compress_to applies per member), and everything else -- integer ids, positions,
masks, members matched by `lossless` patterns, arrays too small to gain -- is stored raw.
Bits are chosen per member: `bits` for all, then `bits_for` patterns in order (shell-style,
fnmatch, on the member name; the last match wins).  `vector_size` D cuts the last axis of
every compressed member into vectors of D values (a [2, tokens, heads * head_dim] tensor
quantised per head); the record keeps the original shape.

open_collection(src) reads one: `.names`, `.members` (the table of contents), `.read(name)`
for one member -- reading only its bytes -- and `.items()` for all, in order (also from a
pipe).
"""

from __future__ import annotations

import fnmatch
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .. import arrayio
from ..format import collection
from ..arrayio import selection
from ..arrayio.containers import MemberInput
from ..format.collection import CollectionWriter, stored_shape
from ..format.header import CRC
from ..errors import FormatError, InputError, TqError
from ..format.layouts import OpenContainer
from ..arrayio.lazyarray import LazyArray, split_index
from .tqfile import TqFile

COPY_PIECE = 1 << 22
MIN_VALUES = 256  # fewer float values than this are stored raw


def as_members(arrays) -> list[MemberInput]:
    """A dict of name -> array (or a list of MemberInput) as MemberInputs."""
    if isinstance(arrays, dict):
        out = []
        for name, a in arrays.items():
            a = np.asarray(a)
            out.append(MemberInput(name, a.shape, a.dtype, array=a))
        return out
    return list(arrays)


def parse_bits_for(items) -> list[tuple[str, float]]:
    """['*key*=8', ...] (or (pattern, bits) pairs) -> [(pattern, bits)], checked; bits are
    integers, or fractional rates for the entropy coding ('*value*=2.5')."""
    out = []
    for item in items or ():
        if isinstance(item, str):
            pattern, sep, b = item.rpartition("=")
            if not sep or not pattern:
                raise ValueError(f"expected PATTERN=BITS, got {item!r}")
            try:
                b = float(b)
            except ValueError:
                raise ValueError(f"expected PATTERN=BITS with a number of bits, got {item!r}") \
                    from None
        else:
            pattern, b = item
        if not 1 <= b <= 8:
            raise ValueError(f"bits for {pattern!r} must be 1..8, got {b:g}")
        out.append((pattern, int(b) if float(b).is_integer() else float(b)))
    return out


def unmatched_patterns(names, bits_for, lossless) -> list[str]:
    """The --bits-for and --lossless patterns that match none of `names` (a typo such as
    '*kye*=8' would otherwise leave every key at the default width), each as the option
    the user wrote: "--bits-for '*kye*=8'"."""
    def hits(p):
        return any(fnmatch.fnmatchcase(n, p) for n in names)

    out = [f"--bits-for '{p}={b:g}'" for p, b in parse_bits_for(bits_for) if not hits(p)]
    return out + [f"--lossless '{p}'" for p in lossless or () if not hits(p)]


def check_patterns(names, bits_for, lossless, strict: bool = False, warn=None) -> None:
    """Patterns that match no member: an InputError (kind "unmatched-pattern") when
    `strict`, else one warning each through warn(text) (default: warnings.warn)."""
    missing = unmatched_patterns(names, bits_for, lossless)
    if not missing:
        return
    shown = ", ".join(names[:4]) + (" ..." if len(names) > 4 else "")
    text = (f"{missing[0]} matches no member (members: {shown})" if len(missing) == 1 else
            f"{', '.join(missing)} match no member (members: {shown})")
    if strict:
        raise InputError(text + "; nothing written (--strict)", kind="unmatched-pattern")
    if warn is None:
        import warnings

        warnings.warn(text, UserWarning, stacklevel=3)
    else:
        warn(text)


def member_plan(m: MemberInput, bits: int, bits_for, lossless, vector_size, mode: str):
    """("raw", None, None) or ("tqz", bits, vector) for a member, with the reason rules."""
    name = collection.dtype_name(m.dtype)
    if name is None:
        raise InputError(f"member {m.name!r}: dtype {np.dtype(m.dtype)} cannot be stored",
                         kind="dtype")
    if name not in collection.LOSSY_DTYPES or any(
            fnmatch.fnmatchcase(m.name, p) for p in lossless or ()):
        return "raw", None, None
    b = bits
    for pattern, pb in bits_for or ():
        if fnmatch.fnmatchcase(m.name, pattern):
            b = pb
    shape = tuple(m.shape)
    if not shape or int(np.prod(shape, dtype=object)) < MIN_VALUES:
        return "raw", None, None  # a header and codebook would outweigh the values
    d = shape[-1]
    if vector_size:
        if d % vector_size:
            raise InputError(f"member {m.name!r}: --vector-size {vector_size} does not "
                             f"divide its last axis ({d})")
        d = vector_size
    if d < 2 or d > (4096 if mode == "prod" else 1 << 20):
        return "raw", None, None
    return "tqz", b, d


class _Reblocked(arrayio.ArraySource):
    """A source whose last axis is cut into vectors of `d` values, in blocks of exactly
    the rows asked for (the encoder's chunks start on block boundaries)."""

    def __init__(self, inner, d: int):
        self.inner, self.name, self.dtype = inner, inner.name, inner.dtype
        self.shape = tuple(inner.shape[:-1]) + (inner.shape[-1] // d, d) \
            if d != inner.shape[-1] else tuple(inner.shape)
        self.per = inner.shape[-1] // d

    @property
    def rereadable(self) -> bool:
        return self.inner.rereadable

    def blocks(self, rows: int):
        d, pending, have = self.dim, [], 0
        for block in self.inner.blocks(max(1, rows // self.per)):
            block = block.reshape(-1, d)
            pending.append(block)
            have += block.shape[0]
            while have >= rows:
                joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
                yield joined[:rows]
                rest = joined[rows:]
                pending, have = ([rest] if rest.shape[0] else []), rest.shape[0]
        if have:
            yield np.concatenate(pending)


def compress_collection(members, out, *, info: dict | None = None, bits: int = 4,
                        bits_for=(), lossless=(), vector_size: int | None = None,
                        progress=None, strict: bool = False, warn=None,
                        **options) -> list[dict]:
    """Write `members` (a dict name -> array, or MemberInputs) as a collection to the binary
    stream `out`; returns the table of contents.  info: "source" (hdf5, safetensors, npz,
    arrays), "groups" (group name -> attrs) and "metadata" (str -> str) of the source.
    A bits_for or lossless pattern that matches no member is a warning (warn(text), by
    default warnings.warn), or with `strict` an InputError before anything is written.
    options: EncodeOptions' fields but bits (mode, seed, center, ...), checked once here and
    given to compress_to for every compressed member with its width."""
    from .api import compress_to
    from ..codec.options import EncodeOptions

    base = EncodeOptions(**options)  # TypeError for a keyword that is not an option

    members = as_members(members)
    names = [m.name for m in members]
    for n in names:
        problem = collection.name_problem(n)
        if problem:
            raise InputError(problem)
    problem = collection.names_problem(names)
    if problem:
        raise InputError(problem)
    bits_for = parse_bits_for(bits_for)
    check_patterns(names, bits_for, lossless, strict, warn)
    info = dict(info or {})
    info.setdefault("source", "arrays")
    info["members"] = len(members)
    writer = CollectionWriter(out, info)
    mode = base.mode
    for i, m in enumerate(members):
        kind, b, d = member_plan(m, bits, bits_for, lossless, vector_size, mode)
        rec = dict(name=m.name, shape=[int(s) for s in m.shape],
                   dtype=collection.dtype_name(m.dtype), attrs=_jsonable(m.attrs, m.name))
        if kind == "tqz":
            with tempfile.TemporaryFile() as tmp, m.source() as src:
                try:
                    h = compress_to(_Reblocked(src, d), tmp, base.replace(bits=b))
                except TqError as e:
                    raise TqError(f"member {m.name!r}: {e.reason}") from None
                length = tmp.tell()
                raw_size = int(np.prod(m.shape, dtype=object)) * np.dtype(m.dtype).itemsize
                if length < raw_size + CRC.size:
                    writer.begin(dict(rec, kind="tqz", length=length, vector=d, bits=h.bits))
                    tmp.seek(0)
                    while True:
                        piece = tmp.read(COPY_PIECE)
                        if not piece:
                            break
                        writer.write_data(piece)
                    kind = None
            if kind is None:
                if progress is not None:
                    progress(i + 1, len(members))
                continue
        values = m.values()
        if collection.dtype_name(values.dtype) == "bfloat16":
            values = values.view("<u2")
        elif values.dtype.kind in "iuf" and not values.dtype.isnative or \
                values.dtype.byteorder == ">":
            values = values.astype(values.dtype.newbyteorder("<"))
        writer.add_raw(dict(rec, kind="raw"), np.ascontiguousarray(values))
        if progress is not None:
            progress(i + 1, len(members))
    writer.finish()
    return writer.toc


def _jsonable(attrs, name: str) -> dict:
    try:
        collection.dump_json(attrs)
    except (TypeError, ValueError) as e:
        raise InputError(f"member {name!r}: attributes are not JSON ({e})") from None
    return attrs


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
        return isinstance(name, str) and name in self.names

    def __init__(self, src, memory_limit: int | None = None, reader=None, own=None):
        self.memory_limit = memory_limit
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
                return collection.read_raw(window, rec, name)
            with TqFile(window, self.memory_limit) as f:
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
        f = TqFile(self._reader.open_member(rec), self.memory_limit)
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
        wanted = None if names is None else set(names)
        if self.seekable:
            for rec in self.members:
                if wanted is None or rec["name"] in wanted:
                    yield rec, self._decode(rec, self._reader.open_member(rec), dtype)
            return
        while True:
            nxt = self._reader.next_member()
            if nxt is None:
                return
            rec, window = nxt
            if wanted is None or rec["name"] in wanted:
                yield rec, self._decode(rec, window, dtype)
            else:
                window.skip_rest()

    def verify(self) -> list[dict]:
        """Read every member (checksums, every rule); returns the records."""
        recs = []
        for rec, _ in self.items():
            recs.append(rec)
        return recs

    def report(self, verify: bool = False) -> dict:
        """The inspect report: every member's name, shape, dtype, bits or lossless, bytes,
        ratio; and the total."""
        if verify or not self.seekable:
            recs = []
            for rec, _ in self.items():
                recs.append(rec)
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



def _check_member_header(h, rec: dict) -> None:
    if tuple(h.shape) != stored_shape(rec) or h.source_dtype != rec["dtype"] or \
            h.bits != rec["bits"]:
        raise FormatError(f"its header ({h.shape} {h.source_dtype}, {h.bits} bits) differs "
                          f"from its record", rule="member-header")


def open_collection(src, memory_limit: int | None = None) -> CollectionFile:
    """Open a collection given as bytes, a path or a binary stream."""
    return CollectionFile(src, memory_limit)


__all__ = ["compress_collection", "open_collection", "CollectionFile", "MemberInput",
           "parse_bits_for", "member_plan", "unmatched_patterns"]
