"""bfloat16 narrowing rounds once (spec 1 and 12): from binary64 or binary32 directly to 8
significant bits, round to nearest, ties to even, saturating at the largest finite
bfloat16.  Every expected pattern here is computed in exact rational arithmetic (Fraction)
from the value, not by the function under test; the inputs sit on and next to the rounding
boundaries, where going through float32 first (rounding twice) gives a different answer.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from tqcli.arrayio import bf16

MAX_BF16 = (2 - Fraction(1, 2 ** 7)) * 2 ** 127   # (2 - 2^-7) 2^127, pattern 0x7F7F
MIN_NORMAL = Fraction(1, 2 ** 126)
SUB_STEP = Fraction(1, 2 ** 133)                   # spacing of bfloat16 subnormals


def _round_half_even(q: Fraction) -> int:
    n = q.numerator // q.denominator              # floor
    rest = q - n
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2):
        n += 1
    return n


def expected_bits(v: float) -> int:
    """The bfloat16 pattern of v: round to nearest even on 8 significant bits (binary32's
    exponent range, subnormals on a grid of 2^-133), saturating at +-MAX; exact."""
    sign = 0x8000 if (v < 0 or (v == 0 and np.signbit(v))) else 0
    a = abs(Fraction(v))
    if a >= MAX_BF16:
        return sign | 0x7F7F
    if a < MIN_NORMAL:
        n = _round_half_even(a / SUB_STEP)        # 0 .. 128 (128 is the smallest normal)
        return sign | n
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1                                    # 2^e <= a < 2^(e+1)
    quantum = Fraction(2) ** (e - 7)
    n = _round_half_even(a / quantum)             # 128 .. 256
    if n == 256:
        n, e = 128, e + 1
    r = n * quantum
    if r > MAX_BF16:                              # cannot happen below MAX, kept for clarity
        return sign | 0x7F7F
    return sign | ((e + 127) << 7) | (n - 128)


def bf16_value(bits: int) -> Fraction:
    """The exact value of a (finite, positive) bfloat16 pattern."""
    e, m = bits >> 7 & 0xFF, bits & 0x7F
    if e == 0:
        return m * SUB_STEP
    return (128 + m) * Fraction(2) ** (e - 127 - 7)


def boundary_values() -> list[float]:
    """Values on, just below and just above the midpoints between neighbouring bfloat16
    values, for normal, subnormal and near-maximal magnitudes, both signs; the 'just'
    offsets are far below float32's resolution there, so float32 would round them onto
    the midpoint (a tie) first."""
    bases = [0x3F80, 0x3F81, 0x3F82, 0x3F83, 0x4000, 0x4001, 0x7F7D, 0x7F7E,
             0x0080, 0x0081, 0x007F, 0x007E, 0x0001, 0x0002, 0x0000, 0x0040, 0x3C00,
             0x0100, 0x00FF]
    out = []
    for b in bases:
        lo, hi = bf16_value(b), bf16_value(b + 1)
        mid = (lo + hi) / 2
        tiny = (hi - lo) / 2 ** 30                 # exact in binary64, lost in binary32
        for v in (mid, mid - tiny, mid + tiny, lo + (hi - lo) / 4, lo + 3 * (hi - lo) / 4, lo):
            f = float(v)
            assert Fraction(f) == v                # every input is exact in binary64
            out += [f, -f]
    return out


def test_the_issue_case_rounds_once():
    v = 1.0 + 2.0 ** -8 + 2.0 ** -40
    assert expected_bits(v) == 0x3F81
    assert int(bf16.f32_to_bits(np.array([v]))[0]) == 0x3F81
    # and just below the next midpoint, whose float32 rounding would be the tie
    w = 1.0 + 2.0 ** -7 + 2.0 ** -8 - 2.0 ** -40
    assert expected_bits(w) == 0x3F81
    assert int(bf16.f32_to_bits(np.array([w]))[0]) == 0x3F81


def test_exact_ties_go_to_even():
    cases = {1.0 + 2.0 ** -8: 0x3F80,              # between 0x3F80 (even) and 0x3F81
             1.0 + 3 * 2.0 ** -8: 0x3F82,          # between 0x3F81 and 0x3F82 (even)
             -(1.0 + 2.0 ** -8): 0xBF80,
             -(1.0 + 3 * 2.0 ** -8): 0xBF82,
             2.0 ** -134: 0x0000,                  # half the smallest subnormal: to 0
             3 * 2.0 ** -134: 0x0002,              # 1.5 subnormal steps: to 2
             -(2.0 ** -134): 0x8000,               # a negative value rounded to zero: -0
             2.0 ** -126 - 2.0 ** -134: 0x0080}    # between 0x007F and 0x0080 (even)
    got = bf16.f32_to_bits(np.array(list(cases), np.float64))
    for (v, want), g in zip(cases.items(), got):
        assert expected_bits(v) == want, v
        assert int(g) == want, (v.hex(), hex(int(g)), hex(want))


@pytest.mark.parametrize("source", ["float64", "float32"])
def test_boundary_values_match_exact_rounding(source):
    vals = np.array(boundary_values(), np.float64)
    if source == "float32":
        # a binary32 input is rounded once from its own value (spec 12: u + 0x7FFF + ...)
        vals = vals.astype(np.float32)
    got = bf16.f32_to_bits(vals)
    want = [expected_bits(float(v)) for v in vals]
    bad = [(float(v).hex(), hex(int(g)), hex(w)) for v, g, w in zip(vals, got, want)
           if int(g) != w]
    assert not bad, bad[:10]


def test_values_near_and_beyond_the_largest_finite_saturate():
    mx = float(MAX_BF16)
    half_ulp = 2.0 ** 119                          # half the spacing at the top binade
    vals = [mx, mx + half_ulp / 2, mx + half_ulp, mx + 2 * half_ulp, 1e300, mx - half_ulp,
            mx - half_ulp - 2.0 ** 90, mx - half_ulp + 2.0 ** 90, 3.4e38, float(2.0 ** 128)]
    vals += [-v for v in vals]
    got = bf16.f32_to_bits(np.array(vals, np.float64))
    for v, g in zip(vals, got):
        assert int(g) == expected_bits(v), (v, hex(int(g)), hex(expected_bits(v)))
    assert [int(g) for g in got[:5]] == [0x7F7F] * 5
    assert int(got[6]) == 0x7F7E and int(got[7]) == 0x7F7F  # below / above that midpoint


def test_random_binary64_values_with_long_tails():
    """Values with bits set far below float32's resolution, over the whole exponent range."""
    rng = np.random.default_rng(26)
    m = rng.integers(1 << 52, 1 << 53, 4000, dtype=np.int64).astype(np.float64) / 2.0 ** 52
    e = rng.integers(-140, 128, 4000)
    vals = np.ldexp(m, e) * np.where(rng.random(4000) < 0.5, -1.0, 1.0)
    # force about half of them onto a bfloat16 midpoint plus or minus one binary64 unit
    mid = rng.random(4000) < 0.5
    q = np.ldexp(np.floor(np.ldexp(m, 7)) + 0.5, -7)  # midpoints of 8 significant bits * np.where(vals < 0, -1.0, 1.0)
    near = np.ldexp(q, e)
    near = np.where(rng.random(4000) < 0.5, np.nextafter(near, np.inf), np.nextafter(near, -np.inf))
    vals = np.where(mid & (np.abs(e) < 120), near, vals)
    got = bf16.f32_to_bits(vals)
    bad = [(float(v).hex(), hex(int(g)), hex(expected_bits(float(v))))
           for v, g in zip(vals, got) if int(g) != expected_bits(float(v))]
    assert not bad, bad[:10]
