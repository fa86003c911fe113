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
