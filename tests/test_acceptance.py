"""Acceptance criteria of the issue, measured on the real engine (tqcli.compress/decompress).

(a) random unit vectors: the least-squares error is README's figure for (d, b), and with the
    plain norm as scale the error is the Lloyd-Max optimum within 1% (so the rotation alone
    reaches the optimum);
(b) real sentence embeddings: error and recall are README's figures, recall computed here
    with plain numpy on the held-out split and by tqcli.library.evaluation, which must agree;
(c) the structured rotation is as good as a dense Haar rotation on the real data;
(d) prod mode gives unbiased inner products, mse with the norm scale shrinks them by ~(1 - D),
    the 'ip' scale removes that shrinkage;
(e) the file is exactly the packed codes plus one float32 per vector, plus < 1% overhead.

Each test prints the figures it measured (pytest -s or -rP shows them).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ortho_group

import tqcli
from tqcli.codec import codebook
from tqcli.library import evaluation

from conftest import nmse

N_UNIT = 20000


def unit_vectors(seed: int, n: int, d: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


# ------------------------------------------------------------------ (a) unit vectors

# README's table "Random unit vectors (n = 20 000), nmse divided by the optimum for that d"
# (default options: the least-squares scale, seed 0), per d, for b = 1..4.
README_UNIT_RATIO = {64: (0.999, 0.985, 0.971, 0.964), 200: (1.000, 0.995, 0.990, 0.986),
                     384: (0.999, 0.997, 0.994, 0.992), 768: (1.000, 1.000, 0.999, 0.999),
                     1536: (1.000, 0.999, 0.999, 0.998)}
# The vectors here (seed d) are not the ones README's table was measured on; over the 20
# cells the two runs differ by up to 0.0045 (d = 200, b = 4: 0.9905 here), which is what
# the random vectors vary by at n = 20000.  The margin is that plus a little.  (A scale
# rule that falls back to the norm, 0.998 at d = 64, b = 4, is 0.034 away.)
UNIT_RATIO_MARGIN = 0.006


@pytest.mark.parametrize("d", [64, 200, 384, 768, 1536])
def test_a_unit_vectors_reach_the_optimum(d):
    x = unit_vectors(d, N_UNIT, d)
    lines = []
    for bits in (1, 2, 3, 4):
        opt = codebook.expected_distortion(d, bits)
        ratios = {}
        for rule in ("ls", "norm"):
            y = tqcli.decompress(tqcli.compress(x, bits=bits, scale_rule=rule))
            ratios[rule] = nmse(x, y) / opt
            del y
        lines.append(f"b={bits} ls {ratios['ls']:.4f} norm {ratios['norm']:.4f}")
        claim = README_UNIT_RATIO[d][bits - 1]
        assert abs(ratios["ls"] - claim) <= UNIT_RATIO_MARGIN, (d, bits, ratios, claim)
        # with the norm as scale nothing compensates a bad rotation: the error must be the
        # optimum itself (it cannot be much below it either)
        assert abs(ratios["norm"] - 1) <= 0.01, (d, bits, ratios)
        assert ratios["ls"] <= ratios["norm"] + 1e-9
    print(f"\n[a] d={d} nmse/optimum: " + "; ".join(lines))


# ------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def sentence_runs(minilm_sentences):
    """Decoded copies of the real embeddings: default settings and the norm scale, seed 0,
    and the norm scale with seeds 1, 2 (one compress per configuration)."""
    x = minilm_sentences
    runs = {}
    for bits in (2, 3, 4):
        blob = tqcli.compress(x, bits=bits)
        runs[bits, "ls", 0] = (blob, tqcli.decompress(blob))
        for seed in (0, 1, 2):
            blob = tqcli.compress(x, bits=bits, scale_rule="norm", seed=seed)
            runs[bits, "norm", seed] = (blob, tqcli.decompress(blob))
    return runs


# README's table "Measured distortion", real data (default options, seed 0):
# bits -> (nmse, recall@1, recall@10@10)
README_MINILM = {2: (0.11684, 0.838, 0.849), 3: (0.03425, 0.933, 0.919),
                 4: (0.00942, 0.960, 0.954)}
# For the default seed the file, hence the figures, are fixed; other seeds move nmse by up to
# ~0.7% (test_c's seeds 0, 1, 2) and recall@1 by about 0.01.  The margins cover only README's
# rounding (5 decimals of nmse: 0.05% at b = 4) and a near-tie query or two whose order
# floating-point summation can flip (0.002 = two queries of 1000).
NMSE_REL_MARGIN = 0.001
RECALL_MARGIN = 0.002


def heldout_recall(x: np.ndarray, y: np.ndarray, queries: int = 1000) -> tuple[float, float]:
    """recall@1 and recall@10@10 of exact inner-product search over the decoded vectors y, by
    the held-out protocol of ../shared/data/README.md, in plain numpy (no tqcli.library.evaluation):
    queries are rows perm[:1000] of x (exact), the database rows perm[1000:], with perm the
    permutation of numpy.random.default_rng(1)."""
    perm = np.random.default_rng(1).permutation(x.shape[0])
    q, db = perm[:queries], perm[queries:]
    assert not np.intersect1d(q, db).size  # held out: no query is in the database
    qx = x[q].astype(np.float64)
    exact = qx @ x[db].astype(np.float64).T
    approx = qx @ y[db].astype(np.float64).T
    at1 = float(np.mean(exact.argmax(1) == approx.argmax(1)))
    top_exact = np.argsort(-exact, axis=1)[:, :10]
    top_approx = np.argsort(-approx, axis=1)[:, :10]
    overlap = (top_exact[:, :, None] == top_approx[:, None, :]).any(axis=2).sum(axis=1)
    return at1, float(np.mean(overlap)) / 10


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_b_real_embeddings_error_and_recall(minilm_sentences, sentence_runs, bits):
    x = minilm_sentences
    _, y = sentence_runs[bits, "ls", 0]
    assert y.shape == x.shape and y.dtype == np.float32
    opt = codebook.expected_distortion(384, bits)
    err = nmse(x, y)
    at1, at10 = heldout_recall(x, y)
    m = evaluation.search_metrics(x, y, 1000)
    want_nmse, want_at1, want_at10 = README_MINILM[bits]
    print(f"\n[b] minilm b={bits}: nmse {err:.5f} = {err / opt:.4f} x optimum; "
          f"recall@1 {at1:.3f} (README {want_at1}), tool {m['recall_at_1']:.3f}; "
          f"recall@10@10 {at10:.3f} (README {want_at10}), tool {m['recall_10_at_10']:.3f}")
    assert abs(err / want_nmse - 1) <= NMSE_REL_MARGIN, (err, want_nmse)
    assert abs(at1 - want_at1) <= RECALL_MARGIN, (at1, want_at1)
    assert abs(at10 - want_at10) <= RECALL_MARGIN, (at10, want_at10)
    # and the tool computes the same numbers (a near-tie may flip one query)
    assert m["queries"] == 1000
    assert abs(m["recall_at_1"] - at1) <= 0.001, (m["recall_at_1"], at1)
    assert abs(m["recall_10_at_10"] - at10) <= 0.001, (m["recall_10_at_10"], at10)


# README's table, the "mean" rows (--center): bits -> (nmse, recall@1, recall@10@10,
# bytes/vector).  Same data and seed as above, so the same margins; bytes/vector as README
# prints it (one decimal: the centre's 4·d bytes spread over the rows).
README_MINILM_CENTERED = {2: (0.10661, 0.837, 0.852, 100.2), 3: (0.03125, 0.913, 0.920, 148.2),
                          4: (0.00858, 0.949, 0.956, 196.2)}


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_b_real_embeddings_centered(minilm_sentences, bits):
    x = minilm_sentences
    blob = tqcli.compress(x, bits=bits, center=True)
    y = tqcli.decompress(blob)
    err = nmse(x, y)
    at1, at10 = heldout_recall(x, y)
    want_nmse, want_at1, want_at10, want_bytes = README_MINILM_CENTERED[bits]
    print(f"\n[b] minilm b={bits} --center: nmse {err:.5f} (README {want_nmse}); recall@1 "
          f"{at1:.3f} (README {want_at1}); recall@10@10 {at10:.3f} (README {want_at10}); "
          f"{len(blob) / x.shape[0]:.2f} bytes/vector")
    assert abs(err / want_nmse - 1) <= NMSE_REL_MARGIN, (err, want_nmse)
    assert abs(at1 - want_at1) <= RECALL_MARGIN, (at1, want_at1)
    assert abs(at10 - want_at10) <= RECALL_MARGIN, (at10, want_at10)
    assert round(len(blob) / x.shape[0], 1) == want_bytes
    # README: "centring takes 8.8-8.9% off the error at every width"
    plain = README_MINILM[bits][0]
    assert 0.088 <= round(1 - err / plain, 3) <= 0.089, err / plain


# README, Measured distortion: "--mode prod ... its inner-product bias is +5.0e-4 against
# -1.03e-2 for mse at 2 bits, but recall@1 drops to 0.662 / 0.764 / 0.849 at 2 / 3 / 4 bits"
# (tq eval's figures: 1000 held-out queries, the bias over the other rows).  The file is
# fixed for the seed: the margins are README's rounding plus a near-tie query (0.002) and
# half a unit of the bias's last printed digit.
README_PROD_RECALL = {2: 0.662, 3: 0.764, 4: 0.849}
README_IP_BIAS_B2 = {"prod": (5.0e-4, 0.05e-4), "mse": (-1.03e-2, 0.005e-2)}


def test_b_prod_mode_on_real_embeddings(minilm_sentences, tmp_path):
    np.save(tmp_path / "x.npy", minilm_sentences)
    prod = {r["bits"]: r for r in tqcli.evaluate_file(tmp_path / "x.npy", bits=(2, 3, 4),
                                                      mode="prod")}
    mse = tqcli.evaluate_file(tmp_path / "x.npy", bits=(2,))[0]
    print("\n[b] minilm prod recall@1 " + " / ".join(f"{prod[b]['recall_at_1']:.3f}"
                                                   for b in (2, 3, 4))
          + f"; ip bias at b=2: prod {prod[2]['ip_bias']:+.2e}, mse {mse['ip_bias']:+.3e}")
    for b, want in README_PROD_RECALL.items():
        assert abs(prod[b]["recall_at_1"] - want) <= RECALL_MARGIN, (b, prod[b]["recall_at_1"])
    for mode, r in (("prod", prod[2]), ("mse", mse)):
        want, margin = README_IP_BIAS_B2[mode]
        assert abs(r["ip_bias"] - want) <= margin, (mode, r["ip_bias"], want)


def dense_haar_nmse(x: np.ndarray, bits: int, q: np.ndarray) -> float:
    """The same quantizer with a dense rotation: y = Q u, nearest codebook cell per
    coordinate (same float32 centroids and thresholds), x_hat = ||x|| Q^T c[idx]."""
    x64 = x.astype(np.float64)
    norms = np.linalg.norm(x64, axis=1)
    u = x64 / norms[:, None]
    cents = codebook.codebook(x.shape[1], bits)
    idx = np.searchsorted(codebook.boundaries(cents), u @ q.T, side="left")
    xh = (cents.astype(np.float64)[idx] @ q) * norms[:, None]
    return float(np.mean(np.sum((x64 - xh) ** 2, 1) / norms ** 2))


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_c_structured_rotation_matches_dense_haar(minilm_sentences, sentence_runs, bits):
    x = minilm_sentences
    d = x.shape[1]
    dense = []
    for s in (101, 202, 303):
        q = ortho_group.rvs(d, random_state=s)
        np.testing.assert_allclose(q @ q.T, np.eye(d), atol=1e-12)
        dense.append(dense_haar_nmse(x, bits, q))
    dense_mean = float(np.mean(dense))
    ours = [nmse(x, sentence_runs[bits, "norm", s][1]) for s in (0, 1, 2)]
    opt = codebook.expected_distortion(d, bits)
    print(f"\n[c] minilm b={bits} (norm scale) nmse/optimum: structured seeds 0,1,2 "
          + " ".join(f"{v / opt:.4f}" for v in ours) + "; dense Haar "
          + " ".join(f"{v / opt:.4f}" for v in dense)
          + f"; default seed / dense mean = {ours[0] / dense_mean:.4f}")
    assert abs(ours[0] / dense_mean - 1) <= 0.01       # the default seed users get
    assert abs(np.mean(ours) / dense_mean - 1) <= 0.01  # and the rotation family on average


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_e_real_file_size_is_the_formula(minilm_sentences, sentence_runs, bits):
    n, d = minilm_sentences.shape
    blob, _ = sentence_runs[bits, "ls", 0]
    hdr = tqcli.read_header(blob)
    payload = -(-n * d * bits // 8) + 4 * n
    assert hdr.payload_bytes == payload
    header = 48 + 8 * 2 + 4 * (1 << bits) + 4
    assert len(blob) == header + payload + 20 * hdr.n_chunks + 24
    overhead = (len(blob) - payload) / len(blob)
    print(f"\n[e] minilm b={bits}: {len(blob)} bytes = payload {payload} + {len(blob) - payload} "
          f"overhead ({100 * overhead:.3f}%); {len(blob) / n:.2f} bytes/vector, "
          f"ratio vs float32 {4 * n * d / len(blob):.2f}")
    assert overhead < 0.01


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_e_unit_vector_file_size(bits):
    n, d = 10000, 384
    x = unit_vectors(1, n, d)
    blob = tqcli.compress(x, bits=bits)
    payload = -(-n * d * bits // 8) + 4 * n
    assert tqcli.read_header(blob).payload_bytes == payload
    assert len(blob) - payload < 0.01 * len(blob)


# ------------------------------------------------------------------ (d) inner products


D_IP = 128
SEEDS = range(10)      # 10 files of 10^4 vectors: 10^5 (query, vector) pairs, and the
PER_SEED = 10000       # rotation and the sketch vary, as in the unbiasedness statement


def inner_product_errors(bits: int, mode: str, rule: str | None):
    """Errors <q, x_hat> - <q, x> and true products <q, x> for independent random unit
    vectors x and queries q, one query per vector."""
    errs, trues = [], []
    for s in SEEDS:
        rng = np.random.default_rng([bits, s])
        x = unit_vectors(rng.integers(2**32), PER_SEED, D_IP).astype(np.float64)
        q = unit_vectors(rng.integers(2**32), PER_SEED, D_IP).astype(np.float64)
        opts = {} if rule is None else {"scale_rule": rule}
        y = tqcli.decompress(tqcli.compress(x, bits=bits, mode=mode, seed=s, **opts))
        t = np.einsum("ij,ij->i", q, x)
        errs.append(np.einsum("ij,ij->i", q, y.astype(np.float64)) - t)
        trues.append(t)
    return np.concatenate(errs), np.concatenate(trues)


def z_score(v: np.ndarray) -> tuple[float, float, float]:
    m = float(v.mean())
    se = float(v.std(ddof=1) / math.sqrt(v.size))
    return m, se, m / se


@pytest.mark.parametrize("bits", [2, 3])
def test_d_prod_inner_products_unbiased_mse_shrinks(bits):
    d = D_IP
    D = codebook.expected_distortion(d, bits)
    report = []
    results = {}
    for mode, rule in (("prod", None), ("mse", "norm"), ("mse", "ip")):
        e, t = inner_product_errors(bits, mode, rule)
        assert e.size == 10 ** 5
        mean, se, z = z_score(e)
        # A multiplicative bias E[<q,x_hat> | <q,x>] = (1 - k) <q,x> leaves the plain mean at
        # zero when q is independent of x; it shows as a correlation of the error with the
        # true product: E[e t] / E[t^2] = -k.
        slope_num, slope_se, slope_z = z_score(e * t)
        shrink = slope_num / float(np.mean(t * t))
        results[mode, rule] = (z, slope_z, shrink, float(np.var(e)))
        report.append(f"{mode}/{rule or 'norm'}: mean err {mean:+.2e} (SE {se:.1e}, z {z:+.2f}); "
                      f"shrink {-shrink:+.4f} (z {slope_z:+.2f}); err var {np.var(e):.2e}")
    print(f"\n[d] d={d} b={bits} D={D:.4f}: " + " | ".join(report))

    z, slope_z, shrink, var = results["prod", None]
    assert abs(z) <= 3 and abs(slope_z) <= 3
    # variance of the 1-bit residual estimate: pi/(2d) * D_mse(b-1) for unit q
    bound = math.pi / (2 * d) * codebook.expected_distortion(d, bits - 1)
    assert var <= 1.05 * bound, (var, bound)
    assert var >= 0.8 * bound  # the estimate really carries the sketch's noise

    z, slope_z, shrink, _ = results["mse", "norm"]
    assert abs(z) <= 3            # no additive bias ...
    assert slope_z < -10          # ... but a clearly visible shrinkage
    assert -shrink == pytest.approx(D, rel=0.15)

    z, slope_z, shrink, _ = results["mse", "ip"]
    assert abs(z) <= 3 and abs(slope_z) <= 3  # the 'ip' scale removes it
