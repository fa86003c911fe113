"""Small crafted files that declare (or inflate to) far more than they hold, for the
expansion limit (spec 13.9) and the input checks: each is built here in well under a
second from a few KB of work, never by writing what it declares.

* entropy_bomb: a VALID entropy-coded .tqz of float64 rows of d = 2^20 whose model gives
  symbol 0 all but one of 2^16 frequency units; a chunk of 8 all-zero rows (64 MiB decoded)
  is a rANS stream of 8 words.  10,000 chunks: 0.7 MB declaring 625 GiB.
* zip_bomb_npz: an .npz whose one member, a .npy of zeros, deflates about 1000:1.
* zarr_chunk_bomb: a zarr store (v2 or v3) whose one chunk inflates to far more than the
  file holds (zlib / gzip of zeros).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np


def entropy_bomb(chunks: int = 10_000, dim: int = 1 << 20, rows: int = 8) -> bytes:
    from tqcli import kernels
    from tqcli.codec.codings.entropy import EntropyModel
    from tqcli.format.header import CRC, FOOTER, INDEX_ENTRY, Header, crc32

    freqs = np.array([(1 << 16) - 1, 1], np.uint16)
    model = EntropyModel(precision=16, lanes=1, segment_rows=rows, step=1.0, rate=0.0,
                         frequencies=freqs)
    h = Header(dim=dim, bits=1, scale_rule="ls", scale_dtype="float16",
               source_dtype="float64", shape=(chunks * rows, dim), chunk_rows=rows,
               codebook=np.array([0.0, 0.5], np.float32), coding="entropy", model=model,
               rounds=1)
    symbols = np.zeros(rows * dim, np.uint16)
    buf, starts, lengths = kernels.rans_encode(symbols, np.array([0, symbols.size]), freqs,
                                               16, 1)
    stream = bytes(buf[int(starts[0]):int(starts[0]) + int(lengths[0])])
    payload = struct.pack("<I", len(stream)) + stream + np.zeros(rows, "<f2").tobytes()
    c = crc32(payload)
    head = h.to_bytes()
    step = len(payload) + CRC.size
    body = (payload + CRC.pack(c)) * chunks
    offsets = len(head) + step * np.arange(chunks, dtype=np.uint64)
    index = np.zeros(chunks, dtype=[("o", "<u8"), ("n", "<u4"), ("c", "<u4")])
    index["o"], index["n"], index["c"] = offsets, len(payload), c
    ib = index.tobytes()
    assert len(ib) == INDEX_ENTRY.size * chunks
    foot = struct.pack("<QQ", len(head) + len(body), chunks)
    return head + body + ib + foot + CRC.pack(crc32(ib + foot)) + b"TQZE"


def zip_bomb_npz(path, gib: float = 2.0, name: str = "x") -> None:
    """An .npz holding `name`: float32 zeros of (2^k, 1024) worth `gib` GiB, deflated.  The
    deflate stream is made by compressing one MiB of zeros and repeating its body, so
    building it costs a few MB whatever it declares."""
    import zipfile

    n = int(gib * (1 << 30))
    rows = n // (4 * 1024)
    header = _npy_header(np.dtype("<f4"), (rows, 1024))
    total = len(header) + rows * 4096
    # a raw deflate stream: stored header block, then zeros as repeated full blocks
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = 1 << 20
    parts = [co.compress(header)]
    zeros = bytes(piece)
    first = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    parts.append(first)
    mid = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    left = total - len(header) - 2 * piece
    reps, rest = divmod(left, piece)
    parts.append(mid * (reps + 1))
    parts.append(co.compress(bytes(rest)) + co.flush())
    raw = b"".join(parts)
    crc = 0
    crc = zlib.crc32(header, crc)
    # the CRC of the zeros that follow, by combining per piece (no 2 GiB buffer)
    zc = zlib.crc32(zeros)
    for _ in range(2 + reps):
        crc = zlib.crc32(zeros, crc)
    crc = zlib.crc32(bytes(rest), crc)
    with zipfile.ZipFile(path, "w") as z:
        info = zipfile.ZipInfo(name + ".npy", date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.file_size, info.compress_size, info.CRC = total, len(raw), crc
        _write_raw_member(z, info, raw)
    del zc


def _write_raw_member(z, info, raw: bytes) -> None:
    """Write an already deflated member (zipfile has no public call for it)."""
    import zipfile

    z.fp.seek(z.start_dir)
    info.header_offset = z.fp.tell()
    info.flag_bits = 0
    z._writecheck(info)
    z._didModify = True
    z.fp.write(info.FileHeader(zip64=info.file_size > zipfile.ZIP64_LIMIT))
    z.fp.write(raw)
    z.start_dir = z.fp.tell()
    z.filelist.append(info)
    z.NameToInfo[info.filename] = info


def _npy_header(dtype, shape) -> bytes:
    import io

    from numpy.lib import format as npf

    b = io.BytesIO()
    npf.write_array_header_1_0(b, {"descr": npf.dtype_to_descr(dtype), "fortran_order": False,
                                   "shape": shape})
    return b.getvalue()
