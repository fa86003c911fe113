"""Two format boundaries that random data practically never reaches, reached on purpose.

1. The rANS renormalisation bound of spec 19.3: the encoder flushes a word when
   x >= (B div 2^P) 2^32 f_s -- on equality too.  Symbol sequences are built (by hand,
   from powers of two) that drive a coder state exactly onto the bound; a plain-Python
   coder written here from the spec text says what the bytes must be, and that the bound
   is hit.
2. A rotated coordinate exactly on a quantiser threshold goes to the lower cell (spec 11.4:
   idx = number of thresholds strictly below f64(y); 19.6 for the entropy grid).  The
   encoder kernels are run with the identity rotation (one round, identity permutation,
   +1 signs, one Hadamard block of size 1), so that the rotated coordinate is the unit
   vector's own coordinate, which the rows are built to make exactly a threshold, or the
   float32 values on either side of one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tqcli import kernels
from tqcli.codec.state import Codec
from tqcli.format.header import make_header

B = 1 << 31

# ---------------------------------------------------------------------- 1. the rANS bound


def spec_encode(symbols, freqs, P, L):
    """Spec 19.3's encoder, verbatim; returns (stream bytes, times a state was exactly on
    the bound when its symbol was coded)."""
    F = [sum(freqs[:s]) for s in range(len(freqs))]
    x = [B] * L
    E = []
    on_bound = 0
    for t in range(len(symbols) - 1, -1, -1):
        j, s = t % L, int(symbols[t])
        bound = (B // 2 ** P) * 2 ** 32 * freqs[s]
        on_bound += x[j] == bound
        if x[j] >= bound:
            E.append(x[j] % 2 ** 32)
            x[j] = x[j] // 2 ** 32
        x[j] = (x[j] // freqs[s]) * 2 ** P + (x[j] % freqs[s]) + F[s]
    words = []
    for j in range(L):
        words += [x[j] % 2 ** 32, x[j] // 2 ** 32]
    words += E[::-1]
    assert all(0 <= w < 2 ** 32 for w in words)
    return b"".join(w.to_bytes(4, "little") for w in words), on_bound


def spec_decode(data, N, freqs, P, L):
    """Spec 19.3's decoder, verbatim (every `require` an assertion); also counts the states
    that are exactly B after a decoding step (where `x_j < B` must not read a word)."""
    F = [sum(freqs[:s]) for s in range(len(freqs))]
    w = [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]
    W = len(w)
    assert W >= 2 * L
    x = [w[2 * j] + 2 ** 32 * w[2 * j + 1] for j in range(L)]
    assert all(B <= v < 2 ** 63 for v in x)
    pos, out, at_b = 2 * L, [], 0
    for t in range(N):
        j = t % L
        slot = x[j] % 2 ** P
        s = next(s for s in range(len(freqs)) if F[s] <= slot < F[s] + freqs[s])
        x[j] = freqs[s] * (x[j] // 2 ** P) + slot - F[s]
        at_b += x[j] == B
        if x[j] < B:
            assert pos < W
            x[j] = x[j] * 2 ** 32 + w[pos]
            pos += 1
        out.append(s)
    assert pos == W and all(v == B for v in x)
    return out, at_b


# Built backwards from the bound (spec 19.3's coding step, P = 16):
#  table A = [4, 16, rest]: coded in the encoder's order 1, 1, 0, 0 from B the state runs
#   B -> 2^43 + 4 -> 2^55 + 8 -> (flush) 2^23 -> 2^37 -> 2^51 = 2^47 * 16, exactly the
#   bound of symbol 1, coded next.
#  table B = [4, 32, rest]: 1, 1, 0, 0 gives 2^49 = 2^47 * 4, exactly the bound of symbol
#   0, and coding it from there (flush, then 2^17 -> 2^31) brings the state back to B.
CASES = {
    "A": ([4, 16, 65536 - 20], [1, 0, 0, 1, 1]),
    "B": ([4, 32, 65536 - 36], [0, 0, 0, 1, 1]),
}


def kernel_encode(sym, f, P, L):
    sym = np.asarray(sym, np.uint16)
    buf, st, ln = kernels.rans_encode(sym, np.array([0, sym.size]), np.asarray(f, np.int64),
                                      P, L)
    return bytes(buf[st[0]:st[0] + ln[0]])


def kernel_decode(data, n, f, P, L):
    out = np.empty(n, np.uint16)
    buf = np.frombuffer(data, np.uint8)
    kernels.rans_decode(buf, np.array([0]), np.array([buf.size]), np.array([n]),
                        np.asarray(f, np.int64), P, L, out)
    return out


def lane_sequences(seq, L, filler):
    """seq on lane 0 (t = 0, L, 2L, ...), `filler` on the other lanes, twice over."""
    out = []
    for s in seq + seq:
        out += [s] + [filler] * (L - 1)
    return out


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("L", [1, 3, 8])
def test_rans_state_exactly_on_the_bound(case, L):
    f, seq = CASES[case]
    P = 16
    assert sum(f) == 2 ** P
    sym = lane_sequences(seq, L, 2) if L > 1 else seq
    want, on_bound = spec_encode(sym, f, P, L)
    assert on_bound >= 1                      # the construction really reaches the bound
    got = kernel_encode(sym, f, P, L)
    assert got == want
    assert [int(s) for s in kernel_decode(want, len(sym), f, P, L)] == sym
    assert spec_decode(want, len(sym), f, P, L)[0] == sym


def test_rans_bound_inside_a_long_segment_of_a_real_alphabet():
    """Case A's prefix repeated inside a longer stream with more symbols, on all 8 lanes:
    every lane reaches the bound several times, kernel and spec agree on every byte."""
    f = [4, 16] + [2 ** 16 - 20 - 7 * 100] + [100] * 7
    assert sum(f) == 2 ** 16
    rng = np.random.default_rng(5)
    sym = []
    for _ in range(6):
        sym += lane_sequences(CASES["A"][1], 8, int(rng.integers(2, 10)))
    want, on_bound = spec_encode(sym, f, 16, 8)
    assert on_bound >= 8
    assert kernel_encode(sym, f, 16, 8) == want
    assert [int(s) for s in kernel_decode(want, len(sym), f, 16, 8)] == sym


# ---------------------------------------------------------------------- 2. thresholds

D = 64


def identity_plan(d):
    return (np.ones((1, d), np.float32), np.arange(d, dtype=np.int32)[None, :],
            np.array([[[0, 1]]], np.int64), np.ones((1, 1), np.float32))


def spec_unit(x):
    """Spec 11.2 in Python floats: mu, the ordered sum of squares, u = f32((x/mu)/rho)."""
    mu = max(abs(v) for v in x)
    ss = 0.0
    for v in x:
        ss += (v / mu) * (v / mu)
    rho = math.sqrt(ss)
    return np.array([(v / mu) / rho for v in x], np.float64).astype(np.float32)


def rows_hitting(targets):
    """One row per target t: an anchor 1.0 (the largest value), t * rho at coordinate 1
    and small fixed values elsewhere (squares summing to S), where
    rho = sqrt((1 + S) / (1 - t^2)) is the row's norm, so that the unit vector's coordinate
    1 is t (corrected by a binary64 unit or two where rounding says otherwise)."""
    rows = []
    for t in targets:
        t = float(t)
        x = np.zeros(D)
        x[2:] = np.linspace(-0.01, 0.01, D - 2)   # the other coordinates: somewhere inside
        rest = float(np.sum(x[2:] ** 2))
        rho = math.sqrt((1.0 + rest) / (1.0 - t * t))
        x[0], x[1] = 1.0, t * rho
        u = spec_unit(x)
        if u[1] != np.float32(t):                 # correct x[1] by a binary64 unit or two
            for k in range(1, 40):
                for cand in (t * rho * (1 + k * 2.0 ** -52), t * rho * (1 - k * 2.0 ** -52)):
                    x[1] = cand
                    u = spec_unit(x)
                    if u[1] == np.float32(t):
                        break
                if u[1] == np.float32(t):
                    break
        assert u[1] == np.float32(t) and np.signbit(u[1]) == np.signbit(np.float32(t)), t
        rows.append(x)
    return np.array(rows)


def around(thetas):
    """For each binary64 threshold: the largest float32 not above it (the threshold itself
    when it is a float32) and the next float32 above that."""
    out = []
    for th in thetas:
        a = np.float32(th)
        if float(a) > th:
            a = np.nextafter(a, np.float32(-np.inf))
        out += [a, np.nextafter(a, np.float32(np.inf))]
    return np.array(out, np.float32)


def spec_index(y, thetas):
    return sum(1 for th in thetas if th < float(y))


def unpack(codes, n, bits):
    """Spec 6: code t at stream bits t*q .. t*q+q-1, least significant first."""
    v = int.from_bytes(bytes(codes), "little")
    return [(v >> (t * bits)) & ((1 << bits) - 1) for t in range(n)]


@pytest.mark.parametrize("bits", [1, 2, 4, 5, 6, 8])
def test_packed_coordinate_on_a_threshold_goes_to_the_lower_cell(bits):
    h = make_header(D, bits)
    thr, table, cents = Codec(h).quantizer
    c = [float(v) for v in h.codebook]
    thetas = [(c[j] + c[j + 1]) * 0.5 for j in range(len(c) - 1)]   # spec 10.2
    targets = around(thetas)
    assert 0.0 in targets and 0.0 in thetas   # the middle threshold is exactly a float32
    targets = np.concatenate([targets, np.float32([-0.0])])
    x = rows_hitting(targets)
    n = x.shape[0]
    codes = np.zeros(-(-n * D * bits // 8), np.uint8)
    scales = np.empty(n)
    kernels.encode_mse(x, identity_plan(D), thr, table, cents, bits, 0, codes, scales)
    got = unpack(codes, n * D, bits)
    for r in range(n):
        u = spec_unit(x[r])
        want = [spec_index(v, thetas) for v in u]
        assert got[r * D:(r + 1) * D] == want, (bits, r, float(targets[r]))
    # the float32 on (or just below) each threshold is in the cell below it
    assert [got[r * D + 1] for r in range(0, n - 1, 2)] == list(range(len(thetas)))
    assert [got[r * D + 1] for r in range(1, n - 1, 2)] == list(range(1, len(thetas) + 1))
    assert got[(n - 1) * D + 1] == len(c) // 2 - 1     # -0.0 is on the middle threshold


def entropy_case(step, M):
    K = (M - 1) // 2
    thetas = [(j - K + 0.5) * step for j in range(M - 1)]           # spec 19.6, binary64
    return thetas


@pytest.mark.parametrize("source", ["tq-model", "dyadic-step"])
def test_entropy_coordinate_on_a_threshold_goes_to_the_lower_cell(source):
    if source == "tq-model":
        h = make_header(D, 2.5, coding="entropy")
        thr, _, cents = Codec(h).quantizer
        step, M = h.model.step, len(h.codebook)
    else:
        # a step whose thresholds are float32 values: coordinates exactly on them
        step, M = 2.0 ** -6, 41
        cents = (np.arange(M) - (M - 1) // 2).astype(np.float32) * np.float32(step)
        from tqcli.codec.codebook import float32_thresholds
        thr = float32_thresholds(np.array(entropy_case(step, M)))
    thetas = entropy_case(step, M)
    targets = around(thetas)
    if source == "dyadic-step":
        assert all(float(np.float32(th)) == th for th in thetas)
        assert [float(t) for t in targets[::2]] == thetas   # exactly on every threshold
    x = rows_hitting(targets)
    n = x.shape[0]
    symbols = np.empty(n * D, np.uint16)
    scales = np.empty(n)
    kernels.encode_symbols(x, identity_plan(D), np.asarray(thr, np.float32), step,
                           np.asarray(cents, np.float32), 0, symbols, scales)
    for r in range(n):
        u = spec_unit(x[r])
        want = [spec_index(v, thetas) for v in u]
        assert [int(s) for s in symbols[r * D:(r + 1) * D]] == want, (source, r)
    assert [int(symbols[r * D + 1]) for r in range(0, n, 2)] == list(range(M - 1))
    assert [int(symbols[r * D + 1]) for r in range(1, n, 2)] == list(range(1, M))
