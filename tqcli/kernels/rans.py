"""The entropy coder: interleaved rANS over segments, exactly the bitstream of spec section 19.3.

A segment of N symbols is one stream of little-endian 32-bit words; symbol t uses coder
state t mod L.  States are 64-bit, kept in [2^31, 2^63), renormalised one 32-bit word at a
time.  The encoder runs backwards over the symbols and writes its words downwards from the
end of the segment's reserved region, so the stream ends where the region ends and needs
no reversal; the decoder runs forwards, reads at most one word per symbol and checks at the
end that every word was read and every state came back to 2^31.

Every segment is independent: one task per segment, run by kernels._run_task_range, so
the bytes cannot depend on the thread count.  tqcli/codec/reference_rans.py is the same in plain
Python integers.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

RANS_LOW = 1 << 31  # B: the lower end of the state interval

# decoder status codes (kernels.rans_decode turns them into messages)
OK, SHORT_STREAM, BAD_STATE, OVERRUN, UNREAD, FINAL_STATE = 0, 1, 2, 3, 4, 5


@intrinsic
def mulhi(typingctx, a, b):
    """The high 64 bits of the 128-bit product of two u64 (one MUL instruction on x86-64)."""
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        p = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        return builder.trunc(builder.lshr(p, ir.Constant(i128, 64)), ir.IntType(64))

    return sig, codegen


def symbol_tables(freqs, precision: int):
    """The encoder's per-symbol constants (uint64 arrays of M), which replace the division
    x // f and x % f of the coding step by a multiplication:
        m     ceil(2^(63+s) / f) with s = ceil(log2 f), for f >= 2; 2^64 - 1 for f = 1
        sh    s - 1 for f >= 2, 0 for f = 1
        cmpl  2^P - f
        bias  F_s for f >= 2, F_s + 2^P - 1 for f = 1
    so that x' = x + q cmpl + bias with q = mulhi(x, m) >> sh is exactly
    (x // f) 2^P + x % f + F_s for every x < 2^63 (a state before coding always is).
    f >= 2: 2^(s-1) < f <= 2^s, so m < 2^64, and m = 2^(63+s)/f + e with 0 <= e < 1; then
    x m / 2^(63+s) = x/f + x e / 2^(63+s), whose error term is below 2^-s <= 1/f, and with
    x/f = q + r/f, r <= f - 1, floor(x m / 2^(63+s)) = q.  f = 1: mulhi(x, 2^64 - 1) = x - 1
    for 0 < x < 2^64, and x + (x - 1)(2^P - 1) + F_s + 2^P - 1 = x 2^P + F_s.
    tests/test_rans.py checks the quotient for every f < 2^16 at the edge values of x."""
    p = int(precision)
    n = len(freqs)
    m = np.empty(n, np.uint64)
    sh = np.empty(n, np.uint64)
    cmpl = np.empty(n, np.uint64)
    bias = np.empty(n, np.uint64)
    c = 0
    for s, f in enumerate(int(v) for v in freqs):
        if f == 1:
            m[s], sh[s], bias[s] = (1 << 64) - 1, 0, c + (1 << p) - 1
        else:
            k = (f - 1).bit_length()  # ceil(log2 f)
            m[s], sh[s], bias[s] = -(-(1 << (63 + k)) // f), k - 1, c
        cmpl[s] = (1 << p) - f
        c += f
    return m, sh, cmpl, bias


@njit(cache=True)
def recip_quotients(x, m, sh, out):
    """out[i] = mulhi(x[i], m[i]) >> sh[i] (for the test of the reciprocals)."""
    for i in range(x.size):
        out[i] = mulhi(x[i], m[i]) >> sh[i]


@njit(cache=True)
def _put_word(out, at, w):
    out[at] = np.uint8(w & np.uint64(0xFF))
    out[at + 1] = np.uint8((w >> np.uint64(8)) & np.uint64(0xFF))
    out[at + 2] = np.uint8((w >> np.uint64(16)) & np.uint64(0xFF))
    out[at + 3] = np.uint8((w >> np.uint64(24)) & np.uint64(0xFF))


@njit(cache=True)
def _get_word(buf, at):
    return (np.uint64(buf[at]) | (np.uint64(buf[at + 1]) << np.uint64(8))
            | (np.uint64(buf[at + 2]) << np.uint64(16)) | (np.uint64(buf[at + 3]) << np.uint64(24)))


@njit(cache=True, nogil=True)
def encode_kernel(symbols, bounds, freqs, m, sh, cmpl, bias, precision, lanes, region_ends,
                  out, first, task0, task1):
    """Segment k = symbols[bounds[k]:bounds[k+1]] into out[first[k]:region_ends[k]]; the
    coding step by the reciprocals of symbol_tables."""
    p = np.uint64(precision)
    low = np.uint64(RANS_LOW)
    base = (low >> p) << np.uint64(32)
    word = np.uint64(0xFFFFFFFF)
    shift = np.uint64(32)
    states = np.empty(lanes, np.uint64)
    for seg in range(task0, task1):
        a, b = bounds[seg], bounds[seg + 1]
        at = region_ends[seg]
        states[:] = low
        n = b - a
        j = (n - 1) % lanes if n > 0 else 0
        for t in range(n - 1, -1, -1):
            s = symbols[a + t]
            f = np.uint64(freqs[s])
            x = states[j]
            if x >= base * f:
                at -= 4
                _put_word(out, at, x & word)
                x >>= shift
            q = mulhi(x, m[s]) >> sh[s]
            states[j] = x + q * cmpl[s] + bias[s]
            j -= 1
            if j < 0:
                j = lanes - 1
        for k in range(lanes - 1, -1, -1):
            at -= 8
            _put_word(out, at, states[k] & word)
            _put_word(out, at + 4, states[k] >> shift)
        first[seg] = at


@njit(cache=True, nogil=True)
def decode_kernel(buf, starts, lengths, counts, out_starts, table, freqs, cums, precision,
                  lanes, out, status, task0, task1):
    """Segment k from buf[starts[k]:starts[k] + lengths[k]] (bytes, a multiple of 4) into
    out[out_starts[k]:out_starts[k] + counts[k]]; status[k] = OK or the failed check."""
    p = np.uint64(precision)
    mask = np.uint64((1 << precision) - 1)
    low = np.uint64(RANS_LOW)
    top = np.uint64(1) << np.uint64(63)
    shift = np.uint64(32)
    states = np.empty(lanes, np.uint64)
    for seg in range(task0, task1):
        w0 = starts[seg]
        nwords = lengths[seg] // 4
        n = counts[seg]
        o = out_starts[seg]
        status[seg] = OK
        if nwords < 2 * lanes:
            status[seg] = SHORT_STREAM
            continue
        bad = False
        for k in range(lanes):
            x = _get_word(buf, w0 + 8 * k) | (_get_word(buf, w0 + 8 * k + 4) << shift)
            if x < low or x >= top:
                bad = True
            states[k] = x
        if bad:
            status[seg] = BAD_STATE
            continue
        pos = 2 * lanes
        j = 0
        for t in range(n):
            x = states[j]
            slot = x & mask
            s = table[slot]
            x = np.uint64(freqs[s]) * (x >> p) + slot - np.uint64(cums[s])
            if x < low:
                if pos >= nwords:
                    bad = True
                    break
                x = (x << shift) | _get_word(buf, w0 + 4 * pos)
                pos += 1
            states[j] = x
            out[o + t] = s
            j += 1
            if j == lanes:
                j = 0
        if bad:
            status[seg] = OVERRUN
            continue
        if pos != nwords:
            status[seg] = UNREAD
            continue
        for k in range(lanes):
            if states[k] != low:
                status[seg] = FINAL_STATE
