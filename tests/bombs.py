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
    from tqcli.format.header import CRC, INDEX_ENTRY, Header, crc32

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


def zip_bomb_npz(path, gib: float = 2.0, name: str = "x") -> int:
    """An .npz holding `name`: float32 zeros of (rows, 1024) worth `gib` GiB, deflated
    (a valid zip: sizes and CRC-32 right).  The deflate stream is one MiB of zeros
    compressed once after a full flush and repeated, so building it costs a few MB whatever
    it declares.  Returns the file's size."""
    rows = int(gib * (1 << 30)) // 4096
    header = _npy_header(np.dtype("<f4"), (rows, 1024))
    total = len(header) + rows * 4096
    piece = 1 << 20
    zeros = bytes(piece)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = co.compress(header) + co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)
    mid = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)  # the same for every MiB after
    reps, rest = divmod(total - len(header) - piece, piece)
    raw = first + mid * reps + co.compress(bytes(rest)) + co.flush()
    crc = zlib.crc32(header)
    big = bytes(64 * piece)
    left = total - len(header)
    while left:
        k = min(left, len(big))
        crc = zlib.crc32(big[:k] if k < len(big) else big, crc)
        left -= k
    fname = (name + ".npy").encode()
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(raw),
                        total, len(fname), 0) + fname
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21,
                          crc, len(raw), total, len(fname), 0, 0, 0, 0, 0, 0) + fname
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                      len(local) + len(raw), 0)
    with open(path, "wb") as f:
        f.write(local + raw + central + end)
    return len(local) + len(raw) + len(central) + len(end)


def _npy_header(dtype, shape) -> bytes:
    import io

    from numpy.lib import format as npf

    b = io.BytesIO()
    npf.write_array_header_1_0(b, {"descr": npf.dtype_to_descr(dtype), "fortran_order": False,
                                   "shape": shape})
    return b.getvalue()


def _deflated_zeros(n: int, wbits: int) -> bytes:
    """n zero bytes as a zlib (wbits 15) or gzip (31) stream, at the cost of compressing
    one MiB: after a full flush every MiB of zeros compresses alike, so the body repeats;
    then a final empty block and the trailer (Adler-32, or CRC-32 and size), computed
    here over the n zeros."""
    piece = 1 << 20
    zeros = bytes(piece)
    co = zlib.compressobj(9, zlib.DEFLATED, wbits)
    reps, rest = divmod(n, piece)
    body = co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH) if reps else b""
    if reps > 1:
        body += (co.compress(zeros) + co.flush(zlib.Z_FULL_FLUSH)) * (reps - 1)
    body += co.compress(bytes(rest)) + co.flush(zlib.Z_FULL_FLUSH)
    big, left = bytes(64 * piece), n
    check = 0 if wbits > 15 else 1
    while left:
        k = min(left, len(big))
        part = big if k == len(big) else big[:k]
        check = zlib.crc32(part, check) if wbits > 15 else zlib.adler32(part, check)
        left -= k
    final = b"\x03\x00"  # a final, empty fixed-Huffman block ends the deflate stream
    if wbits > 15:
        return body + final + struct.pack("<II", check, n & 0xFFFFFFFF)
    return body + final + struct.pack(">I", check)


def zarr_chunk_bomb(path, version: int = 2, gib: float = 1.0) -> int:
    """A zarr store holding one float32 array of (rows, 1024) in ONE chunk of `gib` GiB of
    zeros, zlib-compressed (v2) or gzip (v3): a few MB.  Returns the chunk file's size."""
    import json
    import os

    rows = int(gib * (1 << 30)) // 4096
    os.makedirs(path, exist_ok=True)
    if version == 2:
        meta = {"zarr_format": 2, "shape": [rows, 1024], "chunks": [rows, 1024],
                "dtype": "<f4", "compressor": {"id": "zlib", "level": 1}, "fill_value": 0.0,
                "order": "C", "filters": None}
        with open(os.path.join(path, ".zarray"), "w") as f:
            json.dump(meta, f)
        data, key = _deflated_zeros(rows * 4096, 15), "0.0"
    else:
        meta = {"zarr_format": 3, "node_type": "array", "shape": [rows, 1024],
                "data_type": "float32",
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [rows,
                                                                                    1024]}},
                "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                "fill_value": 0.0,
                "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                           {"name": "gzip", "configuration": {"level": 1}}],
                "attributes": {}}
        with open(os.path.join(path, "zarr.json"), "w") as f:
            json.dump(meta, f)
        os.makedirs(os.path.join(path, "c", "0"), exist_ok=True)
        data, key = _deflated_zeros(rows * 4096, 31), os.path.join("c", "0", "0")
    with open(os.path.join(path, key), "wb") as f:
        f.write(data)
    return len(data)


def hdf5_chunk_bomb(path, gib: float = 1.0, chunks: int = 1) -> int:
    """An HDF5 file holding /x: float32 (rows, 1024) zeros in `chunks` gzip chunks of
    `gib` GiB each, written precompressed (write_direct_chunk): a few MB.  Returns the
    file's size."""
    import os

    import h5py

    rows = int(gib * (1 << 30)) // 4096
    data = _deflated_zeros(rows * 4096, 15)  # HDF5's deflate filter is a zlib stream
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("x", shape=(rows * chunks, 1024), dtype="<f4",
                              chunks=(rows, 1024), compression="gzip")
        for i in range(chunks):
            ds.id.write_direct_chunk((i * rows, 0), data)
    return os.path.getsize(path)
