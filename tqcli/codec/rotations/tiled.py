"""`tiled` (header code 2, the default for new files): rounds of sign flips, a permutation
and Walsh-Hadamard transforms on disjoint power-of-two tiles that cover [0, d)
(spec/tqz-v1.md section 8.6).

The tiles are the binary digits of d, largest first: d = 1032 gives [0, 1024) and
[1024, 1032); d = 768 gives [0, 512) and [512, 768).  No coordinate is transformed twice in
a round, so nothing a round does is undone by the same round (the weakness of
`hadamard2`, whose two blocks overlap almost entirely when d is a little above a power of
two), and the fresh permutation of the next round mixes the tiles with each other.  A
round costs d log2(d) additions at most (d a power of two, where the two kinds coincide),
less than hadamard2's 2 p log2(p) otherwise.  Signs and permutations are those of
hadamard2 (streams 2r and 2r + 1), so only the blocks differ.
"""

from __future__ import annotations

from .base import RotationKind, RotationPlan, seeded_rounds


def tiles(d: int) -> list[tuple[int, int]]:
    """(offset, size) of the tiles of d: its binary digits, largest first, end to end."""
    out, offset = [], 0
    for e in range(int(d).bit_length() - 1, -1, -1):
        if d >> e & 1:
            out.append((offset, 1 << e))
            offset += 1 << e
    return out


class Tiled(RotationKind):
    code = 2
    name = "tiled"
    summary = ("sign flips, a permutation, Walsh-Hadamard on disjoint power-of-two tiles "
               "covering [0, d) per round")

    def max_blocks(self, d: int) -> int:
        return bin(int(d)).count("1")

    def build(self, d: int, seed: int, rounds: int) -> RotationPlan:
        import numpy as np

        signs, perms = seeded_rounds(d, seed, rounds)
        layout = tiles(d)
        blocks = np.array([layout] * rounds, dtype=np.int64).reshape(rounds, len(layout), 2)
        sizes = np.array([size for _, size in layout], dtype=np.float64)
        row = (1.0 / np.sqrt(sizes)).astype(np.float32)
        scales = np.repeat(row[None, :], rounds, axis=0)
        return RotationPlan(d, rounds, signs, perms, blocks, scales)


TILED = Tiled()
