"""The fixed-width report bench.py prints: built from the run's metadata and results.

Every row is looked up by its fields (section, d, bits, tool, op), so the report prints
what was measured and leaves a dash where something was skipped or failed.
"""

from __future__ import annotations

MIB = 1 << 20

TQ_TOOLS = ("tq-cli", "tq-lib")     # the rows that run once per tree in a comparison

TOOL_LABEL = {
    "tq-cli": "tq CLI        file->file",
    "tq-lib": "tq library    in memory",
    "dense": "dense numpy   in memory",
    "faiss": "faiss SQ+rot  in memory",
    "zstd": "zstd -1 -T0   file->file",
}


def _rate(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.0f}k"
    return f"{v:.0f}"


def _find(results, **kw):
    for r in results:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def report(meta, results, args) -> str:
    L = []
    add = L.append
    gib = meta["mem_bytes"] / (1 << 30)
    add(f"tq benchmark  {meta['date']}")
    add(f"machine   {meta['nproc']} cores (nproc), {meta['cpu']}, {gib:.1f} GiB RAM; "
        f"load average {meta['loadavg_start']:.2f} at start, {meta['loadavg_end']:.2f} at end")
    fa = (f"faiss {meta['faiss']}" if meta["faiss"] else
          "faiss skipped" if meta.get("faiss_skipped") else "faiss not installed")
    add(f"versions  tq {meta['tq']} ({meta['tq_git'] or 'no git'}), python {meta['python']}, "
        f"numpy {meta['numpy']}, numba {meta['numba']}, "
        f"zstd {meta['zstd'] or 'not found'}, {fa}")
    add(f"tq        {meta['tq_path']}")
    add(f"rss floor {meta['rss_floor'] / MIB:.1f} MiB (what the launcher reports for /bin/true; "
        f"included in every peak RSS figure)")
    blas = ", ".join(f"{k}={v}" for k, v in meta["blas_env"].items())
    runs = f"{args.repeat} runs" if args.repeat > 1 else "1 run"
    add(f"runs      best of {runs}, one process at a time; inputs: N(0,1) float32 "
        f".npy in {args.workdir}, page-cached")
    add("units     GB/s = 1e9 bytes of float32 input (= output of decompress) per second; "
        "vec/s = vectors per second; MiB = 2^20 bytes")
    if blas:
        add(f"note      {blas} set here; removed for the dense baseline only")
    trees = meta.get("trees")
    nt = "new" if trees else None          # the "tree" field of the new tree's tq rows
    if trees:
        for key in ("new", "baseline"):
            t = trees[key]
            add(f"{key:<10}tqcli {t['version']} from {t['root']} "
                f"({t['git'] or 'no git'}{', commit ' + t['commit'][:12] if t['commit'] else ''})")
        add("turns     every tq measurement runs for both trees in turn (A B A B, best of "
            f"{args.repeat} each); library rows: one process per run (a warm-up, one timed "
            "call)")
        if meta.get("numba_cache_dir_removed"):
            add("note      NUMBA_CACHE_DIR removed for both trees: numba caches next to each "
                "tree's sources")
    add("")

    # ---- start-up
    st = [r for r in results if r.get("section") == "startup"]
    if st:
        add("START-UP (wall time of the whole command, warm cache; best / median of 5)")
        for r in st:
            if r.get("tree") == "baseline":
                continue
            ts = sorted(r["times"])
            add(f"  {r['label']:<44}{ts[0] * 1e3:8.0f} ms {ts[len(ts) // 2] * 1e3:8.0f} ms"
                f"   peak {r['peak_rss'] / MIB:5.0f} MiB")
            o = _find(st, label=r["label"], tree="baseline")
            if o:
                ts = sorted(o["times"])
                add(f"  {'  baseline':<44}{ts[0] * 1e3:8.0f} ms "
                    f"{ts[len(ts) // 2] * 1e3:8.0f} ms   peak {o['peak_rss'] / MIB:5.0f} MiB"
                    f"   time new/base {r['best'] / o['best']:.2f}")
        add("")

    # ---- main table
    main = [r for r in results if r.get("section") == "main"]
    if main:
        add("THROUGHPUT AND MEMORY (peak RSS of the process; in-memory rows: peak, and "
            "in brackets its growth during the timed calls)")
        h1 = (f"{'d':>5} {'b':>2} {'n':>9}  {'tool':<26}"
              f"{'compress':>9} {'':>7} {'':>13}  "
              f"{'decompress':>10} {'':>7} {'':>13}  {'size':>6}  {'nmse':>8}"
              + (f"  {'new/base':>11}" if trees else ""))
        h2 = (f"{'':>5} {'':>2} {'':>9}  {'':<26}"
              f"{'GB/s':>9} {'vec/s':>7} {'peak MiB':>13}  "
              f"{'GB/s':>10} {'vec/s':>7} {'peak MiB':>13}  {'ratio':>6}  {'':>8}"
              + (f"  {'comp   dec':>11}" if trees else ""))
        add(h1)
        add(h2)
        add("-" * len(h1))
        dims = sorted({r["d"] for r in main})
        for d in dims:
            bits = sorted({r["bits"] for r in main if r["d"] == d and r["bits"] is not None})
            for b in bits:
                first = True
                for tool in ("tq-cli", "tq-lib", "dense", "faiss", "zstd"):
                    bsel = None if tool == "zstd" else b
                    tree = nt if tool in TQ_TOOLS else None
                    c = _find(main, d=d, bits=bsel, tool=tool, op="compress", tree=tree)
                    x = _find(main, d=d, bits=bsel, tool=tool, op="decompress", tree=tree)
                    if c is None and x is None:
                        continue
                    lead = (f"{d:>5} {b:>2} {c['n'] if c else x['n']:>9}" if first
                            else f"{'':>5} {'':>2} {'':>9}")
                    first = False
                    label = TOOL_LABEL[tool]
                    add(f"{lead}  {label:<26}{_cells(c)}  {_cells(x)}  "
                        f"{_ratio(c):>6}  {_nmse_cell(x):>8}")
                    if trees and tool in TQ_TOOLS:
                        oc = _find(main, d=d, bits=b, tool=tool, op="compress",
                                   tree="baseline")
                        ox = _find(main, d=d, bits=b, tool=tool, op="decompress",
                                   tree="baseline")
                        cells = f"{_speedup(c, oc):>5} {_speedup(x, ox):>5}"
                        add(f"{'':>5} {'':>2} {'':>9}  {'  baseline':<26}{_cells(oc)}  "
                            f"{_cells(ox)}  {_ratio(oc):>6}  {_nmse_cell(ox):>8}  "
                            f"{cells:>11}")
            add("")
        if any(r["tool"] == "zstd" for r in main):
            add("zstd does not depend on b: it runs once per d and its row is repeated under "
                "each b")
        if any(r["tool"] == "faiss" for r in main):
            qts = ", ".join(f"QT_{q}" for q in meta.get("faiss_qtypes", {}).values())
            add(f"faiss SQ+rot = faiss.ScalarQuantizer {qts} behind faiss.RandomRotationMatrix,"
                " norms kept as float32")
            add("")
        if trees:
            add("baseline rows: the same measurement of the baseline tree, in turns with the "
                "row above; new/base = throughput of the new tree / the baseline's (> 1: new "
                "is faster)")
        if any(r.get("error") for r in main):
            add("errors:")
            for r in main:
                if r.get("error"):
                    who = f" ({r['tree']})" if r.get("tree") else ""
                    add(f"  d={r['d']} b={r['bits']} {r['tool']}{who}: {r['error']}")
            add("")

        # ---- the figures that count
        add("FIGURES THAT COUNT: tq throughput / baseline throughput, same run "
            "(> 1: tq is faster)")
        cols = [("CLI/zstd", "tq-cli", "zstd", "comp"), ("CLI/zstd", "tq-cli", "zstd", "dec"),
                ("lib/dense", "tq-lib", "dense", "comp"), ("lib/dense", "tq-lib", "dense", "dec")]
        if meta["faiss"]:
            cols += [("lib/faiss", "tq-lib", "faiss", "comp"),
                     ("lib/faiss", "tq-lib", "faiss", "dec")]
        add(f"{'d':>5} {'b':>2}  " + "".join(f"{c[0] + ' ' + c[3]:>16}" for c in cols))
        for d in dims:
            for b in sorted({r["bits"] for r in main if r["d"] == d and r["bits"] is not None}):
                cells = []
                for _, mine, theirs, op in cols:
                    opn = "compress" if op == "comp" else "decompress"
                    a = _find(main, d=d, bits=b, tool=mine, op=opn, tree=nt)
                    z = _find(main, d=d, bits=None if theirs == "zstd" else b, tool=theirs,
                              op=opn)
                    if a and z and "best" in a and "best" in z:
                        cells.append(f"{z['best'] / a['best']:.2f}x")
                    else:
                        cells.append("-")
                add(f"{d:>5} {b:>2}  " + "".join(f"{c:>16}" for c in cells))
        if meta.get("faiss_skipped"):
            add("  (faiss skipped: --no-faiss)")
        elif not meta["faiss"]:
            add("  (faiss not installed: pip install faiss-cpu==1.15.1 adds the lib/faiss "
                "columns)")
        add("")

    # ---- memory
    mem = [r for r in results if r.get("section") == "memory"]
    if mem:
        add("MEMORY: peak RSS of the tq command against input size (d=768, b=4, file->file)")
        add(f"  {'input':<32}{'compress':>10} {'':>9}   {'decompress':>10} {'':>9}")
        add(f"  {'':<32}{'GB/s':>10} {'peak MiB':>9}   {'GB/s':>10} {'peak MiB':>9}")
        rows = []
        small_c = _find(results, section="main", d=768, bits=4, tool="tq-cli", op="compress",
                        tree=nt)
        small_x = _find(results, section="main", d=768, bits=4, tool="tq-cli",
                        op="decompress", tree=nt)
        if small_c and "best" in small_c:
            rows.append((small_c, small_x))
        big_c = _find(mem, op="compress", tree=nt)
        big_x = _find(mem, op="decompress", tree=nt)
        rows.append((big_c, big_x))
        for c, x in rows:
            n, nb = c["n"], c["in_bytes"]
            name = f"{nb / 1e9:.2f} GB ({n:,} vectors)"
            add(f"  {name:<32}{_gbps(c):>10} {_mib(c):>9}   {_gbps(x):>10} {_mib(x):>9}")
        oc, ox = _find(mem, op="compress", tree="baseline"), _find(mem, op="decompress",
                                                                     tree="baseline")
        if trees and oc:
            add(f"  {'  baseline, same big input':<32}{_gbps(oc):>10} {_mib(oc):>9}   "
                f"{_gbps(ox):>10} {_mib(ox):>9}")
        if len(rows) == 2 and all(r and "peak_rss" in r for pair in rows for r in pair):
            grow = [rows[1][i]["peak_rss"] - rows[0][i]["peak_rss"] for i in (0, 1)]
            k = rows[1][0]["in_bytes"] / rows[0][0]["in_bytes"]
            flat = all(g <= 0.15 * rows[0][i]["peak_rss"] + 16 * MIB
                       for i, g in enumerate(grow))
            g0, g1 = (int(round(g / MIB)) for g in grow)
            add(f"  {k:.1f}x the input: peak RSS {g0:+d} MiB (compress), "
                f"{g1:+d} MiB (decompress) -> "
                + ("flat: memory does not grow with input size" if flat
                   else "GROWS with input size"))
        elif len(rows) == 1:
            add("  (run with d=768 and b=4 in --dims/--bits for the comparison row)")
        add("")
    if trees:
        _comparison(add, results, nt)
    return "\n".join(L)


def _comparison(add, results, nt) -> None:
    """The acceptance figures of a refactor: the new tree over the baseline, per (d, b)."""
    add("NEW VS BASELINE (same run, in turns): throughput new/baseline (> 1: new is faster), "
        "peak RSS new/baseline (< 1: new uses less)")
    cols = [("tq-cli", "compress", "CLI comp"), ("tq-cli", "decompress", "CLI dec"),
            ("tq-lib", "compress", "lib comp"), ("tq-lib", "decompress", "lib dec")]
    add(f"{'d':>5} {'b':>2}  " + "".join(f"{c[2]:>10}" for c in cols) + "   RSS "
        + "".join(f"{c[2]:>10}" for c in cols) + "   .tqz bytes")
    main = [r for r in results if r.get("section") == "main" and r["tool"] in TQ_TOOLS]
    for d in sorted({r["d"] for r in main}):
        for b in sorted({r["bits"] for r in main if r["d"] == d}):
            speed, rss = [], []
            for tool, op, _ in cols:
                a = _find(main, d=d, bits=b, tool=tool, op=op, tree=nt)
                o = _find(main, d=d, bits=b, tool=tool, op=op, tree="baseline")
                speed.append(_speedup(a, o))
                rss.append(f"{a['peak_rss'] / o['peak_rss']:.2f}x"
                           if a and o and "peak_rss" in a and "peak_rss" in o else "-")
            a = _find(main, d=d, bits=b, tool="tq-cli", op="compress", tree=nt)
            o = _find(main, d=d, bits=b, tool="tq-cli", op="compress", tree="baseline")
            same = ("-" if not (a and o and a.get("out_sha256") and o.get("out_sha256"))
                    else "identical" if a["out_sha256"] == o["out_sha256"] else "DIFFER")
            add(f"{d:>5} {b:>2}  " + "".join(f"{s:>10}" for s in speed) + "       "
                + "".join(f"{s:>10}" for s in rss) + f"   {same}")
    st = [r for r in results if r.get("section") == "startup" and r.get("tree")]
    parts = []
    for r in st:
        if r["tree"] == nt:
            o = _find(st, label=r["label"], tree="baseline")
            if o and "best" in o:
                parts.append(f"{r['label'].split(' (')[0]} {r['best'] / o['best']:.2f}x")
    if parts:
        add("start-up time new/baseline (< 1: new starts faster): " + ", ".join(parts))
    mem = [r for r in results if r.get("section") == "memory"]
    a, o = _find(mem, op="compress", tree=nt), _find(mem, op="compress", tree="baseline")
    ax, ox = (_find(mem, op="decompress", tree=nt),
              _find(mem, op="decompress", tree="baseline"))
    if all(r and "best" in r for r in (a, o, ax, ox)):
        add(f"memory section ({a['in_bytes'] / 1e9:.2f} GB input): throughput "
            f"{_speedup(a, o)} compress, {_speedup(ax, ox)} decompress; peak RSS "
            f"{a['peak_rss'] / o['peak_rss']:.2f}x, {ax['peak_rss'] / ox['peak_rss']:.2f}x")
    add("")


def _gbps(r):
    if not r or "best" not in r:
        return "error" if r else "-"
    return f"{r['in_bytes'] / r['best'] / 1e9:.3f}"


def _mib(r):
    return f"{r['peak_rss'] / MIB:.0f}" if r and "peak_rss" in r else "-"


def _cells(r) -> str:
    if r is None:
        return f"{'-':>9} {'':>7} {'':>13}"
    if "best" not in r:
        return f"{'error':>9} {'':>7} {'':>13}"
    gbps = r["in_bytes"] / r["best"] / 1e9
    vps = r["n"] / r["best"]
    peak = r["peak_rss"] / MIB
    if "rss_before" in r:
        growth = r.get("growth", r["peak_rss"] - r["rss_before"])
        mem = f"{peak:.0f} (+{max(0, growth) / MIB:.0f})"
    else:
        mem = f"{peak:.0f}"
    return f"{gbps:>9.3f} {_rate(vps):>7} {mem:>13}"


def _speedup(new, old) -> str:
    """Throughput of new over old's, i.e. old's best time over new's: "1.02x", or "-"."""
    if not (new and old and "best" in new and "best" in old):
        return "-"
    return f"{old['best'] / new['best']:.2f}x"


def _ratio(c) -> str:
    if not c or "out_bytes" not in c:
        return "-"
    return f"{c['in_bytes'] / c['out_bytes']:.2f}x"


def _nmse_cell(x) -> str:
    if not x or "nmse" not in x:
        return "-"
    v = x["nmse"]
    return "lossless" if v == 0 else f"{v:.5f}"


