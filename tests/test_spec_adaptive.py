"""The adaptive coding's test vectors (spec/vectors/adaptive.json) and a decoder of coding 2
written from spec/tqz-v1.md sections 3, 19.3, 19.5 and 21 alone (struct, zlib, numpy; the
19.3 coder and the common helpers are test_spec_vectors.py's, nothing from tqcli).

For every vector: tq and the spec decoder reproduce the stored decoded array bit for bit,
and tq's encoder, given the stored basis, reproduces the stored .tqz byte for byte."""

from __future__ import annotations

import io
import json
import os
import struct

import numpy as np
import pytest
from test_spec_vectors import (FIXED, MAGIC, SOURCE_TYPES, SpecError, SpecModel, crc, need,
                               rans_decode)

import tqcli

VEC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "spec", "vectors")
with open(os.path.join(VEC_DIR, "adaptive.json")) as _f:
    MANIFEST = json.load(_f)
NAMES = [v["name"] for v in MANIFEST]


def vec(name: str, suffix: str) -> bytes:
    with open(os.path.join(VEC_DIR, f"{name}.{suffix}"), "rb") as f:
        return f.read()


def npy(name: str, suffix: str) -> np.ndarray:
    return np.load(io.BytesIO(vec(name, suffix)), allow_pickle=False)


# =====================================================================================
# Coding 2 from the spec's text.
# =====================================================================================


def spec_parse_adaptive(data: bytes):
    """21.2 and 13.1: the header's fields and the coding's block; the chunk payloads after
    the layout checks of 19.5 and the CRCs."""
    need(len(data) >= 16 and data[:8] == MAGIC, "magic")
    version, flags, hsize = struct.unpack_from("<HHI", data, 8)
    need(version == 1 and flags & 0xFE00 == 0, "version / flags")
    need(flags & 0xFF == 2, "coding")
    centered = bool(flags & 0x100)
    need(len(data) >= hsize and crc(data[:hsize - 4]) == struct.unpack_from(
        "<I", data, hsize - 4)[0], "header CRC")
    (_, _, _, _, mode, bits, rule, sdt, src, rot, rounds, ndim, d, chunk_rows, n,
     seed) = struct.unpack_from(FIXED, data, 0)
    need(mode == 0, "adaptive-mode")
    need(sdt == 0, "adaptive-model: scale dtype")
    shape = struct.unpack_from(f"<{ndim}Q", data, 48)
    need(shape[-1] == d and int(np.prod(shape[:-1], dtype=object)) == n, "shape")
    at = 48 + 8 * ndim
    k, c, bdt, p, lanes, scales, step, rate, nm = struct.unpack_from("<HHBBBBddd", data, at)
    need(d <= 4096, "adaptive-dim")
    need(1 <= k <= d and 1 <= c <= min(255, k) and bdt in (0, 1, 2) and 8 <= p <= 16
         and 1 <= lanes <= 32 and scales in (0, 1) and step > 0, "adaptive-model")
    at += 32
    m = struct.unpack_from(f"<{c}H", data, at)
    need(all(2 <= v <= min(4096, 1 << p) for v in m), "adaptive-model: symbols")
    at += 2 * c
    books, models = [], []
    for v in m:
        books.append(np.frombuffer(data, "<f4", count=v, offset=at).astype(np.float32))
        at += 4 * v
    for v, book in zip(m, books):
        f = np.frombuffer(data, "<u2", count=v, offset=at)
        need(bool(np.all(f >= 1)) and int(f.astype(np.int64).sum()) == 1 << p,
             "adaptive-model: frequencies")
        need(bool(np.all(np.isfinite(book))), "adaptive-model: codebook")
        models.append(SpecModel(v, p, lanes, 8, step, rate, book, f))
        at += 2 * v
    cls = list(data[at:at + k])
    need(all(x < c for x in cls) and len(set(cls)) == c, "adaptive-model: classes")
    at += k
    if bdt == 2:  # a float32 scale, then d int8 values; B = RN32(s q)
        basis = np.empty((k, d), np.float32)
        for j in range(k):
            (s,) = struct.unpack_from("<f", data, at)
            q = np.frombuffer(data, np.int8, count=d, offset=at + 4).astype(np.float64)
            basis[j] = (np.float64(np.float32(s)) * q).astype(np.float32)
            at += 4 + d
    else:
        fmt = "<f2" if bdt == 0 else "<f4"
        basis = np.frombuffer(data, fmt, count=k * d, offset=at).astype(np.float32)
        basis = basis.reshape(k, d)
        at += k * d * (2 if bdt == 0 else 4)
    need(bool(np.all(np.isfinite(basis))), "adaptive-basis")
    center = None
    if centered:
        center = np.frombuffer(data, "<f4", count=d, offset=at).astype(np.float32)
        at += 4 * d
    need(at + 4 == hsize, "header size")
    # 19.5's layout: chunks one after another from the header, the index, the footer
    chunks = -(-n // chunk_rows)
    foot = data[len(data) - 24:]
    f_off, f_count, f_crc, end = struct.unpack("<QQI4s", foot)
    need(end == b"TQZE" and f_count == chunks, "footer")
    index = data[len(data) - 24 - 16 * chunks:len(data) - 24]
    need(f_crc == crc(index + foot[:16]), "index-crc")
    payloads, pos = [], hsize
    for i in range(chunks):
        off, length, ck = struct.unpack_from("<QII", index, 16 * i)
        need(off == pos, "index-layout")
        payload = data[off:off + length]
        need(crc(payload) == ck == struct.unpack_from("<I", data, off + length)[0], "chunk-crc")
        payloads.append(payload)
        pos = off + length + 4
    need(f_off == pos and pos == len(data) - 16 * chunks - 24, "footer-layout")
    return dict(shape=shape, d=d, k=k, c=c, chunk_rows=chunk_rows, n=n, cls=cls,
                models=models, books=books, basis=basis, center=center, scales=scales,
                source=SOURCE_TYPES[src]), payloads


def spec_decode_adaptive(data: bytes) -> np.ndarray:
    """21.4 and 21.5: each class's stream (19.3), then the sum over components in binary64
    in component order, rounded to binary32, the centre added in binary32."""
    h, payloads = spec_parse_adaptive(data)
    d, k, c = h["d"], h["k"], h["c"]
    members = [[j for j in range(k) if h["cls"][j] == cc] for cc in range(c)]
    out = []
    for i, payload in enumerate(payloads):
        rows = min(h["chunk_rows"], h["n"] - i * h["chunk_rows"])
        lens = struct.unpack_from(f"<{c}I", payload, 0)
        tail = 2 * rows * h["scales"]  # 21.4: r float16 scales after the streams
        need(4 * c + sum(lens) + tail == len(payload), "adaptive-stream: lengths")
        cells = np.zeros((rows, k), np.int64)
        pos = 4 * c
        for cc in range(c):
            need(lens[cc] % 4 == 0, "adaptive-stream: words")
            words = list(struct.unpack_from(f"<{lens[cc] // 4}I", payload, pos))
            sym = rans_decode(words, rows * len(members[cc]), h["models"][cc])
            cells[:, members[cc]] = np.array(sym, np.int64).reshape(rows, len(members[cc]))
            pos += lens[cc]
        acc = np.zeros((rows, d), np.float64)
        for j in range(k):
            v = h["books"][h["cls"][j]][cells[:, j]].astype(np.float64)
            acc = acc + v[:, None] * h["basis"][j].astype(np.float64)[None, :]
        if h["scales"]:
            sig = np.frombuffer(payload[len(payload) - tail:], "<f2").astype(np.float64)
            need(bool(np.all(np.isfinite(sig))), "adaptive-stream: scale")
            acc = acc * sig[:, None]
        o = acc.astype(np.float32)
        if h["center"] is not None:
            o = o + h["center"]
        need(bool(np.all(np.isfinite(o))), "decoded-finite")
        out.append(o)
    flat = np.concatenate(out) if out else np.zeros((0, d), np.float32)
    return flat.astype(h["source"]).reshape(h["shape"])


# =====================================================================================


@pytest.mark.parametrize("name", NAMES)
def test_spec_decoder_and_tq_reproduce_the_decoded_vector(name):
    data, want = vec(name, "tqz"), npy(name, "decoded.npy")
    got = spec_decode_adaptive(data)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()
    assert tqcli.decompress(data).tobytes() == want.tobytes()


@pytest.mark.parametrize("name", NAMES)
def test_tq_reproduces_the_tqz_from_the_stored_basis(name):
    from tqcli.codec.adaptive_model import Basis

    entry = next(v for v in MANIFEST if v["name"] == name)
    z = np.load(os.path.join(VEC_DIR, f"{name}.basis.npz"))
    extra = {"scaled": bool(z["scaled"]), "rho": float(z["rho"])} if "rho" in z.files else {}
    basis = Basis(mean=z["mean"], components=z["components"], variances=z["variances"],
                  rows=0, **extra)
    blob = tqcli.compress(npy(name, "input.npy"), adapt=basis, **entry["options"])
    assert blob == vec(name, "tqz")
    h = tqcli.read_header(blob)
    assert (h.model.k, h.model.basis_dtype, h.model.n_classes, h.n_chunks, len(blob)) == (
        entry["components"], entry["basis_dtype"], entry["classes"], entry["chunks"],
        entry["bytes"])


def test_the_vectors_cover_every_basis_dtype():
    assert {v["basis_dtype"] for v in MANIFEST} == {"float16", "float32", "int8"}
    assert {v.get("scales", 0) for v in MANIFEST} == {0, 1}


def _rehead(data: bytes, at: int, value: bytes) -> bytes:
    (hsize,) = struct.unpack_from("<I", data, 12)
    b = bytearray(data)
    b[at:at + len(value)] = value
    b[hsize - 4:hsize] = struct.pack("<I", crc(bytes(b[:hsize - 4])))
    return bytes(b)


MUTATIONS = {  # offsets from the coding's block (48 + 8 ndim); both readers refuse
    "precision 17": (5, bytes([17]), "adaptive-model"),
    "lanes 0": (6, bytes([0]), "adaptive-model"),
    "scales 2": (7, bytes([2]), "adaptive-model"),
    "basis dtype 3": (4, bytes([3]), "adaptive-model"),
}


@pytest.mark.parametrize("what", sorted(MUTATIONS))
def test_both_readers_refuse_crafted_headers(what):
    data = vec(NAMES[0], "tqz")
    off, value, rule = MUTATIONS[what]
    ndim = data[23]
    bad = _rehead(data, 48 + 8 * ndim + off, value)
    with pytest.raises(SpecError):
        spec_decode_adaptive(bad)
    with pytest.raises(tqcli.FormatError) as e:
        tqcli.decompress(bad)
    assert e.value.rule in (rule, "header-size")
