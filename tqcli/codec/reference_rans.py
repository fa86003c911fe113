"""The rANS coder of spec section 19.3 in plain Python integers, for tests to compare the
kernels (tqcli/kernels/rans.py) with.  Slow; never used to compress anything."""

from __future__ import annotations

import numpy as np

RANS_LOW = 1 << 31


def _cumulative(freqs) -> list[int]:
    out, acc = [], 0
    for f in freqs:
        out.append(acc)
        acc += int(f)
    return out


def encode(symbols, freqs, precision: int, lanes: int) -> bytes:
    """One segment's stream: the final states (low word first), then the emitted words,
    last emitted first."""
    f = [int(v) for v in freqs]
    c = _cumulative(f)
    states = [RANS_LOW] * lanes
    emitted = []
    for t in range(len(symbols) - 1, -1, -1):
        j, s = t % lanes, int(symbols[t])
        x = states[j]
        if x >= ((RANS_LOW >> precision) << 32) * f[s]:
            emitted.append(x & 0xFFFFFFFF)
            x >>= 32
        states[j] = (x // f[s] << precision) + x % f[s] + c[s]
    words = []
    for x in states:
        words += [x & 0xFFFFFFFF, x >> 32]
    return np.asarray(words + emitted[::-1], "<u4").tobytes()


def decode(data: bytes, n: int, freqs, precision: int, lanes: int) -> np.ndarray:
    """n symbols from one segment's stream; ValueError if the stream is not valid."""
    f = [int(v) for v in freqs]
    c = _cumulative(f)
    if len(data) % 4:
        raise ValueError("not a whole number of words")
    w = [int(v) for v in np.frombuffer(data, "<u4")]
    if len(w) < 2 * lanes:
        raise ValueError("shorter than its states")
    states = [w[2 * j] | w[2 * j + 1] << 32 for j in range(lanes)]
    if any(not RANS_LOW <= x < 1 << 63 for x in states):
        raise ValueError("a state out of range")
    slots = np.repeat(np.arange(len(f)), f)
    pos, out = 2 * lanes, np.empty(n, np.uint16)
    for t in range(n):
        j = t % lanes
        x = states[j]
        slot = x & ((1 << precision) - 1)
        s = int(slots[slot])
        x = f[s] * (x >> precision) + slot - c[s]
        if x < RANS_LOW:
            if pos >= len(w):
                raise ValueError("the stream ends before its symbols")
            x = x << 32 | w[pos]
            pos += 1
        states[j] = x
        out[t] = s
    if pos != len(w) or any(x != RANS_LOW for x in states):
        raise ValueError("words left over or final states wrong")
    return out
