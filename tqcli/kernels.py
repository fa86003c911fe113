"""The numba kernels: fused encode (normalise, rotate, quantise, scale, pack) and decode.

All kernels work on a block of vectors, in parallel over groups of 8 rows: 8 rows of d
codes of b bits fill a whole number of bytes, so each group owns its bytes and the output
does not depend on the thread count.  Floating-point work follows the exact order that
spec/tqz-v1.md prescribes (no fastmath, no reassociation), and tqcli/reference.py holds a
plain-numpy version of every kernel that the tests compare with bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True)
def _splitmix(key, k):
    z = key + k * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def gaussian_fill(key, out):
    """Fill `out` with N(0, 1) draws by Marsaglia's polar method on SplitMix64 outputs.

    Outputs are consumed in pairs (x, y) -> u = (x >> 11) * 2**-52 - 1, likewise v; a pair
    with s = u^2 + v^2 outside (0, 1) is rejected; otherwise u*f and v*f with
    f = sqrt(-2 ln(s) / s) are appended in that order, each rounded to float32.
    """
    n = out.size
    k = np.uint64(0)
    i = 0
    scale = 2.0 ** -52
    while i < n:
        k += np.uint64(1)
        x = _splitmix(key, k)
        k += np.uint64(1)
        y = _splitmix(key, k)
        u = np.float64(x >> np.uint64(11)) * scale - 1.0
        v = np.float64(y >> np.uint64(11)) * scale - 1.0
        s = u * u + v * v
        if s >= 1.0 or s == 0.0:
            continue
        f = math.sqrt(-2.0 * math.log(s) / s)
        out[i] = np.float32(u * f)
        i += 1
        if i < n:
            out[i] = np.float32(v * f)
            i += 1


# ----------------------------------------------------------------------------- rotation


@njit(cache=True, inline="always")
def _fwht(t, off, p, scale):
    h = 1
    while h < p:
        for i in range(off, off + p, 2 * h):
            for j in range(i, i + h):
                a = t[j]
                b = t[j + h]
                t[j] = a + b
                t[j + h] = a - b
        h *= 2
    for j in range(off, off + p):
        t[j] = t[j] * scale


@njit(cache=True)
def _rotate_forward(t, tmp, signs, perms, p, scale):
    rounds, d = signs.shape
    for r in range(rounds):
        for i in range(d):
            tmp[i] = signs[r, i] * t[perms[r, i]]
        for i in range(d):
            t[i] = tmp[i]
        _fwht(t, 0, p, scale)
        if p < d:
            _fwht(t, d - p, p, scale)


@njit(cache=True)
def _rotate_inverse(t, tmp, signs, perms, p, scale):
    rounds, d = signs.shape
    for r in range(rounds - 1, -1, -1):
        if p < d:
            _fwht(t, d - p, p, scale)
        _fwht(t, 0, p, scale)
        for i in range(d):
            tmp[perms[r, i]] = signs[r, i] * t[i]
        for i in range(d):
            t[i] = tmp[i]


@njit(cache=True)
def rotate_rows(x, signs, perms, p, scale, inverse):
    """Rotate every row of float32 `x` in place (used by tests and the reference checks)."""
    n, d = x.shape
    for r in prange(n):
        t = x[r]
        tmp = np.empty(d, np.float32)
        if inverse:
            _rotate_inverse(t, tmp, signs, perms, p, scale)
        else:
            _rotate_forward(t, tmp, signs, perms, p, scale)


# ----------------------------------------------------------------------------- pieces


@njit(cache=True, inline="always")
def _unit_direction(row, t):
    """Write float32(row / ||row||) into t and return ||row|| (float64); 0 for a zero row.

    The row is first divided by its largest magnitude so that neither squares of huge
    float64 values overflow nor squares of tiny ones underflow.
    """
    d = row.shape[0]
    m = 0.0
    for i in range(d):
        a = abs(np.float64(row[i]))
        if a > m:
            m = a
    if m == 0.0:
        for i in range(d):
            t[i] = 0.0
        return 0.0
    ss = 0.0
    for i in range(d):
        w = np.float64(row[i]) / m
        ss += w * w
    root = math.sqrt(ss)
    for i in range(d):
        t[i] = np.float32((np.float64(row[i]) / m) / root)
    return m * root


@njit(cache=True, inline="always")
def _bucket(bounds, y):
    """Number of thresholds strictly below y (binary search)."""
    lo = 0
    hi = bounds.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if bounds[mid] < y:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def _scale(rule, norm, t, cents, idx):
    """Per-vector scale: 0 least squares, 1 the norm, 2 unbiased inner products."""
    if norm == 0.0:
        return 0.0
    if rule == 1:
        return norm
    yc = 0.0
    cc = 0.0
    for i in range(t.shape[0]):
        c = np.float64(cents[idx[i]])
        yc += np.float64(t[i]) * c
        cc += c * c
    if rule == 0:
        return norm * (yc / cc)
    return norm / yc


# ----------------------------------------------------------------------------- encode


@njit(cache=True, parallel=True)
def encode_mse(x, signs, perms, p, hscale, bounds, cents, bits, rule, codes, scales):
    """Encode rows of x (float32/64) into packed `bits`-bit codes and float64 scales."""
    n, d = x.shape
    ngroups = (n + 7) >> 3
    for g in prange(ngroups):
        t = np.empty(d, np.float32)
        tmp = np.empty(d, np.float32)
        idx = np.empty(d, np.int64)
        pos = g * d * bits
        acc = np.uint64(0)
        nacc = 0
        for r in range(g * 8, min(g * 8 + 8, n)):
            norm = _unit_direction(x[r], t)
            _rotate_forward(t, tmp, signs, perms, p, hscale)
            for i in range(d):
                idx[i] = _bucket(bounds, t[i])
            scales[r] = _scale(rule, norm, t, cents, idx)
            for i in range(d):
                acc |= np.uint64(idx[i]) << np.uint64(nacc)
                nacc += bits
                while nacc >= 8:
                    codes[pos] = np.uint8(acc & np.uint64(0xFF))
                    acc >>= np.uint64(8)
                    nacc -= 8
                    pos += 1
        if nacc > 0:
            codes[pos] = np.uint8(acc & np.uint64(0xFF))


@njit(cache=True, parallel=True)
def encode_prod(x, signs, perms, p, hscale, bounds, cents, bits, sketch_t,
                codes, qbits, scales, gammas):
    """prod mode: (bits) mse codes of the direction plus sign(S r) of the residual r.

    `bits` here is the mse part (b - 1, possibly 0); `sketch_t` is S transposed.
    """
    n, d = x.shape
    ngroups = (n + 7) >> 3
    for g in prange(ngroups):
        t = np.empty(d, np.float32)
        tmp = np.empty(d, np.float32)
        res = np.empty(d, np.float32)
        proj = np.empty(d, np.float32)
        idx = np.zeros(d, np.int64)
        pos = g * d * bits
        qpos = g * d
        acc = np.uint64(0)
        nacc = 0
        qacc = np.uint64(0)
        nq = 0
        for r in range(g * 8, min(g * 8 + 8, n)):
            norm = _unit_direction(x[r], t)
            _rotate_forward(t, tmp, signs, perms, p, hscale)
            gg = 0.0
            for i in range(d):
                if bits > 0:
                    idx[i] = _bucket(bounds, t[i])
                    res[i] = t[i] - cents[idx[i]]
                else:
                    res[i] = t[i]
                gg += np.float64(res[i]) * np.float64(res[i])
            scales[r] = norm
            gammas[r] = math.sqrt(gg) if norm != 0.0 else 0.0
            for i in range(d):
                proj[i] = 0.0
            for j in range(d):
                rj = res[j]
                for i in range(d):
                    proj[i] += sketch_t[j, i] * rj
            for i in range(d):
                if bits > 0:
                    acc |= np.uint64(idx[i]) << np.uint64(nacc)
                    nacc += bits
                    while nacc >= 8:
                        codes[pos] = np.uint8(acc & np.uint64(0xFF))
                        acc >>= np.uint64(8)
                        nacc -= 8
                        pos += 1
                if proj[i] >= 0.0:
                    qacc |= np.uint64(1) << np.uint64(nq)
                nq += 1
                if nq == 8:
                    qbits[qpos] = np.uint8(qacc)
                    qacc = np.uint64(0)
                    nq = 0
                    qpos += 1
        if nacc > 0:
            codes[pos] = np.uint8(acc & np.uint64(0xFF))
        if nq > 0:
            qbits[qpos] = np.uint8(qacc)


# ----------------------------------------------------------------------------- decode


@njit(cache=True, inline="always")
def _unpack_row(codes, pos, nacc, acc, bits, idx):
    mask = np.uint64((1 << bits) - 1)
    for i in range(idx.shape[0]):
        while nacc < bits:
            acc |= np.uint64(codes[pos]) << np.uint64(nacc)
            pos += 1
            nacc += 8
        idx[i] = np.int64(acc & mask)
        acc >>= np.uint64(bits)
        nacc -= bits
    return pos, nacc, acc


@njit(cache=True, parallel=True)
def decode_mse(codes, scales, signs, perms, p, hscale, cents, bits, out):
    """Decode packed codes and float32 scales into float32 rows of `out`."""
    n, d = out.shape
    ngroups = (n + 7) >> 3
    for g in prange(ngroups):
        t = np.empty(d, np.float32)
        tmp = np.empty(d, np.float32)
        idx = np.empty(d, np.int64)
        pos = g * d * bits
        nacc = 0
        acc = np.uint64(0)
        for r in range(g * 8, min(g * 8 + 8, n)):
            pos, nacc, acc = _unpack_row(codes, pos, nacc, acc, bits, idx)
            for i in range(d):
                t[i] = cents[idx[i]]
            _rotate_inverse(t, tmp, signs, perms, p, hscale)
            s = scales[r]
            for i in range(d):
                out[r, i] = s * t[i] if s != 0 else np.float32(0.0)


@njit(cache=True, parallel=True)
def decode_prod(codes, qbits, scales, gammas, signs, perms, p, hscale, cents, bits,
                sketch, out):
    """prod mode: u = c[idx] + sqrt(pi/2)/d * gamma * S^T q, then rotate back and scale."""
    n, d = out.shape
    ngroups = (n + 7) >> 3
    coef = math.sqrt(math.pi / 2.0) / d
    for g in prange(ngroups):
        t = np.empty(d, np.float32)
        tmp = np.empty(d, np.float32)
        corr = np.empty(d, np.float32)
        idx = np.zeros(d, np.int64)
        q = np.empty(d, np.float32)
        pos = g * d * bits
        nacc = 0
        acc = np.uint64(0)
        for r in range(g * 8, min(g * 8 + 8, n)):
            if bits > 0:
                pos, nacc, acc = _unpack_row(codes, pos, nacc, acc, bits, idx)
            base = r * d
            for i in range(d):
                bit = (qbits[(base + i) >> 3] >> ((base + i) & 7)) & 1
                q[i] = 1.0 if bit else -1.0
            for j in range(d):
                corr[j] = 0.0
            for i in range(d):
                qi = q[i]
                for j in range(d):
                    corr[j] += qi * sketch[i, j]
            k = np.float32(coef * np.float64(gammas[r]))
            for i in range(d):
                c = cents[idx[i]] if bits > 0 else np.float32(0.0)
                t[i] = c + k * corr[i]
            _rotate_inverse(t, tmp, signs, perms, p, hscale)
            s = scales[r]
            for i in range(d):
                out[r, i] = s * t[i] if s != 0 else np.float32(0.0)
