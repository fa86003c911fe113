"""The `tq` command line, run as a subprocess: terminals, verbosity and every refusal.

Terminals (via a pty), progress/verbosity, and every refusal the issue lists: each must be
ONE line `tq: FILE: reason` on stderr, exit 1 (2 for usage), leave no output or temporary
file behind and never touch the input.  Helpers are in cliutil.py.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from cliutil import (assert_error, hand_npy, listing, load_npy_bytes, no_temp_files, npy_bytes,
                     ok, run, run_many)
from conftest import gaussian, nmse
from fuzzkit import TQ, wait_for

# ---------------------------------------------------------------------------- terminals


def _run_with_tty(args, cwd, which: str, input: bytes | None = None):
    """Run tq with stdout or stdin on a pseudo-terminal; returns (result, tty output)."""
    master, slave = os.openpty()
    try:
        kw = {"stdout": slave} if which == "stdout" else {"stdin": slave}
        if which == "stdout":
            kw["stdin"] = subprocess.PIPE if input is not None else subprocess.DEVNULL
        else:
            kw["stdout"] = subprocess.PIPE
        p = subprocess.Popen(TQ + args, cwd=cwd, stderr=subprocess.PIPE, **kw)
        out, err = p.communicate(input=input, timeout=120)
        seen = b""
        while select.select([master], [], [], 0.05)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        return subprocess.CompletedProcess(p.args, p.returncode, out or b"", err), seen
    finally:
        os.close(slave)
        os.close(master)


def test_binary_never_goes_to_a_terminal(xfile, tmp_path):
    ok(run(["compress", "x.npy", "-o", "x.tqz"], tmp_path))
    for args, inp in ((["compress", "x.npy", "-c"], None),
                      (["compress", "x.npy", "-o", "-"], None),
                      (["compress", "-"], (tmp_path / "x.npy").read_bytes()),
                      (["decompress", "x.tqz", "-c"], None),
                      (["decompress", "-"], (tmp_path / "x.tqz").read_bytes())):
        r, seen = _run_with_tty(args, tmp_path, "stdout", inp)
        assert_error(r, "-", "terminal")
        assert b"TQZ" not in seen and b"NUMPY" not in seen
    for args in (["compress", "-", "-o", "s.tqz"], ["decompress", "-", "-o", "s.npy"],
                 ["inspect", "-"]):
        r, _ = _run_with_tty(args, tmp_path, "stdin")
        assert_error(r, "-", "terminal")
    assert listing(tmp_path) == ["x.npy", "x.tqz"]
    # inspect's text report to a terminal is fine
    r, seen = _run_with_tty(["inspect", "x.tqz"], tmp_path, "stdout")
    assert r.returncode == 0 and b"vectors" in seen


def test_quiet_by_default_and_verbose_summary(xfile, tmp_path):
    r = ok(run(["compress", "x.npy", "-o", "a.tqz"], tmp_path))
    assert r.stderr == b""  # stderr is not a terminal: no progress bar, no summary
    r = ok(run(["compress", "x.npy", "-o", "b.tqz", "-v"], tmp_path))
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and "x.npy" in lines[0] and "b.tqz" in lines[0]
    assert "200 x 64" in lines[0]
    r = ok(run(["decompress", "a.tqz", "-o", "a.npy", "-v"], tmp_path))
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and "a.tqz" in lines[0] and "a.npy" in lines[0]
    r = ok(run(["decompress", "b.tqz", "-o", "b.npy", "-q"], tmp_path))
    assert r.stderr == b"" and r.stdout == b""
    # --no-progress -q: nothing at all
    r = ok(run(["compress", "x.npy", "-o", "c.tqz", "--no-progress", "-q"], tmp_path))
    assert r.stderr == b""


def test_progress_flag_forces_a_bar_when_stderr_is_not_a_terminal(xfile, tmp_path):
    """--progress draws the bar into a pipe or a file (as zstd --progress does); the output
    is the same as without it.  Collections count members."""
    r = ok(run(["compress", "x.npy", "-o", "p.tqz", "--progress"], tmp_path))
    assert b"compress" in r.stderr and b"/200" in r.stderr  # 200 rows
    ok(run(["compress", "x.npy", "-o", "q.tqz"], tmp_path))
    assert (tmp_path / "p.tqz").read_bytes() == (tmp_path / "q.tqz").read_bytes()
    r = ok(run(["decompress", "p.tqz", "-o", "p.npy", "--progress"], tmp_path))
    assert b"decompress" in r.stderr
    kv = Path(__file__).parents[1] / "samples" / "kv_small.h5"
    r = ok(run(["compress", str(kv), "-o", "kv.tqz", "--progress"], tmp_path))
    assert b"compress members" in r.stderr
    r = ok(run(["decompress", "kv.tqz", "-o", "kv.h5", "--progress"], tmp_path))
    assert b"decompress members" in r.stderr
    r = ok(run(["decompress", "kv.tqz", "-o", "kv2.h5", "-f"], tmp_path))
    assert r.stderr == b""


# ---------------------------------------------------------------------------- refusals


class _Touch:
    """Unpickling this creates the file `path` (what a malicious .npy would do)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _pickle_npy(marker: Path) -> bytes:
    payload = pickle.dumps(_Touch(str(marker)), protocol=2)
    assert b"_Touch" not in payload  # only builtins.open: loadable anywhere
    return hand_npy("|O", (1,), payload)


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Write the refused inputs; name -> (file name, words the message must hold)."""
    bad: dict[str, tuple[str, tuple[str, ...]]] = {}

    def put(key, name, data, *words):
        (tmp_path / name).write_bytes(data)
        bad[key] = (name, words)

    x = gaussian(12, 8)
    bad["missing"] = ("missing.npy", ("no such file",))
    (tmp_path / "adir.npy").mkdir()
    bad["directory"] = ("adir.npy", ("directory",))
    put("text", "notes.txt", b"just some text\n" * 10, "not a", ".npy")
    put("empty", "empty.npy", b"", ".npy")
    put("pickle", "evil.npy", _pickle_npy(tmp_path / "PWNED"), "object")
    put("structured", "struct.npy",
        npy_bytes(np.zeros(4, dtype=[("a", "<f4"), ("b", "<f4")])), "structured")
    put("int32", "i.npy", npy_bytes(np.arange(12, dtype=np.int32).reshape(3, 4)), "int32")
    put("complex", "c.npy", npy_bytes(np.zeros((3, 4), np.complex64)), "complex")
    put("bool", "b.npy", npy_bytes(np.zeros((3, 4), bool)), "bool")
    put("d1", "d1.npy", npy_bytes(np.zeros((5, 1), np.float32)), "dimension")
    put("rank0", "r0.npy", npy_bytes(np.array(1.5, np.float32)), "0-dimensional")
    y = x.copy()
    y[7, 2] = np.nan
    put("nan", "nan.npy", npy_bytes(y), "row 7", "nan")
    y = x.astype(np.float64)
    y[3, 0] = -np.inf
    put("inf", "inf.npy", npy_bytes(y), "row 3")
    full = npy_bytes(x)
    put("truncated", "trunc.npy", full[:-9], "declares")
    put("extra", "extra.npy", full + b"\0\0\0", "declares")
    put("header_lies", "lies.npy", hand_npy("<f4", (1000, 8), x.tobytes()), "declares")
    code = "{'descr': __import__('os').system('touch PWNED'), 'fortran_order': False, " \
           "'shape': (3, 4), }".ljust(117) + "\n"
    put("code_in_header", "code.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(code))
        + code.encode() + b"\0" * 48, "malformed")
    put("huge_dim", "wide.npy", hand_npy("<f4", (1, 1 << 40), b"\0" * 64), "limit")
    return bad


def test_refused_inputs(tmp_path):
    bad = _bad_inputs(tmp_path)
    snapshot = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)
                if (tmp_path / n).is_file()}
    names = listing(tmp_path)
    # --rm: must not delete on failure; the default output name must not appear
    results = run_many([["compress", name, "--rm"] for name, _ in bad.values()], tmp_path)
    for (key, (name, words)), r in zip(bad.items(), results):
        assert_error(r, name, *words)
    assert listing(tmp_path) == names
    some = ("pickle", "nan", "truncated", "int32")
    for key, r in zip(some, run_many([["compress", bad[k][0], "-o", "out.tqz", "-f"]
                                      for k in some], tmp_path)):
        assert_error(r, bad[key][0], *bad[key][1])
    assert listing(tmp_path) == names
    for n, data in snapshot.items():
        assert (tmp_path / n).read_bytes() == data, n
    assert not (tmp_path / "PWNED").exists()


def test_refused_inputs_on_stdin(tmp_path):
    bad = _bad_inputs(tmp_path)
    keys = ("text", "empty", "pickle", "structured", "int32", "nan", "truncated", "extra",
            "huge_dim", "code_in_header")
    jobs = [(["compress", "-", "-o", "out.tqz"], (tmp_path / bad[k][0]).read_bytes())
            for k in keys]
    for key, r in zip(keys, run_many(jobs, tmp_path)):
        assert_error(r, "-", *(w for w in bad[key][1] if w != "declares"))
    assert not (tmp_path / "out.tqz").exists()
    no_temp_files(tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_pickle_never_unpickled_anywhere(tmp_path):
    marker = tmp_path / "PWNED"
    (tmp_path / "evil.npy").write_bytes(_pickle_npy(marker))
    # the payload is live: numpy with allow_pickle=True would run it
    control = tmp_path / "CONTROL"
    (tmp_path / "control.npy").write_bytes(_pickle_npy(control))
    try:
        np.load(tmp_path / "control.npy", allow_pickle=True)
    except Exception:  # noqa: BLE001 - numpy may complain after the damage is done
        pass
    assert control.exists()
    jobs = [["compress", "evil.npy"], ["compress", "evil.npy", "-c"], ["eval", "evil.npy"],
            ["compress", "evil.npy", "-o", "e.tqz", "--mode", "prod"],
            (["compress", "-", "-c"], (tmp_path / "evil.npy").read_bytes())]
    for job, r in zip(jobs, run_many(jobs, tmp_path)):
        assert_error(r, "-" if isinstance(job, tuple) else "evil.npy", "object")
    assert not marker.exists()
    assert listing(tmp_path) == ["CONTROL", "control.npy", "evil.npy"]


def test_big_endian_and_fortran_order_work(tmp_path):
    x = gaussian(50, 24, seed=11)
    np.save(tmp_path / "native.npy", x)
    np.save(tmp_path / "big.npy", x.astype(">f4"))
    np.save(tmp_path / "fort.npy", np.asfortranarray(x))
    np.save(tmp_path / "bigfort.npy", np.asfortranarray(x.astype(">f4")))
    kv = gaussian(2 * 3 * 10, 24, seed=12).reshape(2, 3, 10, 24)
    np.save(tmp_path / "kv.npy", kv)
    np.save(tmp_path / "kvf.npy", np.asfortranarray(kv))
    assert np.load(tmp_path / "fort.npy").flags.f_contiguous
    names = ("native.npy", "big.npy", "fort.npy", "bigfort.npy", "kv.npy", "kvf.npy")
    jobs = [["compress", n, "-c"] for n in names]
    jobs += [(["compress", "-", "-c"], (tmp_path / n).read_bytes()) for n in names[1:4]]
    out = [ok(r).stdout for r in run_many(jobs, tmp_path)]
    ref, kv_ref = out[0], out[4]
    assert out[1] == out[2] == out[3] == ref  # files
    assert out[6] == out[7] == out[8] == ref  # the same on stdin
    assert out[5] == kv_ref
    (tmp_path / "kv.tqz").write_bytes(kv_ref)
    y = load_npy_bytes(ok(run(["decompress", "kv.tqz", "-c"], tmp_path)).stdout)
    assert y.shape == kv.shape and nmse(kv, y) < 0.03


def test_decompress_refusals(xfile, tmp_path):
    ok(run(["compress", "x.npy", "-o", "x.tqz"], tmp_path))
    (tmp_path / "text.tqz").write_bytes(b"hello\n")
    (tmp_path / "dir.tqz").mkdir()
    (tmp_path / "x.bin").write_bytes((tmp_path / "x.tqz").read_bytes())
    names = listing(tmp_path)
    cases = ((["decompress", "missing.tqz"], "missing.tqz", ("no such file",)),
             (["decompress", "dir.tqz", "-o", "o.npy"], "dir.tqz", ("directory",)),
             (["decompress", "text.tqz", "-o", "o.npy"], "text.tqz", ("not a .tqz",)),
             (["decompress", "x.npy", "-o", "o.npy"], "x.npy", ("not a .tqz",)),
             (["decompress", "x.bin"], "x.bin", ("suffix",)),
             (["decompress", "x.tqz", "-o", "x.tqz", "-f"], "x.tqz", ("overwrite the input",)),
             (["inspect", "missing.tqz"], "missing.tqz", ("no such file",)),
             (["inspect", "text.tqz"], "text.tqz", ("not a .tqz",)),
             (["inspect", "dir.tqz"], "dir.tqz", ("directory",)),
             ((["decompress", "-", "-o", "o.npy"], b""), "-", ("empty",)))
    for (job, name, words), r in zip(cases, run_many([c[0] for c in cases], tmp_path)):
        assert_error(r, name, *words)
    assert listing(tmp_path) == names


def test_unwritable_output_location(xfile, tmp_path):
    """The test suite may run as root, for whom chmod does not stop writes; a folder that
    does not exist, and /proc (where no regular file can be created), fail for everyone."""
    names = listing(tmp_path)
    r = run(["compress", "x.npy", "-o", "no/such/folder/x.tqz"], tmp_path)
    assert_error(r, "no/such/folder/x.tqz", "folder does not exist")
    if os.path.isdir("/proc/self"):
        r = run(["compress", "x.npy", "-o", "/proc/tq-test-output.tqz"], tmp_path)
        assert_error(r, "/proc/tq-test-output.tqz")
    ok(run(["compress", "x.npy", "-o", "x.tqz"], tmp_path))
    r = run(["decompress", "x.tqz", "-o", "nowhere/y.h5"], tmp_path)
    assert_error(r, "nowhere/y.h5", "folder does not exist")
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            r = run(["compress", "x.npy", "-o", "ro/x.tqz"], tmp_path)
            assert_error(r, "ro/x.tqz", "permission denied")
        finally:
            ro.chmod(0o700)
            ro.rmdir()
    assert listing(tmp_path) == sorted(names + ["x.tqz"])
    # a full device: the write error names the output
    if os.path.exists("/dev/full"):
        with open("/dev/full", "wb") as full:
            r = subprocess.run(TQ + ["compress", "x.npy", "-c"], cwd=tmp_path, stdout=full,
                               stderr=subprocess.PIPE, timeout=120)
        assert_error(r, "-", "write failed")


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated")])
def test_interrupt_leaves_nothing_behind(tmp_path, sig, code, word):
    """A compress that is interrupted midway exits 130 (SIGINT) or 143 (SIGTERM, 128 + 15
    as shells and zstd report it) and leaves no output, no temp file.

    The input arrives on a pipe that the test feeds by hand, so the process is guaranteed
    to be in the middle of its work (its temporary output exists, its input is not done)
    when the signal arrives, however fast or slow the machine is.
    """
    n, d = 100_000, 64
    header = hand_npy("<f4", (n, d), b"")
    p = subprocess.Popen(TQ + ["compress", "-", "-o", "out.tqz"], cwd=tmp_path,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(header + gaussian(5000, d).tobytes())
        p.stdin.flush()
        assert wait_for(lambda: any(f.endswith(".tmp") for f in os.listdir(tmp_path))), \
            "compress never started writing"
        time.sleep(0.3)
        assert p.poll() is None
        p.send_signal(sig)
        err = p.communicate(timeout=60)[1]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == code, (p.returncode, err)
    lines = err.decode().splitlines()
    assert lines == [f"tq: {word}"], err
    assert listing(tmp_path) == []



def test_in_process_commands_leave_garbage_collection_on(xfile, tmp_path):
    """The command line pauses the garbage collector while numba starts; run inside another
    process (click's test runner here), every command must hand it back switched on --
    after success, after an error before the kernels load, and after an inspect that never
    loads them."""
    import gc

    from click.testing import CliRunner

    from tqcli.cli import main

    out = tmp_path / "x.tqz"
    runs = [["compress", str(xfile[0]), "-o", str(out), "-q"],
            ["inspect", str(out)],
            ["compress", str(tmp_path / "missing.npy"), "-q"],
            ["decompress", str(out), "-o", str(tmp_path / "y.npy"), "-q"]]
    expected = [0, 0, 1, 0]
    assert gc.isenabled()
    for argv, code in zip(runs, expected):
        result = CliRunner().invoke(main, argv)
        assert result.exit_code == code, (argv, result.output)
        assert gc.isenabled(), argv
    # a caller that switched collection off keeps it off
    gc.disable()
    try:
        assert CliRunner().invoke(main, ["inspect", str(out)]).exit_code == 0
        assert not gc.isenabled()
    finally:
        gc.enable()
