"""Nothing of the user's is lost (issue 23): -f onto a zarr store replaces only a zarr
array, never a group or files zarr did not write; a zarr input never follows a link out of
its store; names a file system or an output kind cannot keep apart (case, Unicode
normalisation, safetensors' `__metadata__`) are refused before anything is written; a
full disk names the output the user asked for, not the hidden temporary; folder outputs
follow the umask; reading every member of a large collection checks each record once.

Full disks are real (a 128 KiB tmpfs) where mounting is allowed (CI runs as root), and
otherwise an injected ENOSPC from the writer; the test prints which it used.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess

import numpy as np
import pytest

import tqcli
from fuzzkit import TQ
from tqcli.arrayio import containers

zarr = pytest.importorskip("zarr", reason="the zarr extra is not installed: pip install "
                           "'.[zarr]' (.ci/run installs it)")


def one_line(code, err, name, *words):
    assert code == 1, err
    assert len(err) == 1 and err[0].startswith(f"tq: {name}: "), err
    assert "internal error" not in err[0]
    for w in words:
        assert w.lower() in err[0].lower(), (w, err[0])


def files_under(path) -> dict:
    """{relative path: bytes} of every file under a folder."""
    out = {}
    for folder, _, names in os.walk(path):
        for n in names:
            full = os.path.join(folder, n)
            out[os.path.relpath(full, path)] = open(full, "rb").read()
    return out


@pytest.fixture
def small_tqz(tmp_path):
    x = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    (tmp_path / "x.tqz").write_bytes(tqcli.compress(x, bits=4))
    return x


# ---------------------------------------------------------------------------- zarr -f


def test_force_onto_a_zarr_group_or_foreign_files_keeps_them(tmp_path, tq, small_tqz):
    """-f replaces a zarr array (what tq writes), never a group with its other arrays, nor
    an array store holding files zarr did not write: both are refused, untouched."""
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("other", shape=(4, 4), dtype="f4")[:] = 7
    (tmp_path / "g.zarr" / "notes.txt").write_text("mine")
    v2 = zarr.open_group(str(tmp_path / "g2.zarr"), mode="w", zarr_format=2)
    v2.create_array("other", shape=(4,), dtype="i4")[:] = 3
    a = zarr.create_array(str(tmp_path / "a.zarr"), shape=(8, 4), chunks=(4, 4), dtype="f4")
    a[:] = 1
    (tmp_path / "a.zarr" / "README").write_text("mine too")
    for store in ("g.zarr", "g2.zarr", "a.zarr"):
        before = files_under(tmp_path / store)
        code, _, err = tq("decompress", "x.tqz", "-o", store, "-f")
        one_line(code, err, store, "-f replaces only a zarr array")
        assert files_under(tmp_path / store) == before, store
    assert "group" in tq("decompress", "x.tqz", "-o", "g.zarr", "-f")[2][0]
    # an array store as zarr wrote it (v3 and v2) is replaced, as -f says
    for fmt in (3, 2):
        zarr.create_array(str(tmp_path / f"r{fmt}.zarr"), shape=(8, 4), chunks=(4, 4),
                          dtype="f4", zarr_format=fmt)[:] = 2
        code, _, err = tq("decompress", "x.tqz", "-o", f"r{fmt}.zarr", "-f")
        assert code == 0, err
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / f"r{fmt}.zarr"))[:],
                                      tqcli.decompress((tmp_path / "x.tqz").read_bytes()))


# ---------------------------------------------------------------------------- zarr links


def test_zarr_input_refuses_links_out_of_the_store(tmp_path, tq):
    """A chunk, the metadata or a folder of chunks linked to a file outside the store is
    refused (as HDF5 external storage and --directory links are); the secret is not
    read into any output.  A link that stays inside the store is followed."""
    x = np.random.default_rng(1).standard_normal((64, 8)).astype(np.float32)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.full((16, 8), 42.0, np.float32).tobytes())

    def store(name):
        a = zarr.create_array(str(tmp_path / name), shape=x.shape, chunks=(16, 8),
                              dtype="f4", compressors=None)
        a[:] = x
        return tmp_path / name

    chunk = store("chunk.zarr") / "c" / "1" / "0"
    chunk.unlink()
    chunk.symlink_to(secret)
    meta_store = store("meta.zarr")
    outside = tmp_path / "elsewhere.json"
    outside.write_bytes((meta_store / "zarr.json").read_bytes())
    (meta_store / "zarr.json").unlink()
    (meta_store / "zarr.json").symlink_to(outside)
    folder_store = store("folder.zarr")
    os.rename(folder_store / "c" / "2", tmp_path / "away")
    (folder_store / "c" / "2").symlink_to(tmp_path / "away")
    for name, shown in (("chunk.zarr", "c/1/0"), ("meta.zarr", "zarr.json"),
                        ("folder.zarr", "c/2")):
        code, _, err = tq("compress", name, "-o", name + ".tqz")
        one_line(code, err, name, shown, "symbolic link out of the zarr store")
        assert not (tmp_path / (name + ".tqz")).exists()
    inside = store("inside.zarr")
    os.rename(inside / "c" / "1" / "0", inside / "c" / "1" / "kept")
    (inside / "c" / "1" / "0").symlink_to("kept")
    code, _, err = tq("compress", "inside.zarr", "-o", "inside.tqz", "-b", "8")
    assert code == 0, err


# ---------------------------------------------------------------------------- names


def _npz(path, names):
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for i, n in enumerate(names):
            with z.open(n + ".npy", "w") as m:
                containers.write_npy(m, np.arange(4, dtype=np.int32) + i)


@pytest.mark.parametrize("names, words", [
    (["__metadata__", "w"], ["'__metadata__'", "reserved", "rename the member"]),
    (["Key", "key"], ["'Key' and 'key'", "case"]),
    (["caf\u00e9", "cafe\u0301"], ["normalisation"]),
    (["layer/K", "layer/k"], ["case"]),
])
def test_compress_refuses_names_outputs_cannot_keep_apart(tmp_path, tq, names, words):
    _npz(tmp_path / "m.npz", names)
    code, _, err = tq("compress", "m.npz", "-o", "m.tqz")
    one_line(code, err, "m.npz", *words)
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]
    out = io.BytesIO()
    with pytest.raises(tqcli.InputError):
        tqcli.compress_collection({n: np.arange(3) for n in names}, out)
    assert out.getvalue() == b""  # refused before the first byte


def _crafted(tmp_path, names, source="npz"):
    from test_collections import craft, raw_member

    members = [raw_member(n, np.arange(4, dtype=np.int32) + i) for i, n in enumerate(names)]
    data = craft({"members": len(names), "source": source}, members)
    (tmp_path / "c.tqz").write_bytes(data)


def test_a_crafted_metadata_member_is_not_written_into_a_safetensors_header(tmp_path, tq):
    """tq 1.3.0 wrote it as a tensor named __metadata__ (then refused its own output)."""
    _crafted(tmp_path, ["a", "__metadata__"], source="safetensors")
    code, _, err = tq("decompress", "c.tqz", "-o", "c.safetensors")
    one_line(code, err, "c.safetensors", "reserved")
    assert sorted(os.listdir(tmp_path)) == ["c.tqz"]
    with open(tmp_path / "c.tqz", "rb") as f:  # a pipe: refused when it arrives, no output
        r = subprocess.run(TQ + ["decompress", "-", "-o", "p.safetensors"], stdin=f,
                           cwd=tmp_path, capture_output=True)
    assert r.returncode == 1 and r.stderr.decode().splitlines() == [
        "tq: p.safetensors: member name '__metadata__' is reserved in safetensors files "
        "(the header's metadata); write .npz or .h5 instead"], r.stderr
    assert sorted(os.listdir(tmp_path)) == ["c.tqz"]
    code, _, err = tq("decompress", "c.tqz", "-o", "c.npz")  # npz keeps it as any name
    assert code == 0, err
    assert sorted(np.load(tmp_path / "c.npz").files) == ["__metadata__", "a"]


def test_folder_output_refuses_names_one_file_system_merges(tmp_path, tq):
    _crafted(tmp_path, ["A", "a"], source="directory")
    code, _, err = tq("decompress", "c.tqz", "-o", "out")
    one_line(code, err, "out", "'A' and 'a'")
    assert sorted(os.listdir(tmp_path)) == ["c.tqz"]
    code, _, err = tq("decompress", "c.tqz", "-o", "c.npz")  # a zip keeps both
    assert code == 0, err


# ---------------------------------------------------------------------------- umask


def test_folder_outputs_follow_the_umask(tmp_path, tq, small_tqz):
    np.save(tmp_path / "one.npy", np.arange(3))
    os.mkdir(tmp_path / "d")
    np.save(tmp_path / "d" / "a.npy", np.arange(5))
    old = os.umask(0o027)
    try:
        assert tq("compress", "--directory", "d", "-o", "d.tqz")[0] == 0
        code, _, err = tq("decompress", "d.tqz", "-o", "back")
        assert code == 0, err
        code, _, err = tq("decompress", "x.tqz", "-o", "back.zarr")
        assert code == 0, err
    finally:
        os.umask(old)
    for folder in ("back", "back.zarr"):
        assert os.stat(tmp_path / folder).st_mode & 0o777 == 0o750, folder


# ---------------------------------------------------------------------------- full disk


def _mount_tmpfs(path) -> bool:
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k,mode=1777", "tmpfs",
                        str(path)], capture_output=True)
    return r.returncode == 0


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A 128 KiB tmpfs where mounting is allowed; else every collection writer's file
    writes fail with ENOSPC (os.write under zipfile and the .npy writer, h5py's dataset
    creation) -- the path of the error is the same from there on."""
    where = tmp_path / "full"
    if _mount_tmpfs(where):
        print("disk full: a 128 KiB tmpfs")
        yield where
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
        return
    print("disk full: an injected ENOSPC (mounting a tmpfs is not allowed here)")
    import h5py

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(containers, "write_npy", full)
    monkeypatch.setattr(h5py.Group, "create_dataset", full)
    real = containers.tempfile.TemporaryFile

    class Full:  # the safetensors writer's data file
        def __init__(self, *a, **k):
            self.f = real(*a, **k)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            full()

    monkeypatch.setattr(containers.tempfile, "TemporaryFile", Full)
    yield where


def test_a_full_disk_names_the_collection_output(tmp_path, tq, full_disk):
    """Every collection output kind on a full disk: `tq: OUT: write failed (No space left
    on device)` naming the output given (tq 1.3.0: no file named, or HDF5's long text
    with the hidden temporary's name), nothing left behind."""
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "big.npz", a=rng.standard_normal((64, 1024)).astype(np.float32),
             b=np.arange(70000, dtype=np.int64))
    os.mkdir(tmp_path / "d")
    for n in ("a", "b"):
        np.save(tmp_path / "d" / f"{n}.npy", np.arange(70000))
    assert tq("compress", "big.npz", "-o", "big.tqz", "--lossless", "*")[0] == 0
    assert tq("compress", "--directory", "d", "-o", "d.tqz")[0] == 0
    full = full_disk.relative_to(tmp_path)
    for src, out in (("big.tqz", f"{full}/o.npz"), ("big.tqz", f"{full}/o.h5"),
                     ("big.tqz", f"{full}/o.safetensors"), ("d.tqz", f"{full}/od")):
        code, _, err = tq("decompress", src, "-o", out)
        one_line(code, err, out, "write failed", "no space left on device")
        assert os.listdir(full_disk) == [], (out, os.listdir(full_disk))


# ---------------------------------------------------------------------------- many members


def test_reading_every_member_checks_each_record_once(tmp_path, monkeypatch):
    """The table of contents is checked once; each member's record, byte for byte its TOC
    entry, is not parsed and checked again, and a member is found by its name, not by a
    search through the list (which made N members cost N^2: 10,000 one-byte members took
    17 s to write as .npz; bench/many_members.py prints the times)."""
    from tqcli.format import collection, collection_reader

    n = 3000
    out = tmp_path / "m.tqz"
    with open(out, "wb") as f:
        tqcli.compress_collection({f"m{i}": np.uint8([i % 256]) for i in range(n)}, f)
    calls = {"check": 0, "eq": 0}
    real = collection_reader.check_record

    def counted(*a, **k):
        calls["check"] += 1
        return real(*a, **k)

    monkeypatch.setattr(collection_reader, "check_record", counted)
    with tqcli.open_collection(out) as c:
        assert calls["check"] == n  # the TOC's entries
        members = c._reader.members

        class Counting(list):  # a linear search of the members would compare entries
            def index(self, *a):
                calls["eq"] += 1
                return list.index(self, *a)

        c._reader.members = Counting(members)
        got = [int(arr[0]) for _, arr in c.items()]
        assert got == [i % 256 for i in range(n)]
        assert c.read("m2999")[0] == 2999 % 256
        assert "m2999" in c and "m3000" not in c and 5 not in c
    assert calls == {"check": n, "eq": 0}
    assert collection.check_record is not counted  # only the reader's name was counted


def test_a_truncated_lossless_npy_in_a_folder_is_one_line(tmp_path, tq):
    """--directory reads an integer member after the header it parsed (no second parse by
    np.load, which was half the time of a many-file folder); one cut short is refused as
    one line (tq 1.3.0: `internal error: ValueError`), one with bytes after its values
    is read as np.load reads it."""
    os.mkdir(tmp_path / "d")
    np.save(tmp_path / "d" / "a.npy", np.arange(100))
    np.save(tmp_path / "d" / "f.npy", np.asfortranarray(np.arange(12).reshape(3, 4)))
    data = (tmp_path / "d" / "a.npy").read_bytes()
    (tmp_path / "d" / "a.npy").write_bytes(data + b"\0" * 8)
    assert tq("compress", "--directory", "d", "-o", "d.tqz")[0] == 0
    with tqcli.open_collection(tmp_path / "d.tqz") as c:
        assert np.array_equal(c.read("a"), np.arange(100))
        assert np.array_equal(c.read("f"), np.arange(12).reshape(3, 4))
    (tmp_path / "d" / "a.npy").write_bytes(data[:-8])
    code, _, err = tq("compress", "--directory", "d", "-o", "e.tqz")
    one_line(code, err, "d", "a.npy", "truncated")
    assert not (tmp_path / "e.tqz").exists()
