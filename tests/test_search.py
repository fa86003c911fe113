"""Search inside .tqz files (tqcli.library.search): the hits are EXACTLY the top-k of the
decoded vectors, as numpy gives them on `tq decompress`'s output (float64 scores, ties
to the smaller id), for every width, mode, coding, centring and dimension, on any thread
count; the allow-list and row range act inside the scan; re-ranking reads the originals;
eval's recall is the same computation."""

from __future__ import annotations

import io
import threading

import h5py
import numpy as np
import pytest

import tqcli
from tqcli.errors import FormatError, InputError
from tqcli.library import evaluation, search_topk

from conftest import gaussian


def reference(xh: np.ndarray, q: np.ndarray, k: int, metric: str = "ip", allowed=None):
    """The exact top-k on decoded rows xh, written out in plain numpy: float64 products
    summed over the last axis, best first, ties to the smaller id."""
    x = xh.reshape(-1, xh.shape[-1]).astype(np.float64)
    q = np.atleast_2d(q).astype(np.float64)
    ids = np.arange(x.shape[0]) if allowed is None else np.asarray(allowed)
    x = x[ids]
    if metric == "l2":
        keys = -((x[None, :, :] - q[:, None, :]) ** 2).sum(axis=-1)
    else:
        keys = (x[None, :, :] * q[:, None, :]).sum(axis=-1)
        if metric == "cosine":
            den = np.sqrt((q * q).sum(-1))[:, None] * np.sqrt((x * x).sum(-1))[None, :]
            keys = np.where(den > 0, keys / np.where(den > 0, den, 1), 0.0)
    out_ids, out_keys = [], []
    for row in keys:
        order = np.lexsort((ids, -row))[:k]
        out_ids.append(ids[order])
        out_keys.append(row[order])
    keys = np.array(out_keys)
    return np.array(out_ids), (-keys if metric == "l2" else keys)


def queries_for(x: np.ndarray, m: int, seed: int) -> np.ndarray:
    """Random queries plus some database rows (whose own row and duplicates must win)."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((m, x.shape[1]))
    q[: m // 2] = x[rng.choice(x.shape[0], m // 2, replace=False)]
    return q


def check_exact(blob: bytes, x: np.ndarray, k: int = 7, m: int = 6, metric: str = "ip",
                seed: int = 0, first=None, **kw):
    xh = tqcli.decompress(blob)
    q = queries_for(x, m, seed)
    if first is not None:
        q[0] = first
    want_ids, want_scores = reference(xh, q, k, metric)
    with tqcli.open(blob) as f:
        ids, scores = f.search(q, k, metric=metric, **kw)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-12, atol=0)
    return ids, scores


CASES = (
    [dict(bits=b, mode="mse", center=b % 2 == 0) for b in range(1, 9)]
    + [dict(bits=b, mode="prod", center=b == 3) for b in (2, 3, 5, 8)]
    + [dict(bits=b, coding="entropy", center=c) for b, c in ((2, False), (3.5, True),
                                                             (6, False))]
)


@pytest.mark.parametrize("opts", CASES, ids=lambda o: "-".join(f"{k}{v}" for k, v in
                                                              o.items()))
def test_exact_top_k_of_the_decoded_rows(opts):
    x = gaussian(700, 97, seed=3) + 0.5  # an offset that centring takes out
    x[650:660] = x[10]  # duplicates across chunks: ties go to the smaller id
    blob = tqcli.compress(x, chunk_rows=128, **opts)
    ids, _ = check_exact(blob, x, k=12, first=x[10] * 3)
    # row 10 and its ten copies tie: they lead, in id order (most tie exactly)
    assert set(ids[0, :11]) == {10, *range(650, 660)}


@pytest.mark.parametrize("d", [3, 97, 1032])
@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
def test_any_dimension_and_metric(d, metric):
    x = gaussian(300 if d < 1000 else 120, d, seed=d)
    for opts in (dict(bits=4), dict(bits=2, mode="prod", center=True)):
        blob = tqcli.compress(x, chunk_rows=64, **opts)
        check_exact(blob, x, k=5, metric=metric, seed=d)


def test_identical_on_any_thread_count():
    x = gaussian(2000, 64, seed=5)
    x[1500] = x[3]
    blob = tqcli.compress(x, bits=3, chunk_rows=256)
    q = queries_for(x, 40, 1)
    results = []
    for t in (1, 2, 3):
        with tqcli.open(blob) as f:
            results.append(f.search(q, 10, threads=t))
        results.append(tqcli.load_index(blob).search(q, 10, threads=t))
    for ids, scores in results[1:]:
        np.testing.assert_array_equal(ids, results[0][0])
        np.testing.assert_array_equal(scores, results[0][1])


def test_sentence_embeddings_exact(minilm_sentences):
    x = minilm_sentences[:3000]
    for opts in (dict(bits=2), dict(bits=4, center=True), dict(bits=3, coding="entropy")):
        blob = tqcli.compress(x, **opts)
        check_exact(blob, x, k=10, m=20)


def test_block_candidates_fall_back_when_unproven():
    """Rows with equal keys all around the k-th place cannot be told apart by the BLAS
    approximation: the block is scored row by row and the ties still go by id."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((1, 16))
    x = rng.standard_normal((2000, 16))
    x[rng.choice(2000, 600, replace=False)] = base  # 600 copies, scattered
    q = base * 3 + rng.standard_normal((3, 16)) * 0.01
    ids, keys = search_topk.block_topk(q, x, 10, margin=2)
    want_ids, want_keys = reference(x, q, 10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(keys, want_keys)


def test_rows_and_allow_list_act_inside_the_scan():
    x = gaussian(1000, 32, seed=9)
    blob = tqcli.compress(x, bits=4, chunk_rows=128)
    xh = tqcli.decompress(blob)
    q = queries_for(x, 5, 2)
    allowed = np.random.default_rng(4).choice(1000, 60, replace=False)
    with tqcli.open(blob) as f:
        ids, _ = f.search(q, 8, ids=allowed)
        want, _ = reference(xh, q, 8, allowed=np.sort(allowed))
        np.testing.assert_array_equal(ids, want)
        ids, _ = f.search(q, 8, rows=(100, 300))
        want, _ = reference(xh, q, 8, allowed=np.arange(100, 300))
        np.testing.assert_array_equal(ids, want)
        ids, _ = f.search(q, 8, rows=(100, 300), ids=allowed)
        inside = np.sort(allowed[(allowed >= 100) & (allowed < 300)])
        want, _ = reference(xh, q, 8, allowed=inside)
        np.testing.assert_array_equal(ids, want[:, :len(inside)])


def test_k_beyond_the_rows_returns_every_row():
    x = gaussian(20, 8, seed=1)
    blob = tqcli.compress(x, bits=3)
    with tqcli.open(blob) as f:
        ids, scores = f.search(x[0], 50)
        assert ids.shape == (20,) and sorted(ids) == list(range(20))
        assert np.all(np.diff(scores) <= 0)
        ids, _ = f.search(x[:2], 50, ids=[3, 4, 5])
        assert ids.shape == (2, 3)


def test_no_queries_give_no_hits():
    x = gaussian(100, 16, seed=3)
    blob = tqcli.compress(x, bits=4)
    for searcher in (tqcli.open(blob), tqcli.load_index(blob)):
        ids, scores = searcher.search(np.zeros((0, 16)), 5)
        assert ids.shape == (0, 5) and scores.shape == (0, 5) and ids.dtype == np.int64


def test_a_stream_is_searched_as_the_file():
    x = gaussian(900, 24, seed=2)
    blob = tqcli.compress(x, bits=2, chunk_rows=64)
    q = queries_for(x, 4, 3)
    with tqcli.open(blob) as f:
        want = f.search(q, 5, rows=(64, 500))

    class Pipe(io.RawIOBase):
        def __init__(self, data):
            self.b = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, buf):
            return self.b.readinto(buf)

    with tqcli.open(io.BufferedReader(Pipe(blob))) as f:
        assert not f.seekable
        got = f.search(q, 5, rows=(64, 500))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_index_serves_many_threads_at_once():
    x = gaussian(1500, 48, seed=7)
    blob = tqcli.compress(x, bits=4, chunk_rows=256)
    index = tqcli.load_index(blob)
    assert len(index) == 1500 and index.dim == 48
    # the codes, the scale and a float32 norm per row: about the file's size
    assert index.nbytes <= len(blob) + 4 * len(index)
    qs = [queries_for(x, 8, s) for s in range(6)]
    want = [reference(tqcli.decompress(blob), q, 6)[0] for q in qs]
    got = [None] * 6

    def one(i):
        got[i] = index.search(qs[i], 6, threads=1)[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_rerank_from_the_original_floats(tmp_path):
    x = gaussian(1200, 40, seed=11)
    blob = tqcli.compress(x, bits=2, chunk_rows=256)
    q = queries_for(x, 10, 5)
    with tqcli.open(blob) as f:
        cand, _ = f.search(q, 30)
    # exact top-5 of the originals among each query's 30 candidates
    want = np.array([reference(x, q[i:i + 1], 5, allowed=np.sort(cand[i]))[0][0]
                     for i in range(len(q))])
    np.save(tmp_path / "x.npy", x)
    with h5py.File(tmp_path / "x.h5", "w") as h:
        h.create_dataset("emb/x", data=x.reshape(30, 40, 40))
    for source in (x, str(tmp_path / "x.npy"), f"{tmp_path / 'x.h5'}:/emb/x"):
        with tqcli.open(blob) as f:
            ids, scores = f.search(q, 5, rerank=source, candidates=30)
        np.testing.assert_array_equal(ids, want)
        np.testing.assert_allclose(scores, (x[ids].astype(np.float64) * q[:, None, :]).sum(-1),
                                   rtol=1e-12)
    # the originals' own rows win once re-ranked (the queries that are database rows)
    assert np.all(ids[:5, 0] == np.nonzero((x[None, :, :] == q[:5, None, :]).all(-1))[1])


def test_eval_recall_is_the_search_result():
    x = gaussian(800, 32, seed=4)
    blob = tqcli.compress(x, bits=2)
    xh = tqcli.decompress(blob)
    qi, di = evaluation.split_queries(800, 50)
    q = x[qi].astype(np.float64)
    pos = evaluation._top_ids(q, xh, 10, rows=di)
    with tqcli.open(blob) as f:
        ids, _ = f.search(q, 10, ids=di)
    np.testing.assert_array_equal(di[pos], ids)


@pytest.mark.parametrize("bad, words", [
    (np.zeros((2, 7)), "7 values"),
    (np.array([[np.nan] * 16]), "NaN"),
    (np.array([[np.inf] * 16]), "infinity"),
    (np.zeros((2, 2, 16)), "2-D"),
])
def test_hostile_queries(bad, words):
    blob = tqcli.compress(gaussian(50, 16), bits=3)
    with tqcli.open(blob) as f, pytest.raises(InputError, match=words):
        f.search(bad, 3)


def test_hostile_requests():
    x = gaussian(50, 16)
    blob = tqcli.compress(x, bits=3)
    with tqcli.open(blob) as f:
        for k in (0, -1):
            with pytest.raises(InputError, match="positive"):
                f.search(x[0], k)
        with pytest.raises(InputError, match="out of range"):
            f.search(x[0], 3, ids=[0, 50])
        with pytest.raises(InputError, match="out of range"):
            f.search(x[0], 3, ids=[-1])
        with pytest.raises(InputError, match="rerank"):
            f.search(x[0], 3, candidates=5)
        with pytest.raises(ValueError, match="metric"):
            f.search(x[0], 3, metric="hamming")
    empty = tqcli.compress(np.zeros((0, 16), np.float32), bits=3)
    with tqcli.open(empty) as f, pytest.raises(InputError, match="no vectors"):
        f.search(x[0], 3)


def test_a_corrupt_chunk_mid_file_is_refused():
    x = gaussian(600, 16, seed=1)
    blob = bytearray(tqcli.compress(x, bits=4, chunk_rows=128))
    with tqcli.open(bytes(blob)) as f:
        h = f.header
        off = f._reader.index[2][0] if not h.fixed_layout else h.chunk_offset(2)
    blob[off + 5] ^= 0xFF
    with tqcli.open(bytes(blob)) as f, pytest.raises(FormatError, match="chunk 2"):
        f.search(x[:3], 4)
    with pytest.raises(FormatError, match="chunk 2"):
        tqcli.load_index(bytes(blob))


@pytest.mark.parametrize("bits", range(1, 9))
def test_index_scan_of_the_codes_is_exact(bits):
    """load_index holds an mse packed file in the scan's layout: candidates from the codes
    (tqcli.kernels.scan), proven with the table bound, scored from their decoded rows --
    the same hits as numpy on the decoded file, for every metric, centred or not."""
    d = (3, 97, 130, 64, 33, 97, 16, 200)[bits - 1]
    x = gaussian(1100, d, seed=bits) + 0.4
    x[1000:1005] = x[20]
    blob = tqcli.compress(x, bits=bits, chunk_rows=256, center=bits % 2 == 1)
    xh = tqcli.decompress(blob)
    index = tqcli.load_index(blob)
    assert index.scan is not None
    q = queries_for(x, 12, bits)
    q[0] = x[20] * 2
    allowed = np.arange(5, 1100, 4)
    for metric in ("ip", "cosine", "l2"):
        ids, scores = index.search(q, 9, metric=metric, threads=1 + bits % 3)
        want_ids, want_scores = reference(xh, q, 9, metric)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-12)
        ids, _ = index.search(q, 9, metric=metric, ids=allowed, rows=(100, 900))
        inside = allowed[(allowed >= 100) & (allowed < 900)]
        np.testing.assert_array_equal(ids, reference(xh, q, 9, metric, allowed=inside)[0])


def test_index_scan_falls_back_when_the_bound_cannot_separate():
    """Hundreds of near-copies around the k-th place, closer than the table's bound: the
    scan's order among them is not the exact one, the proof fails at the first depths
    (and for the exact ties at all), and the hits are still the exact ones."""
    rng = np.random.default_rng(1)
    x = gaussian(3000, 24, seed=2)
    near = rng.choice(3000, 900, replace=False)
    x[near] = x[0] + 0.005 * rng.standard_normal((900, 24)).astype(np.float32)
    blob = tqcli.compress(x, bits=8, chunk_rows=512)  # 8 bits: finer than a uint8 table
    index = tqcli.load_index(blob)
    q = np.stack([x[0] * 2, x[0] + 0.01 * rng.standard_normal(24)])
    want = reference(tqcli.decompress(blob), q, 10)[0]
    ids, _ = index.search(q, 10)
    np.testing.assert_array_equal(ids, want)
    with tqcli.open(blob) as f:  # the streamed scan: each chunk falls back on its own rows
        np.testing.assert_array_equal(f.search(q, 10, scan=True)[0], want)


def test_deeper_passes_decode_only_the_rows_that_can_still_win(monkeypatch):
    """Random unit vectors (the table's bound about a score deviation): the first 42
    candidates prove nothing, the next pass scans 672 deep but decodes only those whose
    approximation plus bound reaches the k-th exact key found so far -- and the hits are
    still exactly numpy's, for every metric and thread count, with 61 identical rows
    (equal keys at the k-th place: ties to the smaller id across the passes)."""
    from tqcli.library import search_scan

    rng = np.random.default_rng(5)
    x = rng.standard_normal((8000, 256)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[100:160] = x[3]
    blob = tqcli.compress(x, bits=4)
    xh = tqcli.decompress(blob)
    index = tqcli.load_index(blob)
    q = rng.standard_normal((6, 256))
    q[0] = x[3] * 2
    seen = []
    exact = search_scan._exact

    def spy(data, qq, cand, *a, **kw):
        seen.append((cand.shape[0], int((cand >= 0).sum(axis=1).max())))
        return exact(data, qq, cand, *a, **kw)

    monkeypatch.setattr(search_scan, "_exact", spy)
    for metric in ("ip", "cosine", "l2"):
        want_ids, want_scores = reference(xh, q, 10, metric)
        for threads in (1, 2):
            seen.clear()
            ids, scores = index.search(q, 10, metric=metric, threads=threads)
            np.testing.assert_array_equal(ids, want_ids)
            np.testing.assert_allclose(scores, want_scores, rtol=1e-12, atol=0)
            assert len(seen) >= 2 and seen[0][0] == 6  # a second pass was needed ...
            assert 10 <= seen[0][1] <= 42 and 10 <= seen[1][1] < 672  # ... each narrowed
    np.testing.assert_array_equal(want_ids[0], np.r_[3, 100:109])  # the copies, by id
    with tqcli.open(blob) as f:  # the streamed scan narrows the same way
        np.testing.assert_array_equal(f.search(q, 10, scan=True)[0], want_ids)


@pytest.mark.parametrize("bits", range(1, 9))
def test_fast_pack_and_unpack_equal_the_reference(bits):
    from tqcli.codec import reference
    from tqcli.codec.codes import ChunkCodes
    from tqcli.library.search_scan import pack_rows, unpack_rows

    rng = np.random.default_rng(bits)
    for rows, d in ((1, 1), (3, 5), (17, 97), (64, 8)):
        idx = rng.integers(0, 1 << bits, (rows, d)).astype(np.uint8)
        packed = pack_rows(idx, bits)
        np.testing.assert_array_equal(packed, reference.pack(idx, bits))
        cc = ChunkCodes("packed", rows, d, bits, packed, np.ones(rows, np.float32))
        np.testing.assert_array_equal(unpack_rows(cc), idx)


@pytest.mark.parametrize("bits, center", [(1, False), (2, True), (4, False), (8, True)])
def test_streamed_scan_of_each_chunk_is_exact(bits, center):
    """f.search(scan=True): each chunk's candidates from its codes, proven per chunk,
    unproven queries scored on the chunk's decoded rows: the same hits."""
    x = gaussian(1300, 40, seed=bits) + 0.2
    x[1200:1208] = x[9]
    blob = tqcli.compress(x, bits=bits, chunk_rows=256, center=center)
    xh = tqcli.decompress(blob)
    q = queries_for(x, 30, bits)
    q[0] = x[9] * 2
    allowed = np.arange(1, 1300, 3)
    inside = allowed[(allowed >= 200) & (allowed < 1100)]
    for metric in ("ip", "cosine", "l2"):
        with tqcli.open(blob) as f:
            ids, scores = f.search(q, 10, metric=metric, scan=True, threads=2)
            sub, _ = f.search(q, 10, metric=metric, scan=True, ids=allowed, rows=(200, 1100))
        want_ids, want_scores = reference(xh, q, 10, metric)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-12)
        np.testing.assert_array_equal(sub, reference(xh, q, 10, metric, allowed=inside)[0])


def test_index_of_chunks_that_are_not_whole_scan_blocks():
    """Chunks of 24 rows (not a multiple of the scan's 32-row blocks) are laid out again
    as one array; the hits are still those of the decoded file."""
    x = gaussian(250, 20, seed=8)
    blob = tqcli.compress(x, bits=3, chunk_rows=24)
    index = tqcli.load_index(blob)
    assert index.scan is not None and index.scan.codes.rows == 250
    q = queries_for(x, 6, 8)
    np.testing.assert_array_equal(index.search(q, 7)[0],
                                  reference(tqcli.decompress(blob), q, 7)[0])
