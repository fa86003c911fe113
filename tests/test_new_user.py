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
    assert names[1] == "[]"  # and nothing heavy was imported to list them


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
