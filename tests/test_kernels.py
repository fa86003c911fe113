"""The numba kernels against the plain-numpy reference, bit for bit, and the seeded generators
against independent pure-Python implementations of SplitMix64 and the polar method.

Bit-exactness is what makes a .tqz file reproducible across thread counts and machines, and
what lets spec/tqz-v1.md be checked by a second implementation; so every comparison below is
np.array_equal on the raw outputs (codes, scales, decoded floats), never a tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tqcli.codec import codebook, state as codec, reference
from tqcli import kernels, prng
from tqcli.codec.rotations.hadamard2 import HADAMARD2

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


# ------------------------------------------------------------------ pure-Python generators


def py_mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class PySplitMix64:
    """The textbook sequential SplitMix64: state += golden; return mix(state)."""

    def __init__(self, seed: int):
        self.state = seed & MASK

    def next(self) -> int:
        self.state = (self.state + GOLDEN) & MASK
        return py_mix(self.state)


def py_stream_key(seed: int, tag: int) -> int:
    """Output number tag+1 of SplitMix64 seeded with `seed` (the spec's stream derivation)."""
    g = PySplitMix64(seed)
    g.state = (seed + tag * GOLDEN) & MASK
    return g.next()


def py_gaussians(key: int, n: int) -> np.ndarray:
    """Marsaglia's polar method on SplitMix64(key), as documented in kernels.gaussian_fill."""
    g = PySplitMix64(key)
    out = []
    while len(out) < n:
        u = (g.next() >> 11) * 2.0 ** -52 - 1.0
        v = (g.next() >> 11) * 2.0 ** -52 - 1.0
        s = u * u + v * v
        if s >= 1.0 or s == 0.0:
            continue
        f = math.sqrt(-2.0 * math.log(s) / s)
        out.append(u * f)
        out.append(v * f)
    return np.array(out[:n], dtype=np.float64).astype(np.float32)


def test_splitmix64_known_outputs_for_seed_zero():
    got = prng.splitmix64(0, 0, 3)
    assert got.dtype == np.uint64
    assert [int(v) for v in got] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    g = PySplitMix64(0)
    assert [g.next() for _ in range(3)] == [int(v) for v in got]


@pytest.mark.parametrize("seed", [1, 12345, 0xDEADBEEFCAFEBABE, MASK])
def test_splitmix64_matches_pure_python_at_any_offset(seed):
    g = PySplitMix64(seed)
    seq = [g.next() for _ in range(300)]
    assert [int(v) for v in prng.splitmix64(seed, 0, 300)] == seq
    # any stretch can be produced directly
    assert [int(v) for v in prng.splitmix64(seed, 117, 50)] == seq[117:167]
    assert prng.stream_key(seed, 5) == seq[5] == py_stream_key(seed, 5)


def test_gaussian_fill_matches_pure_python_polar_method():
    for key in (0, 1, 0x0123456789ABCDEF, prng.stream_key(7, prng.SKETCH_TAG)):
        n = 20001  # odd: the last pair contributes one value
        out = np.empty(n, np.float32)
        kernels.gaussian_fill(np.uint64(key), out)
        assert np.array_equal(out, py_gaussians(key, n)), hex(key)


def test_gaussian_fill_is_standard_normal():
    n = 1 << 20
    out = np.empty(n, np.float32)
    kernels.gaussian_fill(np.uint64(2024), out)
    x = out.astype(np.float64)
    assert abs(x.mean()) < 5 / math.sqrt(n)
    assert abs(x.var() - 1) < 5 * math.sqrt(2 / n)
    assert stats.kstest(x[:200000], "norm").pvalue > 0.01
    assert abs(stats.skew(x)) < 0.02 and abs(stats.kurtosis(x)) < 0.03
    other = np.empty(1000, np.float32)
    kernels.gaussian_fill(np.uint64(2025), other)
    assert not np.array_equal(other, out[:1000])


def test_sketch_is_seeded_gaussian_matrix():
    d, seed = 24, 11
    s = codec.make_sketch(d, seed)
    assert s.shape == (d, d) and s.dtype == np.float32
    key = py_stream_key(seed, 1 << 32)
    assert np.array_equal(s.reshape(-1), py_gaussians(key, d * d))
    assert not np.array_equal(s, codec.make_sketch(d, seed + 1))


@pytest.mark.parametrize("d", [2, 3, 97, 384])
def test_rotation_tables_match_pure_python_derivation(d):
    seed, rounds = 99, 3
    rot = HADAMARD2.plan(d, seed, rounds)
    p = 1 << (d.bit_length() - 1)
    assert rot.blocks[:, 0].tolist() == [[0, p]] * rounds
    assert np.all(rot.scales[:, 0] == np.float32(1 / math.sqrt(p)))
    for r in range(rounds):
        g = PySplitMix64(py_stream_key(seed, 2 * r))
        signs = [-1.0 if g.next() >> 63 else 1.0 for _ in range(d)]
        g = PySplitMix64(py_stream_key(seed, 2 * r + 1))
        keys = [g.next() for _ in range(d)]
        perm = sorted(range(d), key=lambda i: keys[i])
        assert rot.signs[r].tolist() == signs
        assert rot.perms[r].tolist() == perm


# ------------------------------------------------------------------ rotation


@pytest.mark.parametrize("d", [2, 3, 8, 97, 200, 384, 1000])
@pytest.mark.parametrize("rounds", [1, 3, 4])
def test_rotate_rows_matches_reference_and_is_orthogonal(d, rounds):
    rot = HADAMARD2.plan(d, 5, rounds)
    x = np.random.default_rng(d).standard_normal((13, d)).astype(np.float32)
    fwd = _check_rotation(rot.kernel_args, x)
    m = rot.matrix()
    assert m.shape == (d, d)
    np.testing.assert_allclose(m @ m.T, np.eye(d), rtol=0, atol=1e-5)
    np.testing.assert_allclose(fwd, x.astype(np.float64) @ m.T, rtol=0, atol=1e-5 * np.abs(x).max())
    if d >= 8:
        assert not np.allclose(np.abs(m), np.eye(d))  # it actually mixes coordinates


def _check_rotation(plan, x: np.ndarray) -> np.ndarray:
    """The kernel rotates x by `plan` exactly as the numpy reference does, both ways;
    inverse o forward is the identity and norms are kept, up to float32 rounding."""
    fwd = x.copy()
    kernels.rotate_rows(fwd, plan, False)
    assert np.array_equal(fwd, reference.rotate_forward(x, plan))
    back = fwd.copy()
    kernels.rotate_rows(back, plan, True)
    assert np.array_equal(back, reference.rotate_inverse(fwd, plan))
    np.testing.assert_allclose(back, x, rtol=0, atol=1e-5 * np.abs(x).max())
    np.testing.assert_allclose(np.linalg.norm(fwd, axis=1), np.linalg.norm(x, axis=1), rtol=1e-5)
    return fwd


def test_rotation_spreads_a_basis_vector():
    """3 rounds leave no large coordinate: a basis vector's image looks like a random one."""
    d = 1000
    m = HADAMARD2.plan(d, 0, 3).matrix()
    assert np.abs(m).max() * math.sqrt(d) < 6.0
    # each column has many nonzero coordinates
    assert np.min(np.sum(np.abs(m) > 1e-6, axis=0)) > d // 4


def test_different_seeds_give_different_rotations():
    a = HADAMARD2.plan(64, 0, 3).matrix()
    b = HADAMARD2.plan(64, 1, 3).matrix()
    assert np.abs(a - b).max() > 0.1


def _other_plan(d, blocks_per_round, seed=3):
    """A plan of another rotation kind: hadamard2's signs and permutations with the given
    Hadamard blocks per round (padded with unused (0, 0) slots to a common K)."""
    rot = HADAMARD2.plan(d, seed, len(blocks_per_round))
    k = max(len(b) for b in blocks_per_round)
    blocks = np.zeros((rot.rounds, k, 2), np.int64)
    scales = np.ones((rot.rounds, k), np.float32)
    for r, round_blocks in enumerate(blocks_per_round):
        for j, (off, size) in enumerate(round_blocks):
            blocks[r, j] = (off, size)
            scales[r, j] = np.float32(1 / math.sqrt(size)) if size else np.float32(1)
    for arr in (blocks, scales):
        arr.setflags(write=False)
    return rot.signs, rot.perms, blocks, scales


# plans whose blocks are not hadamard2's, each taking another path through the kernels
OTHER_PLANS = {
    # disjoint blocks covering d; block 0 at offset 0 is fused with the permutation
    "disjoint": (100, [[(0, 64), (64, 32), (96, 4)]] * 3),
    # block 0 not at offset 0: the sign-permutation is a pass of its own, both ways
    "offset": (100, [[(36, 64), (0, 32), (64, 32)], [(4, 64), (68, 32), (0, 4)],
                     [(96, 4), (0, 64), (64, 32)]]),
    # block 0 at 0 but of size 8: no forward fusion, the inverse scatters; a size-1 block
    "small_first": (97, [[(0, 8), (8, 64), (72, 16), (88, 8), (96, 1)]] * 2),
    # unused slots anywhere, a round whose first slot is unused
    "padding": (40, [[(0, 32), (0, 0), (32, 8)], [(0, 0), (8, 32), (0, 8)]]),
}


def test_hadamard2_plan_is_two_blocks_per_round():
    for d in (64, 97):
        rot = HADAMARD2.plan(d, 1, 3)
        signs, perms, blocks, scales = rot.kernel_args
        assert signs is rot.signs and perms is rot.perms
        p = 1 << (d.bit_length() - 1)
        second = (d - p, p) if p < d else (0, 0)
        assert blocks.dtype == np.int64 and blocks.shape == (3, 2, 2)
        assert all(blocks[r].tolist() == [[0, p], list(second)] for r in range(3))
        scale = np.float32(1 / math.sqrt(p))
        assert scales.dtype == np.float32
        assert np.all(scales[:, 0] == scale) and np.all(scales[:, 1] == (scale if p < d else 0))


@pytest.mark.parametrize("kind", sorted(OTHER_PLANS))
def test_rotate_rows_follows_any_plan(kind):
    d, blocks = OTHER_PLANS[kind]
    plan = _other_plan(d, blocks)
    x = np.random.default_rng(d).standard_normal((21, d)).astype(np.float32)
    assert not np.allclose(_check_rotation(plan, x), x)


@pytest.mark.parametrize("kind", sorted(OTHER_PLANS))
def test_encode_decode_follow_any_plan(kind):
    d, blocks = OTHER_PLANS[kind]
    plan = _other_plan(d, blocks)
    rng = np.random.default_rng(len(kind))
    n = 21
    x = _test_rows(rng, n, d)
    sketch = codec.make_sketch(d, 4)
    for bits in (1, 4, 7):
        cents = codebook.codebook(d, bits)
        bounds = codebook.boundaries(cents)
        for dtype in (np.float32, np.float64):
            xi = x.astype(dtype)
            codes = np.zeros(-(-n * d * bits // 8), np.uint8)
            scales = np.empty(n)
            kernels.encode_mse(xi, plan, *_quantiser(bounds), cents, bits, 0, codes, scales)
            rc, rs = reference.encode_mse(xi, plan, bounds, cents, bits, 0)
            assert np.array_equal(codes, rc) and np.array_equal(scales, rs), (bits, dtype)
            s32 = scales.astype(np.float32)
            out = np.empty((n, d), np.float32)
            kernels.decode_mse(codes, s32, plan, cents, bits, out)
            assert np.array_equal(out, reference.decode_mse(codes, s32, plan, cents, bits, n))
            # prod mode with bits - 1 code bits (0 included)
            cb = bits - 1
            pc = codebook.codebook(d, cb) if cb else np.zeros(0, np.float32)
            pb = codebook.boundaries(pc) if cb else np.zeros(0)
            codes = np.zeros(-(-n * d * cb // 8), np.uint8)
            qbits = np.zeros(-(-n * d // 8), np.uint8)
            gammas = np.empty(n)
            kernels.encode_prod(xi, plan, *_quantiser(pb), pc, cb, np.ascontiguousarray(sketch.T),
                                codes, qbits, scales, gammas)
            ref = reference.encode_prod(xi, plan, pb, pc, cb, sketch)
            for got, want in zip((codes, qbits, scales, gammas), ref):
                assert np.array_equal(got, want), (bits, dtype)
            s32, g32 = scales.astype(np.float32), gammas.astype(np.float32)
            kernels.decode_prod(codes, qbits, s32, g32, plan, pc, cb, sketch, out)
            assert np.array_equal(out, reference.decode_prod(codes, qbits, s32, g32, plan, pc, cb,
                                                             sketch, n))


def test_kernels_refuse_a_plan_that_does_not_fit():
    d = 100
    good = _other_plan(d, OTHER_PLANS["disjoint"][1])
    x = np.zeros((3, d), np.float32)
    kernels.check_plan(good, d)
    signs, perms, blocks, scales = good
    bad_blocks = {
        "past the end": [[(64, 64)]] * 3,
        "not a power of two": [[(0, 48)]] * 3,
    }
    for why, b in bad_blocks.items():
        with pytest.raises(ValueError):
            kernels.rotate_rows(x, _other_plan(d, b), False)
    with pytest.raises(ValueError):
        kernels.rotate_rows(np.zeros((3, 99), np.float32), good, False)
    with pytest.raises(TypeError):
        kernels.check_plan((signs, perms.astype(np.int64), blocks, scales), d)
    wild = perms.copy()
    wild[0, 0] = d
    with pytest.raises(ValueError):
        kernels.check_plan((signs, wild, blocks, scales), d)


# ------------------------------------------------------------------ encode / decode mse


def _test_rows(rng, n, d):
    """Rows with widely varying magnitudes, a zero row, and a one-hot row."""
    x = rng.standard_normal((n, d)) * (10.0 ** rng.uniform(-3, 3, size=(n, 1)))
    x[min(5, n - 1)] = 0.0
    if n > 9:
        x[9] = 0.0
        x[9, d // 2] = -3.0
    return x


def _plan(rot):
    """The rotation's plan, as Codec hands it to the kernels."""
    return rot.kernel_args


def _quantiser(bounds):
    """The float32 thresholds and the binary-search table, as Codec prepares them."""
    thr = codebook.float32_thresholds(bounds)
    return thr, codebook.search_table(thr)


def _kernel_input(x):
    """What Codec.encode hands the kernels: numba has no float16, so float16 rows are widened
    to float32 (exact); the reference always gets the caller's array unchanged."""
    return x.astype(np.float32) if x.dtype == np.float16 else x


@pytest.mark.parametrize("d", [2, 3, 64, 97, 200, 384, 1000])
@pytest.mark.parametrize("bits", range(1, 9))
def test_mse_kernels_match_reference_bit_for_bit(d, bits):
    rng = np.random.default_rng(1000 * d + bits)
    rot = HADAMARD2.plan(d, 17 + bits, 3)
    cents = codebook.codebook(d, bits)
    bounds = codebook.boundaries(cents)
    n = 21  # not a multiple of 8: two full groups and a partial one
    x = _test_rows(rng, n, d)
    for dtype in (np.float16, np.float32, np.float64):
        xi = x.astype(dtype)
        for rule in (0, 1, 2):
            codes = np.zeros(-(-n * d * bits // 8), np.uint8)
            scales = np.empty(n, np.float64)
            kernels.encode_mse(_kernel_input(xi), _plan(rot), *_quantiser(bounds), cents, bits, rule,
                               codes, scales)
            ref_codes, ref_scales = reference.encode_mse(xi, rot, bounds, cents, bits, rule)
            assert np.array_equal(codes, ref_codes), (dtype, rule)
            assert np.array_equal(scales, ref_scales), (dtype, rule)
            assert scales[5] == 0.0
            s32 = scales.astype(np.float32)
            out = np.empty((n, d), np.float32)
            kernels.decode_mse(codes, s32, _plan(rot), cents, bits, out)
            ref = reference.decode_mse(codes, s32, rot, cents, bits, n)
            assert ref.dtype == np.float32 and ref.shape == (n, d)
            assert np.array_equal(out, ref), (dtype, rule)
            # zero row: exact +0.0
            assert np.all(out[5] == 0) and not np.signbit(out[5]).any()
            # and the decode is a reasonable approximation of the input
            nz = np.any(xi != 0, axis=1)
            x64, o64 = xi[nz].astype(np.float64), out[nz].astype(np.float64)
            rel = np.sum((x64 - o64) ** 2, 1) / np.sum(x64 ** 2, 1)
            D = codebook.expected_distortion(d, bits)
            expect = D / (1 - D) if rule == 2 else D  # the 'ip' scale trades MSE for no bias
            assert np.mean(rel) < 1.6 * expect + 1e-5, (dtype, rule, np.mean(rel) / expect)


def test_mse_codes_are_lsb_first_bucket_indices():
    """The packed codes hold, LSB first, the number of thresholds strictly below each rotated
    coordinate of the float32 unit direction (bucketing and packing checked independently of
    reference.quantize / reference.pack)."""
    d, bits, n = 10, 3, 9
    rot = HADAMARD2.plan(d, 3, 3)
    cents = codebook.codebook(d, bits)
    bounds = codebook.boundaries(cents)
    x = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    codes = np.zeros(-(-n * d * bits // 8), np.uint8)
    scales = np.empty(n)
    kernels.encode_mse(x, _plan(rot), *_quantiser(bounds), cents, bits, 1, codes, scales)
    x64 = x.astype(np.float64)
    m = np.abs(x64).max(axis=1, keepdims=True)
    u = ((x64 / m) / np.linalg.norm(x64 / m, axis=1, keepdims=True)).astype(np.float32)
    y = reference.rotate_forward(u, rot)  # bit-exact with the kernel (tested above)
    np.testing.assert_allclose(y.astype(np.float64), u.astype(np.float64) @ rot.matrix().T,
                               atol=1e-6)
    idx = [sum(1 for t in bounds if t < float(v)) for v in y.reshape(-1)]
    stream = int.from_bytes(codes.tobytes(), "little")
    got = [(stream >> (bits * k)) & ((1 << bits) - 1) for k in range(n * d)]
    assert got == idx
    assert len(codes) * 8 - n * d * bits < 8 and stream >> (n * d * bits) == 0  # zero padding
    np.testing.assert_allclose(scales, np.linalg.norm(x64, axis=1), rtol=1e-12)


def _bits_same(a, b):
    return np.array_equal(a.view(np.uint64), b.view(np.uint64))


def _hard_significands(rng, n):
    """float64 values in [1, 2) that are hard for division: all-ones and all-zeros tails,
    one bit set or clear, 24-bit (float32) significands, and random ones."""
    one = np.uint64(0x3FF0000000000000)
    frac = np.uint64((1 << 52) - 1)
    pats = [frac, np.uint64(0), np.uint64(1), frac - np.uint64(1), np.uint64(1 << 51),
            frac ^ np.uint64(1 << 29)]
    pats += [np.uint64((1 << 52) - (1 << k)) for k in range(0, 52, 3)]
    pats += [np.uint64(1 << k) for k in range(0, 52, 3)]
    f32 = rng.integers(0, 1 << 23, n, dtype=np.uint64) << np.uint64(29)
    rand = rng.integers(0, 1 << 52, n, dtype=np.uint64)
    mant = np.concatenate([np.array(pats, np.uint64), f32, rand]) | one
    return mant.view(np.float64)


def test_divide_is_correctly_rounded_division():
    """The kernels divide with a reciprocal and two FMA corrections instead of a division
    instruction (_div_lanes in tqcli/kernels/lanes.py): the quotient must be the same float64
    bits as a / b, for the operands the encoder meets -- float32 or float64 coordinates over
    the row's float32/float64 maximum, then the quotients in [-1, 1] over roots in
    [1, sqrt(d)]."""
    rng = np.random.default_rng(11)
    sig = _hard_significands(rng, 40_000)
    checked = 0
    # float32 numerators (normal and subnormal) over float32 divisors of any magnitude
    a32 = np.concatenate([
        (sig * 2.0 ** rng.integers(-126, 127, sig.size)).astype(np.float32),
        rng.integers(1, 1 << 23, 20_000).astype(np.float32) * np.float32(2.0 ** -149),
        np.array([0.0, -0.0, 1.0, -1.0, 3.4028235e38, 1e-45], np.float32)])
    a32 *= np.where(rng.random(a32.size) < 0.5, -1, 1).astype(np.float32)
    for b in list(sig[:40].astype(np.float32)) + [np.float32(1e-45), np.float32(3.4028235e38),
                                                   np.float32(1.0), np.float32(1.1754944e-38)]:
        for scale in (2.0 ** -140, 2.0 ** -60, 1.0, 2.0 ** 60, 2.0 ** 126):
            with np.errstate(over="ignore"):
                bb = np.float64(np.float32(np.float64(b) * scale))
            if bb == 0.0 or not np.isfinite(bb):
                continue
            mag = np.abs(a32.astype(np.float64))
            a = a32[mag <= bb]  # the kernels divide by the row's largest magnitude
            got = np.empty(a.size)
            kernels.divide(a, bb, got)
            assert _bits_same(got, a.astype(np.float64) / bb), bb
            checked += a.size
    # float64 quotients in [-1, 1] over roots sqrt(ss), ss in [1, 65536]
    a64 = np.concatenate([sig * 2.0 ** rng.integers(-60, 0, sig.size), -sig / 2, [0.0, -0.0, 1.0]])
    roots = np.concatenate([np.sqrt(rng.uniform(1, 65536, 60)), np.sqrt(np.arange(1.0, 40.0)),
                            sig[:30], [1.0, 256.0]])
    for b in roots:
        got = np.empty(a64.size)
        kernels.divide(a64, b, got)
        assert _bits_same(got, a64 / b), b
        checked += a64.size
    assert checked > 5_000_000


def test_encode_extreme_magnitudes_match_reference():
    """Norms that would overflow or underflow a naive sum of squares."""
    d, bits = 97, 4
    rot = HADAMARD2.plan(d, 0, 3)
    cents = codebook.codebook(d, bits)
    bounds = codebook.boundaries(cents)
    rng = np.random.default_rng(3)
    base = rng.standard_normal((16, d))
    cases = {
        np.float64: [1e300, 1e200, 1e-200, 1e-310, 1.0],
        np.float32: [3e37, 1e30, 1e-30, 1e-42, 1.0],
        np.float16: [1.2e4, 1e3, 1e-3, 1e-6, 1.0],  # |base| < 5: no overflow to inf
    }
    for dtype, mags in cases.items():
        x = np.concatenate([base[:3] * m for m in mags]).astype(dtype)
        for rule in (0, 1, 2):
            codes = np.zeros(-(-x.shape[0] * d * bits // 8), np.uint8)
            scales = np.empty(x.shape[0])
            kernels.encode_mse(_kernel_input(x), _plan(rot), *_quantiser(bounds), cents, bits, rule,
                               codes, scales)
            rc, rs = reference.encode_mse(x, rot, bounds, cents, bits, rule)
            assert np.array_equal(codes, rc) and np.array_equal(scales, rs), (dtype, rule)
            assert np.all(np.isfinite(scales)) and np.all(scales > 0)
            if rule == 1:
                true = np.linalg.norm(x.astype(np.float64) / np.abs(x).max(axis=1, keepdims=True)
                                      .astype(np.float64), axis=1)
                true *= np.abs(x).max(axis=1).astype(np.float64)
                np.testing.assert_allclose(scales, true, rtol=1e-12)
        # the same direction is coded identically whatever its magnitude
        codes_by_mag = []
        for k in range(len(mags)):
            xk = x[3 * k:3 * k + 3]
            c = np.zeros(-(-3 * d * bits // 8), np.uint8)
            kernels.encode_mse(_kernel_input(xk), _plan(rot), *_quantiser(bounds), cents, bits, 1, c,
                               np.empty(3))
            codes_by_mag.append(c)
        if dtype is not np.float16:  # float16 rounding of base * m depends on m
            assert all(np.array_equal(codes_by_mag[0], c) for c in codes_by_mag[1:]), dtype


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64])
def test_mse_kernels_any_row_count(n):
    d, bits = 97, 3
    rot = HADAMARD2.plan(d, 1, 3)
    cents = codebook.codebook(d, bits)
    bounds = codebook.boundaries(cents)
    x = np.random.default_rng(n).standard_normal((n, d)).astype(np.float32)
    codes = np.zeros(-(-n * d * bits // 8), np.uint8)
    scales = np.empty(n)
    kernels.encode_mse(x, _plan(rot), *_quantiser(bounds), cents, bits, 0, codes, scales)
    rc, rs = reference.encode_mse(x, rot, bounds, cents, bits, 0)
    assert np.array_equal(codes, rc) and np.array_equal(scales, rs)
    out = np.empty((n, d), np.float32)
    kernels.decode_mse(codes, scales.astype(np.float32), _plan(rot), cents, bits, out)
    assert np.array_equal(out, reference.decode_mse(codes, scales.astype(np.float32), rot,
                                                    cents, bits, n))
    # rows are encoded independently: encoding a row alone gives the same bits
    for r in (0, n - 1):
        c1 = np.zeros(-(-d * bits // 8), np.uint8)
        s1 = np.empty(1)
        kernels.encode_mse(x[r:r + 1], _plan(rot), *_quantiser(bounds), cents, bits, 0, c1, s1)
        assert s1[0] == scales[r]
        idx_all = reference.unpack(codes, bits, n * d).reshape(n, d)
        assert np.array_equal(reference.unpack(c1, bits, d), idx_all[r])


# ------------------------------------------------------------------ encode / decode prod


@pytest.mark.parametrize("d", [16, 97, 200])
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_prod_kernels_match_reference_bit_for_bit(d, bits):
    rng = np.random.default_rng(7 * d + bits)
    seed = 40 + bits
    rot = HADAMARD2.plan(d, seed, 3)
    cb = bits - 1
    cents = codebook.codebook(d, cb) if cb else np.zeros(0, np.float32)
    bounds = codebook.boundaries(cents) if cb else np.zeros(0)
    sketch = codec.make_sketch(d, seed)
    sketch_t = np.ascontiguousarray(sketch.T)
    n = 19
    x = _test_rows(rng, n, d)
    for dtype in (np.float16, np.float32, np.float64):
        xi = x.astype(dtype)
        codes = np.zeros(-(-n * d * cb // 8), np.uint8)
        qbits = np.zeros(-(-n * d // 8), np.uint8)
        scales = np.empty(n)
        gammas = np.empty(n)
        kernels.encode_prod(_kernel_input(xi), _plan(rot), *_quantiser(bounds), cents, cb, sketch_t,
                            codes, qbits, scales, gammas)
        rc, rq, rs, rg = reference.encode_prod(xi, rot, bounds, cents, cb, sketch)
        assert np.array_equal(codes, rc), dtype
        assert np.array_equal(qbits, rq), dtype
        assert np.array_equal(scales, rs), dtype
        assert np.array_equal(gammas, rg), dtype
        assert scales[5] == 0 and gammas[5] == 0
        # the residual of a unit direction is shorter than it
        live = scales > 0
        assert np.all(gammas[live] <= 1.0 + 1e-6)
        s32, g32 = scales.astype(np.float32), gammas.astype(np.float32)
        out = np.empty((n, d), np.float32)
        kernels.decode_prod(codes, qbits, s32, g32, _plan(rot), cents, cb, sketch, out)
        ref = reference.decode_prod(codes, qbits, s32, g32, rot, cents, cb, sketch, n)
        assert np.array_equal(out, ref), dtype
        assert np.all(out[5] == 0) and not np.signbit(out[5]).any()


def test_prod_sign_bits_are_signs_of_sketched_residual():
    d, cb = 32, 1
    rot = HADAMARD2.plan(d, 2, 3)
    cents = codebook.codebook(d, cb)
    bounds = codebook.boundaries(cents)
    sketch = codec.make_sketch(d, 2)
    x = np.random.default_rng(1).standard_normal((8, d)).astype(np.float32)
    codes = np.zeros(8 * d * cb // 8, np.uint8)
    qbits = np.zeros(8 * d // 8, np.uint8)
    scales, gammas = np.empty(8), np.empty(8)
    kernels.encode_prod(x, _plan(rot), *_quantiser(bounds), cents, cb,
                        np.ascontiguousarray(sketch.T), codes, qbits, scales, gammas)
    u, _ = reference.unit_directions(x)
    y = reference.rotate_forward(u, rot).astype(np.float64)
    idx = np.searchsorted(bounds, y)
    res = y - cents[idx]
    proj = res @ sketch.T.astype(np.float64)
    signs = np.unpackbits(qbits, bitorder="little").reshape(8, d)
    clear = np.abs(proj) > 1e-5  # away from zero, float32 and float64 agree on the sign
    assert np.array_equal(signs[clear], (proj[clear] >= 0).astype(np.uint8))
    np.testing.assert_allclose(gammas, np.linalg.norm(res, axis=1), rtol=1e-5)
