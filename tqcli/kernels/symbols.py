"""Encode to and decode from cell indices as uint16 symbols (the entropy coding's kernels).

The same normalisation, rotation, threshold search and scale rules as the packed encoder
(encode.py), and the same centroid lookup, inverse rotation and scaling as its decoder
(decode.py), with one difference: the indices are not bit-packed but written as one uint16
symbol per coordinate, row-major, for the entropy coder (rans.py).  An alphabet of up to
4096 cells needs more than the packed coding's 8 bits.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .decode import _store_lanes
from .encode import _load_unit_lanes, _scales_lanes
from .groups import group_count, group_rows, task_groups
from .lanes import LANES
from .rans import OK, RANS_LOW
from .rans8 import decode_run, encode_run, end_status, flush_states, load_states
from .rotate import rotate_forward_lanes, rotate_inverse_lanes


@njit(cache=True)
def _grid_lanes(t, thr, inv_step, offset, codes):
    """codes[e] = the number of float32 thresholds strictly below t[e], for thresholds on
    a uniform grid: the cell is first estimated by arithmetic, floor(y / step + K + 1/2),
    then moved until thr[k - 1] < y <= thr[k] holds -- which makes it exact whatever the
    rounding of the estimate (it is off by at most one, next to a threshold)."""
    top = thr.shape[0]  # M - 1 thresholds: cells 0 .. M - 1
    for e in range(t.shape[0]):
        y = t[e]
        g = math.floor(np.float64(y) * inv_step + offset)
        k = 0 if g < 0 else (top if g > top else np.int64(g))
        while k > 0 and thr[k - 1] >= y:
            k -= 1
        while k < top and thr[k] < y:
            k += 1
        codes[e] = np.uint16(k)


@njit(cache=True)
def _store_symbols(codes, r0, rows, d, symbols):
    """Lane-interleaved codes of a group -> symbols[(r0 + l) * d + i], its rows only."""
    for l in range(rows):
        base = (r0 + l) * d
        for i in range(d):
            symbols[base + i] = codes[i * LANES + l]


@njit(cache=True, nogil=True)
def encode_symbols_kernel(x, signs, perms, blocks, block_scales, thr, inv_step, offset, cents,
                          rule, symbols, scales, task0, task1):
    """Rows of x -> one uint16 cell index per coordinate and one scale per row (see
    kernels.encode_symbols)."""
    n, d = x.shape
    ngroups = group_count(n)
    for task in range(task0, task1):
        w = np.empty(LANES * d)
        u = np.empty(LANES * d, np.float32)
        t = np.empty(d * LANES, np.float32)
        tmp = np.empty(d * LANES, np.float32)
        codes = np.empty(d * LANES, np.uint16)
        norms = np.empty(LANES)
        lane = np.empty((6, LANES))
        g0, g1 = task_groups(task, ngroups)
        for g in range(g0, g1):
            r0, rows = group_rows(g, n)
            _load_unit_lanes(x, r0, rows, w, u, t, norms, lane)
            y = rotate_forward_lanes(t, tmp, signs, perms, blocks, block_scales)
            _grid_lanes(y, thr, inv_step, offset, codes)
            _scales_lanes(rule, norms, y, cents, codes, scales, r0, rows)
            _store_symbols(codes, r0, rows, d, symbols)


@njit(cache=True, nogil=True)
def decode_symbols_kernel(symbols, scales, signs, perms, blocks, block_scales, cents, out,
                          task0, task1):
    """uint16 cell indices (row-major) and scales -> the rows of out (see
    kernels.decode_symbols)."""
    n, d = out.shape
    ngroups = group_count(n)
    for task in range(task0, task1):
        t = np.empty(d * LANES, np.float32)
        tmp = np.empty(d * LANES, np.float32)
        g0, g1 = task_groups(task, ngroups)
        for g in range(g0, g1):
            r0, rows = group_rows(g, n)
            for l in range(LANES):
                if l < rows:
                    base = (r0 + l) * d
                    for i in range(d):
                        t[i * LANES + l] = cents[symbols[base + i]]
                else:
                    for i in range(d):
                        t[i * LANES + l] = 0.0
            y = rotate_inverse_lanes(t, tmp, signs, perms, blocks, block_scales)
            _store_lanes(y, scales, r0, rows, out)


# ----------------------------------------------------------------------------- fused with rANS


@njit(cache=True, nogil=True)
def decode_entropy_kernel(buf, starts, lengths, seg_rows, fb, table, precision, scales, signs,
                          perms, blocks, block_scales, cents, out, status, task0, task1):
    """The rANS stage and the decoder in one pass (see kernels.decode_entropy): segment k
    (rows k * seg_rows .. of out, its stream buf[starts[k]:starts[k] + lengths[k]]) is
    decoded one group of 8 rows at a time: each symbol's centroid straight into its lane
    when d is a multiple of 8 (a row's symbols then start on coder lane 0), otherwise the
    group's symbols into a buffer of 8 d (first-level cache) and their centroids from it;
    then the inverse rotation and the scales, stored.
    status[k] is rans.py's for the segment's stream (the rows of a refused segment are
    garbage; the caller raises)."""
    n, d = out.shape
    t = np.empty(d * LANES, np.float32)
    tmp = np.empty(d * LANES, np.float32)
    sym = np.empty(d * LANES, np.uint16)
    st = np.empty(LANES, np.uint64)
    ident = np.arange(cents.size).astype(np.uint16)
    for seg in range(task0, task1):
        w0 = starts[seg]
        nwords = lengths[seg] // 4
        status[seg] = load_states(buf, w0, nwords, st)
        if status[seg] != OK:
            continue
        pos = 2 * LANES
        r1 = min(n, (seg + 1) * seg_rows)
        for r0 in range(seg * seg_rows, r1, LANES):
            rows = min(LANES, r1 - r0)
            if d % LANES == 0:
                # each row's run starts on lane 0: its centroids go straight into the lanes
                for l in range(rows):
                    pos = decode_run(buf, w0, nwords, pos, st, fb, table, precision, cents, t,
                                     l, LANES, d)
            else:
                pos = decode_run(buf, w0, nwords, pos, st, fb, table, precision, ident, sym,
                                 0, 1, rows * d)
                for l in range(rows):
                    base = l * d
                    for i in range(d):
                        t[i * LANES + l] = cents[sym[base + i]]
            for l in range(rows, LANES):
                for i in range(d):
                    t[i * LANES + l] = 0.0
            y = rotate_inverse_lanes(t, tmp, signs, perms, blocks, block_scales)
            _store_lanes(y, scales, r0, rows, out)
        status[seg] = end_status(st, pos, nwords)


@njit(cache=True, nogil=True)
def encode_entropy_kernel(x, seg_r0, seg_r1, signs, perms, blocks, block_scales, thr,
                          inv_step, offset, cents, rule, enc, region_ends, out, first, scales,
                          task0, task1):
    """The encoder and the rANS stage in one pass (see kernels.encode_entropy): segment k,
    rows seg_r0[k]..seg_r1[k] of x, is quantised one group of 8 rows at a time into a
    buffer of the segment's codes (L2-sized), then coded backwards from it into
    out[first[k]:region_ends[k]]."""
    d = x.shape[1]
    w = np.empty(LANES * d)
    u = np.empty(LANES * d, np.float32)
    t = np.empty(d * LANES, np.float32)
    tmp = np.empty(d * LANES, np.float32)
    norms = np.empty(LANES)
    lane = np.empty((6, LANES))
    st = np.empty(LANES, np.uint64)
    most = 0
    for k in range(task0, task1):
        most = max(most, seg_r1[k] - seg_r0[k])
    # the segment's codes, group after group, each group lane-interleaved as _grid_lanes
    # writes it (row l of group g: codes[g 8 d + i 8 + l]); for d a multiple of 8 the coder
    # reads them there, row by row, otherwise from a row-major copy
    groups = (most + LANES - 1) // LANES
    codes = np.empty(groups * LANES * d, np.uint16)
    sym = np.empty(1 if d % LANES == 0 else most * d, np.uint16)
    for k in range(task0, task1):
        s0, s1 = seg_r0[k], seg_r1[k]
        for r0 in range(s0, s1, LANES):
            rows = min(LANES, s1 - r0)
            gc = codes[(r0 - s0) * d:(r0 - s0 + LANES) * d]
            _load_unit_lanes(x, r0, rows, w, u, t, norms, lane)
            y = rotate_forward_lanes(t, tmp, signs, perms, blocks, block_scales)
            _grid_lanes(y, thr, inv_step, offset, gc)
            _scales_lanes(rule, norms, y, cents, gc, scales, r0, rows)
            if d % LANES != 0:
                _store_symbols(gc, r0 - s0, rows, d, sym)
        st[:] = np.uint64(RANS_LOW)
        at = region_ends[k]
        if d % LANES == 0:
            for r in range(s1 - s0 - 1, -1, -1):
                at = encode_run(codes, (r // LANES) * LANES * d + r % LANES, LANES, d, enc,
                                out, at, st)
        else:
            at = encode_run(sym, 0, 1, (s1 - s0) * d, enc, out, at, st)
        first[k] = flush_states(st, out, at)
