"""The numba kernels: fused encode (normalise, rotate, quantise, scale, pack) and decode.

Vectors are processed in groups of 8 held "in lockstep": a group is stored transposed, as a
(d, 8) array whose row i holds coordinate i of the 8 vectors.  Every step then works on 8
independent lanes at once, which the compiler turns into SIMD instructions without
reordering any floating-point operation: each lane still sees exactly the sequence of
roundings that spec/tqz-v1.md prescribes (sequential sums, butterflies in stage order, no
fastmath, no fused multiply-add where the spec has a multiplication and an addition; the
only FMAs, in _div_lanes, compute a correctly rounded division).  8 rows of d codes of b
bits are also a whole number of bytes, so each group owns its bytes and the output cannot
depend on the thread count.

tqcli/reference.py holds a plain-numpy version of every kernel; the tests compare them bit
for bit.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
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


# ----------------------------------------------------------------------------- lanes: vector code
#
# A group lives in a flat float32 array of d * 8 values: coordinate i of lane l at i * 8 + l,
# so the 8 lanes of one coordinate are one 8-float "row".  The butterflies are written as
# LLVM vector code (<8 x float>, one row per value) by the intrinsics below: numba does not
# run LLVM's SLP vectorizer, and its loop vectorizer cannot vectorize the early stages, whose
# runs are only one or two rows long.  Each vector fadd/fsub/fmul rounds every lane exactly
# as the scalar operation would (no fast-math flags, so nothing is fused or reordered); on a
# CPU with narrower registers LLVM splits the vectors, with the same results.  The same
# holds for the other intrinsics here (row moves, transposes, sums, divisions).

_ROW = ir.VectorType(ir.FloatType(), LANES)
_LANES_F64 = ir.VectorType(ir.DoubleType(), LANES)
_ROW_BITS = ir.VectorType(ir.IntType(32), LANES)


def _array_ptr(context, builder, aryty, ary, index=None):
    """Pointer to element `index` (or the first) of a numba array argument."""
    data = context.make_array(aryty)(context, builder, ary).data
    return data if index is None else builder.gep(data, [index])


def _splat(builder, value, vty):
    """A vector with `value` in every lane."""
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), value,
                               ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), zeros)


def _transpose8(builder, rows):
    """Transpose 8 vectors of 8 (rows[r][c] -> out[c][r]) with three stages of
    two-input shuffles; stage j swaps bit j of the row index with bit j of the column."""
    rows = list(rows)
    i32 = ir.IntType(32)
    for j in range(3):
        bit = 1 << j
        lo = [c if not c & bit else LANES + c - bit for c in range(LANES)]
        hi = [c + bit if not c & bit else LANES + c for c in range(LANES)]
        mlo = ir.Constant(ir.VectorType(i32, LANES), lo)
        mhi = ir.Constant(ir.VectorType(i32, LANES), hi)
        for r in range(LANES):
            if r & bit:
                continue
            a, b = rows[r], rows[r + bit]
            rows[r] = builder.shuffle_vector(a, b, mlo)
            rows[r + bit] = builder.shuffle_vector(a, b, mhi)
    return rows


def _matrix_row_ptr(context, builder, aryty, ary, row, col):
    """Pointer, as <8 x float>*, to element (row, col) of a 2-D float32 array (any row
    stride; elements within a row contiguous)."""
    a = context.make_array(aryty)(context, builder, ary)
    stride0 = cgutils.unpack_tuple(builder, a.strides, 2)[0]
    i8p = ir.IntType(8).as_pointer()
    off = builder.add(builder.mul(row, stride0), builder.mul(col, ir.Constant(col.type, 4)))
    ptr = builder.gep(builder.bitcast(a.data, i8p), [off])
    return builder.bitcast(ptr, _ROW.as_pointer())


def _fma_lanes(builder, a, b, c):
    """a * b + c per lane with one rounding (llvm.fma: the FMA instruction, or libm's exact
    software fma on a CPU without one -- the same result either way)."""
    fn = cgutils.get_or_insert_function(builder.module,
                                        ir.FunctionType(_LANES_F64, [_LANES_F64] * 3),
                                        f"llvm.fma.v{LANES}f64")
    return builder.call(fn, [a, b, c])


def _div_lanes(builder, a, b, rb):
    """a / b per lane in binary64, correctly rounded -- the same bits as the division --
    from rb = 1.0 / b, for finite a and b whose quotients neither overflow nor underflow
    (float32 rows: every quotient lies in [2**-277, 1] or is zero).

    A division instruction handles 4 values per 8 cycles or so; this takes a multiply and
    four multiply-adds.  q0 = a * rb is within 1.5 ulp of a / b; one correction with the
    remainder makes it faithful (within 1 ulp), and for a faithful q, y = RN(1 / b) and the
    exact remainder r = a - b q (one FMA), RN(q + r y) is the correctly rounded quotient
    (Markstein's theorem, the basis of software division on IA-64).  A zero a keeps its
    sign through a * rb.  tests/test_kernels.py checks it against true division on
    adversarial operands.
    """
    q0 = builder.fmul(a, rb)
    q1 = _fma_lanes(builder, _fma_lanes(builder, builder.fneg(q0), b, a), rb, q0)
    q2 = _fma_lanes(builder, _fma_lanes(builder, builder.fneg(q1), b, a), rb, q1)
    nonzero = builder.fcmp_unordered("!=", a, ir.Constant(_LANES_F64, [0.0] * LANES))
    return builder.select(nonzero, q2, q0)


def _load_lanes_f64(builder, ptr):
    return builder.load(builder.bitcast(ptr, _LANES_F64.as_pointer()), align=8)


def _row_ptr(builder, base, i, vty=_ROW):
    """Pointer, as vty*, to row i (elements i*8 .. i*8+7) of a lane-interleaved buffer."""
    e = builder.mul(i, ir.Constant(i.type, LANES))
    return builder.bitcast(builder.gep(base, [e]), vty.as_pointer())


def _widened_row(builder, tp, i):
    """Row i of a lane-interleaved float32 buffer, as <8 x double>, and its pointer."""
    ptr = _row_ptr(builder, tp, i)
    return builder.fpext(builder.load(ptr, align=4), _LANES_F64), ptr


# ----------------------------------------------------------------------------- lanes: rotation


def _sign_mask(builder, signs_ptr, row):
    """The sign bit of the float32 signs[row] (+-1), splat to an 8-lane integer mask."""
    bits = builder.bitcast(builder.load(builder.gep(signs_ptr, [row])), ir.IntType(32))
    bit = builder.and_(bits, ir.Constant(ir.IntType(32), 0x80000000))
    return _splat(builder, bit, _ROW_BITS)


def _butterfly_intrinsic(radix: int, scaled: bool, moved: str = ""):
    """An intrinsic f(t, a, run, scale, dst, perm, signs): rows t[a + k*run : a + k*run + 8],
    k < radix, go through log2(radix) consecutive Walsh-Hadamard stages -- stage h pairs
    rows j and j + h (sum first, difference second), stages in increasing h -- and, if
    `scaled`, every result is multiplied by `scale` (the last stage of a transform).

    moved == "": results go back to the same rows of t (dst, perm, signs unused).
    moved == "in": row R of the input is read from t's row perm[R] with its sign bits
    flipped where signs[R] < 0, and results go to dst's row R (a round's permutation fused
    into its first butterflies).  moved == "out": result row R goes to dst's row perm[R],
    flipped where signs[R] < 0 (the inverse permutation fused into the last butterflies).
    A sign flip is a multiplication by -1: the same bits either way.
    """

    def impl(typingctx, t, a, run, scale, dst, perm, signs):
        sig = types.none(t, a, run, scale, dst, perm, signs)

        def codegen(context, builder, signature, args):
            ary, a, run, scale, d_ary, p_ary, s_ary = args
            tty, _, _, _, dty, pty, sty = signature.args
            base = _array_ptr(context, builder, tty, ary)
            out = _array_ptr(context, builder, dty, d_ary)
            pp = _array_ptr(context, builder, pty, p_ary)
            sp = _array_ptr(context, builder, sty, s_ary)
            i64 = ir.IntType(64)
            rows = []
            for k in range(radix):
                idx = builder.add(a, builder.mul(run, ir.Constant(run.type, k)))
                rows.append(builder.sdiv(idx, ir.Constant(idx.type, LANES)))

            def permuted(row):
                return builder.sext(builder.load(builder.gep(pp, [row])), i64)

            xs = []
            for r in rows:
                if moved == "in":
                    v = builder.load(_row_ptr(builder, base, permuted(r), _ROW_BITS), align=4)
                    xs.append(builder.bitcast(builder.xor(v, _sign_mask(builder, sp, r)), _ROW))
                else:
                    xs.append(builder.load(_row_ptr(builder, base, r), align=4))
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
            for x, r in zip(xs, rows):
                if moved == "out":
                    v = builder.xor(builder.bitcast(x, _ROW_BITS), _sign_mask(builder, sp, r))
                    builder.store(v, _row_ptr(builder, out, permuted(r), _ROW_BITS), align=4)
                else:
                    builder.store(x, _row_ptr(builder, out if moved == "in" else base, r), align=4)
            return context.get_dummy_value()

        return sig, codegen

    impl.__name__ = f"_butterfly{radix}{'_scaled' if scaled else ''}{'_' + moved if moved else ''}"
    return intrinsic(impl)


_butterfly2_scaled = _butterfly_intrinsic(2, True)
_butterfly4 = _butterfly_intrinsic(4, False)
_butterfly4_scaled = _butterfly_intrinsic(4, True)
_butterfly8 = _butterfly_intrinsic(8, False)
_butterfly8_scaled = _butterfly_intrinsic(8, True)
_butterfly8_in = _butterfly_intrinsic(8, False, "in")
_butterfly2_scaled_out = _butterfly_intrinsic(2, True, "out")
_butterfly4_scaled_out = _butterfly_intrinsic(4, True, "out")
_butterfly8_scaled_out = _butterfly_intrinsic(8, True, "out")


_NO_PERM = np.zeros(1, np.int32)      # placeholders for the permutation arguments of a
_NO_SIGNS = np.ones(1, np.float32)    # transform that moves no rows


@njit(cache=True, inline="always")
def _fwht_lanes(t, off, p, scale):
    """Normalised Walsh-Hadamard transform of coordinates off..off+p-1 of all 8 lanes.

    Stages h = 1, 2, 4, ... run three at a time (two or one for the remainder); the last
    stage multiplies by the scale.  The additions are those of the stage-by-stage order.
    """
    _fwht_stages(t, off, p, scale, 1, t, _NO_PERM, _NO_SIGNS, False)


@njit(cache=True, inline="always")
def _fwht_stages(t, off, p, scale, h, dst, perm, signs, scatter):
    """Stages h, 2h, ... of the transform of coordinates off..off+p-1 (see _fwht_lanes).
    With `scatter`, the last pass writes its rows permuted into dst (see "out" above)."""
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
                        _butterfly8_scaled_out(t, k, run, scale, dst, perm, signs)
                    elif radix == 4:
                        _butterfly4_scaled_out(t, k, run, scale, dst, perm, signs)
                    else:
                        _butterfly2_scaled_out(t, k, run, scale, dst, perm, signs)
                elif radix == 8:
                    if last:
                        _butterfly8_scaled(t, k, run, scale, t, perm, signs)
                    else:
                        _butterfly8(t, k, run, scale, t, perm, signs)
                elif radix == 4:
                    if last:
                        _butterfly4_scaled(t, k, run, scale, t, perm, signs)
                    else:
                        _butterfly4(t, k, run, scale, t, perm, signs)
                else:
                    _butterfly2_scaled(t, k, run, scale, t, perm, signs)
        h *= radix


@intrinsic
def _move_row(typingctx, src, a, dst, b, negate):
    """dst's row b <- src's row a (8 floats each), with every sign bit flipped when
    `negate`: the same bits as multiplying by -1.0, moved as one vector of integers."""
    sig = types.none(src, a, dst, b, negate)

    def codegen(context, builder, signature, args):
        s_ary, a, d_ary, b, neg = args
        sty, _, dty, _, _ = signature.args
        ps = _row_ptr(builder, _array_ptr(context, builder, sty, s_ary), a, _ROW_BITS)
        pd = _row_ptr(builder, _array_ptr(context, builder, dty, d_ary), b, _ROW_BITS)
        bit = builder.select(neg, ir.Constant(ir.IntType(32), 0x80000000),
                             ir.Constant(ir.IntType(32), 0))
        v = builder.xor(builder.load(ps, align=4), _splat(builder, bit, _ROW_BITS))
        builder.store(v, pd, align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, inline="always")
def _permute_lanes(src, dst, signs_r, perm_r, inverse):
    """dst[i] = s_i * src[perm_i] (forward) or dst[perm_i] = s_i * src[i] (inverse), 8 lanes.

    Multiplying by +-1 only sets the sign bit, so each row of 8 floats moves as a vector
    of integers XORed with the sign mask: the same bits as the float multiplication.
    """
    d = perm_r.shape[0]
    for i in range(d):
        neg = signs_r[i] < 0
        if inverse:
            _move_row(src, i, dst, perm_r[i], neg)
        else:
            _move_row(src, perm_r[i], dst, i, neg)


@njit(cache=True, inline="always")
def _rotate_forward_lanes(t, tmp, signs, perms, p, scale):
    """Forward rotation of the 8 lanes of t (flat, d * 8); returns the buffer holding the
    result (t or tmp: the rounds alternate between the two)."""
    rounds, d = signs.shape
    src, dst = t, tmp
    for r in range(rounds):
        if p >= 16:
            # the permutation is read by the first butterflies of the first block; the
            # rows after it are moved on their own
            sr, pr = signs[r], perms[r]
            for i in range(0, p * LANES, 8 * LANES):
                _butterfly8_in(src, i, LANES, scale, dst, pr, sr)
            for i in range(p, d):
                _move_row(src, pr[i], dst, i, sr[i] < 0)
            _fwht_stages(dst, 0, p, scale, 8, dst, pr, sr, False)
        else:
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
        sr, pr = signs[r], perms[r]
        # the last butterflies of the first block write their rows permuted; the rows
        # after it are moved on their own
        _fwht_stages(src, 0, p, scale, 1, dst, pr, sr, p >= 2)
        if p < 2:
            _permute_lanes(src, dst, sr, pr, True)
        else:
            for i in range(p, d):
                _move_row(src, i, dst, pr[i], sr[i] < 0)
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
def _transpose_in8(typingctx, x, r0, col, t):
    """t rows col..col+7 <- columns col..col+7 of rows r0..r0+7 of float32 x (8 x 8)."""
    sig = types.none(x, r0, col, t)

    def codegen(context, builder, signature, args):
        xty, _, _, tty = signature.args
        x_a, r0, col, t_a = args
        rows = [builder.load(_matrix_row_ptr(context, builder, xty, x_a,
                                             builder.add(r0, ir.Constant(r0.type, l)), col),
                             align=4) for l in range(LANES)]
        cols = _transpose8(builder, rows)
        tp = _array_ptr(context, builder, tty, t_a)
        for k in range(LANES):
            row = _row_ptr(builder, tp, builder.add(col, ir.Constant(col.type, k)))
            builder.store(cols[k], row, align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _lane_max_abs(typingctx, t, d, out):
    """out[l] = largest |t[i*8 + l]| over i < d (float32, then widened): max is exact in
    any order.  NaNs are not looked for here (the sum of squares catches them)."""
    sig = types.none(t, d, out)

    def codegen(context, builder, signature, args):
        tty, _, oty = signature.args
        t_a, d, o_a = args
        tp = _array_ptr(context, builder, tty, t_a)
        bits = ir.Constant(_ROW_BITS, [0x7FFFFFFF] * LANES)
        acc = cgutils.alloca_once_value(builder, ir.Constant(_ROW, [0.0] * LANES))
        with cgutils.for_range(builder, d) as loop:
            v = builder.load(_row_ptr(builder, tp, loop.index, _ROW_BITS), align=4)
            a = builder.bitcast(builder.and_(v, bits), _ROW)
            m = builder.load(acc)
            builder.store(builder.select(builder.fcmp_ordered(">", a, m), a, m), acc)
        out = _array_ptr(context, builder, oty, o_a)
        builder.store(builder.fpext(builder.load(acc), _LANES_F64),
                      builder.bitcast(out, _LANES_F64.as_pointer()), align=8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _divide_lanes(typingctx, a, off, b, rb, out):
    """out[off:off+8] = a[off:off+8] / b[0:8] (float64, lane by lane) through _div_lanes,
    given rb = 1.0 / b; exposes the division to the tests."""
    sig = types.none(a, off, b, rb, out)

    def codegen(context, builder, signature, args):
        aty, _, bty, rty, oty = signature.args
        a_a, off, b_a, r_a, o_a = args
        x = _load_lanes_f64(builder, _array_ptr(context, builder, aty, a_a, off))
        q = _div_lanes(builder, x, _load_lanes_f64(builder, _array_ptr(context, builder, bty, b_a)),
                       _load_lanes_f64(builder, _array_ptr(context, builder, rty, r_a)))
        out = _array_ptr(context, builder, oty, o_a, off)
        builder.store(q, builder.bitcast(out, _LANES_F64.as_pointer()), align=8)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def divide(a, b, out):
    """out[i] = float64(a[i]) / b computed as the encoder does for float32 rows (exposed
    for the tests)."""
    bb = np.full(LANES, b)
    rb = np.full(LANES, 1.0 / b)
    x = np.zeros(LANES)
    q = np.empty(LANES)
    n = a.shape[0]
    for off in range(0, n, LANES):
        k = min(LANES, n - off)
        for j in range(k):
            x[j] = np.float64(a[off + j])
        _divide_lanes(x, 0, bb, rb, q)
        for j in range(k):
            out[off + j] = q[j]


@intrinsic
def _lane_sums_of_squares(typingctx, t, d, div, rdiv, ss):
    """ss[l] = sequential float64 sum over i < d of (t[i*8 + l] / div[l])**2, where t is
    float32 and the quotient is _div_lanes's (given rdiv = 1 / div)."""
    sig = types.none(t, d, div, rdiv, ss)

    def codegen(context, builder, signature, args):
        tty, _, dty, rty, sty = signature.args
        t_a, d, div_a, rdiv_a, ss_a = args
        tp = _array_ptr(context, builder, tty, t_a)
        b = _load_lanes_f64(builder, _array_ptr(context, builder, dty, div_a))
        rb = _load_lanes_f64(builder, _array_ptr(context, builder, rty, rdiv_a))
        acc = cgutils.alloca_once_value(builder, ir.Constant(_LANES_F64, [0.0] * LANES))
        with cgutils.for_range(builder, d) as loop:
            v, _ = _widened_row(builder, tp, loop.index)
            w = _div_lanes(builder, v, b, rb)
            builder.store(builder.fadd(builder.load(acc), builder.fmul(w, w)), acc)
        out = _array_ptr(context, builder, sty, ss_a)
        builder.store(builder.load(acc), builder.bitcast(out, _LANES_F64.as_pointer()), align=8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _lane_unit(typingctx, t, d, div, rdiv, root, rroot, keep):
    """In place: t[i*8 + l] <- float32((t[i*8 + l] / div[l]) / root[l]) where keep[l] != 0,
    else 0; both quotients binary64 via _div_lanes."""
    sig = types.none(t, d, div, rdiv, root, rroot, keep)

    def codegen(context, builder, signature, args):
        tty = signature.args[0]
        t_a, d = args[0], args[1]
        tp = _array_ptr(context, builder, tty, t_a)
        vecs = [_load_lanes_f64(builder, _array_ptr(context, builder, signature.args[k], args[k]))
                for k in range(2, 7)]
        b, rb, rt, rrt, keep = vecs
        mask = builder.fcmp_unordered("!=", keep, ir.Constant(_LANES_F64, [0.0] * LANES))
        zero = ir.Constant(_ROW, [0.0] * LANES)
        with cgutils.for_range(builder, d) as loop:
            v, ptr = _widened_row(builder, tp, loop.index)
            u = _div_lanes(builder, _div_lanes(builder, v, b, rb), rt, rrt)
            u = builder.select(mask, builder.fptrunc(u, _ROW), zero)
            builder.store(u, ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, inline="always")
def _divide_run(src, dst, n, div):
    for i in range(n):
        dst[i] = np.float64(src[i]) / div


@njit(cache=True, inline="always")
def _unit_run(src, dst, n, root):
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
def _transpose_rows_in(x, r0, rows, d, t):
    """Rows r0..r0+rows-1 of x -> lane-interleaved t[i * 8 + l]; other lanes 0 (the
    general case: a partial group, or rows that are not contiguous)."""
    t[:] = 0.0
    for l in range(rows):
        row = x[r0 + l]
        for i in range(d):
            t[i * LANES + l] = row[i]


@njit(cache=True, inline="always")
def _load_unit_lanes(x, r0, rows, w, u, t, norms, lane):
    """Lane l <- float32(row / ||row||) for rows r0..r0+rows-1 of x; norms in float64.

    Each row is divided by its largest magnitude m first (so squares neither overflow nor
    underflow), its sum of squares ss is accumulated in coordinate order, and the unit
    vector is (x_i / m) / sqrt(ss).  Unused lanes and zero rows give zeros and norm 0; a
    row with a NaN or an infinity gets norm NaN (the caller refuses it).  `lane` is (6, 8)
    float64 scratch.

    float32 rows (float16 arrive widened) take the vector path, whose divisions are
    _div_lanes; float64 rows, whose maxima and quotients may be subnormal, are divided by
    the division instruction, one row at a time.
    """
    d = x.shape[1]
    div, rdiv, ss, root, rroot, keep = lane[0], lane[1], lane[2], lane[3], lane[4], lane[5]
    fast = x.itemsize == 4
    if fast:
        if rows == LANES and x.strides[1] == 4:
            full = d - d % LANES
            for col in range(0, full, LANES):
                _transpose_in8(x, r0, col, t)
            for i in range(full, d):
                for l in range(LANES):
                    t[i * LANES + l] = x[r0 + l, i]
        else:
            _transpose_rows_in(x, r0, rows, d, t)
        _lane_max_abs(t, d, keep)
    else:
        for l in range(LANES):
            keep[l] = _max_abs(x[r0 + l], d) if l < rows else 0.0
    for l in range(LANES):
        m = keep[l]
        div[l] = m if m > 0.0 and m < np.inf else 1.0
        rdiv[l] = 1.0 / div[l]
    if fast:
        _lane_sums_of_squares(t, d, div, rdiv, ss)
    else:
        for l in range(LANES):
            wl = w[l * d:(l + 1) * d]
            if l < rows:
                _divide_run(x[r0 + l], wl, d, div[l])
            else:
                wl[:] = 0.0
        s8 = _sum_squares_8(w, d)
        for l in range(LANES):
            ss[l] = s8[l]
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
    if fast:
        _lane_unit(t, d, div, rdiv, root, rroot, keep)
    else:
        for l in range(LANES):
            ul = u[l * d:(l + 1) * d]
            if keep[l] != 0.0:
                _unit_run(w[l * d:(l + 1) * d], ul, d, root[l])
            else:
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


@intrinsic
def _ls_sums_8(typingctx, t, cents, codes, d, yc, cc):
    """Per lane, sequential float64 sums of y*c and c*c over the d coordinates, where y is
    the lane's rotated value and c = cents[code] (both float32, widened exactly); written
    to yc[0:8] and cc[0:8].  One <8 x double> accumulator per sum: lane l adds its own
    terms in coordinate order, as the spec's sequential sums do."""
    sig = types.none(t, cents, codes, d, yc, cc)

    def codegen(context, builder, signature, args):
        tt, cty, kty, _, yty, ccty = signature.args
        t_a, c_a, k_a, d, y_a, cc_a = args
        tp = _array_ptr(context, builder, tt, t_a)
        cp = _array_ptr(context, builder, cty, c_a)
        kp = _array_ptr(context, builder, kty, k_a)
        zero = ir.Constant(_LANES_F64, [0.0] * LANES)
        acc_y = cgutils.alloca_once_value(builder, zero)
        acc_c = cgutils.alloca_once_value(builder, zero)
        i64 = ir.IntType(64)
        with cgutils.for_range(builder, d) as loop:
            y, _ = _widened_row(builder, tp, loop.index)
            e = builder.mul(loop.index, ir.Constant(loop.index.type, LANES))
            c = ir.Constant(_ROW, ir.Undefined)
            for l in range(LANES):
                code = builder.load(builder.gep(kp, [builder.add(e, ir.Constant(e.type, l))]))
                cl = builder.load(builder.gep(cp, [builder.zext(code, i64)]))
                c = builder.insert_element(c, cl, ir.Constant(ir.IntType(32), l))
            c = builder.fpext(c, _LANES_F64)
            builder.store(builder.fadd(builder.load(acc_y), builder.fmul(y, c)), acc_y)
            builder.store(builder.fadd(builder.load(acc_c), builder.fmul(c, c)), acc_c)
        for acc, aty, a in ((acc_y, yty, y_a), (acc_c, ccty, cc_a)):
            out = _array_ptr(context, builder, aty, a)
            builder.store(builder.load(acc), builder.bitcast(out, _LANES_F64.as_pointer()), align=8)
        return context.get_dummy_value()

    return sig, codegen


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


@njit(cache=True, inline="always")
def _encode_scratch(d):
    """One parallel task's buffers for encoding groups of d-dimensional rows: w, u (the
    float64-row path of _load_unit_lanes), t and tmp (the group and the rotation's second
    buffer), lane codes, threshold counts, row-major codes, norms, lane scratch."""
    return (np.empty(LANES * d), np.empty(LANES * d, np.float32),
            np.empty(d * LANES, np.float32), np.empty(d * LANES, np.float32),
            np.empty(d * LANES, np.uint8), np.empty(d * LANES, np.int32),
            np.empty((LANES, d), np.uint8), np.empty(LANES), np.empty((6, LANES)))


@njit(cache=True, parallel=True, nogil=True)
def _encode_mse(x, signs, perms, p, hscale, thr, table, cents, bits, rule, codes, scales):
    n, d = x.shape
    ngroups = (n + LANES - 1) // LANES
    ntasks = (ngroups + GROUPS_PER_TASK - 1) // GROUPS_PER_TASK
    limit = codes.shape[0]
    for task in prange(ntasks):
        w, u, t, tmp, lane_codes, counts, codes8, norms, lane = _encode_scratch(d)
        for g in range(task * GROUPS_PER_TASK, min(ngroups, (task + 1) * GROUPS_PER_TASK)):
            r0 = g * LANES
            rows = min(LANES, n - r0)
            _load_unit_lanes(x, r0, rows, w, u, t, norms, lane)
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
        w, u, t, tmp, lane_codes, counts, codes8, norms, lane = _encode_scratch(d)
        proj = np.empty(d * LANES, np.float32)
        for g in range(task * GROUPS_PER_TASK, min(ngroups, (task + 1) * GROUPS_PER_TASK)):
            r0 = g * LANES
            rows = min(LANES, n - r0)
            _load_unit_lanes(x, r0, rows, w, u, t, norms, lane)
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
