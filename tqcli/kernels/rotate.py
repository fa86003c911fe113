"""The rotation on 8 lanes, interpreted from its plan: sign-permutations and Hadamard blocks.

A plan is four arrays (see tqcli/kernels/__init__.py): per round r, signs[r] and perms[r],
then Hadamard blocks blocks[r, k] = (offset, size), k = 0..K-1, each normalised by
block_scales[r, k] (size 0: an unused slot).  The forward round is

    t <- signs[r] * t[perms[r]];  for k = 0..K-1: t[off:off+size] <- scale * H t[off:off+size]

and the inverse runs the rounds backwards, the blocks of a round backwards, and then
t[perms[r]] <- signs[r] * t.  Every transform is the stage-by-stage Walsh-Hadamard
butterfly order of spec/tqz-v1.md, so any rotation kind that is such a plan is computed
bit for bit as tqcli/codec/reference.py computes it.

Two moves are fused when the plan allows, to save a pass over the group: a block k = 0 at
offset 0 of size >= 16 reads the permuted, sign-flipped rows in its first radix-8
butterflies (forward), and writes them permuted in its last butterflies (inverse, size
>= 2); the rows outside that block are then moved on their own.  Otherwise the
sign-permutation is a separate pass.  The results are the same bits either way.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .groups import group_count, group_rows, task_groups
from .lanes import (LANES, butterfly2_scaled, butterfly2_scaled_out, butterfly4, butterfly4_scaled, butterfly4_scaled_out, butterfly8, butterfly8_in, butterfly8_scaled, butterfly8_scaled_out, move_row)

_NO_PERM = np.zeros(1, np.int32)      # placeholders for the permutation arguments of a
_NO_SIGNS = np.ones(1, np.float32)    # transform that moves no rows


@njit(cache=True, inline="always")
def _fwht_lanes(t, off, p, scale):
    """Normalised Walsh-Hadamard transform of coordinates off..off+p-1 of all 8 lanes.

    Stages h = 1, 2, 4, ... run three at a time (two or one for the remainder); the last
    stage multiplies by the scale.  The additions are those of the stage-by-stage order.
    """
    _fwht_stages(t, off, p, scale, np.int64(1), t, _NO_PERM, _NO_SIGNS, np.bool_(False))


@njit(cache=True)
def _fwht_stages(t, off, p, scale, h, dst, perm, signs, scatter):
    """Stages h, 2h, ... of the transform of coordinates off..off+p-1 (see _fwht_lanes).
    With `scatter`, the last pass writes its rows permuted into dst (moved="out" in
    lanes._butterfly_intrinsic)."""
    while h < p:
        if 8 * h <= p:
            radix = 8
        elif 4 * h <= p:
            radix = 4
        else:
            radix = 2
        last = radix * h == p
        run = h * LANES
        for i in range(off, off + p, radix * h):
            a0 = i * LANES
            for k in range(a0, a0 + run, LANES):
                if last and scatter:
                    if radix == 8:
                        butterfly8_scaled_out(t, k, run, scale, dst, perm, signs)
                    elif radix == 4:
                        butterfly4_scaled_out(t, k, run, scale, dst, perm, signs)
                    else:
                        butterfly2_scaled_out(t, k, run, scale, dst, perm, signs)
                elif radix == 8:
                    if last:
                        butterfly8_scaled(t, k, run, scale, t, perm, signs)
                    else:
                        butterfly8(t, k, run, scale, t, perm, signs)
                elif radix == 4:
                    if last:
                        butterfly4_scaled(t, k, run, scale, t, perm, signs)
                    else:
                        butterfly4(t, k, run, scale, t, perm, signs)
                else:
                    butterfly2_scaled(t, k, run, scale, t, perm, signs)
        h *= radix



@njit(cache=True)
def _permute_lanes(src, dst, signs_r, perm_r, inverse):
    """dst[i] = s_i * src[perm_i] (forward) or dst[perm_i] = s_i * src[i] (inverse), 8 lanes.

    Multiplying by +-1 only sets the sign bit, so each row of 8 floats moves as a vector
    of integers XORed with the sign mask: the same bits as the float multiplication.
    """
    d = perm_r.shape[0]
    for i in range(d):
        neg = signs_r[i] < 0
        if inverse:
            move_row(src, i, dst, perm_r[i], neg)
        else:
            move_row(src, perm_r[i], dst, i, neg)



@njit(cache=True)
def rotate_forward_lanes(t, tmp, signs, perms, blocks, block_scales):
    """Forward rotation of the 8 lanes of t (flat, d * 8) by the plan; returns the buffer
    holding the result (t or tmp: the rounds alternate between the two)."""
    rounds, d = signs.shape
    nblocks = blocks.shape[1]
    src, dst = t, tmp
    for r in range(rounds):
        sr, pr = signs[r], perms[r]
        size0 = blocks[r, 0, 1]
        first = 0
        if blocks[r, 0, 0] == 0 and size0 >= 16:
            # the permutation is read by the first butterflies of block 0; the rows after
            # it are moved on their own
            scale0 = block_scales[r, 0]
            for i in range(0, size0 * LANES, 8 * LANES):
                butterfly8_in(src, i, LANES, scale0, dst, pr, sr)
            for i in range(size0, d):
                move_row(src, pr[i], dst, i, sr[i] < 0)
            _fwht_stages(dst, np.int64(0), size0, scale0, np.int64(8), dst, pr, sr, np.bool_(False))
            first = 1
        else:
            _permute_lanes(src, dst, sr, pr, np.bool_(False))
        for k in range(first, nblocks):
            if blocks[r, k, 1] > 0:
                _fwht_lanes(dst, blocks[r, k, 0], blocks[r, k, 1], block_scales[r, k])
        src, dst = dst, src
    return src


@njit(cache=True)
def rotate_inverse_lanes(t, tmp, signs, perms, blocks, block_scales):
    """Inverse rotation by the plan; like the forward one it returns the buffer holding
    the result."""
    rounds, d = signs.shape
    nblocks = blocks.shape[1]
    src, dst = t, tmp
    for r in range(rounds - 1, -1, -1):
        sr, pr = signs[r], perms[r]
        size0 = blocks[r, 0, 1]
        fused = blocks[r, 0, 0] == 0 and size0 >= 2
        for k in range(nblocks - 1, 0 if fused else -1, -1):
            if blocks[r, k, 1] > 0:
                _fwht_lanes(src, blocks[r, k, 0], blocks[r, k, 1], block_scales[r, k])
        if fused:
            # the last butterflies of block 0 write their rows permuted; the rows after
            # it are moved on their own
            _fwht_stages(src, np.int64(0), size0, block_scales[r, 0], np.int64(1), dst, pr, sr,
                         np.bool_(True))
            for i in range(size0, d):
                move_row(src, i, dst, pr[i], sr[i] < 0)
        else:
            _permute_lanes(src, dst, sr, pr, np.bool_(True))
        src, dst = dst, src
    return src


@njit(cache=True, nogil=True)
def rotate_rows_kernel(x, signs, perms, blocks, block_scales, inverse, task0, task1):
    """Rotate every row of float32 `x` in place (the rotation on its own, for tests)."""
    n, d = x.shape
    ngroups = group_count(n)
    for task in range(task0, task1):
        t = np.empty(d * LANES, np.float32)
        tmp = np.empty(d * LANES, np.float32)
        g0, g1 = task_groups(task, ngroups)
        for g in range(g0, g1):
            r0, rows = group_rows(g, n)
            t[:] = 0.0
            for l in range(rows):
                for i in range(d):
                    t[i * LANES + l] = x[r0 + l, i]
            if inverse:
                y = rotate_inverse_lanes(t, tmp, signs, perms, blocks, block_scales)
            else:
                y = rotate_forward_lanes(t, tmp, signs, perms, blocks, block_scales)
            for l in range(rows):
                for i in range(d):
                    x[r0 + l, i] = y[i * LANES + l]
