"""Running one measured command alone: the launcher, the turns between trees, best of N.

Every measured command is started by a minimal launcher (below) that reports its wall time
and peak RSS; measure_cmds runs one or more commands in turns, measure_worker one
in-memory measurement of inmemory.py in a process of its own (`bench.py --worker SPEC`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

from inmemory import CHECK_ROWS, nmse

MIB = 1 << 20
BENCH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench.py")

# A child's ru_maxrss counts the memory image it was forked from: Linux records the old
# image's high-water mark at exec, and posix_spawn / vfork children share the parent's
# image until then.  Children spawned straight from this process (numpy, faiss, ...
# loaded) would all report at least this process's size.  So every measured command is
# started by a minimal launcher (python -S, a few MiB), which times it and takes its
# rusage; the launcher's own size is the floor of every RSS figure (reported at the top).
LAUNCHER = r"""
import os, sys, time
out, err, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
fa = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
      (os.POSIX_SPAWN_OPEN, 1, out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
      (os.POSIX_SPAWN_OPEN, 2, err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)]
t0 = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=fa)
_, st, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
print(repr(wall), ru.ru_maxrss, os.waitstatus_to_exitcode(st))
"""


def run(argv, env=None, stdout_path=None):
    """Run argv alone; return (wall seconds, peak RSS bytes of the child, exit status, err).

    The launcher times the command from spawn to exit (os.wait4) and reports that child's
    ru_maxrss.
    """
    fd, errpath = tempfile.mkstemp(prefix="tqbench-err-")
    os.close(fd)
    try:
        exe = shutil.which(argv[0]) or argv[0]
        res = subprocess.run([sys.executable, "-S", "-E", "-c", LAUNCHER,
                              stdout_path or os.devnull, errpath, exe, *argv[1:]],
                             env=os.environ if env is None else env, capture_output=True,
                             text=True)
        if res.returncode != 0:
            raise Failure(f"launcher failed: {res.stderr.strip()[-300:]}")
        wall, maxrss, code = res.stdout.split()
        with open(errpath, errors="replace") as f:
            errtext = f.read().strip()
    finally:
        os.unlink(errpath)
    return float(wall), int(maxrss) * 1024, int(code), errtext


def rss_floor() -> int:
    """Peak RSS reported for a process that allocates nothing (/bin/true): the floor."""
    true = shutil.which("true") or "/bin/true"
    return min(run([true])[1] for _ in range(3))


def warm_cache(path: str) -> None:
    """Read a file once so that it is in the page cache before timing."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 * MIB)
        while f.readinto(buf):
            pass


def remove(*paths) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def reusable(path: str, n: int, d: int) -> bool:
    """Whether path holds a float32 (n, d) .npy made by an earlier run (inputs are made
    once and reused); anything else there is removed, to be made again."""
    import numpy as np

    if os.path.exists(path):
        try:
            a = np.load(path, mmap_mode="r")
            if a.shape == (n, d) and a.dtype == np.float32:
                return True
        except (ValueError, OSError):
            pass
        remove(path)
    return False


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Failure(Exception):
    pass


def measure_cmds(label, jobs, repeat):
    """Best of `repeat` runs of each job (argv, env, before), the jobs taking turns: A B A B.

    With one job this is the plain best of `repeat`.  With two (the new tree and the
    baseline) the turns put both under the same drift of a noisy machine, so their ratio
    is steadier than that of two series run one after the other.  Each result is
    {'times', 'rss', 'best', 'peak_rss'}.
    """
    res = [{"times": [], "rss": []} for _ in jobs]
    for _ in range(repeat):
        for (argv, env, before), r in zip(jobs, res):
            if before:
                before()
            wall, peak, code, err = run(argv, env=env)
            if code != 0:
                raise Failure(f"{label}: exit {code}: {(err.splitlines() or [''])[-1]}")
            r["times"].append(wall)
            r["rss"].append(peak)
    for r in res:
        r.update(best=min(r["times"]), peak_rss=max(r["rss"]))
    return res


def measure_cmd(label, argv, repeat, before=None, env=None):
    """Best of `repeat` runs of a command: {'times', 'rss', 'best', 'peak_rss'}."""
    return measure_cmds(label, [(argv, env, before)], repeat)[0]


def measure_worker(label, spec, env=None, workdir="."):
    out = os.path.join(workdir, "worker-out.json")
    argv = [sys.executable, BENCH_SCRIPT, "--worker", json.dumps(spec)]
    try:
        wall, peak, code, err = run(argv, env=env, stdout_path=out)
        with open(out) as f:
            text = f.read().strip()
    finally:
        remove(out)
    if code != 0:
        raise Failure(f"{label}: exit {code}: {(err.splitlines() or [''])[-1]}")
    res = json.loads(text.splitlines()[-1])
    res.update(best=min(res["times"]), peak_rss=peak, process_wall=wall)
    return res


def measure_worker_trees(label, spec, trees, artifacts, workdir):
    """The library measurement of spec for each tree; one result per tree.

    One tree (a default run): one worker process that times spec["repeat"] calls.  Two
    trees: spec["repeat"] rounds, each a process per tree in turn (A B A B), every process
    one warm-up and one timed call, so that the turns alternate as for the commands.  The
    merged result keeps every time, the best, the highest peak RSS and the largest growth
    during a timed call ('growth').
    """
    repeat = spec["repeat"]
    if len(trees) == 1:
        t = trees[0]
        return [measure_worker(label, dict(spec, artifact=artifacts[t.key]), t.env,
                               workdir)]
    runs = {t.key: [] for t in trees}
    for _ in range(repeat):
        for t in trees:
            runs[t.key].append(measure_worker(
                f"{label} ({t.key})", dict(spec, artifact=artifacts[t.key], repeat=1),
                t.env, workdir))
    merged = []
    for t in trees:
        rs = runs[t.key]
        best = min(rs, key=lambda r: r["best"])
        top = max(rs, key=lambda r: r["peak_rss"])
        r = dict(rs[-1], times=[x["times"][0] for x in rs], best=best["best"],
                 stages=best["stages"], peak_rss=top["peak_rss"],
                 rss_before=top["rss_before"],
                 growth=max(x["peak_rss"] - x["rss_before"] for x in rs),
                 process_wall=[x["process_wall"] for x in rs])
        merged.append(r)
    return merged


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 * MIB)
        while k := f.readinto(buf):
            h.update(memoryview(buf)[:k])
    return h.hexdigest()


def nmse_of_files(a: str, b: str) -> float:
    import numpy as np

    x = np.load(a, mmap_mode="r")
    y = np.load(b, mmap_mode="r")
    d = x.shape[-1]
    k = min(x.shape[0], CHECK_ROWS)
    return nmse(x.reshape(-1, d)[:k], y.reshape(-1, d)[:k])


