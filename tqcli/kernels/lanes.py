"""LLVM vector code for 8 lanes: the butterflies, row moves, transposes, divisions and sums.

A group of 8 vectors lives in a flat float32 array of d * 8 values, coordinate i of lane l
at i * 8 + l, so the 8 lanes of one coordinate are one 8-float "row".  The intrinsics here
are the operations numba alone would not vectorise: they work on whole rows as LLVM
<8 x float> / <8 x double> values.  Nothing here is a jitted function; rotate.py,
encode.py and decode.py call these from their njit code.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 8  # vectors per group (and codes per packing bundle)


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


# ----------------------------------------------------------------------------- butterflies, row moves


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


butterfly2_scaled = _butterfly_intrinsic(2, True)
butterfly4 = _butterfly_intrinsic(4, False)
butterfly4_scaled = _butterfly_intrinsic(4, True)
butterfly8 = _butterfly_intrinsic(8, False)
butterfly8_scaled = _butterfly_intrinsic(8, True)
butterfly8_in = _butterfly_intrinsic(8, False, "in")
butterfly2_scaled_out = _butterfly_intrinsic(2, True, "out")
butterfly4_scaled_out = _butterfly_intrinsic(4, True, "out")
butterfly8_scaled_out = _butterfly_intrinsic(8, True, "out")


@intrinsic
def move_row(typingctx, src, a, dst, b, negate):
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



# ----------------------------------------------------------------------------- encode steps


@intrinsic
def transpose_in8(typingctx, x, r0, col, t):
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
def lane_max_abs(typingctx, t, d, out):
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
def divide_lanes(typingctx, a, off, b, rb, out):
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



@intrinsic
def lane_sums_of_squares(typingctx, t, d, div, rdiv, ss):
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
def lane_unit(typingctx, t, d, div, rdiv, root, rroot, keep):
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



@intrinsic
def ls_sums_8(typingctx, t, cents, codes, d, yc, cc):
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



# ----------------------------------------------------------------------------- decode steps


@intrinsic
def store_scaled8(typingctx, t, col, scales, r0, out):
    """out[r0 + l, col:col + 8] <- scales[r0 + l] * coordinates col..col+7 of lane l, for
    the 8 lanes: an 8 x 8 block of a group written back to its rows (a transpose), each
    value rounded exactly as the scalar `s * t[i * 8 + l]` stored into `out` rounds it
    (float32 times a float32 scale; widened to binary64 for a float64 scale; then
    converted to out's dtype if it differs).  Scales and out: float32 or float64."""
    floats = (types.float32, types.float64)
    if getattr(scales, "dtype", None) not in floats or getattr(out, "dtype", None) not in floats:
        return None
    sig = types.none(t, col, scales, r0, out)
    wide = scales.dtype == types.float64       # the product's type, as numba types it
    to64 = out.dtype == types.float64

    def codegen(context, builder, signature, args):
        tty, _, sty, _, oty = signature.args
        t_a, col, s_a, r0, o_a = args
        tp = _array_ptr(context, builder, tty, t_a)
        rows = [builder.load(_row_ptr(builder, tp, builder.add(col, ir.Constant(col.type, k))),
                             align=4) for k in range(LANES)]
        cols = _transpose8(builder, rows)  # cols[l]: lane l's coordinates col..col+7
        sp = _array_ptr(context, builder, sty, s_a)
        o = context.make_array(oty)(context, builder, o_a)
        stride0 = cgutils.unpack_tuple(builder, o.strides, 2)[0]
        base = builder.bitcast(o.data, ir.IntType(8).as_pointer())
        pty = _LANES_F64 if wide else _ROW
        oty_v = _LANES_F64 if to64 else _ROW
        size = 8 if to64 else 4
        for l in range(LANES):
            r = builder.add(r0, ir.Constant(r0.type, l))
            s = builder.load(builder.gep(sp, [r]))
            v = builder.fpext(cols[l], pty) if wide else cols[l]
            v = builder.fmul(v, _splat(builder, s, pty))
            if wide and not to64:
                v = builder.fptrunc(v, oty_v)
            elif to64 and not wide:
                v = builder.fpext(v, oty_v)
            off = builder.add(builder.mul(r, stride0),
                              builder.mul(col, ir.Constant(col.type, size)))
            ptr = builder.bitcast(builder.gep(base, [off]), oty_v.as_pointer())
            builder.store(v, ptr, align=size)
        return context.get_dummy_value()

    return sig, codegen
