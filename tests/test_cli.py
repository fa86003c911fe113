"""The `tq` command line, run as a subprocess exactly as a user runs it: what it does.

Every test calls [sys.executable, "-m", "tqcli", ...] in a temporary folder, so the suite
works in any virtual environment.  Arrays are small: each process start costs about half a
second (numba loads its cached kernels), so tests share work where they can.

Covered: round trips and default names, -o/-c/'-o -', overwrite protection and -f, --rm,
pipes, --mode/--seed/-b, --dtype, --rows, HDF5 in and out, KV-cache shapes, float16/64,
inspect, eval, --version and --help.  What it refuses is test_cli_refusals.py.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess

import numpy as np
import pytest
from cliutil import (assert_error, kv_dump, listing, load_npy_bytes, no_temp_files, ok, run,
                     run_many)
from conftest import data_file, gaussian, nmse
from fuzzkit import TQ

# ---------------------------------------------------------------------------- round trips


def test_roundtrip_default_names_and_overwrite_protection(xfile, tmp_path):
    p, x = xfile
    original = p.read_bytes()
    r = ok(run(["compress", "x.npy", "-b", "4"], tmp_path))
    assert r.stderr == b"" and r.stdout == b""  # no progress bar, no summary: not a tty
    assert listing(tmp_path) == ["x.npy", "x.npy.tqz"]
    packed = (tmp_path / "x.npy.tqz").read_bytes()
    assert packed[:4] == b"\x89TQZ"

    # x.npy.tqz decompresses to x.npy, which exists: refused, the original untouched
    r = run(["decompress", "x.npy.tqz"], tmp_path)
    assert_error(r, "x.npy", "exists", "-f")
    assert p.read_bytes() == original
    assert listing(tmp_path) == ["x.npy", "x.npy.tqz"]
    # and compressing again would overwrite x.npy.tqz: refused too
    assert_error(run(["compress", "x.npy"], tmp_path), "x.npy.tqz", "exists")
    assert (tmp_path / "x.npy.tqz").read_bytes() == packed

    ok(run(["decompress", "x.npy.tqz", "-f"], tmp_path))
    y = np.load(p)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert nmse(x, y) < 0.02  # 4 bits: about 0.009 on Gaussian data
    assert listing(tmp_path) == ["x.npy", "x.npy.tqz"]

    # -f on compress replaces the container: x.npy now holds the decoded y, so the new
    # container is exactly the library's compress(y), and no longer the first one
    import tqcli

    ok(run(["compress", "x.npy", "-b", "4", "-f"], tmp_path))
    replaced = (tmp_path / "x.npy.tqz").read_bytes()
    assert replaced == tqcli.compress(y, bits=4) and replaced != packed


def test_output_option_stdout_and_dash(xfile, tmp_path):
    p, x = xfile
    _, c, dash = (ok(r).stdout for r in run_many(
        [["compress", "x.npy", "-b", "3", "-o", "a.tqz"], ["compress", "x.npy", "-b", "3", "-c"],
         ["compress", "x.npy", "-b", "3", "-o", "-"]], tmp_path))
    a = (tmp_path / "a.tqz").read_bytes()
    assert a == c == dash  # deterministic, and identical on every output path
    assert listing(tmp_path) == ["a.tqz", "x.npy"]

    _, y_c, y_dash = (ok(r).stdout for r in run_many(
        [["decompress", "a.tqz", "-o", "y.npy"], ["decompress", "a.tqz", "-c"],
         ["decompress", "a.tqz", "-o", "-"]], tmp_path))
    y_file = (tmp_path / "y.npy").read_bytes()
    assert y_file == y_c == y_dash
    y = load_npy_bytes(y_c)
    assert y.shape == x.shape and nmse(x, y) < 0.05
    # decompress with a default name: a.tqz -> a.npy (.npy added to a name with no extension)
    ok(run(["decompress", "a.tqz"], tmp_path))
    assert (tmp_path / "a.npy").read_bytes() == y_file


def test_refuse_overwrite_without_force(xfile, tmp_path):
    (tmp_path / "out.tqz").write_bytes(b"precious")
    r = run(["compress", "x.npy", "-o", "out.tqz"], tmp_path)
    assert_error(r, "out.tqz", "already exists")
    assert (tmp_path / "out.tqz").read_bytes() == b"precious"
    no_temp_files(tmp_path)
    ok(run(["compress", "x.npy", "-o", "out.tqz", "-f"], tmp_path))
    assert (tmp_path / "out.tqz").read_bytes()[:4] == b"\x89TQZ"

    (tmp_path / "y.npy").write_bytes(b"precious")
    assert_error(run(["decompress", "out.tqz", "-o", "y.npy"], tmp_path), "y.npy", "exists")
    assert (tmp_path / "y.npy").read_bytes() == b"precious"
    ok(run(["decompress", "out.tqz", "-o", "y.npy", "--force"], tmp_path))
    assert np.load(tmp_path / "y.npy").shape == (200, 64)
    # an output that is the input itself is refused even with -f
    assert_error(run(["compress", "x.npy", "-o", "x.npy", "-f"], tmp_path), "x.npy",
                 "overwrite the input")
    assert np.load(tmp_path / "x.npy").shape == (200, 64)
    # a directory as output
    (tmp_path / "d").mkdir()
    assert_error(run(["compress", "x.npy", "-o", "d"], tmp_path), "d", "directory")
    no_temp_files(tmp_path)


def test_rm_deletes_input_only_after_success(xfile, tmp_path):
    ok(run(["compress", "x.npy", "--rm"], tmp_path))
    assert listing(tmp_path) == ["x.npy.tqz"]
    ok(run(["decompress", "x.npy.tqz", "--rm"], tmp_path))
    assert listing(tmp_path) == ["x.npy"]

    bad = gaussian(20, 16)
    bad[7, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    before = (tmp_path / "nan.npy").read_bytes()
    assert_error(run(["compress", "nan.npy", "--rm"], tmp_path), "nan.npy", "row 7")
    assert (tmp_path / "nan.npy").read_bytes() == before
    assert listing(tmp_path) == ["nan.npy", "x.npy"]
    # an existing output: refused, and the input stays
    (tmp_path / "x.npy.tqz").write_bytes(b"old")
    assert_error(run(["compress", "x.npy", "--rm"], tmp_path), "x.npy.tqz", "exists")
    assert (tmp_path / "x.npy").exists()
    # --rm makes no sense with stdout or stdin: usage errors
    assert run(["compress", "x.npy", "--rm", "-c"], tmp_path).returncode == 2
    r = run(["compress", "-", "-o", "s.tqz", "--rm"], tmp_path,
            input=(tmp_path / "x.npy").read_bytes())
    assert r.returncode == 2 and not (tmp_path / "s.tqz").exists()


def test_pipeline_through_pipes(xfile, tmp_path):
    p, x = xfile
    data = p.read_bytes()
    # cat x.npy | tq compress - -b 4 | tq decompress - -o y.npy, without a shell
    c = subprocess.Popen(TQ + ["compress", "-", "-b", "4"], cwd=tmp_path,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    d = subprocess.Popen(TQ + ["decompress", "-", "-o", "y.npy"], cwd=tmp_path,
                         stdin=c.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    c.stdout.close()
    c.stdin.write(data)
    c.stdin.close()
    d_out, d_err = d.communicate(timeout=120)
    c_err = c.stderr.read()
    c.wait(timeout=120)
    assert c.returncode == 0 and d.returncode == 0, (c_err, d_err)
    assert c_err == b"" and d_err == b"" and d_out == b""
    y = np.load(tmp_path / "y.npy")
    assert y.shape == x.shape and nmse(x, y) < 0.02

    # the same through a shell pipeline; equals the file-to-file result byte for byte
    py = " ".join(shlex.quote(a) for a in TQ)
    sh = f"cat x.npy | {py} compress - -b 4 | {py} decompress - -o z.npy"
    r = subprocess.run(sh, shell=True, cwd=tmp_path, capture_output=True, timeout=120)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    assert (tmp_path / "z.npy").read_bytes() == (tmp_path / "y.npy").read_bytes()
    # compress from a stdin pipe gives the same container as from the file
    ok(run(["compress", "x.npy", "-b", "4", "-o", "f.tqz"], tmp_path))
    piped = ok(run(["compress", "-", "-b", "4"], tmp_path, input=data)).stdout
    assert piped == (tmp_path / "f.tqz").read_bytes()
    # '-' with -o writes a file
    ok(run(["compress", "-", "-o", "g.tqz", "-b", "4"], tmp_path, input=data))
    assert (tmp_path / "g.tqz").read_bytes() == piped


def test_mode_prod_seed_and_bits(xfile, tmp_path):
    p, x = xfile
    ok(run(["compress", "x.npy", "--mode", "prod", "-b", "3", "-o", "p.tqz"], tmp_path))
    info = json.loads(ok(run(["inspect", "--json", "p.tqz"], tmp_path)).stdout)
    assert info["mode"] == "prod" and info["bits"] == 3
    assert len(info["codebook"]) == 4  # prod: b-1 bits of mse codes plus one sign bit
    y = load_npy_bytes(ok(run(["decompress", "p.tqz", "-c"], tmp_path)).stdout)
    assert y.shape == x.shape and nmse(x, y) < 0.5

    s0, s0b, s1 = (ok(r).stdout for r in run_many(
        [["compress", "x.npy", "-c", "--seed", "0"], ["compress", "x.npy", "-c"],
         ["compress", "x.npy", "-c", "--seed", "12345"]], tmp_path))
    assert s0 == s0b and s0 != s1
    (tmp_path / "s1.tqz").write_bytes(s1)
    info = json.loads(ok(run(["inspect", "--json", "s1.tqz"], tmp_path)).stdout)
    assert info["seed"] == 12345
    y1 = load_npy_bytes(ok(run(["decompress", "s1.tqz", "-c"], tmp_path)).stdout)
    assert nmse(x, y1) < 0.02

    bads = (["-b", "0"], ["-b", "9"], ["-b", "x"], ["--bits=-1"], ["--mode", "fast"],
            ["--seed", "-1"], ["--mode", "prod", "--scale", "ls"])
    for bad, r in zip(bads, run_many([["compress", "x.npy", "-o", "bad.tqz", *b]
                                      for b in bads], tmp_path)):
        assert r.returncode == 2, (bad, r.stderr)
        assert b"Traceback" not in r.stderr
    assert listing(tmp_path) == ["p.tqz", "s1.tqz", "x.npy"]


def test_dtype_and_rows(tmp_path):
    x = gaussian(100, 32, dtype=np.float64)
    np.save(tmp_path / "x64.npy", x)
    ok(run(["compress", "x64.npy", "-o", "x.tqz"], tmp_path))
    dts = ("original", "float32", "float16", "float64")
    outs = {dt: load_npy_bytes(ok(r).stdout) for dt, r in zip(dts, run_many(
        [["decompress", "x.tqz", "-c", "--dtype", dt] for dt in dts], tmp_path))}
    assert outs["original"].dtype == np.float64
    assert outs["float32"].dtype == np.float32 and outs["float16"].dtype == np.float16
    np.testing.assert_array_equal(outs["original"], outs["float32"].astype(np.float64))
    np.testing.assert_array_equal(outs["float16"], outs["float32"].astype(np.float16))
    assert run(["decompress", "x.tqz", "-c", "--dtype", "int8"], tmp_path).returncode == 2

    full = outs["float32"]
    specs = (("10:50", slice(10, 50)), (":7", slice(None, 7)), ("-5:", slice(-5, None)),
             ("40:40", slice(40, 40)))
    jobs = [["decompress", "x.tqz", "-c", "--dtype", "float32", "--rows", spec]
            for spec, _ in specs]
    # --rows on a stream read from stdin
    jobs.append((["decompress", "-", "-c", "--rows", "3:9", "--dtype", "float32"],
                 (tmp_path / "x.tqz").read_bytes()))
    bads = ("abc", "1:2:3")
    jobs += [["decompress", "x.tqz", "-o", "r.npy", "--rows", bad] for bad in bads]
    results = run_many(jobs, tmp_path)
    for (spec, sl), r in zip(specs + (("3:9", slice(3, 9)),), results):
        y = load_npy_bytes(ok(r).stdout)
        assert y.ndim == 2
        np.testing.assert_array_equal(y, full[sl])
    for r in results[-len(bads):]:
        assert r.returncode == 2 and b"Traceback" not in r.stderr
    assert not (tmp_path / "r.npy").exists()
    no_temp_files(tmp_path)


def test_float16_and_float64_inputs(tmp_path):
    for dt, name in ((np.float16, "h.npy"), (np.float64, "d.npy")):
        x = gaussian(64, 48, dtype=dt, seed=3)
        np.save(tmp_path / name, x)
        ok(run(["compress", name], tmp_path))
        info = json.loads(ok(run(["inspect", "--json", name + ".tqz"], tmp_path)).stdout)
        assert info["source_dtype"] == np.dtype(dt).name
        item = np.dtype(dt).itemsize
        assert info["ratio_vs_original"] == pytest.approx(info["ratio_vs_float32"] * item / 4)
        ok(run(["decompress", name + ".tqz", "-f"], tmp_path))
        y = np.load(tmp_path / name)
        assert y.dtype == dt and y.shape == x.shape and nmse(x, y) < 0.02


def test_kv_dump_shape_preserved(tmp_path):
    kv = kv_dump()
    assert kv.ndim == 5
    np.save(tmp_path / "kv.npy", kv)
    ok(run(["compress", "kv.npy", "-b", "4"], tmp_path))
    info = json.loads(ok(run(["inspect", "--json", "kv.npy.tqz"], tmp_path)).stdout)
    assert info["shape"] == list(kv.shape) and info["dim"] == kv.shape[-1]
    assert info["vectors"] == int(np.prod(kv.shape[:-1]))
    ok(run(["decompress", "kv.npy.tqz", "-o", "kv_out.npy"], tmp_path))
    y = np.load(tmp_path / "kv_out.npy")
    assert y.shape == kv.shape and y.dtype == np.float32
    assert nmse(kv, y) < 0.03
    rows = load_npy_bytes(ok(run(["decompress", "kv.npy.tqz", "-c", "--rows", "30:130"],
                                 tmp_path)).stdout)
    np.testing.assert_array_equal(rows, y.reshape(-1, kv.shape[-1])[30:130])
    # HDF5 output keeps the rank-5 shape
    ok(run(["decompress", "kv.npy.tqz", "-o", "kv.h5"], tmp_path))
    import h5py

    with h5py.File(tmp_path / "kv.h5", "r") as f:
        assert f["data"].shape == kv.shape
        np.testing.assert_array_equal(f["data"][...], y)


# ---------------------------------------------------------------------------- HDF5


@pytest.fixture
def h5file(tmp_path):
    import h5py

    emb = gaussian(120, 16, seed=1)
    kv = gaussian(4 * 10, 16, dtype=np.float64, seed=2).reshape(4, 10, 16)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["emb"] = emb
        f["g/kv"] = kv
        f["strings"] = np.array([b"ab", b"cd"])
        f["ints"] = np.arange(12, dtype=np.int32).reshape(3, 4)
        f.create_group("grp")
    return tmp_path / "f.h5", emb, kv


def test_hdf5_input(h5file, tmp_path):
    path, emb, kv = h5file
    before = path.read_bytes()
    np.save(tmp_path / "emb.npy", emb)
    for r in run_many([["compress", "f.h5", "--dataset", "emb", "-o", "a.tqz"],
                       ["compress", "f.h5:/emb", "-o", "b.tqz"],
                       ["compress", "f.h5:emb"],  # default name: f.h5.tqz
                       ["compress", "emb.npy", "-o", "c.tqz"],
                       ["compress", "f.h5:/g/kv", "-o", "kv.tqz"]], tmp_path):
        ok(r)
    a = (tmp_path / "a.tqz").read_bytes()
    assert a == (tmp_path / "b.tqz").read_bytes() == (tmp_path / "f.h5.tqz").read_bytes()
    assert a == (tmp_path / "c.tqz").read_bytes()  # HDF5 and .npy inputs encode alike

    y = load_npy_bytes(ok(run(["decompress", "kv.tqz", "-c"], tmp_path)).stdout)
    assert y.shape == kv.shape and y.dtype == np.float64 and nmse(kv, y) < 0.02
    # a group is a collection of the datasets under it (issue 12), named from the group
    ok(run(["compress", "f.h5:/g", "-o", "g.tqz"], tmp_path))
    z = load_npy_bytes(ok(run(["decompress", "g.tqz", "--member", "kv", "-c"],
                              tmp_path)).stdout)
    assert np.array_equal(z, y)

    cases = [
        # the whole file is a collection (issue 12), whose string dataset tq cannot store
        (["f.h5"], "f.h5", ("strings", "|S2")),
        (["f.h5", "--dataset", "nope"], "f.h5", ("no dataset",)),
        (["f.h5:/nope"], "f.h5", ("no dataset",)),
        (["f.h5", "--dataset", "grp"], "f.h5", ("no dataset", "/grp")),  # an empty group
        (["f.h5", "--dataset", "strings"], "f.h5", ("dtype",)),
        (["f.h5:/ints"], "f.h5", ("int32",)),
        (["f.h5:/emb", "--rm"], "f.h5", ("--rm",)),
        (["emb.npy", "--dataset", "emb"], "emb.npy", ("not hdf5",)),
        (["damaged.h5"], "damaged.h5", ()),  # "cannot read dataset /z (...)"
        (["half.h5"], "half.h5", ("hdf5",)),
    ]
    import h5py

    with h5py.File(tmp_path / "damaged.h5", "w") as f:
        f.create_dataset("z", data=gaussian(400, 8), compression="gzip", chunks=(50, 8))
    raw = bytearray((tmp_path / "damaged.h5").read_bytes())
    (tmp_path / "half.h5").write_bytes(raw[:len(raw) // 2])
    for i in range(len(raw) // 2, len(raw) - 64, 5):  # damage the compressed chunks
        raw[i] ^= 0xFF
    (tmp_path / "damaged.h5").write_bytes(bytes(raw))
    results = run_many([["compress", *args, "-o", "bad.tqz"] for args, _, _ in cases], tmp_path)
    for (args, name, words), r in zip(cases, results):
        assert_error(r, name, *words)
    assert not (tmp_path / "bad.tqz").exists()
    no_temp_files(tmp_path)
    assert path.read_bytes() == before


def test_hdf5_output(xfile, tmp_path):
    import h5py

    p, x = xfile
    ok(run(["compress", "x.npy", "-o", "x.tqz"], tmp_path))
    ok(run(["decompress", "x.tqz", "-o", "y.h5"], tmp_path))
    ok(run(["decompress", "x.tqz", "-o", "z.hdf5", "--dataset", "emb/vectors",
            "--dtype", "float16"], tmp_path))
    ref = load_npy_bytes(ok(run(["decompress", "x.tqz", "-c"], tmp_path)).stdout)
    with h5py.File(tmp_path / "y.h5", "r") as f:
        assert f["data"].shape == x.shape and f["data"].dtype == np.float32
        np.testing.assert_array_equal(f["data"][...], ref)
    with h5py.File(tmp_path / "z.hdf5", "r") as f:
        assert f["emb/vectors"].dtype == np.float16
        np.testing.assert_array_equal(f["emb/vectors"][...], ref.astype(np.float16))
    # an HDF5 output is protected like any other
    assert_error(run(["decompress", "x.tqz", "-o", "y.h5"], tmp_path), "y.h5", "exists")
    no_temp_files(tmp_path)


def test_real_minilm_kv_hdf5(tmp_path):
    h5, npy = data_file("minilm_kv.h5"), data_file("minilm_kv.npy")
    ok(run(["compress", f"{h5}:/layers/1/key", "-o", "k.tqz"], tmp_path))
    ok(run(["compress", str(h5), "--dataset", "layers/1/key", "-o", "k2.tqz"], tmp_path))
    assert (tmp_path / "k.tqz").read_bytes() == (tmp_path / "k2.tqz").read_bytes()
    ref = np.load(npy, mmap_mode="r")[1, 0].copy()  # layer 1, keys: (12, 512, 32)
    np.save(tmp_path / "ref.npy", ref)
    ok(run(["compress", "ref.npy", "-o", "r.tqz"], tmp_path))
    assert (tmp_path / "r.tqz").read_bytes() == (tmp_path / "k.tqz").read_bytes()
    ok(run(["decompress", "k.tqz", "-o", "k.h5"], tmp_path))
    import h5py

    with h5py.File(tmp_path / "k.h5", "r") as f:
        y = f["data"][...]
    assert y.shape == (12, 512, 32) and nmse(ref, y) < 0.03
    # the whole file: one collection of its 12 datasets (issue 12; tests/test_collections.py)
    ok(run(["compress", str(h5), "-o", "all.tqz"], tmp_path))
    one = load_npy_bytes(ok(run(["decompress", "all.tqz", "--member", "layers/1/key", "-c"],
                                tmp_path)).stdout)
    assert np.array_equal(one, y)  # its member is the single-array file's array


# ---------------------------------------------------------------------------- inspect, eval


def test_inspect_verify_and_a_closed_pipe(tmp_path):
    x = gaussian(2100, 512, seed=4)  # default chunk rows for d=512 is 2048: two chunks
    np.save(tmp_path / "x.npy", x)
    ok(run(["compress", "x.npy", "-b", "3", "--seed", "9", "-o", "x.tqz"], tmp_path))
    size = (tmp_path / "x.tqz").stat().st_size
    info = json.loads(ok(run(["inspect", "--json", "x.tqz"], tmp_path)).stdout)
    assert info["vectors"] == 2100 and info["dim"] == 512 and info["shape"] == [2100, 512]
    assert info["bits"] == 3 and info["mode"] == "mse" and info["seed"] == 9
    assert len(info["codebook"]) == 8 and info["codebook"] == sorted(info["codebook"])
    assert info["chunks"] == 2 and info["file_bytes"] == size
    assert info["bytes_per_vector"] == pytest.approx(size / 2100)
    assert info["ratio_vs_float32"] == pytest.approx(4 * 2100 * 512 / size)
    assert info["ratio_vs_original"] == pytest.approx(info["ratio_vs_float32"])
    assert 9 < info["ratio_vs_float32"] < 11  # 3 bits + one float per vector
    assert info["source_dtype"] == "float32" and "verified" not in info

    text = ok(run(["inspect", "x.tqz"], tmp_path)).stdout.decode()
    for word in ("vectors", "2100 x 512", "seed", "codebook", "8 values", "chunks",
                 "bytes/vector", "ratio", f"{size}"):
        assert word in text, (word, text)

    r = ok(run(["inspect", "--verify", "x.tqz"], tmp_path))
    assert b"OK" in r.stdout and r.stderr == b""
    v = json.loads(ok(run(["inspect", "--verify", "--json", "x.tqz"], tmp_path)).stdout)
    assert v["verified"] is True
    # from a pipe
    p = json.loads(ok(run(["inspect", "--json", "-"], tmp_path,
                          input=(tmp_path / "x.tqz").read_bytes())).stdout)
    assert p["vectors"] == 2100 and p["chunks"] == 2
    # and decompress -c | head -c 10 ends quietly (the pipe closes under tq)
    py = " ".join(shlex.quote(a) for a in TQ)
    sh = f"{py} decompress x.tqz -c | head -c 10 > head.bin"
    r = subprocess.run(sh, shell=True, cwd=tmp_path, capture_output=True, timeout=120)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    assert (tmp_path / "head.bin").read_bytes() == b"\x93NUMPY\x01\x00" + b"v\x00"
    d = subprocess.Popen(TQ + ["decompress", "x.tqz", "-c"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(d.stdout.read(10)) == 10
    d.stdout.close()
    err = d.stderr.read()
    d.wait(timeout=60)
    assert err == b"", err
    assert d.returncode in (0, -signal.SIGPIPE)


def test_eval_table_and_json(xfile, tmp_path):
    r = ok(run(["eval", "x.npy", "-b", "2,3", "--queries", "20"], tmp_path))
    out = r.stdout.decode()
    for word in ("nmse", "optimum", "recall@1", "ratio"):
        assert word in out, out
    assert r.stderr == b""
    res = json.loads(ok(run(["eval", "x.npy", "-b", "2,4", "--queries", "20", "--json",
                             "--mode", "prod"], tmp_path)).stdout)
    assert [e["bits"] for e in res["results"]] == [2, 4]
    for e in res["results"]:
        for key in ("nmse", "optimum", "recall_at_1", "recall_10_at_10", "bytes_per_vector",
                    "ratio_vs_float32", "mode", "vectors", "dim"):
            assert key in e, key
        assert e["mode"] == "prod" and e["vectors"] == 200 and e["dim"] == 64
        assert 0 <= e["recall_at_1"] <= 1
    assert res["results"][0]["nmse"] > res["results"][1]["nmse"]

    ok(run(["compress", "x.npy", "-b", "3", "-o", "x.tqz"], tmp_path))
    res = json.loads(ok(run(["eval", "x.npy", "x.tqz", "--json", "--queries", "20"],
                            tmp_path)).stdout)
    (e,) = res["results"]
    assert e["bits"] == 3 and e["nmse"] < 0.05
    assert e["bytes_per_vector"] == pytest.approx((tmp_path / "x.tqz").stat().st_size / 200)
    # a container that does not belong to INPUT
    np.save(tmp_path / "other.npy", gaussian(10, 64))
    assert_error(run(["eval", "other.npy", "x.tqz"], tmp_path), "x.tqz", "200")
    assert_error(run(["eval", "x.npy", "nope.tqz"], tmp_path), "nope.tqz", "no such file")
    assert run(["eval", "x.npy", "-b", "0"], tmp_path).returncode == 2
    assert run(["eval", "x.npy", "-b", "a,b"], tmp_path).returncode == 2


def test_version_and_help(tmp_path):
    import tqcli

    r = ok(run(["--version"], tmp_path))
    assert r.stdout.decode().strip() == f"tq {tqcli.__version__}"
    assert ok(run(["-V"], tmp_path)).stdout == r.stdout
    for args in ([], ["--help"], ["compress", "--help"], ["decompress", "-h"],
                 ["inspect", "--help"], ["eval", "--help"]):
        r = run(args, tmp_path)
        assert r.returncode in ((0, 2) if not args else (0,)), args
        assert b"Usage" in r.stdout + r.stderr
    assert run(["frobnicate"], tmp_path).returncode == 2
    # no input: stdin when it is not a terminal (here /dev/null: an empty, refused input),
    # a usage error when it is one
    assert_error(run(["compress"], tmp_path), "-", "not a .npy")
    import pty

    leader, follower = pty.openpty()
    try:
        for cmd in ("compress", "decompress", "inspect"):
            r = run([cmd], tmp_path, stdin=follower)
            assert r.returncode == 2 and b"terminal" in r.stderr, (cmd, r.stderr)
    finally:
        os.close(leader)
        os.close(follower)
