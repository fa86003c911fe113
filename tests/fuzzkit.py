"""Shared machinery of the fuzz and fault suites (tests/test_fuzz.py, test_faults.py,
test_hostile_arrays.py): the case counters that conftest.py reports at the end of the run,
a fast way to run the real command line hundreds of times, and small helpers.

The `tq` command line costs about half a second per process start (Python, numpy, numba),
so running every corpus mutant as `python -m tqcli ...` would take minutes.  CliServer
instead starts ONE helper process that imports tq once and then, for every case, forks a
child that runs exactly what the `tq` entry point runs (`tqcli.cli.main`) with its own
stdin, stdout, stderr, working directory and exit status.  Each case is still a separate
process: its exit code, its one stderr line, the files it leaves behind, its wall time and
its peak RSS (from os.wait4) are those of a real `tq` run.  The helper never starts
threads before forking (the kernels' thread pool starts in each child), so the children are
sound.  test_fuzz.py checks on a sample that the forked runs print exactly what real
`python -m tqcli` processes print.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

# The `tq` command line as a user runs it, one definition for every test file: the module
# of the interpreter running the tests, so that it works in any virtual environment and
# follows PYTHONPATH (a worktree's tqcli, not the installed one).
TQ = [sys.executable, "-m", "tqcli"]

# ---------------------------------------------------------------------------- counters


KINDS = ("crashes", "undetected", "partial", "outside", "over_budget", "out_of_bound")
# The families the summary table has a row for, in its order.  conftest.py sets the family of
# each test from its name (family_of); a test that mixes families sets COUNTS.family itself.
FAMILIES = ("packed", "entropy", "adaptive", "collections", "inputs")


class Counts:
    """What the fuzz and fault suites tried and what went wrong (printed by conftest.py),
    in all and per family of input: single-array packed .tqz, entropy-coded .tqz, adaptive .tqz,
    collections, and the inputs tq compresses (arrays, faults, inflating containers)."""

    def __init__(self):
        self.family = "packed"
        self.by_family = {f: dict.fromkeys(("tried",) + KINDS, 0) for f in FAMILIES}
        self.notes: list = []

    # crashes: a traceback, an exception other than TqError, a signal, a hang
    # undetected: a corrupt input that decoded, or exited 0
    # partial: an output or temporary file left behind after a failure
    # outside: a file written outside the output's folder (a crafted member name)
    # over_budget: a case that took >= 1 s or >= 100 MB of extra memory
    # out_of_bound: a round trip whose error exceeded the stated bound

    def total(self, kind: str) -> int:
        return sum(c[kind] for c in self.by_family.values())

    def __getattr__(self, kind):
        if kind in ("tried",) + KINDS:
            return self.total(kind)
        raise AttributeError(kind)

    def __setattr__(self, kind, value):
        if kind in ("tried",) + KINDS:  # COUNTS.tried += 1 counts in the current family
            self.by_family[self.family][kind] += value - self.total(kind)
        else:
            object.__setattr__(self, kind, value)

    def note(self, kind: str, what: str) -> None:
        self.by_family[self.family][kind] += 1
        if len(self.notes) < 50:
            self.notes.append(f"{kind} ({self.family}): {what}")

    def summary(self) -> str:
        fam = ", ".join(f"{self.by_family[f]['tried']} {f}" for f in FAMILIES)
        return (f"fuzz: {self.tried} cases tried ({fam}), {self.crashes} crashes, "
                f"{self.undetected} undetected corruptions, {self.partial} partial outputs, "
                f"{self.outside} files outside the output, "
                f"{self.over_budget} over the 1 s / 100 MB budget, "
                f"{self.out_of_bound} round trips out of bound")

    def table(self) -> list[str]:
        """The counts per family, one line each (all zeros is the promise)."""
        cols = ("tried",) + KINDS
        head = ["family"] + [c.replace("_", " ") for c in cols]
        rows = [[f] + [str(self.by_family[f][c]) for c in cols] for f in FAMILIES]
        widths = [max(len(r[k]) for r in [head] + rows) for k in range(len(head))]
        return ["  ".join(v.rjust(w) if k else v.ljust(w) for k, (v, w) in
                          enumerate(zip(r, widths))) for r in [head] + rows]


def family_of(nodeid: str) -> str:
    """The family a test's cases count in, from its file and name."""
    low = nodeid.lower()
    if "collection" in low:
        return "collections"
    if "adaptive" in low:
        return "adaptive"
    if "entropy" in low or "test_expansion" in low:
        return "entropy"
    if any(m in low for m in ("test_changing_inputs", "test_input_bombs",
                              "test_hostile_arrays", "test_faults")):
        return "inputs"
    return "packed"


COUNTS = Counts()

TIME_LIMIT = 1.0             # seconds per case
MEMORY_LIMIT = 100 * 2**20   # bytes of extra memory per case


# ---------------------------------------------------------------------------- headers

# names of the fixed header fields, in the order of tqcli.format.container._FIXED
HEADER_FIELDS = ("magic version flags header_size mode bits scale_rule scale_dtype "
                 "source_dtype rotation rounds ndim dim chunk_rows n_vectors seed").split()


def wait_for(pred, timeout: float = 60.0) -> bool:
    """Poll pred() until it is true (True) or `timeout` seconds have passed (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def patch_header(blob: bytes, fix_crc: bool, shape=None, **fields) -> bytes:
    """blob with header fields (and the shape) replaced, the header CRC recomputed when
    fix_crc, so that only the field checks can catch the change."""
    import struct

    import tqcli
    from tqcli.format.header import _FIXED, CRC, crc32

    h = tqcli.read_header(blob)
    values = list(_FIXED.unpack_from(blob))
    for k, v in fields.items():
        values[HEADER_FIELDS.index(k)] = v
    head = bytearray(blob[:h.header_size])
    head[:_FIXED.size] = _FIXED.pack(*values)
    if shape is not None:
        assert len(shape) == len(h.shape)
        struct.pack_into(f"<{len(shape)}Q", head, _FIXED.size, *shape)
    if fix_crc:
        head[-4:] = CRC.pack(crc32(bytes(head[:-4])))
    return bytes(head) + blob[h.header_size:]


# ---------------------------------------------------------------------------- streams


class PipeLike(io.RawIOBase):
    """A non-seekable binary stream, as stdin from a pipe is."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buf) -> int:
        return self._data.readinto(buf)


def pipe_stream(data: bytes):
    return io.BufferedReader(PipeLike(data))


# ---------------------------------------------------------------------------- the CLI


@dataclass
class CliResult:
    args: list
    returncode: int          # exit status, or -signal
    stdout: bytes
    stderr: bytes
    seconds: float
    maxrss: int              # peak resident memory of the process, bytes

    @property
    def lines(self) -> list[str]:
        return self.stderr.decode(errors="replace").splitlines()


class CliServer:
    """Runs `tq` commands as forked children of one pre-warmed helper process."""

    def __init__(self):
        self.scratch = tempfile.mkdtemp(prefix="tq-cli-server-")
        self.log = os.path.join(self.scratch, "server.log")
        with open(self.log, "wb") as log:  # the helper's own stderr (children have theirs)
            self.proc = subprocess.Popen([sys.executable, __file__, "--serve"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=log, cwd=self.scratch)
        self._n = 0
        ready = self.proc.stdout.readline()
        if not ready.startswith(b"ready"):
            raise RuntimeError("CLI server did not start: " + self._log_text())
        # the peak RSS of a child that only prints the version: what every child starts with
        self.base_rss = min(self.run(["--version"], self.scratch).maxrss for _ in range(3))

    def run(self, args, cwd, stdin: bytes | str | None = None, pipe: bool = False,
            fault: dict | None = None, timeout: float = 60.0) -> CliResult:
        """Run `tq ARGS` in cwd.  stdin: bytes (fed from a file, or a pipe when `pipe`),
        a path, or None (/dev/null).  `fault` arms an injected failure (see _apply_fault)."""
        self._n += 1
        base = os.path.join(self.scratch, str(self._n))
        stdin_path = None
        if isinstance(stdin, (bytes, bytearray)):
            stdin_path = base + ".in"
            with open(stdin_path, "wb") as f:
                f.write(stdin)
        elif stdin is not None:
            stdin_path = os.fspath(stdin)
        req = {"args": [str(a) for a in args], "cwd": os.fspath(cwd), "stdin": stdin_path,
               "pipe": pipe, "out": base + ".out", "err": base + ".err", "fault": fault,
               "timeout": timeout}
        self.proc.stdin.write(json.dumps(req).encode() + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("CLI server died: " + self._log_text())
        rep = json.loads(line)
        with open(req["out"], "rb") as f:
            out = f.read()
        with open(req["err"], "rb") as f:
            err = f.read()
        for p in (req["out"], req["err"]) + ((stdin_path,) if stdin_path == base + ".in"
                                             else ()):
            os.remove(p)
        return CliResult(req["args"], rep["code"], out, err, rep["seconds"],
                         rep["maxrss_kib"] * 1024)

    def _log_text(self) -> str:
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        for name in os.listdir(self.scratch):
            os.remove(os.path.join(self.scratch, name))
        os.rmdir(self.scratch)


class CliPool:
    """A few CliServers used from worker threads (the machine has few cores)."""

    def __init__(self, n: int = 2):
        import queue

        self.servers = [CliServer() for _ in range(n)]
        self.free: queue.Queue = queue.Queue()
        for s in self.servers:
            self.free.put(s)
        self.base_rss = max(s.base_rss for s in self.servers)

    def run(self, *args, **kw) -> CliResult:
        s = self.free.get()
        try:
            return s.run(*args, **kw)
        finally:
            self.free.put(s)

    def map(self, fn, items) -> list:
        """[fn(self, item) for item in items], run on len(servers) threads, in order."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(self.servers)) as ex:
            return list(ex.map(lambda it: fn(self, it), items))

    def close(self) -> None:
        for s in self.servers:
            s.close()


def _apply_fault(fault: dict) -> None:
    """Injected failures, armed in the child before tq runs.

    write_error: the output stream (tqcli.arrayio.files.GuardedStream, behind every file and stdout
      tq writes except HDF5) raises OSError(errno) once more than `after` bytes were written.
    interrupt: the same stream raises KeyboardInterrupt (as Ctrl-C would) after `after` bytes.
    rename_error: publishing the finished output (os.replace) fails with OSError(errno).
    mkstemp_error: creating the temporary output fails with OSError(errno).
    change_input: the input file `path` changes while tq compresses it ("how": truncate to
      half, grow by a block, rewrite its last bytes in place, replace it with a copy
      under the same name, or remove it), once the encoder has taken `after` blocks (0: before the
      first block is read).
    """
    import errno as errno_mod

    from tqcli.arrayio import files

    kind = fault["kind"]
    code = getattr(errno_mod, fault.get("errno", "ENOSPC"))
    if kind in ("write_error", "interrupt"):
        state = {"written": 0}
        original = files.GuardedStream.write

        def write(self, data):
            state["written"] += len(memoryview(data).cast("B"))
            if state["written"] > fault.get("after", 0):
                if kind == "interrupt":
                    raise KeyboardInterrupt
                try:
                    raise OSError(code, os.strerror(code))
                except OSError as e:
                    raise files.write_error(e, self.name) from None
            return original(self, data)

        files.GuardedStream.write = write
    elif kind == "rename_error":
        def replace(src, dst, *a, **k):
            raise OSError(code, os.strerror(code), dst)

        files.os.replace = replace
    elif kind == "mkstemp_error":
        def mkstemp(*a, **k):
            raise OSError(code, os.strerror(code))

        files.tempfile.mkstemp = mkstemp
    elif kind == "change_input":
        from tqcli.codec import state

        path, how, after = fault["path"], fault["how"], fault.get("after", 1)
        calls = {"n": 0}

        def change():
            size = os.path.getsize(path)
            if how == "truncate":
                os.truncate(path, size // 2)
            elif how == "grow":
                with open(path, "ab") as f:
                    f.write(bytes(1 << 16))
            elif how == "rewrite":
                with open(path, "r+b") as f:
                    f.seek(size - 8)
                    f.write(b"\x01" * 8)
                os.utime(path, ns=(1, 1))  # a new modification time, whatever the clock
            elif how == "remove":
                os.remove(path)
            elif how == "replace":
                with open(path, "rb") as f:
                    data = f.read()
                with open(path + ".new", "wb") as f:
                    f.write(data)
                os.replace(path + ".new", path)

        encode, init = state.Codec.encode_chunks, state.Codec.__init__

        def encode_chunks(self, *a, **k):
            out = encode(self, *a, **k)
            calls["n"] += 1
            if calls["n"] == after:
                change()
            return out

        def codec_init(self, *a, **k):
            init(self, *a, **k)
            if after == 0 and calls["n"] == 0:
                calls["n"] = -1
                change()

        state.Codec.encode_chunks, state.Codec.__init__ = encode_chunks, codec_init
    else:
        raise ValueError(f"unknown fault {kind!r}")


def _child(req: dict, stdin_fd: int | None) -> None:
    """In the forked child: become `tq ARGS` and exit with its status (never returns)."""
    code = 70
    try:
        os.chdir(req["cwd"])
        if stdin_fd is None:
            stdin_fd = os.open(req["stdin"] or os.devnull, os.O_RDONLY)
        os.dup2(stdin_fd, 0)
        out = os.open(req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in (stdin_fd, out, err):
            if fd > 2:
                os.close(fd)
        if req.get("fault"):
            _apply_fault(req["fault"])
        from tqcli.cli import main

        try:
            main(req["args"], prog_name="tq")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - whatever escapes tq is printed and counted
        import traceback

        traceback.print_exc()
        code = 70
    finally:
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except BaseException:  # noqa: BLE001 - a closed pipe, a full disk
                pass
        os._exit(code)


def _serve() -> None:
    """The helper process: read JSON requests on stdin, answer one JSON line each."""
    import signal

    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    # everything a tq command imports, loaded once; no thread is started here
    import numpy  # noqa: F401

    import tqcli.library.api  # noqa: F401
    import tqcli.arrayio  # noqa: F401
    import tqcli.cli  # noqa: F401
    import tqcli.codec.state  # noqa: F401
    import tqcli.arrayio.files  # noqa: F401
    from tqcli import kernels

    kernels.warm_up()
    # the entropy coding's kernels too (loaded from numba's cache, not compiled): on one
    # thread, so that no worker thread is alive at a fork; the children set their own count
    import numpy as np

    import tqcli

    threads = kernels.thread_count()
    kernels.set_threads(1)
    x = np.random.default_rng(0).standard_normal((9, 12)).astype(np.float32)
    tqcli.decompress(tqcli.compress(x, bits=2.5, coding="entropy", chunk_rows=8))
    kernels.set_threads(threads)
    import threading

    assert threading.active_count() == 1, threading.enumerate()  # safe to fork
    import click.testing  # noqa: F401
    import h5py  # noqa: F401
    import zarr  # noqa: F401 - zarr inputs and outputs (the zarr extra, installed for the tests)

    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    proto_out.write(b"ready\n")
    buf = b""
    while True:
        while b"\n" not in buf:
            more = proto_in.read(1 << 16)
            if not more:
                return
            buf += more
        line, buf = buf.split(b"\n", 1)
        req = json.loads(line)
        stdin_fd = writer = None
        if req["pipe"]:
            stdin_fd, writer = os.pipe()
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            proto_in.close()
            proto_out.close()
            if writer is not None:
                os.close(writer)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            _child(req, stdin_fd)
        if writer is not None:
            os.close(stdin_fd)
            with open(req["stdin"], "rb") as f:
                data = f.read()
            try:
                os.write(writer, data)  # small inputs: fits in the pipe buffer
            except BrokenPipeError:
                pass
            os.close(writer)
        deadline = t0 + req["timeout"]
        while True:
            wpid, status, usage = os.wait4(pid, os.WNOHANG)
            if wpid:
                break
            if time.perf_counter() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.001)
        seconds = time.perf_counter() - t0
        rep = {"code": os.waitstatus_to_exitcode(status), "seconds": seconds,
               "maxrss_kib": usage.ru_maxrss}
        proto_out.write(json.dumps(rep).encode() + b"\n")


# ---------------------------------------------------------------------------- checks


def check_cli_failure(r: CliResult, name: str, folder, keep, what: str,
                      base_rss: int | None = None, corrupt: bool = True,
                      stdout_empty: bool = True) -> list[str]:
    """Count one CLI case that must fail; returns the problems found (empty: all good).

    Must: exit 1, exactly one stderr line starting `tq: NAME: `, no traceback, nothing on
    stdout (when stdout_empty), no file in `folder` beyond `keep`, < 1 s, < 100 MB extra.
    """
    COUNTS.tried += 1
    problems = []
    err = r.stderr.decode(errors="replace")
    if r.returncode == 0 and corrupt:
        COUNTS.note("undetected", f"{what}: exit 0")
        problems.append("exit 0")
    elif r.returncode != 1 or "Traceback" in err or "internal error" in err:
        COUNTS.note("crashes", f"{what}: exit {r.returncode}: {err[-300:]}")
        problems.append(f"exit {r.returncode}: {err[-300:]!r}")
    lines = r.lines
    if len(lines) != 1 or not lines[0].startswith(f"tq: {name}: "):
        problems.append(f"stderr {err!r}")
    if stdout_empty and r.stdout:
        problems.append(f"{len(r.stdout)} bytes on stdout")
    left = sorted(set(os.listdir(folder)) - set(keep))
    if left:
        COUNTS.note("partial", f"{what}: left {left}")
        problems.append(f"left behind {left}")
    extra = r.maxrss - (base_rss or 0)
    if r.seconds >= TIME_LIMIT or (base_rss is not None and extra >= MEMORY_LIMIT):
        COUNTS.note("over_budget", f"{what}: {r.seconds:.2f} s, {extra / 2**20:.0f} MB")
        problems.append(f"{r.seconds:.2f} s, {extra / 2**20:.0f} MB extra")
    return problems


def verify_disagrees(data: bytes, refused) -> list[str]:
    """inspect --verify (the library call it makes) on data that the decoder refused with
    `refused` (its exception): the problems, empty when the verifier refuses it by the same
    rule -- or accepts it where the decoder's rule was decoded-finite, the one check a
    verifier leaves out (spec 13.5)."""
    import tqcli
    from tqcli.fileio import verbs

    want = getattr(refused, "rule", type(refused).__name__)
    try:
        verbs.inspect(data, verify=True)
    except tqcli.FormatError as e:
        got = e.rule
    except tqcli.TqError as e:
        got = type(e).__name__
    else:
        got = None
    if got == want or (got is None and want == "decoded-finite"):
        return []
    if got is None:
        COUNTS.note("undetected", f"inspect --verify accepts what decompress refuses "
                                  f"({want}: {refused})")
    return [f"inspect --verify: {got!r}, decompress: {want!r} ({refused})"]


_WARM = []


def warm_up_library() -> None:
    """Load every kernel once (numba's cache) so that one-time start-up costs are not
    charged to the first case measured."""
    if _WARM:
        return
    import numpy as np

    import tqcli

    from tqcli.fileio import verbs

    x = np.random.default_rng(0).standard_normal((40, 12)).astype(np.float32)
    # every coding's kernels, including the rANS stage's own (inspect --verify runs it
    # apart from the fused decode): a first use compiles or loads them, not a case's cost
    for options in (dict(mode="mse"), dict(mode="prod"), dict(coding="entropy"),
                    dict(adapt=True)):
        blob = tqcli.compress(x, bits=2, chunk_rows=8, **options)
        tqcli.decompress(blob)
        tqcli.decompress(pipe_stream(blob))
        verbs.inspect(blob, verify=True)
        if options.get("coding") == "entropy":  # and the rANS coder for J other than 8
            _warm_other_lanes(blob)
    _WARM.append(True)


def _warm_other_lanes(blob: bytes) -> None:
    """Decode `blob` (entropy-coded, J = 8) with its header saying J = 1, checksum right:
    the general rANS kernels (kernels/rans.py) run, refusing the stream, as the crafted
    files with a changed lane count make them run."""
    import tqcli
    from tqcli.fileio import verbs
    from tqcli.format.header import CRC, crc32

    h = tqcli.read_header(blob)
    head = bytearray(blob[:h.header_size])
    head[48 + 8 * len(h.shape) + 3] = 1  # the model's lanes byte (spec 19.1)
    head[-4:] = CRC.pack(crc32(bytes(head[:-4])))
    other = bytes(head) + blob[h.header_size:]
    for call in (lambda: tqcli.decompress(other), lambda: tqcli.decompress(pipe_stream(other)),
                 lambda: verbs.inspect(other, verify=True)):
        try:
            call()
        except tqcli.FormatError:
            pass


def check_library_failure(call, what: str, expected=None, limit_memory: bool = True):
    """Run call() under tracemalloc; it must raise `expected` (default tqcli.FormatError).

    Counts the case; returns (problems, exception).
    """
    import tracemalloc

    import tqcli

    warm_up_library()
    expected = expected or tqcli.FormatError
    COUNTS.tried += 1
    problems = []
    exc = None
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        out = call()
    except expected as e:
        exc = e
        if not isinstance(e, tqcli.TqError) or "\n" in str(e) or not e.reason:
            problems.append(f"badly formed error {e!r}")
    except Exception as e:  # noqa: BLE001 - anything else is the bug being looked for
        COUNTS.note("crashes", f"{what}: {type(e).__name__}: {e}")
        problems.append(f"{type(e).__name__}: {e}")
    else:
        COUNTS.note("undetected", f"{what}: returned {type(out).__name__}")
        problems.append(f"returned {getattr(out, 'shape', type(out).__name__)}")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    took = time.perf_counter() - t0
    if took >= TIME_LIMIT or (limit_memory and peak >= MEMORY_LIMIT):
        COUNTS.note("over_budget", f"{what}: {took:.2f} s, {peak / 2**20:.0f} MB")
        problems.append(f"{took:.2f} s, {peak / 2**20:.0f} MB")
    return problems, exc


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
