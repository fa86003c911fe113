"""tqcli.fileio, the per-file policy, used directly as a library user would: what an input
is (probe_input, probe_container), output names, --rm refusals, the terminal and same-file
refusals, several inputs each on its own."""

from __future__ import annotations

import io
import os
import sys
import threading

import numpy as np
import pytest

import tqcli
from tqcli import arrayio, fileio
from tqcli.errors import InputError, TqError


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)


@pytest.fixture
def h5(tmp_path, x):
    h5py = pytest.importorskip("h5py")
    p = tmp_path / "f.h5"
    with h5py.File(p, "w") as f:
        f["emb"] = x
        f["model/key"] = x
    return str(p)


# ---------------------------------------------------------------------- probe_input


def test_probe_input_tells_each_kind(tmp_path, x, h5):
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "kv.npz", key=x, value=x)
    (tmp_path / "folder").mkdir()
    np.save(tmp_path / "folder" / "a.npy", x)

    p = fileio.probe_input(str(tmp_path / "x.npy"))
    assert (p.kind, p.collection, p.path) == ("array", False, str(tmp_path / "x.npy"))
    assert fileio.probe_input("-").kind == "stream"

    p = fileio.probe_input(str(tmp_path / "kv.npz"))
    assert (p.kind, p.source, p.group) == ("collection", "npz", None)
    p = fileio.probe_input(h5)
    assert (p.kind, p.source, p.path, p.group) == ("collection", "hdf5", h5, None)
    p = fileio.probe_input(h5 + ":/model")  # a group: the collection of its arrays
    assert (p.kind, p.group) == ("collection", "/model")
    p = fileio.probe_input(h5, dataset="model")
    assert (p.kind, p.group) == ("collection", "/model")
    p = fileio.probe_input(h5 + ":/emb")  # a dataset: one array
    assert (p.kind, p.source, p.path) == ("array", "hdf5", h5)
    p = fileio.probe_input(h5, dataset="emb")
    assert p.kind == "array"

    p = fileio.probe_input(str(tmp_path / "folder"), directory=True)
    assert (p.kind, p.source, p.problem) == ("collection", "directory", None)
    p = fileio.probe_input(str(tmp_path / "x.npy"), directory=True)
    assert p.problem == "--directory: not a folder" and not p.collection


def test_a_collection_named_as_one_array_is_probed_by_its_bytes(tmp_path, x):
    """An .npz saved under a .npy name is still a collection (its first bytes say so), and
    a .npy named .npz is one array: the probe never trusts the name."""
    np.savez(tmp_path / "kv.npz", key=x, value=x)
    os.rename(tmp_path / "kv.npz", tmp_path / "mistaken.npy")
    p = fileio.probe_input(str(tmp_path / "mistaken.npy"))
    assert p.collection and p.source == "npz"
    np.save(tmp_path / "one.npy", x)
    os.rename(tmp_path / "one.npy", tmp_path / "one.npz")
    assert fileio.probe_input(str(tmp_path / "one.npz")).kind == "array"


def test_probe_input_of_a_zarr_store(tmp_path, x):
    pytest.importorskip("zarr")
    import zarr

    store = str(tmp_path / "s.zarr")
    zarr.create_array(store, shape=x.shape, dtype=x.dtype)[:] = x
    p = fileio.probe_input(store + "/")
    assert (p.kind, p.collection) == ("zarr", False)
    with pytest.raises(TqError, match="a zarr array is a folder"):
        fileio.compressed_output(p)
    out_dir = str(tmp_path / "out")
    assert fileio.compressed_output(p, output_dir=out_dir) == os.path.join(out_dir,
                                                                           "s.zarr.tqz")
    plan = fileio.plan_compress(store, output=str(tmp_path / "s.tqz"), remove=True)
    with pytest.raises(TqError, match="--rm refused for zarr input"):
        with fileio.open_compress_input(plan):
            pass


# ---------------------------------------------------------------------- names


def test_output_names():
    p = fileio.probe_input("data/x.npy")
    assert fileio.compressed_output(p) == "data/x.npy.tqz"
    assert fileio.compressed_output(p, output_dir="out") == os.path.join("out", "x.npy.tqz")
    assert fileio.compressed_output(p, output="y.tqz") == "y.tqz"
    assert fileio.compressed_output(p, to_stdout=True) == "-"
    assert fileio.compressed_output(fileio.probe_input("-")) == "-"
    assert fileio.compressed_output(fileio.probe_input("f.h5:/emb")) == "f.h5.tqz"

    assert fileio.decompressed_output("x.npy.tqz") == "x.npy"
    assert fileio.decompressed_output("key0.tqz") == "key0.npy"
    assert fileio.decompressed_output("a/x.npy.tqz", output_dir="o") == os.path.join("o",
                                                                                    "x.npy")
    assert fileio.decompressed_output("-") == "-"
    assert fileio.decompressed_output("x.npy.tqz", to_stdout=True) == "-"
    with pytest.raises(TqError, match="unknown suffix"):
        fileio.decompressed_output("x.bin")

    assert fileio.collection_output_name("kv.tqz", {"source": "hdf5"}) == "kv.h5"
    assert fileio.collection_output_name("kv.h5.tqz", {"source": "hdf5"}) == "kv.h5"
    assert fileio.collection_output_name("kv.tqz", {"source": "safetensors"}) == \
        "kv.safetensors"
    assert fileio.collection_output_name("kv.tqz", {"source": "arrays"}) == "kv.npz"
    assert fileio.collection_output_name("emb.tqz", {"source": "directory"}) == "emb"


# ---------------------------------------------------------------------- --rm


def test_rm_is_refused_where_it_makes_no_sense(tmp_path, x, h5):
    np.save(tmp_path / "x.npy", x)
    npy = str(tmp_path / "x.npy")
    for kwargs, words in (
            (dict(spec=npy, to_stdout=True), "needs an output file"),
            (dict(spec="-", output=str(tmp_path / "s.tqz")), "needs an input file"),
            (dict(spec=str(tmp_path), directory=True), "refused for a folder")):
        with pytest.raises(fileio.Refused, match=words) as e:
            fileio.plan_compress(kwargs.pop("spec"), remove=True, **kwargs)
        assert e.value.kind == "usage"  # the command line's usage error (exit 2)
    # HDF5 may hold other data: refused, but as an error about the file, not a usage error
    with pytest.raises(TqError, match="--rm refused for HDF5") as e:
        fileio.plan_compress(h5, remove=True)
    assert not isinstance(e.value, fileio.Refused)
    plan = fileio.plan_compress(h5 + ":/emb", remove=True)
    with pytest.raises(TqError, match="--rm refused for HDF5"):
        with fileio.open_compress_input(plan):
            pass
    with pytest.raises(fileio.Refused, match="needs an output file"):
        fileio.plan_decompress("x.npy.tqz", remove=True, to_stdout=True)


def test_rm_deletes_the_input_only_after_a_complete_write(tmp_path, x):
    np.save(tmp_path / "x.npy", x)
    plan = fileio.plan_compress(str(tmp_path / "x.npy"), remove=True)
    assert plan.output == str(tmp_path / "x.npy.tqz")
    with fileio.open_compress_input(plan) as source:
        header = fileio.compress_planned(plan, source, bits=3)
        assert os.path.exists(tmp_path / "x.npy")
    fileio.finish(plan, plan.output)
    assert not os.path.exists(tmp_path / "x.npy") and header.bits == 3

    # a failed write keeps the input
    np.save(tmp_path / "y.npy", x)
    open(tmp_path / "y.npy.tqz", "wb").close()
    plan = fileio.plan_compress(str(tmp_path / "y.npy"), remove=True)
    with pytest.raises(TqError, match="exists"):
        with fileio.open_compress_input(plan) as source:
            fileio.compress_planned(plan, source)
    assert os.path.exists(tmp_path / "y.npy")


# ---------------------------------------------------------------------- terminals, same file


class _Terminal(io.BytesIO):
    def isatty(self) -> bool:
        return True

    @property
    def buffer(self):
        return self


def test_binary_input_from_a_terminal_is_refused_everywhere(monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Terminal())
    for call in (fileio.stdin, lambda: fileio.probe_container("-"),
                 lambda: arrayio.open_input("-"), lambda: fileio.open_named("-", False),
                 lambda: tqcli.decompress_file("-", "out.npy")):
        with pytest.raises(InputError, match="refusing to read binary data from a terminal"):
            call()


def test_an_output_over_its_input_is_refused(tmp_path, x):
    np.save(tmp_path / "x.npy", x)
    os.link(tmp_path / "x.npy", tmp_path / "same.tqz")
    with pytest.raises(TqError, match="output would overwrite the input"):
        fileio.refuse_same_file(str(tmp_path / "x.npy"), str(tmp_path / "same.tqz"))
    fileio.refuse_same_file(str(tmp_path / "x.npy"), "-")  # stdout is never the input
    fileio.refuse_same_file("-", str(tmp_path / "x.npy"))
    with pytest.raises(TqError, match="output would overwrite the input"):
        fileio.compress_file(str(tmp_path / "x.npy"), str(tmp_path / "same.tqz"), force=True)
    assert np.array_equal(np.load(tmp_path / "x.npy"), x)


# ---------------------------------------------------------------------- probe_container


def test_probe_container_decides_the_layout_once(tmp_path, x):
    tqcli.compress_file(_save(tmp_path, "x.npy", x), str(tmp_path / "x.tqz"))
    np.savez(tmp_path / "kv.npz", key=x, value=x)
    tqcli.compress_collection_file(str(tmp_path / "kv.npz"), str(tmp_path / "kv.tqz"))

    c = fileio.probe_container(str(tmp_path / "x.tqz"))
    assert (c.collection, c.src) == (False, str(tmp_path / "x.tqz"))
    c = fileio.probe_container(str(tmp_path / "kv.tqz"))
    assert c.collection
    with pytest.raises(InputError, match="no such file"):
        fileio.probe_container(str(tmp_path / "missing.tqz"))
    with pytest.raises(fileio.Refused, match="--select and --rows read one array"):
        fileio.plan_decompress(str(tmp_path / "kv.tqz"), one_array_options=True)
    with pytest.raises(TqError, match="--member given"):
        fileio.plan_decompress(str(tmp_path / "x.tqz"), members=["key"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_stream_is_probed_once_and_read_whole(tmp_path, x):
    """A FIFO cannot be opened twice: its first bytes are read to tell the layout and given
    again to the reader."""
    blob = tqcli.compress(x, bits=4)
    fifo = str(tmp_path / "pipe.tqz")
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as f:
            f.write(blob)

    t = threading.Thread(target=feed)
    t.start()
    with fileio.plan_decompress(fifo, output=str(tmp_path / "y.npy")) as plan:
        assert not plan.collection and not isinstance(plan.container.src, str)
        fileio.decompress_planned(plan)
    t.join()
    assert np.array_equal(np.load(tmp_path / "y.npy"), tqcli.decompress(blob))


def test_a_collection_on_stdin_is_told_from_one_array(tq, tmp_path, x):
    """A pipe's first bytes decide the layout as a file's do: a collection arriving on
    stdin decompresses to its members, not refused as a broken single-array stream."""
    np.savez(tmp_path / "kv.npz", key=x, value=2 * x)
    tqcli.compress_collection_file(str(tmp_path / "kv.npz"), str(tmp_path / "kv.tqz"))
    code, _, err = tq("decompress", "-", "-o", "out.npz",
                      input=(tmp_path / "kv.tqz").read_bytes())
    assert code == 0, err
    want = tqcli.open_collection(str(tmp_path / "kv.tqz"))
    with np.load(tmp_path / "out.npz") as got:
        assert sorted(got) == ["key", "value"]
        for name in ("key", "value"):
            assert np.array_equal(got[name], want[name][...])


# ---------------------------------------------------------------------- several inputs


def test_each_input_on_its_own():
    seen, failures = [], []

    def one(name):
        seen.append(name)
        if name == "bad":
            raise TqError("broken", name)

    assert fileio.each(["a", "bad", "c"], one, lambda n, e: failures.append((n, e.reason)))
    assert seen == ["a", "bad", "c"] and failures == [("bad", "broken")]
    assert not fileio.each(["a", "c"], one, None)
    with pytest.raises(TqError):  # a single input fails as itself
        fileio.each(["bad"], one, None)


def _save(tmp_path, name, a) -> str:
    np.save(tmp_path / name, a)
    return str(tmp_path / name)
