"""Reading a collection (spec 18.5-18.6): a window onto each member's bytes, the header,
the records and the table of contents, each checked by its reader rule before anything it
declares is trusted; a pipe is read member by member."""

from __future__ import annotations

import struct

import numpy as np

from .. import limits
from ..errors import FormatError
from .collection import (
    COLLECTION_FLAG,
    END_MAGIC,
    FOOTER,
    MAX_HEADER,
    MAX_JSON_DEPTH,
    MAX_RECORD,
    MAX_TOC,
    MIN_HEADER,
    RECORD_HEAD,
    RECORD_MAGIC,
    TOC_MAGIC,
    _fail,
    check_info,
    check_record,
    dump_json,
    group_folders,
    groups_problem,
    names_problem,
    numpy_dtype,
    parse_json,
)
from .container import CRC, MAGIC, _read_exact, crc32

# ---------------------------------------------------------------------- reading


class Window:
    """Bytes [start, start + length) of a stream as a file of its own.  Over a seekable
    stream it seeks; over a pipe it reads in order and never past its end."""

    def __init__(self, stream, start: int, length: int, seekable: bool):
        self.stream, self.start, self.length = stream, start, length
        self._seekable, self.pos = seekable, 0
        if seekable:
            stream.seek(start)

    def seekable(self) -> bool:
        return self._seekable

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if not self._seekable:
            raise OSError("not seekable")
        pos = pos if whence == 0 else self.pos + pos if whence == 1 else self.length + pos
        self.pos = max(0, min(pos, self.length))
        self.stream.seek(self.start + self.pos)
        return self.pos

    def read(self, n: int = -1) -> bytes:
        left = self.length - self.pos
        n = left if n is None or n < 0 else min(n, left)
        data = self.stream.read(n) if n else b""
        self.pos += len(data)
        return data

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        n = min(len(view), self.length - self.pos)
        if n <= 0:
            return 0
        if hasattr(self.stream, "readinto"):
            k = self.stream.readinto(view[:n])
        else:
            data = self.stream.read(n)
            k = len(data)
            view[:k] = data
        self.pos += k or 0
        return k or 0

    def skip_rest(self) -> None:
        """A stream: read what is left of the member (in pieces), so the next one follows."""
        while self.pos < self.length:
            if not self.read(min(1 << 24, self.length - self.pos)):
                raise FormatError("truncated collection (ends inside a member)",
                                  rule="truncated")


def parse_header(read) -> dict:
    start = read(16)
    if len(start) < 16 or start[:8] != MAGIC:
        raise ValueError("not a collection")  # open_reader only sends matching prefixes
    _, flags, size = struct.unpack("<HHI", start[8:16])
    if flags != COLLECTION_FLAG:
        _fail("flags", f"collection flags 0x{flags:04x} (expected 0x{COLLECTION_FLAG:04x})")
    if not MIN_HEADER <= size <= MAX_HEADER:
        _fail("header-size", f"collection header size {size} out of range")
    raw = start + _read_exact(read, size - 16, "collection header")
    if crc32(raw[:-4]) != CRC.unpack(raw[-4:])[0]:
        _fail("header-crc", "collection header checksum mismatch (corrupt header)")
    info = check_info(parse_json(raw[16:-4], "collection header", "collection-header"))
    return info, size


# Bytes parsing a table of contents may take per construct of its JSON text, measured
# with tracemalloc on texts made of nothing else and rounded up (a list of empty lists
# takes 22 times its text, a record as tq writes it about 7): the keys of a record are
# shared by every record (json's memo), the keys of attributes are not.
TOC_COSTS = {b"{": 200, b"[": 80, b",": 40, b":": 40}
TOC_STRING = 160  # per string (a pair of quotes) that is not a record's key
RECORD_KEYS = (b'"name":', b'"shape":', b'"dtype":', b'"attrs":', b'"kind":', b'"length":',
               b'"bits":', b'"vector":', b'"offset":', b'"record":')


def toc_memory(toc: bytes, shared_keys: bool = True) -> int:
    """An upper bound of the memory the parsed table of contents `toc` takes (its bytes,
    their text, and the objects TOC_COSTS counts; brackets or quotes inside strings only
    make it larger).  shared_keys=False: records parsed one by one (a stream's), whose
    keys are not shared."""
    need = 3 * len(toc) + sum(cost * toc.count(ch) for ch, cost in TOC_COSTS.items())
    strings = toc.count(b'"') // 2
    if shared_keys:
        strings -= sum(toc.count(k) for k in RECORD_KEYS)
    return need + TOC_STRING * max(0, strings)


def _check_toc_memory(length: int, toc: bytes | None, limit: int) -> None:
    """Refuse (`memory`) a table of contents whose bytes (toc None: before they are read)
    or parsed records (toc_memory) would exceed the budget."""
    need = length if toc is None else toc_memory(toc)
    if need > limit:
        what = "reading" if toc is None else "parsing"
        raise FormatError(f"{what} its table of contents ({length} bytes) needs "
                          f"{limits.format_size(need)}, above the memory limit of "
                          f"{limits.format_size(limit)} (raise it with --memory or "
                          f"memory_limit=)", rule="memory")


def _read_record(read, i: int, expect: dict | None = None, hdf5: bool = False,
                 cost=None) -> tuple[dict, int]:
    """(record, its size), checked (18.3).  A record whose JSON is byte for byte the
    compact form of `expect` (its TOC entry, checked already; what tq writes) is that
    entry: it is neither parsed nor checked again, so that a member costs one check, not
    two.  cost, if given, is called with the memory its parsed form may take (toc_memory,
    keys not shared) before it is parsed."""
    head = _read_exact(read, RECORD_HEAD.size, f"record of member {i}")
    magic, size = RECORD_HEAD.unpack(head)
    if magic != RECORD_MAGIC:
        _fail("member-record", f"member {i}: no record here (bad record magic)")
    if not RECORD_HEAD.size + 2 + CRC.size <= size <= MAX_RECORD:
        _fail("member-record", f"member {i}: record size {size} out of range")
    raw = head + _read_exact(read, size - RECORD_HEAD.size, f"record of member {i}")
    if crc32(raw[:-4]) != CRC.unpack(raw[-4:])[0]:
        _fail("record-crc", f"member {i}: record checksum mismatch")
    if expect is not None and raw[8:-4] == dump_json(expect):
        return expect, size
    if cost is not None:
        cost(toc_memory(raw[8:-4], shared_keys=False))
    return check_record(parse_json(raw[8:-4], f"record of member {i}", "member-record"),
                        i, hdf5=hdf5), size


class CollectionReader:
    """Reads a collection; `members` (the TOC's records) when the file's size is known."""

    layout = "collection"

    def __init__(self, stream, size: int | None = None, prefix: bytes = b"",
                 memory_limit: int | None = None):
        if isinstance(stream, Window):  # a tqz member whose flags have bit 15 set
            _fail("member-nested", "the member is itself a collection (a tqz member is a "
                                   "single-array .tqz)")
        self.stream, self.size = stream, size
        self.memory_limit = limits.DEFAULT_MEMORY_LIMIT if memory_limit is None \
            else memory_limit

        def read(n, _state=[prefix]):
            head, _state[0] = _state[0][:n], _state[0][n:]
            return head + (stream.read(n - len(head)) if len(head) < n else b"")

        self.info, self.header_size = parse_header(read)
        self._hdf5 = self.info.get("source") == "hdf5"  # attributes in 18.3's forms
        self._group_folders = group_folders(self.info.get("groups", {}))
        self.members: list[dict] | None = None
        self._by_name: dict = {}  # the TOC's members by name (a file, not a stream)
        self.pos = self.header_size
        self._streamed = 0
        self._seen: list[dict] = []
        self._names: set[str] = set()
        self._folders: set[str] = set()
        if size is not None:
            self._read_toc()

    @property
    def seekable(self) -> bool:
        return self.members is not None

    def _read_toc(self) -> None:
        size, h = self.size, self.header_size
        if size < h + FOOTER.size:
            _fail("length", f"truncated collection ({size} bytes)")
        self.stream.seek(size - FOOTER.size)
        raw = _read_exact(self.stream.read, FOOTER.size, "footer")
        toc_off, toc_len, count, crc, end = FOOTER.unpack(raw)
        if end != END_MAGIC:
            _fail("footer-magic", "bad collection footer (missing end marker)")
        if toc_off + toc_len + FOOTER.size != size or toc_off < h:
            _fail("footer-layout", "collection footer does not match the file's length")
        if not len(TOC_MAGIC) + 2 <= toc_len <= MAX_TOC:
            _fail("toc", f"table of contents of {toc_len} bytes out of range")
        if count != self.info["members"]:
            _fail("footer-layout", f"footer says {count} members, the header "
                                   f"{self.info['members']}")
        _check_toc_memory(toc_len, None, self.memory_limit)
        self.stream.seek(toc_off)
        toc = _read_exact(self.stream.read, toc_len, "table of contents")
        _check_toc_memory(toc_len, toc, self.memory_limit)
        if crc32(toc + raw[:20]) != crc:
            _fail("toc-crc", "table of contents checksum mismatch (corrupt)")
        if toc[:4] != TOC_MAGIC:
            _fail("toc", "bad table of contents magic")
        entries = parse_json(toc[4:], "table of contents", "toc", MAX_JSON_DEPTH + 1)
        if not isinstance(entries, list) or len(entries) != count:
            _fail("toc", "table of contents does not list every member")
        self.members = [self._check_entry(e, i, self._hdf5) for i, e in enumerate(entries)]
        # name -> (index, entry): a member is found in constant time, so reading every
        # member of a large collection is linear in their number
        self._by_name = {e["name"]: (i, e) for i, e in enumerate(self.members)}
        problem = names_problem([e["name"] for e in self.members]) or groups_problem(
            self.info.get("groups", {}), self._by_name)
        if problem:
            _fail("member-name", problem)
        # the records and members tile [H, toc_off) exactly, in order
        pos = h
        for e in self.members:
            if e["offset"] != pos:
                _fail("member-layout", f"member {e['name']!r} at {e['offset']}, "
                                       f"expected {pos} (gaps and overlaps are invalid)")
            pos = e["offset"] + e["record"] + e["length"]
            if pos > toc_off:
                _fail("member-layout", f"member {e['name']!r} runs past the table of contents")
        if pos != toc_off:
            _fail("member-layout", f"{toc_off - pos} bytes between the last member and the "
                                   f"table of contents")

    @staticmethod
    def _check_entry(e, i: int, hdf5: bool) -> dict:
        if not isinstance(e, dict):
            _fail("toc", f"entry {i} of the table of contents is not an object")
        rec = {k: v for k, v in e.items() if k not in ("offset", "record")}
        check_record(rec, i, "toc", hdf5)
        for k in ("offset", "record"):
            if type(e.get(k)) is not int or e[k] < 0:
                _fail("toc", f"entry {i}: {k} {e.get(k)!r} is not a byte count")
        return e

    def _hold(self, need: int) -> None:
        """A stream keeps every record it has read (to check the TOC at its end): refuse
        (`memory`) the record that would take them past the budget."""
        self._held = getattr(self, "_held", 0) + need
        if self._held > self.memory_limit:
            raise FormatError(f"the records of its first {self._streamed + 1} members "
                              f"need {limits.format_size(self._held)}, above the memory "
                              f"limit of {limits.format_size(self.memory_limit)} (raise it "
                              f"with --memory or memory_limit=)", rule="memory")

    def entry(self, name: str) -> dict:
        found = self._by_name.get(name) if isinstance(name, str) else None
        if found is None:
            raise KeyError(name)
        return found[1]

    def has(self, name) -> bool:
        """Whether the TOC lists a member of this name (in constant time)."""
        return isinstance(name, str) and name in self._by_name

    def open_member(self, e: dict) -> Window:
        """A seekable reader's member: its record is read and checked against the TOC,
        and the member's bytes come back as a Window."""
        i, entry = self._by_name.get(e["name"], (None, None))
        if entry is not e:
            i = self.members.index(e)  # an equal entry given by the caller
        self.stream.seek(e["offset"])
        expect = {k: v for k, v in e.items() if k not in ("offset", "record")}
        rec, size = _read_record(self.stream.read, i, expect, self._hdf5)
        if size != e["record"] or rec != expect:
            _fail("toc-record", f"member {e['name']!r}: its record differs from the table "
                                f"of contents")
        return Window(self.stream, e["offset"] + size, e["length"], True)

    # streams: members one after the other, then the TOC is checked against them
    def next_member(self):
        """A stream's next (record, Window), or None after the last member (the TOC and
        footer are then read and checked, and the stream must end there)."""
        count = self.info["members"]
        if self._streamed == count:
            self._finish_stream()
            return None
        rec, size = _read_record(self.stream.read, self._streamed, hdf5=self._hdf5,
                                 cost=self._hold)
        name = rec["name"]
        if name in self._group_folders:
            _fail("member-name", f"member name {name!r} is also a group's name")
        parts = name.split("/")
        folders = ["/".join(parts[:i]) for i in range(1, len(parts))]
        if name in self._names or name in self._folders or any(
                f in self._names for f in folders):
            _fail("member-name", f"member name {name!r} appears twice or is also a folder")
        self._names.add(name)
        self._folders.update(folders)
        self._seen.append(dict(rec, offset=self.pos, record=size))
        self.pos += size + rec["length"]
        self._streamed += 1
        return rec, Window(self.stream, 0, rec["length"], False)

    def _finish_stream(self) -> None:
        toc_off = self.pos
        head = _read_exact(self.stream.read, len(TOC_MAGIC), "table of contents")
        if head != TOC_MAGIC:
            _fail("toc", "bad table of contents magic (more members than the header says?)")
        expect = TOC_MAGIC + dump_json(self._seen)
        # the TOC must be exactly the records seen; its length is then known
        rest = _read_exact(self.stream.read, len(expect) - 4 + FOOTER.size,
                           "table of contents")
        toc, footer = head + rest[:-FOOTER.size], rest[-FOOTER.size:]
        if toc != expect:
            entries = parse_json(toc[4:], "table of contents", "toc", MAX_JSON_DEPTH + 1)
            _fail("toc-record", "the table of contents differs from the members' records"
                  if isinstance(entries, list) else "bad table of contents")
        off, length, count, crc, end = FOOTER.unpack(footer)
        if end != END_MAGIC:
            _fail("footer-magic", "bad collection footer (missing end marker)")
        if crc32(toc + footer[:20]) != crc:
            _fail("toc-crc", "table of contents checksum mismatch (corrupt)")
        if off != toc_off or length != len(toc) or count != self.info["members"]:
            _fail("footer-layout", "collection footer does not match the members read")
        if self.stream.read(1):
            _fail("trailing", "trailing data after the collection")
        self.size = toc_off + len(toc) + FOOTER.size  # a stream's length, now known


def read_raw(window: Window, rec: dict, name: str) -> np.ndarray:
    """A raw member's values (its CRC checked), in the stored dtype; bfloat16 comes back as
    ml_dtypes' bfloat16 when it is installed, else as uint16 bit patterns.  Over a file
    (whose length bounded the member) the values are read straight into their array; over
    a pipe the buffer grows with the bytes that arrive."""
    n = rec["length"] - CRC.size
    if window.seekable():
        buf = np.empty(n, np.uint8)
        view, got = memoryview(buf), 0
        while got < n:
            k = window.readinto(view[got:got + (1 << 24)])
            if not k:
                _fail("truncated", f"truncated collection (ends inside member {name!r})")
            got += k
        tail = _read_exact(window.read, CRC.size, f"member {name!r}")
    else:
        data = bytearray()
        while len(data) < n:
            piece = window.read(min(1 << 24, n - len(data)))
            if not piece:
                _fail("truncated", f"truncated collection (ends inside member {name!r})")
            data += piece
        buf = np.frombuffer(data, np.uint8)
        tail = _read_exact(window.read, CRC.size, f"member {name!r}")
    crc = 0
    for a in range(0, n, 1 << 24):
        crc = crc32(buf[a:a + (1 << 24)], crc)
    if crc != CRC.unpack(tail)[0]:
        _fail("member-crc", f"member {name!r}: checksum mismatch (corrupt data)")
    dt = numpy_dtype(rec["dtype"], required=False)
    if dt is None:
        dt = np.dtype("<u2")
    if rec["dtype"] == "bool" and n and int(buf.max()) > 1:
        _fail("member-values", f"member {name!r}: bool values other than 0 and 1")
    return buf.view(dt).reshape(rec["shape"])


RAW_PIECE = 1 << 24


def iter_raw(window: Window, rec: dict, name: str, piece: int = RAW_PIECE):
    """A raw member's values as consecutive 1-d pieces of at most `piece` bytes (whole
    values), in the stored dtype as read_raw gives it; the CRC is checked after the last
    piece (a consumer writes an output it throws away on error, 13.3), bool values in each."""
    n = rec["length"] - CRC.size
    dt = numpy_dtype(rec["dtype"], required=False)
    if dt is None:
        dt = np.dtype("<u2")
    step = max(dt.itemsize, piece - piece % dt.itemsize)
    crc, got = 0, 0
    while got < n:
        want = min(step, n - got)
        buf = np.empty(want, np.uint8)
        view, have = memoryview(buf), 0
        while have < want:
            k = window.readinto(view[have:])
            if not k:
                _fail("truncated", f"truncated collection (ends inside member {name!r})")
            have += k
        crc = crc32(buf, crc)
        got += want
        if rec["dtype"] == "bool" and int(buf.max()) > 1:
            _fail("member-values", f"member {name!r}: bool values other than 0 and 1")
        yield buf.view(dt)
    tail = _read_exact(window.read, CRC.size, f"member {name!r}")
    if crc != CRC.unpack(tail)[0]:
        _fail("member-crc", f"member {name!r}: checksum mismatch (corrupt data)")
