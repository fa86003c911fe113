"""The collection layout of .tqz (spec/tqz-v1.md section 18): named members in one file.

    header   magic, version 1, flags 0x8000, header size H, JSON, CRC-32
    member   "TQZM", record length, record JSON, CRC-32; then the member's bytes:
             a whole single-array .tqz (kind "tqz") or raw little-endian values + CRC-32
    ...
    TOC      "TQZT" + JSON list of every record with its offset
    footer   TOC offset, TOC length, member count, CRC-32, "TQZC"

Each record says how long its member's bytes are, so a stream is read member by member
without the table of contents, which a seekable reader reads first (from the footer) to
reach one member without touching the others.  Every byte range is implied by the order
of the records: they must tile the file exactly (no gap, no overlap), which the reader
checks before it reads a member.  Every refusal is a FormatError with a rule of spec 18.6.
"""

from __future__ import annotations

import json
import struct
import unicodedata

import numpy as np

from ..arrayio import jsontext
from ..arrayio.h5attrs import attrs_problem
from ..arrayio.members import reserved_name_problem
from ..errors import FormatError
from ..limits import stored_itemsize as itemsize
from .container import CRC, MAGIC, VERSION, crc32

COLLECTION_FLAG = 0x8000          # flags of a collection header: exactly this
RECORD_MAGIC = b"TQZM"
TOC_MAGIC = b"TQZT"
END_MAGIC = b"TQZC"
FOOTER = struct.Struct("<QQII4s")  # TOC offset, TOC length, member count, CRC, end magic
RECORD_HEAD = struct.Struct("<4sI")  # magic, record length (whole record, CRC included)
KINDS = ("tqz", "raw")

MIN_HEADER = 16 + 2 + 4            # the smallest JSON object "{}" and the CRC
MAX_HEADER = 1 << 24
MAX_RECORD = 1 << 24
MAX_TOC = 1 << 26
MAX_MEMBERS = 1 << 20
MAX_NAME_BYTES = 1024
MAX_NAME_DEPTH = 32
MAX_JSON_DEPTH = 32              # header and record JSON; the TOC (a list of records) 33
MAX_NDIM = 32
MAX_EXTENT = 1 << 48
MAX_RAW_BYTES = 1 << 62

# dtypes a member may have, by their stored names (little-endian when stored raw)
RAW_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
              "uint64", "float16", "bfloat16", "float32", "float64")
LOSSY_DTYPES = ("float16", "bfloat16", "float32", "float64")
SOURCES = ("arrays", "hdf5", "safetensors", "npz", "directory")


def _fail(rule: str, reason: str):
    raise FormatError(reason, rule=rule)


def numpy_dtype(name: str, required: bool = True) -> np.dtype:
    """The numpy dtype of a stored dtype name (bfloat16 through ml_dtypes)."""
    if name == "bfloat16":
        from ..arrayio import bf16

        return bf16.dtype(required)
    return np.dtype(name).newbyteorder("<") if name != "bool" else np.dtype(bool)


def dtype_name(dt) -> str | None:
    """The stored name of a numpy dtype, or None when a collection cannot hold it."""
    dt = np.dtype(dt)
    if dt.name == "bfloat16" and dt.itemsize == 2:
        return "bfloat16"
    if dt.fields is not None or dt.subdtype is not None:
        return None
    name = dt.newbyteorder("=").name if dt.kind in "iuf" else dt.name
    return name if name in RAW_DTYPES else None


# ---------------------------------------------------------------------- JSON and names


def parse_json(raw: bytes, what: str, rule: str, limit: int = MAX_JSON_DEPTH):
    """Strict JSON (UTF-8; no NaN, no duplicate keys) nested at most `limit` deep (18.1:
    32 for the collection header and a record, 33 for the TOC, a list of records)."""
    try:
        return jsontext.loads(raw, what, limit)
    except jsontext.JSONProblem as e:
        _fail(rule, str(e))


def dump_json(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def name_problem(name) -> str | None:
    """Why `name` cannot be a member (or group) name, or None.  Names become paths of
    output files and HDF5 objects: '/'-separated components, none empty, '.' or '..',
    no NUL or other control character, no backslash."""
    if not isinstance(name, str) or not name:
        return "a member name must be a non-empty string"
    raw = name.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_NAME_BYTES:
        return f"member name of {len(raw)} bytes (the limit is {MAX_NAME_BYTES})"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return f"member name {name!r} holds a control character"
    if "\\" in name:
        return f"member name {name!r} holds a backslash"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        return f"member name {name!r} is not valid UTF-8"
    parts = name.split("/")
    if name.startswith("/"):
        return f"member name {name!r} is an absolute path"
    if any(p in ("", ".", "..") for p in parts):
        return f"member name {name!r} has an empty, '.' or '..' component"
    if len(parts) > MAX_NAME_DEPTH:
        return f"member name {name!r} is {len(parts)} levels deep (limit {MAX_NAME_DEPTH})"
    return None


def names_problem(names) -> str | None:
    """Duplicates, and a name that is also the folder of another ('a' beside 'a/b')."""
    seen = set()
    for n in names:
        if n in seen:
            return f"member name {n!r} appears twice"
        seen.add(n)
    for n in names:
        parts = n.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in seen:
                return f"member {'/'.join(parts[:i])!r} is also the folder of {n!r}"
    return None


def folded(name: str) -> str:
    """A name as a case-insensitive, normalising file system (macOS, Windows) sees it."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def portable_names_problem(names) -> str | None:
    """Two names that differ only in case or Unicode normalisation ('Key' and 'key',
    'e\u0301' and '\u00e9'): one file on macOS and Windows, so a folder or an unpacked
    archive of the collection would lose one of them."""
    seen = {}
    for n in names:
        k = folded(n)
        if k in seen and seen[k] != n:
            return (f"member names {seen[k]!r} and {n!r} differ only in case or Unicode "
                    f"normalisation (one file on macOS and Windows)")
        seen.setdefault(k, n)
    return None


def group_folders(groups) -> set[str]:
    """Every group name and each folder above one: no member may have such a name (an
    HDF5 object is a group or a dataset, never both)."""
    out = set()
    for g in groups:
        if g:
            parts = g.split("/")
            out.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def groups_problem(groups, names) -> str | None:
    """A member named as a group, or as a folder of one ('x' beside the group 'x/y')."""
    folders = group_folders(groups)
    for n in names:
        if n in folders:
            return f"member name {n!r} is also a group's name"
    return None


def members_problem(info: dict, members) -> str | None:
    """What a writer refuses before it writes anything: `members` are (name, attrs) pairs;
    their names (18.4, duplicates, folders, names reserved by an output kind, names that
    differ only in case or normalisation), a member that is also a group, and the
    attributes of members and groups (HDF5's forms for an HDF5 source, 18.3)."""
    names = [n for n, _ in members]
    problem = next(filter(None, map(name_problem, names)), None) or names_problem(names) \
        or reserved_name_problem(None, names) or portable_names_problem(names)
    if problem:
        return problem
    groups = info.get("groups") or {}
    if not isinstance(groups, dict):
        return "groups must map names to attribute objects"
    problem = groups_problem(groups, names)
    if problem:
        return problem
    hdf5 = info.get("source") == "hdf5"
    for where, attrs in [(f"group {g!r}", a) for g, a in groups.items()] + [
            (f"member {n!r}", a) for n, a in members]:
        problem = attrs_problem(attrs, hdf5)
        if problem:
            return f"{where}: {problem}"
    return None


# ---------------------------------------------------------------------- records


def check_info(info, rule: str = "collection-header") -> dict:
    if not isinstance(info, dict):
        _fail(rule, "collection header is not a JSON object")
    depth = jsontext.depth(info)
    if depth > MAX_JSON_DEPTH:  # parsed headers are bounded already; this bounds a writer's
        _fail(rule, f"collection header nested {depth} deep (the limit is {MAX_JSON_DEPTH})")
    count = info.get("members")
    if type(count) is not int or not 0 <= count <= MAX_MEMBERS:
        _fail(rule, f"member count {count!r} out of range 0..{MAX_MEMBERS}")
    if info.get("source", "arrays") not in SOURCES:
        _fail(rule, f"unknown collection source {info.get('source')!r}")
    groups = info.get("groups", {})
    if not isinstance(groups, dict) or not all(isinstance(v, dict) for v in groups.values()):
        _fail(rule, "groups must map names to attribute objects")
    for g in groups:
        if g != "" and name_problem(g):
            _fail("member-name", name_problem(g))
    hdf5 = info.get("source") == "hdf5"
    for g, attrs in groups.items():
        problem = attrs_problem(attrs, hdf5)
        if problem:
            _fail(rule, f"group {g!r}: {problem}")
    meta = info.get("metadata")
    if meta is not None and not (isinstance(meta, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items())):
        _fail(rule, "metadata must map strings to strings")
    return info


def check_record(rec, i: int, rule: str = "member-record", hdf5: bool = False) -> dict:
    """One member's record: name, kind, shape, dtype, attrs, length (and vector for tqz);
    `hdf5`: the collection's source is HDF5, so each attribute has one of 18.3's forms."""
    where = f"member {i}"
    if not isinstance(rec, dict):
        _fail(rule, f"{where}: record is not a JSON object")
    known = {"name", "kind", "shape", "dtype", "attrs", "length", "vector", "bits"}
    extra = set(rec) - known
    if extra:
        _fail(rule, f"{where}: unknown record fields {sorted(extra)}")
    problem = name_problem(rec.get("name"))
    if problem:
        _fail("member-name", f"{where}: {problem}")
    where = f"member {rec['name']!r}"
    kind = rec.get("kind")
    if kind not in KINDS:
        _fail(rule, f"{where}: unknown kind {kind!r}")
    shape = rec.get("shape")
    if not (isinstance(shape, list) and len(shape) <= MAX_NDIM
            and all(type(s) is int and 0 <= s <= MAX_EXTENT for s in shape)):
        _fail(rule, f"{where}: shape {shape!r} is not a list of at most {MAX_NDIM} "
                    f"integers 0..2^48")
    dtype = rec.get("dtype")
    if dtype not in (LOSSY_DTYPES if kind == "tqz" else RAW_DTYPES):
        _fail(rule, f"{where}: dtype {dtype!r} not allowed for a {kind} member")
    attrs = rec.get("attrs", {})  # may be left out: then {} (18.3)
    if not isinstance(attrs, dict):
        _fail(rule, f"{where}: attrs must be a JSON object")
    problem = attrs_problem(attrs, hdf5)
    if problem:
        _fail(rule, f"{where}: {problem}")
    depth = jsontext.depth(rec)
    if depth > MAX_JSON_DEPTH:  # a parsed record is bounded already; this bounds a writer's
        _fail(rule, f"{where}: record nested {depth} deep (the limit is {MAX_JSON_DEPTH})")
    length = rec.get("length")
    if type(length) is not int or length < 0:
        _fail(rule, f"{where}: length {length!r} is not a byte count")
    count = 1
    for s in shape:
        count *= s
        if count > MAX_RAW_BYTES:
            _fail(rule, f"{where}: shape {shape} holds too many values")
    if kind == "raw":
        if "vector" in rec or "bits" in rec:
            _fail(rule, f"{where}: a raw member has no vector or bits")
        if length != count * itemsize(dtype) + CRC.size:
            _fail("member-length", f"{where}: length {length} is not its "
                                   f"{count} values and a CRC")
    else:
        v = rec.get("vector")
        if not shape or type(v) is not int or v < 1 or shape[-1] % v:
            _fail(rule, f"{where}: vector size {v!r} does not divide the last axis")
        if type(rec.get("bits")) is not int:
            _fail(rule, f"{where}: bits missing")
    return rec


def stored_shape(rec: dict) -> tuple[int, ...]:
    """The shape of a tqz member's own header: the last axis cut into vectors."""
    shape, v = tuple(rec["shape"]), rec["vector"]
    return shape if v == shape[-1] else shape[:-1] + (shape[-1] // v, v)


# ---------------------------------------------------------------------- writing


class CollectionWriter:
    """Writes header, members and TOC in order to a binary stream; never seeks."""

    def __init__(self, stream, info: dict):
        self.stream, self.offset = stream, 0
        self.info = check_info(dict(info), "field")
        self.toc: list[dict] = []
        body = dump_json(self.info)
        size = 16 + len(body) + CRC.size
        if size > MAX_HEADER:
            raise FormatError("collection attributes are too large", rule="field")
        head = MAGIC + struct.pack("<HHI", VERSION, COLLECTION_FLAG, size) + body
        self._write(head + CRC.pack(crc32(head)))

    def _write(self, data) -> None:
        self.stream.write(data)
        self.offset += len(data)

    def begin(self, rec: dict) -> None:
        """Write a member's record; its `length` bytes must follow (write_data)."""
        check_record(rec, len(self.toc), "field", self.info.get("source") == "hdf5")
        if len(self.toc) >= self.info["members"]:
            raise ValueError("more members than the header says")
        body = dump_json(rec)
        size = RECORD_HEAD.size + len(body) + CRC.size
        if size > MAX_RECORD:
            raise FormatError(f"member {rec['name']!r}: attributes too large", rule="field")
        head = RECORD_HEAD.pack(RECORD_MAGIC, size) + body
        self.toc.append(dict(rec, offset=self.offset, record=size))
        self._write(head + CRC.pack(crc32(head)))
        self._due = rec["length"]

    def write_data(self, data) -> None:
        self._due -= len(data)
        if self._due < 0:
            raise ValueError("member longer than its record says")
        self._write(data)

    def add_raw(self, rec: dict, array: np.ndarray) -> None:
        data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
        self.begin(dict(rec, kind="raw", length=data.size + CRC.size))
        crc = 0
        for a in range(0, data.size, 1 << 24):
            piece = data[a:a + (1 << 24)]
            crc = crc32(piece, crc)
            self.write_data(piece)
        self.write_data(CRC.pack(crc))

    def finish(self) -> None:
        if len(self.toc) != self.info["members"] or getattr(self, "_due", 0):
            raise ValueError("not all members were written")
        toc = TOC_MAGIC + dump_json(self.toc)
        if len(toc) > MAX_TOC:
            raise FormatError("table of contents too large", rule="field")
        start = self.offset
        head = struct.pack("<QQI", start, len(toc), len(self.toc))
        self._write(toc + FOOTER.pack(start, len(toc), len(self.toc), crc32(toc + head),
                                      END_MAGIC))


__all__ = ["CollectionWriter", "name_problem", "names_problem", "stored_shape", "numpy_dtype",
           "dtype_name"]  # the reader: tqcli.format.collection_reader
