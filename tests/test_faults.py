"""Faults around a run of tq: a full disk, an unwritable folder, SIGKILL and SIGINT in the
middle of a write, a reader that stops early, --rm after a failure, and HDF5 inputs that are
compressed, hostile or larger than memory.

The promise under test: after any failure nothing appears under the output's final name,
the temporary file is gone (except after SIGKILL, which nobody can clean up after: then a
hidden `.NAME.*.tmp` may remain, and only that), the input is never deleted unless the
output is complete, and the error is one line `tq: FILE: reason` with exit status 1 (130
when interrupted).

A full disk is a real one where the kernel allows it (a 128 KiB tmpfs; CI runs as root),
and is otherwise simulated by an injected writer fault; the test says which it used and
never skips.  Injected faults (tests/fuzzkit.py, _apply_fault) also cover what a real disk
cannot produce on demand: EIO, a failed rename, Ctrl-C at an exact byte.

Already in test_cli.py and not repeated: SIGINT/SIGTERM during compress, output exists
without -f, a missing output folder, stdin or stdout a terminal, `decompress -c | head`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import tqcli
from fuzzkit import COUNTS, TQ, CliPool, check_cli_failure, wait_for


@pytest.fixture(scope="module")
def pool():
    p = CliPool(2)
    yield p
    p.close()


def gaussian(n: int, d: int, dtype=np.float32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


def npy_header(shape, dtype="<f4") -> bytes:
    from tqcli.arrayio import npy_header_bytes

    return npy_header_bytes(shape, np.dtype(dtype))


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def full_disk(tmp_path):
    """A 128 KiB tmpfs when mounting is allowed, else None (the tests then inject ENOSPC)."""
    where = tmp_path / "full"
    if _mount_tmpfs(where, "size=128k,mode=1777"):
        yield where
        _umount(where)
    else:
        where.rmdir()
        yield None


def _files(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# ---------------------------------------------------------------------------- disk full


def test_disk_full(pool, tmp_path, full_disk):
    """Every writer tq has -- .tqz, .npy, HDF5, stdout -- on a full disk: one line naming
    the output, exit 1, no temporary file, the input (even with --rm) untouched."""
    x = gaussian(4096, 64)  # 1 MiB; its 8-bit container is 278 KiB: neither fits 128 KiB
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.tqz").write_bytes(tqcli.compress(x, bits=8))
    before = {n: (tmp_path / n).read_bytes() for n in ("x.npy", "x.tqz")}
    if full_disk is not None:
        mechanism = "a 128 KiB tmpfs"
        out = full_disk.relative_to(tmp_path)
        fault = None
    else:
        mechanism = "an injected ENOSPC after 64 KiB (mounting a tmpfs is not allowed here)"
        out = Path(".")
        fault = {"kind": "write_error", "errno": "ENOSPC", "after": 65536}
    print(f"disk full simulated with {mechanism}")
    cases = [["compress", "x.npy", "-b", "8", "-o", f"{out}/x.tqz"],
             ["compress", "x.npy", "-b", "8", "-o", f"{out}/x.tqz", "--rm"],
             ["compress", "x.npy", "-b", "8", "-o", f"{out}/x.tqz", "--mode", "prod"],
             ["decompress", "x.tqz", "-o", f"{out}/y.npy"],
             ["decompress", "x.tqz", "-o", f"{out}/y.npy", "--rm"],
             ["decompress", "x.tqz", "-o", f"{out}/y.npy", "--dtype", "float64"]]
    if full_disk is not None:  # HDF5 writes through its own library: only a real disk
        cases += [["decompress", "x.tqz", "-o", f"{out}/y.h5"],
                  ["decompress", "x.tqz", "-o", f"{out}/y.h5", "--rm"],
                  ["decompress", "x.tqz", "-o", f"{out}/kv.hdf5", "--dataset", "a/b"]]
    bad = []
    for args in cases:
        r = pool.run(args, tmp_path, fault=fault)
        name = args[args.index("-o") + 1]
        problems = check_cli_failure(r, name, tmp_path, list(before) + ["full"],
                                     f"disk full: {' '.join(args)}", pool.base_rss,
                                     corrupt=False)
        if r.lines and "no space left on device" not in r.lines[0].lower():
            problems.append(r.lines[0])
        if full_disk is not None and os.listdir(full_disk):
            problems.append(f"left on the full disk: {os.listdir(full_disk)}")
        if problems:
            bad.append((args, problems))
    for n, data in before.items():
        assert (tmp_path / n).read_bytes() == data, n
    # stdout redirected to a file on the full disk
    if full_disk is not None:
        with open(full_disk / "stdout.tqz", "wb") as f:
            p = subprocess.run(TQ + ["compress", "x.npy", "-b", "8", "-c"], cwd=tmp_path,
                               stdout=f, stderr=subprocess.PIPE, timeout=120)
        os.remove(full_disk / "stdout.tqz")
    else:
        p = pool.run(["compress", "x.npy", "-b", "8", "-c"], tmp_path, fault=fault)
    assert p.returncode == 1 and p.stderr.decode().splitlines() == [
        "tq: -: write failed (No space left on device)"], p.stderr
    assert not bad, bad


@pytest.mark.parametrize("after", [0, 1000, 200_000])
def test_injected_write_errors(pool, tmp_path, after):
    """A write that fails at the first byte, inside the header, or chunks later (ENOSPC and
    EIO), in compress and decompress, with and without --rm."""
    x = gaussian(3000, 96, seed=1)  # several chunks at chunk_rows 2048 -> a few writes
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.tqz").write_bytes(tqcli.compress(x, bits=8))
    keep = _files(tmp_path)
    snapshot = {n: (tmp_path / n).read_bytes() for n in keep}
    bad = []
    for errno_name, words in (("ENOSPC", "no space left"), ("EIO", "input/output error")):
        fault = {"kind": "write_error", "errno": errno_name, "after": after}
        for args in (["compress", "x.npy", "-o", "o.tqz", "-b", "8", "--rm"],
                     ["compress", "x.npy", "-o", "o.tqz", "-b", "8", "--chunk-rows", "64"],
                     ["decompress", "x.tqz", "-o", "o.npy", "--rm"],
                     ["decompress", "x.tqz", "-c"]):
            r = pool.run(args, tmp_path, fault=fault)
            name = "-" if "-c" in args else args[args.index("-o") + 1]
            problems = check_cli_failure(r, name, tmp_path, keep, f"{errno_name}: {args}",
                                         pool.base_rss, corrupt=False,
                                         stdout_empty="-c" not in args)
            if r.lines and words not in r.lines[0].lower():
                problems.append(r.lines[0])
            if problems:
                bad.append((errno_name, args, problems))
    assert not bad, bad
    for n, data in snapshot.items():
        assert (tmp_path / n).read_bytes() == data, n


def test_interrupt_at_an_exact_byte_and_failed_publication(pool, tmp_path):
    """Ctrl-C while a chunk is being written (injected at exact byte counts), and an output
    that cannot be renamed into place: --rm keeps the input, nothing else remains."""
    x = gaussian(3000, 96, seed=2)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.tqz").write_bytes(tqcli.compress(x, bits=4))
    keep = _files(tmp_path)
    bad = []
    for after in (0, 5000, 100_000):
        for args in (["compress", "x.npy", "-o", "o.tqz", "--rm"],
                     ["decompress", "x.tqz", "-o", "o.npy", "--rm"]):
            r = pool.run(args, tmp_path, fault={"kind": "interrupt", "after": after})
            COUNTS.tried += 1
            left = sorted(set(os.listdir(tmp_path)) - set(keep))
            if r.returncode != 130 or r.lines != ["tq: interrupted"] or left:
                COUNTS.note("partial" if left else "crashes", f"interrupt {args}: {left}")
                bad.append((after, args, r.returncode, r.stderr, left))
    for errno_name in ("EXDEV", "EACCES"):
        for args in (["compress", "x.npy", "-o", "o.tqz", "--rm"],
                     ["decompress", "x.tqz", "-o", "o.h5", "--rm"]):
            r = pool.run(args, tmp_path, fault={"kind": "rename_error", "errno": errno_name})
            name = args[args.index("-o") + 1]
            problems = check_cli_failure(r, name, tmp_path, keep, f"rename {args}",
                                         pool.base_rss, corrupt=False)
            if r.lines and "rename" not in r.lines[0]:
                problems.append(r.lines[0])
            if problems:
                bad.append((errno_name, args, problems))
    assert not bad, bad
    assert _files(tmp_path) == keep


def test_unwritable_output_folder(pool, tmp_path):
    """A read-only file system (root can write anywhere else) refuses the temporary file:
    one line, nothing created.  Without mount rights, root gets an injected EACCES."""
    x = gaussian(50, 16, seed=3)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.tqz").write_bytes(tqcli.compress(x))
    ro = tmp_path / "ro"
    fault = None
    if _mount_tmpfs(ro, "ro,size=64k"):
        mechanism, words = "a read-only tmpfs", "read-only file system"
    elif os.geteuid() != 0:
        ro.mkdir(exist_ok=True)
        ro.chmod(0o500)
        mechanism, words = "a folder without write permission", "permission denied"
    else:
        ro.mkdir(exist_ok=True)
        mechanism, words = "an injected EACCES", "permission denied"
        fault = {"kind": "mkstemp_error", "errno": "EACCES"}
    print(f"unwritable folder: {mechanism}")
    try:
        for args in (["compress", "x.npy", "-o", "ro/x.tqz", "--rm"],
                     ["decompress", "x.tqz", "-o", "ro/y.npy"],
                     ["decompress", "x.tqz", "-o", "ro/y.h5", "--rm"]):
            r = pool.run(args, tmp_path, fault=fault)
            problems = check_cli_failure(r, args[args.index("-o") + 1], tmp_path,
                                         ["x.npy", "x.tqz", "ro"], f"unwritable {args}",
                                         pool.base_rss, corrupt=False)
            assert not problems, problems
            assert words in r.lines[0].lower(), r.lines
            assert os.listdir(ro) == []
    finally:
        if fault is None and mechanism.startswith("a read-only"):
            _umount(ro)
        else:
            ro.chmod(0o700)


# ---------------------------------------------------------------------------- signals


def _temps(folder: Path) -> list[str]:
    return [f for f in os.listdir(folder) if f.endswith(".tmp")]


def _start_stalled(args, cwd: Path, head: bytes) -> subprocess.Popen:
    """tq with `head` on a stdin pipe that stays open: the process is guaranteed to be in
    the middle of its work (its temporary output exists, its input is not finished)."""
    p = subprocess.Popen(TQ + args, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdin.write(head)
    p.stdin.flush()
    assert wait_for(lambda: _temps(cwd)), "tq never started writing"
    time.sleep(0.3)
    assert p.poll() is None
    return p


def _big_container_head() -> bytes:
    """The first chunks of a large container (the rest never comes)."""
    x = gaussian(8192, 64, seed=4)
    blob = tqcli.compress(np.concatenate([x] * 8), bits=4, chunk_rows=1024)
    return blob[:len(blob) // 4]


@pytest.mark.parametrize("command", ["compress", "decompress npy", "decompress h5"])
def test_sigkill_leaves_nothing_under_the_final_name(tmp_path, command):
    if command == "compress":
        args, out = ["compress", "-", "-o", "out.tqz"], "out.tqz"
        head = npy_header((100_000, 64)) + gaussian(5000, 64).tobytes()
    else:
        out = "out.npy" if command.endswith("npy") else "out.h5"
        args, head = ["decompress", "-", "-o", out], _big_container_head()
    p = _start_stalled(args, tmp_path, head)
    p.kill()
    p.communicate(timeout=60)
    COUNTS.tried += 1
    left = _files(tmp_path)
    if out in left:
        COUNTS.note("partial", f"SIGKILL {command}: {left}")
    assert p.returncode == -signal.SIGKILL
    assert out not in left
    # what may remain is the hidden temporary file, and only that
    assert len(left) == 1 and left[0].startswith(f".{out}.") and left[0].endswith(".tmp"), left
    # it does not get in the way of the next run
    if command == "compress":
        data = npy_header((10, 64)) + gaussian(10, 64).tobytes()
    else:
        data = tqcli.compress(gaussian(10, 64))
    r = subprocess.run(TQ + args, cwd=tmp_path, input=data, capture_output=True, timeout=120)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    assert sorted(_files(tmp_path)) == sorted(left + [out])


def test_sigkill_with_rm_never_loses_the_input(tmp_path):
    """However the kill falls, the input exists unless a complete output does."""
    x = gaussian(200_000, 128, seed=5)  # 100 MB: a few hundred milliseconds of work
    np.save(tmp_path / "x.npy", x)
    p = subprocess.Popen(TQ + ["compress", "x.npy", "--rm", "-o", "x.tqz"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # kill it while it writes: its temporary output exists and it has not exited (a kill
    # after the process ended by itself would test nothing)
    assert wait_for(lambda: _temps(tmp_path) or p.poll() is not None)
    assert p.poll() is None, ("tq ended before it could be killed", p.communicate())
    p.kill()
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL, p.returncode  # the kill, not an exit, ended it
    COUNTS.tried += 1
    files = _files(tmp_path)
    if "x.npy" not in files:
        assert "x.tqz" in files and tqcli.read_header(str(tmp_path / "x.tqz")).n_vectors == \
            200_000
        tqcli.decompress(str(tmp_path / "x.tqz"), rows=slice(0, 8))
    else:
        np.testing.assert_array_equal(np.load(tmp_path / "x.npy", mmap_mode="r")[-5:], x[-5:])


@pytest.mark.parametrize("out", ["out.npy", "out.h5"])
def test_sigint_during_decompress(tmp_path, out):
    """(Compress is covered in test_cli.py.)  Decompress, with its writer thread and HDF5
    output, interrupted mid-write: exit 130, `tq: interrupted`, nothing left at all."""
    p = _start_stalled(["decompress", "-", "-o", out], tmp_path, _big_container_head())
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    COUNTS.tried += 1
    if _files(tmp_path):
        COUNTS.note("partial", f"SIGINT decompress {out}: {_files(tmp_path)}")
    assert p.returncode == 130 and err.decode().splitlines() == ["tq: interrupted"], err
    assert _files(tmp_path) == []


# ---------------------------------------------------------------------------- closed stdout


@pytest.mark.parametrize("args, stdin", [
    (["compress", "x.npy", "-c", "-b", "8"], None),
    (["compress", "-", "-c"], "x.npy"),
    (["decompress", "-", "-c", "--dtype", "float64"], "x.tqz"),
    (["decompress", "x.tqz", "-c", "--rows", "100:"], None),
])
def test_reader_that_stops_early_ends_tq_quietly(tmp_path, args, stdin):
    """`tq ... -c | head -c 10`: no traceback, no error line, no lingering process."""
    x = gaussian(4000, 256, seed=6)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.tqz").write_bytes(tqcli.compress(x, bits=4))
    src = open(tmp_path / stdin, "rb") if stdin else subprocess.DEVNULL
    try:
        p = subprocess.Popen(TQ + args, cwd=tmp_path, stdin=src, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        head = p.stdout.read(10)
        p.stdout.close()
        err = p.stderr.read()
        p.wait(timeout=60)
    finally:
        if stdin:
            src.close()
    COUNTS.tried += 1
    if b"Traceback" in err or p.returncode not in (0, -signal.SIGPIPE):
        COUNTS.note("crashes", f"closed stdout {args}: {p.returncode} {err[-200:]!r}")
    assert len(head) == 10
    assert err == b"", err
    assert p.returncode in (0, -signal.SIGPIPE), p.returncode
    assert _files(tmp_path) == ["x.npy", "x.tqz"]


# ---------------------------------------------------------------------------- HDF5


def test_hdf5_chunked_and_compressed_datasets_work(pool, tmp_path):
    """gzip, shuffle, fletcher32, lzf, chunks that do not line up with tq's blocks, ranks
    2 and 3, big-endian and float16 storage: the same container as the plain array."""
    import h5py

    rng = np.random.default_rng(7)
    arrays = {
        "gzip": (rng.standard_normal((1000, 48)).astype(np.float32),
                 dict(compression="gzip", compression_opts=9, chunks=(37, 48))),
        "shuffle_fletcher": (rng.standard_normal((700, 20)).astype(np.float32),
                             dict(compression="gzip", shuffle=True, fletcher32=True,
                                  chunks=(64, 7))),
        "lzf_rank3": (rng.standard_normal((4, 300, 16)).astype(np.float64),
                      dict(compression="lzf", chunks=(1, 29, 16))),
        "big_endian": (rng.standard_normal((200, 32)).astype(">f8"),
                       dict(compression="gzip", chunks=(50, 32))),
        "float16": (rng.standard_normal((300, 24)).astype(np.float16),
                    dict(compression="gzip", chunks=(300, 1))),
    }
    with h5py.File(tmp_path / "c.h5", "w") as f:
        for name, (a, opts) in arrays.items():
            f.create_dataset(name, data=a, **opts)
    for name, (a, _) in arrays.items():
        COUNTS.tried += 1
        r = pool.run(["compress", f"c.h5:/{name}", "-o", f"{name}.tqz", "-b", "3"], tmp_path)
        assert r.returncode == 0 and r.stderr == b"", (name, r.stderr)
        assert (tmp_path / f"{name}.tqz").read_bytes() == tqcli.compress(a, bits=3), name
    # a NaN deep inside a compressed chunk is found and its row named
    bad = arrays["gzip"][0].copy()
    bad[777, 5] = np.nan
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f.create_dataset("x", data=bad, compression="gzip", chunks=(37, 48))
    r = pool.run(["compress", "nan.h5", "-o", "nan.tqz"], tmp_path)
    assert not check_cli_failure(r, "nan.h5", tmp_path, os.listdir(tmp_path), "h5 nan",
                                 pool.base_rss, corrupt=False)
    assert "row 777" in r.lines[0]


def test_hdf5_hostile_datasets_are_refused(pool, tmp_path):
    """Wrong dtypes, shapes without vectors, and datasets whose data lives in another file
    (external links, external storage, virtual datasets: tq reads only the file it is
    given): one line each, nothing written."""
    import h5py

    secret = np.arange(64, dtype=np.float32).reshape(8, 8) + 1
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["secret"] = secret
    secret.tofile(tmp_path / "raw.bin")
    with h5py.File(tmp_path / "h.h5", "w") as f:
        f["compound"] = np.zeros(4, dtype=[("a", "<f4"), ("b", "<f4")])
        f["vlen_str"] = np.array(["ab", "cd"], dtype=h5py.string_dtype())
        f["fixed_bytes"] = np.array([b"abcd", b"efgh"])
        f["enum"] = np.array([0, 1], dtype=h5py.enum_dtype({"a": 0, "b": 1}, basetype="i1"))
        f.create_dataset("subarray", shape=(4,), dtype=np.dtype(("f4", (3,))))
        f["opaque"] = np.void(b"12345678")
        f["complex"] = np.zeros((3, 4), np.complex64)
        f["bool"] = np.zeros((3, 4), bool)
        f.create_dataset("null", data=h5py.Empty("f4"))
        f["scalar"] = np.float32(1.5)
        f["d1"] = np.zeros((5, 1), np.float32)
        f["ext_link"] = h5py.ExternalLink("other.h5", "/secret")
        f.create_dataset("ext_storage", shape=(8, 8), dtype="f4",
                         external=[("raw.bin", 0, 256)])
        layout = h5py.VirtualLayout(shape=(8, 8), dtype="f4")
        layout[:] = h5py.VirtualSource("other.h5", "secret", shape=(8, 8))
        f.create_virtual_dataset("virtual", layout)
        f["dangling"] = h5py.SoftLink("/nowhere")
        f.create_group("grp")
        f["grp/ok"] = np.ones((2, 4), np.float32)
    cases = {"compound": "structured", "vlen_str": "dtype", "fixed_bytes": "dtype",
             "enum": "int8", "subarray": "structured", "opaque": "dtype", "complex": "complex",
             "bool": "bool", "null": "empty", "scalar": "0-dimensional", "d1": "dimension",
             "ext_link": "another file", "ext_storage": "other files",
             "virtual": "other files", "dangling": "no dataset", "missing": "no dataset",
             "grp/ok/deeper": "no dataset"}  # grp: a group is a collection (issue 12)
    keep = _files(tmp_path)
    bad = []
    for ds, word in cases.items():
        for args in (["compress", f"h.h5:/{ds}", "-o", "out.tqz"],
                     ["compress", "h.h5", "--dataset", ds, "-c"]):
            r = pool.run(args, tmp_path)
            problems = check_cli_failure(r, "h.h5", tmp_path, keep, f"h5 {ds}", pool.base_rss,
                                         corrupt=False)
            if r.lines and word not in r.lines[0]:
                problems.append(r.lines[0])
            if problems:
                bad.append((ds, args, problems))
    assert not bad, bad
    assert tqcli.decompress(tqcli.compress(np.ones((2, 4), np.float32))).shape == (2, 4)
    r = pool.run(["compress", "h.h5:/grp/ok", "-o", "ok.tqz"], tmp_path)
    assert r.returncode == 0, r.stderr  # a real dataset in the same file still works
    # the whole file as a collection: refused at its first link, nothing written
    r = pool.run(["compress", "h.h5", "-o", "all.tqz"], tmp_path)
    assert not check_cli_failure(r, "h.h5", tmp_path, keep + ["ok.tqz"], "h5 whole file",
                                 pool.base_rss, corrupt=False)
    assert "link" in r.lines[0], r.lines
    r = pool.run(["compress", "h.h5:/grp", "-o", "grp.tqz"], tmp_path)  # a group: collection
    assert r.returncode == 0, r.stderr
    with tqcli.open_collection(str(tmp_path / "grp.tqz")) as c:
        assert c.names == ["ok"]


def test_hdf5_dataset_larger_than_memory_budget_is_streamed(pool, tmp_path):
    """A 256 MiB dataset, compressed and decompressed with less than 100 MB of memory beyond
    what the same commands need for a tiny dataset: tq never holds the array.

    (Peak RSS comes from os.wait4 on forked children of the small CLI helper process: a
    process started from pytest itself would report pytest's own size as its peak.)"""
    import h5py

    n, d, step = 262_144, 256, 16_384
    rng = np.random.default_rng(8)
    with h5py.File(tmp_path / "big.h5", "w") as f:
        ds = f.create_dataset("x", shape=(n, d), dtype="f4")
        for a in range(0, n, step):
            ds[a:a + step] = rng.standard_normal((step, d), dtype=np.float32)
        f["small"] = rng.standard_normal((64, d), dtype=np.float32)
    assert (tmp_path / "big.h5").stat().st_size > 256 * 2**20
    peaks = {}
    for what, args in (("compress tiny", ["compress", "big.h5:/small", "-o", "small.tqz"]),
                       ("compress big", ["compress", "big.h5:/x", "-o", "big.tqz", "-b", "2"]),
                       ("decompress tiny", ["decompress", "small.tqz", "-o", "small_out.h5"]),
                       ("decompress big", ["decompress", "big.tqz", "-o", "big_out.h5"])):
        r = pool.run(args, tmp_path)
        assert r.returncode == 0 and r.stderr == b"", (what, r.stderr)
        peaks[what] = r.maxrss
        COUNTS.tried += 1
    print("peak RSS: " + ", ".join(f"{k} {v / 2**20:.0f} MB" for k, v in peaks.items()))
    for cmd in ("compress", "decompress"):
        extra = peaks[f"{cmd} big"] - peaks[f"{cmd} tiny"]
        if extra >= 100 * 2**20:
            COUNTS.note("over_budget", f"256 MiB HDF5 {cmd}: {extra / 2**20:.0f} MB extra")
        assert extra < 100 * 2**20, (cmd, f"{extra / 2**20:.0f} MB beyond the tiny run")
    assert tqcli.read_header(str(tmp_path / "big.tqz")).n_vectors == n
    with h5py.File(tmp_path / "big_out.h5", "r") as f:
        assert f["data"].shape == (n, d)
