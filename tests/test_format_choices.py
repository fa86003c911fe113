"""Format choices that round-trip at full quality when wrong, so that only bytes show them:
the tiled rotation's tiles and their order (spec 8.6), a fresh permutation and sign flip
per round (8.1), tq's centre summed in binary64 (14), and the entropy model's frequencies
rounded to nearest (19.6).  Each expected value is computed here from the spec's text
alone -- SplitMix64 and the rotation in Python integers and float32 scalars, the centre as
an ordered binary64 sum, the cell masses from the coordinate law with scipy -- and compared
bit for bit with what tq builds and stores.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tqcli
from tqcli.codec.state import Codec
from tqcli.format.header import make_header

M64 = (1 << 64) - 1


# ---------------------------------------------------------------------- spec 7 and 8


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def out(key, j):
    return mix((key + j * 0x9E3779B97F4A7C15) & M64)


def stream_key(seed, tag):
    return out(seed, tag + 1)


def round_params(seed, d, r):
    """sigma_r and pi_r of spec 8.1."""
    ka, kg = stream_key(seed, 2 * r), stream_key(seed, 2 * r + 1)
    sigma = [-1.0 if out(ka, j + 1) >> 63 else 1.0 for j in range(d)]
    g = [out(kg, j + 1) for j in range(d)]
    pi = sorted(range(d), key=lambda j: (g[j], j))
    return sigma, pi


def spec_tiles(d):
    """Spec 8.6: the binary digits of d, largest first, end to end."""
    tiles, o = [], 0
    for e in range(d.bit_length() - 1, -1, -1):
        if d >> e & 1:
            tiles.append((o, 1 << e))
            o += 1 << e
    return tiles


def s_q(q):
    """The table of spec 8.2, from its bit patterns."""
    e = q.bit_length() - 1
    bits = 0x3F800000 - (e // 2) * 0x00800000 if e % 2 == 0 else \
        0x3F3504F3 - ((e - 1) // 2) * 0x00800000
    return np.uint32(bits).view(np.float32)


def W(t, o, q):
    h = 1
    while h < q:
        for i in range(o, o + q, 2 * h):
            for j in range(i, i + h):
                t[j], t[j + h] = t[j] + t[j + h], t[j] - t[j + h]
        h *= 2
    s = s_q(q)
    for j in range(o, o + q):
        t[j] = t[j] * s


def spec_forward(x, d, seed, T):
    t = [np.float32(v) for v in x]
    for r in range(T):
        sigma, pi = round_params(seed, d, r)
        t = [np.float32(sigma[i]) * t[pi[i]] for i in range(d)]
        for o, q in spec_tiles(d):
            W(t, o, q)
    return np.array(t, np.float32)


def spec_inverse(x, d, seed, T):
    t = [np.float32(v) for v in x]
    for r in range(T - 1, -1, -1):
        for o, q in reversed(spec_tiles(d)):
            W(t, o, q)
        sigma, pi = round_params(seed, d, r)
        new = [np.float32(0)] * d
        for i in range(d):
            new[pi[i]] = np.float32(sigma[i]) * t[i]
        t = new
    return np.array(t, np.float32)


def test_spec_check_values_of_the_tiled_rotation():
    """Spec 7.3 and 8.5/8.6's check values, reproduced by the Python above (so that the
    comparisons below rest on the spec, not on tq)."""
    assert [out(0, j) for j in (1, 2, 3)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4,
                                             0x06C45D188009454F]
    assert stream_key(0, 3) == 0xF88BB8A8724C81EC
    assert round_params(0, 6, 0) == ([-1, -1, 1, -1, -1, 1], [3, 1, 0, 4, 5, 2])
    assert round_params(0, 6, 1) == ([-1, -1, -1, 1, 1, -1], [4, 0, 2, 1, 3, 5])
    fwd = spec_forward([1, 2, 3, 4, 5, 6], 6, 0, 2).view(np.uint32)
    assert [int(v) for v in fwd] == [0x40A1F0EE, 0xBFF83C4A, 0x4003E1DB, 0xBF707894,
                                     0x3FD5F618, 0xC0EA8278]
    inv = spec_inverse([1, 2, 3, 4, 5, 6], 6, 0, 2).view(np.uint32)
    assert [int(v) for v in inv] == [0xC08C7367, 0x4018E6CE, 0xC0812318, 0xC0AC7367,
                                     0xC058E6CE, 0x40424630]


@pytest.mark.parametrize("d", [6, 7, 13, 97])
@pytest.mark.parametrize("seed", [0, 2 ** 64 - 1])
def test_encoder_rotation_is_the_spec_rotation(d, seed):
    """The plan tq's encoder and decoder use for a header (tiled, 4 rounds): a fresh sign
    flip and permutation every round, the tiles largest first, bit for bit."""
    T = 4
    h = make_header(d, 4, seed=seed, rounds=T)
    codec = Codec(h)
    plan = codec.rotation
    for r in range(T):
        sigma, pi = round_params(seed, d, r)
        assert list(plan.perms[r]) == pi, r
        assert list(plan.signs[r]) == sigma, r
    assert len({tuple(p) for p in plan.perms}) == T      # no permutation repeats
    x = np.random.default_rng(d).standard_normal((5, d)).astype(np.float32)
    got_f = codec.rotation_kind.rotate(plan, x)
    got_i = codec.rotation_kind.rotate(plan, x, inverse=True)
    for row in range(5):
        assert got_f[row].tobytes() == spec_forward(x[row], d, seed, T).tobytes(), row
        assert got_i[row].tobytes() == spec_inverse(x[row], d, seed, T).tobytes(), row


def test_decoded_file_is_the_spec_inverse_rotation_of_the_centroids():
    """End to end: a one-vector tiled file (d = 13, three tiles) decodes to
    scale * spec_inverse(c[idx]); idx and scale read from the file's bytes (spec 4, 6)."""
    d, seed, T = 13, 77, 3
    x = np.random.default_rng(3).standard_normal((1, d)).astype(np.float32)
    blob = tqcli.compress(x, bits=4, seed=seed, rounds=T)
    h = tqcli.read_header(blob)
    assert h.rotation == "tiled"
    payload = blob[h.header_size:]
    nbytes = -(-d * 4 // 8)
    v = int.from_bytes(payload[:nbytes], "little")
    idx = [(v >> (4 * t)) & 15 for t in range(d)]
    scale = np.frombuffer(payload[nbytes:nbytes + 4], "<f4")[0]
    z = spec_inverse([h.codebook[i] for i in idx], d, seed, T)
    want = np.array([np.float32(scale) * v for v in z], np.float32)
    assert tqcli.decompress(blob)[0].tobytes() == want.tobytes()


# ---------------------------------------------------------------------- spec 14: centre


def spec_centre(rows):
    """Spec 14: the first chunk's values summed in binary64 in vector order, divided by
    their count, rounded to f32."""
    rows = np.asarray(rows)
    out = []
    for i in range(rows.shape[1]):
        s = 0.0
        for r in range(rows.shape[0]):
            s += float(rows[r, i])
        out.append(s / rows.shape[0])
    return np.array(out, np.float64).astype(np.float32)


def centre_rows(n, d, dtype, chunk):
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((n, d)) * 0.3 + np.linspace(-3, 5, d)).astype(dtype)
    # column 0: 1.0, then values a float32 running sum would lose (each below half its
    # unit at 1.0) but a binary64 one keeps; the binary64 sum of the chunk is exact here
    x[:, 0] = 0.75 * 2.0 ** -24
    x[0, 0] = 1.0
    # column 1: large and small values alternating, which float32 sums round differently
    x[:, 1] = np.where(np.arange(n) % 2 == 0, 3.0e4, 1.0e-3).astype(dtype)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stored_centre_is_the_binary64_mean_of_the_first_chunk(dtype):
    chunk = 64
    x = centre_rows(200, 24, dtype, chunk)
    want = spec_centre(x[:chunk])
    # the crafted columns really separate binary64 from float32 accumulation
    acc32 = np.zeros(24, np.float32)
    for row in x[:chunk].astype(np.float32):
        acc32 += row
    f32_mean = (acc32 / np.float32(chunk)).astype(np.float32)
    assert f32_mean[0] != want[0]
    assert math.fsum(float(v) for v in x[:chunk, 0]) / chunk == float(
        sum(float(v) for v in x[:chunk, 0])) / chunk
    blob = tqcli.compress(x, bits=3, chunk_rows=chunk, center=True)
    h = tqcli.read_header(blob)
    assert h.center.dtype == np.float32
    assert h.center.tobytes() == want.tobytes()
    # the centre's bytes in the file (spec 3.1: after the codebook), not only the parsed one
    at = 48 + 8 * len(h.shape) + 4 * len(h.codebook)
    assert blob[at:at + 4 * 24] == want.astype("<f4").tobytes()


# ---------------------------------------------------------------------- spec 19.6


def law_cdf(t, d):
    """P(y <= t) for a coordinate of a uniform unit vector of R^d: (y + 1)/2 follows
    Beta((d-1)/2, (d-1)/2) (spec 10.1)."""
    from scipy.special import betainc

    a = (d - 1) / 2
    return betainc(a, a, (np.asarray(t, np.float64) + 1) / 2)


def spec_frequencies(d, step, P=16):
    """Spec 19.6's grid and frequency rule; masses of mirrored cells taken equal (the law
    is symmetric), computed on the positive half."""
    K = max(1, math.ceil(min(1.0, 7 / math.sqrt(d)) / step - 0.5))
    M = 2 * K + 1
    edges = [min((k - 0.5) * step, 1.0) for k in range(1, K + 1)] + [1.0]
    cdf = law_cdf(edges, d)
    pos = [float(cdf[k + 1] - cdf[k]) for k in range(K)]   # cells k = 1 .. K
    middle = 1.0 - 2.0 * sum(pos)
    p = pos[::-1] + [middle] + pos
    total = 1 << P
    raw = [x * total + 0.5 for x in p]
    # no value sits so near a rounding edge that a last-bit difference in the masses
    # could change it
    assert all(abs(r - math.floor(r) - 0.0) > 1e-6 and abs(r - math.floor(r) - 1) > 1e-6
               for r in raw)
    f = [max(1, math.floor(r)) for r in raw]
    order = sorted(range(M), key=lambda s: (-p[s], s))
    diff = total - sum(f)
    while diff != 0:
        for s in order:
            if diff > 0:
                f[s] += 1
                diff -= 1
            elif f[s] > 1:
                f[s] -= 1
                diff += 1
            if diff == 0:
                break
    return M, f


@pytest.mark.parametrize("d,target", [(64, {"bits": 2.5}), (96, {"bits": 6.3}),
                                      (200, {"bits": None, "nmse": 0.02}),
                                      (32, {"bits": 1.2})])
def test_stored_frequencies_follow_the_rounding_rule(d, target):
    blob = tqcli.compress(np.random.default_rng(1).standard_normal((16, d)).astype(np.float32),
                          coding="entropy", **target)
    h = tqcli.read_header(blob)
    M, f = spec_frequencies(d, h.model.step)
    assert len(h.codebook) == M
    assert sum(int(v) for v in h.model.frequencies) == 1 << 16
    assert [int(v) for v in h.model.frequencies] == f
