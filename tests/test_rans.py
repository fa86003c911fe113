"""The rANS kernels against the plain-Python reference (bit for bit), round trips, thread
independence, the max_words bound of spec 19.3, the encoder's reciprocal division, and
corrupt streams."""

from __future__ import annotations

import numpy as np
import pytest

from tqcli import kernels
from tqcli.codec import reference_rans as ref
from tqcli.errors import FormatError
from tqcli.kernels import rans as _rans


def gaussian_model(M, P, rng=None):
    """A discretised Gaussian over M symbols, every frequency >= 1, summing to 2^P."""
    x = np.linspace(-3, 3, M)
    p = np.exp(-x * x / 2)
    f = np.maximum(1, np.floor(p / p.sum() * ((1 << P) - M))).astype(np.int64)
    f[M // 2] += (1 << P) - f.sum()
    return f


def skewed_model(M, P):
    """One huge symbol, the rest frequency 1."""
    f = np.ones(M, np.int64)
    f[0] = (1 << P) - (M - 1)
    return f


def data(f, n, rng):
    """Symbols drawn from f, with every symbol (the rare ones too) forced in."""
    sym = rng.choice(f.size, n, p=f / f.sum()).astype(np.uint16)
    if n:
        idx = rng.integers(0, n, min(n, f.size))
        sym[idx] = np.arange(idx.size) if idx.size < f.size else rng.permutation(f.size)[:idx.size]
    return sym


def encode1(sym, f, P, L):
    buf, st, ln = kernels.rans_encode(sym, np.array([0, sym.size]), f, P, L)
    return bytes(buf[st[0]:st[0] + ln[0]])


def decode1(data_, n, f, P, L):
    out = np.empty(n, np.uint16)
    buf = np.frombuffer(data_, np.uint8)
    kernels.rans_decode(buf, np.array([0]), np.array([buf.size]), np.array([n]), f, P, L, out)
    return out


CASES = [(2, 8, 1), (3, 12, 3), (17, 16, 8), (300, 16, 32), (4096, 16, 8), (300, 12, 8),
         (256, 8, 3)]


@pytest.mark.parametrize("M,P,L", CASES)
@pytest.mark.parametrize("kind", ["gauss", "skew"])
def test_kernel_matches_reference(M, P, L, kind):
    rng = np.random.default_rng(M * 100 + P + L)
    f = gaussian_model(M, P) if kind == "gauss" else skewed_model(M, P)
    for n in (0, 1, L - 1, L, 1000, 70001 if M in (17, 4096) else 5000):
        sym = data(f, n, rng)
        a = encode1(sym, f, P, L)
        b = ref.encode(sym, f, P, L)
        assert a == b
        assert len(a) // 4 <= kernels.max_words(n, P, L)
        assert np.array_equal(decode1(a, n, f, P, L), sym)
        if n <= 1000:
            assert np.array_equal(ref.decode(b, n, f, P, L), sym)


def test_segments_and_threads():
    rng = np.random.default_rng(1)
    f = gaussian_model(40, 16)
    sym = data(f, 300000, rng)
    cuts = np.array([0, 0, 1, 65536, 65537, 200000, 300000])
    saved = kernels.thread_count()
    try:
        res = []
        for t in (1, 2, 3):
            kernels.set_threads(t)
            res.append(kernels.rans_encode(sym, cuts, f, 16, 8))
            out = np.empty(sym.size, np.uint16)
            buf, st, ln = res[-1]
            kernels.rans_decode(buf, st, ln, np.diff(cuts), f, 16, 8, out)
            assert np.array_equal(out, sym)
    finally:
        kernels.set_threads(saved)
    for r in res[1:]:
        for a, b in zip(res[0], r):
            assert np.array_equal(a, b)
    buf, st, ln = res[0]
    for k in range(cuts.size - 1):
        assert bytes(buf[st[k]:st[k] + ln[k]]) == encode1(sym[cuts[k]:cuts[k + 1]], f, 16, 8)


@pytest.mark.parametrize("P", [8, 12, 16])
def test_max_words_worst_case(P):
    """All symbols of frequency 1 (the largest growth per symbol, P bits)."""
    M = min(4096, 1 << P)
    f = skewed_model(M, P)
    rng = np.random.default_rng(P)
    for L in (1, 8, 32):
        for n in (1, 7, 31, 100, 4096, 100003):
            sym = rng.integers(1, M, n).astype(np.uint16)  # never the big symbol
            W = len(encode1(sym, f, P, L)) // 4
            bound = kernels.max_words(n, P, L)
            assert W <= bound
            # and no looser than it has to be: the states absorb up to 32 bits each before a
            # word is emitted, so W >= 2 L + (n P - 32 L) / 32
            assert bound - W <= 3 * L + (2 * n + 31) // 32 + 1


def test_reciprocal_exact():
    """mulhi(x, m) >> sh == x // f for every f < 2^16 at edge values of x < 2^63."""
    fs = np.arange(1, 1 << 16, dtype=np.int64)
    m, sh, cmpl, bias = _rans.symbol_tables(np.concatenate([fs, [1]]), 16)
    m, sh = m[:-1], sh[:-1]
    top = (1 << 63) - 1
    rng = np.random.default_rng(5)
    for pick in range(12):
        if pick < 8:
            # multiples of f and their neighbours at the top, the bottom and random points
            base = [top // fs * fs, (top // fs - 1) * fs, fs << 15, fs << 47, fs,
                    rng.integers(1, 1 << 62, fs.size) // fs * fs, fs * fs, fs << 31][pick]
            xs = [np.asarray(base, np.uint64) + np.uint64(d) for d in (0, 1)]
            xs += [np.asarray(base, np.uint64) - np.uint64(1)]
        else:
            xs = [rng.integers(1, top, fs.size, dtype=np.int64).astype(np.uint64)]
        for x in xs:
            x = np.minimum(np.maximum(x, np.uint64(1)), np.uint64(top))
            q = np.empty(fs.size, np.uint64)
            _rans.recip_quotients(x, m, sh, q)
            f1 = fs != 1
            assert np.array_equal(q[f1], x[f1] // fs[f1].astype(np.uint64))
            assert np.array_equal(q[~f1], x[~f1] - np.uint64(1))


def _decodes_or_refuses(data_, n, f, P, L, sym):
    """A changed stream is refused, or (if some other valid stream) re-encodes to itself."""
    try:
        out = decode1(data_, n, f, P, L)
    except FormatError as e:
        assert e.rule == "entropy-stream"
        with pytest.raises(ValueError):
            ref.decode(data_, n, f, P, L)
        return 0
    assert encode1(out, f, P, L) == data_
    return 1


def test_corrupt_streams():
    f = gaussian_model(17, 12)
    P, L = 12, 3
    sym = data(f, 60, np.random.default_rng(9))
    good = encode1(sym, f, P, L)
    accepted = 0
    for i in range(len(good)):
        for v in (good[i] ^ 1, good[i] ^ 0x80, 0, 255):
            if v == good[i]:
                continue
            bad = good[:i] + bytes([v]) + good[i + 1:]
            accepted += _decodes_or_refuses(bad, sym.size, f, P, L, sym)
    for w in range(len(good) // 4):
        accepted += _decodes_or_refuses(good[:4 * w], sym.size, f, P, L, sym)
    for extra in (b"\0\0\0\0", b"\1\2\3\4", good[-4:]):
        accepted += _decodes_or_refuses(good + extra, sym.size, f, P, L, sym)
    assert accepted == 0
    # states out of range, unread words
    hi = bytearray(good)
    hi[7] = 0x80  # state 0 >= 2^63
    lo = bytearray(good)
    lo[0:8] = (5).to_bytes(8, "little")
    for b in (bytes(hi), bytes(lo)):
        with pytest.raises(FormatError):
            decode1(b, sym.size, f, P, L)
    with pytest.raises(FormatError, match="left over"):
        decode1(good + b"\0\0\0\0", sym.size, f, P, L)


def test_bad_arguments():
    f = gaussian_model(17, 12)
    out = np.empty(4, np.uint16)
    buf = np.zeros(64, np.uint8)
    with pytest.raises(ValueError):
        kernels.rans_decode(buf, np.array([0]), np.array([6]), np.array([4]), f, 12, 3, out)
    with pytest.raises(ValueError):
        kernels.rans_decode(buf, np.array([40]), np.array([32]), np.array([4]), f, 12, 3, out)
    with pytest.raises(ValueError):
        kernels.rans_decode(buf, np.array([0]), np.array([32]), np.array([5]), f, 12, 3, out)
    with pytest.raises(ValueError):
        kernels.rans_encode(np.array([17], np.uint16), np.array([0, 1]), f, 12, 3)
