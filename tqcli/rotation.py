"""The seeded, data-oblivious rotation and the prod-mode sketch, regenerated from (d, seed).

Everything here is defined bit for bit in spec/tqz-v1.md so that another implementation can
rebuild the same transform: a SplitMix64 generator, sign flips, permutations by sorting
random keys, and normalised Walsh-Hadamard transforms on two overlapping power-of-two blocks.
No LAPACK call and no library random generator is involved.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .prng import GOLDEN as _GOLDEN, MIX1 as _MIX1, MIX2 as _MIX2

MASK64 = (1 << 64) - 1

SKETCH_TAG = 1 << 32  # stream tag of the prod-mode sketch; rotation rounds use tags 2r, 2r+1


def splitmix64(key: int, start: int, count: int) -> np.ndarray:
    """Outputs start+1 .. start+count of SplitMix64 keyed by `key` (uint64 array).

    Output k is mix(key + k * 0x9E3779B97F4A7C15 mod 2**64), so any stretch of the stream
    can be produced directly, without running through the ones before it.
    """
    k = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    z = np.uint64(key & MASK64) + k * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def stream_key(seed: int, tag: int) -> int:
    """Key of the independent stream `tag` derived from the user's seed."""
    return int(splitmix64(seed, tag, 1)[0])


def largest_power_of_two(d: int) -> int:
    return 1 << (int(d).bit_length() - 1)


@dataclass(frozen=True)
class Rotation:
    """R rounds of t <- H2 H1 (signs * t[perm]); H1, H2 act on [0, p) and [d-p, d)."""

    d: int
    rounds: int
    signs: np.ndarray  # (rounds, d) float32, +-1
    perms: np.ndarray  # (rounds, d) int32
    block: int         # p, the largest power of two <= d
    block_scale: np.float32  # float32 nearest to 1/sqrt(p)

    def matrix(self) -> np.ndarray:
        """The rotation as a dense float64 matrix (for tests and analysis only)."""
        from .reference import rotate_forward

        return rotate_forward(np.eye(self.d, dtype=np.float32), self).T.astype(np.float64)


@functools.lru_cache(maxsize=64)
def make_rotation(d: int, seed: int, rounds: int) -> Rotation:
    signs = np.empty((rounds, d), dtype=np.float32)
    perms = np.empty((rounds, d), dtype=np.int32)
    for r in range(rounds):
        bits = splitmix64(stream_key(seed, 2 * r), 0, d) >> np.uint64(63)
        signs[r] = np.where(bits == 1, -1.0, 1.0)
        keys = splitmix64(stream_key(seed, 2 * r + 1), 0, d)
        perms[r] = np.argsort(keys, kind="stable")
    for arr in (signs, perms):
        arr.setflags(write=False)
    p = largest_power_of_two(d)
    return Rotation(d, rounds, signs, perms, p, np.float32(1.0 / np.sqrt(np.float64(p))))


def hadamard2_plan(rot: Rotation) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The rotation as the kernels' data: (signs, perms, blocks, block_scales).

    Every round of hadamard2 has the same two Hadamard blocks, [0, p) then [d-p, d) (they
    overlap unless p == d, when the second slot is padding of size 0), both scaled by the
    float32 nearest 1/sqrt(p).  The arrays are read-only, like the rotation's own tables.
    """
    blocks = np.zeros((rot.rounds, 2, 2), np.int64)
    blocks[:, 0] = (0, rot.block)
    if rot.block < rot.d:
        blocks[:, 1] = (rot.d - rot.block, rot.block)
    scales = np.full((rot.rounds, 2), rot.block_scale, np.float32)
    for arr in (blocks, scales):
        arr.setflags(write=False)
    return rot.signs, rot.perms, blocks, scales


@functools.lru_cache(maxsize=8)
def make_sketch(d: int, seed: int) -> np.ndarray:
    """The d x d matrix of i.i.d. N(0, 1) float32 entries used by prod mode (row-major)."""
    from .kernels import gaussian_fill

    out = np.empty(d * d, dtype=np.float32)
    gaussian_fill(np.uint64(stream_key(seed, SKETCH_TAG)), out)
    out = out.reshape(d, d)
    out.setflags(write=False)
    return out
