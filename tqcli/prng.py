"""SplitMix64 streams and what tq draws from them (spec/tqz-v1.md section 7).

Everything random in a .tqz file -- the rotation's signs and permutations, prod mode's
sketch -- is regenerated from the header's seed through these streams, with no library
random generator involved, so any implementation can rebuild it bit for bit.
"""

from __future__ import annotations

import numpy as np

# numpy uint64 scalars: numba reads a module global at compile time and types it from its
# value, and a plain Python int above 2**63 would not stay an unsigned 64-bit integer in
# every expression of the jitted generator (tqcli/kernels/gaussian.py), which must give the
# same stream as splitmix64 below, bit for bit
GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # the increment: output k mixes key + k * GOLDEN
MIX1 = np.uint64(0xBF58476D1CE4E5B9)    # multiplier after the first xor-shift (>> 30)
MIX2 = np.uint64(0x94D049BB133111EB)    # multiplier after the second xor-shift (>> 27)
MASK64 = (1 << 64) - 1

SKETCH_TAG = 1 << 32  # stream tag of the prod-mode sketch; rotation rounds use small tags


def splitmix64(key: int, start: int, count: int) -> np.ndarray:
    """Outputs start+1 .. start+count of SplitMix64 keyed by `key` (uint64 array).

    Output k is mix(key + k * GOLDEN mod 2**64), so any stretch of the stream can be
    produced directly, without running through the ones before it.
    """
    k = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    z = np.uint64(key & MASK64) + k * GOLDEN
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    return z ^ (z >> np.uint64(31))


def stream_key(seed: int, tag: int) -> int:
    """Key of the independent stream `tag` derived from the user's seed."""
    return int(splitmix64(seed, tag, 1)[0])


def sign_flips(seed: int, tag: int, d: int) -> np.ndarray:
    """d float32 signs: -1 where the top bit of the stream's output is set, else +1."""
    bits = splitmix64(stream_key(seed, tag), 0, d) >> np.uint64(63)
    return np.where(bits == 1, -1.0, 1.0).astype(np.float32)


def sort_permutation(seed: int, tag: int, d: int) -> np.ndarray:
    """The permutation that sorts d outputs of the stream (stable: ties by index), int32."""
    keys = splitmix64(stream_key(seed, tag), 0, d)
    return np.argsort(keys, kind="stable").astype(np.int32)
