"""The decoders: unpack, look up centroids (plus the prod-mode correction), rotate back, scale.

Like the encoder, each lane follows spec/tqz-v1.md's roundings exactly; tqcli/codec/reference.py
is the same in numpy.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .groups import axpy8, group_rows, group_count, task_groups, unpack_group
from .lanes import LANES, store_scaled8
from .rotate import rotate_inverse_lanes


@njit(cache=True)
def _store_lanes(t, scales, r0, rows, out):
    """out rows r0.. <- scale * lane; a zero scale gives exact +0.0 (whatever the lane).
    A full group is written 8 x 8 blocks at a time (lanes.store_scaled8, the same
    products), then the last d mod 8 columns and the zero-scale rows one value at a time."""
    d = out.shape[1]
    if rows == LANES:
        d8 = d - d % LANES
        for i in range(0, d8, LANES):
            store_scaled8(t, i, scales, r0, out)
        for l in range(LANES):
            s = scales[r0 + l]
            row = out[r0 + l]
            if s != 0:
                for i in range(d8, d):
                    row[i] = s * t[i * LANES + l]
            else:
                row[:] = 0.0
        return
    for l in range(rows):
        s = scales[r0 + l]
        row = out[r0 + l]
        if s != 0:
            for i in range(d):
                row[i] = s * t[i * LANES + l]
        else:
            row[:] = 0.0


@njit(cache=True)
def _centroids_lanes(codes8, cents, d, t):
    """Lane-interleaved t <- the centroids of the group's row-major codes."""
    for l in range(LANES):
        src = codes8[l]
        for i in range(d):
            t[i * LANES + l] = cents[src[i]]


@njit(cache=True, inline="always")
def _mse_group(codes, scales, g, n, t, tmp, codes8, signs, perms, blocks, block_scales,
               cents, bits, out):
    d = out.shape[1]
    r0, rows = group_rows(g, n)
    unpack_group(codes, g * d * bits, codes.shape[0], d, bits, codes8)
    _centroids_lanes(codes8, cents, d, t)
    y = rotate_inverse_lanes(t, tmp, signs, perms, blocks, block_scales)
    _store_lanes(y, scales, r0, rows, out)


@njit(cache=True, nogil=True)
def decode_mse_kernel(codes, scales, signs, perms, blocks, block_scales, cents, bits, out,
                      task0, task1):
    """mse mode over all rows of out (see kernels.decode_mse)."""
    n, d = out.shape
    ngroups = group_count(n)
    for task in range(task0, task1):
        t = np.empty(d * LANES, np.float32)
        tmp = np.empty(d * LANES, np.float32)
        codes8 = np.empty((LANES, d), np.uint8)
        g0, g1 = task_groups(task, ngroups)
        for g in range(g0, g1):
            _mse_group(codes, scales, g, n, t, tmp, codes8, signs, perms, blocks,
                       block_scales, cents, bits, out)


@njit(cache=True, inline="always")
def _decode_prod_scratch(d):
    """One task's buffers: t, tmp (the group and the rotation's second buffer),
    the correction S^T q and the signs q (lane-interleaved), row-major codes and signs,
    and the per-lane correction factors."""
    return (np.empty(d * LANES, np.float32), np.empty(d * LANES, np.float32),
            np.empty(d * LANES, np.float32), np.empty(d * LANES, np.float32),
            np.zeros((LANES, d), np.uint8), np.empty((LANES, d), np.uint8),
            np.zeros(LANES, np.float32))


@njit(cache=True, inline="always")
def _prod_group(codes, qbits, scales, gammas, g, n, scratch, signs, perms, blocks,
                block_scales, cents, bits, sketch, out):
    t, tmp, corr, q, codes8, q8, kk = scratch
    d = out.shape[1]
    r0, rows = group_rows(g, n)
    coef = math.sqrt(math.pi / 2.0) / d
    unpack_group(qbits, g * d, qbits.shape[0], d, np.int64(1), q8)  # typed: no literal specialisation
    for l in range(LANES):
        for i in range(d):
            q[i * LANES + l] = 1.0 if q8[l, i] else -1.0
    corr[:] = 0.0
    for i in range(d):
        qi = q[i * LANES:(i + 1) * LANES]
        for j in range(d):
            axpy8(corr, j * LANES, sketch[i, j], qi)
    for l in range(rows):
        kk[l] = np.float32(coef * np.float64(gammas[r0 + l]))
    if bits > 0:
        unpack_group(codes, g * d * bits, codes.shape[0], d, bits, codes8)
        _centroids_lanes(codes8, cents, d, t)
    else:
        t[:] = 0.0
    for i in range(d):
        for l in range(LANES):
            e = i * LANES + l
            t[e] = t[e] + kk[l] * corr[e]
    y = rotate_inverse_lanes(t, tmp, signs, perms, blocks, block_scales)
    _store_lanes(y, scales, r0, rows, out)


@njit(cache=True, nogil=True)
def decode_prod_kernel(codes, qbits, scales, gammas, signs, perms, blocks, block_scales,
                       cents, bits, sketch, out, task0, task1):
    """prod mode over all rows of out (see kernels.decode_prod)."""
    n, d = out.shape
    ngroups = group_count(n)
    for task in range(task0, task1):
        scratch = _decode_prod_scratch(d)
        g0, g1 = task_groups(task, ngroups)
        for g in range(g0, g1):
            _prod_group(codes, qbits, scales, gammas, g, n, scratch, signs, perms, blocks,
                        block_scales, cents, bits, sketch, out)
