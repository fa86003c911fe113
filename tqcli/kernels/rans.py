"""The entropy coder: interleaved rANS over segments, exactly the bitstream of spec section 19.3.

A segment of N symbols is one stream of little-endian 32-bit words; symbol t uses coder
state t mod L.  States are 64-bit, kept in [2^31, 2^63), renormalised one 32-bit word at a
time.  The encoder runs backwards over the symbols and writes its words downwards from the
end of the segment's reserved region, so the stream ends where the region ends and needs
no reversal; the decoder runs forwards, reads at most one word per symbol and checks at the
end that every word was read and every state came back to 2^31.

Every segment is independent: one task per segment, run by kernels._run_task_range, so
the bytes cannot depend on the thread count.  tqcli/reference_rans.py is the same in plain
Python integers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

RANS_LOW = 1 << 31  # B: the lower end of the state interval

# decoder status codes (kernels.rans_decode turns them into messages)
OK, SHORT_STREAM, BAD_STATE, OVERRUN, UNREAD, FINAL_STATE = 0, 1, 2, 3, 4, 5


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
def encode_kernel(symbols, bounds, freqs, cums, precision, lanes, region_ends, out, first,
                  task0, task1):
    """Segment k = symbols[bounds[k]:bounds[k+1]] into out[first[k]:region_ends[k]]."""
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
            x = ((x // f) << p) + (x % f) + np.uint64(cums[s])
            states[j] = x
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
