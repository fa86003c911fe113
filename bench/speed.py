#!/usr/bin/env python3
"""tq compress / decompress beside zstd and xz on the same files, in one run (issue 25).

    python bench/speed.py                                   # 614 MB and 3 GB, every tool
    python bench/speed.py --rows 200000 --tools tq,zstd --repeat 3      # a quick run
    python bench/speed.py --rows 20000 --tools tq,zstd --repeat 2 --no-warm   # a smoke run
    python bench/speed.py --baseline /work/tq-base           # an older tree's tq beside

Inputs: float32 files of --rows vectors of --dim values (default 200,000 and 1,000,000
of d = 768: 614 MB and 3.07 GB) in --workdir (default /dev/shm/tq-speed), made once and
reused: Gaussian rows with a non-flat spectrum (standard deviation 1/sqrt(1 + i/16) along
the i-th axis of a random rotation, plus an offset of 0.05), seed 1234 -- closer to
embeddings than white noise, and the same bytes on every machine.  Each file is read once
before it is timed (the page cache is warm for every tool alike).

Tools (--tools, any of tq, entropy, zstd, xz):
    tq        tq compress -b 4            /  tq decompress        (the fixed coding)
    entropy   tq compress -b 4 --coding entropy  /  tq decompress
    zstd      zstd -1 -T0                 /  zstd -d
    xz        xz -0 -T0                   /  xz -d -T0
Each command runs in a fresh process (cold start: the interpreter, imports and numba's
cached kernels are loaded each time; the page cache is warm; PYTHONDONTWRITEBYTECODE is
dropped, so that tq runs with its bytecode cached as an installed copy does -- a tree
without .pyc files pays ~0.1-0.2 s of compiling per process), the tools in turns
(A B C A B C ...), best of --repeat (xz: of --xz-repeat, default 1: xz -0 runs at
~10 MB/s per core on these floats); outputs are deleted after each run, outside the
timing, so no run pays for freeing an earlier one's pages.  Peak RSS is the child's
ru_maxrss (bench/measure.py run), the largest over the runs; "cpu s" the least CPU time (user + system) of a run, which a
machine shared with other work stretches less than the wall time.  Warm start (--warm, the
default): the library call in a process that has loaded tq and its kernels once
(tqcli.compress_file / decompress_file), best of --repeat, its process's peak RSS.

GB/s are of the float32 bytes (input of compress, output of decompress); "vs zstd" is
zstd's time over the tool's (above 1: faster than zstd).  The last column checks the
issue's targets for the fixed coding: decompress >= 1.3x zstd -d, compress >= 1.5x
zstd -1 -T0, peak RSS <= 300 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from measure import LAUNCHER, MIB, Failure, log, remove, reusable, warm_cache  # noqa: E402

# measure.py's launcher, also reporting the child's CPU seconds (user + system): on a
# machine shared with other work the wall time of a parallel command is stretched, its CPU
# time much less; on a quiet 2-core machine the wall time is at least CPU / 2
CPU_LAUNCHER = LAUNCHER.replace("print(repr(wall), ru.ru_maxrss,",
                                "print(repr(wall), repr(ru.ru_utime + ru.ru_stime), "
                                "ru.ru_maxrss,")


def run(argv, env=None, stdout_path=None):
    """(wall seconds, CPU seconds, peak RSS bytes, exit status, stderr) of argv alone."""
    import subprocess

    fd, errpath = tempfile.mkstemp(prefix="tqspeed-err-")
    os.close(fd)
    try:
        exe = shutil.which(argv[0]) or argv[0]
        res = subprocess.run([sys.executable, "-S", "-E", "-c", CPU_LAUNCHER,
                              stdout_path or os.devnull, errpath, exe, *argv[1:]],
                             env=os.environ if env is None else env, capture_output=True,
                             text=True)
        if res.returncode != 0:
            raise Failure(f"launcher failed: {res.stderr.strip()[-300:]}")
        wall, cpu, maxrss, code = res.stdout.split()
        with open(errpath, errors="replace") as f:
            err = f.read().strip()
    finally:
        os.unlink(errpath)
    return float(wall), float(cpu), int(maxrss) * 1024, int(code), err

TARGETS = {"compress": 1.5, "decompress": 1.3}  # the fixed coding's speed over zstd's
RSS_TARGET = 300 * MIB
GEN_BLOCK = 1 << 16
SEED = 1234

WARM_WORKER = r"""
import json, os, sys, tempfile, time
import numpy as np
import tqcli
verb, src, out, reps, coding = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
opts = dict(bits=4, coding=coding)
with tempfile.TemporaryDirectory(dir=os.path.dirname(out)) as tmp:  # load the kernels once
    x = np.random.default_rng(0).standard_normal((4096, 768)).astype(np.float32)
    np.save(os.path.join(tmp, "w.npy"), x)
    tqcli.compress_file(os.path.join(tmp, "w.npy"), os.path.join(tmp, "w.tqz"), **opts)
    tqcli.decompress_file(os.path.join(tmp, "w.tqz"), os.path.join(tmp, "b.npy"))
times = []
for _ in range(reps):
    if os.path.exists(out):
        os.unlink(out)
    t, c = time.perf_counter(), time.process_time()
    if verb == "compress":
        tqcli.compress_file(src, out, **opts)
    else:
        tqcli.decompress_file(src, out)
    times.append((time.perf_counter() - t, time.process_time() - c))
os.unlink(out)
print(json.dumps(times))
"""


def make_input(path: str, n: int, d: int) -> str:
    """The float32 (n, d) input at path (module docstring), reused when already there."""
    import numpy as np
    from numpy.lib.format import open_memmap

    if reusable(path, n, d):
        return "reused"
    rng = np.random.default_rng(SEED)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    mix = ((1.0 / np.sqrt(1.0 + np.arange(d) / 16.0))[:, None] * q).astype(np.float32)
    tmp = path + ".part"
    open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))
    for a in range(0, n, GEN_BLOCK):
        m = min(GEN_BLOCK, n - a)
        mm = open_memmap(tmp, mode="r+")
        mm[a:a + m] = rng.standard_normal((m, d), dtype=np.float32) @ mix + np.float32(0.05)
        mm.flush()
        del mm
    os.replace(tmp, path)
    return "made"


def commands(tool: str, tq: list[str], src: str, packed: str, back: str):
    """(compress argv, compress stdout file or None, decompress argv, its stdout file)."""
    if tool in ("tq", "entropy", "base", "base-entropy"):
        extra = ["--coding", "entropy"] if tool.endswith("entropy") else []
        return ([*tq, "compress", src, "-b", "4", *extra, "-f", "-q", "-o", packed], None,
                [*tq, "decompress", packed, "-f", "-q", "-o", back], None)
    if tool == "zstd":
        return (["zstd", "-1", "-T0", "-q", "-f", src, "-o", packed], None,
                ["zstd", "-d", "-q", "-f", packed, "-o", back], None)
    if tool == "xz":
        return (["xz", "-0", "-T0", "-c", src], packed, ["xz", "-d", "-T0", "-c", packed], back)
    raise SystemExit(f"speed: unknown tool {tool!r}")


NAMES = {"tq": "tq -b 4 (fixed)", "entropy": "tq -b 4 --coding entropy",
         "base": "baseline tq -b 4 (fixed)", "base-entropy": "baseline tq --coding entropy",
         "zstd": "zstd -1 -T0 / zstd -d", "xz": "xz -0 -T0 / xz -d -T0"}


def measure_turns(jobs: dict, repeat: int, repeats: dict | None = None) -> dict:
    """Best wall time and largest peak RSS of each job {name: (argv, stdout, env, after)},
    the jobs in turns, `after` run outside the timing after each; repeats: fewer runs
    for some jobs."""
    res = {k: {"times": [], "cpu": [], "rss": []} for k in jobs}
    for turn in range(repeat):
        for k, (argv, stdout, env, after) in jobs.items():
            if turn >= (repeats or {}).get(k, repeat):
                continue
            wall, cpu, peak, code, err = run(argv, env=env, stdout_path=stdout)
            if code != 0:
                raise Failure(f"{k}: {' '.join(argv[:3])}...: exit {code}: "
                              f"{(err.splitlines() or [''])[-1]}")
            res[k]["times"].append(wall)
            res[k]["cpu"].append(cpu)
            res[k]["rss"].append(peak)
            if after:
                after()
    for r in res.values():
        r.update(best=min(r["times"]), best_cpu=min(r["cpu"]), peak_rss=max(r["rss"]))
    return res


def warm(verb: str, src: str, out: str, repeat: int, coding: str, env) -> dict:
    """The library call in a process that loaded the kernels first: best of `repeat`."""
    fd, path = tempfile.mkstemp(prefix="tqspeed-", suffix=".json")
    os.close(fd)
    try:
        wall, _, peak, code, err = run([sys.executable, "-c", WARM_WORKER, verb, src, out,
                                        str(repeat), coding], env=env, stdout_path=path)
        if code != 0:
            raise Failure(f"warm {verb}: exit {code}: {(err.splitlines() or [''])[-1]}")
        with open(path) as f:
            times = json.loads(f.read().strip().splitlines()[-1])
    finally:
        remove(path)
    return {"best": min(t for t, _ in times), "best_cpu": min(c for _, c in times),
            "times": times, "peak_rss": peak}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="200000,1000000",
                    help="vectors of each input, comma-separated (default 200000,1000000)")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--tools", default="tq,entropy,zstd,xz")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--xz-repeat", type=int, default=1,
                    help="runs of xz (default 1: xz -0 takes minutes on a 3 GB file)")
    ap.add_argument("--warm", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the in-process library call (warm start)")
    ap.add_argument("--baseline", default=None,
                    help="a tq source tree measured beside (python -m tqcli with PYTHONPATH); "
                         "then both trees run as python -m tqcli")
    ap.add_argument("--workdir", default="/dev/shm/tq-speed")
    ap.add_argument("--json", default=None, help="save every raw timing here")
    args = ap.parse_args(argv)
    tools = [t for t in args.tools.split(",") if t]
    for t in tools:
        if t not in NAMES or t.startswith("base"):
            ap.error(f"unknown tool {t!r} (tq, entropy, zstd, xz)")
        if t in ("zstd", "xz") and not shutil.which(t):
            ap.error(f"{t} is not installed (apt-get install zstd xz-utils)")
    if "zstd" not in tools:
        log("no zstd in --tools: the 'vs zstd' column stays empty")
    here_tree = os.path.dirname(HERE)
    # as an installed tq runs: with its bytecode cached (the first, untimed run writes it
    # where the tree is writable), not compiling every module in every timed process
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if args.baseline:
        tq = [sys.executable, "-m", "tqcli"]
        env_new = dict(env, PYTHONPATH=here_tree)
        env_old = dict(env, PYTHONPATH=os.path.abspath(args.baseline))
        tools += [{"tq": "base", "entropy": "base-entropy"}[t] for t in list(tools)
                  if t in ("tq", "entropy")]
    else:
        exe = os.path.join(os.path.dirname(sys.executable), "tq")
        tq = [exe if os.access(exe, os.X_OK) else (shutil.which("tq") or "tq")]
        env_new = env_old = env
    os.makedirs(args.workdir, exist_ok=True)
    d = args.dim
    rows = [int(r) for r in args.rows.split(",") if r]
    report, raw = [], {}
    # each tq writes its own kernels' cache once, outside the timing
    small = os.path.join(args.workdir, "first.npy")
    make_input(small, 1000, d)
    for tool in tools:
        if tool in ("tq", "entropy", "base", "base-entropy"):
            tenv = env_old if tool.startswith("base") else env_new
            c, _, dd, _ = commands(tool, tq, small, small + ".tqz", small + ".back.npy")
            for cmd in (c, dd):
                if run(cmd, env=tenv)[3] != 0:
                    raise Failure(f"{tool}: {' '.join(cmd)} failed")
    remove(small, small + ".tqz", small + ".back.npy")
    for n in rows:
        src = os.path.join(args.workdir, f"spec_{n}x{d}.npy")
        log(f"input {n} x {d}: {make_input(src, n, d)} {src}")
        warm_cache(src)
        gb = n * d * 4 / 1e9
        packed = {t: os.path.join(args.workdir, f"out.{t}") for t in tools}
        back = {t: os.path.join(args.workdir, f"back.{t}.npy") for t in tools}
        cmds = {t: commands(t, tq, src, packed[t], back[t]) for t in tools}
        envs = {t: env_old if t.startswith("base") else env_new for t in tools}
        log(f"compress, {len(tools)} tools in turns, {args.repeat} rounds ...")
        fewer = {"xz": args.xz_repeat}
        comp = measure_turns({t: (cmds[t][0], cmds[t][1], envs[t], None) for t in tools},
                             args.repeat, fewer)
        sizes = {t: os.path.getsize(packed[t]) for t in tools}
        log("decompress ...")
        dec = measure_turns({t: (cmds[t][2], cmds[t][3], envs[t],
                                 lambda p=back[t]: remove(p)) for t in tools}, args.repeat,
                           fewer)
        warm_rows = {}
        if args.warm:
            for t in tools:
                if t not in ("tq", "entropy", "base", "base-entropy"):
                    continue
                coding = "entropy" if t.endswith("entropy") else "fixed"
                log(f"warm start, {t} ...")
                warm_rows[t] = (warm("compress", src, packed[t] + ".w", args.repeat, coding,
                                     envs[t]),
                                warm("decompress", packed[t], back[t], args.repeat, coding,
                                     envs[t]))
        remove(*packed.values(), *back.values())
        raw[n] = {"compress": comp, "decompress": dec, "sizes": sizes,
                  "warm": warm_rows}
        for verb, res in (("compress", comp), ("decompress", dec)):
            ref = res.get("zstd", {}).get("best")
            for t in tools:
                report.append((n, gb, verb, NAMES[t], res[t]["best"], res[t]["best_cpu"],
                               ref, res[t]["peak_rss"], sizes[t], t))
                if t in warm_rows:
                    w = warm_rows[t][0 if verb == "compress" else 1]
                    report.append((n, gb, verb, NAMES[t] + ", warm", w["best"], w["best_cpu"],
                                   ref, w["peak_rss"], sizes[t], t + "-warm"))
    print(f"tq speed: {os.cpu_count()} cores, in {args.workdir}, best of {args.repeat}, "
          f"tools in turns; GB/s of the float32 bytes; 'vs zstd' = zstd's time / the tool's")
    print(f"{'input':>14} {'':<10} {'tool':<34} {'seconds':>8} {'cpu s':>6} {'GB/s':>6} "
          f"{'vs zstd':>8} {'peak RSS':>9} {'output':>10} {'target':>8}")
    for n, gb, verb, name, best, cpu, ref, rss, size, key in report:
        vs = f"{ref / best:7.2f}x" if ref else f"{'':>8}"
        target = ""
        if key == "tq" and ref:
            ok = ref / best >= TARGETS[verb] and rss <= RSS_TARGET
            target = f"{'met' if ok else 'NOT met'}"
        print(f"{n:>8}x{d:<5} {verb:<10} {name:<34} {best:>8.3f} {cpu:>6.2f} {gb / best:>6.2f} {vs} "
              f"{rss / MIB:>5.0f} MiB {size / 1e6:>7.1f}MB {target:>8}")
    print(f"targets (fixed coding, cold): decompress >= {TARGETS['decompress']}x zstd -d, "
          f"compress >= {TARGETS['compress']}x zstd -1 -T0, peak RSS <= 300 MiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({str(k): v for k, v in raw.items()}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
