"""Search on compressed vectors, one thread, side by side: tq's scan against faiss and turbovec.

    python bench/search.py                       # d 384 and 768, b 2 and 4, n 200k, 1 and 1000 queries
    python bench/search.py --quick               # n 20k, 100 queries: a check that it runs
    python bench/search.py --tq-api index        # tq through tqcli.load_index(...).search

Run it with a Python that has faiss-cpu and turbovec besides tq (never the core install):

    python3 -m venv /work/venv-bench
    /work/venv-bench/bin/pip install faiss-cpu turbovec numpy numba scipy h5py click rich psutil
    /work/venv-bench/bin/pip install --no-deps -e .
    /work/venv-bench/bin/python bench/search.py

Per (d, bits) the data are n random unit vectors (seeded) and held-out unit queries; the
ground truth is the exact float top-10 (float32 inner products, as faiss's flat index).  Each tool runs in a
child process of its own (its peak RSS is its own): it builds its index once, then the
parent asks the children in turn -- tool after tool, repetition after repetition -- to
answer the same queries, and keeps each tool's best time.  Everything runs on one thread
(OMP_NUM_THREADS, RAYON_NUM_THREADS, NUMBA_NUM_THREADS = 1; faiss.omp_set_num_threads(1)).

Columns: pairs/s = queries x n / best seconds (a single query is one call with one query;
a batch is one call with all of them); recall = recall@10@10 against the exact top-10
(the tool's own 10 hits, no re-ranking); bytes = code bytes per vector; RSS = the child's
peak resident memory (it includes the float data read for the build) and its resident
memory after the build with the floats dropped.  The slow tools (exact flat search,
faiss's scalar quantisers, RaBitQ) answer only --slow-nq of the batch (the q column).

tq (--tq-api kernels): encode_block + layout_codes once; per search query_transform
(centre and rotation), prepare_queries (uint8 tables) and scan_topk (kernels/scan*.py,
the instruction-set path printed in the title).  Without re-ranking, as the others.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import time

for _v in ("OMP_NUM_THREADS", "RAYON_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS",
           "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import numpy as np  # noqa: E402

K = 10
TOOLS = ("tq", "turbovec", "faiss-pqfs", "faiss-flat", "faiss-sq", "faiss-sq-tqmse", "faiss-rabitq")
SLOW = {"faiss-flat", "faiss-sq", "faiss-sq-tqmse", "faiss-rabitq"}


def unit_rows(rng, n, d):
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def exact_topk(x, q, k=K, block=20000):
    """Top-k ids by float32 inner product (as exact float search does; ties to the
    smaller id), blockwise."""
    best_s = np.full((q.shape[0], 0), -np.inf, np.float32)
    best_i = np.zeros((q.shape[0], 0), np.int64)
    for a in range(0, x.shape[0], block):
        s = q @ x[a:a + block].T
        ids = np.broadcast_to(np.arange(a, a + s.shape[1]), s.shape)
        s, ids = np.concatenate([best_s, s], 1), np.concatenate([best_i, ids], 1)
        order = np.lexsort((ids, -s), axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(s, order, 1), np.take_along_axis(ids, order, 1)
    return best_i


def recall(found, truth):
    found = np.asarray(found)[:, :K]
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / K
                          for f, t in zip(found, truth)]))


def peak_rss() -> int:
    """This process's peak resident memory (VmHWM: ru_maxrss would carry the parent's
    peak over fork and exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------- tools (child side)


def build_tq(x, bits, api, workdir):
    from tqcli import kernels
    from tqcli.format.header import make_header
    from tqcli.kernels import scan
    from tqcli.library.blocks import encode_block, query_transform

    kernels.set_threads(1)
    d = x.shape[1]
    if api == "index":
        import tqcli

        path = os.path.join(workdir, f"tq-{d}-{bits}.tqz")
        with open(path, "wb") as f:
            f.write(tqcli.compress(x, bits=bits))
        index = tqcli.load_index(path)

        def search(q):
            return index.search(q, k=K)[0]
        return search, d * bits / 8, "index"
    h = make_header(d, bits)
    cc = encode_block(x, h)
    codes = scan.layout_codes(cc.codes, cc.bits, cc.rows, cc.dim)
    scales = np.asarray(cc.scales)
    cents = h.codebook
    del cc

    def search(q):
        t = scan.prepare_queries(query_transform(q, h), cents)
        return scan.scan_topk(codes, t, K, scale=scales)[0]
    return search, codes.nbytes / x.shape[0], scan.features()["isa"]


def build_turbovec(x, bits):
    import turbovec

    ix = turbovec.TurboQuantIndex(x.shape[1], bits)
    ix.add(x)
    ix.prepare()
    return (lambda q: ix.search(q, K)[1]), x.shape[1] * bits / 8 + 4, ""


def build_faiss(tool, x, bits):
    import faiss

    faiss.omp_set_num_threads(1)
    d = x.shape[1]
    ip = faiss.METRIC_INNER_PRODUCT
    sq = faiss.ScalarQuantizer
    if tool == "faiss-flat":
        ix = faiss.IndexFlatIP(d)
    elif tool == "faiss-sq":
        if bits != 4:
            return None
        ix = faiss.IndexScalarQuantizer(d, sq.QT_4bit, ip)
    elif tool == "faiss-sq-tqmse":
        qt = getattr(sq, f"QT_{bits}bit_tqmse", None)
        if qt is None:
            return None
        ix = faiss.IndexScalarQuantizer(d, qt, ip)
    elif tool == "faiss-pqfs":
        ix = faiss.IndexPQFastScan(d, d * bits // 4, 4, ip)  # d*bits/8 bytes, as tq's codes
    elif tool == "faiss-rabitq":
        ix = faiss.IndexRaBitQ(d, ip, bits)
    else:
        raise ValueError(tool)
    if not ix.is_trained:
        ix.train(x[:min(len(x), 20000)])
    ix.add(x)
    nbytes = ix.sa_code_size() if hasattr(ix, "sa_code_size") and tool != "faiss-pqfs" else d * bits / 8
    return (lambda q: ix.search(q, K)[1]), float(nbytes), ""


def child(args):
    """Build one tool's index, then answer {"nq": k} lines with {"t": s, "recall": r}."""
    x = np.load(os.path.join(args.data, "x.npy"))
    q = np.load(os.path.join(args.data, "q.npy"))
    truth = np.load(os.path.join(args.data, "truth.npy"))
    t0 = time.perf_counter()
    if args.child == "tq":
        built = build_tq(x, args.bits, args.tq_api, args.data)
    elif args.child == "turbovec":
        built = build_turbovec(x, args.bits)
    else:
        built = build_faiss(args.child, x, args.bits)
    if built is None:
        print(json.dumps({"skip": True}), flush=True)
        return
    search, nbytes, note = built
    build_s = time.perf_counter() - t0
    del x
    gc.collect()
    print(json.dumps({"ready": True, "bytes": nbytes, "build": build_s, "note": note,
                      "rss_index": rss_now()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("quit"):
            break
        nq = cmd["nq"]
        qq = np.ascontiguousarray(q[:nq])
        t0 = time.perf_counter()
        ids = search(qq)
        dt = time.perf_counter() - t0
        print(json.dumps({"t": dt, "recall": recall(ids, truth[:nq])}), flush=True)
    print(json.dumps({"peak": peak_rss()}), flush=True)


# ---------------------------------------------------------------------- parent


def run_config(args, d, bits, out):
    rng = np.random.default_rng(1000 * d + bits)
    nqmax = max(args.nq)
    x = unit_rows(rng, args.n, d)
    q = unit_rows(rng, nqmax, d)
    folder = os.path.join(args.workdir, f"d{d}-b{bits}")
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, "x.npy"), x)
    np.save(os.path.join(folder, "q.npy"), q)
    np.save(os.path.join(folder, "truth.npy"), exact_topk(x, q))
    del x
    procs = {}
    for tool in args.tools:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", tool, "--data", folder,
               "--bits", str(bits), "--tq-api", args.tq_api]
        procs[tool] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True, bufsize=1)
        # build one at a time: a build must not share the CPU with another's
        info = json.loads(procs[tool].stdout.readline() or '{"skip": true}')
        if info.get("skip"):
            procs[tool].wait()
            del procs[tool]
            continue
        out[(d, bits, tool)] = {"info": info, "best": {}, "recall": {}}
    for nq in args.nq:
        for _ in range(args.reps):
            for tool, p in procs.items():  # alternate the tools within each repetition
                k = min(nq, args.slow_nq) if tool in SLOW and nq > 1 else nq
                p.stdin.write(json.dumps({"nq": k}) + "\n")
                r = json.loads(p.stdout.readline())
                rec = out[(d, bits, tool)]
                prev = rec["best"].get(nq)
                if prev is None or r["t"] < prev[0]:
                    rec["best"][nq] = (r["t"], k)
                rec["recall"][nq] = r["recall"]
    for tool, p in procs.items():
        p.stdin.write(json.dumps({"quit": True}) + "\n")
        out[(d, bits, tool)]["peak"] = json.loads(p.stdout.readline())["peak"]
        p.wait()
    shutil.rmtree(folder, ignore_errors=True)  # up to 0.6 GB of floats in memory (/dev/shm)


def table(args, out) -> str:
    lines = []
    for d in args.dims:
        for bits in args.bits:
            lines.append(f"\n### d = {d}, b = {bits}, n = {args.n}")
            lines.append("| tool | bytes/vec | q | pairs/s 1 query | q | pairs/s batch "
                         "| recall@10@10 | peak RSS MB | RSS after build MB | build s |")
            lines.append("|---|---|---|---|---|---|---|---|---|---|")
            for tool in args.tools:
                rec = out.get((d, bits, tool))
                if rec is None:
                    continue
                name = tool + (f" ({rec['info']['note']})" if rec["info"]["note"] else "")
                cells = []
                for nq in args.nq:
                    t, k = rec["best"][nq]
                    cells += [str(k), f"{k * args.n / t / 1e6:.1f}M"]
                rc = rec["recall"][max(args.nq)]
                lines.append(f"| {name} | {rec['info']['bytes']:.0f} | " + " | ".join(cells)
                             + f" | {rc:.3f} | {rec['peak'] / 2**20:.0f} | "
                             + f"{rec['info']['rss_index'] / 2**20:.0f} | "
                             + f"{rec['info']['build']:.1f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", default="384,768")
    ap.add_argument("--bits", default="2,4")
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--nq", default="1,1000", help="query counts: a single query, then a batch")
    ap.add_argument("--slow-nq", type=int, default=20)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--tq-api", choices=("kernels", "index"), default="kernels")
    ap.add_argument("--workdir", default="/dev/shm/tq-bench-search")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.bits = int(args.bits)
        return child(args)
    args.dims = [int(v) for v in args.dims.split(",")]
    args.bits = [int(v) for v in args.bits.split(",")]
    args.nq = [int(v) for v in args.nq.split(",")]
    args.tools = [t for t in args.tools.split(",") if t]
    if args.quick:
        args.n, args.nq, args.reps = 20_000, [1, 100], 2
    from tqcli.kernels import scan

    f = scan.features()
    print(f"# search bench: one thread, tq scan path {f['isa']} (cpu: {', '.join(f['cpu'])}), "
          f"n = {args.n}, best of {args.reps}, tq api {args.tq_api}")
    out = {}
    t0 = time.time()
    for d in args.dims:
        for bits in args.bits:
            run_config(args, d, bits, out)
            print(f"  done d={d} b={bits} ({time.time() - t0:.0f} s)", file=sys.stderr)
    print(table(args, out))


if __name__ == "__main__":
    main()
