"""The command line as zstd users expect it (issue 13): many files per command, FIFOs and
other streams as inputs and outputs, --select by the original shape, output names.

Most run `tq` in-process with click's runner (a subprocess costs ~0.4 s of start-up);
the socket case needs a real stdin and starts one process.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import threading
import time

import numpy as np
import pytest
from cliutil import load_npy_bytes, no_temp_files
from conftest import gaussian
from fuzzkit import TQ

import tqcli
from tqcli.arrayio import files, selection




def _arrays():
    return {"a": gaussian(40, 16, seed=1), "b": gaussian(24, 8, seed=2).reshape(2, 3, 4, 8),
            "c": gaussian(9, 32, np.float16, seed=3)}


# ------------------------------------------------------------------ many files


def test_many_inputs_each_on_its_own(tq, tmp_path):
    """compress *.npy then decompress *.tqz --output-dir back/: every file round-trips with
    the library's bytes; one unreadable input is one error line and exit 1, the others are
    still written; inspect prints a table (one line per file) or a JSON list."""
    xs = _arrays()
    for k, x in xs.items():
        np.save(tmp_path / f"{k}.npy", x)
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    code, _, err = tq("compress", "a.npy", "bad.npy", "b.npy", "c.npy", "-b", "3", "-q")
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("tq: bad.npy: not an array tq reads (tq compresses .npy,"), err
    for k, x in xs.items():
        assert (tmp_path / f"{k}.npy.tqz").read_bytes() == tqcli.compress(x, bits=3), k
    assert not (tmp_path / "bad.npy.tqz").exists()

    code, _, err = tq("decompress", "a.npy.tqz", "missing.tqz", "b.npy.tqz", "c.npy.tqz",
                      "--output-dir", "back/", "-k")
    assert code == 1 and err == ["tq: missing.tqz: no such file"], err
    assert sorted(os.listdir(tmp_path / "back")) == ["a.npy", "b.npy", "c.npy"]
    for k, x in xs.items():
        y = np.load(tmp_path / "back" / f"{k}.npy")
        assert y.shape == x.shape and y.dtype == x.dtype
        assert np.array_equal(y, tqcli.decompress(tqcli.compress(x, bits=3))), k
    no_temp_files(tmp_path / "back")

    names = ["a.npy.tqz", "b.npy.tqz", "c.npy.tqz"]
    code, out, err = tq("inspect", *names)
    lines = out.decode().splitlines()
    assert code == 0 and err == [] and len(lines) == 4, lines
    assert lines[0].split() == ["shape", "dtype", "mode", "bits", "B/vec", "size", "ratio",
                                "file"]
    assert [ln.split()[-1] for ln in lines[1:]] == names
    assert lines[2].split()[:4] == ["2x3x4x8", "float32", "mse", "3"]
    code, out, err = tq("inspect", "--json", names[0], "nope.tqz", names[2])
    assert code == 1 and err == ["tq: nope.tqz: no such file"]
    listed = json.loads(out)
    assert [r["file"] for r in listed] == [names[0], names[2]]
    assert {k: v for k, v in listed[0].items() if k != "file"} == tqcli.inspect(names[0])


def test_usage_rules_of_several_files(tq, tmp_path):
    np.save(tmp_path / "a.npy", gaussian(8, 8))
    np.save(tmp_path / "b.npy", gaussian(8, 8))
    for args in (["compress", "a.npy", "b.npy", "-o", "x.tqz"],
                 ["compress", "a.npy", "b.npy", "-c"],
                 ["compress", "a.npy", "-o", "x.tqz", "--output-dir", "d"],
                 ["compress", "a.npy", "-k", "--rm"],
                 ["compress", "-", "-"],
                 ["decompress", "a.tqz", "b.tqz", "-o", "x.npy"],
                 ["decompress", "x.tqz", "--select", "1", "--rows", "0:1"],
                 ["decompress", "x.tqz", "--select", "1,,2"],
                 ["decompress", "x.tqz", "--select", "a:b"]):
        code, _, err = tq(*args)
        assert code == 2, (args, err)
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "b.npy"]
    # -T 0 is all cores; -k is accepted (and is what happens anyway)
    code, _, err = tq("compress", "a.npy", "b.npy", "-T", "0", "-k", "-q")
    assert code == 0, err
    assert (tmp_path / "a.npy").exists() and (tmp_path / "b.npy.tqz").exists()
    # no file given: stdin (the runner's stdin is not a terminal)
    blob = (tmp_path / "a.npy.tqz").read_bytes()
    code, out, err = tq("decompress", input=blob)
    assert code == 0 and np.array_equal(load_npy_bytes(out), tqcli.decompress(blob)), err


def test_output_names(tq, tmp_path):
    """key0.tqz -> key0.npy; an -o name of another format is refused, nothing written."""
    assert files.decompressed_name("key0.tqz") == "key0.npy"
    assert files.decompressed_name("dir/x.npy.tqz", "out") == os.path.join("out", "x.npy")
    assert files.decompressed_name("x.h5.tqz") == "x.h5"  # honoured: HDF5 output
    assert files.compressed_name("d/x.npy", "o") == os.path.join("o", "x.npy.tqz")
    x = gaussian(16, 8)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "key0.tqz").write_bytes(tqcli.compress(x))
    assert tq("decompress", "key0.tqz")[0] == 0
    assert np.array_equal(np.load(tmp_path / "key0.npy"), tqcli.decompress(tqcli.compress(x)))
    for args, name, word in ((["decompress", "key0.tqz", "-o", "back.npz"], "back.npz", "npz"),
                             (["decompress", "key0.tqz", "-o", "y.tqz"], "y.tqz", "tqz"),
                             (["compress", "x.npy", "-o", "out.npy"], "out.npy", ".tqz"),
                             (["compress", "x.npy", "-o", "out.npy", "-f"], "out.npy", ".tqz"),
                             (["compress", "x.npy", "-o", "out.h5"], "out.h5", "HDF5")):
        code, _, err = tq(*args)
        assert code == 1 and len(err) == 1 and err[0].startswith(f"tq: {name}: "), err
        assert word.lower() in err[0].lower(), err
        assert not (tmp_path / name).exists()
    no_temp_files(tmp_path)


def test_small_reports(tq, tmp_path):
    """inspect says the float32 ratio once; the -v summary of compress has mode and bits."""
    np.save(tmp_path / "x.npy", gaussian(64, 16))
    code, _, err = tq("compress", "x.npy", "-v", "-b", "2", "--mode", "prod")
    assert code == 0 and len(err) == 1 and "prod 2 bits -> x.npy.tqz" in err[0], err
    ratio = [ln for ln in tq("inspect", "x.npy.tqz")[1].decode().splitlines()
             if ln.startswith("ratio")]
    assert len(ratio) == 1 and ratio[0].count("vs") == 1, ratio
    np.save(tmp_path / "h.npy", gaussian(64, 16, np.float16))
    tq("compress", "h.npy", "-q")
    ratio = [ln for ln in tq("inspect", "h.npy.tqz")[1].decode().splitlines()
             if ln.startswith("ratio")]
    assert "vs float32" in ratio[0] and "vs float16" in ratio[0], ratio


# ------------------------------------------------------------------ streams


def _feed_fifo(path, data: bytes, piece: int | None = None) -> threading.Thread:
    """A writer thread that opens the FIFO (blocking until tq opens it) and writes data,
    in pieces of `piece` bytes with pauses if given (a reader's reads then come short)."""
    def write():
        with open(path, "wb", buffering=0) as f:
            for a in range(0, len(data), piece or len(data) or 1):
                f.write(data[a:a + (piece or len(data))])
                if piece and a < 256:
                    time.sleep(0.002)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    return t


def _drain_fifo(path, into: list) -> threading.Thread:
    def read():
        with open(path, "rb") as f:
            into.append(f.read())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifos_as_inputs_and_outputs(tq, tmp_path):
    """A named pipe is read as the stream it is (never by seek or mmap), for .npy input,
    .tqz input and inspect, and written in place as an output: the same bytes as files."""
    x = gaussian(300, 24, seed=4)
    np.save(tmp_path / "x.npy", x)
    npy = (tmp_path / "x.npy").read_bytes()
    blob = tqcli.compress(x, bits=3, chunk_rows=64)
    (tmp_path / "x.tqz").write_bytes(blob)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    t = _feed_fifo(fifo, npy)
    code, _, err = tq("compress", "pipe", "-o", "from_fifo.tqz", "-b", "3", "--chunk-rows", "64")
    t.join(10)
    assert code == 0, err
    assert (tmp_path / "from_fifo.tqz").read_bytes() == blob
    t = _feed_fifo(fifo, npy, piece=7)  # the .npy header arriving a few bytes at a time
    code, _, err = tq("compress", "pipe", "-o", "slow.tqz", "-b", "3", "--chunk-rows", "64")
    t.join(10)
    assert code == 0 and (tmp_path / "slow.tqz").read_bytes() == blob, err

    t = _feed_fifo(fifo, blob)
    code, _, err = tq("decompress", "pipe", "-o", "y.npy", "--select", "5:9")
    t.join(10)
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "y.npy"), tqcli.decompress(blob)[5:9])

    t = _feed_fifo(fifo, blob)
    code, out, err = tq("inspect", "pipe", "--json")
    t.join(10)
    assert code == 0 and json.loads(out) == tqcli.inspect(blob), err

    got: list[bytes] = []
    t = _drain_fifo(fifo, got)
    code, _, err = tq("compress", "x.npy", "-o", "pipe", "-b", "3", "--chunk-rows", "64")
    t.join(10)
    assert code == 0 and got == [blob], err  # written in place: no -f, no temp file
    got = []
    t = _drain_fifo(fifo, got)
    code, _, err = tq("decompress", "x.tqz", "-o", "pipe")
    t.join(10)
    assert code == 0 and np.array_equal(load_npy_bytes(got[0]), tqcli.decompress(blob)), err
    # a FIFO that ends short is a truncated input, not a bad magic or a size of 0
    t = _feed_fifo(fifo, blob[:len(blob) // 2])
    code, _, err = tq("decompress", "pipe", "-o", "z.npy")
    t.join(10)
    assert code == 1 and len(err) == 1 and "truncated" in err[0], err
    assert not (tmp_path / "z.npy").exists()
    no_temp_files(tmp_path)


def test_socket_as_stdin(tmp_path):
    """stdin a socket (ssh, nc): read as a stream, the output the same as from a file."""
    x = gaussian(100, 16, seed=6)
    blob = tqcli.compress(x, bits=4)
    mine, theirs = socket.socketpair()

    def send():
        mine.sendall(blob)
        mine.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=send, daemon=True)
    t.start()
    try:
        r = subprocess.run(TQ + ["decompress", "-c"], stdin=theirs, capture_output=True,
                           cwd=tmp_path, timeout=120)
    finally:
        t.join(10)
        mine.close()
        theirs.close()
    assert r.returncode == 0, r.stderr
    assert np.array_equal(load_npy_bytes(r.stdout), tqcli.decompress(blob))


# ------------------------------------------------------------------ --select


class OneWay(io.BytesIO):
    """A stream that cannot seek, as a pipe."""

    def seekable(self):
        return False


class CountingReader(io.BytesIO):
    """A seekable stream that counts the bytes read from it."""

    read_bytes = 0

    def read(self, n=-1):
        data = super().read(n)
        self.read_bytes += len(data)
        return data

    def readinto(self, buf):
        k = super().readinto(buf)
        self.read_bytes += k
        return k


def test_select_is_numpy_indexing_of_the_original_shape():
    kv = gaussian(4 * 2 * 3 * 10, 8, seed=7).reshape(4, 2, 3, 10, 8)
    blob = tqcli.compress(kv, bits=3, chunk_rows=16)
    full = tqcli.decompress(blob)
    cases = {"3,0": (3, 0), "2:4": (slice(2, 4),), "-1": (-1,), "::2,1,1:3": (
        slice(None, None, 2), 1, slice(1, 3)), "1,0,2,9": (1, 0, 2, 9),
        ":,:,::2,3::3": (slice(None), slice(None), slice(None, None, 2), slice(3, None, 3)),
        "1:1": (slice(1, 1),)}
    for text, sel in cases.items():
        want = full[sel]
        for select in (text, sel):
            got = tqcli.decompress(blob, select=select)
            assert got.shape == want.shape and np.array_equal(got, want), text
        with tqcli.open(OneWay(blob)) as f:  # a stream: one pass
            assert not f.seekable
            assert np.array_equal(f.read(select=text), want), text
    for bad in ("4", "-5", "0,2", "2:5", "-5:", "::0", "1,0,0,0,0", (1.5,), (slice(None, None, -1),)):
        with pytest.raises((ValueError, TypeError)):
            tqcli.decompress(blob, select=bad)
    assert selection.runs(selection.normalize("1:3", kv.shape), kv.shape)[0].tolist() == [60]


def test_select_reads_only_the_chunks_that_hold_it():
    kv = gaussian(8 * 2 * 64, 32, seed=8).reshape(8, 2, 64, 32)  # a chunk is half a layer
    blob = tqcli.compress(kv, bits=4, chunk_rows=64)
    chunk_bytes = (len(blob) - tqcli.read_header(blob).header_size) / (8 * 2)
    everything = CountingReader(blob)
    tqcli.decompress(everything)
    for select, chunks in (("3,0", 1), ("5", 2), ("2:4", 4)):
        counted = CountingReader(blob)
        y = tqcli.decompress(counted, select=select)
        assert np.array_equal(y, tqcli.decompress(blob)[selection.parse_select(select)])
        assert counted.read_bytes < everything.read_bytes * (chunks + 1) / 16, select
        assert counted.read_bytes >= chunks * chunk_bytes * 0.9, select


def test_select_and_rows_on_the_command_line(tq, tmp_path):
    kv = gaussian(4 * 2 * 3 * 10, 8, seed=9).reshape(4, 2, 3, 10, 8)
    blob = tqcli.compress(kv, bits=3, chunk_rows=16)
    (tmp_path / "kv.tqz").write_bytes(blob)
    full = tqcli.decompress(blob)
    code, out, err = tq("decompress", "kv.tqz", "-c", "--select", "3,0")
    assert code == 0, err
    assert np.array_equal(load_npy_bytes(out), full[3, 0])
    code, _, err = tq("decompress", "kv.tqz", "-o", "l.h5", "--select", "1:3,1")
    assert code == 0, err
    import h5py

    with h5py.File(tmp_path / "l.h5", "r") as f:
        assert np.array_equal(f["data"][()], full[1:3, 1])
    for args, word in ((["--select", "4"], "out of range"), (["--select", "0,0,0,0,0"], "axes"),
                       (["--rows", "200:300"], "out of range"), (["--rows", ":241"], "241"),
                       (["--rows", "-241:"], "out of range")):
        code, _, err = tq("decompress", "kv.tqz", "-o", "bad.npy", *args)
        assert code == 1 and len(err) == 1 and err[0].startswith("tq: kv.tqz: "), (args, err)
        assert word in err[0], (args, err)
    assert not (tmp_path / "bad.npy").exists()
    code, out, _ = tq("decompress", "kv.tqz", "-c", "--rows", "-240:")
    assert code == 0 and load_npy_bytes(out).shape == (240, 8)

