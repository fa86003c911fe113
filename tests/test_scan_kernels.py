"""The scan kernels (tqcli/kernels/scan*.py) against their numpy twins, on every instruction
set path this CPU has: integer sums bit for bit, the float64 scores identical, the top-k
identical (ties to the smaller id); the tables' bound a proven worst case (met with
equality, nearly, by the worst code vector and never exceeded); the layout of real encoder
output; splitting rows into calls and threads changes nothing."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tqcli.format.header import make_header
from tqcli.kernels import scan, scan_ref
from tqcli.library.blocks import encode_block, query_transform

PATHS = scan.cpu_isas()  # every path this machine can run (portable always)


def pack(idx: np.ndarray, bits: int) -> np.ndarray:
    """LSB-first packing of spec section 6, written independently of the codec's."""
    flat = idx.reshape(-1).astype(np.uint64)
    nbits = flat.size * bits
    out = np.zeros(-(-nbits // 8), np.uint8)
    for j in range(bits):
        pos = np.arange(flat.size, dtype=np.int64) * bits + j
        bit = ((flat >> np.uint64(j)) & np.uint64(1)).astype(np.uint8)
        np.bitwise_or.at(out, pos // 8, (bit << (pos % 8)).astype(np.uint8))
    return out


def random_case(rng, bits, rows, dim, m):
    idx = rng.integers(0, 1 << bits, (rows, dim)).astype(np.uint8)
    c = np.sort(rng.standard_normal(1 << bits)).astype(np.float32)
    y = rng.standard_normal((m, dim)).astype(np.float32)
    return idx, c, y


# ---------------------------------------------------------------------- layout


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("dim", [1, 3, 97, 1032])
def test_layout_round_trip(bits, dim):
    rng = np.random.default_rng(bits * 1000 + dim)
    rows = 65  # two full blocks and one row
    idx = rng.integers(0, 1 << bits, (rows, dim)).astype(np.uint8)
    packed = pack(idx, bits)
    packed[-1] |= np.uint8(0xFF << ((rows * dim * bits) % 8 or 8) & 0xFF)  # padding bits: ignored
    codes = scan.layout_codes(packed, bits, rows, dim)
    twin = scan.layout_codes_reference(packed, bits, rows, dim)
    assert np.array_equal(codes.data, twin.data)
    assert (codes.rows, codes.dim, codes.bits, codes.nblocks) == (rows, dim, bits, 3)
    assert np.array_equal(codes.indices(), idx)
    assert not codes.data.flags.writeable
    per_row = {1: 4, 2: 4, 3: 4, 4: 4}.get(bits, 8)  # bits stored per code
    npos = scan.positions_of(bits, dim)
    assert codes.nbytes == 3 * 32 * (npos * 4 if bits <= 4 else dim * 8) // 8
    assert codes.nbytes <= 3 * 32 * (dim + 8) * per_row // 8


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("dim", [1, 3, 97, 1032])
def test_row_indices_equal_the_whole_unlayout(bits, dim):
    # scattered rows, repeats, both lanes of a nibble byte (rows 0..15 and 16..31), the
    # last padded block, reversed order: each row's codes exactly as indices() gives them
    rng = np.random.default_rng(bits * 7 + dim)
    rows = 65
    idx = rng.integers(0, 1 << bits, (rows, dim)).astype(np.uint8)
    codes = scan.layout_codes(pack(idx, bits), bits, rows, dim)
    pick = np.concatenate([[64, 0, 15, 16, 31, 32, 47, 48, 63, 64, 0],
                           rng.integers(0, rows, 40)])
    got = codes.row_indices(pick)
    assert got.dtype == np.uint8 and got.shape == (pick.size, dim)
    assert np.array_equal(got, codes.indices()[pick])
    assert np.array_equal(got, idx[pick])
    assert codes.row_indices(np.zeros(0, np.int64)).shape == (0, dim)
    for bad in ([-1], [rows]):
        with pytest.raises(ValueError):
            codes.row_indices(np.array(bad))


def test_layout_of_real_encoder_output():
    """ChunkCodes.codes of the 'packed' coding lays out to the encoder's own indices."""
    for bits in (1, 2, 3, 4, 5, 8):
        h = make_header(97, bits)
        x = np.random.default_rng(bits).standard_normal((70, 97)).astype(np.float32)
        cc = encode_block(x, h)
        codes = scan.layout_codes(cc.codes, cc.bits, cc.rows, cc.dim)
        assert np.array_equal(codes.indices(), cc.indices())


def test_layout_refuses_short_streams_and_bad_bits():
    with pytest.raises(ValueError):
        scan.layout_codes(np.zeros(3, np.uint8), 4, 2, 4)  # 4 bytes needed
    with pytest.raises(ValueError):
        scan.layout_codes(np.zeros(8, np.uint8), 9, 1, 4)
    with pytest.raises(ValueError):
        scan.layout_codes(np.zeros(8, np.uint8), 0, 1, 4)


@pytest.mark.parametrize("sizes", [[64, 32, 5], [5, 64, 33], [31, 1], [0, 40]])
def test_concat_and_blocks(sizes):
    rng = np.random.default_rng(len(sizes))
    idx = rng.integers(0, 16, (sum(sizes), 20)).astype(np.uint8)
    cuts = np.cumsum([0] + sizes)
    parts = [scan.layout_indices(idx[a:b], 4) for a, b in zip(cuts[:-1], cuts[1:])]
    whole = scan.concat_codes(parts)
    assert whole.rows == idx.shape[0]
    assert np.array_equal(whole.indices(), idx)
    assert np.array_equal(whole.data, scan.layout_indices(idx, 4).data)
    sl = whole.blocks(1, 2)
    assert np.array_equal(sl.indices(), idx[32:min(64, idx.shape[0])])
    with pytest.raises(ValueError):
        scan.concat_codes([parts[0], scan.layout_indices(idx[:3, :10], 4)])


# ---------------------------------------------------------------------- tables and bound


def worst_vectors(tables, y, c, sign):
    """Per query, the code vector whose table rounding errors all have the sign `sign`
    and are each the largest of their position: approx - exact reaches about the bound."""
    e = scan_ref.exact_tables(y, c)
    lo = e.min(axis=2)
    err = tables.delta[:, None, None] * tables.tables + lo[:, :, None] - e
    return vectors_of(np.argmax(sign * err, axis=2), tables.bits, y.shape[1])


def vectors_of(pick, bits, dim):
    """Code vectors (m, dim) whose positions take the values pick (m, positions)."""
    if bits > 4:
        return pick.astype(np.uint8)
    cpn = scan._CPN[bits]
    mask = (1 << bits) - 1
    parts = [(pick >> (u * bits)) & mask for u in range(cpn)]
    idx = np.stack(parts, axis=-1).reshape(pick.shape[0], -1)[:, :dim]
    return idx.astype(np.uint8)


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("dim", [3, 97, 1032])
def test_bound_is_a_worst_case_and_tight(bits, dim):
    rng = np.random.default_rng(7 * bits + dim)
    idx, c, y = random_case(rng, bits, 40, dim, 6)
    y[0] *= 1e-30  # tiny and huge queries: the bound scales with them
    y[1] *= 1e30
    y[2, : dim // 2] = 0.0  # zero coordinates: their tables are all zero
    t = scan.prepare_queries(y, c)
    own = np.zeros(6)
    for sign in (1.0, -1.0):
        worst = worst_vectors(t, y, c, sign)
        rows = np.concatenate([idx, worst], axis=0)
        approx = scan_ref.scan_scores_reference(rows, t, scale=np.ones(rows.shape[0]))
        exact = scan_ref.exact_unscaled(rows, y, c)
        gap = np.abs(approx - exact)
        assert (gap <= t.bound[:, None]).all()
        own = np.maximum(own, gap[np.arange(6), 40 + np.arange(6)])  # query i's worst
    # the bound is the rounding actually made plus a margin for float64 rounding (which
    # covers the rounding of this test's own sums too): ~1e-12 of it
    assert (own >= t.bound * (1 - 1e-9)).all(), own / t.bound


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("dim", [1, 3, 97, 1032])
def test_tables_kernel_equals_numpy_twin(bits, dim):
    rng = np.random.default_rng(bits + 17 * dim)
    _, c, y = random_case(rng, bits, 1, dim, 5)
    y[1] = 0.0
    y[2] *= 1e-20
    y[3, ::2] = 0.0
    got = scan.prepare_queries(y, c)
    want = scan_ref.prepare_queries_reference(y, c)
    for name in ("tables", "delta", "offset", "bound"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    assert got.tables.dtype == np.uint8 and got.tables.shape == want.tables.shape


def test_tables_of_zero_and_constant_queries():
    c = np.linspace(-1, 1, 16).astype(np.float32)
    y = np.zeros((2, 10), np.float32)
    y[1, 3] = 2.0
    t = scan.prepare_queries(y, c)
    assert t.tables[0].max() == 0 and t.delta[0] == 1.0 and t.bound[0] == 0.0
    assert t.tables[1].max() == 255
    for bad in (np.nan, np.inf):
        y2 = y.copy()
        y2[0, 0] = bad
        with pytest.raises(ValueError):
            scan.prepare_queries(y2, c)
    with pytest.raises(ValueError):
        scan.prepare_queries(y, c[:15])  # not 2**bits centroids


# ---------------------------------------------------------------------- the scan


def run_both(codes, idx, t, kk, path, **kw):
    got = scan.scan_topk(codes, t, kk, isa=path, **kw)
    want = scan_ref.scan_topk_reference(idx, t, kk, **kw)
    return got, want


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("bits,dim", [(1, 3), (1, 1032), (2, 97), (3, 97), (4, 3), (4, 97),
                                      (4, 1032), (5, 97), (6, 3), (7, 33), (8, 97)])
def test_scan_equals_reference(path, bits, dim):
    rng = np.random.default_rng(bits * 31 + dim)
    rows = 101
    idx, c, y = random_case(rng, bits, rows, dim, 5)
    codes = scan.layout_codes(pack(idx, bits), bits, rows, dim)
    t = scan.prepare_queries(y, c)
    sums = scan_ref.scan_sums_reference(idx, t)
    assert np.array_equal(sums, scan_ref.scan_sums_reference(codes, t))
    scale = rng.random(rows).astype(np.float32)
    for kk in (1, 10, rows, rows + 7):
        got, want = run_both(codes, idx, t, kk, path, scale=scale)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    # the full ranking gives every row's score: the kernel's float64 sums equal the twin's
    ids, approx = scan.scan_topk(codes, t, rows, scale=scale, isa=path)
    ref = scan_ref.scan_scores_reference(idx, t, scale=scale)
    assert np.array_equal(approx, np.take_along_axis(ref, ids, axis=1))


@pytest.mark.parametrize("path", PATHS)
def test_scan_options_allow_offset_and_tail(path):
    rng = np.random.default_rng(5)
    rows, dim = 200, 40
    idx, c, y = random_case(rng, 4, rows, dim, 7)
    codes = scan.layout_indices(idx, 4)
    t = scan.prepare_queries(y, c)
    scale = rng.random(rows) + 0.5
    qconst = rng.standard_normal(7)
    vweight = rng.standard_normal(rows)
    vbias = rng.standard_normal(rows)
    allow = np.zeros(rows, bool)
    allow[[0, 5, 63, 64, 65, 199]] = True  # a block with none allowed is skipped
    kw = dict(scale=scale, qconst=qconst, vweight=vweight, vbias=vbias, allow=allow,
              row_offset=1000)
    got, want = run_both(codes, idx, t, 9, path, **kw)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert (got[0][:, :6] >= 1000).all() and (got[0][:, 6:] == -1).all()
    assert np.isneginf(got[1][:, 6:]).all()
    # blocks rejected on their bounds (scales >= 0) and blocks that cannot be (a negative
    # scale in the first block, -inf and +inf ones in the others)
    for k, bad in ((3, -1.0), (40, -np.inf), (100, np.inf), (170, 0.0)):
        scale = scale.copy()
        scale[k] = bad
        got, want = run_both(codes, idx, t, 4, path, scale=scale, qconst=qconst, vweight=vweight)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    none = scan.scan_topk(codes, t, 3, scale=scale, allow=np.zeros(rows, bool), isa=path)
    assert (none[0] == -1).all() and np.isneginf(none[1]).all()


@pytest.mark.parametrize("path", PATHS)
def test_ties_infinities_and_nan(path):
    """Equal rows score equally: the smaller id first.  A row scoring -inf still beats an
    empty slot; a NaN score is never chosen."""
    rng = np.random.default_rng(9)
    dim = 16
    base = rng.integers(0, 16, (1, dim)).astype(np.uint8)
    idx = np.repeat(base, 70, axis=0)
    c, y = np.linspace(-1, 1, 16).astype(np.float32), rng.standard_normal((3, dim)).astype(np.float32)
    t = scan.prepare_queries(y, c)
    codes = scan.layout_indices(idx, 4)
    scale = np.ones(70)
    ids, approx = scan.scan_topk(codes, t, 5, scale=scale, isa=path)
    assert (ids == np.arange(5)).all() and (approx == approx[:, :1]).all()
    vbias = np.zeros(70)
    vbias[68] = -np.inf
    only68 = np.arange(70) == 68
    ids, approx = scan.scan_topk(codes, t, 3, scale=scale, vbias=vbias, allow=only68, isa=path)
    assert (ids[:, 0] == 68).all() and np.isneginf(approx[:, 0]).all()
    assert (ids[:, 1:] == -1).all()
    scale[:68] = np.nan
    ids, approx = scan.scan_topk(codes, t, 3, scale=scale, isa=path)
    assert (ids == [68, 69, -1]).all() and np.isneginf(approx[:, 2]).all()


@pytest.mark.parametrize("path", PATHS)
def test_split_calls_and_threads_change_nothing(path):
    rng = np.random.default_rng(11)
    rows, dim = 32 * 9 + 3, 64
    idx, c, y = random_case(rng, 4, rows, dim, 9)
    codes = scan.layout_indices(idx, 4)
    t = scan.prepare_queries(y, c)
    scale = rng.random(rows)
    whole = scan.scan_topk(codes, t, 12, scale=scale, isa=path)
    # by blocks, merged as a caller does: (score desc, id asc) over the parts' hits
    ids, sc = [], []
    for b0, b1 in ((0, 2), (2, 7), (7, 10)):
        part = codes.blocks(b0, b1)
        got = scan.scan_topk(part, t, 12, scale=scale[b0 * 32:b0 * 32 + part.rows],
                             row_offset=b0 * 32, isa=path)
        ids.append(got[0])
        sc.append(got[1])
    ids, sc = np.concatenate(ids, axis=1), np.concatenate(sc, axis=1)
    order = np.lexsort((ids, -sc), axis=1)[:, :12]
    assert np.array_equal(np.take_along_axis(ids, order, 1), whole[0])
    assert np.array_equal(np.take_along_axis(sc, order, 1), whole[1])
    out = [None] * 4

    def work(i):
        out[i] = scan.scan_topk(codes, t, 12, scale=scale, isa=path)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for o in out:
        assert np.array_equal(o[0], whole[0]) and np.array_equal(o[1], whole[1])


def test_paths_agree_on_encoded_data_and_rank_like_exact_scores():
    """Real encoder output: every path returns the same hits, and the exact top-1 by the
    float64 scores is among the rows whose approx is within 2 bounds of the best."""
    h = make_header(96, 4)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 96)).astype(np.float32)
    cc = encode_block(x, h)
    codes = scan.layout_codes(cc.codes, cc.bits, cc.rows, cc.dim)
    y = query_transform(rng.standard_normal((4, 96)).astype(np.float32), h)
    t = scan.prepare_queries(y, h.codebook)
    hits = [scan.scan_topk(codes, t, 300, scale=cc.scales, isa=p) for p in PATHS]
    for h2 in hits[1:]:
        assert np.array_equal(h2[0], hits[0][0]) and np.array_equal(h2[1], hits[0][1])
    exact = scan_ref.exact_unscaled(cc.indices(), y, h.codebook) * cc.scales.astype(np.float64)
    ids, approx = hits[0]
    by_row = np.take_along_axis(exact, ids, axis=1)
    slack = (t.bound[:, None] * np.abs(cc.scales.astype(np.float64)[ids]))
    assert (np.abs(approx - by_row) <= slack).all()


def test_isa_choice(monkeypatch):
    monkeypatch.setenv(scan.ISA_ENV, "portable")
    assert scan.features()["isa"] == "portable"
    monkeypatch.setenv(scan.ISA_ENV, "no-such-isa")
    with pytest.raises(ValueError):
        scan.features()
    monkeypatch.delenv(scan.ISA_ENV)
    f = scan.features()
    assert f["isa"] == f["cpu"][0] and "portable" in f["cpu"]
    byte_codes = scan.layout_indices(np.zeros((1, 4), np.uint8), 6)
    assert scan.scan_isa(byte_codes) == "portable"


def test_scan_refuses_mismatches():
    idx = np.zeros((10, 8), np.uint8)
    codes = scan.layout_indices(idx, 4)
    t = scan.prepare_queries(np.ones((1, 8), np.float32), np.arange(16, dtype=np.float32))
    t3 = scan.prepare_queries(np.ones((1, 8), np.float32), np.arange(8, dtype=np.float32))
    with pytest.raises(ValueError):
        scan.scan_topk(codes, t3, 1, scale=np.ones(10))
    with pytest.raises(ValueError):
        scan.scan_topk(codes, t, 0, scale=np.ones(10))
    with pytest.raises(ValueError):
        scan.scan_topk(codes, t, 1, scale=np.ones(9))
    with pytest.raises(ValueError):
        scan.scan_topk(codes, t, 1, scale=np.ones(10), qconst=np.ones(1))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("bits,dim", [(4, 1032), (2, 2064), (1, 4128), (3, 520)])
def test_largest_sums_do_not_wrap(path, bits, dim):
    """Rows made of each position's largest entry (255: a constant query makes every
    position's span the widest): the AVX2 path's 16-bit partial sums reach 255 * 256 before
    each widening, over several widenings (516 steps at d = 1032, b = 4)."""
    rng = np.random.default_rng(bits)
    c = np.sort(rng.standard_normal(1 << bits)).astype(np.float32)
    y = np.full((2, dim), 0.75, np.float32)
    y[1] = -0.5
    t = scan.prepare_queries(y, c)
    npos = scan.positions_of(bits, dim)
    assert (t.tables.max(axis=2) == 255).all()
    idx = vectors_of(np.argmax(t.tables, axis=2), bits, dim)
    idx = np.concatenate([idx, rng.integers(0, 1 << bits, (40, dim)).astype(np.uint8)])
    codes = scan.layout_indices(idx, bits)
    want = scan_ref.scan_sums_reference(idx, t)
    assert want[0, 0] == want[1, 1] == 255 * npos
    got = scan.scan_topk(codes, t, 42, scale=np.ones(42), isa=path)
    ref = scan_ref.scan_topk_reference(idx, t, 42, scale=np.ones(42))
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
    assert got[0][0, 0] == 0 and got[0][1, 0] == 1


def test_scan_refuses_shapes_that_would_read_out_of_bounds():
    """The kernels index without checking: a hand-built ScanCodes or QueryTables whose
    shapes do not fit its bits and dim is refused before they run."""
    idx = np.zeros((40, 8), np.uint8)
    codes = scan.layout_indices(idx, 4)
    t = scan.prepare_queries(np.ones((2, 8), np.float32), np.arange(16, dtype=np.float32))
    ones = np.ones(40)
    bad_codes = [scan.ScanCodes(codes.data[:, :-16], 40, 8, 4),   # one position short
                 scan.ScanCodes(codes.data, 40, 40, 4),            # dim of another layout
                 scan.ScanCodes(codes.data[:1], 40, 8, 4),         # rows beyond the blocks
                 scan.ScanCodes(codes.data, 20, 8, 4)]             # a block of no rows
    for c in bad_codes:
        with pytest.raises(ValueError):
            scan.scan_topk(c, t, 1, scale=np.ones(c.rows))
    bad_tables = [scan.QueryTables(t.tables[:, :-1], t.delta, t.offset, t.bound, 4, 8),
                  scan.QueryTables(t.tables, t.delta[:1], t.offset, t.bound, 4, 8),
                  scan.QueryTables(t.tables.astype(np.int16), t.delta, t.offset, t.bound, 4, 8)]
    for tt in bad_tables:
        with pytest.raises(ValueError):
            scan.scan_topk(codes, tt, 1, scale=ones)
    # views that are not contiguous are accepted (copied)
    tt = scan.QueryTables(np.repeat(t.tables, 2, axis=0)[::2], t.delta, t.offset, t.bound, 4, 8)
    assert np.array_equal(scan.scan_topk(codes, tt, 3, scale=ones)[0],
                          scan.scan_topk(codes, t, 3, scale=ones)[0])
