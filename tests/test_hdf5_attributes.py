"""HDF5 attributes survive a collection round trip (README: "attributes of datasets and
groups are kept"): on the root, on groups below it (nested, and one holding no dataset),
and on datasets, compressed or stored raw, of every attribute kind HDF5 files commonly
hold.  Checked attribute by attribute, on every group and dataset, after `tq compress` and
`tq decompress` (the command line) and after the library's compress_collection_file and
decompress_collection_file.
"""

from __future__ import annotations

import numpy as np
import pytest

import tqcli

h5py = pytest.importorskip("h5py")

ATTRS = {
    "": {"title": "kv dump", "version": np.int64(3), "created_by": np.bytes_(b"tq-test")},
    "model": {"name": "minilm", "scale": np.float32(0.125), "dims": np.array([6, 12, 32], np.int32),
              "flags": np.array([True, False, True])},
    "model/layers": {"count": np.uint16(2), "eps": np.float64(1e-12),
                     "labels": np.array(["key", "value"], dtype=object)},
    "model/layers/0": {"index": np.int8(-1), "grid": np.arange(6, dtype=np.float64).reshape(2, 3),
                       "note": "first layer \u00e9"},
    "model/layers/1": {"index": np.int8(1), "temperature": np.float16(0.5)},
    "meta": {"empty_group_attr": np.int32(7), "values": np.array([1.5, -2.25], np.float32)},
    "plain": {},
}
DATASETS = {
    "model/layers/0/key": ({"units": "logits", "head_dim": np.int64(32)},
                           np.random.default_rng(1).standard_normal((2, 40, 32)).astype(np.float32)),
    "model/layers/0/value": ({"scale": np.float64(0.5)},
                             np.random.default_rng(2).standard_normal((2, 40, 32)).astype(np.float32)),
    "model/layers/1/key": ({}, np.random.default_rng(3).standard_normal((2, 40, 32)).astype(np.float32)),
    "plain/ids": ({"kind": np.bytes_(b"ids"), "offsets": np.array([0, 10, 20], np.uint64)},
                  np.arange(50, dtype=np.int64)),
}


def make_h5(path) -> None:
    with h5py.File(path, "w") as f:
        for g, attrs in ATTRS.items():
            obj = f if g == "" else f.require_group(g)
            for k, v in attrs.items():
                obj.attrs[k] = v
        for name, (attrs, data) in DATASETS.items():
            ds = f.create_dataset(name, data=data)
            for k, v in attrs.items():
                ds.attrs[k] = v


def _norm(v):
    """An attribute value as read back, in a comparable form: strings as str, numbers as
    (dtype, shape, values)."""
    if isinstance(v, (str, bytes, np.bytes_)):
        return ("str", v.decode() if isinstance(v, (bytes, np.bytes_)) else v)
    a = np.asarray(v)
    if a.dtype.kind in "OSU":
        return ("strs", a.shape, [x.decode() if isinstance(x, bytes) else str(x)
                                  for x in a.reshape(-1).tolist()])
    return (a.dtype.newbyteorder("<").str, a.shape, a.tobytes())


def all_attrs(path) -> dict:
    """{object path: {attribute: normalised value}} for the root, every group and dataset."""
    out = {}
    with h5py.File(path, "r") as f:
        out["/"] = {k: _norm(f.attrs[k]) for k in f.attrs}

        def visit(name, obj):
            out[("dataset:" if isinstance(obj, h5py.Dataset) else "group:") + name] = \
                {k: _norm(obj.attrs[k]) for k in obj.attrs}
        f.visititems(visit)
    return out


def check_same(src, back) -> None:
    a, b = all_attrs(src), all_attrs(back)
    assert sorted(a) == sorted(b)        # every group (the empty one too) and dataset
    for obj in a:
        assert a[obj] == b[obj], obj
    # the crafted attributes are really there (not vacuously equal)
    assert a["group:model/layers"]["count"][0] == "<u2"
    assert len(a["group:meta"]) == 2 and len(a["dataset:plain/ids"]) == 2


def test_cli_round_trip_keeps_every_group_and_dataset_attribute(tmp_path, tq):
    make_h5(tmp_path / "src.h5")
    code, _, err = tq("compress", "src.h5", "-o", "src.tqz", "-b", "4")
    assert code == 0, err
    code, _, err = tq("decompress", "src.tqz", "-o", "back.h5")
    assert code == 0, err
    check_same(tmp_path / "src.h5", tmp_path / "back.h5")
    with h5py.File(tmp_path / "back.h5") as f:   # the raw member is exact
        assert np.array_equal(f["plain/ids"][...], DATASETS["plain/ids"][1])


def test_library_round_trip_keeps_every_group_and_dataset_attribute(tmp_path):
    make_h5(tmp_path / "src.h5")
    tqcli.compress_collection_file(tmp_path / "src.h5", tmp_path / "lib.tqz", bits=3,
                                   coding="entropy")
    tqcli.decompress_collection_file(tmp_path / "lib.tqz", tmp_path / "lib.h5")
    check_same(tmp_path / "src.h5", tmp_path / "lib.h5")


def test_a_group_argument_keeps_the_attributes_below_it(tmp_path, tq):
    make_h5(tmp_path / "src.h5")
    tqcli.compress_collection_file(tmp_path / "src.h5", tmp_path / "g.tqz", group="model")
    tqcli.decompress_collection_file(tmp_path / "g.tqz", tmp_path / "g.h5")
    got = all_attrs(tmp_path / "g.h5")
    want = all_attrs(tmp_path / "src.h5")
    # the group given becomes the root; the groups and datasets below it keep theirs
    assert got["/"] == want["group:model"]
    for name in ("layers", "layers/0", "layers/1"):
        assert got["group:" + name] == want["group:model/" + name], name
    assert got["dataset:layers/0/key"] == want["dataset:model/layers/0/key"]
