"""`hadamard2` (header code 1): rounds of sign flips, a permutation and two overlapping
Walsh-Hadamard blocks (spec/tqz-v1.md section 8).

Round r draws its signs from SplitMix64 stream 2r and its permutation (a stable sort of
the outputs of stream 2r+1) and applies normalised Walsh-Hadamard transforms on
[0, p) and then, when p < d, on [d-p, d), p the largest power of two <= d.  When d is a
little above a power of two the two blocks overlap almost entirely, and H H = I, so the
second largely undoes the first; tq 1.0 wrote every file with this kind, and it stays in
the reader and the spec.
"""

from __future__ import annotations

from .base import RotationKind, RotationPlan, seeded_rounds


def largest_power_of_two(d: int) -> int:
    return 1 << (int(d).bit_length() - 1)


class Hadamard2(RotationKind):
    code = 1
    name = "hadamard2"
    summary = "sign flips, a permutation, Walsh-Hadamard on [0, p) and [d-p, d) per round"

    def max_blocks(self, d: int) -> int:
        return 2

    def build(self, d: int, seed: int, rounds: int) -> RotationPlan:
        import numpy as np

        signs, perms = seeded_rounds(d, seed, rounds)
        p = largest_power_of_two(d)
        scale = np.float32(1.0 / np.sqrt(np.float64(p)))
        blocks = np.zeros((rounds, 2, 2), dtype=np.int64)
        scales = np.zeros((rounds, 2), dtype=np.float32)
        blocks[:, 0] = (0, p)
        scales[:, 0] = scale
        if p < d:
            blocks[:, 1] = (d - p, p)
            scales[:, 1] = scale
        return RotationPlan(d, rounds, signs, perms, blocks, scales)


HADAMARD2 = Hadamard2()
