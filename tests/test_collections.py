"""Collections (issue 12): many named arrays in one .tqz (spec/tqz-v1.md section 18).

Round trips through the library and the command line (HDF5 tree with attributes,
safetensors with bfloat16 and metadata, .npz), bits per member, bfloat16, reading one member
without the others, and hostile collections: every bit flip, every truncation and crafted
tables of contents (overlaps, huge counts, names with '..', '/', NUL, deep nesting,
duplicates), each refused with a rule of spec 18.6 -- as bytes and as a stream.
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest

import tqcli
from tqcli.codec import codebook
from tqcli.format import collection
from tqcli.library.collections import compress_collection
from tqcli.library.collection_file import open_collection

from conftest import data_file, nmse

ml_dtypes = pytest.importorskip("ml_dtypes", reason="bfloat16 needs the kv extra "
                                "(pip install '.[kv]')")


def small_arrays():
    rng = np.random.default_rng(12)
    return {
        "layers/0/key": rng.standard_normal((2, 40, 16)).astype(np.float32),
        "layers/0/value": rng.standard_normal((2, 40, 16)).astype(ml_dtypes.bfloat16),
        "emb": rng.standard_normal((24, 32)).astype(np.float16),
        "ids": np.arange(40, dtype=np.int64) * 7,
        "mask": np.arange(10) % 3 == 0,
        "tiny": np.float64([1.5, -2.0, 3.25]),
    }


def build(arrays=None, **kw) -> bytes:
    buf = io.BytesIO()
    compress_collection(small_arrays() if arrays is None else arrays, buf, **kw)
    return buf.getvalue()


class Pipe(io.RawIOBase):
    """A non-seekable stream over bytes, as a pipe is."""

    def __init__(self, data: bytes):
        self.data = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buf):
        return self.data.readinto(buf)


def read_all(src) -> dict:
    with open_collection(src) as c:
        return {rec["name"]: a for rec, a in c.items()}


def test_library_round_trip_names_dtypes_bits_and_streams():
    arrays = small_arrays()
    blob = build(arrays, bits=3, bits_for=["*key*=8", "layers/*=5", "*/0/key=6"],
                 lossless=["emb"], vector_size=None)
    with open_collection(blob) as c:
        assert c.names == list(arrays)
        kinds = {e["name"]: (e["kind"], e.get("bits")) for e in c.members}
        # the last matching pattern wins; ints, bools, the lossless pattern and a 3-value
        # float array are stored raw
        assert kinds == {"layers/0/key": ("tqz", 6), "layers/0/value": ("tqz", 5),
                         "emb": ("raw", None), "ids": ("raw", None),
                         "mask": ("raw", None), "tiny": ("raw", None)}
        got = {n: c.read(n) for n in c.names}
    streamed = read_all(io.BufferedReader(Pipe(blob)))
    for name, x in arrays.items():
        assert got[name].dtype == x.dtype and got[name].shape == x.shape, name
        assert np.array_equal(streamed[name].view(np.uint8), got[name].view(np.uint8))
        if kinds[name][0] == "raw":
            assert np.array_equal(got[name].view(np.uint8), x.view(np.uint8)), name
    # Error bounds: README has no figure for d = 16, so each is pinned to what tq gives
    # now (the data are seeded and the encoding is bit-exact by spec, so the value can only
    # move with the code) plus a 1% margin for the summation order of the error itself.
    # 80 vectors at 6 bits: measured 0.852 x the optimum (the ls scale's gain at d = 16).
    xf = arrays["layers/0/key"]
    err = nmse(xf.reshape(-1, 16), got["layers/0/key"].reshape(-1, 16))
    assert err <= 0.861 * codebook.expected_distortion(16, 6), err
    # bfloat16 comes back bfloat16, its error that of 5 bits with bfloat16's own rounding
    # included: measured 0.785 x the 5-bit optimum
    v = arrays["layers/0/value"].astype(np.float32).reshape(-1, 16)
    err = nmse(v, got["layers/0/value"].astype(np.float32).reshape(-1, 16))
    assert err <= 0.793 * codebook.expected_distortion(16, 5), err


def test_vector_size_splits_the_last_axis_and_keeps_the_shape():
    x = np.random.default_rng(3).standard_normal((2, 64, 4 * 16)).astype(np.float32)
    blob = build({"kv_cache": x}, bits=4, vector_size=16)
    with open_collection(blob) as c:
        (e,) = c.members
        assert e["vector"] == 16 and e["shape"] == [2, 64, 64]
        with c.open_member("kv_cache") as f:
            assert f.header.shape == (2, 64, 4, 16) and f.header.dim == 16
        y = c.read("kv_cache")
    assert y.shape == x.shape
    whole = tqcli.decompress(tqcli.compress(x.reshape(2, 64, 4, 16), bits=4))
    assert np.array_equal(y, whole.reshape(x.shape))  # the same as compressing per head
    with pytest.raises(tqcli.InputError, match="vector-size"):
        build({"kv_cache": x}, vector_size=24)


def test_one_member_is_read_without_touching_the_others():
    rng = np.random.default_rng(5)
    arrays = {f"m{i}": rng.standard_normal((512, 64)).astype(np.float32) for i in range(8)}
    blob = build(arrays, bits=4)

    class Counting(io.BytesIO):
        touched = []

        def read(self, n=-1):
            start = self.tell()
            data = super().read(n)
            self.touched.append((start, start + len(data)))
            return data

        def readinto(self, b):
            start = self.tell()
            k = super().readinto(b)
            self.touched.append((start, start + k))
            return k

    src = Counting(blob)
    with open_collection(src) as c:
        Counting.touched.clear()
        y = c.read("m5")
        e = c._reader.entry("m5")
    assert np.array_equal(y, tqcli.decompress(tqcli.compress(arrays["m5"], bits=4)))
    lo, hi = e["offset"], e["offset"] + e["record"] + e["length"]
    assert all(lo <= a and b <= hi for a, b in Counting.touched), (lo, hi, Counting.touched)
    assert sum(b - a for a, b in Counting.touched) <= e["record"] + e["length"]


def test_single_array_files_and_api_are_unchanged():
    x = np.random.default_rng(1).standard_normal((40, 16)).astype(np.float32)
    blob = tqcli.compress(x, bits=3)
    assert blob[10:12] == b"\x00\x00"  # no collection bit: byte for byte the old layout
    with pytest.raises(tqcli.TqError, match="collection of 6 members"):
        tqcli.decompress(build())
    with pytest.raises(tqcli.TqError, match="single-array"):
        open_collection(blob)


def test_bfloat16_arrays_and_npy_input_dtype(tmp_path, tq):
    x = np.random.default_rng(2).standard_normal((64, 32)).astype(ml_dtypes.bfloat16)
    blob = tqcli.compress(x, bits=4)
    assert tqcli.read_header(blob).source_dtype == "bfloat16"
    assert blob[20] == 4  # source_dtype code 4 (spec 3.1)
    y = tqcli.decompress(blob)
    assert y.dtype == x.dtype
    # encoded from the exact float32 values: the same codes as the float32 array's
    same = tqcli.decompress(tqcli.compress(x.astype(np.float32), bits=4))
    assert np.array_equal(y.view(np.uint16), same.astype(ml_dtypes.bfloat16).view(np.uint16))
    np.save(tmp_path / "b.npy", x)  # descr '<V2'
    code, _, err = tq("compress", "b.npy")
    assert code == 1 and "--input-dtype bfloat16" in err[0]
    code, _, err = tq("compress", "b.npy", "--input-dtype", "bfloat16", "-b", "4")
    assert code == 0, err
    code, _, err = tq("decompress", "b.npy.tqz", "-o", "c.npy")
    assert code == 0, err
    back = np.load(tmp_path / "c.npy").view(ml_dtypes.bfloat16)
    assert np.array_equal(back.view(np.uint16), y.view(np.uint16))




# README's k8v4 row for ../shared/data/minilm_kv.h5 (section "Collections"): nmse over the
# optimum of keys (8 bits) and values (4 bits), attention weights' and output's relative
# error, each as the range over the 6 layers
K8V4_RATIO = {"key": (0.903, 0.934), "value": (0.925, 0.954)}
K8V4_WEIGHTS = (0.0036, 0.0056)
K8V4_OUTPUT = (0.048, 0.076)


def test_minilm_kv_h5_round_trip_k8v4(tmp_path, tq):
    import h5py

    src = data_file("minilm_kv.h5")
    code, _, err = tq("compress", src, "-o", "kv.h5.tqz", "--bits-for", "*key*=8",
                      "--bits-for", "*value*=4", "--lossless", "layers/0/*")
    assert code == 0, err
    code, out, err = tq("inspect", "kv.h5.tqz", "--json")
    assert code == 0, err
    r = json.loads(out)
    bits = {m["name"]: "lossless" if m["kind"] == "raw" else m["bits"] for m in r["members"]}
    assert bits["layers/0/key"] == bits["layers/0/value"] == "lossless"
    assert bits["layers/3/key"] == 8 and bits["layers/3/value"] == 4
    code, out, _ = tq("inspect", "kv.h5.tqz")
    text = out.decode()
    assert "lossless" in text and "total" in text and "layers/5/value" in text
    code, _, err = tq("decompress", "kv.h5.tqz")  # -> kv.h5, the same kind of file
    assert code == 0, err
    with h5py.File(src) as a, h5py.File(tmp_path / "kv.h5") as b:
        names = []
        a.visititems(lambda k, v: names.append(k))
        seen = []
        b.visititems(lambda k, v: seen.append(k))
        assert sorted(names) == sorted(seen)
        assert {k: a.attrs[k] for k in a.attrs} == {k: b.attrs[k] for k in b.attrs}
        for name in names:
            if not isinstance(a[name], h5py.Dataset):
                continue
            x, y = a[name][()], b[name][()]
            assert x.shape == y.shape and x.dtype == y.dtype
            assert dict(a[name].attrs) == dict(b[name].attrs)
            if bits[name] == "lossless":
                assert np.array_equal(x, y)
            else:
                # README's k8v4 row (nmse as README defines it: the mean over vectors of
                # ||x - x^||^2 / ||x||^2): keys 0.903-0.934, values 0.925-0.954 x the
                # optimum, over the 6 layers; layers 1-5 here (layer 0 is lossless).
                # Margin 0.002: README rounds to 3 digits and the data and encoding are
                # deterministic.
                opt = codebook.expected_distortion(x.shape[-1], bits[name])
                ratio = nmse(x.reshape(-1, x.shape[-1]), y.reshape(-1, x.shape[-1])) / opt
                lo, hi = K8V4_RATIO["key" if "key" in name else "value"]
                assert lo - 0.002 <= ratio <= hi + 0.002, (name, ratio)
    # one member to stdout as .npy
    code, out, err = tq("decompress", "kv.h5.tqz", "--member", "layers/2/value", "-c")
    assert code == 0, err
    one = np.load(io.BytesIO(out))
    with h5py.File(tmp_path / "kv.h5") as b:
        assert np.array_equal(one, b["layers/2/value"][()])
    code, _, err = tq("decompress", "kv.h5.tqz", "--member", "nope", "-o", "x.h5")
    assert code == 1 and "no member 'nope'" in err[0] and not (tmp_path / "x.h5").exists()


def test_safetensors_bf16_int64_metadata_round_trip(tmp_path, tq):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    rng = np.random.default_rng(4)
    tensors = {"layer.0.key": rng.standard_normal((64, 4 * 16)).astype(ml_dtypes.bfloat16),
               "layer.0.value": rng.standard_normal((64, 4 * 16)).astype(ml_dtypes.bfloat16),
               "positions": np.arange(64, dtype=np.int64)}
    meta = {"model": "test", "layout": "[tokens, heads * head_dim]"}
    save_file(tensors, str(tmp_path / "kv.safetensors"), metadata=meta)
    code, _, err = tq("compress", "kv.safetensors", "--vector-size", "16",
                      "--bits-for", "*key*=8")
    assert code == 0, err
    code, _, err = tq("decompress", "kv.safetensors.tqz", "-o", "back.safetensors")
    assert code == 0, err
    with safe_open(str(tmp_path / "back.safetensors"), "np") as f:
        assert f.metadata() == meta
        assert np.array_equal(f.get_tensor("positions"), tensors["positions"])
        for name, bits in (("layer.0.key", 8), ("layer.0.value", 4)):
            y = f.get_tensor(name)
            assert y.dtype == tensors[name].dtype and y.shape == (64, 64)
            x = tensors[name].astype(np.float32).reshape(-1, 16)
            err = nmse(x, y.astype(np.float32).reshape(-1, 16))
            # no README figure for d = 16: pinned to what tq gives now, bfloat16's own
            # rounding of the output included (key at 8 bits 0.974, value at 4 bits 0.872 x
            # the optimum), with a 1% margin (seeded data, bit-exact encoding)
            ceiling = {8: 0.984, 4: 0.881}[bits]
            assert err <= ceiling * codebook.expected_distortion(16, bits), (name, err)


def test_npz_round_trip_and_pickles_refused(tmp_path, tq):
    x = np.random.default_rng(6).standard_normal((100, 32)).astype(np.float32)
    ids = np.arange(100, dtype=np.int32)
    np.savez(tmp_path / "e.npz", emb=x, ids=ids)
    code, _, err = tq("compress", "e.npz", "-b", "4")
    assert code == 0, err
    code, _, err = tq("decompress", "e.npz.tqz")
    assert code == 1 and "already exists" in err[0]  # the source is never overwritten
    code, _, err = tq("decompress", "e.npz.tqz", "-o", "back.npz")
    assert code == 0, err
    with np.load(tmp_path / "back.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["emb", "ids"]
        assert np.array_equal(z["ids"], ids) and z["ids"].dtype == ids.dtype
        # 100 seeded vectors at d = 32: measured 0.888 x the optimum; 1% margin (README's
        # figures are for other data)
        assert nmse(x, z["emb"]) <= 0.897 * codebook.expected_distortion(32, 4)
    np.savez(tmp_path / "p.npz", obj=np.array([{"a": 1}], dtype=object))
    code, _, err = tq("compress", "p.npz")
    assert code == 1 and len(err) == 1 and "pickle" in err[0]
    assert not (tmp_path / "p.npz.tqz").exists()


def test_zero_dimensional_members_keep_shape_empty(tmp_path, tq):
    """18.3: a raw member's shape may be [] (a scalar).  Every kind of file gives 0-d
    arrays back 0-d, with their values and dtypes (tq 1.3.0 made an .npz's (1,) and
    refused an HDF5 scalar float dataset and a folder's 0-d float .npy)."""
    import h5py
    from safetensors.numpy import load_file, save_file

    big = np.random.default_rng(13).standard_normal((64, 32)).astype(np.float32)
    scalars = {"s": np.array(3.5, np.float32), "i": np.array(-7, np.int64),
               "h": np.array(0.25, np.float16), "b": np.array(True)}
    np.savez(tmp_path / "z.npz", emb=big, **scalars)
    save_file(dict(scalars, emb=big), str(tmp_path / "z.safetensors"))
    with h5py.File(tmp_path / "z.h5", "w") as f:
        f["emb"] = big
        for k, v in scalars.items():
            f[k] = v
    (tmp_path / "d").mkdir()
    np.save(tmp_path / "d" / "emb.npy", big)
    for k, v in scalars.items():
        np.save(tmp_path / "d" / f"{k}.npy", v)

    def load(path):
        if path.endswith(".npz"):
            with np.load(tmp_path / path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        if path.endswith(".safetensors"):
            return load_file(str(tmp_path / path))
        if path.endswith(".h5"):
            with h5py.File(tmp_path / path) as f:
                return {k: f[k][()] for k in f}
        return {p.stem: np.load(p) for p in (tmp_path / path).glob("*.npy")}

    for src, back, extra in (("z.npz", "b.npz", ()), ("z.safetensors", "b.safetensors", ()),
                             ("z.h5", "b.h5", ()), ("d", "b", ("--directory",))):
        code, _, err = tq("compress", src, "-o", f"{src}.tqz", "-b", "4", *extra)
        assert code == 0, (src, err)
        with open_collection(str(tmp_path / f"{src}.tqz")) as c:
            shapes = {e["name"]: e["shape"] for e in c.members}
            assert all(shapes[k] == [] for k in scalars), (src, shapes)
            assert c.read("s").shape == ()
        code, _, err = tq("decompress", f"{src}.tqz", "-o", back)
        assert code == 0, (src, err)
        got = load(back)
        for k, v in scalars.items():
            y = np.asarray(got[k])
            assert y.shape == () and y.dtype == v.dtype and y == v, (src, k, y)
        assert got["emb"].shape == (64, 32)
    # one 0-d member as .npy on stdout
    code, out, err = tq("decompress", "z.npz.tqz", "--member", "s", "-c")
    assert code == 0, err
    assert np.load(io.BytesIO(out)).shape == ()


def test_a_torch_save_zip_is_refused_with_the_way_to_safetensors(tmp_path, tq):
    """Issue 26 item 12: a torch.save file is a zip laid out as ARCHIVE/data.pkl,
    ARCHIVE/data/0, ...; tq says it never loads torch pickles and how to save safetensors
    (tq 1.3.0 said "member 'pkv/data.pkl' is not a .npy").  One line, exit 1, no output."""
    import zipfile

    pickle = b"\x80\x02}q\x00(X\x01\x00\x00\x00wq\x01ctorch._utils\n_rebuild_tensor_v2\nq\x02."
    for archive, name in (("pkv", "pkv.pt"), ("archive", "model.bin")):
        with zipfile.ZipFile(tmp_path / name, "w") as z:  # torch.save's own layout
            z.writestr(f"{archive}/data.pkl", pickle)
            z.writestr(f"{archive}/byteorder", b"little")
            z.writestr(f"{archive}/data/0", bytes(64))
            z.writestr(f"{archive}/version", b"3\n")
            z.writestr(f"{archive}/.data/serialization_id", b"0123456789")
        stem = name.rsplit(".", 1)[0]
        for cmd in (("compress", name), ("compress", name, "-o", "x.tqz"), ("eval", name)):
            code, out, err = tq(*cmd)
            assert code == 1 and len(err) == 1, (cmd, err)
            line = err[0]
            assert line.startswith(f"tq: {name}: ") and "not a .npy" not in line, line
            assert "never" in line and "pickle" in line, line
            assert f'safetensors.torch.save_file(state_dict, "{stem}.safetensors")' in line
        assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tqz") == []


def test_hdf5_soft_links_are_refused(tmp_path, tq):
    import h5py

    with h5py.File(tmp_path / "l.h5", "w") as f:
        f["a"] = np.ones((16, 8), np.float32)
        f["b"] = h5py.SoftLink("/a")
        f["c"] = h5py.ExternalLink("other.h5", "/x")
    code, _, err = tq("compress", "l.h5")
    assert code == 1 and len(err) == 1 and "link" in err[0]


# ---------------------------------------------------------------------- hostile collections


def hostile_base() -> bytes:
    rng = np.random.default_rng(9)
    return build({"a/k": rng.standard_normal((16, 8)).astype(np.float32),
                  "ids": np.arange(5, dtype=np.int16)}, bits=2, chunk_rows=8)


def refused(data: bytes, base: dict | None = None) -> set:
    """The rules refusing `data` as bytes and as a pipe (a crash fails the test: a pipe
    reads a TOC of the length its records imply, so one whose digits differ in length ends
    short there, `truncated`); an
    accepted file must decode to exactly `base`'s values when given."""
    rules = set()
    for src in (lambda: data, lambda: io.BufferedReader(Pipe(data))):
        try:
            got = read_all(src())
        except tqcli.FormatError as e:
            rules.add(e.rule)
            continue
        except tqcli.TqError as e:  # every refusal has a rule: this fails the test
            rules.add(type(e).__name__)
            continue
        rules.add(None)
        assert base is None or got.keys() == base.keys() and all(
            np.array_equal(got[k], base[k]) for k in got), "undetected corruption"
    return rules


def test_every_bit_flip_and_truncation_is_refused():
    blob = hostile_base()
    base = read_all(blob)
    counts = {"flips": 0, "truncations": 0}
    for i in range(len(blob)):
        b = bytearray(blob)
        b[i] ^= 1 << (i % 8)
        assert None not in refused(bytes(b), base), i
        counts["flips"] += 1
    for n in range(len(blob)):
        assert None not in refused(blob[:n], base), n
        counts["truncations"] += 1
    assert None not in refused(blob + b"\0")
    print(f"\n[collections] {counts['flips']} bit flips, {counts['truncations']} "
          f"truncations, 1 trailing byte: all refused as bytes and as a stream")


def craft(info: dict, members, toc=None, footer=None, header_json=None) -> bytes:
    """A collection from raw parts with every checksum right: (record, data) pairs."""
    body = header_json if header_json is not None else collection.dump_json(info)
    head = collection.MAGIC + struct.pack("<HHI", 1, 0x8000, 16 + len(body) + 4) + body
    out = head + struct.pack("<I", zlib.crc32(head))
    entries = []
    for rec, data in members:
        raw = rec if isinstance(rec, bytes) else collection.dump_json(rec)
        r = struct.pack("<4sI", b"TQZM", 8 + len(raw) + 4) + raw
        try:
            fields = json.loads(raw)
        except ValueError:
            fields = {}
        entries.append(dict(fields, offset=len(out), record=len(r) + 4))
        out += r + struct.pack("<I", zlib.crc32(r)) + data
    t = b"TQZT" + (toc if isinstance(toc, bytes) else collection.dump_json(
        entries if toc is None else toc(entries)))
    count = info.get("members", len(members)) % (1 << 32) if isinstance(info, dict) else 0
    fields = dict(off=len(out), length=len(t), count=count)
    fields.update(footer or {})
    f = struct.pack("<QQI", fields["off"], fields["length"], fields["count"])
    return out + t + f + struct.pack("<I", zlib.crc32(t + f)) + b"TQZC"


def raw_member(name: str, values: np.ndarray, **extra):
    data = values.tobytes()
    data += struct.pack("<I", zlib.crc32(data))
    rec = dict(name=name, kind="raw", shape=list(values.shape), dtype=values.dtype.name,
               attrs={}, length=len(data))
    rec.update(extra)
    return rec, data


def hostile_cases():
    # a bad record is refused by the TOC's copy of it when the file can seek ("toc"), by
    # the record itself on a pipe ("member-record")
    one = np.arange(4, dtype=np.int32)
    ok = raw_member("x", one)
    yield "valid", craft({"members": 1}, [ok]), {None}
    for name in ("../x", "/abs", "a/../b", "a//b", "a/./b", ".", "", "a\0b", "a\\b",
                 "x\n", "/".join(["d"] * 33), "é" * 600):
        yield f"name {name[:12]!r}", craft({"members": 1}, [raw_member(name, one)]), \
            {"member-name"}
    yield "duplicate names", craft({"members": 2}, [ok, ok]), {"member-name"}
    yield "name is a folder", craft({"members": 2}, [raw_member("a", one),
                                                     raw_member("a/b", one)]), {"member-name"}
    yield "huge member count", craft({"members": 2 ** 40}, [ok]), {"collection-header"}
    yield "count differs", craft({"members": 2}, [ok]), {"footer-layout", "toc", "member-record"}
    yield "footer count", craft({"members": 1}, [ok], footer={"count": 2 ** 31}), \
        {"footer-layout", "toc"}
    yield "huge toc length", craft({"members": 1}, [ok], footer={"length": 2 ** 62}), \
        {"footer-layout", "toc", "toc-crc"}
    yield "toc offset past the end", craft({"members": 1}, [ok], footer={"off": 2 ** 63}), \
        {"footer-layout", "toc-crc"}
    yield "overlapping ranges", craft({"members": 2}, [ok, raw_member("y", one)],
                                      toc=lambda es: [es[0], dict(es[1], offset=es[0]["offset"]
                                                                  + 4)]), \
        {"member-layout", "toc-record", "truncated"}
    yield "gap", craft({"members": 1}, [ok], toc=lambda es: [dict(es[0], offset=es[0]["offset"]
                                                                  + 1)]), \
        {"member-layout", "toc-record", "truncated"}
    yield "toc length lies", craft({"members": 1}, [ok], toc=lambda es: [dict(
        es[0], length=2 ** 60)]), {"member-length", "toc-record", "truncated", "toc"}
    yield "raw length lies", craft({"members": 1}, [(dict(ok[0], length=8), ok[1])]), \
        {"member-length"}
    yield "huge shape", craft({"members": 1}, [(dict(ok[0], shape=[2 ** 48] * 3), ok[1])]), \
        {"member-record", "member-length", "toc"}
    yield "negative extent", craft({"members": 1}, [(dict(ok[0], shape=[-4]), ok[1])]), \
        {"member-record", "toc"}
    yield "unknown kind", craft({"members": 1}, [(dict(ok[0], kind="zip"), ok[1])]), \
        {"member-record", "toc"}
    yield "object dtype", craft({"members": 1}, [(dict(ok[0], dtype="object"), ok[1])]), \
        {"member-record", "toc"}
    yield "extra field", craft({"members": 1}, [(dict(ok[0], pickle=1), ok[1])]), \
        {"member-record", "toc"}
    deep = {"a": 1}
    for _ in range(40):
        deep = {"a": deep}
    yield "deep attrs", craft({"members": 1}, [(dict(ok[0], attrs=deep), ok[1])]), \
        {"member-record", "toc"}
    yield "deep header", craft({"members": 1}, [ok], header_json=b"[" * 5000 + b"]" * 5000
                               ), {"collection-header"}
    yield "deep toc", craft({"members": 1}, [ok], toc=b"[" * 5000), {"toc"}
    yield "NaN in header", craft({"members": 1}, [ok], header_json=b'{"members":1,"x":NaN}'), \
        {"collection-header"}
    yield "duplicate keys", craft({"members": 1}, [ok], header_json=b'{"members":1,"members":1}'
                                  ), {"collection-header"}
    yield "not UTF-8", craft({"members": 1}, [(b'{"name":"\xff"}', ok[1])]), \
        {"member-record", "member-name"}
    yield "bool values", craft({"members": 1}, [raw_member("m", np.uint8([0, 1, 2]).view(
        bool))]), {"member-values"}
    yield "raw crc", craft({"members": 1}, [(ok[0], ok[1][:-1] + bytes([ok[1][-1] ^ 1]))]), \
        {"member-crc"}
    x = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    tqz = tqcli.compress(x, bits=2, chunk_rows=8)
    rec = dict(name="t", kind="tqz", shape=[16, 8], dtype="float32", attrs={},
               length=len(tqz), vector=8, bits=2)
    yield "tqz member", craft({"members": 1}, [(rec, tqz)]), {None}
    yield "tqz shape differs", craft({"members": 1}, [(dict(rec, shape=[8, 16], vector=16),
                                                       tqz)]), {"member-header"}
    yield "tqz bits differ", craft({"members": 1}, [(dict(rec, bits=3), tqz)]), \
        {"member-header"}
    yield "tqz dtype differs", craft({"members": 1}, [(dict(rec, dtype="float64"), tqz)]), \
        {"member-header"}
    yield "tqz shorter than its record", craft({"members": 1}, [(dict(
        rec, length=len(tqz) + 8), tqz + bytes(8))]), {"trailing"}
    yield "tqz longer than its record", craft({"members": 1}, [(dict(
        rec, length=len(tqz) - 24), tqz[:-24])]), {"length", "truncated"}
    yield "nested collection", craft({"members": 1}, [(dict(rec, length=len(
        craft({"members": 1}, [ok]))), craft({"members": 1}, [ok]))]), \
        {"member-nested"}
    # one level over 18.1's depth limits (32 and 32 are read: test_*_json_depth_*)
    yield "header 33 deep", craft({"members": 1, "x": nested(32)}, [ok]), {"collection-header"}
    yield "record 33 deep", craft({"members": 1}, [(dict(ok[0], attrs={"a": nested(31)}),
                                                    ok[1])]), {"member-record", "toc"}


def depth_of(v) -> int:
    """Spec 18.1's depth, computed here (not by the code under test): arrays and objects."""
    if isinstance(v, dict):
        return 1 + max(map(depth_of, v.values()), default=0)
    if isinstance(v, list):
        return 1 + max(map(depth_of, v), default=0)
    return 0


def nested(depth: int):
    """A JSON value `depth` deep as spec 18.1 counts it: lists inside lists around 1."""
    v = 1
    for _ in range(depth):
        v = [v]
    return v


@pytest.mark.parametrize("depth", [31, 32, 33, 34, 35])
def test_header_json_depth_limit_is_exactly_32(depth):
    """18.1: the collection header is at most 32 deep; the object itself is the first level
    (tq 1.3.0 let 33 and 34 through: it allowed the TOC's 2 extra levels everywhere)."""
    ok = raw_member("x", np.arange(4, dtype=np.int32))
    info = {"members": 1, "x": nested(depth - 1)}  # an unknown key: ignored when valid
    data = craft(info, [ok])
    assert depth_of(info) == depth
    assert refused(data, {"x": np.arange(4, dtype=np.int32)}) == (
        {None} if depth <= 32 else {"collection-header"})


@pytest.mark.parametrize("depth", [31, 32, 33, 34, 35])
def test_record_json_depth_limit_is_32_and_the_tocs_33(depth):
    """18.1: a record is at most 32 deep (its attrs at most 31 inside it); the TOC, a list
    of records, is then at most 33 deep and is read as such.  A record over the limit is
    refused by the TOC's copy of it on a file (toc) and by itself on a pipe."""
    values = np.arange(4, dtype=np.int32)
    rec, data = raw_member("x", values, attrs={"a": nested(depth - 2)})
    assert depth_of(rec) == depth
    blob = craft({"members": 1}, [(rec, data)])
    if depth <= 32:
        assert refused(blob, {"x": values}) == {None}
        with open_collection(blob) as c:
            assert c.members[0]["attrs"] == rec["attrs"]
    else:
        assert refused(blob) == {"toc", "member-record"}
    # the writer never produces a record (or header) the reader would refuse
    if depth > 32:
        with pytest.raises(tqcli.FormatError):
            collection.CollectionWriter(io.BytesIO(), {"members": 1}).begin(rec)
        with pytest.raises(tqcli.FormatError):
            collection.CollectionWriter(io.BytesIO(), {"members": 1, "x": nested(depth - 1)})


def test_a_record_may_leave_out_attrs():
    """18.3: attrs defaults to {}; a record without it is valid (as a file and a pipe), its
    member reads back, inspect shows {} and a decoder writes it without attributes."""
    values = np.arange(6, dtype=np.int16).reshape(2, 3)
    rec, data = raw_member("m", values)
    del rec["attrs"]
    blob = craft({"members": 1}, [(rec, data)])
    assert refused(blob, {"m": values}) == {None}
    with open_collection(blob) as c:
        assert c.report()["members"][0]["attrs"] == {}
        assert "attrs" not in c.members[0]


def test_a_record_without_attrs_decompresses_to_every_kind(tmp_path, tq):
    import h5py

    values = np.arange(6, dtype=np.int16).reshape(2, 3)
    rec, data = raw_member("g/m", values)
    del rec["attrs"]
    (tmp_path / "n.tqz").write_bytes(craft({"members": 1, "source": "hdf5"}, [(rec, data)]))
    for out in ("n.h5", "n.npz", "n.safetensors"):
        code, _, err = tq("decompress", "n.tqz", "-o", out)
        assert code == 0, err
    with h5py.File(tmp_path / "n.h5") as f:
        assert np.array_equal(f["g/m"][()], values) and dict(f["g/m"].attrs) == {}


def test_crafted_collections_are_refused_by_their_rule():
    count = 0
    for what, data, rules in hostile_cases():
        got = refused(data)
        assert got <= rules, (what, got, rules)
        count += 1
    print(f"\n[collections] {count} crafted collections: each refused by its rule "
          f"(or read, the two valid ones), as bytes and as a stream")


def test_a_member_that_is_itself_a_collection_is_refused_by_its_rule(tmp_path, tq):
    """18.6 `member-nested`: a tqz member whose header has bit 15 of flags set (tq 1.3.0
    raised its CollectionError, which has no rule, and told the user to pick a --member)."""
    ok = raw_member("x", np.arange(4, dtype=np.int32))
    inner = craft({"members": 1}, [ok])
    rec = dict(name="t", kind="tqz", shape=[16, 8], dtype="float32", attrs={},
               length=len(inner), vector=8, bits=2)
    blob = craft({"members": 1}, [(rec, inner)])
    for src in (lambda: blob, lambda: io.BufferedReader(Pipe(blob))):
        with pytest.raises(tqcli.FormatError) as e:
            read_all(src())
        assert e.value.rule == "member-nested", e.value
    with open_collection(blob) as c:
        with pytest.raises(tqcli.FormatError) as e:
            c.open_member("t")
        assert e.value.rule == "member-nested"
    (tmp_path / "n.tqz").write_bytes(blob)
    code, _, err = tq("decompress", "n.tqz", "-o", "n.npz")
    assert code == 1 and len(err) == 1 and err[0].startswith("tq: n.tqz:") and \
        "itself a collection" in err[0] and "--member" not in err[0], err


def test_hostile_member_names_never_become_output_paths(tmp_path, tq):
    one = np.arange(4, dtype=np.int32)
    for i, name in enumerate(("../escape", "/tmp/abs", "a/../../b")):
        (tmp_path / f"h{i}.tqz").write_bytes(craft({"members": 1}, [raw_member(name, one)]))
        for out in (f"o{i}.npz", f"o{i}.h5", f"o{i}.safetensors"):
            code, _, err = tq("decompress", f"h{i}.tqz", "-o", out)
            assert code == 1 and len(err) == 1 and err[0].startswith(f"tq: h{i}.tqz:")
            assert not (tmp_path / out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h0.tqz", "h1.tqz", "h2.tqz"]
    assert not (tmp_path.parent / "escape").exists()


# ---------------------------------------------------------------------- the test vector

VECTORS = __import__("pathlib").Path(__file__).resolve().parent.parent / "spec" / "vectors"


def parse_from_spec(blob: bytes) -> tuple[dict, list[tuple[dict, bytes]]]:
    """Section 18 read with struct, zlib and json only: (info, [(record, member bytes)])."""
    assert blob[:8] == b"\x89TQZ\r\n\x1a\n" and struct.unpack_from("<HH", blob, 8) == (1, 0x8000)
    (h,) = struct.unpack_from("<I", blob, 12)
    assert zlib.crc32(blob[:h - 4]) == struct.unpack_from("<I", blob, h - 4)[0]
    info = json.loads(blob[16:h - 4])
    toc_off, toc_len, count, crc, end = struct.unpack_from("<QQII4s", blob, len(blob) - 28)
    assert end == b"TQZC" and toc_off + toc_len + 28 == len(blob) and count == info["members"]
    toc = blob[toc_off:toc_off + toc_len]
    assert zlib.crc32(toc + blob[len(blob) - 28:len(blob) - 8]) == crc and toc[:4] == b"TQZT"
    entries, pos, out = json.loads(toc[4:]), h, []
    for e in entries:
        assert e["offset"] == pos
        magic, r = struct.unpack_from("<4sI", blob, pos)
        assert magic == b"TQZM" and r == e["record"]
        assert zlib.crc32(blob[pos:pos + r - 4]) == struct.unpack_from("<I", blob, pos + r - 4)[0]
        rec = json.loads(blob[pos + 8:pos + r - 4])
        assert rec == {k: v for k, v in e.items() if k not in ("offset", "record")}
        out.append((rec, blob[pos + r:pos + r + rec["length"]]))
        pos += r + rec["length"]
    assert pos == toc_off
    # the compact, sorted JSON a writer produces (what a stream reader compares)
    assert toc[4:] == json.dumps(entries, sort_keys=True, separators=(",", ":"),
                                 ensure_ascii=False).encode()
    return info, out


def test_collection_vector_is_reproduced_and_read_from_the_spec():
    spec = json.loads((VECTORS / "collections.json").read_text())["collection_kv"]
    blob = (VECTORS / "collection_kv.tqz").read_bytes()
    with np.load(VECTORS / "collection_kv.input.npz", allow_pickle=False) as z:
        inputs = {k: z[k] for k in z.files}
    with np.load(VECTORS / "collection_kv.decoded.npz", allow_pickle=False) as z:
        decoded = {k: z[k] for k in z.files}
    info, members = parse_from_spec(blob)
    assert info == dict(spec["info"], members=len(inputs))
    arrays = {}
    for rec, data in members:
        x = inputs[rec["name"]]
        if rec["dtype"] == "bfloat16":
            x = x.view(ml_dtypes.bfloat16)
        arrays[rec["name"]] = x
        assert list(x.shape) == rec["shape"]
        if rec["kind"] == "raw":  # the values, little-endian, and their CRC
            assert data[:-4] == np.ascontiguousarray(x).tobytes()
            assert zlib.crc32(data[:-4]) == struct.unpack("<I", data[-4:])[0]
        else:  # a whole single-array file of the member, its last axis cut into vectors
            v = rec["vector"]
            opts = {k: spec["options"][k] for k in ("seed", "chunk_rows", "rotation")}
            shape = x.shape if v == x.shape[-1] else x.shape[:-1] + (x.shape[-1] // v, v)
            assert data == tqcli.compress(x.reshape(shape), bits=rec["bits"], **opts)
    kinds = {rec["name"]: rec.get("bits") or rec["kind"] for rec, _ in members}
    assert kinds == {"layers/0/key": 8, "layers/0/value": 4, "kv_cache": 4,
                     "positions": "raw", "mask": "raw", "scale": "raw", "tiny": "raw"}
    # tq writes the same bytes again, and decodes them to the stored arrays
    buf = io.BytesIO()
    compress_collection(arrays, buf, info=spec["info"], **spec["options"])
    assert buf.getvalue() == blob
    with open_collection(blob) as c:
        for name in c.names:
            y = c.read(name)
            assert np.array_equal(np.ascontiguousarray(y).view(np.uint8),
                                  np.ascontiguousarray(decoded[name]).view(np.uint8)), name
        assert c.report() == json.loads((VECTORS / "collection_kv.inspect.json").read_text())


# ---------------------------------------------------------------------- eval


def test_attention_error_against_a_direct_computation():
    from scipy.special import softmax

    from tqcli.library.collection_eval import attention_error, kv_pairs

    rng = np.random.default_rng(8)
    k, v = rng.standard_normal((2, 3, 10, 8)), rng.standard_normal((2, 3, 10, 8))
    k2, v2 = k + 0.05 * rng.standard_normal(k.shape), v + 0.1 * rng.standard_normal(v.shape)
    r = attention_error(k, v, k2, v2)
    w = softmax(k @ np.swapaxes(k, -1, -2) / np.sqrt(8), axis=-1)
    w2 = softmax(k @ np.swapaxes(k2, -1, -2) / np.sqrt(8), axis=-1)
    assert r["weights_rel_error"] == pytest.approx(np.linalg.norm(w2 - w) / np.linalg.norm(w))
    assert r["output_rel_error"] == pytest.approx(
        np.linalg.norm(w2 @ v2 - w @ v) / np.linalg.norm(w @ v))
    assert r["heads"] == 6 and attention_error(k, v, k, v)["output_rel_error"] == 0
    assert kv_pairs(["l/0/key", "l/0/value", "l/1/key", "ids"]) == [("l/0", "l/0/key",
                                                                     "l/0/value")]


def test_eval_of_the_shared_dump_per_member_total_and_attention(tmp_path, tq):
    src = data_file("minilm_kv.h5")
    code, out, err = tq("eval", src, "-b", "4", "--bits-for", "*key*=8", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert len(r["members"]) == 12 and len(r["attention"]) == 6
    # README's k8v4 row, each figure the range over the 6 layers, with a margin of a few
    # units of README's last digit (it rounds; the data and encoding are deterministic):
    # measured keys 0.9027-0.9338, values 0.9253-0.9540, weights 0.00360-0.00559, output
    # 0.0482-0.0763
    for m in r["members"]:
        assert m["bits"] == (8 if "key" in m["name"] else 4)
        lo, hi = K8V4_RATIO["key" if "key" in m["name"] else "value"]
        assert lo - 0.002 <= m["nmse_over_optimum"] <= hi + 0.002, m
    for a in r["attention"]:
        assert K8V4_WEIGHTS[0] - 0.0001 <= a["weights_rel_error"] <= K8V4_WEIGHTS[1] + 0.0001, a
        assert K8V4_OUTPUT[0] - 0.001 <= a["output_rel_error"] <= K8V4_OUTPUT[1] + 0.001, a
    # the ends of README's ranges are reached: the figures are these layers', not looser
    assert min(m["nmse_over_optimum"] for m in r["members"]) < K8V4_RATIO["key"][0] + 0.002
    assert max(a["output_rel_error"] for a in r["attention"]) > K8V4_OUTPUT[1] - 0.001
    # against a container written before: the same figures
    code, _, err = tq("compress", src, "-o", "kv.tqz", "-b", "4", "--bits-for", "*key*=8")
    assert code == 0, err
    code, out, err = tq("eval", src, "kv.tqz", "--json")
    assert code == 0, err
    assert json.loads(out)["members"] == r["members"]


# ---------------------------------------------------------------------- hostile inputs


def _safetensors(header: dict | bytes, data: bytes, length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def test_hostile_safetensors_and_npz_inputs_are_refused(tmp_path):
    from tqcli.arrayio import containers

    t = {"dtype": "F32", "shape": [2, 4], "data_offsets": [0, 32]}
    good = _safetensors({"a": t}, bytes(32))
    (tmp_path / "ok.safetensors").write_bytes(good)
    info, members = containers.read_members(str(tmp_path / "ok.safetensors"))
    assert [m.name for m in members] == ["a"] and members[0].shape == (2, 4)
    cases = {
        "header longer than the file": _safetensors({"a": t}, bytes(32), length=1 << 40),
        "header not JSON": _safetensors(b"{nope", bytes(32)),
        "deeply nested": _safetensors(b"[" * 10000 + b"]" * 10000, b""),
        "range outside the data": _safetensors({"a": dict(t, data_offsets=[0, 64])}, bytes(32)),
        "size not the shape's": _safetensors({"a": dict(t, shape=[3, 4])}, bytes(32)),
        "overlap": _safetensors({"a": t, "b": dict(t, data_offsets=[16, 48])}, bytes(48)),
        "gap": _safetensors({"a": dict(t, data_offsets=[8, 40])}, bytes(40)),
        "unknown dtype": _safetensors({"a": dict(t, dtype="F8_E4M3")}, bytes(32)),
        "huge shape": _safetensors({"a": dict(t, shape=[1 << 40, 1 << 40])}, bytes(32)),
        "negative offset": _safetensors({"a": dict(t, data_offsets=[-8, 24])}, bytes(32)),
        "metadata not strings": _safetensors({"a": t, "__metadata__": {"x": 1}}, bytes(32)),
        "truncated": good[:5],
    }
    for what, data in cases.items():
        (tmp_path / "h.safetensors").write_bytes(data)
        with pytest.raises(tqcli.InputError) as e:
            containers.read_members(str(tmp_path / "h.safetensors"))
        assert "\n" not in str(e.value) and str(e.value).startswith(str(tmp_path)), what
    # .npz: a member whose size is not its header's, a member that is not a .npy
    import zipfile

    for what, entries in (("short member", {"a.npy": good[:60]}),
                          ("not .npy", {"a.txt": b"hello"}),
                          ("npy that lies", {"a.npy": b"\x93NUMPY\x01\x00\x76\x00" +
                                             b"{'descr': '<f4', 'fortran_order': False, "
                                             b"'shape': (1000000,), }".ljust(117) + b"\n"})):
        with zipfile.ZipFile(tmp_path / "h.npz", "w") as z:
            for name, data in entries.items():
                z.writestr(name, data)
        with pytest.raises(tqcli.InputError):
            containers.read_members(str(tmp_path / "h.npz"))


def test_collection_corpus_is_committed_as_generated():
    """tests/corpus/collections/ holds exactly the crafted cases above (for other readers)."""
    import importlib.util

    path = VECTORS.parent.parent / "tests" / "corpus" / "make_collection_corpus.py"
    spec = importlib.util.spec_from_file_location("make_collection_corpus", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    manifest, files = mod.build()
    folder = path.parent / "collections"
    assert json.loads((path.parent / "collections.json").read_text()) == manifest
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    for name, data in files.items():
        assert (folder / name).read_bytes() == data, name
    assert sum(c["valid"] for c in manifest["cases"]) == 2


def test_folder_collection_round_trip_and_hostile_names(tmp_path, tq):
    rng = np.random.default_rng(10)
    (tmp_path / "d" / "sub").mkdir(parents=True)
    a = rng.standard_normal((64, 32)).astype(np.float32)
    np.save(tmp_path / "d" / "a.npy", a)
    np.save(tmp_path / "d" / "sub" / "ids.npy", np.arange(10))
    code, _, err = tq("compress", "d", "--directory", "-b", "4")
    assert code == 0, err
    code, _, err = tq("decompress", "d.tqz", "-o", "back")
    assert code == 0, err
    assert sorted(str(p.relative_to(tmp_path / "back")) for p in (tmp_path / "back").rglob(
        "*.npy")) == ["a.npy", "sub/ids.npy"]
    assert np.array_equal(np.load(tmp_path / "back" / "sub" / "ids.npy"), np.arange(10))
    # 64 seeded vectors at d = 32: measured 0.942 x the optimum; 1% margin
    assert nmse(a, np.load(tmp_path / "back" / "a.npy")) <= 0.951 * \
        codebook.expected_distortion(32, 4)
    code, _, err = tq("decompress", "d.tqz", "-o", "back")
    assert code == 1 and "already exists" in err[0]
    (tmp_path / "d" / "link.npy").symlink_to(tmp_path / "d" / "a.npy")
    code, _, err = tq("compress", "d", "--directory", "-o", "l.tqz")
    assert code == 1 and "link" in err[0] or "regular" in err[0]
    # a folder collection whose member names try to leave the folder
    one = np.arange(4, dtype=np.int32)
    for i, name in enumerate(("../escape", "/abs/x", "a/../../b")):
        (tmp_path / f"h{i}.tqz").write_bytes(
            craft({"members": 1, "source": "directory"}, [raw_member(name, one)]))
        code, _, err = tq("decompress", f"h{i}.tqz", "-o", f"out{i}")
        assert code == 1 and len(err) == 1 and "member-name" not in err[0], err
        assert not (tmp_path / f"out{i}").exists() and not (tmp_path / "escape").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_eval_kv_axis_of_a_single_array_matches_the_collection(tq):
    root = VECTORS.parent.parent / "samples"
    code, out, err = tq("eval", root / "kv_cache.npy", "--kv-axis", "1", "-b", "3", "--json")
    assert code == 0, err
    single = json.loads(out)["attention"]
    code, out, err = tq("eval", root / "kv_cache.h5", "-b", "3", "--json")
    assert code == 0, err
    coll = json.loads(out)["attention"]
    assert [a["layer"] for a in single] == ["0", "1"]
    assert [a["layer"] for a in coll] == ["layers/0", "layers/1"]
    for a, b in zip(single, coll):  # the same vectors, the same encoding: the same figures
        assert a["weights_rel_error"] == pytest.approx(b["weights_rel_error"], rel=1e-9)
        assert a["output_rel_error"] == pytest.approx(b["output_rel_error"], rel=1e-9)
    # samples/kv_cache at 3 bits (no README figure): measured output errors 0.1555 and
    # 0.1714 for layers 0 and 1; 2% margin (deterministic sample and encoding)
    assert [round(a["output_rel_error"], 4) for a in single] == \
        pytest.approx([0.1555, 0.1714], abs=0.003)
    code, _, err = tq("eval", root / "kv_cache.npy", "--kv-axis", "3")
    assert code == 2 and "kv-axis" in " ".join(err)


def test_bfloat16_conversions_match_ml_dtypes_bit_for_bit():
    from tqcli.arrayio import bf16

    every = np.arange(1 << 16, dtype=np.uint16)
    finite = np.isfinite(every.view(ml_dtypes.bfloat16).astype(np.float32))
    widened = bf16.bits_to_f32(every)
    assert np.array_equal(widened.view(np.uint32)[finite],
                          every.view(ml_dtypes.bfloat16).astype(np.float32).view(np.uint32)[finite])
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(50000) * np.exp(rng.uniform(-95, 85, 50000))).astype(np.float32)
    ties = (every[finite].astype(np.uint32) << 16 | 0x8000).view(np.float32)  # exact ties
    for v in (x, ties, x.astype(np.float64) * (1 + 1e-4 * rng.standard_normal(x.size))):
        v = v[np.abs(v) < bf16.MAX]
        assert np.array_equal(bf16.f32_to_bits(v), v.astype(ml_dtypes.bfloat16).view(np.uint16))
    # beyond the largest finite value: saturation, as for float16 (never infinity)
    assert bf16.f32_to_bits(np.float32([3.4e38, -3.4e38])).tolist() == [0x7F7F, 0xFF7F]
