"""The fused encoder: normalise, rotate, quantise, scale and pack, one group of 8 at a time.

Each lane sees exactly the roundings spec/tqz-v1.md prescribes: sequential sums in
coordinate order, correctly rounded divisions (lanes.divide_lanes), the rotation's
butterflies in stage order, no fast-math.  tqcli/codec/reference.py does the same in numpy.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.extending import overload

from .groups import axpy8, group_rows, pack_group, group_count, task_groups, to_rows
from .lanes import (LANES, divide_lanes, lane_max_abs, lane_sums_of_squares, lane_unit, ls_sums_8, transpose_in8)
from .rotate import rotate_forward_lanes


# ----------------------------------------------------------------------------- unit directions


@njit(cache=True)
def _max_abs(row, d):
    """Largest |row[i]| (in the row's own dtype, then as float64), from eight partial
    maxima: max is exact in any order.  NaNs are not looked for here (see below)."""
    z = abs(row[0]) * 0
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = z
    i = 0
    while i + 8 <= d:
        m0 = max(m0, abs(row[i]))
        m1 = max(m1, abs(row[i + 1]))
        m2 = max(m2, abs(row[i + 2]))
        m3 = max(m3, abs(row[i + 3]))
        m4 = max(m4, abs(row[i + 4]))
        m5 = max(m5, abs(row[i + 5]))
        m6 = max(m6, abs(row[i + 6]))
        m7 = max(m7, abs(row[i + 7]))
        i += 8
    while i < d:
        m0 = max(m0, abs(row[i]))
        i += 1
    return np.float64(max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7))))



@njit(cache=True)
def _divide_run(src, dst, n, div):
    for i in range(n):
        dst[i] = np.float64(src[i]) / div


@njit(cache=True)
def _unit_run(src, dst, n, root):
    for i in range(n):
        dst[i] = np.float32(src[i] / root)


@njit(cache=True)
def _sums_of_squares_8(a, d, lane_step, coord_step):
    """Per lane l = 0..7, the sequential float64 sum over i < d of the squares of
    a[l * lane_step + i * coord_step], each widened to float64 first: 8 row-major rows
    (lane_step d, coord_step 1) or a lane-interleaved group (lane_step 1, coord_step 8)."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for i in range(d):
        e = i * coord_step
        v0 = np.float64(a[e])
        v1 = np.float64(a[e + lane_step])
        v2 = np.float64(a[e + 2 * lane_step])
        v3 = np.float64(a[e + 3 * lane_step])
        v4 = np.float64(a[e + 4 * lane_step])
        v5 = np.float64(a[e + 5 * lane_step])
        v6 = np.float64(a[e + 6 * lane_step])
        v7 = np.float64(a[e + 7 * lane_step])
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        s4 += v4 * v4
        s5 += v5 * v5
        s6 += v6 * v6
        s7 += v7 * v7
    return s0, s1, s2, s3, s4, s5, s6, s7


@njit(cache=True)
def _transpose_in(u, d, t):
    """Row-major (8, d) float32 -> lane-interleaved t[i * 8 + l]."""
    for i in range(d):
        o = i * LANES
        t[o] = u[i]
        t[o + 1] = u[d + i]
        t[o + 2] = u[2 * d + i]
        t[o + 3] = u[3 * d + i]
        t[o + 4] = u[4 * d + i]
        t[o + 5] = u[5 * d + i]
        t[o + 6] = u[6 * d + i]
        t[o + 7] = u[7 * d + i]


@njit(cache=True)
def _transpose_rows_in(x, r0, rows, d, t):
    """Rows r0..r0+rows-1 of x -> lane-interleaved t[i * 8 + l]; other lanes 0 (the
    general case: a partial group, or rows that are not contiguous)."""
    t[:] = 0.0
    for l in range(rows):
        row = x[r0 + l]
        for i in range(d):
            t[i * LANES + l] = row[i]


def _load_unit_lanes(x, r0, rows, w, u, t, norms, lane):
    """Lane l <- float32(row / ||row||) for rows r0..r0+rows-1 of x; norms in float64.

    Each row is divided by its largest magnitude m first (so squares neither overflow nor
    underflow), its sum of squares ss is accumulated in coordinate order, and the unit
    vector is (x_i / m) / sqrt(ss).  Unused lanes and zero rows give zeros and norm 0; a
    row with a NaN or an infinity gets norm NaN (the caller refuses it).  `lane` is (6, 8)
    float64 scratch.

    float32 rows (float16 arrive widened) take the vector path, whose divisions are
    _div_lanes; float64 rows, whose maxima and quotients may be subnormal, are divided by
    the division instruction, one row at a time.  The choice is made when numba types
    the call (the overload below), so a kernel for one dtype holds only its own path.
    """
    raise NotImplementedError("called from jitted code only")


@overload(_load_unit_lanes, inline="always")
def _load_unit_lanes_typed(x, r0, rows, w, u, t, norms, lane):
    if x.dtype.bitwidth == 32:
        def load(x, r0, rows, w, u, t, norms, lane):
            _load_binary32(x, r0, rows, w, u, t, norms, lane)
    else:
        def load(x, r0, rows, w, u, t, norms, lane):
            _load_binary64(x, r0, rows, w, u, t, norms, lane)
    return load


@njit(cache=True)
def _load_binary32(x, r0, rows, w, u, t, norms, lane):
    d = x.shape[1]
    div, rdiv, ss, root, rroot, keep = lane[0], lane[1], lane[2], lane[3], lane[4], lane[5]
    if rows == LANES and x.strides[1] == 4:
        full = d - d % LANES
        for col in range(0, full, LANES):
            transpose_in8(x, r0, col, t)
        for i in range(full, d):
            for l in range(LANES):
                t[i * LANES + l] = x[r0 + l, i]
    else:
        _transpose_rows_in(x, r0, rows, d, t)
    lane_max_abs(t, d, keep)
    _divisors(keep, div, rdiv)
    lane_sums_of_squares(t, d, div, rdiv, ss)
    _norms(keep, ss, root, rroot, norms)
    lane_unit(t, d, div, rdiv, root, rroot, keep)


@njit(cache=True)
def _load_binary64(x, r0, rows, w, u, t, norms, lane):
    d = x.shape[1]
    div, rdiv, ss, root, rroot, keep = lane[0], lane[1], lane[2], lane[3], lane[4], lane[5]
    for l in range(LANES):
        keep[l] = _max_abs(x[r0 + l], d) if l < rows else 0.0
    _divisors(keep, div, rdiv)
    for l in range(LANES):
        wl = w[l * d:(l + 1) * d]
        if l < rows:
            _divide_run(x[r0 + l], wl, d, div[l])
        else:
            wl[:] = 0.0
    s8 = _sums_of_squares_8(w, d, d, 1)
    for l in range(LANES):
        ss[l] = s8[l]
    _norms(keep, ss, root, rroot, norms)
    for l in range(LANES):
        ul = u[l * d:(l + 1) * d]
        if keep[l] != 0.0:
            _unit_run(w[l * d:(l + 1) * d], ul, d, root[l])
        else:
            ul[:] = 0.0
    _transpose_in(u, d, t)


@njit(cache=True, inline="always")
def _divisors(keep, div, rdiv):
    """Each lane's divisor: its largest magnitude, or 1 for a zero or non-finite row."""
    for l in range(LANES):
        m = keep[l]
        div[l] = m if m > 0.0 and m < np.inf else 1.0
        rdiv[l] = 1.0 / div[l]


@njit(cache=True, inline="always")
def _norms(keep, ss, root, rroot, norms):
    """norms from the maxima (in keep) and the sums of squares; keep becomes 1 for a lane
    whose unit vector is computed, 0 for a zero row, an unused lane or a non-finite row."""
    for l in range(LANES):
        m = keep[l]
        root[l] = 1.0
        # a NaN anywhere makes the sum of squares NaN; an infinity makes the maximum inf
        if m == np.inf or ss[l] != ss[l] or m != m:
            norms[l] = np.nan
            keep[l] = 0.0
        elif m > 0.0:
            root[l] = math.sqrt(ss[l])
            norms[l] = m * root[l]
            keep[l] = 1.0
        else:
            norms[l] = 0.0
            keep[l] = 0.0
        rroot[l] = 1.0 / root[l]


# ----------------------------------------------------------------------------- quantise, scale


@njit(cache=True)
def _count_above(t, thr_k, counts, n):
    for e in range(n):
        counts[e] += np.int32(t[e] > thr_k)


@njit(cache=True)
def _quantize_lanes(t, thr, table, bits, codes, counts):
    """codes[e] = number of thresholds strictly below t[e] (float32 thresholds), all lanes.

    Up to 31 thresholds a SIMD pass per threshold is fastest; beyond that, a branchless
    binary search over the thresholds padded to a power of two.
    """
    n = t.shape[0]
    if bits <= 5:
        counts[:] = 0
        for k in range(thr.shape[0]):
            _count_above(t, thr[k], counts, n)
        for e in range(n):
            codes[e] = np.uint8(counts[e])
    else:
        size = table.shape[0]
        for e in range(n):
            y = t[e]
            pos = 0
            step = size >> 1
            while step > 0:
                if table[pos + step - 1] < y:
                    pos += step
                step >>= 1
            codes[e] = np.uint8(pos)




@njit(cache=True)
def _scales_lanes(rule, norms, t, cents, codes, out, r0, rows):
    """Per-vector scale: 0 least squares, 1 the norm, 2 unbiased inner products (float64);
    0 where the rule's denominator is 0 (spec 11.5)."""
    d = t.shape[0] // LANES
    yc = np.ones(LANES)
    cc = np.ones(LANES)
    if rule != 1:
        ls_sums_8(t, cents, codes, d, yc, cc)
    for l in range(rows):
        nrm = norms[l]
        if nrm != nrm:
            out[r0 + l] = np.nan
        elif nrm == 0.0:
            out[r0 + l] = 0.0
        elif rule == 1:
            out[r0 + l] = nrm
        elif rule == 0:
            # B = 0: every index is a zero cell (the entropy coding's middle one), the
            # reconstruction is 0 whatever the scale, and the spec stores 0 (11.5)
            out[r0 + l] = nrm * (yc[l] / cc[l]) if cc[l] != 0.0 else 0.0
        else:
            out[r0 + l] = nrm / yc[l] if yc[l] != 0.0 else 0.0


# ----------------------------------------------------------------------------- drivers


@njit(cache=True, inline="always")
def _encode_scratch(d):
    """One task's buffers for encoding groups of d-dimensional rows: w, u (the
    float64-row path of _load_unit_lanes), t and tmp (the group and the rotation's second
    buffer), lane codes, threshold counts, row-major codes, norms, lane scratch."""
    return (np.empty(LANES * d), np.empty(LANES * d, np.float32),
            np.empty(d * LANES, np.float32), np.empty(d * LANES, np.float32),
            np.empty(d * LANES, np.uint8), np.empty(d * LANES, np.int32),
            np.empty((LANES, d), np.uint8), np.empty(LANES), np.empty((6, LANES)))



@njit(cache=True, inline="always")
def _mse_group(x, g, n, scratch, signs, perms, blocks, block_scales, thr, table, cents,
               bits, rule, codes, scales):
    """Encode group g: its packed codes into `codes`, its scales into `scales`."""
    w, u, t, tmp, lane_codes, counts, codes8, norms, lane = scratch
    d = x.shape[1]
    r0, rows = group_rows(g, n)
    _load_unit_lanes(x, r0, rows, w, u, t, norms, lane)
    y = rotate_forward_lanes(t, tmp, signs, perms, blocks, block_scales)
    _quantize_lanes(y, thr, table, bits, lane_codes, counts)
    _scales_lanes(rule, norms, y, cents, lane_codes, scales, r0, rows)
    to_rows(lane_codes, rows, d, codes8)
    pack_group(codes8, d, bits, codes, g * d * bits, codes.shape[0])


@njit(cache=True, nogil=True)
def encode_mse_kernel(x, signs, perms, blocks, block_scales, thr, table, cents, bits, rule,
                      codes, scales, task0, task1):
    """mse mode over all rows of x (see kernels.encode_mse)."""
    n, d = x.shape
    ngroups = group_count(n)
    for task in range(task0, task1):
        scratch = _encode_scratch(d)
        g0, g1 = task_groups(task, ngroups)
        for g in range(g0, g1):
            _mse_group(x, g, n, scratch, signs, perms, blocks, block_scales, thr, table,
                       cents, bits, rule, codes, scales)


@njit(cache=True, inline="always")
def _prod_group(x, g, n, scratch, proj, signs, perms, blocks, block_scales, thr, table,
                cents, bits, sketch_t, codes, qbits, scales, gammas):
    """Encode group g in prod mode: mse codes of the direction (if bits > 0), the signs of
    the sketched residual, the norms and the residual norms."""
    w, u, t, tmp, lane_codes, counts, codes8, norms, lane = scratch
    d = x.shape[1]
    r0, rows = group_rows(g, n)
    _load_unit_lanes(x, r0, rows, w, u, t, norms, lane)
    y = rotate_forward_lanes(t, tmp, signs, perms, blocks, block_scales)
    if bits > 0:
        _quantize_lanes(y, thr, table, bits, lane_codes, counts)
        for e in range(d * LANES):
            y[e] = y[e] - cents[lane_codes[e]]
        to_rows(lane_codes, rows, d, codes8)
        pack_group(codes8, d, bits, codes, g * d * bits, codes.shape[0])
    # y now holds the residual r of every lane
    gg = _sums_of_squares_8(y, d, 1, LANES)
    for l in range(rows):
        scales[r0 + l] = norms[l]
        gammas[r0 + l] = math.sqrt(gg[l]) if norms[l] != 0.0 else 0.0
    proj[:] = 0.0
    for j in range(d):
        rj = y[j * LANES:(j + 1) * LANES]
        for i in range(d):
            axpy8(proj, i * LANES, sketch_t[j, i], rj)
    for e in range(d * LANES):
        lane_codes[e] = 1 if proj[e] >= 0.0 else 0
    to_rows(lane_codes, rows, d, codes8)
    pack_group(codes8, d, np.int64(1), qbits, g * d, qbits.shape[0])  # typed: see groups.py


@njit(cache=True, nogil=True)
def encode_prod_kernel(x, signs, perms, blocks, block_scales, thr, table, cents, bits,
                       sketch_t, codes, qbits, scales, gammas, task0, task1):
    """prod mode over all rows of x (see kernels.encode_prod)."""
    n, d = x.shape
    ngroups = group_count(n)
    for task in range(task0, task1):
        scratch = _encode_scratch(d)
        proj = np.empty(d * LANES, np.float32)
        g0, g1 = task_groups(task, ngroups)
        for g in range(g0, g1):
            _prod_group(x, g, n, scratch, proj, signs, perms, blocks, block_scales, thr,
                        table, cents, bits, sketch_t, codes, qbits, scales, gammas)


@njit(cache=True, nogil=True)
def divide_kernel(a, b, out):
    """out[i] = float64(a[i]) / b through lanes.divide_lanes, as the encoder divides
    float32 rows (see kernels.divide)."""
    bb = np.full(LANES, b)
    rb = np.full(LANES, 1.0 / b)
    x = np.zeros(LANES)
    q = np.empty(LANES)
    n = a.shape[0]
    for off in range(0, n, LANES):
        k = min(LANES, n - off)
        for j in range(k):
            x[j] = np.float64(a[off + j])
        divide_lanes(x, 0, bb, rb, q)
        for j in range(k):
            out[off + j] = q[j]
