"""The J = 8 rANS kernels (tqcli/kernels/rans8.py) and the fused entropy kernels
(kernels.encode_entropy / decode_entropy): the same bytes, symbols, values and refusals as
the array-state kernels of rans.py and the two-pass path, which tests/test_rans.py ties
to the plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest

import tqcli
from tqcli import kernels
from tqcli.codec import reference_rans as ref
from tqcli.codec.codings.entropy import ENTROPY
from tqcli.codec.state import Codec
from tqcli.errors import FormatError
from tqcli.kernels import rans as _rans
from tqcli.kernels import rans8 as _rans8
from tqcli.library.tqfile import TqFile

from test_rans import data, gaussian_model, skewed_model


def _statuses(buf, n, f, P):
    """(status, symbols) of one stream by rans.decode_kernel and rans8.decode8_kernel."""
    buf = np.frombuffer(buf, np.uint8)
    args = (buf, np.array([0]), np.array([buf.size]), np.array([n]), np.array([0]))
    res = []
    for kernel, extra in ((_rans.decode_kernel,
                           (kernels.rans_slot_table(f, P), np.asarray(f, np.uint32),
                            kernels._cumulative(f), np.int64(P), np.int64(8))),
                          (_rans8.decode8_kernel,
                           (_rans8.decode_tables(f, P), kernels.rans_slot_table(f, P),
                            np.int64(P)))):
        out = np.zeros(n, np.uint16)
        status = np.zeros(1, np.int64)
        kernel(*args, *extra, out, status, 0, 1)
        res.append((int(status[0]), out))
    return res


@pytest.mark.parametrize("model", ["gauss", "skew"])
def test_eight_lane_decoder_refuses_every_damaged_stream_as_the_array_decoder(model):
    """Every byte changed, every truncation and extension: the same status (OK, short,
    bad state, overrun, unread, final state) from both kernels, the same symbols when OK,
    and the reference's verdict; streams of 8 k and 8 k + 5 symbols (the tail path)."""
    P = 12
    f = gaussian_model(17, P) if model == "gauss" else skewed_model(17, P)
    seen = set()
    for n in (64, 69):
        sym = data(f, n, np.random.default_rng(n))
        good = ref.encode(sym, f, P, 8)
        variants = [good[:i] + bytes([v]) + good[i + 1:] for i in range(len(good))
                    for v in (good[i] ^ 1, good[i] ^ 0x80, 0, 255) if v != good[i]]
        variants += [good[:4 * w] for w in range(len(good) // 4)]
        variants += [good + e for e in (b"\0\0\0\0", b"\1\2\3\4", good[-4:])]
        for bad in [good] + variants:
            (s_old, o_old), (s_new, o_new) = _statuses(bad, n, f, P)
            assert s_old == s_new
            seen.add(s_new)
            if s_new == _rans.OK:
                assert np.array_equal(o_old, o_new)
                assert np.array_equal(ref.decode(bad, n, f, P, 8), o_new)
            else:
                with pytest.raises(ValueError):
                    ref.decode(bad, n, f, P, 8)
    # every refusal the decoder has was met (the overrun one needs a stream cut short)
    assert seen >= {_rans.OK, _rans.SHORT_STREAM, _rans.BAD_STATE, _rans.OVERRUN,
                    _rans.UNREAD, _rans.FINAL_STATE}


def test_an_overrunning_stream_reads_no_word_past_its_end():
    """A stream cut short sits at the very end of its buffer: the decoder must refuse it
    without touching a byte past it (the buffer ends exactly there; a read past it
    would read the guard words, which are the missing words: the symbols would all come
    out right)."""
    P = 16
    f = gaussian_model(40, P)
    sym = data(f, 4000, np.random.default_rng(3))
    good = ref.encode(sym, f, P, 8)
    for cut in (4, 8, 40):
        short = good[:-cut]
        # the same bytes followed by the missing words: the decoder must not read them
        whole = np.frombuffer(short + good[-cut:], np.uint8)
        out = np.empty(sym.size, np.uint16)
        status = np.zeros(1, np.int64)
        table = kernels.rans_slot_table(f, P)
        _rans8.decode8_kernel(whole, np.array([0]), np.array([len(short)]),
                              np.array([sym.size]), np.array([0]),
                              _rans8.decode_tables(f, P), table, np.int64(P), out, status,
                              0, 1)
        assert status[0] == _rans.OVERRUN
        # had it read the words past its end, it would have decoded every symbol right
        assert not np.array_equal(out, sym)


CASES = [dict(shape=(1000, 384), bits=4), dict(shape=(517, 97), bits=2.5, chunk_rows=128),
         dict(shape=(203, 8), bits=7.2, chunk_rows=64), dict(shape=(77, 40), bits=1.0),
         dict(shape=(300, 130), dtype="float64", bits=3)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c["shape"])))
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_kernels_match_the_two_pass_path(case, threads):
    """encode_chunks' one pass (encode_entropy) gives the bytes of encode_symbols +
    rans_encode, and decode's one pass (decode_entropy) the values of rans_decode +
    decode_symbols, bit for bit: whole and partial chunks, odd d, segments that end in a
    partial group of rows, binary64 input, one and two threads."""
    case = dict(case)
    shape, dtype = case.pop("shape"), case.pop("dtype", "float32")
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    x[1] = 0.0
    saved = kernels.thread_count()
    kernels.set_threads(threads)
    try:
        blob = tqcli.compress(x[:8], coding="entropy", **case)
        with TqFile(blob) as f:
            h = f.header
        codec = Codec(h)
        assert h.model.lanes == 8
        m = h.model
        y = codec.to_format(x)
        for a in range(0, shape[0], h.chunk_rows):
            block = y[a:a + h.chunk_rows]
            rows = block.shape[0]
            (parts,) = ENTROPY.encode_chunks(codec, block, a)
            payload = b"".join(parts)
            # the two-pass encoder
            symbols = np.empty(block.size, np.uint16)
            scales = np.empty(rows, np.float64)
            thr, _, cents = codec.quantizer
            kernels.encode_symbols(block, codec.plan, thr, m.step, cents, codec.rule, symbols,
                                   scales)
            segs = ENTROPY.segments(h, rows)
            bounds = np.concatenate([[0], np.cumsum(segs)]) * h.dim
            buf, st, ln = kernels.rans_encode(symbols, bounds, m.frequencies, m.precision, 8)
            (stored,) = codec.store_floats([scales], a)
            two = (ln.astype("<u4").tobytes()
                   + b"".join(bytes(buf[s:s + n]) for s, n in zip(st, ln)) + stored.tobytes())
            assert payload == two
            # and the decoders
            fused = ENTROPY.decode(codec, payload, rows, np.full((rows, h.dim), np.nan,
                                                                 codec.out_dtype))
            two_pass = ENTROPY.decode_codes(codec, ENTROPY.chunk_codes(codec, payload, rows),
                                            np.full((rows, h.dim), np.nan, codec.out_dtype))
            assert fused.tobytes() == two_pass.tobytes()
            assert np.isfinite(fused).all()
    finally:
        kernels.set_threads(saved)


def test_fused_decoder_refuses_a_damaged_stream_with_the_same_message():
    """A changed word in the last segment of a chunk: decode (fused) and chunk_codes (the
    rANS stage alone) raise the same FormatError, naming the segment."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 64)).astype(np.float32)
    blob = tqcli.compress(x[:8], coding="entropy", bits=3, chunk_rows=256)
    with TqFile(blob) as f:
        h = f.header
    codec = Codec(h)
    payload = bytearray(b"".join(ENTROPY.encode_chunks(codec, x[:256], 0)[0]))
    ns = len(ENTROPY.segments(h, 256))
    lengths = np.frombuffer(bytes(payload[:4 * ns]), "<u4")
    last = 4 * ns + int(lengths[:-1].sum())
    messages = []
    for at, value in ((last + 7, 0x80), (last + 100, 0x5A), (last + int(lengths[-1]) - 1, 0x7F)):
        bad = bytearray(payload)
        bad[at] ^= value
        errors = []
        for fn in (lambda p: ENTROPY.decode(codec, p, 256, np.empty((256, 64), np.float32)),
                   lambda p: ENTROPY.chunk_codes(codec, p, 256)):
            with pytest.raises(FormatError) as e:
                fn(bytes(bad))
            errors.append((str(e.value), e.value.rule))
        assert errors[0] == errors[1]
        assert errors[0][1] == "entropy-stream" and f"segment {ns - 1}" in errors[0][0]
        messages.append(errors[0][0])
    assert len(messages) == 3


def test_fused_kernels_check_their_arguments():
    f = gaussian_model(17, 12)
    tables = kernels.rans_tables(f, 12)
    plan_codec = _small_codec()
    out = np.empty((16, 32), np.float32)
    cents = plan_codec.centroids
    with pytest.raises(ValueError):  # a stream past the buffer
        kernels.decode_entropy(np.zeros(64, np.uint8), np.array([0]), np.array([128]), 16,
                               tables, 12, np.ones(16, np.float32), plan_codec.plan, cents, out)
    with pytest.raises(ValueError):  # one stream for two segments
        kernels.decode_entropy(np.zeros(256, np.uint8), np.array([0]), np.array([128]), 8,
                               tables, 12, np.ones(16, np.float32), plan_codec.plan, cents, out)
    thr, _, cents = plan_codec.quantizer
    enc = kernels.rans8_encode_tables(plan_codec.header.model.frequencies, 16)
    x = np.ones((16, 32), np.float32)
    with pytest.raises(ValueError):  # a segment not on a group boundary
        kernels.encode_entropy(x, [(0, 4), (4, 16)], plan_codec.plan, thr, 0.1, cents, 0, enc,
                               16, np.empty(16))
    with pytest.raises(ValueError):  # past the rows
        kernels.encode_entropy(x, [(0, 24)], plan_codec.plan, thr, 0.1, cents, 0, enc, 16,
                               np.empty(16))


def _small_codec():
    blob = tqcli.compress(np.ones((8, 32), np.float32), coding="entropy", bits=3)
    with TqFile(blob) as f:
        return Codec(f.header)
