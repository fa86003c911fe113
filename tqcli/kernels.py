"""The numba kernels: fused encode (normalise, rotate, quantise, scale, pack) and decode.

Vectors are processed in groups of 8 held "in lockstep": a group is stored transposed, as a
(d, 8) array whose row i holds coordinate i of the 8 vectors.  Every step then works on 8
independent lanes at once, which the compiler turns into SIMD instructions without
reordering any floating-point operation: each lane still sees exactly the sequence of
roundings that spec/tqz-v1.md prescribes (sequential sums, butterflies in stage order, no
fastmath, no fused multiply-add where the spec has a multiplication and an addition; the
only FMAs, in _div, compute a correctly rounded division).  8 rows of d codes of b bits are also a whole number of
bytes, so each group owns its bytes and the output cannot depend on the thread count.

tqcli/reference.py holds a plain-numpy version of every kernel; the tests compare them bit
for bit.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)

LANES = 8          # vectors per group (and codes per packing bundle)
GROUPS_PER_TASK = 16  # groups handled by one parallel task (scratch is allocated per task)


@njit(cache=True)
def _splitmix(key, k):
    z = key + k * _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def warm_up() -> None:
    """Load numba's machinery with one small cached call (done once per process)."""
    _splitmix(np.uint64(0), np.uint64(1))


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


# ----------------------------------------------------------------------------- thresholds


def float32_thresholds(bounds: np.ndarray) -> np.ndarray:
    """Thresholds in float32 that classify every float32 y exactly as the float64 ones do.

    For a float32 y and a float64 m, y > m holds exactly when y > f, f the largest float32
    not above m; the kernels can then compare in float32, 8 lanes per instruction.
    """
    m = np.asarray(bounds, np.float64)
    f = m.astype(np.float32)
    over = f.astype(np.float64) > m
    f[over] = np.nextafter(f[over], np.float32(-np.inf))
    return f


def search_table(thr32: np.ndarray) -> np.ndarray:
    """thr32 padded with +inf to a power of two, for the branchless binary search."""
    k = 1
    while k < thr32.size + 1:
        k *= 2
    out = np.full(k, np.inf, np.float32)
    out[:thr32.size] = thr32
    return out


# ----------------------------------------------------------------------------- lanes: rotation
#
# A group lives in a flat float32 array of d * 8 values: coordinate i of lane l at i * 8 + l,
# so the 8 lanes of one coordinate are one 8-float "row".  The butterflies are written as
# LLVM vector code (<8 x float>, one row per value) by the intrinsics below: numba does not
# run LLVM's SLP vectorizer, and its loop vectorizer cannot vectorize the early stages, whose
# runs are only one or two rows long.  Each vector fadd/fsub/fmul rounds every lane exactly
# as the scalar operation would (no fast-math flags, so nothing is fused or reordered); on a
# CPU with narrower registers LLVM splits the vectors, with the same results.

_ROW = ir.VectorType(ir.FloatType(), LANES)


def _splat(builder, value, vty):
    """A vector with `value` in every lane."""
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), zeros)


def _butterfly_intrinsic(radix: int, scaled: bool):
    """An intrinsic f(t, a, run, scale): rows t[a + k*run : a + k*run + 8], k < radix, go
    through log2(radix) consecutive Walsh-Hadamard stages -- stage h pairs rows j and j + h
    (sum first, difference second), stages in increasing h -- and, if `scaled`, every result
    is multiplied by `scale` (the last stage of a transform)."""

    def impl(typingctx, t, a, run, scale):
        sig = types.none(t, a, run, scale)

        def codegen(context, builder, signature, args):
            ary, a, run, scale = args
            base = context.make_array(signature.args[0])(context, builder, ary).data
            ptrs = []
            for k in range(radix):
                idx = builder.add(a, builder.mul(run, ir.Constant(run.type, k)))
                ptrs.append(builder.bitcast(builder.gep(base, [idx]), _ROW.as_pointer()))
            xs = [builder.load(q, align=4) for q in ptrs]
            h = 1
            while h < radix:
                for i in range(0, radix, 2 * h):
                    for j in range(i, i + h):
                        x, y = xs[j], xs[j + h]
                        xs[j], xs[j + h] = builder.fadd(x, y), builder.fsub(x, y)
                h *= 2
            if scaled:
                sv = _splat(builder, scale, _ROW)
                xs = [builder.fmul(x, sv) for x in xs]
            for x, q in zip(xs, ptrs):
                builder.store(x, q, align=4)
            return context.get_dummy_value()

        return sig, codegen

    impl.__name__ = f"_butterfly{radix}{'_scaled' if scaled else ''}"
    return intrinsic(impl)


_butterfly2_scaled = _butterfly_intrinsic(2, True)
_butterfly4 = _butterfly_intrinsic(4, False)
_butterfly4_scaled = _butterfly_intrinsic(4, True)
_butterfly8 = _butterfly_intrinsic(8, False)
_butterfly8_scaled = _butterfly_intrinsic(8, True)


@njit(cache=True, inline="always")
def _fwht_lanes(t, off, p, scale):
    """Normalised Walsh-Hadamard transform of coordinates off..off+p-1 of all 8 lanes.

    Stages h = 1, 2, 4, ... run three at a time (two or one for the remainder); the last
    stage multiplies by the scale.  The additions are those of the stage-by-stage order.
    """
    h = 1
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
                if radix == 8:
                    if last:
                        _butterfly8_scaled(t, k, run, scale)
                    else:
                        _butterfly8(t, k, run, scale)
                elif radix == 4:
                    if last:
                        _butterfly4_scaled(t, k, run, scale)
                    else:
                        _butterfly4(t, k, run, scale)
                else:
                    _butterfly2_scaled(t, k, run, scale)
        h *= radix


_SIGN_BITS = np.uint64(0x8000000080000000)  # the sign bits of two float32 in one word


@njit(cache=True, inline="always")
def _permute_lanes(src, dst, signs_r, perm_r, inverse):
    """dst[i] = s_i * src[perm_i] (forward) or dst[perm_i] = s_i * src[i] (inverse), 8 lanes.

    Multiplying by +-1 only sets the sign bit, so each row of 8 floats moves as four
    64-bit words, XORed with the sign mask: the same bits as the float multiplication.
    """
    d = perm_r.shape[0]
    s64 = src.view(np.uint64)
    d64 = dst.view(np.uint64)
    for i in range(d):
        m = _SIGN_BITS if signs_r[i] < 0 else np.uint64(0)
        if inverse:
            a = i * 4
            b = perm_r[i] * 4
        else:
            a = perm_r[i] * 4
            b = i * 4
        v0 = s64[a]
        v1 = s64[a + 1]
        v2 = s64[a + 2]
        v3 = s64[a + 3]
        d64[b] = v0 ^ m
        d64[b + 1] = v1 ^ m
        d64[b + 2] = v2 ^ m
        d64[b + 3] = v3 ^ m


@njit(cache=True, inline="always")
def _rotate_forward_lanes(t, tmp, signs, perms, p, scale):
    """Forward rotation of the 8 lanes of t (flat, d * 8); returns the buffer holding the
    result (t or tmp: the rounds alternate between the two)."""
    rounds, d = signs.shape
    src, dst = t, tmp
    for r in range(rounds):
        _permute_lanes(src, dst, signs[r], perms[r], False)
        _fwht_lanes(dst, 0, p, scale)
        if p < d:
            _fwht_lanes(dst, d - p, p, scale)
        src, dst = dst, src
    return src


@njit(cache=True, inline="always")
def _rotate_inverse_lanes(t, tmp, signs, perms, p, scale):
    """Inverse rotation; like the forward one it returns the buffer holding the result."""
    rounds, d = signs.shape
    src, dst = t, tmp
    for r in range(rounds - 1, -1, -1):
        if p < d:
            _fwht_lanes(src, d - p, p, scale)
        _fwht_lanes(src, 0, p, scale)
        _permute_lanes(src, dst, signs[r], perms[r], True)
        src, dst = dst, src
    return src


@njit(cache=True, parallel=True, nogil=True)
def rotate_rows(x, signs, perms, p, scale, inverse):
    """Rotate every row of float32 `x` in place (the rotation on its own, for tests)."""
    n, d = x.shape
    for g in prange((n + LANES - 1) // LANES):
        t = np.zeros(d * LANES, np.float32)
        tmp = np.empty(d * LANES, np.float32)
        r0 = g * LANES
        rows = min(LANES, n - r0)
        for l in range(rows):
            for i in range(d):
                t[i * LANES + l] = x[r0 + l, i]
        if inverse:
            y = _rotate_inverse_lanes(t, tmp, signs, perms, p, scale)
        else:
            y = _rotate_forward_lanes(t, tmp, signs, perms, p, scale)
        for l in range(rows):
            for i in range(d):
                x[r0 + l, i] = y[i * LANES + l]


# ----------------------------------------------------------------------------- lanes: encode steps


@njit(cache=True, inline="always")
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


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c with a single rounding (llvm.fma: the FMA instruction, or libm's exact
    software fma on a CPU without one -- the result is the same either way)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        f64 = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [f64], ir.FunctionType(f64, [f64] * 3))
        return builder.call(fn, args)

    return sig, codegen


@njit(cache=True, inline="always")
def _div(a, b, rb):
    """a / b in binary64, correctly rounded -- the same bits as the division -- from
    rb = 1.0 / b, for finite a and b whose quotient neither overflows nor underflows
    (used for float32 rows, whose quotients all lie in [2**-277, 1] or are zero).

    A division instruction handles 4 values per 8 cycles or so; this takes five
    multiply-adds.  q0 = a * rb is within 1.5 ulp of a / b; one correction with the exact
    remainder makes it faithful (within 1 ulp), and for a faithful q, y = RN(1 / b) and
    the remainder r = a - b q (exact, computed by the FMA), RN(q + r y) is the correctly
    rounded quotient (Markstein's theorem, the basis of software division on IA-64).
    A zero a keeps its sign through a * rb.  tests/test_kernels.py checks it against
    true division on adversarial operands.
    """
    q0 = a * rb
    q1 = _fma(_fma(-q0, b, a), rb, q0)
    q2 = _fma(_fma(-q1, b, a), rb, q1)
    return q2 if a != 0.0 else q0


@njit(cache=True, nogil=True)
def divide(a, b, out):
    """out[i] = a[i] / b through _div (exposes it to the tests)."""
    rb = 1.0 / b
    for i in range(a.shape[0]):
        out[i] = _div(np.float64(a[i]), b, rb)


@njit(cache=True, inline="always")
def _divide_run(src, dst, n, div, fast):
    if fast:
        rdiv = 1.0 / div
        for i in range(n):
            dst[i] = _div(np.float64(src[i]), div, rdiv)
    else:
        for i in range(n):
            dst[i] = np.float64(src[i]) / div


@njit(cache=True, inline="always")
def _unit_run(src, dst, n, root, fast):
    if fast:
        rroot = 1.0 / root
        for i in range(n):
            dst[i] = np.float32(_div(src[i], root, rroot))
    else:
        for i in range(n):
            dst[i] = np.float32(src[i] / root)


@njit(cache=True, inline="always")
def _sum_squares_8(w, d):
    """Sequential sums of squares of the 8 rows of w (row-major, 8 x d), side by side."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for i in range(d):
        v0 = w[i]
        v1 = w[d + i]
        v2 = w[2 * d + i]
        v3 = w[3 * d + i]
        v4 = w[4 * d + i]
        v5 = w[5 * d + i]
        v6 = w[6 * d + i]
        v7 = w[7 * d + i]
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        s4 += v4 * v4
        s5 += v5 * v5
        s6 += v6 * v6
        s7 += v7 * v7
    return s0, s1, s2, s3, s4, s5, s6, s7


@njit(cache=True, inline="always")
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


@njit(cache=True, inline="always")
def _load_unit_lanes(x, r0, rows, w, u, t, norms):
    """Lane l <- float32(row / ||row||) for rows r0..r0+rows-1 of x; norms in float64.

    Each row is divided by its largest magnitude first (so squares neither overflow nor
    underflow), its sum of squares is accumulated in coordinate order, and the unit vector
    is (x_i / m) / sqrt(ss).  Unused lanes and zero rows give zeros and norm 0; a row with
    a NaN or an infinity gets norm NaN (the caller refuses it).
    """
    d = x.shape[1]
    # float32 rows (float16 arrive widened): every quotient below lies in [2**-277, 1]
    # or is zero, where _div is exact; float64 rows may have subnormal maxima and
    # quotients, so they keep the division instruction
    fast = x.itemsize == 4
    mx = np.zeros(LANES)
    for l in range(LANES):
        wl = w[l * d:(l + 1) * d]
        if l < rows:
            row = x[r0 + l]
            m = _max_abs(row, d)
            mx[l] = m
            _divide_run(row, wl, d, m if m > 0.0 and m < np.inf else 1.0, fast)
        else:
            wl[:] = 0.0
    ss = _sum_squares_8(w, d)
    for l in range(LANES):
        ul = u[l * d:(l + 1) * d]
        m = mx[l]
        # a NaN anywhere makes the sum of squares NaN; an infinity makes the maximum inf
        if m == np.inf or ss[l] != ss[l] or m != m:
            norms[l] = np.nan
            ul[:] = 0.0
        elif m > 0.0:
            root = math.sqrt(ss[l])
            norms[l] = m * root
            _unit_run(w[l * d:(l + 1) * d], ul, d, root, fast)
        else:
            norms[l] = 0.0
            ul[:] = 0.0
    _transpose_in(u, d, t)


@njit(cache=True, inline="always")
def _count_above(t, thr_k, counts, n):
    for e in range(n):
        counts[e] += np.int32(t[e] > thr_k)


@njit(cache=True, inline="always")
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


@njit(cache=True, inline="always")
def _to_rows(codes, rows, d, codes8):
    """Lane-interleaved codes -> row-major (8, d); unused lanes get code 0 (padding)."""
    for l in range(LANES):
        dst = codes8[l]
        if l < rows:
            for i in range(d):
                dst[i] = codes[i * LANES + l]
        else:
            dst[:] = 0


@njit(cache=True, inline="always")
def _ls_sums_8(t, cents, codes, d, yc, cc):
    """Per lane, sequential sums of y*c and c*c (float64) over the coordinates."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = 0.0
    for i in range(d):
        e = i * LANES
        c0 = np.float64(cents[codes[e]])
        c1 = np.float64(cents[codes[e + 1]])
        c2 = np.float64(cents[codes[e + 2]])
        c3 = np.float64(cents[codes[e + 3]])
        c4 = np.float64(cents[codes[e + 4]])
        c5 = np.float64(cents[codes[e + 5]])
        c6 = np.float64(cents[codes[e + 6]])
        c7 = np.float64(cents[codes[e + 7]])
        a0 += np.float64(t[e]) * c0
        a1 += np.float64(t[e + 1]) * c1
        a2 += np.float64(t[e + 2]) * c2
        a3 += np.float64(t[e + 3]) * c3
        a4 += np.float64(t[e + 4]) * c4
        a5 += np.float64(t[e + 5]) * c5
        a6 += np.float64(t[e + 6]) * c6
        a7 += np.float64(t[e + 7]) * c7
        b0 += c0 * c0
        b1 += c1 * c1
        b2 += c2 * c2
        b3 += c3 * c3
        b4 += c4 * c4
        b5 += c5 * c5
        b6 += c6 * c6
        b7 += c7 * c7
    yc[0], yc[1], yc[2], yc[3], yc[4], yc[5], yc[6], yc[7] = a0, a1, a2, a3, a4, a5, a6, a7
    cc[0], cc[1], cc[2], cc[3], cc[4], cc[5], cc[6], cc[7] = b0, b1, b2, b3, b4, b5, b6, b7


@njit(cache=True, inline="always")
def _scales_lanes(rule, norms, t, cents, codes, out, r0, rows):
    """Per-vector scale: 0 least squares, 1 the norm, 2 unbiased inner products (float64)."""
    d = t.shape[0] // LANES
    yc = np.ones(LANES)
    cc = np.ones(LANES)
    if rule != 1:
        _ls_sums_8(t, cents, codes, d, yc, cc)
    for l in range(rows):
        nrm = norms[l]
        if nrm != nrm:
            out[r0 + l] = np.nan
        elif nrm == 0.0:
            out[r0 + l] = 0.0
        elif rule == 1:
            out[r0 + l] = nrm
        elif rule == 0:
            out[r0 + l] = nrm * (yc[l] / cc[l])
        else:
            out[r0 + l] = nrm / yc[l]


@njit(cache=True, inline="always")
def _pack_group(codes8, d, bits, out, base, limit):
    """Pack the group's row-major codes, LSB first: every 8 codes fill `bits` bytes.

    Bytes at or beyond `limit` (the end of the chunk's code section) are not written.
    Widths that divide 8 get straight-line loops the compiler vectorises.
    """
    flat = codes8.reshape(LANES * d)
    nb = min(d * bits, limit - base)
    if bits == 8:
        for o in range(nb):
            out[base + o] = flat[o]
    elif bits == 4:
        for o in range(nb):
            out[base + o] = flat[2 * o] | (flat[2 * o + 1] << np.uint8(4))
    elif bits == 2:
        for o in range(nb):
            out[base + o] = (flat[4 * o] | (flat[4 * o + 1] << np.uint8(2))
                             | (flat[4 * o + 2] << np.uint8(4))
                             | (flat[4 * o + 3] << np.uint8(6)))
    elif bits == 1:
        for o in range(nb):
            e = 8 * o
            out[base + o] = (flat[e] | (flat[e + 1] << np.uint8(1))
                             | (flat[e + 2] << np.uint8(2)) | (flat[e + 3] << np.uint8(3))
                             | (flat[e + 4] << np.uint8(4)) | (flat[e + 5] << np.uint8(5))
                             | (flat[e + 6] << np.uint8(6)) | (flat[e + 7] << np.uint8(7)))
    else:
        for m in range(d):
            v = np.uint64(0)
            for j in range(LANES):
                v |= np.uint64(flat[m * LANES + j]) << np.uint64(j * bits)
            o = base + m * bits
            for k in range(bits):
                if o + k < limit:
                    out[o + k] = np.uint8((v >> np.uint64(8 * k)) & np.uint64(0xFF))


@njit(cache=True, inline="always")
def _unpack_group(codes, base, limit, d, bits, codes8):
    """Inverse of _pack_group; codes past `limit` (unused lanes) come out as 0."""
    flat = codes8.reshape(LANES * d)
    nb = min(d * bits, limit - base)
    if bits == 8:
        for o in range(nb):
            flat[o] = codes[base + o]
    elif bits == 4:
        for o in range(nb):
            v = codes[base + o]
            flat[2 * o] = v & np.uint8(15)
            flat[2 * o + 1] = v >> np.uint8(4)
    elif bits == 2:
        for o in range(nb):
            v = codes[base + o]
            flat[4 * o] = v & np.uint8(3)
            flat[4 * o + 1] = (v >> np.uint8(2)) & np.uint8(3)
            flat[4 * o + 2] = (v >> np.uint8(4)) & np.uint8(3)
            flat[4 * o + 3] = v >> np.uint8(6)
    elif bits == 1:
        for o in range(nb):
            v = codes[base + o]
            e = 8 * o
            for j in range(8):
                flat[e + j] = (v >> np.uint8(j)) & np.uint8(1)
    else:
        mask = np.uint64((1 << bits) - 1)
        for m in range(d):
            o = base + m * bits
            v = np.uint64(0)
            for k in range(bits):
                if o + k < limit:
                    v |= np.uint64(codes[o + k]) << np.uint64(8 * k)
            for j in range(LANES):
                flat[m * LANES + j] = np.uint8((v >> np.uint64(j * bits)) & mask)
        return
    for e in range(nb * 8 // bits, LANES * d):
        flat[e] = 0


# ----------------------------------------------------------------------------- encode


@njit(cache=True, parallel=True, nogil=True)
def _encode_mse(x, signs, perms, p, hscale, thr, table, cents, bits, rule, codes, scales):
    n, d = x.shape
    ngroups = (n + LANES - 1) // LANES
    ntasks = (ngroups + GROUPS_PER_TASK - 1) // GROUPS_PER_TASK
    limit = codes.shape[0]
    for task in prange(ntasks):
        w = np.empty(LANES * d)
        u = np.empty(LANES * d, np.float32)
        t = np.empty(d * LANES, np.float32)
        tmp = np.empty(d * LANES, np.float32)
        lane_codes = np.empty(d * LANES, np.uint8)
        counts = np.empty(d * LANES, np.int32)
        codes8 = np.empty((LANES, d), np.uint8)
        norms = np.empty(LANES)
        for g in range(task * GROUPS_PER_TASK, min(ngroups, (task + 1) * GROUPS_PER_TASK)):
            r0 = g * LANES
            rows = min(LANES, n - r0)
            _load_unit_lanes(x, r0, rows, w, u, t, norms)
            y = _rotate_forward_lanes(t, tmp, signs, perms, p, hscale)
            _quantize_lanes(y, thr, table, bits, lane_codes, counts)
            _scales_lanes(rule, norms, y, cents, lane_codes, scales, r0, rows)
            _to_rows(lane_codes, rows, d, codes8)
            _pack_group(codes8, d, bits, codes, g * d * bits, limit)


def encode_mse(x, signs, perms, p, hscale, bounds, cents, bits, rule, codes, scales):
    """Encode rows of x (float32/64) into packed `bits`-bit codes and float64 scales."""
    thr = float32_thresholds(bounds)
    _encode_mse(x, signs, perms, p, hscale, thr, search_table(thr), cents, bits, rule,
                codes, scales)


@njit(cache=True, parallel=True, nogil=True)
def _encode_prod(x, signs, perms, p, hscale, thr, table, cents, bits, sketch_t,
                 codes, qbits, scales, gammas):
    n, d = x.shape
    ngroups = (n + LANES - 1) // LANES
    ntasks = (ngroups + GROUPS_PER_TASK - 1) // GROUPS_PER_TASK
    limit = codes.shape[0]
    qlimit = qbits.shape[0]
    for task in prange(ntasks):
        w = np.empty(LANES * d)
        u = np.empty(LANES * d, np.float32)
        t = np.empty(d * LANES, np.float32)
        tmp = np.empty(d * LANES, np.float32)
        proj = np.empty(d * LANES, np.float32)
        lane_codes = np.zeros(d * LANES, np.uint8)
        counts = np.empty(d * LANES, np.int32)
        codes8 = np.empty((LANES, d), np.uint8)
        norms = np.empty(LANES)
        for g in range(task * GROUPS_PER_TASK, min(ngroups, (task + 1) * GROUPS_PER_TASK)):
            r0 = g * LANES
            rows = min(LANES, n - r0)
            _load_unit_lanes(x, r0, rows, w, u, t, norms)
            y = _rotate_forward_lanes(t, tmp, signs, perms, p, hscale)
            if bits > 0:
                _quantize_lanes(y, thr, table, bits, lane_codes, counts)
                for e in range(d * LANES):
                    y[e] = y[e] - cents[lane_codes[e]]
                _to_rows(lane_codes, rows, d, codes8)
                _pack_group(codes8, d, bits, codes, g * d * bits, limit)
            # y now holds the residual r of every lane
            gg = _sum_squares_lanes(y, d)
            for l in range(rows):
                scales[r0 + l] = norms[l]
                gammas[r0 + l] = math.sqrt(gg[l]) if norms[l] != 0.0 else 0.0
            proj[:] = 0.0
            for j in range(d):
                rj = y[j * LANES:(j + 1) * LANES]
                for i in range(d):
                    _axpy8(proj, i * LANES, sketch_t[j, i], rj)
            for e in range(d * LANES):
                lane_codes[e] = 1 if proj[e] >= 0.0 else 0
            _to_rows(lane_codes, rows, d, codes8)
            _pack_group(codes8, d, 1, qbits, g * d, qlimit)


@njit(cache=True, inline="always")
def _axpy8(acc, off, s, v):
    """acc[off + l] += s * v[l] for the 8 lanes (a multiply, then an add)."""
    for l in range(LANES):
        acc[off + l] += s * v[l]


@njit(cache=True, inline="always")
def _sum_squares_lanes(t, d):
    """Per lane, the sequential float64 sum of squares over the coordinates of t."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for i in range(d):
        e = i * LANES
        v0 = np.float64(t[e])
        v1 = np.float64(t[e + 1])
        v2 = np.float64(t[e + 2])
        v3 = np.float64(t[e + 3])
        v4 = np.float64(t[e + 4])
        v5 = np.float64(t[e + 5])
        v6 = np.float64(t[e + 6])
        v7 = np.float64(t[e + 7])
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
        s4 += v4 * v4
        s5 += v5 * v5
        s6 += v6 * v6
        s7 += v7 * v7
    return s0, s1, s2, s3, s4, s5, s6, s7


def encode_prod(x, signs, perms, p, hscale, bounds, cents, bits, sketch_t,
                codes, qbits, scales, gammas):
    """prod mode: (bits) mse codes of the direction plus sign(S r) of the residual r.

    `bits` here is the mse part (b - 1, possibly 0); `sketch_t` is S transposed.
    """
    thr = float32_thresholds(bounds)
    _encode_prod(x, signs, perms, p, hscale, thr, search_table(thr), cents, bits, sketch_t,
                 codes, qbits, scales, gammas)


# ----------------------------------------------------------------------------- decode


@njit(cache=True, inline="always")
def _store_lanes(t, scales, r0, rows, out):
    d = out.shape[1]
    for l in range(rows):
        s = scales[r0 + l]
        row = out[r0 + l]
        if s != 0:
            for i in range(d):
                row[i] = s * t[i * LANES + l]
        else:
            row[:] = 0.0


@njit(cache=True, inline="always")
def _centroids_lanes(codes8, cents, d, t):
    for l in range(LANES):
        src = codes8[l]
        for i in range(d):
            t[i * LANES + l] = cents[src[i]]


@njit(cache=True, parallel=True, nogil=True)
def decode_mse(codes, scales, signs, perms, p, hscale, cents, bits, out):
    """Decode packed codes and float32 scales into float32 rows of `out`."""
    n, d = out.shape
    ngroups = (n + LANES - 1) // LANES
    ntasks = (ngroups + GROUPS_PER_TASK - 1) // GROUPS_PER_TASK
    limit = codes.shape[0]
    for task in prange(ntasks):
        t = np.empty(d * LANES, np.float32)
        tmp = np.empty(d * LANES, np.float32)
        codes8 = np.empty((LANES, d), np.uint8)
        for g in range(task * GROUPS_PER_TASK, min(ngroups, (task + 1) * GROUPS_PER_TASK)):
            r0 = g * LANES
            rows = min(LANES, n - r0)
            _unpack_group(codes, g * d * bits, limit, d, bits, codes8)
            _centroids_lanes(codes8, cents, d, t)
            y = _rotate_inverse_lanes(t, tmp, signs, perms, p, hscale)
            _store_lanes(y, scales, r0, rows, out)


@njit(cache=True, parallel=True, nogil=True)
def decode_prod(codes, qbits, scales, gammas, signs, perms, p, hscale, cents, bits,
                sketch, out):
    """prod mode: u = c[idx] + sqrt(pi/2)/d * gamma * S^T q, then rotate back and scale."""
    n, d = out.shape
    ngroups = (n + LANES - 1) // LANES
    ntasks = (ngroups + GROUPS_PER_TASK - 1) // GROUPS_PER_TASK
    limit = codes.shape[0]
    qlimit = qbits.shape[0]
    coef = math.sqrt(math.pi / 2.0) / d
    for task in prange(ntasks):
        t = np.empty(d * LANES, np.float32)
        tmp = np.empty(d * LANES, np.float32)
        corr = np.empty(d * LANES, np.float32)
        q = np.empty(d * LANES, np.float32)
        codes8 = np.zeros((LANES, d), np.uint8)
        q8 = np.empty((LANES, d), np.uint8)
        kk = np.zeros(LANES, np.float32)
        for g in range(task * GROUPS_PER_TASK, min(ngroups, (task + 1) * GROUPS_PER_TASK)):
            r0 = g * LANES
            rows = min(LANES, n - r0)
            _unpack_group(qbits, g * d, qlimit, d, 1, q8)
            for l in range(LANES):
                for i in range(d):
                    q[i * LANES + l] = 1.0 if q8[l, i] else -1.0
            corr[:] = 0.0
            for i in range(d):
                qi = q[i * LANES:(i + 1) * LANES]
                for j in range(d):
                    _axpy8(corr, j * LANES, sketch[i, j], qi)
            for l in range(rows):
                kk[l] = np.float32(coef * np.float64(gammas[r0 + l]))
            if bits > 0:
                _unpack_group(codes, g * d * bits, limit, d, bits, codes8)
                _centroids_lanes(codes8, cents, d, t)
            else:
                t[:] = 0.0
            for i in range(d):
                for l in range(LANES):
                    e = i * LANES + l
                    t[e] = t[e] + kk[l] * corr[e]
            y = _rotate_inverse_lanes(t, tmp, signs, perms, p, hscale)
            _store_lanes(y, scales, r0, rows, out)
