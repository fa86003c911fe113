"""Every encoder option given on the command line reaches the file, for one array and for
each member of a collection: the file `tq compress` writes with a flag is the one the
library writes with the same keyword (its header and its decoded values).

The single-array path is also covered by the spec vectors' command-line test; a collection's
members go another way (the options object handed on to compress_collection_file), which
nothing else checked: an option dropped there still wrote a valid file, with the default.
"""

from __future__ import annotations

import numpy as np
import pytest

import tqcli

# (flags, keywords): each far from the defaults in one option, so that dropping it shows
CASES = [
    (["--seed", "9"], dict(seed=9)),
    (["--scale-dtype", "float64"], dict(scale_dtype="float64")),
    (["--rounds", "5"], dict(rounds=5)),
    (["--rotation", "hadamard2"], dict(rotation="hadamard2")),
    (["--scale", "norm"], dict(scale_rule="norm")),
    (["--mode", "prod"], dict(mode="prod")),
    (["-b", "6"], dict(bits=6)),
    (["--chunk-rows", "16", "--center"], dict(chunk_rows=16, center=True)),
    (["--coding", "entropy", "-b", "2.5"], dict(coding="entropy", bits=2.5)),
    (["--coding", "entropy", "--nmse", "0.02"], dict(coding="entropy", nmse=0.02)),
]


def _arrays():
    rng = np.random.default_rng(3)
    return {"key": (rng.standard_normal((48, 32)) + 0.5).astype(np.float32),
            "value": rng.standard_normal((40, 32)).astype(np.float32)}


def _same_file(f, want, name):
    """f (an open TqFile) is the file tqcli.compress wrote as `want` (bytes)."""
    with tqcli.open(want) as w:
        assert f.header == w.header, name  # every option field of the header
        assert (f.header.center is None) == (w.header.center is None), name
        if w.header.center is not None:
            assert np.array_equal(f.header.center, w.header.center), name
        assert np.array_equal(f[...], w[...]), name


@pytest.mark.parametrize("flags, keywords", CASES, ids=[" ".join(f) for f, _ in CASES])
def test_each_flag_reaches_one_array_and_every_member(tq, tmp_path, flags, keywords):
    arrays = _arrays()
    np.savez(tmp_path / "kv.npz", **arrays)
    np.save(tmp_path / "x.npy", arrays["key"])

    code, _, err = tq("compress", "x.npy", "-o", "x.tqz", "-q", *flags)
    assert code == 0, err
    with tqcli.open(str(tmp_path / "x.tqz")) as f:
        _same_file(f, tqcli.compress(arrays["key"], **keywords), "x.npy")

    code, _, err = tq("compress", "kv.npz", "-o", "kv.tqz", "-q", *flags)
    assert code == 0, err
    with tqcli.open_collection(str(tmp_path / "kv.tqz")) as c:
        assert list(c) == list(arrays)
        for name, x in arrays.items():
            with c.open_member(name) as f:
                _same_file(f, tqcli.compress(x, **keywords), name)
