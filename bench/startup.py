#!/usr/bin/env python3
"""Cold start: what every `tq` command pays from a new process, and for what.

    python bench/startup.py                                  # this tree
    python bench/startup.py --baseline /work/tq-base         # and an older checkout beside
    python bench/startup.py --baseline ../old --installed    # also both as a regular install

Cases: --help, --version, inspect of a single array and of a collection, compress and
decompress of a 1 MB .npy (682 x 384 float32) and of a larger one (--big-mb, d = 768),
eval -b 4 and search (10 queries, k = 10) on the 1 MB file.  Each case is a new process of
the `tq` console script with warm caches (numba's kernels compiled and the byte code
written by one run before the timed ones; each tree gets its own NUMBA_CACHE_DIR,
TQ_CACHE_DIR and PYTHONPYCACHEPREFIX in the work folder, so a read-only baseline pays no
byte compilation and neither reads the other's cache).  The trees take turns run by run
(A B A B ...) so that a busy machine slows both alike; every figure is the minimum of
--repeat runs.  Three tables:

  1. wall and CPU (user + sys) seconds of each command, end to end;
  2. imports by package (PYTHONPROFILEIMPORTTIME in a third run per repeat: self times
     summed per group, the least of the repeats per group; the profiler inflates them, the
     split is what counts): python's own start-up modules
     (site, encodings, the editable finder), click, numpy, numba + llvmlite, scipy, h5py,
     rich, zarr, tq, everything else;
  3. a timeline of each command from a driver that runs the same `main` in a new process
     and stamps: python start (spawn to the first line of the driver), start-up (to the
     engine start or, without one, to the first chunk), the engine (numba and the kernels
     loaded: cli.process.start_engine), the first chunk encoded or decoded (Codec.
     encode_chunks / Codec.decode, the kernel loaded from the cache on its first call),
     the steady state (the other chunks), and the end (the last write, closing, and the
     interpreter's exit).  A hook that a tree lacks leaves its column '-'.

--installed also measures each tree as a regular (non-editable) install: a scratch venv
per tree in the work folder with `pip install --no-deps` of a copy of the tree (pip
fetches setuptools for the build) and the dependencies of this interpreter's environment behind it (a .pth line),
run through that venv's own `tq` script: the start-up a user pays, without the editable
finder's import hook.  Work files go to --workdir (default /dev/shm).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time

import numpy as np

from trees import trees_for

PHASES = ("python", "start-up", "engine", "1st chunk", "steady", "end")
GROUPS = ("python", "click", "numpy", "numba", "scipy", "h5py", "rich", "zarr", "tq", "other")
PY_STARTUP = {"site", "encodings", "codecs", "io", "abc", "os", "stat", "posixpath",
              "genericpath", "_collections_abc", "_sitebuiltins", "_distutils_hack",
              "__editable___tq_1_3_0_finder", "sitecustomize", "usercustomize",
              "zipimport", "_frozen_importlib_external", "_virtualenv"}

# Runs tqcli.cli.main in this new process and prints a timeline as its last stdout line
# (on stderr, so that `-c` outputs stay clean).  Hooks are put on the modules as they are
# imported (the command imports them itself, lazily or not), by name, so that two trees
# of different layouts can be compared.
DRIVER = r"""
import builtins, json, os, sys, time
T = {"first": time.time()}
marks = []
HOOKS = {"tqcli.cli.process": [(None, "start_engine", "engine")],
         "tqcli.codec.state": [("Codec", "encode_chunks", "chunk"), ("Codec", "decode", "chunk")]}
done = set()

def wrap(fn, tag):
    def timed(*a, **k):
        t = time.time()
        try:
            return fn(*a, **k)
        finally:
            marks.append((tag, t, time.time()))
    timed.__wrapped__ = fn
    return timed

def patch():
    for mod, hooks in HOOKS.items():
        m = sys.modules.get(mod)
        if mod in done or m is None or getattr(m, "__spec__", None) is None \
                or getattr(m.__spec__, "_initializing", False):
            continue
        for cls, name, tag in hooks:
            owner = getattr(m, cls, None) if cls else m
            if owner is not None and callable(getattr(owner, name, None)):
                setattr(owner, name, wrap(getattr(owner, name), tag))
        done.add(mod)

real_import = builtins.__import__
def hooked(*a, **k):
    r = real_import(*a, **k)
    if len(done) < len(HOOKS):
        patch()
    return r
builtins.__import__ = hooked

def report():
    T["end"] = time.time()
    print("TIMELINE " + json.dumps({"T": T, "marks": marks}), file=sys.stderr, flush=True)

from tqcli.cli import main
patch()
try:
    main(sys.argv[1:], prog_name="tq")
except SystemExit as e:
    code = e.code
else:
    code = 0
report()
sys.exit(code)
"""


def _clean_env(env: dict) -> dict:
    env = {k: v for k, v in env.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME", "NUMBA_CACHE_DIR")}
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Variant:
    """One way of running tq: a tree (base or new) as the venv's script or installed."""

    def __init__(self, name: str, script: str, python: str, env: dict, work: str):
        self.name, self.script, self.python = name, script, python
        key = name.replace(" ", "-")
        self.env = dict(_clean_env(env), NUMBA_CACHE_DIR=os.path.join(work, "numba-" + key),
                        TQ_CACHE_DIR=os.path.join(work, "tq-" + key),
                        PYTHONPYCACHEPREFIX=os.path.join(work, "pyc-" + key))


def run(cmd: list[str], env: dict, check: bool = True) -> tuple[float, float, str]:
    """(wall, cpu) seconds of one process and its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, cwd="/")
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if check and res.returncode != 0:
        sys.exit(f"startup: {' '.join(cmd)} failed: {res.stderr.decode()[-600:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, res.stderr.decode()


def group_of(module: str) -> str:
    top = module.split(".")[0]
    if module in PY_STARTUP or top in PY_STARTUP:
        return "python"
    if top in ("numba", "llvmlite"):
        return "numba"
    if top == "tqcli":
        return "tq"
    return top if top in GROUPS else "other"


def import_groups(stderr: str) -> dict:
    """PYTHONPROFILEIMPORTTIME's lines summed by group, ms of self time.  Self time is
    recomputed from the tree (a module's cumulative time less its direct children's, the
    children being the deeper-indented lines just before it): the printed self column can be
    negative when an import happens in another thread or inside a lazy attribute."""
    out = dict.fromkeys(GROUPS, 0.0)
    children: dict[int, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        _, cum, name = line[len("import time:"):].split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        cum_ms = int(cum) / 1000
        out[group_of(name.strip())] += max(0.0, cum_ms - children.pop(depth + 1, 0.0))
        children[depth] = children.get(depth, 0.0) + cum_ms
    return out


def timeline(stderr: str, spawned: float, exited: float) -> dict:
    line = [s for s in stderr.splitlines() if s.startswith("TIMELINE ")]
    if not line:
        return {}
    data = json.loads(line[-1][len("TIMELINE "):])
    T, marks = data["T"], data["marks"]
    engine = [(a, b) for tag, a, b in marks if tag == "engine"]
    chunks = sorted((a, b) for tag, a, b in marks if tag == "chunk")
    out = {"python": T["first"] - spawned}
    first_work = min([a for a, _ in engine + chunks] or [T["end"]])
    out["start-up"] = first_work - T["first"]
    out["engine"] = sum(b - a for a, b in engine) if engine else None
    if chunks:
        out["1st chunk"] = chunks[0][1] - chunks[0][0]
        out["steady"] = chunks[-1][1] - chunks[0][1]
        out["end"] = exited - chunks[-1][1]
    else:
        out["1st chunk"] = out["steady"] = None
        after = max([b for _, b in engine] or [first_work])
        out["end"] = exited - after
    return out


def cases(w: str, tag: str) -> list[tuple[str, list[str]]]:
    o = f"{w}/out-{tag}"
    return [
        ("--help", ["--help"]),
        ("--version", ["--version"]),
        ("inspect array", ["inspect", f"{w}/one.tqz"]),
        ("inspect collection", ["inspect", f"{w}/coll.tqz"]),
        ("compress 1 MB", ["compress", f"{w}/one.npy", "-o", o + ".tqz", "-f", "-q"]),
        ("decompress 1 MB", ["decompress", f"{w}/one.tqz", "-o", o + ".npy", "-f", "-q"]),
        ("compress big", ["compress", f"{w}/big.npy", "-o", o + "-big.tqz", "-f", "-q"]),
        ("decompress big", ["decompress", f"{w}/big.tqz", "-o", o + "-big.npy", "-f", "-q"]),
        ("eval -b 4", ["eval", f"{w}/one.npy", "-b", "4"]),
        ("search k=10", ["search", f"{w}/one.tqz", f"{w}/q.npy", "-k", "10"]),
    ]


def make_inputs(w: str, big_mb: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((682, 384)).astype(np.float32)  # 1.05 MB
    np.save(f"{w}/one.npy", x)
    np.save(f"{w}/q.npy", x[:10] + 0.01)
    np.savez(f"{w}/coll.npz", keys=x[:100], values=x[100:300], mask=x[:3, :8])
    rows = max(1, big_mb * (1 << 20) // (768 * 4))
    big = np.lib.format.open_memmap(f"{w}/big.npy", "w+", np.float32, (rows, 768))
    for a in range(0, rows, 65536):
        big[a:a + 65536] = rng.standard_normal((min(65536, rows - a), 768), np.float32)
    big.flush()
    del big


def installed(tree_root: str, key: str, work: str) -> tuple[str, str]:
    """A scratch venv holding a regular install of a copy of `tree_root`, the dependencies
    coming from this interpreter's environment; returns its (tq script, python)."""
    src = os.path.join(work, f"src-{key}")
    shutil.copytree(tree_root, src, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.egg-info", "build", "bench", "tests", "samples", "spec"))
    venv = os.path.join(work, f"venv-{key}")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    site = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(site, "zz-deps.pth"), "w") as f:  # numpy, numba, click, ...
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", os.path.join(venv, "bin", "python"),
                    "install", "-q", "--no-deps", src],
                   check=True, env=_clean_env(os.environ))
    return os.path.join(venv, "bin", "tq"), os.path.join(venv, "bin", "python")


def fmt(v, width=10, digits=3) -> str:
    return f"{'-':>{width}s}" if v is None else f"{v:{width}.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", metavar="TREE", help="another tq checkout to compare with")
    ap.add_argument("--installed", action="store_true",
                    help="also measure each tree as a regular install in a scratch venv")
    ap.add_argument("--repeat", type=int, default=5, help="runs per case; the least is kept")
    ap.add_argument("--big-mb", type=int, default=64, help="size of the larger file (MB)")
    ap.add_argument("--cases", default=None, help="comma-separated case names (default all)")
    ap.add_argument("--workdir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tq-startup-", dir=a.workdir)
    try:
        make_inputs(work, a.big_mb)
        script = os.path.join(os.path.dirname(sys.executable), "tq")
        variants = []
        for t in reversed(trees_for(a.baseline)):  # the baseline first in every table
            env = os.environ if t.env is None else t.env
            name = "base" if t.key == "baseline" else "new"
            variants.append(Variant(f"{name} editable", script, sys.executable, env, work))
            if a.installed:
                root = t.info.get("root") or os.path.dirname(os.path.dirname(
                    os.path.abspath(__file__)))
                tq, py = installed(root, name, work)
                plain = {k: v for k, v in env.items() if k != "PYTHONPATH"}
                variants.append(Variant(f"{name} installed", tq, py, plain, work))
        todo = cases(work, "x")
        if a.cases:
            keep = {c.strip() for c in a.cases.split(",")}
            todo = [c for c in todo if c[0] in keep]
        for v in variants:  # inputs made by each variant; caches and byte code warmed
            run([v.script, "compress", f"{work}/one.npy", "-o", f"{work}/one.tqz", "-f", "-q"],
                v.env)
            run([v.script, "compress", f"{work}/coll.npz", "-o", f"{work}/coll.tqz", "-f", "-q"],
                v.env)
            run([v.script, "compress", f"{work}/big.npy", "-o", f"{work}/big.tqz", "-f", "-q"],
                v.env)
            for name, args in todo:
                run([v.script] + args, v.env)
                run([v.python, "-c", DRIVER] + args, v.env)
        best = {}
        for name, args in todo:
            for _ in range(a.repeat):
                for v in variants:
                    wall, cpu, _ = run([v.script] + args, v.env)
                    spawned = time.time()
                    w2, _, err = run([v.python, "-c", DRIVER] + args, v.env)
                    tl = timeline(err, spawned, spawned + w2)
                    b = best.setdefault((name, v.name), {"wall": wall, "cpu": cpu, "tl": tl})
                    b["wall"], b["cpu"] = min(b["wall"], wall), min(b["cpu"], cpu)
                    for k, val in tl.items():
                        if val is not None and b["tl"].get(k) is not None:
                            b["tl"][k] = min(b["tl"][k], val)
                    env = dict(v.env, PYTHONPROFILEIMPORTTIME="1")
                    groups = import_groups(run([v.script] + args, env)[2])
                    b["imports"] = {g: min(b.get("imports", groups)[g], groups[g])
                                    for g in GROUPS}
        python_start = {v.name: min(run([v.python, "-c", "pass"], v.env)[0]
                                    for _ in range(a.repeat)) for v in variants}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    names = [v.name for v in variants]
    print(f"tq start-up, {a.repeat} runs each, least kept; {os.cpu_count()} cores; "
          f"big = {a.big_mb} MB float32, d = 768; warm caches")
    print("python -c pass: " + ", ".join(f"{n} {python_start[n]:.3f} s" for n in names))
    print("\n1. end to end, seconds (wall / cpu = user + sys)")
    print(f"{'case':20s}" + "".join(f"{n:>24s}" for n in names))
    for name, _ in todo:
        print(f"{name:20s}" + "".join(
            f"{best[(name, n)]['wall']:12.3f}{best[(name, n)]['cpu']:12.3f}" for n in names))
    print("\n2. imports by package, ms of self time (PYTHONPROFILEIMPORTTIME; least per group)")
    print(f"{'case':20s}{'variant':>16s}" + "".join(f"{g:>8s}" for g in GROUPS)
          + f"{'total':>8s}")
    for name, _ in todo:
        for n in names:
            g = best[(name, n)]["imports"]
            print(f"{name:20s}{n:>16s}" + "".join(f"{g[k]:8.0f}" for k in GROUPS)
                  + f"{sum(g.values()):8.0f}")
    print("\n3. timeline, seconds (driver process; see the docstring for the phases)")
    print(f"{'case':20s}{'variant':>16s}" + "".join(f"{p:>10s}" for p in PHASES))
    for name, _ in todo:
        for n in names:
            tl = best[(name, n)]["tl"]
            print(f"{name:20s}{n:>16s}" + "".join(fmt(tl.get(p)) for p in PHASES))


if __name__ == "__main__":
    main()
