"""The adaptive coding (spec section 21): its kernels against the numpy reference bit for
bit, its error against its prediction and the fixed coding, rate control, a basis shared by
files, determinism, the reader's refusals, and that tq 1.3 refuses its files cleanly.

The table-wide checks (payload against the reference, sizes, decode) are in test_tables."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import tqcli
from tqcli import kernels
from tqcli.codec import adaptive_model as am
from tqcli.codec.codings.adaptive import ADAPTIVE
from tqcli.codec.state import Codec


def spectrum_rows(n: int, d: int, seed: int = 0, decay: float = 0.02) -> np.ndarray:
    """Rows with a decaying spectrum (variances exp(-decay i)) in a random basis and an
    offset: what the adaptive coding is for."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    z = rng.standard_normal((n, d)) * np.exp(-0.5 * decay * np.arange(d))
    return (z @ q.T + 0.3 * rng.standard_normal(d)).astype(np.float32)


def nmse(x, y) -> float:
    x = x.astype(np.float64)
    return float(np.mean(((x - y) ** 2).sum(1) / (x * x).sum(1)))


@pytest.mark.parametrize("scaled", [False, True])
@pytest.mark.parametrize("dtype", am.BASIS_DTYPES)
def test_kernels_match_the_reference_bit_for_bit(dtype, scaled):
    x = spectrum_rows(300, 40, seed=1)
    x[7] = 0  # a zero row, and rows far outside the cells: clamped
    x[9] *= 1e6
    x[11] *= 1e-4  # with scales: a direction coded at the fitted norm, a scale near 0
    basis = am.fit_basis(x[:200], scaled=scaled)
    model = am.model_at(basis, 300, 256, step=0.05, dtype=dtype)
    assert model.basis_dtype == dtype and model.k >= 1 and model.scales == int(scaled)
    h = tqcli.read_header(tqcli.compress(x, bits=3, adapt=basis))
    h = type(h)(**{**h.__dict__, "model": model})
    codec = Codec(h)
    xc = codec.to_format(x)
    from tqcli.codec import reference_adaptive as ra

    cells = ADAPTIVE.cells(codec, xc)
    assert np.array_equal(cells.astype(np.int64), ra.cells(np.asarray(xc, np.float64), model))
    if not scaled:
        assert cells[9].max() == 2 * model.halves[model.classes].max() or cells[9].min() == 0
    payload = b"".join(bytes(p) for p in ADAPTIVE.encode_chunks(codec, xc, 0)[0])
    assert payload == ra.encode_payload(xc[:h.chunk_rows], model)
    got = codec.decode(payload, min(300, h.chunk_rows))
    assert got.tobytes() == ADAPTIVE.reference_decode(codec, payload, got.shape[0]).tobytes()


@pytest.mark.parametrize("scaled", [False, True])
def test_thread_count_does_not_change_a_byte(scaled):
    x = spectrum_rows(3000, 64, seed=2)
    basis = am.fit_basis(x, scaled=scaled)
    before = kernels.thread_count()
    try:
        kernels.set_threads(1)
        one = tqcli.compress(x, bits=3, adapt=basis, chunk_rows=512)
        kernels.set_threads(2)
        two = tqcli.compress(x, bits=3, adapt=basis, chunk_rows=512)
    finally:
        kernels.set_threads(before)
    assert one == two


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_error_meets_its_prediction_and_beats_the_fixed_coding_at_its_bytes(bits):
    x = spectrum_rows(6000, 96, seed=bits)
    blob = tqcli.compress(x, bits=bits, adapt=True)
    h = tqcli.read_header(blob)
    fixed = tqcli.compress(x, bits=bits)
    # the bytes of the fixed coding, basis included, as the model predicts them: the streams
    # come within a fraction of a percent of their expected length
    assert abs(len(blob) / len(fixed) - 1) < 0.005, (len(blob), len(fixed))
    got = nmse(x, tqcli.decompress(blob))
    # the error the model predicted (ratio of sums; these rows' norms vary a little)
    assert abs(got / h.model.nmse - 1) < 0.1, (got, h.model.nmse)
    assert got < 0.5 * nmse(x, tqcli.decompress(fixed))


def test_nmse_target_is_met_and_more_error_costs_fewer_bytes():
    x = spectrum_rows(4000, 64, seed=5)
    sizes = []
    for goal in (0.002, 0.01, 0.05):
        blob = tqcli.compress(x, nmse=goal, adapt=True)
        assert nmse(x, tqcli.decompress(blob)) <= goal * 1.1
        sizes.append(len(blob))
    assert sizes[0] > sizes[1] > sizes[2]


def test_a_basis_shared_by_shards_is_stored_in_each():
    x = spectrum_rows(6000, 48, seed=6)
    basis = am.fit_basis(x)
    a = tqcli.compress(x[:3000], bits=3, adapt=basis)
    b = tqcli.compress(x[3000:], bits=3, adapt=basis)
    ha, hb = tqcli.read_header(a), tqcli.read_header(b)
    assert np.array_equal(ha.center, basis.mean)
    k = min(ha.model.k, hb.model.k)
    assert np.array_equal(ha.model.basis[:k], hb.model.basis[:k])
    for blob, part in ((a, x[:3000]), (b, x[3000:])):  # each decodes on its own
        assert nmse(part, tqcli.decompress(blob)) < 0.05


def test_constant_and_tiny_inputs():
    for x in (np.ones((50, 16), np.float32), np.zeros((1, 16), np.float32),
              spectrum_rows(3, 16)):
        blob = tqcli.compress(x, bits=2, adapt=True)
        y = tqcli.decompress(blob)
        assert y.shape == x.shape and np.all(np.isfinite(y))
    np.testing.assert_allclose(tqcli.decompress(tqcli.compress(np.ones((50, 16), np.float32),
                                                               bits=2, adapt=True)), 1.0)


def test_options_refuse_what_the_coding_cannot_do():
    x = spectrum_rows(64, 16)
    with pytest.raises(tqcli.InputError, match="adaptive"):
        tqcli.compress(x, adapt=True, coding="entropy")
    with pytest.raises(tqcli.InputError, match="centre"):
        tqcli.compress(x, adapt=True, center=np.zeros(16))
    with pytest.raises(tqcli.InputError, match="scale"):
        tqcli.compress(x, adapt=True, scale_dtype="float16")
    with pytest.raises(tqcli.InputError, match="mse"):
        tqcli.compress(x, adapt=True, mode="prod")
    bad = x.copy()
    bad[5, 3] = np.nan
    with pytest.raises(tqcli.InputError, match="row 5"):
        tqcli.compress(bad, adapt=True)


def _blob():
    return tqcli.compress(spectrum_rows(200, 24, seed=9), bits=3, adapt=True)


def _refused(blob: bytes) -> str:
    with pytest.raises(tqcli.FormatError) as e:
        tqcli.decompress(blob)
    return e.value.rule


def _patch_block(blob: bytes, at: int, value: bytes) -> bytes:
    """The header block byte(s) at offset `at` after the shape changed, the CRC redone."""
    from tqcli.format.header import crc32

    h = tqcli.read_header(blob)
    start = 48 + 8 * len(h.shape)
    size = h.header_size
    raw = bytearray(blob[:size])
    raw[start + at:start + at + len(value)] = value
    raw[size - 4:size] = crc32(bytes(raw[:size - 4])).to_bytes(4, "little")
    return bytes(raw) + blob[size:]


def test_reader_rules_refuse_crafted_model_blocks():
    blob = _blob()
    h = tqcli.read_header(blob)
    m = h.model
    assert _refused(_patch_block(blob, 0, (0).to_bytes(2, "little"))) in (
        "adaptive-model", "header-size")                                 # k = 0
    assert _refused(_patch_block(blob, 4, bytes([7]))) in ("adaptive-model", "header-size")
    assert _refused(_patch_block(blob, 5, bytes([20]))) == "adaptive-model"  # precision
    assert _refused(_patch_block(blob, 7, bytes([2]))) == "adaptive-model"   # scales 2
    # scales claimed where none are stored: the chunk's lengths no longer add up
    assert _refused(_patch_block(blob, 7, bytes([1]))) == "adaptive-stream"
    assert _refused(_patch_block(blob, 8, np.float64(-1).tobytes())) == "adaptive-model"
    cls_at = 32 + 2 * m.n_classes + 6 * sum(len(c) for c in m.codebooks)
    assert _refused(_patch_block(blob, cls_at, bytes([m.n_classes]))) == "adaptive-model"
    basis_at = cls_at + m.k
    nan = (np.float32(np.nan).tobytes() if m.basis_dtype != "float16"
           else np.float16(np.nan).tobytes())
    assert _refused(_patch_block(blob, basis_at, nan)) == "adaptive-basis"


def test_corrupt_streams_are_refused_not_decoded():
    blob = bytearray(_blob())
    h = tqcli.read_header(bytes(blob))
    at = h.header_size + 4 * h.model.n_classes + 20  # inside the first stream
    blob[at] ^= 0xFF
    with pytest.raises(tqcli.FormatError):
        tqcli.decompress(bytes(blob))  # the chunk's CRC, before the stream


def test_the_base_tree_reader_refuses_the_files_cleanly(tmp_path):
    """tq 1.3 (the base tree, when present) reads the coding code 2 as unknown (rule coding)."""
    base = "/work/tq-base"
    if not os.path.isdir(os.path.join(base, "tqcli")):
        base = None
    path = tmp_path / "a.tqz"
    path.write_bytes(_blob())
    code = ("import sys, tqcli\ntry:\n    tqcli.decompress(sys.argv[1])\n"
            "except tqcli.FormatError as e:\n    print(e.rule)\n")
    env = dict(os.environ)
    if base:
        env["PYTHONPATH"] = base
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, env=env, cwd=str(tmp_path))
    if base:
        assert out.stdout.strip() == "coding", out.stderr
    else:
        assert out.stdout.strip() == "", out.stderr


def test_command_line_adapt_and_inspect(tmp_path):
    x = spectrum_rows(2000, 32, seed=11)
    src = tmp_path / "x.npy"
    np.save(src, x)
    tq = [sys.executable, "-m", "tqcli"]
    r = subprocess.run(tq + ["compress", str(src), "--adapt", "-b", "3", "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(tq + ["inspect", str(src) + ".tqz"], capture_output=True, text=True)
    assert r.returncode == 0 and "components" in r.stdout and "of the file" in r.stdout
    back = tmp_path / "back.npy"
    r = subprocess.run(tq + ["decompress", str(src) + ".tqz", "-o", str(back)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert nmse(x, np.load(back)) < 0.05


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_tq_reads_back_degenerate_data_under_the_default_expansion_limit(dtype):
    """Constant rows cost almost nothing to code; the encoder's floor (spec 21.6) keeps every
    row above what the default expansion limit (256 x, spec 13.9) requires."""
    for x in (np.zeros((6000, 256), dtype), np.full((6000, 256), 3.0, dtype)):
        blob = tqcli.compress(x, bits=1, adapt=True)
        assert x.nbytes / len(blob) < 256
        assert np.array_equal(tqcli.decompress(blob), x)


def test_data_beyond_the_float32_codebooks_is_refused_in_one_line(tmp_path):
    x = (np.random.default_rng(1).standard_normal((500, 16)) * 7e37).astype(np.float32)
    with pytest.raises(tqcli.InputError, match="float32 codebooks"):
        tqcli.compress(x, adapt=True)
    src = tmp_path / "big.npy"
    np.save(src, x)
    r = subprocess.run([sys.executable, "-m", "tqcli", "compress", str(src), "--adapt"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "float32 codebooks" in r.stderr
    assert not (tmp_path / "big.npy.tqz").exists()


def test_scales_are_chosen_when_they_pay_and_give_rows_of_unequal_norms_equal_error():
    rng = np.random.default_rng(8)
    x = spectrum_rows(8000, 32, seed=8, decay=0.1)
    assert not am.fit_basis(x).scaled  # norms alike at d = 32: 16 bits would not pay
    assert am.fit_basis(spectrum_rows(300, 240, seed=8)).scaled  # d >= 233: they always do
    x = x * np.exp(rng.uniform(-2, 2, (8000, 1))).astype(np.float32)  # norms over 2 decades
    auto = am.fit_basis(x)
    assert auto.scaled
    fixed = tqcli.compress(x, bits=3)
    scaled = tqcli.compress(x, bits=3, adapt=True)
    plain = tqcli.compress(x, bits=3, adapt=am.fit_basis(x, scaled=False))
    assert tqcli.read_header(scaled).model.scales == 1
    assert tqcli.read_header(plain).model.scales == 0
    # both at the fixed coding's bytes, the scales counted (directions, lighter-tailed than
    # the Gaussian model, come out a little under)
    for blob in (scaled, plain):
        assert 0.97 < len(blob) / len(fixed) < 1.005, (len(blob), len(fixed))
    # the mean relative error per row (tq eval's): directions coded alike, then scaled
    assert nmse(x, tqcli.decompress(scaled)) < 0.5 * nmse(x, tqcli.decompress(plain))


def test_a_non_finite_scale_is_refused():
    from tqcli.errors import FormatError

    x = spectrum_rows(100, 24, seed=9)
    blob = tqcli.compress(x, bits=3, adapt=am.fit_basis(x, scaled=True), chunk_rows=128)
    codec = Codec(tqcli.read_header(blob))
    payload = b"".join(bytes(p) for p in ADAPTIVE.encode_chunks(codec, codec.to_format(x), 0)[0])
    assert codec.decode(payload, 100).shape == (100, 24)
    for bad in (b"\x00\x7c", b"\x00\xfe"):  # +inf, a NaN: the last row's scale
        with pytest.raises(FormatError) as e:
            codec.decode(payload[:-2] + bad, 100)
        assert e.value.rule == "adaptive-stream"


def test_a_basis_from_the_top_level_is_shared_by_files_that_each_store_it():
    """tqcli.fit_basis / tqcli.Basis (the package's API, as its docstring shows): two shards
    compressed with one basis decode on their own, within the error of a basis fitted to
    each, and carry the same basis and mean."""
    import tqcli

    rng = np.random.default_rng(7)
    mix = rng.standard_normal((64, 64)) * (0.9 ** np.arange(64))[:, None]
    a, b = (rng.standard_normal((3000, 64)) @ mix for _ in range(2))
    a, b = a.astype(np.float32), b.astype(np.float32)
    basis = tqcli.fit_basis(a)
    assert isinstance(basis, tqcli.Basis)
    blobs = [tqcli.compress(x, bits=3, adapt=basis) for x in (a, b)]
    own = tqcli.compress(b, bits=3, adapt=True)
    err = [float(((tqcli.decompress(z) - x) ** 2).sum() / (x ** 2).sum())
           for z, x in zip(blobs + [own], (a, b, b))]
    assert err[1] <= 1.15 * err[2]  # b under a's basis: close to its own
    ha, hb = (tqcli.read_header(z) for z in blobs)
    assert np.array_equal(ha.model.basis, hb.model.basis)  # the same rows, stored twice
    assert np.array_equal(ha.center, hb.center)
