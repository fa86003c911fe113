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


# ---------------------------------------------------------------------------- every kind


def exact(v):
    """An attribute as h5py reads it: its type and its bytes (numbers in little-endian
    order: a big-endian attribute comes back with the same values, stored little-endian
    as spec 18.3 stores every number)."""
    if isinstance(v, str):
        return ("str", v)
    a = np.asarray(v)
    if a.dtype.kind == "O":
        return ("strs", a.shape, [x if isinstance(x, str) else x.decode() for x in a.flat])
    if a.dtype.kind in "biufc":
        a = a.astype(a.dtype.newbyteorder("<"))
    return (a.dtype.str, a.shape, a.tobytes())


EVERY_KIND = {
    "fixed_bytes": np.frombuffer(b"ab\x00c\xff\x00", dtype="|S2"),  # not UTF-8, NULs inside
    "bytes_nul_inside": np.bytes_(b"a\x00b"),
    "complex": np.array([1 + 2j, -0.5j], np.complex128),
    "complex64": np.complex64(3 - 1j),
    "zero_size": np.zeros((0, 3), np.float32),
    "empty_strs": np.array([], dtype=object),
    "bools": np.array([[True], [False]]),
    "big_endian": np.array([1, -2], ">i4"),
    "nan": np.float64("nan"),
    "unicode": "\u00e9t\u00e9 \u2603",
    "strs_2d": np.array([["a", "b\u00e9"], ["", "d"]], dtype=object),
}


def test_every_attribute_kind_round_trips_and_every_output_takes_it(tmp_path, tq):
    """Each kind of attribute h5py reads comes back as the same HDF5 type and bytes (tq
    1.3.0 turned fixed-length byte strings into text, replacing bytes that are not UTF-8);
    .npz and .safetensors, which have no attributes, are still written."""
    import h5py

    with h5py.File(tmp_path / "k.h5", "w") as f:
        ds = f.create_dataset("g/x", data=np.arange(6, dtype=np.int16))
        for k, v in EVERY_KIND.items():
            if k == "empty_strs":
                ds.attrs.create(k, v, dtype=h5py.string_dtype())
            else:
                ds.attrs[k] = v
            f["g"].attrs[k] = ds.attrs[k]
    code, _, err = tq("compress", "k.h5", "-o", "k.tqz")
    assert code == 0, err
    for out in ("back.h5", "back.npz", "back.safetensors"):
        code, _, err = tq("decompress", "k.tqz", "-o", out)
        assert code == 0, (out, err)
    with h5py.File(tmp_path / "k.h5") as a, h5py.File(tmp_path / "back.h5") as b:
        for obj in ("g", "g/x"):
            assert sorted(a[obj].attrs) == sorted(b[obj].attrs) == sorted(EVERY_KIND)
            for k in EVERY_KIND:
                assert exact(a[obj].attrs[k]) == exact(b[obj].attrs[k]), (obj, k)
        assert b["g/x"].attrs["fixed_bytes"].dtype == np.dtype("S2")


def test_attributes_tq_cannot_store_are_refused_at_compress(tmp_path, tq):
    """An attribute with no exact form -- an empty dataspace, an object reference, a long
    double, a compound -- is one line at compress time, nothing written (tq 1.3.0 stored
    the first two as the text of their Python repr)."""
    import h5py

    makers = {
        "empty": lambda f, ds: ds.attrs.__setitem__("a", h5py.Empty("f4")),
        "reference": lambda f, ds: ds.attrs.__setitem__("a", ds.ref),
        "long double": lambda f, ds: ds.attrs.__setitem__("a", np.longdouble(1) / 3),
        "compound": lambda f, ds: ds.attrs.__setitem__(
            "a", np.array([(1, 2.0)], dtype=[("i", "<i4"), ("f", "<f8")])),
    }
    for what, make in makers.items():
        with h5py.File(tmp_path / "bad.h5", "w") as f:
            make(f, f.create_dataset("x", data=np.arange(4)))
        code, _, err = tq("compress", "bad.h5", "-o", "bad.tqz")
        assert code == 1 and len(err) == 1, (what, err)
        assert err[0].startswith("tq: bad.h5: /x: attribute 'a' "), (what, err)
        assert "internal error" not in err[0]
        assert not (tmp_path / "bad.tqz").exists(), what


def _craft(info: dict, attrs: dict) -> bytes:
    from test_collections import craft, raw_member

    return craft(dict(info, members=1), [raw_member("x", np.arange(4, dtype=np.int32),
                                                    attrs=attrs)])


def _deep(n):
    v = 1
    for _ in range(n):
        v = [v]
    return v


# crafted attributes of an HDF5 collection: (what, attrs of member x, groups) -> rules
HDF5 = {"source": "hdf5"}
CRAFTED = [
    ("plain JSON", {"a": 1}, None, {"toc", "member-record"}),
    ("a list", {"a": [1, 2]}, None, {"toc", "member-record"}),
    ("deep nesting", {"a": _deep(28)}, None, {"toc", "member-record"}),
    ("unicode dtype", {"a": {"dtype": "<U2", "shape": [1], "hex": "61000000" * 2}}, None,
     {"toc", "member-record"}),
    ("object dtype", {"a": {"dtype": "|O", "shape": [1], "hex": "00" * 8}}, None,
     {"toc", "member-record"}),
    ("datetime dtype", {"a": {"dtype": "<M8[s]", "shape": [1], "hex": "00" * 8}}, None,
     {"toc", "member-record"}),
    ("struct dtype", {"a": {"dtype": [["a", "<i4"]], "shape": [1], "hex": "00" * 4}}, None,
     {"toc", "member-record"}),
    ("void dtype", {"a": {"dtype": "|V4", "shape": [1], "hex": "00" * 4}}, None,
     {"toc", "member-record"}),
    ("long double", {"a": {"dtype": "<f16", "shape": [], "hex": "00" * 16}}, None,
     {"toc", "member-record"}),
    ("bad hex", {"a": {"dtype": "<i4", "shape": [1], "hex": "zz000000"}}, None,
     {"toc", "member-record"}),
    ("odd hex", {"a": {"dtype": "<i4", "shape": [1], "hex": "0000000"}}, None,
     {"toc", "member-record"}),
    ("hex with spaces", {"a": {"dtype": "<i4", "shape": [1], "hex": "00 00 00 00"}}, None,
     {"toc", "member-record"}),
    ("wrong shape", {"a": {"dtype": "<i4", "shape": [3], "hex": "00" * 4}}, None,
     {"toc", "member-record"}),
    ("scalar without a value", {"a": {"dtype": "<i4", "shape": [], "hex": ""}}, None,
     {"toc", "member-record"}),
    ("negative extent", {"a": {"dtype": "<i4", "shape": [-1], "hex": ""}}, None,
     {"toc", "member-record"}),
    ("unknown kind", {"a": {"foo": 1}}, None, {"toc", "member-record"}),
    ("two kinds", {"a": {"str": "s", "bytes": "00"}}, None, {"toc", "member-record"}),
    ("NUL in a string", {"a": {"str": "a\u0000b"}}, None, {"toc", "member-record"}),
    ("NUL in strings", {"a": {"strs": ["a\u0000"], "shape": [1]}}, None,
     {"toc", "member-record"}),
    ("strings of the wrong shape", {"a": {"strs": ["a", "b"], "shape": [3]}}, None,
     {"toc", "member-record"}),
    ("strings that are not", {"a": {"strs": [1], "shape": [1]}}, None,
     {"toc", "member-record"}),
    ("bytes not hex", {"a": {"bytes": "xyz"}}, None, {"toc", "member-record"}),
    ("str not a string", {"a": {"str": 5}}, None, {"toc", "member-record"}),
    ("empty attribute name", {"": {"str": "x"}}, None, {"toc", "member-record"}),
    ("NUL in a name", {"a\u0000": {"str": "x"}}, None, {"toc", "member-record"}),
    ("group attribute plain JSON", {}, {"": {"a": 3}}, {"collection-header"}),
    ("group attribute bad hex", {}, {"g": {"a": {"bytes": "0"}}}, {"collection-header"}),
    ("a group that is also a member", {}, {"x": {}}, {"member-name"}),
    ("a member that is a group's folder", {}, {"x/y": {}}, {"member-name"}),
]


@pytest.mark.parametrize("what, attrs, groups, rules", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_attributes_are_refused_by_the_reader_with_a_rule(tmp_path, tq, what, attrs,
                                                                   groups, rules):
    """Each is refused, as a file and as a pipe, with a rule of spec 18.6 -- by inspect
    (with and without --verify) and by decompress to every kind, as one line and before
    any output (tq 1.3.0: inspect and -o x.npz accepted them, -o x.h5 was `internal
    error`)."""
    from test_collections import refused

    info = dict(HDF5, groups=groups) if groups is not None else HDF5
    data = _craft(info, attrs)
    assert refused(data) <= rules and refused(data), refused(data)
    (tmp_path / "c.tqz").write_bytes(data)
    for args in (["inspect", "c.tqz"], ["inspect", "--verify", "c.tqz"],
                 ["decompress", "c.tqz", "-o", "o.h5"], ["decompress", "c.tqz", "-o", "o.npz"],
                 ["decompress", "c.tqz", "-o", "o.safetensors"]):
        code, _, err = tq(*args)
        assert code == 1 and len(err) == 1 and err[0].startswith("tq: c.tqz: "), (args, err)
        assert "internal error" not in err[0], (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tqz"]


def test_the_same_attributes_are_refused_when_a_collection_is_written():
    """The library refuses what its reader would (nothing written), and writes what the
    reader accepts: JSON of any kind for a source other than HDF5."""
    import io

    from tqcli.library.collections import MemberInput

    for what, attrs, groups, _ in CRAFTED:
        info = dict(HDF5, groups=groups) if groups is not None else HDF5
        out = io.BytesIO()
        with pytest.raises(tqcli.InputError):
            tqcli.compress_collection([MemberInput("x", (4,), np.dtype(np.int32), attrs,
                                                         array=np.arange(4, dtype=np.int32))],
                                      out, info=info)
        assert out.getvalue() == b"", what
    out = io.BytesIO()
    tqcli.compress_collection([MemberInput("x", (4,), np.dtype(np.int32),
                                                 {"a": [1, {"b": "c\u0000"}], "n": 2},
                                                 array=np.arange(4, dtype=np.int32))],
                              out, info={"source": "npz"})
    with tqcli.open_collection(out.getvalue()) as c:
        assert c["x"].attrs == {"a": [1, {"b": "c\u0000"}], "n": 2}
