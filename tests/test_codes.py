"""The seams for search (issue 21 item 6): a chunk's codes and scales without decoding,
the query-side transform of an opened file, and blocks quantised without a container."""

import io

import numpy as np
import pytest

import tqcli
from tqcli.library import blocks
from tqcli.codec import codebook, reference
from tqcli.codec.state import Codec
from tqcli.format.header import make_header
from tqcli.codec.codes import ChunkCodes, unpack

rng = np.random.default_rng(621)
X = (rng.standard_normal((150, 40)) + 0.7).astype(np.float32)  # an offset: centring matters

CASES = {
    "packed-mse": dict(bits=3),
    "packed-mse-8": dict(bits=8, scale_dtype="float16"),
    "packed-prod": dict(bits=4, mode="prod"),
    "packed-prod-1": dict(bits=1, mode="prod"),  # no mse codes, only the residual signs
    "entropy": dict(bits=2.5, coding="entropy"),
    "packed-mse-centred": dict(bits=4, center=True),
    "packed-prod-centred": dict(bits=3, mode="prod", center=True),
    "entropy-centred-f64": dict(bits=3, coding="entropy", center=True, scale_dtype="float64"),
}


def _blob(name, x=X):
    return tqcli.compress(x, chunk_rows=32, **CASES[name])


def test_unpack_is_the_reference_unpack():
    for bits in range(1, 9):
        for count in (8 * 13, 8 * 13 + 3):
            _unpack_case(bits, count)


def _unpack_case(bits, count):
    buf = rng.integers(0, 256, -(-count * bits // 8), dtype=np.uint8)
    got = unpack(buf, bits, count)
    assert got.dtype == np.uint8
    assert np.array_equal(got, reference.unpack(buf, bits, count))
    if count * bits % 8 == 0:  # no padding bits: packing again gives the stream
        assert np.array_equal(reference.pack(got, bits), buf)


@pytest.mark.parametrize("name", sorted(CASES))
def test_encode_block_equals_the_container_bit_for_bit(name):
    blob = _blob(name)
    with tqcli.open(blob) as f:
        seen = 0
        for first, cc in f.iter_codes():
            rows = X[first:first + cc.rows]
            mine = blocks.encode_block(rows, f)
            assert (mine.coding, mine.rows, mine.dim, mine.bits) == \
                (cc.coding, cc.rows, cc.dim, cc.bits)
            for field in ("codes", "scales", "signs", "gammas"):
                a, b = getattr(mine, field), getattr(cc, field)
                assert (a is None) == (b is None), field
                if a is not None:
                    assert a.dtype == b.dtype and np.array_equal(a, b), field
            # decoding the in-memory codes gives the decoder's rows exactly
            cc = cc.copy()
            want = f.chunk(first // f.header.chunk_rows)
            got = blocks.decode_block(mine, f)
            assert got.dtype == want.dtype and np.array_equal(got, want)
            assert np.array_equal(blocks.decode_block(cc, f.header), want)
            seen += cc.rows
        assert seen == X.shape[0]


def test_a_header_alone_quantises_a_block():
    h = make_header(40, 4)  # no file: the options' header
    codes = blocks.encode_block(X[:20], h)
    blob = tqcli.compress(X[:20], bits=4)
    with tqcli.open(blob) as f:
        assert np.array_equal(codes.codes, f.chunk_codes(0).codes)
        assert np.array_equal(blocks.decode_block(codes, Codec(h)), f.chunk(0))
    x16 = X[:9].astype(np.float16)  # narrower floats are widened exactly, as compress does
    with tqcli.open(tqcli.compress(x16, bits=4)) as f:
        assert np.array_equal(blocks.encode_block(x16, h).codes, f.chunk_codes(0).codes)


def test_the_codes_layout_is_the_documented_one():
    """packed: LSB-first q-bit indices of the rows, row-major; entropy: (rows, d) cells;
    both the quantiser's indices of the rotated unit vectors (tqcli/codec/reference.py)."""
    for name, coding in (("packed-mse", "packed"), ("entropy", "entropy")):
        with tqcli.open(_blob(name)) as f:
            h, codec = f.header, f.codec
            cc = f.chunk_codes(1)
            bounds = (codebook.boundaries(codec.centroids) if coding == "packed"
                      else h.payload_coding.thresholds(h))
            idx, scales = reference.encode_indices(X[32:64], codec.plan, bounds,
                                                   codec.centroids, codec.rule)
            assert cc.coding == coding and cc.indices().shape == (32, 40)
            assert np.array_equal(cc.indices(), idx)
            assert np.array_equal(cc.scales, scales.astype(np.float32))
            if coding == "packed":
                assert cc.bits == h.code_bits and cc.codes.dtype == np.uint8
                assert cc.codes.size == -(-32 * 40 * h.code_bits // 8)
            else:
                assert cc.codes.dtype == np.uint16 and cc.codes.shape == (32, 40)


def test_the_packed_codes_are_views_of_the_payload():
    for name in ("packed-mse", "packed-prod"):
        with tqcli.open(_blob(name)) as f:
            h, rows = f.header, f.header.chunk_rows_of(0)
            payload = np.frombuffer(bytes(f._reader.read_chunk(0)), np.uint8)
            cc = h.payload_coding.chunk_codes(f.codec, payload, rows)
            ncode, nsign, _ = h.payload_coding.section_sizes(h, rows)
            assert np.shares_memory(cc.codes, payload) and cc.codes.size == ncode
            if h.mode == "prod":
                assert np.shares_memory(cc.signs, payload) and cc.signs.size == nsign
                assert set(np.unique(cc.sign_values())) <= {-1, 1}
                assert cc.gammas.dtype == np.float64 and cc.gammas.shape == (rows,)
            else:
                assert cc.signs is None and cc.gammas is None


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("normalize", [False, True])
def test_query_transform_and_the_codes_give_the_inner_products(name, normalize):
    """<query_transform(q), c[codes]> * scale (+ prod's residual term) is
    <q - centre, x_hat - centre>, x_hat the decoded floats."""
    q = rng.standard_normal((3, 40)) * 2
    with tqcli.open(_blob(name)) as f:
        h = f.header
        centre = np.zeros(40) if h.center is None else h.center.astype(np.float64)
        y = f.query_transform(q, normalize=normalize)
        assert y.dtype == np.float32 and y.shape == q.shape
        assert np.array_equal(f.query_transform(q[1]), f.query_transform(q)[1])
        qc = q - centre
        if normalize:
            qc /= np.linalg.norm(qc, axis=1, keepdims=True)
        for first, cc in f.iter_codes():
            x_hat = f.chunk(first // h.chunk_rows).astype(np.float64)
            want = qc @ (x_hat - centre).T
            cc = f.chunk_codes(first // h.chunk_rows)
            got = blocks.scores(y, cc, f)
            if cc.signs is None:  # spelled out: s <y, c[idx]>
                by_hand = np.einsum("md,rd->mr", y.astype(np.float64),
                                    f.codec.centroids[cc.indices()].astype(np.float64))
                assert np.allclose(by_hand * cc.scales.astype(np.float64), got, rtol=1e-12,
                                   atol=1e-12)
            scale = np.linalg.norm(qc, axis=1)[:, None] * np.linalg.norm(x_hat - centre, axis=1)
            assert np.all(np.abs(got - want) <= 1e-5 * scale + 1e-9), name


def test_query_transform_is_the_encoders_rotation():
    with tqcli.open(_blob("packed-mse-centred")) as f:
        q = rng.standard_normal((5, 40))
        want = reference.rotate_forward((q - f.header.center).astype(np.float32), f.codec.plan)
        assert np.array_equal(f.query_transform(q), want)
        with pytest.raises(ValueError, match="40 values"):
            f.query_transform(np.zeros(39))


def test_iter_codes_yields_the_chunks_of_the_rows_also_from_a_stream():
    blob = _blob("entropy")

    class Pipe(io.BytesIO):
        def seekable(self):
            return False

    with tqcli.open(blob) as f:
        firsts = [first for first, _ in f.iter_codes(rows=(40, 100))]
        assert firsts == [32, 64, 96]
        assert [first for first, _ in f.iter_codes(rows=(5, 5))] == []
        want = {first: cc.copy() for first, cc in f.iter_codes()}
    with tqcli.open(Pipe(blob)) as f:
        got = [(first, cc.copy()) for first, cc in f.iter_codes(rows=slice(-10, None))]
    assert [first for first, _ in got] == [128]
    assert np.array_equal(got[0][1].codes, want[128].codes)
    with tqcli.open(blob) as f:
        with pytest.raises(IndexError):
            f.chunk_codes(5)


def test_blocks_refuse_what_does_not_fit():
    h = make_header(40, 4)
    with pytest.raises(ValueError, match="rows of 40"):
        blocks.encode_block(np.zeros((3, 41), np.float32), h)
    with pytest.raises(tqcli.InputError, match="row 6"):
        blocks.encode_block(np.full((2, 40), np.nan, np.float32), h, first_row=6)
    with pytest.raises(TypeError):
        blocks.encode_block(np.zeros((2, 40), np.int32), h)
    codes = blocks.encode_block(X[:4], h)
    with pytest.raises(ValueError, match="do not fit"):
        blocks.decode_block(codes, make_header(40, 3, coding="entropy"))
    with pytest.raises(TypeError):
        blocks.decode_block(codes, "not a codec")
    assert isinstance(codes, ChunkCodes)
