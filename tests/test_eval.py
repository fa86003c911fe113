"""tq eval: streamed figures equal the whole-array ones, the sample and its queries, -b
lists, refusals, the 100-column table, targets and --plot.

In-process (click's CliRunner and library calls) on small arrays, so that the file costs
a few seconds; the 3 GB memory figure is in the README, measured by hand.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import tqcli
from tqcli.library import api, evaluation
from tqcli.cli import main, parse_bit_list

from conftest import gaussian, nmse


def tq(*args, cwd=None):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def offset_rows(n, d, seed=3):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, d)) + 0.5 * rng.standard_normal(d)).astype(np.float32)


def plain_bias(x, y, queries):
    """Mean of q.y - q.x over held-out queries and every other row, in plain numpy."""
    q, db = evaluation.split_queries(x.shape[0], queries)
    diff = x[q].astype(np.float64) @ (y[db].astype(np.float64) - x[db].astype(np.float64)).T
    return float(diff.mean())


@pytest.mark.parametrize("d, n", [(32, 600), (2048, 1100)])  # one block; 3 blocks of 512
def test_streamed_figures_equal_the_whole_array_ones(tmp_path, d, n):
    x = offset_rows(n, d)
    np.save(tmp_path / "x.npy", x)
    (r,) = api.evaluate_file(tmp_path / "x.npy", bits=(3,), queries=100, sample=n)
    blob = tqcli.compress(x, bits=3)
    y = tqcli.decompress(blob)
    assert r["nmse"] == pytest.approx(nmse(x, y), rel=1e-9)
    assert r["bytes"] == len(blob) and r["vectors"] == n and r["sample"] == n
    assert r["ip_bias"] == pytest.approx(plain_bias(x, y, 100), rel=1e-6, abs=1e-12)
    ref = evaluation.search_metrics(x, y, 100)
    for key in ("recall_at_1", "recall_10_at_10", "ip_rmse", "queries"):
        assert r[key] == pytest.approx(ref[key], rel=1e-9), key
    assert 0 < r["ip_bias_stderr"] < abs(r["ip_bias"])  # mse's shrinkage is a real bias
    # and centred: the same centre compress --center takes (the first chunk's mean)
    (plain, centred) = api.evaluate_file(tmp_path / "x.npy", bits=(3,), queries=100,
                                         center=True)
    blob = tqcli.compress(x, bits=3, center=True)
    assert centred["centered"] and not plain["centered"]
    assert centred["nmse"] == pytest.approx(nmse(x, tqcli.decompress(blob)), rel=1e-9)
    assert centred["bytes"] == len(blob)


def test_sample_keeps_nmse_over_all_rows_and_says_how_many_queries(tmp_path):
    x = gaussian(900, 48, seed=4)
    np.save(tmp_path / "x.npy", x)
    full, = api.evaluate_file(tmp_path / "x.npy", bits=(2,), queries=1000, sample=900)
    part, = api.evaluate_file(tmp_path / "x.npy", bits=(2,), queries=1000, sample=300)
    assert full["nmse"] == part["nmse"]  # every vector, whatever the sample
    assert (full["sample"], full["queries"]) == (900, 450)  # capped at half the sample
    assert (part["sample"], part["queries"], part["queries_asked"]) == (300, 150, 1000)
    assert part["ip_bias_vectors"] == 900 - 150
    out = tq("eval", tmp_path / "x.npy", "-b", "2", "--sample", "300").output
    assert "150 held-out queries (--queries 1000: at most half the sample) in a sample of " \
           "300" in " ".join(out.split())
    calls = []
    api.evaluate_file(tmp_path / "x.npy", bits=(2,), queries=10,
                      progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 900) and calls[-1] == (900, 900)


def test_default_sample_is_bounded():
    assert evaluation.default_sample(10**6, 768, 3) == 10_000
    assert evaluation.default_sample(500, 768, 3) == 500
    wide = evaluation.default_sample(10**6, 4096, 8)
    assert wide * 4096 * 4 * 9 <= evaluation.SAMPLE_BUDGET and wide >= 1000


def test_prod_bias_is_within_its_standard_error(tmp_path):
    """Independent vectors: prod's bias is noise; offset vectors: mse's shrinkage is not.
    (Vectors that share an offset share their error under one seed: prod is unbiased
    over seeds, not for one, so the prod case uses independent rows.)"""
    np.save(tmp_path / "g.npy", gaussian(3000, 64, seed=9))
    np.save(tmp_path / "x.npy", offset_rows(3000, 64, seed=9))
    prod, = api.evaluate_file(tmp_path / "g.npy", bits=(3,), mode="prod", queries=200)
    mse, = api.evaluate_file(tmp_path / "x.npy", bits=(3,), queries=200)
    assert abs(prod["ip_bias"]) < 4 * prod["ip_bias_stderr"], prod
    assert abs(mse["ip_bias"]) > 10 * mse["ip_bias_stderr"], mse


def test_bit_lists():
    assert parse_bit_list("1-4") == [1, 2, 3, 4]
    assert parse_bit_list("2,3,4") == [2, 3, 4]
    assert parse_bit_list("1-3,8") == [1, 2, 3, 8]
    assert parse_bit_list("4,2,2") == [2, 4]
    for bad in ("3-1", "0", "1-9", "a", "2-", ""):
        with pytest.raises(ValueError):
            parse_bit_list(bad)


def test_refusals(tmp_path):
    np.save(tmp_path / "x.npy", gaussian(64, 16))
    np.save(tmp_path / "empty.npy", np.zeros((0, 16), np.float32))
    tqcli.compress_file(tmp_path / "x.npy", tmp_path / "x.tqz", bits=3)
    for extra in (["-b", "4"], ["--mode", "prod"], ["--seed", "2"], ["--scale", "norm"],
                  ["--center"], ["--target-nmse", "0.1"]):
        r = tq("eval", tmp_path / "x.npy", tmp_path / "x.tqz", *extra)
        assert r.exit_code == 2 and "own settings" in r.stderr, (extra, r.output)
        assert extra[0] in r.stderr
    r = tq("eval", tmp_path / "empty.npy")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == f"tq: {tmp_path / 'empty.npy'}: holds no vectors to evaluate\n"
    assert tq("eval", tmp_path / "x.npy", "-b", "3-1").exit_code == 2
    assert tq("eval", tmp_path / "x.npy", "--target-recall", "0.9",
              "--queries", "0").exit_code == 2


def test_table_fits_100_columns_and_shows_8_bit_digits(tmp_path):
    np.save(tmp_path / "x.npy", offset_rows(400, 96))
    r = tq("eval", tmp_path / "x.npy", "-b", "1-2,8", "--center", "--queries", "50",
           "--coding", "fixed")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100, r.stdout
    assert not any("…" in line for line in lines)
    rows = [line.split() for line in lines if line.split()[:1] in (["1"], ["2"], ["8"])]
    assert [(row[0], row[1]) for row in rows] == [("1", "-"), ("1", "mean"), ("2", "-"),
                                                  ("2", "mean"), ("8", "-"), ("8", "mean")]
    eight = rows[4]
    assert eight[2] != eight[3]  # nmse and optimum differ visibly at 8 bits
    assert "±" in eight[5]
    assert any(line.startswith("nmse, ip bias ± std. error: all 400 vectors") for line in lines)
    last = r.stdout[r.stdout.rindex("suggested: "):]  # wrapped at 100 columns
    assert last.startswith("suggested: -b 8") and "tq compress" in last


def test_targets_pick_the_smallest_measured_width(tmp_path):
    np.save(tmp_path / "x.npy", gaussian(1200, 64, seed=5))
    out = json.loads(tq("eval", tmp_path / "x.npy", "--target-nmse", "0.05", "--json",
                        "--queries", "200", "--coding", "fixed").stdout)
    res, rec = out["results"], out["recommendation"]
    assert [r["bits"] for r in res] == list(range(1, 9))  # a target evaluates every width
    meets = [r["bits"] for r in res if r["nmse"] <= 0.05]
    assert rec["met"] and rec["bits"] == min(meets) == 3 and rec["mode"] == "mse"
    out = json.loads(tq("eval", tmp_path / "x.npy", "--target-recall", "0.9", "-b", "1-6",
                        "--json", "--queries", "200", "--coding", "fixed").stdout)
    res, rec = out["results"], out["recommendation"]
    chosen = next(r for r in res if r["bits"] == rec["bits"])
    assert chosen["recall_at_1"] >= 0.9
    assert all(r["recall_at_1"] < 0.9 for r in res if r["bits"] < rec["bits"])
    text = tq("eval", tmp_path / "x.npy", "--target-recall", "0.9", "-b", "1-6",
              "--queries", "200", "--coding", "fixed").stdout
    assert f"smallest setting with recall@1 >= 0.9: -b {rec['bits']} " in text
    text = tq("eval", tmp_path / "x.npy", "--target-nmse", "0.001", "-b", "1,2",
              "--queries", "20", "--coding", "fixed").stdout
    assert "no setting evaluated meets nmse <= 0.001000: try more bits (-b 3-8)" in text


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="--plot needs the plot extra: pip install "
                        "'.[test,plot]' (.ci/run installs it)")
    np.save(tmp_path / "x.npy", gaussian(300, 32))
    png = tmp_path / "e.png"
    r = tq("eval", tmp_path / "x.npy", "-b", "2,3", "--center", "--queries", "30",
           "--plot", png)
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = tq("eval", tmp_path / "x.npy", "-b", "2", "--plot", png)
    assert r.exit_code == 1 and r.stderr == f"tq: {png}: already exists; use -f to overwrite\n"


def test_plot_says_when_matplotlib_is_missing(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", gaussian(300, 32))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    r = tq("eval", tmp_path / "x.npy", "-b", "2", "--plot", tmp_path / "f.png")
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "matplotlib" in r.stderr and "tq[plot]" in r.stderr
    assert not (tmp_path / "f.png").exists()
