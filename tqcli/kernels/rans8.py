"""The rANS coder of spec 19.3 for J = 8 lanes (what tq writes), with the 8 states in registers.

rans.py keeps the J states of any J in an array indexed by t mod J: every step stores and
reloads a state and the refill is a branch the predictor misses about once a word.  Here
the 8 lanes are 8 local variables, unrolled, and the refill is branch-free: the next word
is always loaded and a state takes it when it fell below 2^31 (a select).  The word index
is clamped to the stream's last word, so a damaged stream that wants more words than it
has reads none past its end; `pos` still counts every word wanted, so the stream overran
exactly when pos > Y at the end (pos only grows, and the first word wanted past the end is
wanted at pos = Y).  The loop runs exactly N times, as 19.3 requires.

The helpers are plain jitted functions that LLVM inlines (numba-level inlining made the
fused decoder's first compile about 5 s longer).  The statuses are rans.py's, so the
messages do not change; the bytes and symbols are
rans.py's (tests/test_rans.py compares both with tqcli/codec/reference_rans.py).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .rans import (BAD_STATE, FINAL_STATE, OK, OVERRUN, RANS_LOW, SHORT_STREAM, UNREAD, mulhi,
                   symbol_tables)

J8 = 8


@intrinsic
def load_u32(typingctx, buf, at):
    """The little-endian u32 at byte `at` of a uint8 array, as uint64 (one unaligned load;
    the machines tq runs on are little-endian, as numpy's '<u4' views elsewhere assume)."""
    sig = types.uint64(buf, types.int64)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        i32 = ir.IntType(32)
        v = builder.load(builder.bitcast(ptr, i32.as_pointer()), align=1)
        return builder.zext(v, ir.IntType(64))

    return sig, codegen


@intrinsic
def store_u32(typingctx, buf, at, value):
    """buf[at:at + 4] <- the low 32 bits of value, little-endian (one unaligned store)."""
    sig = types.void(buf, types.int64, types.uint64)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.gep(ary.data, [args[1]])
        i32 = ir.IntType(32)
        builder.store(builder.trunc(args[2], i32), builder.bitcast(ptr, i32.as_pointer()),
                      align=1)
        return context.get_dummy_value()

    return sig, codegen


def decode_tables(freqs, precision: int):
    """slot -> f_s | (slot - F_s) << 16 (uint32, 2^Q entries): one load gives both numbers
    of a decoding step, x' = f_s (x >> Q) + slot - F_s, and the symbol comes from the slot
    table beside it (off the state's critical path)."""
    f = np.asarray(freqs, np.int64)
    sym = np.repeat(np.arange(f.size), f)
    cum = np.concatenate([[0], np.cumsum(f)[:-1]])
    slot = np.arange(1 << precision, dtype=np.int64)
    return (f[sym] | (slot - cum[sym]) << 16).astype(np.uint32)


@njit(cache=True)
def _dstep(x, buf, w0, last, pos, fb, table, mask, p):
    """One decoding step of one lane: (new state, symbol, new pos); reads the word at
    min(pos, last) (no word past the stream's last, whatever pos)."""
    return _dstep_at(x, buf, w0 + 4 * min(pos, last), pos, fb, table, mask, p)


@njit(cache=True)
def _dstep_at(x, buf, at, pos, fb, table, mask, p):
    """One decoding step reading the word at byte `at` if the state wants one."""
    low = np.uint64(RANS_LOW)
    slot = x & mask
    e = np.uint64(fb[slot])
    s = table[slot]
    x = (e & np.uint64(0xFFFF)) * (x >> p) + (e >> np.uint64(16))
    need = x < low
    w = load_u32(buf, at)
    if need:
        x = (x << np.uint64(32)) | w
    return x, s, pos + np.int64(need)


@njit(cache=True)
def load_states(buf, w0, nwords, st):
    """The 8 initial states into st; the status of the check (OK, SHORT_STREAM, BAD_STATE)."""
    if nwords < 2 * J8:
        return SHORT_STREAM
    low = np.uint64(RANS_LOW)
    top = np.uint64(1) << np.uint64(63)
    status = OK
    for k in range(J8):
        x = load_u32(buf, w0 + 8 * k) | (load_u32(buf, w0 + 8 * k + 4) << np.uint64(32))
        if x < low or x >= top:
            status = BAD_STATE
        st[k] = x
    return status


@njit(cache=True)
def end_status(st, pos, nwords):
    if pos > nwords:
        return OVERRUN
    if pos != nwords:
        return UNREAD
    for k in range(J8):
        if st[k] != np.uint64(RANS_LOW):
            return FINAL_STATE
    return OK


@njit(cache=True)
def _round(x0, x1, x2, x3, x4, x5, x6, x7, buf, w0, last, pos, fb, table, mask, p, vals, dst, o, step,
           t):
    """Symbols t .. t + 7 (one per lane), dst[o + t step] = vals[symbol t]; the word index
    clamped to `last`."""
    x0, s, pos = _dstep_at(x0, buf, w0 + 4 * min(pos, last), pos, fb, table, mask, p)
    dst[o + t * step] = vals[s]
    x1, s, pos = _dstep_at(x1, buf, w0 + 4 * min(pos, last), pos, fb, table, mask, p)
    dst[o + (t + np.uint64(1)) * step] = vals[s]
    x2, s, pos = _dstep_at(x2, buf, w0 + 4 * min(pos, last), pos, fb, table, mask, p)
    dst[o + (t + np.uint64(2)) * step] = vals[s]
    x3, s, pos = _dstep_at(x3, buf, w0 + 4 * min(pos, last), pos, fb, table, mask, p)
    dst[o + (t + np.uint64(3)) * step] = vals[s]
    x4, s, pos = _dstep_at(x4, buf, w0 + 4 * min(pos, last), pos, fb, table, mask, p)
    dst[o + (t + np.uint64(4)) * step] = vals[s]
    x5, s, pos = _dstep_at(x5, buf, w0 + 4 * min(pos, last), pos, fb, table, mask, p)
    dst[o + (t + np.uint64(5)) * step] = vals[s]
    x6, s, pos = _dstep_at(x6, buf, w0 + 4 * min(pos, last), pos, fb, table, mask, p)
    dst[o + (t + np.uint64(6)) * step] = vals[s]
    x7, s, pos = _dstep_at(x7, buf, w0 + 4 * min(pos, last), pos, fb, table, mask, p)
    dst[o + (t + np.uint64(7)) * step] = vals[s]
    return x0, x1, x2, x3, x4, x5, x6, x7, pos


@njit(cache=True)
def _round_free(x0, x1, x2, x3, x4, x5, x6, x7, buf, w0, last, pos, fb, table, mask, p, vals, dst, o, step,
                t):
    """_round when every word the round can want is within the stream (the caller
    checked: at most 8)."""
    x0, s, pos = _dstep_at(x0, buf, w0 + 4 * pos, pos, fb, table, mask, p)
    dst[o + t * step] = vals[s]
    x1, s, pos = _dstep_at(x1, buf, w0 + 4 * pos, pos, fb, table, mask, p)
    dst[o + (t + np.uint64(1)) * step] = vals[s]
    x2, s, pos = _dstep_at(x2, buf, w0 + 4 * pos, pos, fb, table, mask, p)
    dst[o + (t + np.uint64(2)) * step] = vals[s]
    x3, s, pos = _dstep_at(x3, buf, w0 + 4 * pos, pos, fb, table, mask, p)
    dst[o + (t + np.uint64(3)) * step] = vals[s]
    x4, s, pos = _dstep_at(x4, buf, w0 + 4 * pos, pos, fb, table, mask, p)
    dst[o + (t + np.uint64(4)) * step] = vals[s]
    x5, s, pos = _dstep_at(x5, buf, w0 + 4 * pos, pos, fb, table, mask, p)
    dst[o + (t + np.uint64(5)) * step] = vals[s]
    x6, s, pos = _dstep_at(x6, buf, w0 + 4 * pos, pos, fb, table, mask, p)
    dst[o + (t + np.uint64(6)) * step] = vals[s]
    x7, s, pos = _dstep_at(x7, buf, w0 + 4 * pos, pos, fb, table, mask, p)
    dst[o + (t + np.uint64(7)) * step] = vals[s]
    return x0, x1, x2, x3, x4, x5, x6, x7, pos


@njit(cache=True)
def decode_run(buf, w0, nwords, pos, st, fb, table, precision, vals, dst, o, step, n):
    """Decode the next n symbols of a stream (buf[w0:w0 + 4 nwords]) from the states st (8,
    updated) and the word position pos (returned): dst[o + t step] = vals[symbol t] for
    t < n (vals: an identity table for the symbols themselves, or the centroids).  The run
    starts on lane 0 (the index of its first symbol in the stream is a multiple of 8)."""
    p = np.uint64(precision)
    mask = np.uint64((1 << precision) - 1)
    last = nwords - 1
    x0, x1, x2, x3, x4, x5, x6, x7 = st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7]
    full = n - n % J8
    # unsigned indices: numba adds no wraparound test for negative ones
    ou, stepu = np.uint64(o), np.uint64(step)
    for t in range(0, full, J8):
        tu = np.uint64(t)
        if pos + J8 <= nwords:
            x0, x1, x2, x3, x4, x5, x6, x7, pos = _round_free(
                x0, x1, x2, x3, x4, x5, x6, x7, buf, w0, last, pos, fb, table, mask, p, vals,
                dst, ou, stepu, tu)
        else:
            x0, x1, x2, x3, x4, x5, x6, x7, pos = _round(
                x0, x1, x2, x3, x4, x5, x6, x7, buf, w0, last, pos, fb, table, mask, p, vals,
                dst, ou, stepu, tu)
    st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7] = x0, x1, x2, x3, x4, x5, x6, x7
    for t in range(full, n):
        j = t - full
        x, s, pos = _dstep(st[j], buf, w0, last, pos, fb, table, mask, p)
        st[j] = x
        dst[o + t * step] = vals[s]
    return pos


@njit(cache=True, nogil=True)
def decode8_kernel(buf, starts, lengths, counts, out_starts, fb, table, precision, out,
                   status, task0, task1):
    """rans.decode_kernel for J = 8: segment k from buf[starts[k]:starts[k] + lengths[k]]
    into out[out_starts[k]:out_starts[k] + counts[k]]; status[k] as there."""
    st = np.empty(J8, np.uint64)
    ident = np.arange(table[table.size - 1] + 1).astype(np.uint16)
    for seg in range(task0, task1):
        w0 = starts[seg]
        nwords = lengths[seg] // 4
        status[seg] = load_states(buf, w0, nwords, st)
        if status[seg] != OK:
            continue
        o = out_starts[seg]
        n = counts[seg]
        pos = decode_run(buf, w0, nwords, 2 * J8, st, fb, table, precision, ident, out, o, 1,
                         n)
        status[seg] = end_status(st, pos, nwords)


# ----------------------------------------------------------------------------- encoder


def encode_tables(freqs, precision: int):
    """(M, 5) uint64, a symbol's encoding constants side by side (one cache line or two):
    the state at or above which it first emits a word, (2^31 >> Q) 2^32 f_s, then
    rans.symbol_tables' reciprocal m, shift, 2^Q - f_s and bias."""
    m, sh, cmpl, bias = symbol_tables(freqs, precision)
    bound = ((RANS_LOW >> precision) << 32) * np.asarray(freqs, np.uint64)
    return np.ascontiguousarray(np.stack([bound, m, sh, cmpl, bias], axis=1), np.uint64)


@njit(cache=True)
def _estep(x, s, enc, out, at):
    """One encoding step of one lane (19.3, by the reciprocals): (new state, new end of
    the words).  The state's low word is stored below `at` whether or not it is emitted
    (a word not emitted is overwritten by the next one, or lies outside the stream)."""
    e = enc[s]
    emit = x >= e[0]
    store_u32(out, at - 4, x)
    if emit:
        x >>= np.uint64(32)
    q = mulhi(x, e[1]) >> e[2]
    return x + q * e[3] + e[4], at - 4 * np.int64(emit)


@njit(cache=True)
def encode_run(sym, o, step, n, enc, out, at, st):
    """Encode the run of n symbols sym[o + t step], t = n - 1 down to 0 (a segment's last
    run first), from the states st (8, updated; 2^31 at a segment's end) into the words
    below out[at] (uint8); returns the new end.  Symbol t of the run uses lane t mod 8 (a
    run starts on lane 0)."""
    full = n - n % J8
    for t in range(n - 1, full - 1, -1):
        j = t - full
        x, at = _estep(st[j], sym[o + t * step], enc, out, at)
        st[j] = x
    x0, x1, x2, x3, x4, x5, x6, x7 = st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7]
    ou, su = np.uint64(o), np.uint64(step)  # unsigned: no wraparound test on the indices
    for r in range(full // J8 - 1, -1, -1):
        t = ou + np.uint64(r) * np.uint64(J8) * su
        x7, at = _estep(x7, sym[t + np.uint64(7) * su], enc, out, at)
        x6, at = _estep(x6, sym[t + np.uint64(6) * su], enc, out, at)
        x5, at = _estep(x5, sym[t + np.uint64(5) * su], enc, out, at)
        x4, at = _estep(x4, sym[t + np.uint64(4) * su], enc, out, at)
        x3, at = _estep(x3, sym[t + np.uint64(3) * su], enc, out, at)
        x2, at = _estep(x2, sym[t + np.uint64(2) * su], enc, out, at)
        x1, at = _estep(x1, sym[t + su], enc, out, at)
        x0, at = _estep(x0, sym[t], enc, out, at)
    st[0], st[1], st[2], st[3], st[4], st[5], st[6], st[7] = x0, x1, x2, x3, x4, x5, x6, x7
    return at


@njit(cache=True)
def flush_states(st, out, at):
    """The 8 final states, low word first, below out[at]; returns the stream's start."""
    for k in range(J8 - 1, -1, -1):
        at -= 8
        store_u32(out, at, st[k])
        store_u32(out, at + 4, st[k] >> np.uint64(32))
    return at


@njit(cache=True, nogil=True)
def encode8_kernel(symbols, bounds, enc, region_ends, out, first, task0, task1):
    """rans.encode_kernel for J = 8: segment k = symbols[bounds[k]:bounds[k+1]] into
    out[first[k]:region_ends[k]]."""
    st = np.empty(J8, np.uint64)
    for seg in range(task0, task1):
        a, b = bounds[seg], bounds[seg + 1]
        st[:] = np.uint64(RANS_LOW)
        at = encode_run(symbols, a, 1, b - a, enc, out, region_ends[seg], st)
        first[seg] = flush_states(st, out, at)
