"""The default rotation has no blind spots: for every d (powers of two and a little above,
3 * 2^k, primes) and every input family of tests/structured_inputs.py, tq's error at the
norm scale rule is the Lloyd-Max optimum on average over seeds 0-3 (issue 11's bounds:
within 3% for one-hot, sparse and dense rows, 6% for rows with a few huge channels).

Rows that share a few directions get one draw of the rotation's error for those
directions, so they are judged by the seed average; even a dense uniformly random rotation
varies by +-15% from one seed to the next on them at d near 128 (bench/rotation_quality.py
shows one beside tq's), so that an average of four draws misses 6% by chance about one
time in six.  For those rows the test averages seeds 0-15, which keeps the 6% bound and
makes it a property of the rotation rather than of four draws.  hadamard2, tq 1.0's kind, is shown to fail the same bounds, so the test can
tell the two apart.
"""

from __future__ import annotations

import numpy as np
import pytest

import tqcli
from structured_inputs import error_ratio, family_rows
from tqcli.codec.rotations import DEFAULT as DEFAULT_ROTATION

DIMS = (128, 129, 136, 192, 257, 576, 1000, 1031, 1032, 1536, 2056, 3072, 4104)
BOUNDS = {"one-hot": 0.03, "sparse": 0.03, "dense": 0.03, "channels": 0.06}
ROWS = 256
SEEDS = {"channels": range(16)}  # the others: seeds 0-3, as the README's table


def seed_average(rotation: str, family: str, d: int, bits: int) -> float:
    x = family_rows(family, d, ROWS, np.random.default_rng(d))
    ratios = []
    for seed in SEEDS.get(family, range(4)):
        blob = tqcli.compress(x, bits=bits, seed=seed, scale_rule="norm", rotation=rotation)
        ratios.append(error_ratio(x, tqcli.decompress(blob), bits))
    return float(np.mean(ratios))


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("family", sorted(BOUNDS))
def test_tiled_reaches_the_optimum_for_every_family_and_d(family, bits):
    assert DEFAULT_ROTATION == "tiled"
    got = {d: seed_average("tiled", family, d, bits) for d in DIMS}
    bad = {d: round(r, 4) for d, r in got.items() if abs(r - 1.0) > BOUNDS[family]}
    assert not bad, f"{family} b={bits}: seed-averaged error / optimum out of bounds: {bad}"


@pytest.mark.parametrize("d", [130, 1032, 2056])
def test_hadamard2_has_the_blind_spots_tiled_removes(d):
    """One-hot rows at d a little above a power of two: tq 1.0's kind is several times
    the optimum (the figures of issue 11), the new one within 3%."""
    old = seed_average("hadamard2", "one-hot", d, 3)
    new = seed_average("tiled", "one-hot", d, 3)
    assert old > 3.0 and abs(new - 1.0) < 0.03, (old, new)


def test_tiled_and_hadamard2_agree_at_powers_of_two():
    """With one tile the two kinds are one rotation: same plan, same decoded values."""
    x = family_rows("dense", 256, 16, np.random.default_rng(0))
    a = tqcli.compress(x, rotation="tiled", seed=3)
    b = tqcli.compress(x, rotation="hadamard2", seed=3)
    assert a != b  # the header names the kind
    assert np.array_equal(tqcli.decompress(a), tqcli.decompress(b))
