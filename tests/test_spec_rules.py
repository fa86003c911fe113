"""Reader behaviours spec/tqz-v1.md states for legal-but-odd and crafted files (issue 11,
"the spec's loose ends"): the order of the header checks, exact integer arithmetic, the
memory a header may ask for, padding bits, negative and huge stored values, short files.

Every crafted file here has correct checksums, so only the rule under test can refuse it.
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from cliutil import assert_error, ok, run
from fuzzkit import PipeLike

import tqcli
from tqcli import limits
from tqcli.codec.state import Codec
from tqcli.format.header import make_header
from tqcli.format.container import ContainerWriter
from tqcli.format.header import _FIXED, CRC, Header, crc32
from tqcli.errors import FormatError


def raw_header(*, mode=0, bits=1, ndim=2, dim=8, chunk_rows=8, n=1, shape=None,
               codebook=None, size=None, rounds=3) -> bytes:
    """Header bytes with any field values (a correct CRC), for rules the writer never breaks."""
    q = bits if mode == 0 else bits - 1
    k = 1 << q if q else 0
    shape = (n, dim) if shape is None else shape
    cb = np.linspace(-0.5, 0.5, k).astype("<f4") if codebook is None else codebook
    body = struct.pack(f"<{len(shape)}Q", *shape) + cb.astype("<f4").tobytes()
    fixed = _FIXED.pack(b"\x89TQZ\r\n\x1a\n", 1, 0, size or 48 + len(body) + 4, mode, bits,
                        1, 0, 2, 1, rounds, ndim, dim, chunk_rows, n, 0)
    return fixed + body + CRC.pack(crc32(fixed + body))


def container(header: Header, payloads) -> bytes:
    buf = io.BytesIO()
    w = ContainerWriter(buf, header)
    for p in payloads:
        w.write_chunk(bytes(p))
    w.finish()
    return buf.getvalue()


def refused(data, rule: str, **kw) -> FormatError:
    for src in (data, PipeLike(data)):
        with pytest.raises(FormatError) as e:
            tqcli.decompress(src, **kw)
        assert e.value.rule == rule, (rule, e.value.rule, str(e.value))
    return e.value


# ---------------------------------------------------------------------- 13.1: order, integers


@pytest.mark.parametrize("ndim", [2, 3, 32])
def test_header_size_is_checked_before_the_shape_is_read(ndim):
    """ndim says more shape entries than the header holds: refused by its size (step 7),
    never read past the header's end."""
    refused(raw_header(mode=1, bits=1, ndim=ndim, shape=(8,)), "header-size")


def test_shape_product_is_exact_and_cannot_wrap_to_zero():
    """2^48 * 2^16 = 2^64: a product modulo 2^64 would be 0 and match n_vectors = 0."""
    refused(raw_header(ndim=3, shape=(2**48, 2**16, 8), n=0), "shape")


def test_file_length_beyond_two_to_the_64_is_computed_exactly():
    """n = 2^48 vectors of d = 2^20 in chunks of 8: L is about 2^68 -- a length no file can
    have; computed exactly, it is refused as longer than the file (not wrapped mod 2^64)."""
    data = raw_header(bits=8, dim=2**20, n=2**48, shape=(2**48, 2**20),
                      codebook=np.linspace(-0.5, 0.5, 256).astype("<f4"))
    h = tqcli.read_header(PipeLike(data))
    full = 8 * 2**20 + 8 * 4
    assert h.file_size == h.header_size + 2**45 * (full + 4) + 2**45 * 16 + 24 > 2**64
    with pytest.raises(FormatError) as e:
        tqcli.decompress(data)
    assert e.value.rule == "length" and str(h.file_size) in str(e.value)


@pytest.mark.parametrize("data, rule", [
    (b"", "magic"), (b"\x89", "truncated"), (b"\x89TQZ\r\n\x1a\n\x01\x00", "truncated"),
    (b"\x89TQZ\r\n\x1a\n\x01\x00\x00\x00\x3c\x00\x00", "truncated"), (b"abc", "magic"),
    (b"\x89TQX", "magic"),
])
def test_files_shorter_than_16_bytes(data, rule):
    """Shorter than the 16 bytes of step 1: `magic` when the bytes present differ from the
    magic (or there are none), else `truncated`."""
    refused(data, rule)


# ---------------------------------------------------------------------- 6: padding bits


def test_non_zero_padding_bits_decode_as_if_zero():
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)  # 15 * 3 bits
    blob = tqcli.compress(x, bits=3, chunk_rows=8)
    h = tqcli.read_header(blob)
    payload = bytearray(blob[h.header_size:h.header_size + h.payload_size(3)])
    ncode = h.section_sizes(3)[0]
    assert ncode * 8 > 45
    payload[ncode - 1] |= 0xFF << (45 % 8) & 0xFF  # every padding bit of the code section
    padded = container(h, [payload])
    assert padded != blob
    assert tqcli.decompress(padded).tobytes() == tqcli.decompress(blob).tobytes()
    assert tqcli.inspect(padded, verify=True)["verified"] is True


# ---------------------------------------------------------------------- 13.4: stored values


def _one_chunk(mode: str, bits: int, scale_dtype: str = "float32"):
    x = np.random.default_rng(2).standard_normal((8, 16)).astype(np.float32)
    h = make_header(16, bits, mode=mode, shape=x.shape, chunk_rows=8, scale_dtype=scale_dtype)
    return h, bytearray(Codec(h).encode(x))


@pytest.mark.parametrize("mode, bits", [("mse", 3), ("prod", 3)])
def test_negative_scales_and_gammas_are_valid_and_follow_the_formulas(mode, bits):
    """A negative scale negates the vector (section 12, step 6); a negative gamma negates the
    prod correction (step 4).  Both decode; neither is refused."""
    h, payload = _one_chunk(mode, bits)
    ncode, nsign, _ = h.section_sizes(8)
    base = tqcli.decompress(container(h, [payload]))
    flipped = bytearray(payload)
    s = np.frombuffer(flipped, "<f4", count=8, offset=ncode + nsign).copy()
    struct.pack_into("<8f", flipped, ncode + nsign, *(-s))
    got = tqcli.decompress(container(h, [flipped]))
    assert np.array_equal(got, -base)
    if mode == "prod":
        gam = bytearray(payload)
        g = np.frombuffer(gam, "<f4", count=8, offset=ncode + nsign + 32).copy()
        struct.pack_into("<8f", gam, ncode + nsign + 32, *(-g))
        other = tqcli.decompress(container(h, [gam]))
        assert np.all(np.isfinite(other)) and not np.array_equal(other, base)


@pytest.mark.parametrize("mode, scale_dtype, value", [
    ("mse", "float32", None), ("mse", "float64", None), ("prod", "float64", 1e300),
    ("prod", "float32", 3e38)])
def test_an_overflowing_decode_is_refused_not_returned(mode, scale_dtype, value):
    """A legal but huge codebook (mse: the rotation's sums overflow) or a huge stored gamma
    (prod: kappa * E overflows) makes the arithmetic of section 12 infinite: the chunk is
    refused (rule decoded-finite), as a file and as a stream."""
    import dataclasses

    h, payload = _one_chunk(mode, 3, scale_dtype)
    ncode, nsign, _ = h.section_sizes(8)
    if value is None:
        huge = np.array([-3e38, -2e38, -1e38, -1.0, 1.0, 1e38, 2e38, 3e38], np.float32)
        h = dataclasses.replace(h, codebook=huge)
    else:
        fmt = "<f" if scale_dtype == "float32" else "<d"
        z = struct.calcsize(fmt)
        struct.pack_into(fmt, payload, ncode + nsign + 8 * z + 2 * z, value)  # row 2's gamma
    e = refused(container(h, [payload]), "decoded-finite")
    assert e.chunk == 0 and "chunk 0" in str(e)


# ---------------------------------------------------------------------- 13.7: memory


def tables_file() -> bytes:
    """131 KB: one vector of d = 2^20, 1 bit, 32 rounds -- 256 MiB of rotation tables."""
    d = 1 << 20
    h = Header(dim=d, bits=1, rounds=32, shape=(1, d), chunk_rows=8, scale_rule="norm",
               codebook=np.array([-1e-3, 1e-3], np.float32))
    return container(h, [bytes(d // 8) + struct.pack("<f", 1.0)])


def sketch_file() -> bytes:
    """632 bytes: one prod vector of d = 4096, 1 bit -- a 64 MiB sketch."""
    d = 4096
    h = Header(dim=d, bits=1, mode="prod", rounds=3, shape=(1, d), chunk_rows=8,
               scale_rule="norm")
    return container(h, [bytes(d // 8) + struct.pack("<ff", 1.0, 0.5)])


def test_crafted_files_have_the_sizes_and_costs_the_spec_states():
    t, s = tables_file(), sketch_file()
    assert (len(t), len(s)) == (131196, 632)
    assert tqcli.read_header(t).decode_memory > 256 << 20
    assert 64 << 20 < tqcli.read_header(s).decode_memory < 65 << 20


@pytest.mark.parametrize("make, limit", [(tables_file, None), (sketch_file, 32 << 20)])
def test_costly_headers_are_refused_before_anything_is_built(make, limit):
    """The tables file is over the default budget (256 MiB); the prod file's 64 MiB sketch is
    within it, so it is refused only under a lower limit."""
    import tracemalloc

    data = make()
    words = limits.format_size(limits.DEFAULT_MEMORY_LIMIT if limit is None else limit)
    tracemalloc.start()
    try:
        for src in (data, PipeLike(data)):
            for call in (tqcli.decompress, tqcli.inspect, tqcli.open):
                with pytest.raises(FormatError) as e:
                    call(src, memory_limit=limit)
                assert e.value.rule == "memory" and words in str(e.value)
                src = PipeLike(data) if isinstance(src, PipeLike) else src
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 10e6


def test_the_prod_file_decodes_within_the_default_limit():
    data = sketch_file()
    got = tqcli.decompress(data)
    assert got.shape == (1, 4096) and np.all(np.isfinite(got))
    with tqcli.open(data, memory_limit=65 << 20) as f:
        assert f.header.dim == 4096
    assert tqcli.inspect(data)["dim"] == 4096


def test_a_raised_limit_opens_the_tables_file():
    """Opening is enough to pass the budget; decoding it (about 7 s) is not needed here."""
    with tqcli.open(tables_file(), memory_limit=512 << 20) as f:
        assert f.header.rounds == 32


def test_every_file_tq_writes_at_its_largest_dimensions_passes_the_default_limit():
    """prod mode at its largest d (a 64 MiB sketch) and mse at d = 2^20, default options."""
    for mode, d in (("prod", limits.MAX_PROD_DIM), ("mse", limits.MAX_DIM)):
        for sdt in ("float32", "float64"):
            h = make_header(d, 4, mode=mode, shape=(10**6, d), scale_dtype=sdt)
            assert h.decode_memory < limits.DEFAULT_MEMORY_LIMIT, (mode, d, sdt)


def test_every_default_option_file_up_to_65536_passes_the_default_limit():
    for d in (2, 8, 100, 384, 768, 1000, 1536, 4096, 8192, 65536):
        for n in (1, 10**6):
            for sdt in ("float32", "float64"):
                h = make_header(d, 4, shape=(n, d), scale_dtype=sdt)
                assert h.decode_memory < limits.DEFAULT_MEMORY_LIMIT / 4, (d, n, sdt)
    assert make_header(8, 4, shape=(0, 8)).decode_memory == 0


@pytest.mark.parametrize("text, value", [
    ("512M", 512 << 20), ("512MB", 512 << 20), ("512MiB", 512 << 20), ("2GiB", 2 << 30),
    ("2G", 2 << 30), ("100", 100), ("64k", 64 << 10), ("1KB", 1024)])
def test_memory_sizes_are_spelled_as_zstd_spells_them(text, value):
    assert limits.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "M", "1.5G", "-1M", "12X", "1MiBB", "1 G B"])
def test_bad_memory_sizes_are_refused(text):
    with pytest.raises(ValueError):
        limits.parse_size(text)


def test_command_line_memory_flag(tmp_path):
    (tmp_path / "t.tqz").write_bytes(tables_file())
    (tmp_path / "s.tqz").write_bytes(sketch_file())
    for args in (["decompress", "t.tqz", "-o", "t.npy"], ["inspect", "t.tqz"]):
        assert_error(run(args, tmp_path), "t.tqz", "memory limit", "256 MiB")
    ok(run(["inspect", "t.tqz", "--memory", "1GiB"], tmp_path))
    assert_error(run(["decompress", "s.tqz", "-o", "s.npy", "--memory=32M"], tmp_path),
                 "s.tqz", "memory limit", "32 MiB")
    ok(run(["decompress", "s.tqz", "-o", "s.npy"], tmp_path))
    assert np.load(tmp_path / "s.npy").shape == (1, 4096)
    assert_error(run(["decompress", "-", "-c", "--memory", "32M"], tmp_path,
                     input=sketch_file()), "-", "memory")
    r = run(["decompress", "s.tqz", "--memory=lots"], tmp_path)
    assert r.returncode == 2 and b"--memory" in r.stderr
    x = np.zeros((1, 4096), np.float32)
    np.save(tmp_path / "s_src.npy", x)
    assert_error(run(["eval", "s_src.npy", "s.tqz", "--memory=32M"], tmp_path), "s.tqz",
                 "memory")
    ok(run(["eval", "s_src.npy", "s.tqz", "--queries", "0"], tmp_path))


# ---------------------------------------------------------------------- spec text values

SPEC = Path(__file__).parents[1] / "spec" / "tqz-v1.md"
VECTORS = Path(__file__).parents[1] / "spec" / "vectors"


def _tuples(text: str) -> list[list[float]]:
    return [[float(v.replace("−", "-")) for v in t.split(",")]
            for t in re.findall(r"`\(([-−0-9., ]+)\)`", text)]


def test_inverse_rotation_check_values_in_section_8_5_are_tqs():
    from tqcli.codec.rotations import ROTATIONS

    text = SPEC.read_text()
    section = text[text.index("### 8.5 Check value"):]
    section = section[:section.index("\n---")]
    inverse = section[section.index("The inverse rotation"):section.index("The forward")]
    (x, y), (u, v) = _tuples(inverse)[:2], _tuples(inverse)[2:4]
    kind = ROTATIONS.by_name("hadamard2")
    plan = kind.plan(6, 0, 2)
    for a, b in ((x, y), (u, v)):
        a = np.array([a], np.float32)
        assert kind.rotate(plan, a, inverse=True).tolist() == [b]
        assert kind.reference_rotate(plan, a, inverse=True).tolist() == [b]
    assert u == _tuples(section[section.index("The forward"):])[1]  # the forward result


def test_tiled_check_values_in_section_8_6_are_tqs():
    """The forward and inverse rotation of (1..6) by tiled (d = 6, seed 0, T = 2), as the
    binary32 bits section 8.6 states, by the kernels and by the numpy reference."""
    from tqcli.codec.rotations import ROTATIONS

    text = SPEC.read_text()
    section = text[text.index("### 8.6 The rotation `tiled`"):]
    section = section[section.index("**Check value.**"):section.index("\n---")]
    bits = [int(h, 16) for h in re.findall(r"0x([0-9A-F]{8})", section)]
    forward, inverse = bits[-12:-6], bits[-6:]
    kind = ROTATIONS.by_name("tiled")
    plan = kind.plan(6, 0, 2)
    x = np.arange(1, 7, dtype=np.float32)[None]
    for rotate in (kind.rotate, kind.reference_rotate):
        assert rotate(plan, x).view(np.uint32)[0].tolist() == forward
        assert rotate(plan, x, inverse=True).view(np.uint32)[0].tolist() == inverse


def test_decoded_vector_check_values_in_section_15_are_tqs():
    text = SPEC.read_text()
    section = text[text.index("Check value for one decoded vector"):]
    section = section[:section.index("\n---")]
    blob = (VECTORS / "mse_b3_d64.tqz").read_bytes()
    scale_bits = int(re.search(r"= 0x([0-9A-F]{8}) =", section).group(1), 16)
    assert struct.unpack_from("<I", blob, 292)[0] == scale_bits
    codes = [int(c) for c in re.search(r"so codes `([0-9, ]+), \.\.\.`", section)
             .group(1).split(",")]
    stream = int.from_bytes(blob[100:103], "little")
    assert codes == [(stream >> (3 * i)) & 7 for i in range(8)]
    row = section[section.index("| `−1"):]
    values = [float(v.replace("−", "-")) for v in re.findall(r"`([−0-9.]+)`", row)]
    bits = [int(b, 16) for b in re.findall(r"\(0x([0-9A-F]{8})\)", row)]
    got = tqcli.decompress(blob)[0, :4]
    assert got.view(np.uint32).tolist() == bits
    assert np.float32(values).tolist() == got.tolist()


def test_float64_results_are_rounded_once_to_float16():
    """mse_b4_d96_f16_f64s: binary64 results rounded once to float16 (section 12); through
    binary32 two values would differ, so the vector pins the single rounding."""
    blob = (VECTORS / "mse_b4_d96_f16_f64s.tqz").read_bytes()
    with tqcli.open(blob) as f:
        wide = np.concatenate([b.copy() for b in f.iter_blocks()])
    assert wide.dtype == np.float64
    once, twice = wide.astype(np.float16), wide.astype(np.float32).astype(np.float16)
    assert (once != twice).sum() == 2
    stored = np.load(VECTORS / "mse_b4_d96_f16_f64s.decoded.npy")
    assert stored.reshape(once.shape).tobytes() == once.tobytes()
    assert tqcli.decompress(blob).tobytes() == stored.tobytes()


# ---------------------------------------------------------------------- 19.5: bytes after the footer


def test_bytes_after_an_entropy_files_footer_are_refused_by_19_5s_rules():
    """19.5: an entropy-coded file's length is not a function of its header, so a reader of
    a known length finds the footer in the file's last 24 bytes: bytes appended after the
    real footer are then read as the footer, and the first of 19.5's checks that fails
    refuses the file -- `footer-magic` when the file does not end in TQZE (the rule the spec
    names for that case).  A stream reader reads the chunks, index and footer first, then
    refuses anything after them as `trailing` (19.5's last paragraph), whatever it is."""
    x = np.random.default_rng(0).standard_normal((40, 16)).astype(np.float32)
    blob = tqcli.compress(x, bits=2.5, coding="entropy", chunk_rows=8)
    assert tqcli.read_header(blob).payload_coding.name == "entropy"
    for extra in (b"\0", b"\0" * 24, b"\xff" * 7, bytes(range(30)), blob[-1:], blob[:100]):
        with pytest.raises(FormatError) as e:
            tqcli.decompress(blob + extra)
        assert e.value.rule == "footer-magic", (extra, e.value.rule)
        with pytest.raises(FormatError) as e:
            tqcli.decompress(PipeLike(blob + extra))
        assert e.value.rule == "trailing", (extra, e.value.rule)
    # appended bytes that end in TQZE get past footer-magic and fail a later check of 19.5
    for extra in (b"TQZE", blob[-24:], blob[-40:]):
        with pytest.raises(FormatError) as e:
            tqcli.decompress(blob + extra)
        assert e.value.rule in ("footer-layout", "index-crc", "index-layout", "length",
                                "trailing"), e.value.rule
        with pytest.raises(FormatError) as e:
            tqcli.decompress(PipeLike(blob + extra))
        assert e.value.rule == "trailing"
    assert np.array_equal(tqcli.decompress(blob), tqcli.decompress(PipeLike(blob)))


def test_bytes_after_an_entropy_files_footer_on_the_command_line(tmp_path):
    x = np.random.default_rng(1).standard_normal((40, 16)).astype(np.float32)
    (tmp_path / "e.tqz").write_bytes(tqcli.compress(x, bits=3.5, coding="entropy") + b"x")
    assert_error(run(["decompress", "e.tqz", "-o", "e.npy"], cwd=tmp_path), "e.tqz")
    assert not (tmp_path / "e.npy").exists()


# ---------------------------------------------------------------------- 12: bfloat16 from binary64


def test_bfloat16_from_binary64_check_values_of_section_12():
    """Section 12's check values: binary64 rounded once to bfloat16, ties to even, with
    binary32's subnormals (multiples of 2^-133) and signed zeros; read from the spec text."""
    from tqcli.arrayio import bf16

    cases = {1 + 2**-8 + 2**-40: 0x3F81, 0.5 * 2**-133: 0x0000, 1.5 * 2**-133: 0x0002,
             2.5 * 2**-133: 0x0002, 3.5 * 2**-133: 0x0004, 2**-126 - 2**-134: 0x0080,
             -2**-135: 0x8000}
    text = (Path(__file__).resolve().parent.parent / "spec" / "tqz-v1.md").read_text()
    for pattern in ("`1 + 2^−8 + 2^−40`\nbecomes `0x3F81`", "`3.5·2^−133` to `0x0004`",
                    "`2^−126 − 2^−134` to\n`0x0080`", "`−2^−135` becomes `0x8000`"):
        assert pattern in text, pattern
    got = bf16.f32_to_bits(np.array(list(cases), np.float64))
    assert [hex(g) for g in got] == [hex(v) for v in cases.values()]
    # through binary32 the first would round twice, to 0x3F80
    assert bf16.f32_to_bits(np.float32([1 + 2**-8 + 2**-40]))[0] == 0x3F80
