"""Reports: the inspect schema of a header, and the text the command line prints from it.

The JSON that `tq inspect --json` prints is `header_report` (plus "verified"), and the text
report is built from that same dict, so the two cannot disagree.  spec/vectors/*.inspect.json
pin the schema byte for byte.  Nothing heavy is imported here.
"""

from __future__ import annotations

from ..codec.codings import CODINGS
from ..limits import SOURCE_DTYPE_SIZES

LABEL_WIDTH = 18


def header_report(h, file_size: int, payload_bytes: int | None = None) -> dict:
    """The inspect schema for Header `h` of a container of `file_size` bytes (and
    `payload_bytes` of chunk payloads: by default what the header implies)."""
    n, d = h.n_vectors, h.dim
    payload = h.payload_bytes if payload_bytes is None else payload_bytes
    src_item = SOURCE_DTYPE_SIZES[h.source_dtype]
    return {
        "format": "tqz", "version": 1,
        "mode": h.mode, "bits": h.bits, "dim": d, "vectors": n, "shape": list(h.shape),
        "source_dtype": h.source_dtype, "seed": h.seed,
        "rotation": {"kind": h.rotation, "rounds": h.rounds},
        "centered": h.centered,
        "scale": {"rule": h.scale_rule, "dtype": h.scale_dtype},
        "codebook": [float(c) for c in h.codebook],
        "chunk_rows": h.chunk_rows, "chunks": h.n_chunks,
        "file_bytes": file_size, "header_bytes": h.header_size,
        "payload_bytes": payload,
        "overhead_bytes": file_size - payload,
        "bytes_per_vector": file_size / n if n else None,
        "ratio_vs_float32": 4 * n * d / file_size,
        "ratio_vs_original": src_item * n * d / file_size,
    }


def inspect_rows(r: dict) -> list[tuple[str, str]]:
    """(label, text) rows of the text report for an inspect dict `r`."""
    rows = [
        ("format", f"{r['format']} version {r['version']}"),
        ("mode", f"{r['mode']}, {r['bits']} bits"),
        ("vectors", f"{r['vectors']} x {r['dim']} (shape {tuple(r['shape'])}, "
                    f"{r['source_dtype']})"),
        ("seed", str(r["seed"])),
        ("rotation", f"{r['rotation']['kind']}, {r['rotation']['rounds']} rounds"),
        ("centre", f"a mean vector of {r['dim']} float32 values, subtracted before encoding"
                   if r["centered"] else "none"),
        ("scale", f"{r['scale']['rule']} ({r['scale']['dtype']})"),
        ("codebook", codebook_text(r["codebook"])),
        ("chunks", f"{r['chunks']} of {r['chunk_rows']} rows"),
        ("file size", f"{r['file_bytes']} bytes ({human_bytes(r['file_bytes'])})"),
        ("payload", f"{r['payload_bytes']} bytes, overhead {r['overhead_bytes']}"),
        ("bytes/vector", f"{r['bytes_per_vector']:.2f}" if r["vectors"] else "-"),
        ("ratio", ratio_text(r)),
    ]
    if r.get("coding"):  # the coding's own rows (PayloadCoding.inspect_rows)
        rows[1:2] = CODINGS.resolve(r["coding"]["name"]).inspect_rows(r)
    if r.get("verified"):
        rows.append(("checksums", f"all {r['chunks']} chunks OK"))
    return rows


def ratio_text(r: dict) -> str:
    """'7.83x vs float32', and the ratio against the source dtype when that differs."""
    text = f"{r['ratio_vs_float32']:.2f}x vs float32"
    if r["source_dtype"] != "float32":
        text += f", {r['ratio_vs_original']:.2f}x vs {r['source_dtype']}"
    return text


def inspect_text(r: dict) -> str:
    return "\n".join(f"{k:<{LABEL_WIDTH}}{v}" for k, v in inspect_rows(r))


INSPECT_TABLE = (("shape", lambda r: "x".join(str(s) for s in r["shape"]), ">"),
                 ("dtype", lambda r: r["source_dtype"], ">"),
                 ("mode", lambda r: r["mode"], ">"),
                 ("bits", lambda r: width_text(r), ">"),
                 ("B/vec", lambda r: f"{r['bytes_per_vector']:.1f}" if r["vectors"] else "-",
                  ">"),
                 ("size", lambda r: human_bytes(r["file_bytes"]), ">"),
                 ("ratio", lambda r: f"{r['ratio_vs_original']:.2f}x", ">"),
                 ("file", lambda r: r["file"], "<"))


def width_text(r: dict) -> str:
    """The width a file (or a collection member) stores: `4` for the fixed-length coding;
    a coding that reports its own rate (a "coding" object) words it (the entropy coding:
    `2.49 ent`, the bits per coordinate achieved; its header `bits` is only the width of
    its largest index)."""
    c = r.get("coding")
    if c:
        return CODINGS.by_name(c["name"]).width_text(c)
    return str(r["bits"])


def width_legends(rows) -> list[str]:
    """The legend lines of the codings whose width_text the rows show, in table order."""
    names = {r["coding"]["name"] for r in rows if r.get("coding")}
    return [legend for c in CODINGS if c.name in names
            for legend in [c.width_legend()] if legend]


def inspect_table(reports: list[dict]) -> str:
    """One line per container (the text of `tq inspect A.tqz B.tqz`): each report is an
    inspect dict with its "file"; the ratio is against the source dtype, as zstd -l."""
    cells = [[get(r) for _, get, _ in INSPECT_TABLE] for r in reports]
    heads = [h for h, _, _ in INSPECT_TABLE]
    widths = [max(len(c) for c in col) for col in zip(heads, *cells)]
    lines = []
    for row in [heads] + cells:
        parts = [f"{c:{a}{w}}" if a == ">" else c
                 for c, w, (_, _, a) in zip(row, widths, INSPECT_TABLE)]
        lines.append("  ".join(parts).rstrip())
    lines += width_legends(reports)
    return "\n".join(lines)


def codebook_text(cb) -> str:
    vals = [f"{float(c):.6g}" for c in cb]
    if len(vals) > 8:
        vals = vals[:4] + ["..."] + vals[-4:]
    return f"{len(cb)} values [" + ", ".join(vals) + "]" if len(cb) else "none"


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def compress_summary(name: str, header, out: str, file_bytes: int | None = None) -> str:
    """`NAME: n x d dtype, SIZE -> SIZE (RATIOx), MODE B bits -> OUT`, the line of
    `tq compress -v`.  file_bytes: the container's size (default: what a fixed-size
    header implies; an entropy-coded one written to a stream has none to say)."""
    src_bytes = header.n_vectors * header.dim * SOURCE_DTYPE_SIZES[header.source_dtype]
    if file_bytes is None and header.fixed_layout:
        file_bytes = header.file_size
    size = (f"{human_bytes(file_bytes)} ({src_bytes / max(file_bytes, 1):.2f}x)"
            if file_bytes is not None else "a stream")
    coding = header.payload_coding.rate_text(header)
    return (f"{name}: {header.n_vectors} x {header.dim} {header.source_dtype}, "
            f"{human_bytes(src_bytes)} -> {size}, {header.mode} {coding} -> {out}")


def plural(n: int, word: str) -> str:
    """'1 member', '3 members'."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def collection_summary(name: str, toc: list[dict], out: str,
                       file_bytes: int | None = None) -> str:
    """`NAME: 3 members (2 compressed, 1 lossless), SIZE -> SIZE (RATIOx) -> OUT`, the line
    of `tq compress -v` for a collection; file_bytes: the file's size (default: the sum of
    the members', a stream's lower bound)."""
    from ..limits import stored_itemsize as itemsize

    src = 0
    for e in toc:
        n = 1
        for s in e["shape"]:
            n *= s
        src += n * itemsize(e["dtype"])
    lossy = sum(e["kind"] == "tqz" for e in toc)
    size = file_bytes if file_bytes is not None else sum(e["length"] for e in toc)
    return (f"{name}: {plural(len(toc), 'member')} ({lossy} compressed, "
            f"{len(toc) - lossy} lossless), {human_bytes(src)} -> {human_bytes(size)} "
            f"({src / max(size, 1):.2f}x) -> {out}")


def significant(v: float, digits: int = 4) -> str:
    """v with `digits` significant digits, switching to exponent form below 1e-4 (so that
    an nmse of 4.012e-05 and an optimum of 4.016e-05 print apart)."""
    text = f"{v:#.{digits}g}"
    return _short_exponent(text)


def _short_exponent(text: str) -> str:
    if "e" in text:
        mant, exp = text.split("e")
        return f"{mant}e{int(exp)}"
    return text


def bias_text(bias: float, stderr: float) -> str:
    """`+1.2e-3±4.0e-5`: a bias and its standard error, both with two digits."""
    if stderr != stderr:  # NaN: too few vectors for an error
        return _short_exponent(f"{bias:+.1e}")
    return _short_exponent(f"{bias:+.1e}") + "±" + _short_exponent(f"{stderr:.1e}")




def _coding_of(r: dict):
    """The coding-table entry of a report's "coding" (its command-line name)."""
    return CODINGS.resolve(r.get("coding") or CODINGS.default.cli_name)


def _other_codings(reports: list[dict]) -> list:
    """The codings other than the default that the reports use, in table order."""
    used = {_coding_of(r).name for r in reports}
    return [c for c in CODINGS if c.name in used and c is not CODINGS.default]


EVAL_COLUMNS = (("bits", "{}", "bits"), ("nmse", significant, "nmse"),
                ("optimum", significant, "optimum"), ("nmse/opt", "{:.4f}", "nmse_vs_optimum"),
                ("ip bias ± se", None, "ip_bias"), ("recall@1", "{:.3f}", "recall_at_1"),
                ("R@10@10", "{:.3f}", "recall_10_at_10"), ("B/vec", "{:.1f}", "bytes_per_vector"),
                ("ratio", "{:.2f}x", "ratio_vs_float32"))


def _cell(r: dict, fmt, key: str) -> str:
    if key not in r or r[key] is None:
        return "-"
    if key == "ip_bias":
        return bias_text(r["ip_bias"], r.get("ip_bias_stderr", float("nan")))
    return fmt(r[key]) if callable(fmt) else fmt.format(r[key])


def eval_table(name: str, reports: list[dict]):
    """The rich table `tq eval` prints for its evaluation dicts (one row per setting), at
    most 100 columns wide; eval_heading and eval_legend are the lines around it."""
    from rich import box
    from rich.table import Table

    # the box's blank vertical line and one space of padding: two spaces between columns
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1), pad_edge=False, show_edge=False)
    columns = list(EVAL_COLUMNS)
    if _other_codings(reports):  # another coding than the default: say which
        columns.insert(1, ("code", "{}", "code"))
        reports = [dict(r, code=_coding_of(r).label) for r in reports]
    if any(r.get("centered") for r in reports):  # a column only when something is centred
        columns.insert(1, ("centre", "{}", "centre"))
        reports = [dict(r, centre="mean" if r.get("centered") else "-") for r in reports]
    for c, _, _ in columns:
        table.add_column(c, justify="right", no_wrap=True)
    for r in reports:
        table.add_row(*[_cell(r, fmt, k) for _, fmt, k in columns])
    return table


def eval_heading(name: str, reports: list[dict]) -> str:
    r0 = reports[0]
    what = f"Lloyd-Max error at d={r0['dim']}"
    notes = [n for c in _other_codings(reports) if (n := c.eval_heading(r0["dim"]))]
    if notes:
        what = f"Lloyd-Max at d={r0['dim']}; " + "; ".join(notes)
    return f"{name}: {r0['vectors']} x {r0['dim']}, mode {r0['mode']} (optimum: {what})"


def eval_legend(reports: list[dict]) -> str:
    """One line: what the figures cover (all vectors, or the sample and its queries)."""
    r0 = reports[0]
    n, sample, asked = r0["vectors"], r0.get("sample", r0["vectors"]), r0.get("queries_asked")
    queries = r0.get("queries", 0)
    if not queries:
        return (f"nmse over all {n} vectors; no ip or recall figures (no queries: "
                f"--queries {asked}, sample {sample})")
    capped = f" (--queries {asked}: at most half the sample)" if queries < asked else ""
    where = "against the rest" if sample >= n else f"in a sample of {sample}"
    codes = ""
    others = _other_codings(reports)
    if others:
        codes = "\ncode: " + ", ".join(f"{c.label} = {c.legend}"
                                       for c in [CODINGS.default] + others)
    return (f"nmse, ip bias ± std. error: all {n} vectors; recall: {queries} held-out "
            f"queries{capped} {where}" + codes)


def setting_flags(bits, mode: str, centered: bool, coding: str | None = None) -> str:
    c = CODINGS.resolve(coding or CODINGS.default.cli_name)
    if c.data_fitted:  # its centre is the basis's mean: no --center of its own
        return f"-b {bits:g} --adapt"
    return f"-b {bits:g}" + (f" --coding {c.cli_name}" if c is not CODINGS.default else "") + \
        (" --mode prod" if mode == "prod" else "") + (" --center" if centered else "")


def recommendation_text(rec: dict, reports: list[dict], input: str | None = None) -> str:
    """The summary line: the smallest file evaluated that meets the goals (either coding),
    its bytes per vector, and the command that writes it."""
    goals = "; ".join((f"nmse <= {significant(t)}" if k == "nmse" else
                       f"recall@1 >= {t:g}") for k, t in rec["goals"].items())
    if not rec["met"]:
        most = max(r["bits"] for r in reports)
        more = (" (-b 8 is the most tq stores)" if most >= 8 else
                f": try more bits (-b {most + 1}-8)")
        return f"no setting evaluated meets {goals}{more}"
    flags = setting_flags(rec["bits"], rec["mode"], rec["centered"], rec.get("coding"))
    measured = ", ".join((f"nmse {significant(v)}" if k == "nmse" else f"recall@1 {v:.3f}")
                         for k, v in rec["measured"].items())
    size = (f" at {rec['bytes_per_vector']:.1f} B/vec" if rec.get("bytes_per_vector")
            is not None else "")
    command = f"; to write it: tq compress {input or 'INPUT'} {flags}"
    if rec["default"]:
        value = significant(rec["measured"]["nmse"])
        return (f"suggested: {flags}, the smallest file here with nmse <= 0.01 (1% of the "
                f"energy): {value}{size}{command}")
    return f"smallest setting with {goals}: {flags} (measured {measured}{size}){command}"


def collection_text(r: dict) -> str:
    """The text report of a collection: one line per member and the total."""
    rows = [("member", "shape", "dtype", "bits", "bytes", "ratio")]
    for m in r["members"]:
        bits = "lossless" if m["kind"] == "raw" else width_text(m) + (
            f" (vectors of {m['vector']})" if m["shape"] and m["vector"] != m["shape"][-1]
            else "")
        rows.append((m["name"], " x ".join(map(str, m["shape"])) or "scalar", m["dtype"],
                     bits, human_bytes(m["bytes"]),
                     f"{m['ratio']:.2f}x" if m["ratio"] else "-"))
    ratio = r["ratio_vs_original"]
    rows.append(("total", plural(r['member_count'], "member"), "", "",
                 human_bytes(r["file_bytes"] or r["member_bytes"]),
                 f"{ratio:.2f}x" if ratio else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = [f"collection of {plural(r['member_count'], 'member')} from {r['source']} "
             f"({human_bytes(r['original_bytes'])} of arrays)"]
    for j, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i < 4 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if j == 0 or j == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    if r.get("metadata"):
        lines.append("metadata: " + ", ".join(f"{k}={v}" for k, v in
                                               sorted(r["metadata"].items())))
    lines += width_legends(r["members"])
    if r.get("verified"):
        lines.append("verified: every member's checksums")
    return "\n".join(lines)
