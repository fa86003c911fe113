"""The .tqz container (spec sections 13-17): chunks, their index and the footer, written in
one pass and read with every offset checked against the header before it is trusted.

With a fixed-size payload coding the layout is fully determined by the header: a reader
computes every offset and the exact file length from it and checks them before it
allocates or trusts anything else.  Every refusal is a FormatError naming the reader rule
(spec 13.6).  The header itself is tqcli.format.header's.
"""

from __future__ import annotations

import struct


from ..errors import FormatError
from . import expansion
from .header import (CRC, END_MAGIC, FOOTER, INDEX_ENTRY, MAGIC, MIN_HEADER, VERSION,  # noqa: F401
                     READ_PIECE, Header, _read_exact, _require, check_memory, crc32,
                     max_header_size)


class ContainerWriter:
    """Writes a container to a binary stream chunk by chunk; never seeks."""

    def __init__(self, stream, header: Header):
        header.validate()
        self.stream = stream
        self.header = header
        self.offset = 0
        self.index: list[tuple[int, int, int]] = []
        self._write(header.to_bytes())

    def _write(self, data) -> None:
        self.stream.write(data)
        self.offset += len(data)

    def write_chunk(self, payload) -> None:
        """Write one chunk: its payload as bytes, or as a list of byte buffers (written one
        after the other, checksummed as one -- no joined copy)."""
        parts = payload if isinstance(payload, list) else [payload]
        size = sum(len(p) for p in parts)
        i = len(self.index)
        h = self.header
        if i >= h.n_chunks:
            raise ValueError("more chunks than the header's layout")
        rows = h.chunk_rows_of(i)
        if h.fixed_layout:
            ok = size == h.payload_size(rows)
        else:
            ok = h.payload_coding.min_payload_size(h, rows) <= size <= h.max_payload_size(rows)
        if not ok:
            raise ValueError("chunk does not match the header's layout")
        crc = 0
        for p in parts:
            crc = crc32(p, crc)
        self.index.append((self.offset, size, crc))
        for p in parts:
            self._write(p)
        self._write(CRC.pack(crc))

    def finish(self) -> None:
        if len(self.index) != self.header.n_chunks:
            raise ValueError("not all chunks were written")
        index = b"".join(INDEX_ENTRY.pack(*e) for e in self.index)
        head = struct.pack("<QQ", self.offset, len(self.index))
        self._write(index + FOOTER.pack(self.offset, len(self.index),
                                        crc32(index + head), END_MAGIC))


# ---------------------------------------------------------------------- reading


def check_index(header: Header, tail: bytes) -> list[tuple[int, int, int]]:
    """Validate index + footer bytes against the layout the header implies.

    With a variable-size coding (spec 19) the index gives the lengths: each must lie in
    the coding's bounds for its chunk's rows, and the chunks must follow each other from
    the end of the header with no gap up to index_offset."""
    k = header.n_chunks
    if len(tail) != INDEX_ENTRY.size * k + FOOTER.size:
        raise FormatError("truncated file (ends inside the index)", rule="truncated")
    index = tail[:-FOOTER.size]
    off, count, crc, end = FOOTER.unpack(tail[-FOOTER.size:])
    if end != END_MAGIC:
        raise FormatError("bad footer (missing end marker)", rule="footer-magic")
    if crc32(index + tail[-FOOTER.size:-8]) != crc:
        raise FormatError("index checksum mismatch (corrupt index)", rule="index-crc")
    if count != k or (header.fixed_layout and off != header.index_offset):
        raise FormatError("footer does not match the header's layout", rule="footer-layout")
    entries = [INDEX_ENTRY.unpack_from(index, i * INDEX_ENTRY.size) for i in range(k)]
    if header.fixed_layout:
        for i, (o, length, _) in enumerate(entries):
            if (o != header.chunk_offset(i)
                    or length != header.payload_size(header.chunk_rows_of(i))):
                raise FormatError(f"index entry {i} does not match the layout",
                                  rule="index-layout")
        return entries
    coding, at = header.payload_coding, header.header_size
    bounds = {}  # rows -> (min, max) payload: two row counts at most (a file of 10^4+ chunks)
    for i, (o, length, _) in enumerate(entries):
        rows = header.chunk_rows_of(i)
        if rows not in bounds:
            bounds[rows] = (coding.min_payload_size(header, rows),
                            coding.max_payload_size(header, rows))
        lo, hi = bounds[rows]
        if o != at or not lo <= length <= hi:
            raise FormatError(f"index entry {i} does not match the layout", rule="index-layout")
        at = o + length + CRC.size
    if off != at:
        raise FormatError("footer does not match the chunks the index lists",
                          rule="footer-layout")
    return entries


def variable_layout_size(read_tail, size: int, header: Header) -> list[tuple[int, int, int]]:
    """The index of a variable-size file of `size` bytes, read from its end by
    read_tail(offset, n) and checked (spec 19.5): footer, chunk count, index CRC, entries
    tiling [header end, index_offset), and index_offset + 16 k + 24 = size."""
    k = header.n_chunks
    need = header.header_size + INDEX_ENTRY.size * k + FOOTER.size
    if size < need:
        raise FormatError(f"truncated file ({size} bytes, at least {need} expected)",
                          rule="length")
    foot = read_tail(size - FOOTER.size, FOOTER.size)
    off, count, _, end = FOOTER.unpack(foot)
    if end != END_MAGIC:
        raise FormatError("bad footer (missing end marker)", rule="footer-magic")
    if count != k:
        raise FormatError("footer does not match the header's layout", rule="footer-layout")
    start = size - FOOTER.size - INDEX_ENTRY.size * k
    entries = check_index(header, read_tail(start, size - start))
    if off != start:
        # the chunks end elsewhere than where the index begins: data is missing or extra
        raise FormatError(f"the chunks end at {off}, the index starts at {start} (truncated "
                          f"or trailing data)", rule="length" if off > start else "trailing")
    return entries


class _Prefixed:
    """read(n) that returns `prefix` first, then the stream's bytes."""

    def __init__(self, prefix: bytes, read):
        self.prefix, self.read_more = prefix, read

    def __call__(self, n: int) -> bytes:
        head, self.prefix = self.prefix[:n], self.prefix[n:]
        if len(head) < n:
            head += self.read_more(n - len(head))
        return head


class ContainerReader:
    """Reads a container from a binary stream; random access when the stream can seek."""

    def __init__(self, stream, size: int | None = None, prefix: bytes = b""):
        """`prefix`: bytes already taken from the start of `stream` (tqcli.format.layouts)."""
        self.stream = stream
        self.header = Header.read_from(_Prefixed(prefix, stream.read) if prefix else stream.read)
        self.pos = self.header.header_size
        self.index = None
        self._crcs: list[int] = []
        self._lengths: list[tuple[int, int]] = []  # a stream's (offset, length) per chunk
        self._tail = None  # a stream's index entries, once read
        self._buf: bytearray | None = None
        self.max_ratio = None  # the expansion limit a stream's chunks are held to (13.9)
        if size is not None and not self.header.fixed_layout:
            def read_tail(offset, n):
                stream.seek(offset)
                return _read_exact(stream.read, n, "index")
            self.index = variable_layout_size(read_tail, size, self.header)
            stream.seek(self.pos)
        elif size is not None:
            expect = self.header.file_size
            if size < expect:
                raise FormatError(f"truncated file ({size} bytes, the header implies {expect})",
                                  rule="length")
            if size > expect:
                raise FormatError(f"{size - expect} bytes of trailing data after the container",
                                  rule="trailing")
            stream.seek(self.header.index_offset)
            self.index = check_index(self.header, _read_exact(
                stream.read, self.header.file_size - self.header.index_offset, "index"))
            stream.seek(self.pos)

    @property
    def seekable(self) -> bool:
        return self.index is not None

    def check_expansion(self, max_ratio=None) -> None:
        """Hold the container to the expansion limit (spec 13.9): a file of known length
        at once, every chunk from its index; a stream chunk by chunk as it is read."""
        self.max_ratio = max_ratio
        if self.seekable:
            lengths = None if self.header.fixed_layout else [e[1] for e in self.index]
            expansion.check_file(self.header, self.file_size, lengths, max_ratio)

    @property
    def file_size(self) -> int:
        """The container's length in bytes (a stream's: once finish_stream has run)."""
        h = self.header
        if h.fixed_layout:
            return h.file_size
        entries = self._entries()
        end = entries[-1][0] + entries[-1][1] + CRC.size if entries else h.header_size
        return end + INDEX_ENTRY.size * len(entries) + FOOTER.size

    @property
    def payload_bytes(self) -> int:
        """Bytes of chunk payloads, without header, checksums, index and footer."""
        if self.header.fixed_layout:
            return self.header.payload_bytes
        return sum(e[1] for e in self._entries())

    def _entries(self):
        entries = self.index if self.index is not None else self._tail
        if entries is None:
            raise ValueError("a stream's sizes are known once it has been read to its end")
        return entries

    def read_chunk(self, i: int, verify: bool = True, into: bytearray | None = None) -> memoryview:
        """Payload of chunk i, its CRC checked.  Streams must read chunks in order.

        The view stays valid until the next read_chunk call: a seekable container, whose
        sizes have been checked against the file's length, reads every chunk into one
        reused buffer (no fresh memory to fault in per chunk) -- or into `into`, a
        bytearray of the caller's of at least max_payload_size + 4 bytes, whose view stays
        valid as long as the caller does not reuse it: for callers decoding several chunks
        at once.
        """
        hdr = self.header
        rows = hdr.chunk_rows_of(i)
        prefix = b""
        if self.seekable:
            off, n = (self.index[i][0], self.index[i][1]) if not hdr.fixed_layout else (
                hdr.chunk_offset(i), hdr.payload_size(rows))
            if self.pos != off:
                self.stream.seek(off)
        else:
            if i != len(self._crcs):
                raise ValueError("a stream is read in order")
            off = self.pos
            if hdr.fixed_layout:
                n = hdr.payload_size(rows)
            else:  # the payload's first bytes give its length (spec 19.4)
                coding = hdr.payload_coding
                prefix = _read_exact(self.stream.read, coding.prefix_size(hdr, rows),
                                     f"chunk {i}")
                n = coding.payload_size_from_prefix(hdr, rows, prefix, i)
                self._lengths.append((off, n))
            # before the payload is read: what is decoded stays within the limit times
            # the bytes that arrived (a stream's length is unknown, 13.9)
            expansion.check_chunk(hdr, i, n + CRC.size, self.max_ratio)
        if self.seekable and hasattr(self.stream, "readinto"):
            data = self._read_reused(n + CRC.size, f"chunk {i}", into)
        elif prefix:  # one join of the prefix and the pieces: at most twice the payload
            data = _read_exact(_after(prefix, self.stream.read), n + CRC.size, f"chunk {i}")
        else:
            data = _read_exact(self.stream.read, n + CRC.size, f"chunk {i}")
        self.pos = off + n + CRC.size
        (stored,) = CRC.unpack(data[n:])
        if verify and crc32(memoryview(data)[:n]) != stored:
            raise FormatError(f"chunk {i}: checksum mismatch (corrupt data)", rule="chunk-crc", chunk=i)
        if self.index is not None and self.index[i][2] != stored:
            raise FormatError(f"chunk {i}: checksum differs from the index",
                              rule="chunk-index-crc", chunk=i)
        if verify:
            hdr.payload_coding.check_payload(hdr, memoryview(data)[:n], rows, i)
        self._crcs.append(stored)
        return memoryview(data)[:n]

    def _read_reused(self, n: int, what: str, into: bytearray | None = None) -> memoryview:
        if into is not None:
            if len(into) < n:
                raise ValueError("the buffer is smaller than the chunk")
            buf = into
        else:
            if self._buf is None or len(self._buf) < n:
                self._buf = bytearray(n)
            buf = self._buf
        view = memoryview(buf)[:n]
        got = 0
        while got < n:
            k = self.stream.readinto(view[got:])
            if not k:
                break
            got += k
        if got != n:
            raise FormatError(f"truncated file (ends inside the {what})", rule="truncated")
        return view

    def finish_stream(self) -> None:
        """After the last chunk of a stream: check index and footer and that nothing follows."""
        if self.seekable:
            return
        hdr = self.header
        tail = _read_exact(self.stream.read, INDEX_ENTRY.size * hdr.n_chunks + FOOTER.size, "index")
        entries = check_index(hdr, tail)
        if [e[2] for e in entries] != self._crcs:
            raise FormatError("chunk checksums differ from the index", rule="chunk-index-crc")
        if not hdr.fixed_layout:
            if [(e[0], e[1]) for e in entries] != self._lengths:
                raise FormatError("chunk lengths differ from the index", rule="index-layout")
            end = FOOTER.unpack(tail[-FOOTER.size:])[0]
            if end != self.pos:
                raise FormatError("footer does not match the chunks read", rule="footer-layout")
        self._tail = entries
        if self.stream.read(1):
            raise FormatError("trailing data after the container", rule="trailing")


def _after(prefix: bytes, read):
    """read(n) that first returns the bytes of `prefix` already read (_read_exact then
    joins them with the rest once, rather than copying the whole payload again)."""
    pending = [prefix]

    def reader(n: int) -> bytes:
        if pending:
            head = pending.pop()
            if len(head) >= n:
                if len(head) > n:
                    pending.append(head[n:])
                return head[:n]
            return head + read(n - len(head))
        return read(n)

    return reader
