"""The AVX2 scan of nibble layouts: 32 table look-ups per vpshufb, several queries per pass.

Block byte g * 16 + r holds nibble g of rows r (low half) and r + 16 (high half), so the
32 bytes of positions g, g + 1 load as one 256-bit register whose 128-bit lanes hold one
position each; query i's tables of those positions (16 bytes each, contiguous) load as
another.  vpshufb looks up, in each lane, the low nibbles (rows 0..15) and, after a shift,
the high ones (rows 16..31).  The uint8 results are summed in 16-bit lanes without
widening each byte: a register of bytes read as 16-bit words w = even + 256 * odd is
added to one accumulator and w >> 8 (the odd bytes) to another, and after at most 256
steps (sums below 2**16) even = acc - (odd << 8) modulo 2**16 is exact; then the two
lanes' sums of each row are added into uint32 and the accumulators restart.  All of it is
integer arithmetic: the sums equal scan_portable's bit for bit, and the same float64
top-k step (scan_portable.block_topk) follows.

Loop order: blocks in tiles that stay in the L2 cache; per tile, queries in batches of
QBATCH (their tables stay in L1/L2), each batch going over the tile's blocks.  Codes are
read from memory once per tile.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .lanes import _array_ptr
from .scan_portable import BLOCK, block_extremes, block_topk

QBATCH = 2            # queries per pass over a block (4 spill the 16 accumulators: slower)
TILE_BYTES = 192 * 1024  # codes per tile (fits the L2 cache with the tables)
FLUSH = 256          # steps before the 16-bit accumulators are widened
PREFETCH = 1024       # bytes ahead a single query prefetches its codes (0 -> 1024: ~+20%)

_I8 = ir.IntType(8)
_I16 = ir.IntType(16)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_V32I8 = ir.VectorType(_I8, 32)
_V16I16 = ir.VectorType(_I16, 16)
_V16I32 = ir.VectorType(_I32, 16)
_V8I32 = ir.VectorType(_I32, 8)


def _c(ty, v):
    return ir.Constant(ty, v)


def _load32(builder, base, off):
    ptr = builder.gep(base, [off])
    return builder.load(builder.bitcast(ptr, _V32I8.as_pointer()), align=1)


def _prefetch(builder, base, off):
    """Ask for the cache line at base + off (llvm.prefetch: read, keep in all levels); a
    hint only, harmless past the end of the array."""
    i8p = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32]),
        "llvm.prefetch.p0i8")
    ptr = builder.bitcast(builder.gep(base, [off]), i8p)
    builder.call(fn, [ptr, _c(_I32, 0), _c(_I32, 3), _c(_I32, 1)])


def _pshufb(builder, table, idx):
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V32I8, [_V32I8, _V32I8]),
                                        "llvm.x86.avx2.pshuf.b")
    return builder.call(fn, [table, idx])


def _flush(builder, acc_even, acc_odd, out_ptr):
    """Add the 16 rows' sums of one half (words: rows 2w, 2w+1 of lane w // 8) to the
    uint32 out_ptr[0:16]."""
    even = builder.sub(acc_even, builder.shl(acc_odd, _c(_V16I16, [8] * 16)))
    e32 = builder.zext(even, _V16I32)
    o32 = builder.zext(acc_odd, _V16I32)
    undef = _c(_V16I32, ir.Undefined)

    def halves(v):
        lo = builder.shuffle_vector(v, undef, _c(ir.VectorType(_I32, 8), list(range(8))))
        hi = builder.shuffle_vector(v, undef, _c(ir.VectorType(_I32, 8), list(range(8, 16))))
        return builder.add(lo, hi)

    e8, o8 = halves(e32), halves(o32)
    inter = [x for w in range(8) for x in (w, 8 + w)]
    rows = builder.shuffle_vector(e8, o8, _c(ir.VectorType(_I32, 16), inter))
    p = builder.bitcast(out_ptr, _V16I32.as_pointer())
    builder.store(builder.add(builder.load(p, align=4), rows), p, align=4)


def _block_sums_intrinsic(nq: int):
    """f(data, boff, tab, toff, tstride, npairs, sums): sums[q * 32 + r] (uint32) <- the sum
    over positions of query q's table entry for row r, for nq queries whose tables start at
    byte toff + q * tstride of `tab`, over the block at byte boff of `data`."""

    def impl(typingctx, data, boff, tab, toff, tstride, npairs, sums):
        sig = types.none(data, boff, tab, toff, tstride, npairs, sums)

        def codegen(context, builder, signature, args):
            d_a, boff, t_a, toff, tstride, npairs, s_a = args
            dty, _, tty, _, _, _, sty = signature.args
            dp = _array_ptr(context, builder, dty, d_a)
            tp = _array_ptr(context, builder, tty, t_a)
            sp = _array_ptr(context, builder, sty, s_a)
            zero16 = _c(_V16I16, [0] * 16)
            for q in range(nq):
                for h in range(2):
                    p = builder.bitcast(builder.gep(sp, [_c(_I64, q * BLOCK + h * 16)]),
                                        _V16I32.as_pointer())
                    builder.store(_c(_V16I32, [0] * 16), p, align=4)
            accs = [[cgutils.alloca_once_value(builder, zero16) for _ in range(4)]
                    for _ in range(nq)]
            lowmask = _c(_V32I8, [15] * 32)
            tbases = [builder.add(toff, builder.mul(tstride, _c(_I64, q))) for q in range(nq)]
            nchunks = builder.sdiv(builder.add(npairs, _c(_I64, FLUSH - 1)), _c(_I64, FLUSH))
            with cgutils.for_range(builder, nchunks) as outer:
                start = builder.mul(outer.index, _c(_I64, FLUSH))
                count = builder.sub(npairs, start)
                big = builder.icmp_signed(">", count, _c(_I64, FLUSH))
                count = builder.select(big, _c(_I64, FLUSH), count)
                for q in range(nq):
                    for a in accs[q]:
                        builder.store(zero16, a)
                with cgutils.for_range(builder, count) as inner:
                    step = builder.add(start, inner.index)
                    off = builder.mul(step, _c(_I64, 32))
                    v = _load32(builder, dp, builder.add(boff, off))
                    if nq == 1:  # one query streams the codes from memory: run ahead
                        _prefetch(builder, dp, builder.add(builder.add(boff, off),
                                                           _c(_I64, PREFETCH)))
                    lo = builder.and_(v, lowmask)
                    hi = builder.bitcast(builder.lshr(builder.bitcast(v, _V16I16),
                                                      _c(_V16I16, [4] * 16)), _V32I8)
                    hi = builder.and_(hi, lowmask)
                    for q in range(nq):
                        t = _load32(builder, tp, builder.add(tbases[q], off))
                        for k, idx in enumerate((lo, hi)):
                            r = builder.bitcast(_pshufb(builder, t, idx), _V16I16)
                            ae, ao = accs[q][2 * k], accs[q][2 * k + 1]
                            builder.store(builder.add(builder.load(ae), r), ae)
                            odd = builder.lshr(r, _c(_V16I16, [8] * 16))
                            builder.store(builder.add(builder.load(ao), odd), ao)
                for q in range(nq):
                    for k in range(2):
                        out = builder.gep(sp, [_c(_I64, q * BLOCK + k * 16)])
                        _flush(builder, builder.load(accs[q][2 * k]),
                               builder.load(accs[q][2 * k + 1]), out)
            return context.get_dummy_value()

        return sig, codegen

    impl.__name__ = f"_nib_block_sums_avx2_{nq}"
    return intrinsic(impl)


_sums1 = _block_sums_intrinsic(1)
_sums_batch = _block_sums_intrinsic(QBATCH)


@njit(cache=True, nogil=True)
def scan_avx2(data, rows, tables, delta, offset, scale, qconst, vweight, vbias, use_q,
              use_b, allow, use_allow, row_offset, hs, hi):
    """Every block of a nibble layout against every query, into the heaps (hs, hi)."""
    nblocks, bbytes = data.shape
    m, npos = tables.shape[0], tables.shape[1]
    flat = data.reshape(-1)
    tflat = tables.reshape(-1)
    tstride = np.int64(npos * 16)
    npairs = np.int64(npos // 2)
    sums = np.empty(QBATCH * BLOCK, np.uint32)
    buf = np.empty(BLOCK)
    ext, ok = block_extremes(rows, scale, vweight, vbias, use_q, use_b)
    tile = max(1, TILE_BYTES // bbytes)
    live = np.ones(nblocks, np.bool_)
    if use_allow:
        for b in range(nblocks):
            r0 = b * BLOCK
            live[b] = allow[r0:min(rows, r0 + BLOCK)].any()
    for b0 in range(0, nblocks, tile):
        b1 = min(nblocks, b0 + tile)
        q0 = 0
        while q0 < m:
            nq = QBATCH if m - q0 >= QBATCH else 1
            for b in range(b0, b1):
                if not live[b]:
                    continue
                boff = np.int64(b) * bbytes
                toff = np.int64(q0) * tstride
                if nq == QBATCH:
                    _sums_batch(flat, boff, tflat, toff, tstride, npairs, sums)
                else:
                    _sums1(flat, boff, tflat, toff, tstride, npairs, sums)
                block_topk(sums, nq, q0, b, rows, delta, offset, scale, qconst, vweight,
                           vbias, use_q, use_b, allow, use_allow, row_offset, hs, hi, buf,
                           ext, ok)
            q0 += nq
