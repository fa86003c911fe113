"""Which rows the adaptive coding fits (library/adapt_fit.py) and `--adapt auto`'s decision
(codec/adapt_decision.py): a declined file is byte for byte the file without --adapt, the
basis is taken where it pays, file and pipe agree where the spec says they fit the same
rows, and the bytes do not depend on the thread count."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from cliutil import assert_error, ok, run
from conftest import nmse

import tqcli
from tqcli.codec import adapt_decision, adaptive_model, fitting
from tqcli.codec.options import EncodeOptions, OptionError
from tqcli.library import adapt_fit


def structured(n, d, seed=0, rank_decay=0.8):
    """Rows with a steep spectrum and an offset: where a basis pays."""
    rng = np.random.default_rng(seed)
    scales = rank_decay ** np.arange(d)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    x = (rng.standard_normal((n, d)) * scales) @ q.T + 0.3 * rng.standard_normal(d)
    return x.astype(np.float32)


def flat(n, d, seed=0):
    """Isotropic, zero-mean rows: a basis buys nothing (coding gain 1)."""
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _coding(blob) -> str:
    return tqcli.inspect(blob).get("coding", {}).get("name", "fixed")


# ---------------------------------------------------------------------- the decision


class _Fit:
    def __init__(self, d, rows, mean=0.0, var=1.0, scaled=False):
        self.mean = np.full(d, mean)
        self.variances = np.full(d, var)
        self.rows = rows
        self.scaled = scaled


@pytest.mark.parametrize("ratio,taken", [(0.9, True), (0.9 * (1 + 1e-9), False), (0.2, True),
                                         (1.5, False)])
def test_decide_takes_the_basis_at_the_margin(ratio, taken):
    other = adapt_decision.oblivious_nmse(64, "entropy", bits=3)
    assert other < adapt_decision.oblivious_nmse(64, "fixed", bits=3)  # the better one
    dec = adapt_decision.decide(_Fit(64, 1000), 1000, coding="fixed", bits=3,
                                adaptive=lambda n: (ratio * other, 1.0))
    assert dec.adapt is taken
    assert dec.predicted["other_nmse"] == other
    assert ("basis pays" if taken else "does not pay") in dec.reason


def test_decide_compares_bytes_for_an_error_target():
    per_vec = adapt_decision.oblivious_bytes_per_vector(64, "entropy", nmse=0.01)
    assert 4 < per_vec < 64 * 8 / 8 + 4
    yes = adapt_decision.decide(_Fit(64, 500), 500, coding="entropy", nmse=0.01,
                                adaptive=lambda n: (0.01, 0.5 * n * per_vec))
    no = adapt_decision.decide(_Fit(64, 500), 500, coding="entropy", nmse=0.01,
                               adaptive=lambda n: (0.001, 0.95 * n * per_vec))
    assert yes.adapt and not no.adapt
    # fewer bytes, but the mean error per row misses the target (the same absolute error
    # on rows of unequal norms: mean(1/|x|^2) x E = 1.6 > 1.1): not the same error
    fit = _Fit(64, 500, mean=0.0, var=1.0 / 64)  # energy 1
    inverse = (1.6, np.zeros(64))
    miss = adapt_decision.decide(fit, 500, coding="entropy", nmse=0.01, inverse=inverse,
                                 adaptive=lambda n: (0.01, 0.5 * n * per_vec))
    assert not miss.adapt and "above 0.01" in miss.reason
    near = adapt_decision.decide(fit, 500, coding="entropy", nmse=0.01,
                                 inverse=(1.08, np.zeros(64)),
                                 adaptive=lambda n: (0.01, 0.5 * n * per_vec))
    assert near.adapt


def test_decide_centred_fallback_counts_only_the_spread():
    # a centred oblivious coding codes the spread only: its error relative to the energy
    # shrinks by spread / energy, which the adaptive prediction must beat
    fit = _Fit(16, 1000, mean=1.0, var=1.0)  # energy 32, spread 16
    other = adapt_decision.oblivious_nmse(16, "entropy", bits=4)
    plain = adapt_decision.decide(fit, 1000, coding="entropy", bits=4,
                                  adaptive=lambda n: (0.6 * other, 1.0))
    centred = adapt_decision.decide(fit, 1000, coding="entropy", bits=4, centered=True,
                                    adaptive=lambda n: (0.6 * other, 1.0))
    assert plain.adapt and not centred.adapt
    assert centred.predicted["other_nmse"] == pytest.approx(other / 2)


def test_decide_in_mean_relative_error_with_and_without_scales():
    # energy 32, spread 16; rows' mean 1/|x|^2 = 0.05, mean x/|x|^2 = 0: the centred part's
    # share mean(|x - c|^2 / |x|^2) is 1 + 16 x 0.05 = 1.8
    inverse = (0.05, np.zeros(16))
    model = 0.01
    plain = adapt_decision.decide(_Fit(16, 1000, mean=1.0), 1000, coding="entropy", bits=4,
                                  adaptive=lambda n: (model, 1.0), inverse=inverse)
    scaled = adapt_decision.decide(_Fit(16, 1000, mean=1.0, scaled=True), 1000,
                                   coding="entropy", bits=4, adaptive=lambda n: (model, 1.0),
                                   inverse=inverse)
    # no scale: the same absolute error on every row, relative to |x|^2: E x mean(1/|x|^2)
    assert plain.predicted["adapt_nmse"] == pytest.approx(model * 32 * 0.05)
    # a scale per row: the error over the spread, on each row's centred part
    assert scaled.predicted["adapt_nmse"] == pytest.approx(model * 32 / 16 * 1.8)
    # the oblivious side does not depend on the basis
    assert plain.predicted["other_nmse"] == scaled.predicted["other_nmse"]
    centred = adapt_decision.decide(_Fit(16, 1000, mean=1.0, scaled=True), 1000,
                                    coding="entropy", bits=4, centered=True,
                                    adaptive=lambda n: (model, 1.0), inverse=inverse)
    assert centred.predicted["other_nmse"] == pytest.approx(1.8 * plain.predicted["other_nmse"])


def test_decide_declines_a_partial_fit_of_too_few_rows():
    never = lambda n: (0.0, 0.0)  # noqa: E731  (would always win)
    assert not adapt_decision.decide(_Fit(100, 199), 10_000, coding="fixed", bits=2,
                                     adaptive=never).adapt
    assert adapt_decision.decide(_Fit(100, 200), 10_000, coding="fixed", bits=2,
                                 adaptive=never).adapt
    # the whole file fitted: trusted however few rows it has
    assert adapt_decision.decide(_Fit(100, 50), 50, coding="fixed", bits=2,
                                 adaptive=never).adapt
    assert not adapt_decision.decide(_Fit(100, 0), 0, coding="fixed", bits=2,
                                     adaptive=never).adapt
    assert not adapt_decision.decide(_Fit(100, 50), 50, coding="fixed", bits=2,
                                     adaptive=lambda n: None).adapt


# ---------------------------------------------------------------------- auto end to end


@pytest.mark.parametrize("case,kw", [
    ("small", dict(bits=3)), ("small", dict(bits=3, coding="entropy")),
    ("flat", dict(bits=3)), ("flat", dict(bits=2, coding="entropy")),
    ("flat", dict(nmse=0.01, coding="entropy")), ("prod", dict(bits=3, mode="prod"))])
def test_auto_declined_is_the_same_file(case, kw):
    if case == "small":
        x = structured(40, 64)        # the basis would cost more than 64 B per vector
    elif case == "flat":
        x = flat(2000, 256)           # nothing for a basis to find, and 256 B per row
                                      # of it (at d = 64 it pays: no 4-byte scale)
    else:
        x = structured(500, 32)       # the adaptive coding has no prod mode
    auto = tqcli.compress(x, adapt="auto", **kw)
    assert auto == tqcli.compress(x, **kw)


def test_auto_with_centre_and_float16_scales():
    kw = dict(bits=4, coding="entropy", center=True, scale_dtype="float16")
    x = flat(2000, 256) + 5.0     # declined: the options as given, to the byte
    assert tqcli.compress(x, adapt="auto", **kw) == tqcli.compress(x, **kw)
    y = structured(3000, 48)      # taken: the adaptive coding, whose fit decides its own
                                  # scales (none here: rows of similar norms, d < 233)
    blob = tqcli.compress(y, adapt="auto", **kw)
    assert _coding(blob) == "adaptive" and blob == tqcli.compress(y, bits=4, adapt=True)


@pytest.mark.parametrize("target", [dict(bits=2), dict(bits=4), dict(nmse=0.01)])
def test_auto_takes_the_basis_where_it_pays(target):
    x = structured(4000, 64)
    coding = "entropy" if "nmse" in target else "fixed"
    auto = tqcli.compress(x, adapt="auto", coding=coding, **target)
    other = tqcli.compress(x, coding=coding, **target)
    assert _coding(auto) == "adaptive"
    assert auto == tqcli.compress(x, adapt=True, **target)
    e_auto, e_other = nmse(x, tqcli.decompress(auto)), nmse(x, tqcli.decompress(other))
    if "nmse" in target:
        assert len(auto) < 0.9 * len(other) and e_auto <= 0.011
    else:
        assert len(auto) <= len(other) and e_auto < 0.5 * e_other


def test_auto_on_the_kv_dump_is_never_worse_than_the_entropy_coding(minilm_kv):
    # rows of 32 values of unequal norms: with a float16 scale per vector the adaptive coding
    # has about half the entropy coding's mean relative error at its bytes, and auto says so
    for b in (2, 3, 4):
        ent = tqcli.compress(minilm_kv, bits=b, coding="entropy")
        auto = tqcli.compress(minilm_kv, bits=b, coding="entropy", adapt="auto")
        assert _coding(auto) == "adaptive"
        assert tqcli.inspect(auto)["coding"]["scales"]
        assert auto == tqcli.compress(minilm_kv, bits=b, adapt=True)
        assert len(auto) <= len(ent)
        e_auto = nmse(minilm_kv, tqcli.decompress(auto))
        assert e_auto <= 0.6 * nmse(minilm_kv, tqcli.decompress(ent))


def test_auto_predicts_the_scaled_files_mean_relative_error(minilm_kv):
    x = minilm_kv.reshape(-1, 32)[::4]

    class _Source:
        dim, n_rows, rereadable = 32, x.shape[0], True

    def blocks_of(r):
        return (x[i:i + r] for i in range(0, x.shape[0], r))

    options = EncodeOptions(bits=3, coding="entropy", adapt="auto")
    got, _, _, dec = adapt_fit.resolve(_Source(), options, blocks_of)
    assert dec.adapt and got.adapt.scaled
    measured = nmse(x, tqcli.decompress(tqcli.compress(x, bits=3, adapt=got.adapt)))
    assert measured <= dec.predicted["adapt_nmse"] <= 1.06 * measured


def test_auto_refuses_nothing_the_fallback_takes():
    x = structured(300, 5000)[:, :5000]  # wider than the adaptive coding's 4096
    assert tqcli.compress(x[:20], adapt="auto", bits=2) == tqcli.compress(x[:20], bits=2)


# ---------------------------------------------------------------------- which rows


def test_a_file_is_fitted_on_a_sample_over_all_of_it(monkeypatch):
    monkeypatch.setattr(adapt_fit, "fit_rows", lambda d: 250)
    x = structured(1000, 32)
    x[500:] = structured(500, 32, seed=9)  # the second half differs: a first batch misses it
    blob = tqcli.compress(x, bits=3, adapt=True)
    pos = fitting.sample_positions(1000, 250)
    basis = adaptive_model.fit_basis(x[pos])
    assert blob == tqcli.compress(x, bits=3, adapt=basis)
    assert blob != tqcli.compress(x, bits=3, adapt=adaptive_model.fit_basis(x[:250]))


def test_file_and_pipe_give_the_same_bytes_when_they_fit_the_same_rows(tmp_path):
    x = structured(3000, 48)   # 3000 rows: the whole file either way at d = 48
    assert 3000 <= min(adapt_fit.fit_rows(48),
                       adaptive_model.batch_rows(48, EncodeOptions()))
    np.save(tmp_path / "x.npy", x)
    raw = (tmp_path / "x.npy").read_bytes()
    for flag in (["--adapt"], ["--adapt", "auto"]):
        ok(run(["compress", *flag, "-b", "3", "x.npy", "-o", "f.tqz"], tmp_path))
        piped = ok(run(["compress", *flag, "-b", "3", "-c", "-"], tmp_path, input=raw)).stdout
        assert (tmp_path / "f.tqz").read_bytes() == piped
        (tmp_path / "f.tqz").unlink()


def test_a_non_finite_row_in_the_sample_is_named_by_its_row(tmp_path):
    x = structured(600, 16)
    x[444, 3] = np.nan
    np.save(tmp_path / "x.npy", x)
    for flag in (["--adapt"], ["--adapt", "auto"]):
        r = run(["compress", *flag, "x.npy"], tmp_path)
        assert_error(r, "x.npy", "row 444", "nan")
        assert not (tmp_path / "x.npy.tqz").exists()


def test_adapt_takes_its_value_or_gives_the_word_back(tmp_path):
    x = structured(500, 16)
    np.save(tmp_path / "x.npy", x)
    ok(run(["compress", "--adapt", "x.npy", "-o", "a.tqz"], tmp_path))
    ok(run(["compress", "x.npy", "--adapt", "on", "-o", "b.tqz"], tmp_path))
    ok(run(["compress", "--adapt=off", "x.npy", "-o", "c.tqz"], tmp_path))
    ok(run(["compress", "x.npy", "-o", "d.tqz"], tmp_path))
    assert (tmp_path / "a.tqz").read_bytes() == (tmp_path / "b.tqz").read_bytes()
    assert (tmp_path / "c.tqz").read_bytes() == (tmp_path / "d.tqz").read_bytes()
    assert _coding((tmp_path / "a.tqz").read_bytes()) == "adaptive"
    with pytest.raises(OptionError):
        tqcli.compress(x, adapt="sometimes")


_CHILD = """
import hashlib, sys
import numpy as np
from tqcli import kernels
import tqcli
sys.path.insert(0, {tests!r})
from test_adapt_auto import structured
x = structured(5000, 96, seed=4)
kernels.set_threads(None)
out = [kernels.thread_count()]
for kw in (dict(adapt=True, bits=3), dict(adapt="auto", bits=2), dict(adapt=True, nmse=0.02)):
    out.append(hashlib.sha256(tqcli.compress(x, **kw)).hexdigest())
print(*out)
"""


def test_same_bytes_on_one_and_two_threads():
    code = _CHILD.format(tests=os.path.dirname(os.path.abspath(__file__)))
    outs = {}
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads)
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        got = r.stdout.split()
        assert got[0] == threads
        outs[threads] = got[1:]
    assert outs["1"] == outs["2"]


# ---------------------------------------------------------------------- tq eval --adapt


def test_eval_adapt_rows_beside_the_oblivious_rows(tq, tmp_path):
    import json

    x = structured(3000, 48)
    np.save(tmp_path / "x.npy", x)
    code, out, err = tq("eval", "--adapt", "-b", "2,3", "--json", "x.npy")
    assert code == 0, err
    rows = json.loads(out)["results"]
    assert [(r["coding"], r["bits"]) for r in rows] == [
        ("fixed", 2), ("entropy", 2), ("fixed", 3), ("entropy", 3), ("adaptive", 2),
        ("adaptive", 3)]
    for b in (2, 3):
        fixed = next(r for r in rows if r["coding"] == "fixed" and r["bits"] == b)
        adp = next(r for r in rows if r["coding"] == "adaptive" and r["bits"] == b)
        assert adp["nmse"] < 0.5 * fixed["nmse"]
        assert adp["bytes"] <= fixed["bytes"]
        assert adp["adapt_auto"]["takes"] is True
        assert "basis pays" in adp["adapt_auto"]["reason"]
        # the row is the file compress --adapt writes
        blob = tqcli.compress(x, bits=b, adapt=True)
        assert adp["bytes"] == len(blob)
        assert adp["nmse"] == pytest.approx(nmse(x, tqcli.decompress(blob)), rel=1e-9)
    code, out, _ = tq("eval", "-b", "2", "--json", "x.npy")
    assert [r["coding"] for r in json.loads(out)["results"]] == ["fixed", "entropy"]
    code, out, _ = tq("eval", "-b", "2", "x.npy", "--adapt")
    assert code == 0 and b"--adapt auto at -b 2: adaptive (basis pays" in out


def test_eval_adapt_says_where_auto_declines(tq, tmp_path):
    import json

    np.save(tmp_path / "f.npy", flat(300, 256))
    code, out, err = tq("eval", "--adapt", "-b", "3", "--json", "f.npy")
    assert code == 0, err
    (adp,) = [r for r in json.loads(out)["results"] if r["coding"] == "adaptive"]
    assert adp["adapt_auto"]["takes"] is False
    assert "does not pay" in adp["adapt_auto"]["reason"]


def test_eval_adapt_refusals(tq, tmp_path):
    x = structured(200, 16)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.tqz").write_bytes(tqcli.compress(x))
    code, _, err = tq("eval", "--adapt", "x.npy", "x.tqz")
    assert code == 2 and "--adapt" in err[-1]
    code, _, err = tq("eval", "--adapt", "--mode", "prod", "x.npy")
    assert code == 2 and "prod" in err[-1]
    code, _, err = tq("eval", "--adapt", "-", input=(tmp_path / "x.npy").read_bytes())
    assert code == 1 and len(err) == 1 and err[0].startswith("tq: ") and "pipe" in err[0]


# ---------------------------------------------------------------------- collections


def test_collections_adapt_per_member(tq, tmp_path):
    import json

    good, poor = structured(3000, 48), flat(300, 256)
    np.savez(tmp_path / "m.npz", good=good, poor=poor)
    codings = {}
    for flag in ("on", "auto", "off"):
        code, _, err = tq("compress", "--adapt", flag, "-b", "3", "m.npz", "-o", f"{flag}.tqz")
        assert code == 0, err
        code, out, _ = tq("inspect", "--json", f"{flag}.tqz")
        members = json.loads(out)["members"]
        codings[flag] = {m["name"]: m.get("coding", {}).get("name", "fixed") for m in members}
    assert codings["on"] == {"good": "adaptive", "poor": "adaptive"}
    assert codings["auto"] == {"good": "adaptive", "poor": "fixed"}
    assert codings["off"] == {"good": "fixed", "poor": "fixed"}
    code, _, _ = tq("decompress", "auto.tqz", "-o", "back.npz")
    back = np.load(tmp_path / "back.npz")
    assert nmse(good, back["good"]) < 0.5 * nmse(good, tqcli.decompress(
        tqcli.compress(good, bits=3)))
    # a declined member is the member without --adapt, to the byte
    assert np.array_equal(back["poor"], tqcli.decompress(tqcli.compress(poor, bits=3)))


# ---------------------------------------------------------------------- large d, memory


def test_wide_vectors_fit_a_block_basis_within_the_budget(tmp_path):
    d = 1600  # above fitting.MAX_BLOCK_DIM: two coordinate blocks of 800
    x = structured(300, d, rank_decay=0.99)
    np.save(tmp_path / "w.npy", x)
    r = run(["compress", "--adapt", "--memory", "60M", "w.npy"], tmp_path)
    assert_error(r, "w.npy", "fitting a basis needs", "--memory")
    assert not (tmp_path / "w.npy.tqz").exists()
    ok(run(["compress", "--adapt", "-b", "3", "w.npy"], tmp_path))
    blob = (tmp_path / "w.npy.tqz").read_bytes()
    assert _coding(blob) == "adaptive"
    basis = adaptive_model.fit_basis(x)
    assert blob == tqcli.compress(x, bits=3, adapt=basis)
    # block-diagonal: no component mixes the two halves
    c = basis.components
    assert not (np.abs(c[:, :800]).sum(axis=1) * np.abs(c[:, 800:]).sum(axis=1)).any()
    # d large relative to n: the basis costs more than it saves, and auto says so
    forced = nmse(x, tqcli.decompress(blob))
    assert forced > nmse(x, tqcli.decompress(tqcli.compress(x, bits=3)))
    assert tqcli.compress(x, bits=3, adapt="auto") == tqcli.compress(x, bits=3)
    need = adapt_fit.fit_need(type("S", (), {"dim": 4096, "rereadable": True})(),
                              EncodeOptions())
    assert need < 256 << 20  # d = 4096 fits the default budget
