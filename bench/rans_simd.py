#!/usr/bin/env python3
"""Why the rANS decoder is scalar: one decoding round of the 8 lanes as one <8 x i64> vector
(gathers from the slot tables, the refill words gathered at their prefix offsets; generic
LLVM vector IR, which LLVM lowers to AVX2 gathers here) against rans8.py's scalar rounds,
for one stream at a time and for four streams interleaved (to hide the gathers' latency).

    PYTHONPATH=. python bench/rans_simd.py

On the AMD EPYC (znver3, AVX2) VM, single thread, thread CPU time, M = 55, P = 16
(2026-12-07): scalar 388-404 Msym/s, vector 1 stream 139-149, vector 4 streams 192-195.
The format's 64-bit states and 2^Q-entry tables make every round three 8-wide gathers and
64-bit multiplies that AVX2 lacks, so the scalar rounds (8 states in registers, 8
independent chains for the out-of-order core) stay the faster.  A probe, not a kernel:
nothing in tqcli uses this code.
"""

import os
import sys
import time
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from tqcli.kernels.rans8 import decode_run, load_states, end_status, J8

I1, I8, I16, I32, I64 = (ir.IntType(b) for b in (1, 8, 16, 32, 64))
V8 = lambda t: ir.VectorType(t, 8)

def _ptr(context, builder, aryty, ary):
    return context.make_array(aryty)(context, builder, ary).data

def _splat(builder, value, vty):
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), value, ir.Constant(I32, 0))
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), ir.Constant(V8(I32), [0] * 8))

def _vgep(builder, base, idx, ety):
    """<8 x ety*> addresses base + idx * sizeof(ety) (llvmlite's gep takes no vector index)."""
    b = _splat(builder, builder.ptrtoint(base, I64), V8(I64))
    if idx.type.element.width < 64:
        idx = builder.zext(idx, V8(I64))
    off = builder.mul(idx, _splat(builder, ir.Constant(I64, ety.width // 8), V8(I64)))
    return builder.inttoptr(builder.add(b, off), ir.VectorType(ety.as_pointer(), 8))


def _gather(builder, ptrs, mask, ety):
    mod = builder.module
    pty = ptrs.type
    name = f"llvm.masked.gather.v8{ 'i' + str(ety.width)}.v8p0{'i' + str(ety.width)}"
    fn = cgutils.get_or_insert_function(mod, ir.FunctionType(V8(ety), [pty, I32, V8(I1), V8(ety)]), name)
    return builder.call(fn, [ptrs, ir.Constant(I32, 4 if ety.width >= 32 else 2), mask, ir.Constant(V8(ety), ir.Undefined)])

@intrinsic
def simd_round(typingctx, st, buf, at, fb, table, pref, precision, sym, t):
    """One round: states st (uint64[8]) updated; symbols into sym[t:t+8]; words from
    buf at byte `at` (the caller made sure 8 are there); returns the words taken."""
    sig = types.int64(st, buf, types.int64, fb, table, pref, types.int64, sym, types.int64)
    def codegen(context, builder, signature, args):
        st_, buf_, at_, fb_, table_, pref_, p_, sym_, t_ = args
        sa = signature.args
        stp = builder.bitcast(_ptr(context, builder, sa[0], st_), V8(I64).as_pointer())
        x = builder.load(stp, align=8)
        mask = _splat(builder, builder.sub(builder.shl(ir.Constant(I64, 1), p_), ir.Constant(I64, 1)), V8(I64))
        slot = builder.and_(x, mask)
        allm = ir.Constant(V8(I1), [1] * 8)
        fbp = _ptr(context, builder, sa[3], fb_)
        e = _gather(builder, _vgep(builder, fbp, slot, I32), allm, I32)
        tbp = _ptr(context, builder, sa[4], table_)
        s = builder.trunc(_gather(builder, _vgep(builder, tbp, slot, I32), allm, I32), V8(I16))
        e64 = builder.zext(e, V8(I64))
        f = builder.and_(e64, _splat(builder, ir.Constant(I64, 0xFFFF), V8(I64)))
        bias = builder.lshr(e64, _splat(builder, ir.Constant(I64, 16), V8(I64)))
        x = builder.add(builder.mul(f, builder.lshr(x, _splat(builder, p_, V8(I64)))), bias)
        need = builder.icmp_unsigned("<", x, _splat(builder, ir.Constant(I64, 1 << 31), V8(I64)))
        bits = builder.bitcast(need, I8)
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(I8, [I8]), "llvm.ctpop.i8")
        cnt = builder.zext(builder.call(ctpop, [bits]), I64)
        prp = builder.bitcast(_ptr(context, builder, sa[5], pref_), V8(I32).as_pointer())
        offs = builder.load(builder.gep(prp, [builder.zext(bits, I64)]), align=4)
        bp = builder.bitcast(builder.gep(_ptr(context, builder, sa[1], buf_), [at_]), I32.as_pointer())
        w = _gather(builder, _vgep(builder, bp, offs, I32), need, I32)
        xr = builder.or_(builder.shl(x, _splat(builder, ir.Constant(I64, 32), V8(I64))), builder.zext(w, V8(I64)))
        x = builder.select(need, xr, x)
        builder.store(x, stp, align=8)
        sp = builder.bitcast(builder.gep(_ptr(context, builder, sa[7], sym_), [t_]), V8(I16).as_pointer())
        builder.store(s, sp, align=2)
        return cnt
    return sig, codegen

def prefix_table():
    out = np.zeros((256, 8), np.int32)
    for m in range(256):
        c = 0
        for j in range(8):
            out[m, j] = c
            if m >> j & 1:
                c += 1
    return out

@njit(cache=False, nogil=True)
def decode_simd_kernel(buf, starts, lengths, counts, out_starts, fb, table, pref, precision, out, status, task0, task1):
    st = np.empty(J8, np.uint64)
    ident = np.arange(table[table.size - 1] + 1).astype(np.uint16)
    for seg in range(task0, task1):
        w0 = starts[seg]; nwords = lengths[seg] // 4
        status[seg] = load_states(buf, w0, nwords, st)
        if status[seg] != 0:
            continue
        o = out_starts[seg]; n = counts[seg]
        pos = 2 * J8
        t = 0
        while t + J8 <= n and pos + J8 <= nwords:
            pos += simd_round(st, buf, w0 + 4 * pos, fb, table, pref, precision, out, o + t)
            t += J8
        pos = decode_run(buf, w0, nwords, pos, st, fb, table, precision, ident, out, o + t, 1, n - t)
        status[seg] = end_status(st, pos, nwords)


@njit(cache=False, nogil=True)
def decode_simd4_kernel(buf, starts, lengths, counts, out_starts, fb, table, pref, precision, out, status, task0, task1):
    K = 4
    st = np.empty((K, J8), np.uint64)
    pos = np.zeros(K, np.int64); t = np.zeros(K, np.int64)
    ident = np.arange(table[table.size - 1] + 1).astype(np.uint16)
    for s0 in range(task0, task1, K):
        k1 = min(K, task1 - s0)
        ok = True
        for k in range(k1):
            seg = s0 + k
            status[seg] = load_states(buf, starts[seg], lengths[seg] // 4, st[k])
            pos[k] = 2 * J8; t[k] = 0
            if status[seg] != 0:
                ok = False
        if ok and k1 == K:
            a0, a1, a2, a3 = st[0], st[1], st[2], st[3]
            w0, w1, w2, w3 = starts[s0], starts[s0 + 1], starts[s0 + 2], starts[s0 + 3]
            n0 = min(counts[s0], counts[s0+1], counts[s0+2], counts[s0+3])
            nw0, nw1, nw2, nw3 = lengths[s0] // 4, lengths[s0+1] // 4, lengths[s0+2] // 4, lengths[s0+3] // 4
            o0, o1, o2, o3 = out_starts[s0], out_starts[s0+1], out_starts[s0+2], out_starts[s0+3]
            p0 = p1 = p2 = p3 = 2 * J8
            tt = 0
            while tt + J8 <= n0 and p0 + J8 <= nw0 and p1 + J8 <= nw1 and p2 + J8 <= nw2 and p3 + J8 <= nw3:
                p0 += simd_round(a0, buf, w0 + 4 * p0, fb, table, pref, precision, out, o0 + tt)
                p1 += simd_round(a1, buf, w1 + 4 * p1, fb, table, pref, precision, out, o1 + tt)
                p2 += simd_round(a2, buf, w2 + 4 * p2, fb, table, pref, precision, out, o2 + tt)
                p3 += simd_round(a3, buf, w3 + 4 * p3, fb, table, pref, precision, out, o3 + tt)
                tt += J8
            pos[0], pos[1], pos[2], pos[3] = p0, p1, p2, p3
            t[:] = tt
        for k in range(k1):
            seg = s0 + k
            if status[seg] != 0:
                continue
            nw = lengths[seg] // 4
            p = decode_run(buf, starts[seg], nw, pos[k], st[k], fb, table, precision, ident, out, out_starts[seg] + t[k], 1, counts[seg] - t[k])
            status[seg] = end_status(st[k], p, nw)


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from rans_speed import gaussian_model
    from tqcli import kernels
    from tqcli.kernels import rans8 as R8
    M = 55; n = 1 << 23; P=16; L=8; SEG = 49152
    f = gaussian_model(M, P)
    rng = np.random.default_rng(0)
    sym = rng.choice(M, n, p=f/f.sum()).astype(np.uint16)
    cuts = np.unique(np.arange(0, n + SEG, SEG).clip(max=n))
    buf, st, ln = kernels.rans_encode(sym, cuts, f, P, L)
    counts = np.diff(cuts); ostarts = cuts[:-1].astype(np.int64)
    table = kernels.rans_slot_table(f, P); fb = R8.decode_tables(f, P); pref = prefix_table(); t32 = table.astype(np.uint32)
    out = np.empty(n, np.uint16); status = np.zeros(counts.size, np.int64)
    def a(): R8.decode8_kernel(buf, st, ln, counts, ostarts, fb, table, np.int64(P), out, status, 0, counts.size)
    def b(): decode_simd_kernel(buf, st, ln, counts, ostarts, fb, t32, pref, np.int64(P), out, status, 0, counts.size)
    res={}
    for _ in range(6):
      for name, fn in [("scalar rans8", a), ("simd 1 stream", b)]:
        out[:] = 0; t0 = time.thread_time(); fn(); t = time.thread_time() - t0
        assert np.array_equal(out, sym) and not status.any(), name
        res[name]=min(res.get(name,9),t)
    for k,t in res.items(): print(k, f"{n/t/1e6:.0f} Msym/s")
    def c(): decode_simd4_kernel(buf, st, ln, counts, ostarts, fb, t32, pref, np.int64(P), out, status, 0, counts.size)
    res={}
    for _ in range(6):
      for name, fn in [("scalar rans8", a), ("simd 4 streams", c)]:
        out[:] = 0; t0 = time.thread_time(); fn(); t = time.thread_time() - t0
        assert np.array_equal(out, sym) and not status.any(), name
        res[name]=min(res.get(name,9),t)
    for k,t in res.items(): print(k, f"{n/t/1e6:.0f} Msym/s")


if __name__ == "__main__":
    main()
