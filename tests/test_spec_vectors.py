"""The .tqz v1 test vectors (spec/vectors) and an independent implementation of spec/tqz-v1.md.

For every vector in spec/vectors/vectors.json:
  * tq's library and command line reproduce the stored .tqz, decoded .npy and inspect JSON
    byte for byte;
  * a decoder and an encoder written here from the specification alone (struct, zlib, numpy;
    nothing imported from tqcli) reproduce the stored decoded array and the stored .tqz bit
    for bit.  That is the evidence that the spec is sufficient.

The subprocess checks of the installed `tq` run on one vector by default (each process
start costs about half a second); set TQ_SPEC_FULL_CLI=1 to run them on every vector.
"""

from __future__ import annotations

import bisect
import io
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from fuzzkit import PipeLike

VEC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "spec", "vectors")
with open(os.path.join(VEC_DIR, "vectors.json")) as _f:
    MANIFEST = json.load(_f)
NAMES = [v["name"] for v in MANIFEST]
BY_NAME = {v["name"]: v for v in MANIFEST}
FULL_CLI = os.environ.get("TQ_SPEC_FULL_CLI") == "1"
SUBPROCESS_NAMES = NAMES if FULL_CLI else NAMES[:1]


def vec_path(name: str, suffix: str) -> str:
    return os.path.join(VEC_DIR, f"{name}.{suffix}")


def vec_bytes(name: str, suffix: str) -> bytes:
    with open(vec_path(name, suffix), "rb") as f:
        return f.read()


def load_npy(name: str, suffix: str) -> np.ndarray:
    return np.load(io.BytesIO(vec_bytes(name, suffix)), allow_pickle=False)


# =====================================================================================
# An independent implementation of spec/tqz-v1.md.  Written from the spec's text only.
# =====================================================================================

U64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MAGIC = b"\x89TQZ\r\n\x1a\n"
FIXED = "<8sHHIBBBBBBBBIIQQ"  # 48 bytes
MODES = {0: "mse", 1: "prod"}
RULES = {0: "ls", 1: "norm", 2: "ip"}
SCALE_TYPES = {0: ("<f4", 4), 1: ("<f2", 2), 2: ("<f8", 8)}  # scale_dtype code: format
SCALE_CODES = {"float32": 0, "float16": 1, "float64": 2}
SOURCE_TYPES = {1: "float16", 2: "float32", 3: "float64"}


class SpecError(Exception):
    pass


def need(cond: bool, what: str) -> None:
    if not cond:
        raise SpecError(what)


def crc(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def mix64(z: int) -> int:
    z &= U64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64
    return z ^ (z >> 31)


def sm_output(key: int, k: int) -> int:
    """Output number k (k >= 1) of SplitMix64 keyed by `key`."""
    return mix64(key + k * GOLDEN)


def stream_key(seed: int, tag: int) -> int:
    return sm_output(seed, tag + 1)


ROTATION_CODES = {"hadamard2": 1, "tiled": 2}


def block_scale(p: int) -> np.float32:
    """float32 nearest to 1/sqrt(p), per the table of section 8.2."""
    k = p.bit_length() - 1
    bits = 0x3F800000 - ((k // 2) << 23) if k % 2 == 0 else 0x3F3504F3 - (((k - 1) // 2) << 23)
    return np.frombuffer(struct.pack("<I", bits), "<f4")[0]


class Rot:
    """Section 8: the rounds' signs and permutations (8.1) and the blocks of the kind:
    hadamard2 [0, p) then [d-p, d) (8.3), tiled the binary digits of d, largest first (8.6)."""

    def __init__(self, d: int, seed: int, rounds: int, kind: int = 1):
        self.d = d
        p = 1 << (d.bit_length() - 1)
        if kind == 1:
            self.blocks = [(0, p)] + ([(d - p, p)] if p < d else [])
        else:
            self.blocks, off = [], 0
            for e in range(d.bit_length() - 1, -1, -1):
                if d >> e & 1:
                    self.blocks.append((off, 1 << e))
                    off += 1 << e
        self.signs, self.perms = [], []
        for r in range(rounds):
            ks = stream_key(seed, 2 * r)
            self.signs.append(np.array([-1.0 if sm_output(ks, i + 1) >> 63 else 1.0
                                        for i in range(d)], np.float32))
            kp = stream_key(seed, 2 * r + 1)
            keys = [sm_output(kp, i + 1) for i in range(d)]
            self.perms.append(np.array(sorted(range(d), key=lambda i: (keys[i], i)), np.int64))

    @staticmethod
    def _wht(t: np.ndarray, lo: int, p: int) -> None:
        blk = t[:, lo:lo + p]
        h = 1
        while h < p:
            for start in range(0, p, 2 * h):
                a = blk[:, start:start + h].copy()
                b = blk[:, start + h:start + 2 * h].copy()
                blk[:, start:start + h] = a + b
                blk[:, start + h:start + 2 * h] = a - b
            h *= 2
        blk *= block_scale(p)

    def forward(self, t: np.ndarray) -> np.ndarray:
        t = t.astype(np.float32)
        for s, perm in zip(self.signs, self.perms):
            t = s * t[:, perm]
            for lo, p in self.blocks:
                self._wht(t, lo, p)
        return t

    def inverse(self, t: np.ndarray) -> np.ndarray:
        t = t.astype(np.float32)
        for s, perm in zip(reversed(self.signs), reversed(self.perms)):
            for lo, p in reversed(self.blocks):
                self._wht(t, lo, p)
            out = np.empty_like(t)
            out[:, perm] = s * t
            t = out
        return t


def make_sketch(d: int, seed: int) -> np.ndarray:
    """S, d x d float32, Marsaglia polar method on stream 2**32."""
    key = stream_key(seed, 1 << 32)
    vals: list[float] = []
    k = 0
    while len(vals) < d * d:
        x, y = sm_output(key, k + 1), sm_output(key, k + 2)
        k += 2
        u = (x >> 11) * 2.0 ** -52 - 1.0
        v = (y >> 11) * 2.0 ** -52 - 1.0
        s = u * u + v * v
        if s >= 1.0 or s == 0.0:
            continue
        f = math.sqrt(-2.0 * math.log(s) / s)
        vals.append(u * f)
        if len(vals) < d * d:
            vals.append(v * f)
    return np.array(vals, np.float64).astype(np.float32).reshape(d, d)


def unpack_bits(buf: bytes, bits: int, count: int) -> np.ndarray:
    stream = np.unpackbits(np.frombuffer(buf, np.uint8), bitorder="little")
    need(stream.size >= count * bits, "section too short")
    planes = stream[:count * bits].reshape(count, bits).astype(np.int64)
    return (planes << np.arange(bits)).sum(axis=1)


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    v = np.asarray(values, np.int64).reshape(-1)
    planes = ((v[:, None] >> np.arange(bits)) & 1).astype(np.uint8)
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


class SpecModel:
    """The entropy coding's model block (section 19.1)."""

    def __init__(self, symbols, precision, lanes, segment_rows, step, rate, codebook, freq):
        self.m, self.p, self.lanes, self.g = symbols, precision, lanes, segment_rows
        self.step, self.rate = step, rate
        self.codebook = np.asarray(codebook, np.float32)
        self.freq = [int(f) for f in freq]
        self.cum = [0]
        for f in self.freq:
            self.cum.append(self.cum[-1] + f)

    def to_bytes(self) -> bytes:
        return (struct.pack("<HBBIdd", self.m, self.p, self.lanes, self.g, self.step,
                            self.rate) + np.asarray(self.codebook, "<f4").tobytes()
                + np.asarray(self.freq, "<u2").tobytes())

    def w_max(self, n_symbols: int) -> int:
        """19.3: the largest stream, in 32-bit words, of a segment of n_symbols."""
        return 4 * self.lanes + -(-n_symbols * (self.p + 2) // 32)


class SpecHeader:
    """Fields of a parsed header plus the layout arithmetic of the spec."""

    def __init__(self, f: dict):
        self.__dict__.update(f)
        self.model = f.get("model")  # SpecModel of coding 1 (section 19), else None
        self.coding = 1 if self.model is not None else 0
        self.code_bits = self.bits if self.mode == "mse" else self.bits - 1
        self.k = (1 << self.code_bits) if self.code_bits else 0
        if self.model is not None:
            self.k = 0
            self.codebook = self.model.codebook
        self.n_chunks = -(-self.n // self.chunk_rows)
        self.ssize = SCALE_TYPES[self.scale_dtype_code][1]
        self.center = f.get("center")  # None, or the d float32 values of 3.4
        block = 4 * self.k if self.model is None else 24 + 6 * self.model.m  # 3.3 / 19.1
        self.header_size = 48 + 8 * len(self.shape) + block + 4 + (
            4 * self.dim if self.center is not None else 0)

    def rows_of(self, i: int) -> int:
        return min(self.chunk_rows, self.n - i * self.chunk_rows)

    def sections(self, rows: int) -> tuple[int, int, int]:
        codes = -(-rows * self.dim * self.code_bits // 8)
        signs = -(-rows * self.dim // 8) if self.mode == "prod" else 0
        floats = rows * self.ssize * (1 if self.mode == "mse" else 2)
        return codes, signs, floats

    def payload(self, rows: int) -> int:
        return sum(self.sections(rows))

    # --- coding 1 (19.4): segments of a chunk and the payload bounds
    def segment_rows(self, rows: int) -> list[int]:
        g = self.model.g
        return [min(g, rows - s) for s in range(0, rows, g)]

    def p_min(self, rows: int) -> int:
        return sum(4 + 8 * self.model.lanes for _ in self.segment_rows(rows)) + rows * self.ssize

    def p_max(self, rows: int) -> int:
        return sum(4 + 4 * self.model.w_max(self.dim * r)
                   for r in self.segment_rows(rows)) + rows * self.ssize

    def chunk_offset(self, i: int) -> int:
        return self.header_size + i * (self.payload(self.chunk_rows) + 4)

    def index_offset(self) -> int:
        if self.n_chunks == 0:
            return self.header_size
        last = self.n_chunks - 1
        return self.chunk_offset(last) + self.payload(self.rows_of(last)) + 4

    def file_size(self) -> int:
        return self.index_offset() + 16 * self.n_chunks + 24

    def to_bytes(self) -> bytes:
        mode = {v: k for k, v in MODES.items()}[self.mode]
        rule = {v: k for k, v in RULES.items()}[self.rule]
        src = {v: k for k, v in SOURCE_TYPES.items()}[self.source_dtype]
        flags = (0x100 if self.center is not None else 0) | self.coding
        body = struct.pack(FIXED, MAGIC, 1, flags, self.header_size, mode, self.bits, rule,
                           self.scale_dtype_code, src, self.rotation, self.rounds,
                           len(self.shape),
                           self.dim, self.chunk_rows, self.n, self.seed)
        body += struct.pack(f"<{len(self.shape)}Q", *self.shape)
        if self.model is not None:
            body += self.model.to_bytes()
        else:
            body += np.asarray(self.codebook, "<f4").tobytes()
        if self.center is not None:
            body += np.asarray(self.center, "<f4").tobytes()
        return body + struct.pack("<I", crc(body))


# ------------------------------------------------------------------ rANS (section 19.3)

RANS_B = 1 << 31


def rans_decode(words: list[int], n_symbols: int, model: SpecModel) -> list[int]:
    """The normative decoder of 19.3, in Python integers; SpecError for a refused stream."""
    lanes, p = model.lanes, model.p
    mask = (1 << p) - 1
    need(len(words) >= 2 * lanes, "entropy-stream: fewer than 2L words")
    x = [words[2 * j] + (words[2 * j + 1] << 32) for j in range(lanes)]
    need(all(RANS_B <= v < 1 << 63 for v in x), "entropy-stream: initial state")
    pos = 2 * lanes
    cum, freq = model.cum, model.freq
    out = []
    for t in range(n_symbols):
        j = t % lanes
        slot = x[j] & mask
        s = bisect.bisect_right(cum, slot) - 1  # F_s <= slot < F_s + f_s
        out.append(s)
        x[j] = freq[s] * (x[j] >> p) + slot - cum[s]
        if x[j] < RANS_B:
            need(pos < len(words), "entropy-stream: stream too short")
            x[j] = (x[j] << 32) + words[pos]
            pos += 1
    need(pos == len(words), "entropy-stream: words left over")
    need(all(v == RANS_B for v in x), "entropy-stream: final state")
    return out


def rans_encode(symbols, model: SpecModel) -> list[int]:
    """tq's encoder of 19.3: the stream's words."""
    lanes, p = model.lanes, model.p
    x = [RANS_B] * lanes
    emitted = []
    for t in range(len(symbols) - 1, -1, -1):
        j = t % lanes
        s = int(symbols[t])
        f, c = model.freq[s], model.cum[s]
        if x[j] >= (RANS_B >> p) * (1 << 32) * f:
            emitted.append(x[j] & 0xFFFFFFFF)
            x[j] >>= 32
        x[j] = (x[j] // f << p) + x[j] % f + c
    head = []
    for v in x:
        head += [v & 0xFFFFFFFF, v >> 32]
    return head + emitted[::-1]


def spec_parse(data: bytes) -> tuple[SpecHeader, list[bytes]]:
    """Validate a whole .tqz file per the reader rules; return its header and chunk payloads."""
    need(len(data) >= 16 and data[:8] == MAGIC, "bad magic")
    version, flags, hsize = struct.unpack_from("<HHI", data, 8)
    need(version == 1, f"unsupported version {version}")
    coding = flags & 0xFF  # bits 0-7 (3.1)
    need(flags & 0xFE00 == 0, "unknown flags")
    need(coding in (0, 1), "coding")
    centered = bool(flags & 0x100)
    top = 1332 if coding == 0 else 24908  # 13.1 step 4; 19.1's bound for coding 1
    need(60 <= hsize <= top + (4 << 20 if centered else 0)
         and len(data) >= hsize, "header size")
    need(crc(data[:hsize - 4]) == struct.unpack_from("<I", data, hsize - 4)[0], "header CRC")
    (_, _, _, _, mode, bits, rule, sdt, src, rot, rounds, ndim, dim, chunk_rows, n,
     seed) = struct.unpack_from(FIXED, data, 0)
    need(mode in MODES and 1 <= bits <= 8 and rule in RULES and sdt in SCALE_TYPES, "field")
    need(src in SOURCE_TYPES and rot in (1, 2) and 1 <= rounds <= 32 and 1 <= ndim <= 32, "field")
    need(2 <= dim <= 1 << 20 and 8 <= chunk_rows <= 1 << 20 and chunk_rows % 8 == 0, "field")
    need(n <= 1 << 48 and (MODES[mode] == "mse" or rule == 1), "field")
    need(coding == 0 or mode == 0, "entropy-mode")  # 19
    model = None
    mpos = 48 + 8 * ndim  # the codebook (3.1) or the model block (19.1)
    if coding == 1:  # 19.2: step 7 in two parts
        base = 48 + 8 * ndim + 24 + (4 * dim if centered else 0) + 4
        need(hsize >= base, "header size")
        (m_sym,) = struct.unpack_from("<H", data, mpos)
        need(hsize == base + 6 * m_sym, "header size does not match its fields")
    shape = struct.unpack_from(f"<{ndim}Q", data, 48)
    need(shape[-1] == dim and math.prod(shape[:-1]) == n, "shape")
    need(all(e <= 1 << 48 for e in shape) and (ndim > 1 or n == 1), "shape")
    if coding == 1:  # 19.2: the model's checks (step 9)
        m_sym, prec, lanes, g, step, rate = struct.unpack_from("<HBBIdd", data, mpos)
        cb = np.frombuffer(data, "<f4", count=m_sym, offset=mpos + 24).astype(np.float32)
        freq = np.frombuffer(data, "<u2", count=m_sym, offset=mpos + 24 + 4 * m_sym)
        need(2 <= m_sym <= 4096 and 8 <= prec <= 16 and m_sym <= 1 << prec, "entropy-model")
        need(1 <= lanes <= 32 and g % 8 == 0 and 8 <= g <= chunk_rows, "entropy-model")
        need(math.isfinite(step) and step > 0 and math.isfinite(rate) and rate >= 0,
             "entropy-model")
        need(bool(np.all(freq >= 1)) and int(freq.astype(np.int64).sum()) == 1 << prec,
             "entropy-model")
        model = SpecModel(m_sym, prec, lanes, g, step, rate, cb, freq)
    h = SpecHeader(dict(mode=MODES[mode], bits=bits, rule=RULES[rule], scale_dtype_code=sdt,
                        source_dtype=SOURCE_TYPES[src], rounds=rounds, shape=shape, dim=dim,
                        chunk_rows=chunk_rows, n=n, seed=seed, codebook=None, model=model,
                        rotation=rot, center=np.zeros(dim, np.float32) if centered else None))
    need(hsize == h.header_size, "header size does not match its fields")
    if coding == 0:
        cb = np.frombuffer(data, "<f4", count=h.k, offset=mpos).astype(np.float32)
    need(bool(np.all(np.isfinite(cb))) and bool(np.all(np.diff(cb) > 0)), "codebook")
    h.codebook = cb
    if centered:  # the centre follows the codebook (3.1) or the model block (19.1)
        h.center = np.frombuffer(data, "<f4", count=dim, offset=hsize - 4 - 4 * dim)
        need(bool(np.all(np.isfinite(h.center))), "centre")
    if coding == 1:
        return h, _spec_layout_entropy(h, data)
    need(h.payload(chunk_rows) <= 1 << 31, "chunk too large")
    need(len(data) == h.file_size(), "file length differs from the layout")
    # index and footer
    io_ = h.index_offset()
    index = data[io_:io_ + 16 * h.n_chunks]
    foot = data[io_ + 16 * h.n_chunks:]
    f_off, f_count, f_crc, end = struct.unpack("<QQI4s", foot)
    need(end == b"TQZE" and f_crc == crc(index + foot[:16]), "footer")
    need(f_off == io_ and f_count == h.n_chunks, "footer layout")
    chunks = []
    for i in range(h.n_chunks):
        off, length, c = struct.unpack_from("<QII", index, 16 * i)
        need(off == h.chunk_offset(i) and length == h.payload(h.rows_of(i)), "index entry")
        payload = data[off:off + length]
        (stored,) = struct.unpack_from("<I", data, off + length)
        need(stored == c and crc(payload) == c, f"chunk {i} CRC")
        chunks.append(payload)
    return h, chunks


def _spec_layout_entropy(h: SpecHeader, data: bytes) -> list[bytes]:
    """Coding 1: the layout checks of 19.5 (in place of 13.2), then per chunk its CRCs and
    the segment lengths of 19.4; returns the payloads."""
    k, hsize = h.n_chunks, h.header_size
    need(h.p_max(h.chunk_rows) <= 1 << 31, "chunk-size")
    need(len(data) >= hsize + 16 * k + 24, "length")
    foot = data[len(data) - 24:]
    f_off, f_count, f_crc, end = struct.unpack("<QQI4s", foot)
    need(end == b"TQZE", "footer-magic")
    need(f_count == k, "footer-layout")
    index = data[len(data) - 24 - 16 * k:len(data) - 24]
    need(f_crc == crc(index + foot[:16]), "index-crc")
    entries, pos = [], hsize
    for i in range(k):
        off, length, c = struct.unpack_from("<QII", index, 16 * i)
        rows = h.rows_of(i)
        need(off == pos and h.p_min(rows) <= length <= h.p_max(rows), "index-layout")
        entries.append((off, length, c))
        pos = off + length + 4
    need(f_off == pos, "footer-layout")
    end_of_chunks = len(data) - 16 * k - 24
    need(pos <= end_of_chunks, "length")
    need(pos >= end_of_chunks, "trailing")
    chunks = []
    for i, (off, length, c) in enumerate(entries):
        payload = data[off:off + length]
        (stored,) = struct.unpack_from("<I", data, off + length)
        need(crc(payload) == stored, f"chunk-crc {i}")
        need(stored == c, f"chunk-index-crc {i}")
        rows = h.rows_of(i)
        seg = h.segment_rows(rows)
        lens = struct.unpack_from(f"<{len(seg)}I", payload, 0)
        for ell, r in zip(lens, seg):
            need(ell % 4 == 0 and 8 * h.model.lanes <= ell <= 4 * h.model.w_max(h.dim * r),
                 "entropy-stream: segment length")
        need(4 * len(seg) + sum(lens) + rows * h.ssize == length, "entropy-stream: lengths")
        chunks.append(payload)
    return chunks


def spec_decode(data: bytes) -> np.ndarray:
    h, chunks = spec_parse(data)
    d = h.dim
    rot = Rot(d, h.seed, h.rounds, h.rotation)
    sketch = make_sketch(d, h.seed) if h.mode == "prod" else None
    sdt = SCALE_TYPES[h.scale_dtype_code][0]
    out = []
    for i, payload in enumerate(chunks):
        rows = h.rows_of(i)
        nc, ns, nf = h.sections(rows)
        per = nf // (1 if h.mode == "mse" else 2)
        if h.model is not None:  # 19.4: the lengths, the streams, then the scales
            nc, ns = len(payload) - rows * h.ssize, 0
        # section 12, step 2: f32(stored scale), or the binary64 scale itself (code 2)
        wide = h.scale_dtype_code == 2
        scales = np.frombuffer(payload, sdt, count=rows, offset=nc + ns).astype(
            np.float64 if wide else np.float32)
        need(bool(np.all(np.isfinite(scales))), "scale-finite")
        if h.model is not None:  # 19.4 step 1: the symbols of each segment (19.3)
            seg = h.segment_rows(rows)
            lens = struct.unpack_from(f"<{len(seg)}I", payload, 0)
            pos, idx = 4 * len(seg), []
            for ell, r in zip(lens, seg):
                words = list(struct.unpack_from(f"<{ell // 4}I", payload, pos))
                idx += rans_decode(words, r * d, h.model)
                pos += ell
            t = h.codebook[np.array(idx, np.int64).reshape(rows, d)]  # t_i = c[idx_i]
        elif h.code_bits:
            t = h.codebook[unpack_bits(payload[:nc], h.code_bits, rows * d).reshape(rows, d)]
        else:
            t = np.zeros((rows, d), np.float32)
        if h.mode == "prod":
            q = unpack_bits(payload[nc:nc + ns], 1, rows * d).reshape(rows, d)
            q = np.where(q == 1, 1.0, -1.0).astype(np.float32)
            gam = np.frombuffer(payload, sdt, count=rows, offset=nc + ns + per)
            coef = math.sqrt(math.pi / 2.0) / d
            kk = (coef * gam.astype(np.float64)).astype(np.float32)
            corr = np.zeros((rows, d), np.float32)
            for j in range(d):
                corr += q[:, j:j + 1] * sketch[j][None, :]
            t = t + kk[:, None] * corr
        t = rot.inverse(t)
        s = scales[:, None]
        # step 6: a binary32 product, or binary64 (lambda' * f64(z_i)) with binary64 scales;
        # exactly +0.0 for a zero scale
        if wide:
            o = np.where(s != 0, s * t.astype(np.float64), 0.0)
        else:
            o = np.where(s != 0, s * t, np.float32(0.0)).astype(np.float32)
        if h.center is not None:  # step 7, in the format of step 6
            o = o + h.center.astype(o.dtype)
        out.append(o)
    flat = np.concatenate(out) if out else np.zeros((0, d), np.float32)
    return flat.astype(h.source_dtype).reshape(h.shape)


def spec_encode(x: np.ndarray, *, bits, mode, seed, rounds, scale_rule, scale_dtype,
                chunk_rows, codebook, rotation, center=False, center_values=None,
                coding="packed", nmse=None, model=None, header_bits=None) -> bytes:
    """Encode per the spec, with the codebook (and the centre of a centred file) given:
    the spec leaves their computation informative and requires the stored values.
    coding "entropy" (section 19) takes the stored model instead of the codebook (its
    step, precision, lanes, segment rows, rate, codebook and frequencies: 19.6 derives them
    from the law, informatively); `bits` is then the target rate, whose rounding up is the
    header's bits (19.1), or None with a target `nmse`: the header's bits must then be
    given (header_bits), as 19.1 does not say what tq stores there."""
    d = x.shape[-1]
    n = math.prod(x.shape[:-1])
    entropy = coding == "entropy"
    if entropy:
        bits = math.ceil(bits) if bits is not None else header_bits
        codebook = model.codebook
    h = SpecHeader(dict(mode=mode, bits=bits, rule=scale_rule, model=model if entropy else None,
                        scale_dtype_code=SCALE_CODES[scale_dtype],
                        source_dtype=x.dtype.name, rounds=rounds, shape=tuple(x.shape), dim=d,
                        chunk_rows=chunk_rows, n=n, seed=seed,
                        codebook=np.asarray(codebook, np.float32),
                        rotation=ROTATION_CODES[rotation],
                        center=np.asarray(center_values, np.float32) if center else None))
    rot = Rot(d, seed, rounds, ROTATION_CODES[rotation])
    cb = h.codebook
    thr = (cb[:-1].astype(np.float64) + cb[1:].astype(np.float64)) * 0.5
    if entropy:  # 19.6: theta_j = (j - K' + 1/2) * step, K' = floor((M - 1) / 2)
        kk_ = (model.m - 1) // 2
        thr = np.array([(j - kk_ + 0.5) * model.step for j in range(model.m - 1)], np.float64)
    sketch = make_sketch(d, seed) if mode == "prod" else None
    sdt = SCALE_TYPES[h.scale_dtype_code][0]
    rows_all = x.reshape(n, d).astype(np.float64)
    if center:  # section 11: x_i - f64(m_i) in binary64
        rows_all = rows_all - h.center.astype(np.float64)
    out = bytearray(h.to_bytes())
    index = []
    for i in range(h.n_chunks):
        xs = rows_all[i * chunk_rows:i * chunk_rows + h.rows_of(i)]
        rows = xs.shape[0]
        m = np.max(np.abs(xs), axis=1)
        zero = m == 0
        ms = np.where(zero, 1.0, m)[:, None]
        ss = np.zeros(rows)
        for j in range(d):
            w = xs[:, j] / ms[:, 0]
            ss += w * w
        root = np.sqrt(ss)
        u = ((xs / ms) / np.where(zero, 1.0, root)[:, None]).astype(np.float32)
        u[zero] = 0.0
        norm = np.where(zero, 0.0, m * root)
        y = rot.forward(u)
        idx = (np.searchsorted(thr, y.astype(np.float64), side="left")
               if h.code_bits else np.zeros((rows, d), np.int64))
        c = cb[idx] if h.code_bits else np.zeros((rows, d), np.float32)
        if entropy:  # 19.4: segments of G vectors, one rANS stream each (19.3)
            streams = []
            for g0 in range(0, rows, model.g):
                words = rans_encode(idx[g0:g0 + model.g].reshape(-1).tolist(), model)
                streams.append(struct.pack(f"<{len(words)}I", *words))
            sections = [struct.pack(f"<{len(streams)}I", *map(len, streams)) + b"".join(streams)]
        else:
            sections = [pack_bits(idx, h.code_bits) if h.code_bits else b""]
        if mode == "mse":
            yc = np.zeros(rows)
            cc = np.zeros(rows)
            for j in range(d):
                cj = c[:, j].astype(np.float64)
                yc += y[:, j].astype(np.float64) * cj
                cc += cj * cj
            with np.errstate(divide="ignore", invalid="ignore"):
                s = {"ls": norm * (yc / cc), "norm": norm, "ip": norm / yc}[scale_rule]
            floats = [np.where(zero, 0.0, s)]
        else:
            res = (y - c).astype(np.float32)
            gg = np.zeros(rows)
            for j in range(d):
                gg += res[:, j].astype(np.float64) * res[:, j].astype(np.float64)
            proj = np.zeros((rows, d), np.float32)
            for j in range(d):
                proj += sketch[:, j][None, :] * res[:, j:j + 1]
            sections.append(pack_bits((proj >= 0).astype(np.int64), 1))
            floats = [norm, np.where(zero, 0.0, np.sqrt(gg))]
        payload = b"".join(sections) + b"".join(f.astype(sdt).tobytes() for f in floats)
        assert entropy or len(payload) == h.payload(rows)
        index.append(struct.pack("<QII", len(out), len(payload), crc(payload)))
        out += payload + struct.pack("<I", crc(payload))
    idx_bytes = b"".join(index)
    head = struct.pack("<QQ", len(out), h.n_chunks)
    out += idx_bytes + head + struct.pack("<I", crc(idx_bytes + head)) + b"TQZE"
    return bytes(out)


# =====================================================================================
# The tests
# =====================================================================================


def npy_bytes(a: np.ndarray) -> bytes:
    from tqcli.arrayio import npy_header_bytes

    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return npy_header_bytes(a.shape, a.dtype) + a.tobytes()


def library_compress(v: dict, **override) -> bytes:
    import tqcli

    x = load_npy(v["name"], "input.npy")
    return tqcli.compress(x, **{**v["options"], **override})


def test_manifest_and_files():
    assert len(NAMES) >= 6 and len(set(NAMES)) == len(NAMES)
    total = 0
    for v in MANIFEST:
        for suffix in ("input.npy", "tqz", "decoded.npy", "inspect.json"):
            total += os.path.getsize(vec_path(v["name"], suffix))
        assert os.path.getsize(vec_path(v["name"], "tqz")) == v["tqz_bytes"]
    assert total < 512 * 1024
    assert crc(b"123456789") == 0xCBF43926  # the spec's CRC-32 check value
    assert any(spec_parse(vec_bytes(n, "tqz"))[0].n_chunks >= 3 for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_spec_decoder_reproduces_decoded(name):
    """The decoder written from the spec gives the stored decoded array bit for bit."""
    got = spec_decode(vec_bytes(name, "tqz"))
    want = load_npy(name, "decoded.npy")
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                               rtol=1e-6, atol=1e-6 * float(np.max(np.abs(want)) or 1.0))
    assert got.tobytes() == want.tobytes(), "not bit-identical"


@pytest.mark.parametrize("name", NAMES)
def test_spec_encoder_reproduces_tqz(name):
    """The encoder written from the spec (given the stored codebook) gives the .tqz bytes."""
    v = BY_NAME[name]
    stored = vec_bytes(name, "tqz")
    h, _ = spec_parse(stored)
    got = spec_encode(load_npy(name, "input.npy"), codebook=h.codebook,
                      center_values=h.center, model=h.model, header_bits=h.bits,
                      **v["options"])
    assert got == stored


def _toy_model(lanes: int, precision: int = 12) -> SpecModel:
    freq = [1, 7, 300, 2000, 1500, 250, 28, 10]
    freq[3] += (1 << precision) - sum(freq)
    cb = np.linspace(-1, 1, len(freq)).astype(np.float32)
    return SpecModel(len(freq), precision, lanes, 8, 0.25, 2.0, cb, freq)


@pytest.mark.parametrize("lanes", [1, 3, 8])
def test_spec_rans_roundtrip(lanes):
    """The spec's rANS encoder and decoder (19.3) invert each other, within W_max, and the
    decoder refuses streams with a word too many, a word too few or a damaged state."""
    model = _toy_model(lanes)
    rng = np.random.default_rng(lanes)
    p = np.array(model.freq) / sum(model.freq)
    for n_sym in (0, 1, 5, 64, 777):
        sym = rng.choice(len(p), size=n_sym, p=p).tolist()
        words = rans_encode(sym, model)
        assert 2 * lanes <= len(words) <= model.w_max(n_sym)
        assert rans_decode(words, n_sym, model) == sym
        with pytest.raises(SpecError):
            rans_decode(words + [0], n_sym, model)
        with pytest.raises(SpecError):
            rans_decode(words[:2 * lanes - 1], n_sym, model)
    rare = [0] * 200  # the rarest symbol: a word appended for almost every symbol
    words = rans_encode(rare, model)
    assert len(words) <= model.w_max(200) and rans_decode(words, 200, model) == rare
    bad = list(words)
    bad[0] ^= 1
    with pytest.raises(SpecError):
        rans_decode(bad, 200, model)


@pytest.mark.parametrize("name", NAMES)
def test_spec_header_fields_match_manifest(name):
    v = BY_NAME[name]
    h, chunks = spec_parse(vec_bytes(name, "tqz"))
    o = v["options"]
    assert (h.mode, h.seed, h.rounds, h.rule, h.chunk_rows, h.rotation) == (
        o["mode"], o["seed"], o["rounds"], o["scale_rule"], o["chunk_rows"],
        ROTATION_CODES[o["rotation"]])
    assert h.coding == (1 if o.get("coding") == "entropy" else 0)
    if h.model is not None:  # 19.1: the target rate rounded up; 19.6: tq's P, L and G
        if o.get("bits") is not None:
            assert h.bits == math.ceil(o["bits"])
        m = h.model
        assert (m.p, m.lanes) == (16, 8)
        g = 8
        while 2 * g * h.dim <= 65536 and 2 * g <= h.chunk_rows:
            g *= 2
        assert m.g == g
        assert m.m % 2 == 1 and np.array_equal(m.codebook, -m.codebook[::-1])
        assert m.codebook[(m.m - 1) // 2] == 0
    else:
        assert h.bits == o["bits"]
    assert list(h.shape) == v["shape"] and h.source_dtype == v["dtype"]
    assert len(chunks) == -(-math.prod(v["shape"][:-1]) // o["chunk_rows"])
    if h.k and h.model is None:  # the encoder's codebook: symmetric, the f32 Lloyd-Max table
        from tqcli.codec.codebook import codebook

        assert np.array_equal(h.codebook, -h.codebook[::-1])
        assert h.codebook.tobytes() == codebook(h.dim, h.code_bits).tobytes()
    assert (h.center is not None) == bool(o.get("center"))
    if h.center is not None:  # tq's centre (section 14): the first chunk's mean
        first = load_npy(name, "input.npy").reshape(-1, h.dim)[:h.chunk_rows]
        acc = np.zeros(h.dim)
        for row in first.astype(np.float64):
            acc = acc + row
        assert h.center.tobytes() == (acc / first.shape[0]).astype("<f4").tobytes()


@pytest.mark.parametrize("name", NAMES)
def test_library_compress(name):
    assert library_compress(BY_NAME[name]) == vec_bytes(name, "tqz")


@pytest.mark.parametrize("name", NAMES)
def test_library_decompress(name):
    import tqcli

    got = tqcli.decompress(vec_bytes(name, "tqz"), dtype="original")
    assert npy_bytes(got) == vec_bytes(name, "decoded.npy")
    # a stream (no seek) gives the same array
    got2 = tqcli.decompress(PipeLike(vec_bytes(name, "tqz")), dtype="original")
    assert got2.tobytes() == got.tobytes()


# ------------------------------------------------------------------ command line


@pytest.fixture
def tq_cli():
    """Run `tq` in-process with click's runner; restores the signal handlers tq installs."""
    from click.testing import CliRunner

    from tqcli.cli import main

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, getattr(signal, "SIGPIPE", None))
             if s is not None}

    def run(*args):
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        for s, hnd in saved.items():
            signal.signal(s, hnd)
        return result

    return run


def _cli_compress_args(v: dict, src: str, out: str) -> list[str]:
    o = v["options"]
    rate = [] if o.get("bits") is None else ["-b", f"{o['bits']:g}"]
    return ["compress", src, "-o", out, "-q", *rate, "--mode", o["mode"],
            "--seed", str(o["seed"]), "--scale", o["scale_rule"],
            "--scale-dtype", o["scale_dtype"], "--rounds", str(o["rounds"]),
            "--chunk-rows", str(o["chunk_rows"]), "--rotation", o["rotation"]] + (
                ["--center"] if o.get("center") else []) + (
                ["--coding", "entropy"] if o.get("coding") == "entropy" else []) + (
                ["--nmse", repr(o["nmse"])] if o.get("nmse") is not None else [])


def _solved_figures(report, path=()):
    """(path, value) of every `fixed_length[*].expected_nmse` in an inspect report: the error
    of a fixed-length width the file does not use, from a codebook tq solves with scipy (not
    one the file stores), whose last digits differ between scipy releases (seen: 9e-14
    relative between the scipy of the vectors' generation and 1.17.1)."""
    if isinstance(report, dict):
        for k, v in report.items():
            if k == "fixed_length":
                for i, item in enumerate(v):
                    yield path + (k, i), item.pop("expected_nmse")
            else:
                yield from _solved_figures(v, path + (k,))
    elif isinstance(report, list):
        for i, v in enumerate(report):
            yield from _solved_figures(v, path + (i,))


def assert_same_report(got: bytes, want: bytes) -> None:
    """The inspect JSON as stored, to the byte, except the solved figures (above), which agree
    to 1e-9 relative; everything read from the file itself is compared exactly."""
    if got == want:
        return
    g, w = json.loads(got), json.loads(want)
    solved_g, solved_w = dict(_solved_figures(g)), dict(_solved_figures(w))
    assert solved_g.keys() == solved_w.keys()
    for k in solved_w:
        assert solved_g[k] == pytest.approx(solved_w[k], rel=1e-9), k
    assert json.dumps(g, indent=2) == json.dumps(w, indent=2)
    assert got.count(b"\n") == want.count(b"\n")  # the same layout, line for line


@pytest.mark.parametrize("name", NAMES)
def test_cli_inspect_json(tq_cli, name):
    result = tq_cli("inspect", vec_path(name, "tqz"), "--json")
    assert result.exit_code == 0
    assert_same_report(result.stdout.encode(), vec_bytes(name, "inspect.json"))


@pytest.mark.parametrize("name", NAMES)
def test_cli_decompress(tq_cli, tmp_path, name):
    out = tmp_path / "out.npy"
    result = tq_cli("decompress", vec_path(name, "tqz"), "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == vec_bytes(name, "decoded.npy")


@pytest.mark.parametrize("name", NAMES)
def test_cli_compress(tq_cli, tmp_path, name):
    """The command line, given the vector's parameters, writes the stored file exactly."""
    out = tmp_path / "out.tqz"
    result = tq_cli(*_cli_compress_args(BY_NAME[name], vec_path(name, "input.npy"), str(out)))
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == vec_bytes(name, "tqz")


# the installed console script when there is one, else the module: both are the real program
TQ = [shutil.which("tq")] if shutil.which("tq") else [sys.executable, "-m", "tqcli"]


@pytest.mark.parametrize("name", SUBPROCESS_NAMES)
def test_subprocess_roundtrip(tmp_path, name):
    v = BY_NAME[name]
    run = dict(capture_output=True, timeout=120)
    res = subprocess.run([*TQ, "inspect", vec_path(name, "tqz"), "--json"], **run)
    assert res.returncode == 0
    assert_same_report(res.stdout, vec_bytes(name, "inspect.json"))
    out = tmp_path / "out.npy"
    res = subprocess.run([*TQ, "decompress", vec_path(name, "tqz"), "-o", str(out)], **run)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == vec_bytes(name, "decoded.npy")
    args = _cli_compress_args(v, vec_path(name, "input.npy"), str(tmp_path / "out.tqz"))
    res = subprocess.run([*TQ, *args], **run)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out.tqz").read_bytes() == vec_bytes(name, "tqz")


# ------------------------------------------------------------------ reader rules


def _reheader(data: bytes, offset: int, fmt: str, value) -> bytes:
    """Change one header field and fix the header CRC, so only the field itself is wrong."""
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    hsize = struct.unpack_from("<I", b, 12)[0]
    struct.pack_into("<I", b, hsize - 4, crc(bytes(b[:hsize - 4])))
    return bytes(b)


MUTATIONS = {
    "version 2": lambda b: _reheader(b, 8, "<H", 2),
    "flags": lambda b: _reheader(b, 10, "<H", 1),
    "header CRC": lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:],
    "mode 2": lambda b: _reheader(b, 16, "<B", 2),
    "bits 9": lambda b: _reheader(b, 17, "<B", 9),
    "chunk_rows 12": lambda b: _reheader(b, 28, "<I", 12),
    "vector count": lambda b: _reheader(b, 32, "<Q", struct.unpack_from("<Q", b, 32)[0] + 1),
    "codebook order": lambda b: _reheader(b, 48 + 16, "<f", 0.0),
    "truncated": lambda b: b[:-1],
    "trailing byte": lambda b: b + b"\0",
    "footer magic": lambda b: b[:-1] + b"F",
    "index entry": lambda b: b[:-24 - 16] + bytes([b[-24 - 16] ^ 1]) + b[-24 - 15:],
    "chunk byte": lambda b: b[:101] + bytes([b[101] ^ 0x10]) + b[102:],
}


@pytest.mark.parametrize("what", sorted(MUTATIONS))
def test_reader_rejects(what):
    """mse_b3_d64 (header of 100 bytes, 3 chunks) corrupted in one way: both readers refuse."""
    import tqcli
    from tqcli.errors import FormatError

    name = NAMES[0]
    data = MUTATIONS[what](vec_bytes(name, "tqz"))
    with pytest.raises(SpecError):
        spec_decode(data)
    with pytest.raises(FormatError) as e:
        tqcli.decompress(data)
    if what == "version 2":
        assert "version 2" in str(e.value)
    with pytest.raises(FormatError):
        tqcli.decompress(PipeLike(data))


# ------------------------------------------------------------------ the entropy coding

ENTROPY_NAMES = [n for n in NAMES if BY_NAME[n]["options"].get("coding") == "entropy"]


def _entropy_multi_segment() -> bytes:
    """entropy_b2.5_d64's model with G = 8 in chunks of 16 and 37 vectors: two segments per
    chunk and a last chunk of one partial segment (5 vectors), which tq's own choice of G
    (19.6) cannot give within the vectors' size budget."""
    name = "entropy_b2.5_d64"
    h, _ = spec_parse(vec_bytes(name, "tqz"))
    m = h.model
    model = SpecModel(m.m, m.p, m.lanes, 8, m.step, m.rate, m.codebook, m.freq)
    x = load_npy(name, "input.npy")[:37]
    return spec_encode(x, codebook=None, model=model, **BY_NAME[name]["options"])


def test_entropy_multi_segment_spec_file_read_by_tq():
    import tqcli

    data = _entropy_multi_segment()
    h, chunks = spec_parse(data)
    assert [len(h.segment_rows(h.rows_of(i))) for i in range(h.n_chunks)] == [2, 2, 1]
    got = tqcli.decompress(data, dtype="original")
    assert got.tobytes() == spec_decode(data).tobytes()
    assert tqcli.decompress(PipeLike(data), dtype="original").tobytes() == got.tobytes()


def _stream_byte(b: bytes) -> bytes:
    """Flip a bit in the first stream of chunk 0, then fix the chunk's and the index's CRC."""
    h, _ = spec_parse(b)
    k = h.n_chunks
    out = bytearray(b)
    idx_at = len(b) - 24 - 16 * k
    off, length, _ = struct.unpack_from("<QII", out, idx_at)
    s = len(h.segment_rows(h.rows_of(0)))
    out[off + 4 * s + 4 * 2 * h.model.lanes + 3] ^= 0x40
    c = crc(bytes(out[off:off + length]))
    struct.pack_into("<I", out, off + length, c)
    struct.pack_into("<I", out, idx_at + 12, c)
    struct.pack_into("<I", out, len(b) - 8,
                     crc(bytes(out[idx_at:len(b) - 24]) + bytes(out[len(b) - 24:len(b) - 8])))
    return bytes(out)


ENTROPY_MUTATIONS = {
    "mode prod": lambda b: _reheader(_reheader(b, 18, "<B", 1), 16, "<B", 1),
    "coding 3": lambda b: _reheader(b, 10, "<H", struct.unpack_from("<H", b, 10)[0] + 2),
    "lanes 0": lambda b: _reheader(b, 48 + 8 * b[23] + 3, "<B", 0),
    "segment rows 12": lambda b: _reheader(b, 48 + 8 * b[23] + 4, "<I", 12),
    "frequency 0": lambda b: _reheader(b, 48 + 8 * b[23] + 24 + 4 * struct.unpack_from(
        "<H", b, 48 + 8 * b[23])[0], "<H", 0),
    "truncated": lambda b: b[:-1],
    "trailing byte": lambda b: b + b"\0",
    "chunk byte": lambda b: b[:300] + bytes([b[300] ^ 0x10]) + b[301:],
    "stream word, CRCs fixed": _stream_byte,
}


ENTROPY_RULES = {"mode prod": "entropy-mode", "coding 3": "coding", "lanes 0": "entropy-model",
                 "segment rows 12": "entropy-model", "frequency 0": "entropy-model",
                 "truncated": "footer-magic", "trailing byte": "footer-magic",
                 "chunk byte": "chunk-crc", "stream word, CRCs fixed": "entropy-stream"}


@pytest.mark.parametrize("what", sorted(ENTROPY_MUTATIONS))
def test_entropy_reader_rejects(what):
    """entropy_b2.5_d64 corrupted in one way: the spec's reader and tq's both refuse, by
    the same rule (13.6)."""
    import tqcli
    from tqcli.errors import FormatError

    data = ENTROPY_MUTATIONS[what](vec_bytes("entropy_b2.5_d64", "tqz"))
    with pytest.raises(SpecError) as se:
        spec_decode(data)
    assert str(se.value).startswith(ENTROPY_RULES[what])
    with pytest.raises(FormatError) as e:
        tqcli.decompress(data)
    assert e.value.rule == ENTROPY_RULES[what]
    with pytest.raises(FormatError):
        tqcli.decompress(PipeLike(data))
