"""Round trips through the library API: tqcli.compress -> .tqz bytes -> tqcli.decompress.

Shapes, dtypes, random row access, zero vectors and empty arrays, error against theory,
exact file sizes, byte-for-byte determinism (also across thread counts, in subprocesses),
and the inputs tq must refuse.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import tqcli
from tqcli.codec import codebook
from tqcli.library import evaluation

from conftest import nmse, row_nmse

ROWS_FOR_DIM = {2: 4000, 97: 300, 384: 96, 1536: 40}


def gaussian_rows(seed, n, d, dtype=np.float64):
    """Gaussian rows with log-normally spread norms (1e-3 .. 1e3 happens)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * rng.lognormal(0.0, 2.0, (n, 1))
    return x.astype(dtype)


# ------------------------------------------------------------------ every (bits, mode, d)


@pytest.mark.parametrize("mode", ["mse", "prod"])
@pytest.mark.parametrize("d", sorted(ROWS_FOR_DIM))
def test_every_bit_width_round_trips_near_theory(d, mode):
    n = ROWS_FOR_DIM[d]
    x = gaussian_rows(d, n, d)
    errs = []
    for bits in range(1, 9):
        blob = tqcli.compress(x, bits=bits, mode=mode)
        hdr = tqcli.read_header(blob)
        assert (hdr.dim, hdr.bits, hdr.mode, hdr.shape) == (d, bits, mode, (n, d))
        assert hdr.scale_rule == ("ls" if mode == "mse" else "norm")
        code_bits = bits if mode == "mse" else bits - 1
        if code_bits:  # the stored codebook is exactly the one the module computes
            assert np.array_equal(hdr.codebook, codebook.codebook(d, code_bits))
        else:
            assert hdr.codebook.size == 0
        y = tqcli.decompress(blob)
        assert y.shape == x.shape and y.dtype == x.dtype and np.all(np.isfinite(y))
        e = row_nmse(x, y)
        theory = evaluation.theory(d, bits, mode)["optimum"]
        ratio = e.mean() / theory
        if d >= 97:
            # random Gaussian directions: the error is the theoretical one (n is small, so
            # only a loose band; the acceptance tests pin it to 1% with n = 20000)
            assert 0.85 < ratio < 1.15, (bits, ratio)
        else:
            # d = 2: 2b bits describe a point of a circle, the ls scale does better than the
            # per-coordinate optimum; prod's pi/2 D(b-1) is an asymptotic figure
            assert ratio < 1.4, (bits, ratio)
        errs.append(e.mean())
    assert all(a > b for a, b in zip(errs, errs[1:])), errs


@pytest.mark.parametrize("d", [2, 97, 384])
def test_least_squares_scale_never_worse_than_norm_per_vector(d):
    x = gaussian_rows(d + 1, 200, d, np.float32)
    for bits in (1, 3, 6):
        ls = tqcli.decompress(tqcli.compress(x, bits=bits, scale_rule="ls"))
        nm = tqcli.decompress(tqcli.compress(x, bits=bits, scale_rule="norm"))
        ip = tqcli.decompress(tqcli.compress(x, bits=bits, scale_rule="ip"))
        e_ls, e_nm, e_ip = row_nmse(x, ls), row_nmse(x, nm), row_nmse(x, ip)
        # same codes, only the scale differs: ls is the per-vector optimum of that scale
        assert np.all(e_ls <= e_nm * (1 + 1e-5) + 1e-9), bits
        assert np.all(e_ls <= e_ip * (1 + 1e-5) + 1e-9), bits
        # 'norm' keeps the norm, up to the codebook's own norm
        cos = lambda a, b: np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        np.testing.assert_allclose(cos(ls, x), cos(nm, x), rtol=1e-5)
        # 'ip' makes <x, x_hat> = ||x||^2 for every vector
        np.testing.assert_allclose(np.sum(ip.astype(np.float64) * x, 1),
                                   np.sum(x.astype(np.float64) ** 2, 1), rtol=2e-5)


# ------------------------------------------------------------------ shapes and dtypes


@pytest.mark.parametrize("shape", [(97,), (33, 16), (3, 7, 24), (2, 2, 3, 17, 32)],
                         ids=["rank1", "rank2", "rank3", "rank5-kv"])
def test_shapes_round_trip(shape):
    x = gaussian_rows(len(shape), int(np.prod(shape[:-1])), shape[-1],
                      np.float32).reshape(shape)
    for mode in ("mse", "prod"):
        blob = tqcli.compress(x, bits=4, mode=mode, chunk_rows=16)
        hdr = tqcli.read_header(blob)
        assert hdr.shape == shape and hdr.n_vectors == int(np.prod(shape[:-1]))
        y = tqcli.decompress(blob)
        assert y.shape == shape and y.dtype == np.float32
        flat = tqcli.decompress(blob, rows=slice(None))
        assert flat.shape == (hdr.n_vectors, shape[-1])
        assert np.array_equal(flat, y.reshape(-1, shape[-1]))
        # the vectors are the last axis: each decoded row approximates its own source row
        theory = evaluation.theory(shape[-1], 4, mode)["optimum"]
        assert nmse(x, y) < 1.6 * theory


# nmse / optimum of the whole shared KV dump at seed 0, least-squares and norm scale, as
# measured (tq 1.3): README gives per-layer ranges for this dump (its KV table: at b = 4 keys
# 0.906-0.967, values 0.925-0.954, "the single-array dump gives the same figures"), so the
# mean over the dump lies in them; the file is fixed for the seed, and the margin, 0.003,
# is float summation and a little: a regression of 1% of the error fails.
KV_RATIO = {2: (0.9748, 1.0026), 4: (0.9357, 1.0049)}
KV_MARGIN = 0.003


def test_real_kv_cache_round_trip(minilm_kv):
    """The (layers, k/v, heads, tokens, head_dim) dump of a real model, at 2 and 4 bits."""
    for bits in (2, 4):
        blob = tqcli.compress(minilm_kv, bits=bits)
        y = tqcli.decompress(blob)
        assert y.shape == minilm_kv.shape and y.dtype == np.float32
        opt = codebook.expected_distortion(32, bits)
        want_ls, want_norm = KV_RATIO[bits]
        assert abs(nmse(minilm_kv, y) / opt - want_ls) <= KV_MARGIN, nmse(minilm_kv, y) / opt
        if bits == 4:
            assert 0.906 <= nmse(minilm_kv, y) / opt <= 0.967  # README's range
        y_norm = tqcli.decompress(tqcli.compress(minilm_kv, bits=bits, scale_rule="norm"))
        assert abs(nmse(minilm_kv, y_norm) / opt - want_norm) <= KV_MARGIN, \
            nmse(minilm_kv, y_norm) / opt
        # layer 3's values are row block [3, 1] of the flattened view
        per_layer = 2 * 12 * 512
        a = 3 * per_layer + 12 * 512
        part = tqcli.decompress(blob, rows=slice(a, a + 12 * 512))
        assert np.array_equal(part, y[3, 1].reshape(-1, 32))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("mode", ["mse", "prod"])
def test_dtypes(dtype, mode):
    x = gaussian_rows(5, 50, 40, np.float32)
    x = (x / np.abs(x).max() * 100).astype(dtype)  # fits float16
    blob = tqcli.compress(x, bits=3, mode=mode)
    assert tqcli.read_header(blob).source_dtype == np.dtype(dtype).name
    y = tqcli.decompress(blob)
    assert y.dtype == dtype and y.shape == x.shape
    y32 = tqcli.decompress(blob, dtype="float32")
    assert y32.dtype == np.float32
    # the decoder works in float32; other output dtypes are casts of the same values
    assert np.array_equal(y, y32.astype(dtype))
    assert np.array_equal(tqcli.decompress(blob, dtype="float64"), y32.astype(np.float64))
    assert np.array_equal(tqcli.decompress(blob, dtype="float16"), y32.astype(np.float16))
    assert np.array_equal(tqcli.decompress(blob, dtype="original"), y)
    # the encoding depends on the values only, not on their storage type
    blob32 = tqcli.compress(x.astype(np.float32), bits=3, mode=mode)
    assert np.array_equal(tqcli.decompress(blob32), y32)
    assert nmse(x, y32) < 1.6 * evaluation.theory(40, 3, mode)["optimum"]
    with pytest.raises(ValueError):
        tqcli.decompress(blob, dtype="int8")


def test_big_endian_input_same_as_native():
    x = gaussian_rows(9, 30, 20, np.float32)
    a = tqcli.compress(x, bits=4)
    b = tqcli.compress(x.astype(">f4"), bits=4)
    assert a == b


def test_non_contiguous_input_same_as_contiguous():
    x = gaussian_rows(10, 60, 48, np.float64)
    view = x[::2, ::2]
    assert not view.flags.c_contiguous
    assert tqcli.compress(view, bits=2) == tqcli.compress(np.ascontiguousarray(view), bits=2)


# ------------------------------------------------------------------ random access


def test_rows_random_access_equals_slicing_full_decode():
    n, d = 203, 24
    x = gaussian_rows(11, n, d, np.float32).reshape(7, 29, d)
    for mode in ("mse", "prod"):
        blob = tqcli.compress(x, bits=3, mode=mode, chunk_rows=16)
        assert tqcli.read_header(blob).n_chunks == 13
        full = tqcli.decompress(blob).reshape(n, d)
        for spec, (a, b) in {(10, 50): (10, 50), (0, 1): (0, 1), (-7, None): (n - 7, n),
                             (None, None): (0, n), (95, 400): (95, n), (16, 32): (16, 32),
                             (15, 17): (15, 17), (50, 10): (50, 50), (200, None): (200, n),
                             (None, -200): (0, 3)}.items():
            part = tqcli.decompress(blob, rows=slice(*spec))
            assert part.shape == (b - a, d), spec
            assert np.array_equal(part, full[a:b]), spec
            assert np.array_equal(tqcli.decompress(blob, rows=spec), full[a:b]), spec
        assert np.array_equal(tqcli.decompress(blob, rows=(3, 77)), full[3:77])
        # text such as "A:B" is the command line's (tests/test_api.py); the library
        # refuses it, and selections it cannot honour
        for bad in (slice(1, 9, 2), (1, 2, 3), (1.5, 3)):
            with pytest.raises((ValueError, TypeError)):
                tqcli.decompress(blob, rows=bad)
        with pytest.raises(TypeError):
            tqcli.decompress(blob, rows="1:5")


def test_chunking_does_not_change_decoded_values():
    x = gaussian_rows(12, 300, 33, np.float32)
    for mode in ("mse", "prod"):
        ref = tqcli.decompress(tqcli.compress(x, bits=5, mode=mode))
        for cr in (8, 24, 296, 304):
            assert np.array_equal(tqcli.decompress(tqcli.compress(x, bits=5, mode=mode,
                                                                  chunk_rows=cr)), ref), cr


def test_decompress_from_path_and_stream(tmp_path):
    import io

    x = gaussian_rows(13, 40, 16, np.float32)
    blob = tqcli.compress(x, bits=2, chunk_rows=8)
    p = tmp_path / "a.tqz"
    p.write_bytes(blob)
    ref = tqcli.decompress(blob)
    assert np.array_equal(tqcli.decompress(str(p)), ref)
    assert np.array_equal(tqcli.decompress(p, rows=slice(9, 31)), ref[9:31])
    assert np.array_equal(tqcli.decompress(io.BytesIO(blob)), ref)
    assert tqcli.read_header(p).shape == (40, 16)


# ------------------------------------------------------------------ zeros and empties


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_zero_vectors_decode_to_positive_zero(dtype):
    x = gaussian_rows(14, 21, 10, np.float32).astype(dtype)
    x[[0, 7, 8, 20]] = 0
    x[3] = -0.0  # negative zeros are zero vectors too
    for mode, rules in (("mse", ("ls", "norm", "ip")), ("prod", ("norm",))):
        for rule in rules:
            for bits in (1, 2, 8):
                y = tqcli.decompress(tqcli.compress(x, bits=bits, mode=mode, scale_rule=rule))
                z = y[[0, 3, 7, 8, 20]]
                assert np.all(z == 0) and not np.signbit(z).any(), (mode, rule, bits)
                assert np.all(np.any(y[[1, 2, 4]] != 0, axis=1))
    allzero = np.zeros((5, 6), dtype)
    y = tqcli.decompress(tqcli.compress(allzero, bits=4))
    assert np.array_equal(y, allzero) and not np.signbit(y).any()


@pytest.mark.parametrize("shape", [(0, 7), (3, 0, 7), (0, 1536)])
@pytest.mark.parametrize("mode", ["mse", "prod"])
def test_zero_row_arrays_round_trip(shape, mode):
    for dtype in (np.float16, np.float64):
        x = np.zeros(shape, dtype)
        blob = tqcli.compress(x, bits=3, mode=mode)
        hdr = tqcli.read_header(blob)
        assert hdr.n_vectors == 0 and hdr.payload_bytes == 0 and hdr.n_chunks == 0
        y = tqcli.decompress(blob)
        assert y.shape == shape and y.dtype == dtype
        assert tqcli.decompress(blob, rows=(0, 5)).shape == (0, shape[-1])


# ------------------------------------------------------------------ sizes


def _overhead(hdr):
    """Everything but the payload, from the layout: fixed 48-byte header, 8 bytes per shape
    entry, 4 per centroid, header CRC; 4-byte CRC and 16-byte index entry per chunk;
    24-byte footer."""
    header = 48 + 8 * len(hdr.shape) + 4 * hdr.codebook_size + 4
    assert hdr.header_size == header
    return header + 20 * hdr.n_chunks + 24


@pytest.mark.parametrize("bits", range(1, 9))
def test_mse_payload_is_exactly_packed_codes_plus_scales(bits):
    for n, d, cr in ((1001, 97, 64), (13, 3, None), (10000, 384, None)):
        x = gaussian_rows(bits + n, n, d, np.float32)
        blob = tqcli.compress(x, bits=bits, chunk_rows=cr)
        hdr = tqcli.read_header(blob)
        payload = -(-n * d * bits // 8) + 4 * n
        assert hdr.payload_bytes == payload, (n, d)
        assert len(blob) == payload + _overhead(hdr), (n, d)
        if n >= 10000:
            assert (len(blob) - payload) / len(blob) < 0.01
            assert len(blob) < 1.01 * (n * d * bits / 8 + 4 * n)
        # half-precision scales: 2 bytes a vector
        small = x / np.abs(x).max()  # norms that fit float16
        blob16 = tqcli.compress(small, bits=bits, chunk_rows=cr, scale_dtype="float16")
        hdr16 = tqcli.read_header(blob16)
        assert hdr16.payload_bytes == -(-n * d * bits // 8) + 2 * n
        assert len(blob16) == hdr16.payload_bytes + _overhead(hdr16)
        y16 = tqcli.decompress(blob16)
        assert nmse(small, y16) < 1.02 * nmse(small, tqcli.decompress(
            tqcli.compress(small, bits=bits, chunk_rows=cr)))


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_prod_payload_size(bits):
    n, d = 1001, 97
    x = gaussian_rows(bits, n, d, np.float32)
    blob = tqcli.compress(x, bits=bits, mode="prod", chunk_rows=64)
    hdr = tqcli.read_header(blob)
    payload = -(-n * d * (bits - 1) // 8) + -(-n * d // 8) + 8 * n
    assert hdr.payload_bytes == payload
    assert len(blob) == payload + _overhead(hdr)


def test_float16_scale_refuses_norm_it_cannot_hold():
    x = gaussian_rows(15, 40, 8, np.float32)
    x[:] /= np.linalg.norm(x, axis=1, keepdims=True)
    x[27] *= 1e6
    with pytest.raises(tqcli.InputError, match=r"row 27\b"):
        tqcli.compress(x, bits=2, scale_dtype="float16", chunk_rows=8)
    tqcli.compress(x, bits=2)  # float32 scales hold it


@pytest.mark.parametrize("dtype, value", [(np.float32, 1e38), (np.float32, 3.0e38),
                                          (np.float32, 1e-40), (np.float64, 1e300),
                                          (np.float64, 1e-300), (np.float16, 60000.0)])
def test_extreme_magnitudes_round_trip_without_overflow(dtype, value):
    """Norms beyond float32's range switch the scales to float64 by themselves; outputs
    saturate instead of overflowing; the error relative to the norm stays as usual."""
    rng = np.random.default_rng(3)
    x = (rng.uniform(-1.0, 1.0, (40, 384)) * value).astype(dtype)
    x[7] = 0
    blob = tqcli.compress(x, bits=4)
    y = tqcli.decompress(blob)
    assert y.dtype == x.dtype and np.isfinite(y).all()
    assert not y[7].any()
    xs, ys = x.astype(np.float64) / value, y.astype(np.float64) / value
    nz = np.arange(40) != 7
    rel = np.sum((xs - ys) ** 2, axis=1)[nz] / np.sum(xs ** 2, axis=1)[nz]
    assert rel.mean() < 1.5 * codebook.expected_distortion(384, 4)
    # norms beyond float32 (or too small for it to keep at all) switch to float64 scales
    expect = "float64" if value > 1e37 or value < 1e-44 else "float32"
    assert tqcli.read_header(blob).scale_dtype == expect


def test_float64_scales_only_when_needed_and_float32_refuses_with_a_hint():
    x = gaussian_rows(5, 64, 32, np.float32)
    assert tqcli.read_header(tqcli.compress(x, bits=3)).scale_dtype == "float32"
    x[50] = 3e37  # a norm of 1.7e38: a float32 itself, but beyond the scale's headroom
    assert tqcli.read_header(tqcli.compress(x, bits=3)).scale_dtype == "float64"
    with pytest.raises(tqcli.InputError, match=r"row 50\b.*--scale-dtype float64"):
        tqcli.compress(x, bits=3, scale_dtype="float32")


@pytest.mark.parametrize("options", [
    dict(bits=5, mode="mse", scale_rule="ip", seed=12345, rounds=2, chunk_rows=16),
    dict(bits=3, mode="mse", scale_rule="norm", seed=2**64 - 1, rounds=5, chunk_rows=8),
    dict(bits=4, mode="prod", scale_rule="norm", seed=7, rounds=1, chunk_rows=24)],
    ids=["mse-ip", "mse-norm", "prod"])
def test_float64_restart_keeps_every_option(options):
    """scale_dtype "auto" starts again with float64 scales when a norm needs them (here row
    50, in the third chunk or later); the restart must keep every other option: its file is
    byte for byte the one an explicit scale_dtype="float64" writes."""
    x = gaussian_rows(21, 64, 32, np.float32)
    x[50] = 3e37
    auto = tqcli.compress(x, **options)
    explicit = tqcli.compress(x, **options, scale_dtype="float64")
    hdr = tqcli.read_header(auto)
    assert hdr.scale_dtype == "float64"
    assert (hdr.bits, hdr.mode, hdr.scale_rule, hdr.seed, hdr.rounds, hdr.chunk_rows) == (
        options["bits"], options["mode"], options["scale_rule"], options["seed"],
        options["rounds"], options["chunk_rows"])
    assert auto == explicit


# ------------------------------------------------------------------ determinism

_SUBPROCESS = r"""
import hashlib, sys
import numpy as np
import tqcli
rng = np.random.default_rng(77)
x = (rng.standard_normal((1003, 97)) * rng.lognormal(0, 2, (1003, 1))).astype(np.float32)
for kw in (dict(bits=3), dict(bits=3, mode="prod"), dict(bits=7, scale_rule="ip"),
           dict(bits=4, center=True), dict(bits=2, rotation="hadamard2")):
    print(hashlib.sha256(tqcli.compress(x, chunk_rows=64, **kw)).hexdigest())
print(tqcli.kernels.thread_count())
"""


def test_compression_is_deterministic_in_process():
    x = gaussian_rows(16, 500, 64, np.float32)
    for mode in ("mse", "prod"):
        a = tqcli.compress(x, bits=3, mode=mode)
        b = tqcli.compress(x.copy(), bits=3, mode=mode)
        assert a == b
    # fewer threads, same bytes
    ref = tqcli.compress(x, bits=4, chunk_rows=64)
    try:
        assert tqcli.set_threads(1) == 1
        one = tqcli.compress(x, bits=4, chunk_rows=64)
    finally:
        tqcli.set_threads(None)
    assert one == ref


def test_compression_is_identical_across_thread_counts_in_subprocesses():
    outs = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        res = subprocess.run([sys.executable, "-c", _SUBPROCESS], env=env, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        lines = res.stdout.split()
        assert lines[-1] == threads  # the setting took effect
        outs.append(lines[:-1])
    assert outs[0] == outs[1]
    # and the same bytes as this process
    rng = np.random.default_rng(77)
    x = (rng.standard_normal((1003, 97)) * rng.lognormal(0, 2, (1003, 1))).astype(np.float32)
    here = [hashlib.sha256(tqcli.compress(x, chunk_rows=64, **kw)).hexdigest()
            for kw in (dict(bits=3), dict(bits=3, mode="prod"), dict(bits=7, scale_rule="ip"),
                       dict(bits=4, center=True), dict(bits=2, rotation="hadamard2"))]
    assert outs[0] == here


def test_different_seeds_give_different_bytes_and_similar_error():
    x = gaussian_rows(17, 400, 128, np.float32)
    for mode in ("mse", "prod"):
        blobs = {s: tqcli.compress(x, bits=3, mode=mode, seed=s) for s in (0, 1, 2**63 + 5)}
        assert len(set(blobs.values())) == 3
        assert tqcli.read_header(blobs[2**63 + 5]).seed == 2**63 + 5
        errs = [nmse(x, tqcli.decompress(b)) for b in blobs.values()]
        ys = [tqcli.decompress(b) for b in blobs.values()]
        assert not np.array_equal(ys[0], ys[1])
        assert max(errs) / min(errs) < 1.1


# ------------------------------------------------------------------ refusals


def test_input_error_is_a_tq_error():
    assert issubclass(tqcli.InputError, tqcli.TqError)
    assert issubclass(tqcli.InputError, Exception)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_refused_naming_first_bad_row(bad):
    x = gaussian_rows(18, 100, 12, np.float32)
    x[37, 5] = bad
    x[61, 0] = np.nan
    with pytest.raises(tqcli.InputError, match=r"\brow 37\b"):
        tqcli.compress(x, bits=2, chunk_rows=8)  # row 37 sits in the 5th chunk
    # rows are counted in the flattened (n, d) view of a higher-rank array
    y = x.reshape(4, 25, 12)
    with pytest.raises(tqcli.InputError, match=r"\brow 37\b"):
        tqcli.compress(y, bits=4, mode="prod")
    for dtype in (np.float16, np.float64):
        with pytest.raises(tqcli.InputError, match=r"\brow 37\b"):
            tqcli.compress(x.astype(dtype), bits=1)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint16, np.complex64,
                                   np.complex128, np.bool_, object, "U3"])
def test_unsupported_dtypes_refused(dtype):
    with pytest.raises(tqcli.InputError):
        tqcli.compress(np.ones((4, 8), dtype=dtype), bits=2)


@pytest.mark.parametrize("shape", [(), (5, 1), (5, 0), (1,), (0,), (3, 4, 1)])
def test_bad_shapes_refused(shape):
    with pytest.raises(tqcli.InputError):
        tqcli.compress(np.ones(shape, np.float32), bits=2)


def test_scalar_refused():
    with pytest.raises(tqcli.InputError):
        tqcli.compress(np.float32(1.5), bits=2)


@pytest.mark.parametrize("options", [dict(bits=0), dict(bits=9), dict(bits=-1),
                                     dict(mode="fast"), dict(mode="prod", scale_rule="ls"),
                                     dict(mode="prod", scale_rule="ip"), dict(scale_rule="abs"),
                                     dict(scale_dtype="bfloat16"), dict(chunk_rows=7),
                                     dict(rounds=0)])
def test_bad_options_refused(options):
    with pytest.raises(tqcli.InputError):
        tqcli.compress(np.ones((4, 8), np.float32), **options)


def test_rounds_option_changes_rotation_but_not_quality():
    x = gaussian_rows(19, 300, 200, np.float32)
    errs = {}
    for r in (1, 2, 3, 5):
        blob = tqcli.compress(x, bits=3, rounds=r)
        assert tqcli.read_header(blob).rounds == r
        errs[r] = nmse(x, tqcli.decompress(blob))
    assert len(set(errs.values())) == 4
    d3 = codebook.expected_distortion(200, 3)
    assert all(e < 1.15 * d3 for e in errs.values()), errs
    assert math.isclose(errs[3], errs[5], rel_tol=0.1)
