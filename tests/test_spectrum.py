"""The fitting of a basis (issue 24): the fixed-order float64 kernels against their numpy
twins bit for bit, their accuracy against LAPACK, and fit_spectrum's promises (the same
bits however the rows are cut into blocks and on any thread count)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from tqcli.codec import fitting
from tqcli.kernels import spectrum as ks
from tqcli.kernels import spectrum_ref as kr


def _data(n, d, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    scales = np.geomspace(4.0, 1e-3, d)
    x = rng.standard_normal((n, d)) * scales + rng.standard_normal(d)
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d", [1, 2, 7, 8, 9, 33])
def test_scatter_matches_reference(d, dtype):
    x = _data(61, d, seed=d, dtype=dtype)  # 61 rows: three whole tiles of 16 and a partial
    shift = x[0].astype(np.float64)
    s1, s2 = np.zeros(d), np.zeros((d, d))
    ks.scatter(x, shift, s1, s2)
    r1, r2 = np.zeros(d), np.zeros((d, d))
    kr.scatter_reference(x, shift, r1, r2)
    assert np.array_equal(s1, r1) and np.array_equal(s2, r2)
    assert not np.tril(s2, -1).any()  # the lower triangle is not touched


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inverse_energy_matches_reference(dtype):
    x = _data(45, 13, dtype=dtype)
    x[7] = 0.0  # skipped
    acc, s1 = np.zeros(2), np.zeros(13)
    ks.inverse_energy(x, acc, s1)
    racc, rs1 = np.zeros(2), np.zeros(13)
    kr.inverse_energy_reference(x, racc, rs1)
    assert np.array_equal(acc, racc) and np.array_equal(s1, rs1)
    assert acc[1] == 44
    x64 = np.delete(x.astype(np.float64), 7, axis=0)
    w = 1 / (x64 * x64).sum(axis=1)
    assert acc[0] == pytest.approx(w.sum(), rel=1e-12)
    assert np.allclose(s1, (x64 * w[:, None]).sum(axis=0), rtol=1e-12, atol=1e-12)


def test_scatter_band_split_changes_no_bit():
    x = _data(100, 40)
    shift = x[0].astype(np.float64)
    outs = []
    for cuts in ([0, 40], [0, 1, 39, 40], [0, 3, 10, 11, 25, 40], list(range(41))):
        s1, s2 = np.zeros(40), np.zeros((40, 40))
        bands = np.array(cuts, np.int64)
        ks.scatter_bands(x, shift, s1, s2, bands, 0, bands.size - 1)
        outs.append((s1, s2))
    for s1, s2 in outs[1:]:
        assert np.array_equal(s1, outs[0][0]) and np.array_equal(s2, outs[0][1])


def test_row_bands_cover_the_triangle():
    for d in (1, 5, 384, 1000):
        for parts in (1, 2, 64):
            b = ks.row_bands(d, parts)
            assert b[0] == 0 and b[-1] == d and (np.diff(b) >= 0).all()
    area = np.arange(768, 0, -1)
    b = ks.row_bands(768, 4)
    shares = [area[b[i]:b[i + 1]].sum() / area.sum() for i in range(4)]
    assert max(shares) < 0.26 and min(shares) > 0.24


def _matrices():
    rng = np.random.default_rng(7)
    out = {"zero": np.zeros((5, 5)), "diagonal": np.diag([3.0, -1.0, 2.0, 2.0, 0.0]),
           "one": np.array([[2.5]]), "two": np.array([[1.0, 2.0], [2.0, 1.0]])}
    a = rng.standard_normal((13, 13))
    out["random13"] = a + a.T
    b = rng.standard_normal((40, 6))
    out["rank6_of_40"] = b @ b.T                     # 34 eigenvalues (numerically) zero
    q, _ = np.linalg.qr(rng.standard_normal((24, 24)))
    out["repeated"] = (q * np.repeat([5.0, 1.0, 1e-9], 8)) @ q.T  # three 8-fold values
    out["tridiagonal"] = np.diag(np.ones(16) * 2) + np.diag(-np.ones(15), 1) \
        + np.diag(-np.ones(15), -1)                  # already tridiagonal: x = 0 below
    out["tiny"] = out["random13"] * 1e-150
    # the covariance of 12 float32 rows of 48: 36 eigenvalues at rounding level (~1e-18),
    # which stalled the iteration when only the relative test dropped off-diagonals
    y = (rng.standard_normal((12, 48)) / 7).astype(np.float32).astype(np.float64)
    y -= y.mean(axis=0)
    out["rank11_of_48"] = y.T @ y / 12
    return out


@pytest.mark.parametrize("name", list(_matrices()))
def test_eigen_kernels_match_reference(name):
    a = _matrices()[name]
    n = a.shape[0]
    diag, off, qt = np.zeros(n), np.zeros(n), np.empty((n, n))
    ks.tridiagonalise(np.triu(a).copy(), diag, off, qt)
    rd, ro, rq = kr.tridiagonalise_reference(np.triu(a))
    assert np.array_equal(diag, rd) and np.array_equal(off, ro) and np.array_equal(qt, rq)
    assert ks.tridiagonal_eigen(diag, off, qt) == 0
    status, vals, vecs = kr.tridiagonal_eigen_reference(rd, ro, rq)
    assert status == 0 and np.array_equal(diag, vals) and np.array_equal(qt, vecs)
    v1, w1 = ks.symmetric_eigen(np.triu(a).copy())
    v2, w2 = kr.symmetric_eigen_reference(np.triu(a))
    assert np.array_equal(v1, v2) and np.array_equal(w1, w2)


@pytest.mark.parametrize("name", list(_matrices()))
def test_eigen_is_accurate(name):
    a = _matrices()[name]
    n = a.shape[0]
    vals, vecs = ks.symmetric_eigen(a.copy())
    scale = max(np.abs(a).max(), 1e-300)
    assert np.all(np.diff(vals) <= 0)
    assert np.abs(vals - np.linalg.eigvalsh(a)[::-1]).max() <= 1e-13 * scale * n
    assert np.abs(vecs @ vecs.T - np.eye(n)).max() <= 1e-13 * n
    assert np.abs(a @ vecs.T - vecs.T * vals).max() <= 1e-13 * scale * n
    big = vecs[np.arange(n), np.argmax(np.abs(vecs), axis=1)]
    assert (big > 0).all()


def test_fit_spectrum_against_lapack():
    x = _data(3000, 48)
    s = fitting.fit_spectrum([x], 48)
    x64 = x.astype(np.float64)
    cov = np.cov(x64.T, bias=True)
    values, vectors = np.linalg.eigh(cov)
    assert s.rows == 3000 and s.blocks == ((0, 48),)
    assert np.abs(s.mean - x64.mean(axis=0)).max() < 1e-14 * np.abs(x64).max()
    assert np.abs(s.variances - values[::-1]).max() < 1e-12 * values.max()
    # distinct, well-separated variances: the same directions up to sign
    dots = np.abs(np.sum(s.components * vectors[:, ::-1].T, axis=1))
    assert dots.min() > 1 - 1e-9


def test_fit_spectrum_does_not_depend_on_the_blocks():
    x = _data(700, 21)
    whole = fitting.fit_spectrum([x], 21)
    for cuts in ([1], [16, 17, 500], list(range(0, 700, 3)), [0, 0, 699]):
        pieces = np.split(x, cuts)
        s = fitting.fit_spectrum(iter(pieces), 21)
        for f in ("mean", "components", "variances"):
            assert np.array_equal(getattr(s, f), getattr(whole, f)), (cuts, f)
    s64 = fitting.fit_spectrum([x.astype(np.float64)], 21)  # float32 rows are exact in f64
    assert np.array_equal(s64.components, whole.components)


@pytest.mark.parametrize("n,d", [(20, 100), (50, 384), (30, 200), (3, 64)])
def test_fit_converges_with_fewer_rows_than_dimensions(n, d):
    y = (np.random.default_rng(n).standard_normal((n, d)) / np.sqrt(d)).astype(np.float32)
    s = fitting.fit_spectrum([y], d)
    ref = np.linalg.eigvalsh(np.cov(y.T.astype(np.float64), bias=True))[::-1]
    assert np.abs(s.variances - np.maximum(ref, 0)).max() < 1e-13
    assert np.count_nonzero(s.variances > 1e-12) == n - 1
    c = s.components
    assert np.abs(c @ c.T - np.eye(d)).max() < 1e-12


def test_fit_spectrum_edges():
    empty = fitting.fit_spectrum([np.zeros((0, 4), np.float32)], 4)
    assert empty.rows == 0 and not empty.mean.any() and not empty.variances.any()
    assert np.array_equal(np.abs(empty.components), np.eye(4))
    one = fitting.fit_spectrum([np.arange(4, dtype=np.float32)[None]], 4)
    assert np.array_equal(one.mean, np.arange(4.0)) and not one.variances.any()
    same = fitting.fit_spectrum([np.ones((50, 3), np.float32)], 3)
    assert not same.variances.any()
    with pytest.raises(ValueError):
        fitting.fit_spectrum([np.zeros((2, 5))], 4)


def test_block_form_for_large_d():
    assert fitting.coordinate_blocks(10, 4) == ((0, 4), (4, 7), (7, 10))
    assert fitting.coordinate_blocks(1536) == ((0, 1536),)
    assert fitting.coordinate_blocks(4096) == ((0, 1366), (1366, 2731), (2731, 4096))
    x = _data(400, 30, seed=3)
    s = fitting.fit_spectrum([x], 30, max_block=12)
    assert s.blocks == ((0, 10), (10, 20), (20, 30))
    assert np.abs(s.components @ s.components.T - np.eye(30)).max() < 1e-13
    assert np.all(np.diff(s.variances) <= 0)
    for comp in s.components:  # each component lives in one block
        nz = np.flatnonzero(comp)
        assert any(a <= nz.min() and nz.max() < b for a, b in s.blocks)
    # each block's spectrum is that block fitted alone
    part = fitting.fit_spectrum([np.ascontiguousarray(x[:, 10:20])], 10)
    mine = s.components[:, 10:20]
    rows = np.flatnonzero(np.abs(mine).sum(axis=1))
    assert np.array_equal(mine[rows], part.components)
    assert np.array_equal(s.mean[10:20], part.mean)
    assert fitting.fit_memory(4096) == 2 * 8 * 1366 ** 2 + 8 * 4096 ** 2 + 64 * 4096


def test_sample_positions():
    assert np.array_equal(fitting.sample_positions(5, 8), np.arange(5))
    assert np.array_equal(fitting.sample_positions(8, 8), np.arange(8))
    p = fitting.sample_positions(10 ** 9, 1000)
    assert p.size == 1000 and p[0] == 0 and p[-1] < 10 ** 9 and (np.diff(p) > 0).all()
    gaps = np.diff(fitting.sample_positions(1999, 1000))
    assert set(gaps.tolist()) == {1, 2}
    seen = []
    blocks = list(fitting.sampled_blocks(lambda pos: seen.append(pos) or pos[:, None] * 1.0,
                                         100, cap=10, block=4))
    assert [len(b) for b in blocks] == [4, 4, 2]
    assert np.concatenate(seen).tolist() == list(range(0, 100, 10))


def test_coding_gain():
    assert fitting.coding_gain([1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert fitting.coding_gain([4.0, 1.0]) == pytest.approx(2.5 / 2.0)
    assert fitting.coding_gain([4.0, 1.0, 0.0]) == pytest.approx(1.25)  # zero: no bits
    assert fitting.coding_gain([]) == 1.0


_CHILD = """
import hashlib, sys
import numpy as np
from tqcli.codec import fitting
from tqcli import kernels
rng = np.random.default_rng(5)
x = (rng.standard_normal((2000, 150)) * np.geomspace(3, 1e-2, 150)).astype(np.float32)
kernels.set_threads(None)
s = fitting.fit_spectrum([x[:999], x[999:]], 150)
h = hashlib.sha256()
for a in (s.mean, s.components, s.variances):
    h.update(np.ascontiguousarray(a).tobytes())
print(kernels.thread_count(), h.hexdigest())
"""


def test_same_bits_on_one_and_two_threads():
    digests = {}
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        assert out[0] == threads
        digests[threads] = out[1]
    assert digests["1"] == digests["2"]
    # and the same as this process's (whatever its thread count)
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((2000, 150)) * np.geomspace(3, 1e-2, 150)).astype(np.float32)
    s = fitting.fit_spectrum([x], 150)
    h = hashlib.sha256()
    for a in (s.mean, s.components, s.variances):
        h.update(np.ascontiguousarray(a).tobytes())
    assert h.hexdigest() == digests["1"]


def test_sample_of_sequential_blocks():
    x = np.arange(1000 * 2, dtype=np.float32).reshape(1000, 2)
    for size in (1, 7, 128, 1000):
        blocks = (x[a:a + size] for a in range(0, 1000, size))
        got = np.concatenate(list(fitting.sample_of(blocks, 1000, cap=300)))
        assert np.array_equal(got, x[fitting.sample_positions(1000, 300)])
    small = np.concatenate(list(fitting.sample_of(iter([x[:10], x[10:20]]), 20, cap=300)))
    assert np.array_equal(small, x[:20])  # n <= cap: every row, as a stream's first block
