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


class SpecHeader:
    """Fields of a parsed header plus the layout arithmetic of the spec."""

    def __init__(self, f: dict):
        self.__dict__.update(f)
        self.code_bits = self.bits if self.mode == "mse" else self.bits - 1
        self.k = (1 << self.code_bits) if self.code_bits else 0
        self.n_chunks = -(-self.n // self.chunk_rows)
        self.ssize = SCALE_TYPES[self.scale_dtype_code][1]
        self.center = f.get("center")  # None, or the d float32 values of 3.4
        self.header_size = 48 + 8 * len(self.shape) + 4 * self.k + 4 + (
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
        flags = 0x100 if self.center is not None else 0
        body = struct.pack(FIXED, MAGIC, 1, flags, self.header_size, mode, self.bits, rule,
                           self.scale_dtype_code, src, self.rotation, self.rounds,
                           len(self.shape),
                           self.dim, self.chunk_rows, self.n, self.seed)
        body += struct.pack(f"<{len(self.shape)}Q", *self.shape)
        body += np.asarray(self.codebook, "<f4").tobytes()
        if self.center is not None:
            body += np.asarray(self.center, "<f4").tobytes()
        return body + struct.pack("<I", crc(body))


def spec_parse(data: bytes) -> tuple[SpecHeader, list[bytes]]:
    """Validate a whole .tqz file per the reader rules; return its header and chunk payloads."""
    need(len(data) >= 16 and data[:8] == MAGIC, "bad magic")
    version, flags, hsize = struct.unpack_from("<HHI", data, 8)
    need(version == 1, f"unsupported version {version}")
    need(flags in (0, 0x100), "unknown flags")
    centered = flags == 0x100
    need(60 <= hsize <= 48 + 8 * 32 + 4 * 256 + 4 + (4 << 20 if centered else 0)
         and len(data) >= hsize, "header size")
    need(crc(data[:hsize - 4]) == struct.unpack_from("<I", data, hsize - 4)[0], "header CRC")
    (_, _, _, _, mode, bits, rule, sdt, src, rot, rounds, ndim, dim, chunk_rows, n,
     seed) = struct.unpack_from(FIXED, data, 0)
    need(mode in MODES and 1 <= bits <= 8 and rule in RULES and sdt in SCALE_TYPES, "field")
    need(src in SOURCE_TYPES and rot in (1, 2) and 1 <= rounds <= 32 and 1 <= ndim <= 32, "field")
    need(2 <= dim <= 1 << 20 and 8 <= chunk_rows <= 1 << 20 and chunk_rows % 8 == 0, "field")
    need(n <= 1 << 48 and (MODES[mode] == "mse" or rule == 1), "field")
    shape = struct.unpack_from(f"<{ndim}Q", data, 48)
    need(shape[-1] == dim and math.prod(shape[:-1]) == n, "shape")
    h = SpecHeader(dict(mode=MODES[mode], bits=bits, rule=RULES[rule], scale_dtype_code=sdt,
                        source_dtype=SOURCE_TYPES[src], rounds=rounds, shape=shape, dim=dim,
                        chunk_rows=chunk_rows, n=n, seed=seed, codebook=None,
                        rotation=rot, center=np.zeros(dim, np.float32) if centered else None))
    need(hsize == h.header_size, "header size does not match its fields")
    cb = np.frombuffer(data, "<f4", count=h.k, offset=48 + 8 * ndim).astype(np.float32)
    need(bool(np.all(np.isfinite(cb))) and bool(np.all(np.diff(cb) > 0)), "codebook")
    h.codebook = cb
    if centered:
        h.center = np.frombuffer(data, "<f4", count=dim, offset=48 + 8 * ndim + 4 * h.k)
        need(bool(np.all(np.isfinite(h.center))), "centre")
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
        # section 12, step 2: f32(stored scale), or the binary64 scale itself (code 2)
        wide = h.scale_dtype_code == 2
        scales = np.frombuffer(payload, sdt, count=rows, offset=nc + ns).astype(
            np.float64 if wide else np.float32)
        if h.code_bits:
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
                chunk_rows, codebook, rotation, center=False, center_values=None) -> bytes:
    """Encode per the spec, with the codebook (and the centre of a centred file) given:
    the spec leaves their computation informative and requires the stored values."""
    d = x.shape[-1]
    n = math.prod(x.shape[:-1])
    h = SpecHeader(dict(mode=mode, bits=bits, rule=scale_rule,
                        scale_dtype_code=SCALE_CODES[scale_dtype],
                        source_dtype=x.dtype.name, rounds=rounds, shape=tuple(x.shape), dim=d,
                        chunk_rows=chunk_rows, n=n, seed=seed,
                        codebook=np.asarray(codebook, np.float32),
                        rotation=ROTATION_CODES[rotation],
                        center=np.asarray(center_values, np.float32) if center else None))
    rot = Rot(d, seed, rounds, ROTATION_CODES[rotation])
    cb = h.codebook
    thr = (cb[:-1].astype(np.float64) + cb[1:].astype(np.float64)) * 0.5
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
        assert len(payload) == h.payload(rows)
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
                      center_values=h.center, **v["options"])
    assert got == stored


@pytest.mark.parametrize("name", NAMES)
def test_spec_header_fields_match_manifest(name):
    v = BY_NAME[name]
    h, chunks = spec_parse(vec_bytes(name, "tqz"))
    o = v["options"]
    assert (h.bits, h.mode, h.seed, h.rounds, h.rule, h.chunk_rows, h.rotation) == (
        o["bits"], o["mode"], o["seed"], o["rounds"], o["scale_rule"], o["chunk_rows"],
        ROTATION_CODES[o["rotation"]])
    assert list(h.shape) == v["shape"] and h.source_dtype == v["dtype"]
    assert len(chunks) == -(-math.prod(v["shape"][:-1]) // o["chunk_rows"])
    if h.k:  # the encoder's codebook: exactly symmetric, the float32 Lloyd-Max table
        from tqcli.codebook import codebook

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
    return ["compress", src, "-o", out, "-q", "-b", str(o["bits"]), "--mode", o["mode"],
            "--seed", str(o["seed"]), "--scale", o["scale_rule"],
            "--scale-dtype", o["scale_dtype"], "--rounds", str(o["rounds"]),
            "--chunk-rows", str(o["chunk_rows"]), "--rotation", o["rotation"]] + (
                ["--center"] if o.get("center") else [])


@pytest.mark.parametrize("name", NAMES)
def test_cli_inspect_json(tq_cli, name):
    result = tq_cli("inspect", vec_path(name, "tqz"), "--json")
    assert result.exit_code == 0
    assert result.stdout.encode() == vec_bytes(name, "inspect.json")


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
    assert res.returncode == 0 and res.stdout == vec_bytes(name, "inspect.json")
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
