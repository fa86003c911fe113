"""The adaptive coding's kernels (spec section 21): projection onto the stored basis with
quantisation to cell indices, and reconstruction from cell indices.

Both keep spec 21.5's order of roundings exactly: every sum is binary64, term by term in
index order, with a multiplication and an addition (no fused multiply-add, no
reassociation); the loops run across independent outputs so that the compiler can use
SIMD lanes without reordering a sum.  tqcli/codec/reference_adaptive.py is the same in
numpy; tests/test_adaptive.py compares them bit for bit.

Drivers take (..., task0, task1) and handle rows [64 task0, 64 task1), so
kernels._run_task_range spreads them over threads; every row is written by one task,
whatever the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit

TASK_ROWS = 64
BLOCK = 4  # rows reconstructed together (TASK_ROWS is a multiple)


@njit(cache=True, nogil=True)
def project_kernel(x, basis_t, step, halves, comp_class, index, task0, task1):
    """index[r, j] = clamp(floor(y_j / step + 1/2), -K, K) + K with y_j = sum_t x[r, t]
    basis_t[t, j] (binary64, in t order; basis_t is the stored basis transposed, binary32)
    and K = halves[comp_class[j]]: the cells of each row of x (binary64, centred), uint16."""
    n, d = x.shape
    k = basis_t.shape[1]
    acc = np.empty(k, np.float64)
    r0 = task0 * TASK_ROWS
    r1 = min(n, task1 * TASK_ROWS)
    for r in range(r0, r1):
        acc[:] = 0.0
        for t in range(d):
            v = x[r, t]
            row = basis_t[t]
            for j in range(k):
                acc[j] += v * np.float64(row[j])
        for j in range(k):
            half = halves[comp_class[j]]
            q = np.floor(acc[j] / step + 0.5)
            if q < -half:
                q = -half
            elif q > half:
                q = half
            elif not (q == q):  # NaN: refused by the caller before; keep the middle
                q = 0.0
            index[r, j] = np.uint16(np.int64(q) + half)


@njit(cache=True, nogil=True)
def reconstruct_kernel(index, codebook, offsets, comp_class, basis, scale, out, task0, task1):
    """out[r, t] = float32(scale[r] (sum_j c_j basis[j, t])) (binary64: the sum in j order,
    then one product; scale 1 leaves the sum's bits), c_j =
    codebook[offsets[comp_class[j]] + index[r, j]] (binary32 widened): the decoded rows
    before the centre is added.  Indices are checked by the caller (below each class's M).
    BLOCK rows at a time, so that each basis row is read once per block (the order of every
    sum is unchanged)."""
    n, d = out.shape
    k = basis.shape[0]
    acc = np.empty((BLOCK, d), np.float64)
    r0 = task0 * TASK_ROWS
    r1 = min(n, task1 * TASK_ROWS)
    for a in range(r0, r1, BLOCK):
        m = min(BLOCK, r1 - a)
        acc[:m] = 0.0
        for j in range(k):
            b = basis[j]
            base = offsets[comp_class[j]]
            for i in range(m):
                c = np.float64(codebook[base + index[a + i, j]])
                row = acc[i]
                for t in range(d):
                    row[t] += c * np.float64(b[t])
        for i in range(m):
            s = scale[a + i]
            for t in range(d):
                out[a + i, t] = acc[i, t] * s
