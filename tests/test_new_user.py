"""What a new user meets (issue 26, items 9-15): each test is one thing a user working from
README and --help only ran into -- a message without the next step, a width that is not
the file's, a silent no-op -- run in-process through the `tq` fixture (conftest.py) on a
scratch folder.  Small arrays: the whole file runs in a few seconds once the kernels are
compiled."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from conftest import gaussian


def _one_error(err: list[str], name: str, *words: str) -> str:
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith(f"tq: {name}: "), line
    for w in words:
        assert w.lower() in line.lower(), (w, line)
    return line


def _kv_h5(path, seed: int = 0) -> dict:
    """A small KV-cache-like HDF5 file: two layers of keys and values and an int member."""
    rng = np.random.default_rng(seed)
    arrays = {f"layers/{i}/{kind}": rng.standard_normal((2, 64, 32)).astype(np.float32)
              for i in range(2) for kind in ("key", "value")}
    arrays["ids"] = np.arange(10)
    with h5py.File(path, "w") as f:
        for name, a in arrays.items():
            f[name] = a
    return arrays


# ---------------------------------------------------------------- 9: the input exists?


def test_decompress_missing_file_with_member_says_no_such_file(tq):
    code, _, err = tq("decompress", "nosuchfile.tqz", "--member", "X")
    assert code == 1
    _one_error(err, "nosuchfile.tqz", "no such file")


# ---------------------------------------------------------------- 12: the next step


def test_a_tqz_piped_to_compress_says_what_it_is_and_what_to_do(tq, tmp_path):
    np.save(tmp_path / "x.npy", gaussian(300, 32))
    _kv_h5(tmp_path / "kv.h5")
    assert tq("compress", "x.npy", "-o", "x.tqz")[0] == 0
    assert tq("compress", "kv.h5", "-o", "kv.tqz")[0] == 0
    code, _, err = tq("compress", "-", input=(tmp_path / "kv.tqz").read_bytes())
    assert code == 1
    _one_error(err, "-", "collection", "tq decompress", "--member", "tq inspect")
    code, _, err = tq("eval", "-", input=(tmp_path / "x.tqz").read_bytes())
    assert code == 1
    _one_error(err, "-", ".tqz file", "tq decompress", "tq eval INPUT FILE.tqz")


def test_an_unknown_input_lists_every_kind_tq_reads(tq, tmp_path):
    (tmp_path / "data.csv").write_text("1,2\n3,4\n")
    code, _, err = tq("compress", "data.csv")
    assert code == 1
    _one_error(err, "data.csv", ".npy", "HDF5", ".safetensors", ".npz", "zarr")
    assert not (tmp_path / "data.csv.tqz").exists()


def test_eval_of_a_tqz_alone_says_the_source_array_comes_first(tq, tmp_path):
    np.save(tmp_path / "x.npy", gaussian(300, 32))
    assert tq("compress", "x.npy")[0] == 0
    for args in (["x.npy.tqz"], ["x.npy.tqz", "x.npy"], ["missing.tqz"]):
        code, _, err = tq("eval", *args)
        assert code == 1, args
        _one_error(err, args[0], "INPUT [FILE.tqz]", "source array first")


def test_eval_of_a_collection_against_a_container_on_stdin(tq, tmp_path):
    _kv_h5(tmp_path / "kv.h5")
    assert tq("compress", "kv.h5", "-o", "kv.tqz")[0] == 0
    code, out, err = tq("eval", "kv.h5", "-", "--json",
                        input=(tmp_path / "kv.tqz").read_bytes())
    assert code == 0, err
    assert len(json.loads(out)["members"]) == 5


# ---------------------------------------------------------------- 11: patterns that miss


def test_a_pattern_that_matches_no_member_warns_or_is_refused_with_strict(tq, tmp_path):
    _kv_h5(tmp_path / "kv.h5")
    code, _, err = tq("compress", "kv.h5", "--bits-for", "*kye*=8", "--lossless", "*scale*")
    assert code == 0
    assert err == ["tq: kv.h5: warning: --bits-for '*kye*=8', --lossless '*scale*' match no "
                   "member (members: ids, layers/0/key, layers/0/value, layers/1/key ...)"]
    assert (tmp_path / "kv.h5.tqz").exists()
    # a pattern that matches is no warning; one that misses with --strict writes nothing
    code, _, err = tq("compress", "kv.h5", "-o", "ok.tqz", "--bits-for", "*key*=8",
                      "--strict")
    assert code == 0 and err == []
    code, _, err = tq("compress", "kv.h5", "-o", "k8.tqz", "--bits-for", "*key*=8",
                      "--bits-for", "*kye*=8", "--strict")
    assert code == 1
    _one_error(err, "kv.h5", "--bits-for '*kye*=8' matches no member", "--strict")
    assert not (tmp_path / "k8.tqz").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_the_library_warns_or_refuses_an_unmatched_pattern():
    import io

    import tqcli
    from tqcli.errors import InputError

    arrays = {"k": gaussian(16, 32), "v": gaussian(16, 32, seed=1)}
    with pytest.warns(UserWarning, match=r"--bits-for '\*kye\*=8' matches no member"):
        tqcli.compress_collection(arrays, io.BytesIO(), bits_for=["*kye*=8"])
    out = io.BytesIO()
    with pytest.raises(InputError) as e:
        tqcli.compress_collection(arrays, out, lossless=["x*"], strict=True)
    assert e.value.kind == "unmatched-pattern" and out.getvalue() == b""


# ---------------------------------------------------------------- 15: small things


def test_collection_compress_verbose_prints_sizes_and_ratio_and_counts_in_english(tq,
                                                                                   tmp_path):
    import re

    with h5py.File(tmp_path / "one.h5", "w") as f:
        f["emb"] = gaussian(64, 32)
    code, _, err = tq("compress", "one.h5", "-v")
    assert code == 0
    size = (tmp_path / "one.h5.tqz").stat().st_size
    m = re.fullmatch(r"one\.h5: 1 member \(1 compressed, 0 lossless\), 8\.0 KiB -> "
                     r"([0-9.]+) KiB \(([0-9.]+)x\) -> one\.h5\.tqz", err[0])
    assert m and len(err) == 1, err
    assert abs(float(m[1]) - size / 1024) < 0.06 and abs(float(m[2]) - 8192 / size) < 0.006
    code, out, _ = tq("inspect", "one.h5.tqz")
    text = out.decode()
    assert "collection of 1 member from" in text and "1 members" not in text
    assert " 1 member " in text.splitlines()[-1] + " "
    code, _, err = tq("decompress", "one.h5.tqz", "-o", "back.h5", "-v")
    assert code == 0 and err == ["one.h5.tqz: 1 member -> back.h5"]


def test_dir_of_the_package_lists_its_lazy_names():
    import subprocess
    import sys

    names = subprocess.run([sys.executable, "-c", "import tqcli, sys; print(dir(tqcli)); "
                            "print(sorted(m for m in sys.modules if m.startswith('tqcli.')))"],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    listed = eval(names[0])  # noqa: S307 - our own subprocess's repr of a list of str
    for n in ("compress", "decompress", "open", "compress_collection", "TqError",
              "Header", "__version__"):
        assert n in listed, n
    # and nothing was imported to list them but the version string (tqcli/version.py)
    assert names[1] == "['tqcli.version']"


def test_gitignore_covers_a_venv_and_what_the_readme_commands_write():
    import subprocess
    from pathlib import Path

    root = Path(__file__).parents[1]
    paths = [".venv/", "embeddings.npy.tqz", "back.npy", "back.h5", "kv_small.h5.tqz",
             "v1.npy", "eval.png", "x.safetensors", "x.npz", "back/"]
    r = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=root,
                       capture_output=True, text=True)
    assert sorted(r.stdout.split()) == sorted(paths), r.stdout
    # and nothing under samples/ (the README's inputs are tracked there)
    r = subprocess.run(["git", "check-ignore", "--no-index", "samples/kv_small.h5"],
                       cwd=root, capture_output=True, text=True)
    assert r.stdout == ""


def test_inspect_of_several_files_keeps_the_order_of_the_arguments(tq, tmp_path):
    np.save(tmp_path / "a.npy", gaussian(300, 32))
    np.save(tmp_path / "b.npy", gaussian(300, 32, seed=1))
    _kv_h5(tmp_path / "kv.h5")
    for src in ("a.npy", "b.npy", "kv.h5"):
        assert tq("compress", src)[0] == 0
    code, out, _ = tq("inspect", "a.npy.tqz", "kv.h5.tqz", "b.npy.tqz")
    assert code == 0
    text = out.decode()
    at = [text.index(n) for n in ("a.npy.tqz", "kv.h5.tqz:", "b.npy.tqz")]
    assert at == sorted(at), text
    code, out, _ = tq("inspect", "a.npy.tqz", "kv.h5.tqz", "b.npy.tqz", "--json")
    assert [r["file"] for r in json.loads(out)] == ["a.npy.tqz", "kv.h5.tqz", "b.npy.tqz"]


@pytest.mark.parametrize("args, words", [
    (["compress", "x.npy", "-b", "99"], ["'-b' / '--bits'", "99", "'tq compress --help'"]),
    (["frobnicate"], ["No such command 'frobnicate'", "'tq --help'"]),
    (["decompress", "--bogus"], ["No such option '--bogus'", "'tq decompress --help'"]),
    (["compress", "x.npy", "-c", "--rm"], ["--rm needs an output file"]),
    (["eval"], ["Missing argument 'INPUT'", "'tq eval --help'"]),
])
def test_usage_errors_are_one_line(tq, tmp_path, args, words):
    np.save(tmp_path / "x.npy", gaussian(20, 8))
    code, out, err = tq(*args)
    assert code == 2 and out == b""
    _one_error(err, "usage", *words)


# ---------------------------------------------------------------- 10: the width shown


def test_entropy_coded_files_show_the_rate_they_achieve(tq, tmp_path):
    np.save(tmp_path / "x.npy", gaussian(2000, 64))
    _kv_h5(tmp_path / "kv.h5")
    assert tq("compress", "x.npy", "-b", "2.5", "--coding", "entropy", "-o", "e25.tqz")[0] == 0
    assert tq("compress", "x.npy", "--coding", "entropy", "--nmse", "0.01", "-o",
              "n01.tqz")[0] == 0
    assert tq("compress", "x.npy", "-b", "4", "-o", "f4.tqz")[0] == 0
    assert tq("compress", "kv.h5", "-b", "3.5", "--coding", "entropy", "-o", "kv.tqz")[0] == 0

    # the single file's --json: "bits" stays the header field (spec/vectors pin the schema),
    # "coding" says the coding and the bits per coordinate achieved
    one = json.loads(tq("inspect", "n01.tqz", "--json")[1])
    achieved = one["coding"]["achieved_bits"]
    n, d = one["vectors"], one["dim"]
    assert one["coding"]["name"] == "entropy" and one["bits"] == 4
    assert achieved == pytest.approx((one["payload_bytes"] - 4 * n) * 8 / (n * d))
    assert 3.3 < achieved < 3.8

    # the table of several files: the achieved rate, marked, and the fixed width as before
    code, out, _ = tq("inspect", "e25.tqz", "n01.tqz", "f4.tqz")
    lines = out.decode().splitlines()
    rows = {ln.split()[-1]: ln.split() for ln in lines[1:4]}
    assert abs(float(rows["e25.tqz"][3]) - 2.5) < 0.05 and rows["e25.tqz"][4] == "ent"
    assert rows["n01.tqz"][3:5] == [f"{achieved:.2f}", "ent"]
    assert rows["f4.tqz"][3] == "4"
    assert "ent = the entropy coding" in lines[-1]

    # a collection made at 3.5 bits: every compressed member shows ~3.5 ent, and its JSON
    # record carries the coding (a fixed member's record is unchanged)
    code, out, _ = tq("inspect", "kv.tqz")
    text = out.decode()
    member_lines = [ln for ln in text.splitlines() if ln.startswith("layers/")]
    assert len(member_lines) == 4
    for ln in member_lines:
        bits = ln.split()[ln.split().index("float32") + 1]
        assert abs(float(bits) - 3.5) < 0.15 and ln.split()[ln.split().index(bits) + 1] == \
            "ent", ln
    report = json.loads(tq("inspect", "kv.tqz", "--json")[1])
    for m in report["members"]:
        if m["kind"] == "tqz":
            assert m["coding"]["name"] == "entropy"
            assert abs(m["coding"]["achieved_bits"] - 3.5) < 0.15
            # at most the member's bytes: the payload without the scales
            assert m["coding"]["achieved_bits"] * 128 * 32 / 8 < m["bytes"]
        else:
            assert "coding" not in m
    fixed = json.loads(tq("inspect", "f4.tqz", "--json")[1])
    assert "coding" not in fixed and fixed["bits"] == 4

    # eval of that collection: the member's achieved rate and the entropy law's optimum
    ev = json.loads(tq("eval", "kv.h5", "kv.tqz", "--json")[1])
    for m in ev["members"]:
        if not m["lossless"]:
            assert m["coding"] == "entropy" and abs(m["bits"] - 3.5) < 0.15
            assert 0.85 < m["nmse_over_optimum"] < 1.05, m


# ---------------------------------------------------------------- 13: one nmse


def test_collection_eval_nmse_is_the_mean_of_per_vector_ratios(tq, tmp_path):
    """README: nmse = mean ||x - x^||^2 / ||x||^2.  Vectors of very different norms make
    the energy-weighted ratio of sums differ from it (it was what eval reported)."""
    rng = np.random.default_rng(7)
    arrays = {}
    for name in ("layers/0/key", "layers/0/value", "emb"):
        x = rng.standard_normal((3, 40, 32)) * rng.lognormal(0, 1.5, (3, 40, 1))
        arrays[name] = x.astype(np.float32)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        for name, a in arrays.items():
            f[name] = a
    assert tq("compress", "m.h5", "-b", "2", "-o", "m.tqz")[0] == 0
    assert tq("decompress", "m.tqz", "-o", "back.h5")[0] == 0
    ratios, per_member, err, norm = [], {}, 0.0, 0.0
    with h5py.File(tmp_path / "back.h5", "r") as f:
        for name, x in arrays.items():
            a = x.reshape(-1, 32).astype(np.float64)
            b = f[name][()].reshape(-1, 32).astype(np.float64)
            r = ((a - b) ** 2).sum(axis=1) / (a ** 2).sum(axis=1)
            per_member[name] = r.mean()
            ratios.append(r)
            err, norm = err + ((a - b) ** 2).sum(), norm + (a ** 2).sum()
    want, energy = np.concatenate(ratios).mean(), err / norm
    assert abs(energy - want) > 1e-4 * want  # the two definitions do differ here
    for args in (["eval", "m.h5", "m.tqz", "--json"], ["eval", "m.h5", "-b", "2", "--json"]):
        r = json.loads(tq(*args)[1])
        assert r["total"]["nmse"] == pytest.approx(want, rel=1e-9), args
        assert r["total"]["vectors"] == 3 * 3 * 40
        for m in r["members"]:
            assert m["nmse"] == pytest.approx(per_member[m["name"]], rel=1e-9)
    text = tq("eval", "m.h5", "m.tqz")[1].decode().splitlines()[0]
    assert f"total nmse {want:.4g} (mean over 360 vectors" in text


# ---------------------------------------------------------------- 14: the smallest file


def test_eval_suggests_the_smallest_file_of_either_coding_with_its_command(tq, tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1500, 96)).astype(np.float32)
    np.save(tmp_path / "u.npy", x)
    code, out, err = tq("eval", "u.npy", "--queries", "50", "--json")
    assert code == 0, err
    res = json.loads(out)
    rows, rec = res["results"], res["recommendation"]
    meets = [r for r in rows if r["nmse"] <= 0.01]
    smallest = min(meets, key=lambda r: r["bytes_per_vector"])
    fixed = min((r for r in meets if r["coding"] == "fixed"),
                key=lambda r: r["bytes_per_vector"])
    # the entropy coding at the goal's rate was measured, and it is smaller than -b 4
    assert smallest["coding"] == "entropy" and not float(smallest["bits"]).is_integer()
    assert smallest["bytes_per_vector"] < 0.95 * fixed["bytes_per_vector"]
    assert (rec["bits"], rec["coding"]) == (smallest["bits"], "entropy")
    assert rec["bytes_per_vector"] == smallest["bytes_per_vector"]
    out = tq("eval", "u.npy", "--queries", "50")[1].decode()
    assert max(map(len, out.splitlines())) <= 100
    text = " ".join(out[out.rindex("suggested: "):].split())  # wrapped at 100 columns
    flags = f"-b {smallest['bits']:g} --coding entropy"
    assert text.startswith(f"suggested: {flags}, the smallest file here"), text
    assert text.endswith(f"; to write it: tq compress u.npy {flags}"), text
    # and that command writes a file of the measured size and error
    assert tq("compress", "u.npy", *flags.split(), "-o", "s.tqz")[0] == 0
    assert (tmp_path / "s.tqz").stat().st_size == pytest.approx(
        smallest["bytes_per_vector"] * 1500, abs=1)
    assert tq("decompress", "s.tqz", "-o", "s.npy")[0] == 0
    y = np.load(tmp_path / "s.npy").astype(np.float64)
    a = x.astype(np.float64)
    measured = (((a - y) ** 2).sum(axis=1) / (a ** 2).sum(axis=1)).mean()
    assert measured == pytest.approx(smallest["nmse"], rel=1e-6) and measured <= 0.01
