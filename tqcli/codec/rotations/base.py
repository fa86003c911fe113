"""What a rotation kind is: a seeded, data-oblivious orthogonal transform, given as a plan.

The kernels do not know rotation kinds.  They interpret a *plan*: for each round r, the
sign flip and permutation `t <- signs[r] * t[perms[r]]`, followed by normalised
Walsh-Hadamard transforms on the blocks `blocks[r, k] = (offset, size)` in order k = 0,
1, ..., each multiplied by `scales[r, k]` (slots of size 0 are unused).  The inverse runs
the rounds and their blocks backwards and undoes each sign-permutation.  A kind is thus a
function from (d, seed, rounds) to a plan, defined bit for bit in spec/tqz-v1.md; the
fused encode and decode kernels (tqcli/kernels) and the plain-numpy reference
(tqcli/codec/reference.py) serve every kind.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True, eq=False)
class RotationPlan:
    """The arrays the kernels interpret (see the module docstring); read-only."""

    d: int
    rounds: int
    signs: object   # float32 (rounds, d), +-1
    perms: object   # int32 (rounds, d)
    blocks: object  # int64 (rounds, k, 2): (offset, size) of each Hadamard block
    scales: object  # float32 (rounds, k): float32 nearest 1/sqrt(size)

    @property
    def kernel_args(self) -> tuple:
        """(signs, perms, blocks, scales), the plan as the kernels take it."""
        return self.signs, self.perms, self.blocks, self.scales

    @property
    def table_bytes(self) -> int:
        return sum(a.nbytes for a in self.kernel_args)

    def matrix(self):
        """The rotation as a dense float64 matrix (for tests and analysis only)."""
        import numpy as np

        from ..reference import rotate_forward

        return rotate_forward(np.eye(self.d, dtype=np.float32), self).T.astype(np.float64)


class RotationKind:
    """One entry of the rotation table (tqcli/codec/rotations/__init__.py).

    A subclass sets `code` (the header's `rotation` byte), `name`, `summary` (one line for
    `tq inspect` and the docs) and implements `build`.  `rounds` is the header's rounds field.
    """

    code: int
    name: str
    summary: str

    def build(self, d: int, seed: int, rounds: int) -> RotationPlan:
        raise NotImplementedError

    def plan(self, d: int, seed: int, rounds: int) -> RotationPlan:
        """The plan for (d, seed, rounds), built once and kept (a few per process)."""
        return _cached_plan(self, d, seed, rounds)

    def plan_bytes(self, d: int, rounds: int) -> int:
        """Memory a decoder spends on the plan, known from the header alone: signs and
        permutations of every round, and the block tables."""
        return rounds * d * 8 + rounds * self.max_blocks(d) * 20

    def max_blocks(self, d: int) -> int:
        """Hadamard blocks per round at most (the plan's second axis)."""
        raise NotImplementedError

    def rotate(self, plan: RotationPlan, x, inverse: bool = False):
        """float32 rows of x rotated (a copy) by the kernels that encode and decode use."""
        import numpy as np

        from ... import kernels

        y = np.array(x, dtype=np.float32, order="C", copy=True)
        kernels.rotate_rows(y, plan.kernel_args, inverse)
        return y

    def reference_rotate(self, plan: RotationPlan, x, inverse: bool = False):
        """The same in plain numpy (tqcli/codec/reference.py), for tests to compare bit for bit."""
        from .. import reference

        return (reference.rotate_inverse if inverse else reference.rotate_forward)(x, plan)

    def __repr__(self) -> str:
        return f"<rotation kind {self.name} ({self.code})>"


def seeded_rounds(d: int, seed: int, rounds: int):
    """The sign flips (float32, stream 2r) and permutations (int32, a stable sort of stream
    2r + 1) of rounds r = 0 .. rounds-1 (spec/tqz-v1.md section 8.1), shared by the kinds."""
    import numpy as np

    from ...prng import sign_flips, sort_permutation

    signs = np.empty((rounds, d), dtype=np.float32)
    perms = np.empty((rounds, d), dtype=np.int32)
    for r in range(rounds):
        signs[r] = sign_flips(seed, 2 * r, d)
        perms[r] = sort_permutation(seed, 2 * r + 1, d)
    return signs, perms


@functools.lru_cache(maxsize=64)
def _cached_plan(kind: RotationKind, d: int, seed: int, rounds: int) -> RotationPlan:
    plan = kind.build(d, seed, rounds)
    for a in plan.kernel_args:
        a.setflags(write=False)
    return plan
