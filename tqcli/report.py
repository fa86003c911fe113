"""Reports: the inspect schema of a header, and the text the command line prints from it.

The JSON that `tq inspect --json` prints is `header_report` (plus "verified"), and the text
report is built from that same dict, so the two cannot disagree.  spec/vectors/*.inspect.json
pin the schema byte for byte.  Nothing heavy is imported here.
"""

from __future__ import annotations

from .limits import SOURCE_DTYPE_SIZES

LABEL_WIDTH = 18


def header_report(h, file_size: int) -> dict:
    """The inspect schema for Header `h` of a container of `file_size` bytes."""
    n, d = h.n_vectors, h.dim
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
        "payload_bytes": h.payload_bytes,
        "overhead_bytes": file_size - h.payload_bytes,
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
        ("ratio", f"{r['ratio_vs_float32']:.2f}x vs float32, "
                  f"{r['ratio_vs_original']:.2f}x vs {r['source_dtype']}"),
    ]
    if r.get("verified"):
        rows.append(("checksums", f"all {r['chunks']} chunks OK"))
    return rows


def inspect_text(r: dict) -> str:
    return "\n".join(f"{k:<{LABEL_WIDTH}}{v}" for k, v in inspect_rows(r))


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


def compress_summary(name: str, header, out: str) -> str:
    """`NAME: n x d dtype, SIZE -> SIZE (RATIOx) -> OUT`, the line of `tq compress -v`."""
    src_bytes = header.n_vectors * header.dim * SOURCE_DTYPE_SIZES[header.source_dtype]
    return (f"{name}: {header.n_vectors} x {header.dim} {header.source_dtype}, "
            f"{human_bytes(src_bytes)} -> {human_bytes(header.file_size)} "
            f"({src_bytes / max(header.file_size, 1):.2f}x) -> {out}")


EVAL_COLUMNS = (("bits", "{}", "bits"), ("nmse", "{:.5f}", "nmse"),
                ("optimum", "{:.5f}", "optimum"), ("nmse/opt", "{:.3f}", "nmse_vs_optimum"),
                ("4^-b", "{:.5f}", "lower_bound"), ("cosine", "{:.4f}", "mean_cosine"),
                ("ip bias", "{:+.2e}", "ip_bias"), ("ip rmse", "{:.2e}", "ip_rmse"),
                ("recall@1", "{:.3f}", "recall_at_1"), ("R@10@10", "{:.3f}", "recall_10_at_10"),
                ("B/vec", "{:.1f}", "bytes_per_vector"), ("ratio", "{:.2f}x", "ratio_vs_float32"))


def eval_table(name: str, reports: list[dict]):
    """The rich table `tq eval` prints for its evaluation dicts (one row per bit width)."""
    from rich.table import Table

    r0 = reports[0]
    table = Table(title=f"{name}: {r0['vectors']} vectors, d={r0['dim']}, mode {r0['mode']}")
    columns = list(EVAL_COLUMNS)
    if any(r.get("centered") for r in reports):  # a column only when something is centred
        columns.insert(1, ("centre", "{}", "centre"))
        reports = [dict(r, centre="mean" if r.get("centered") else "-") for r in reports]
    for c, _, _ in columns:
        table.add_column(c, justify="right")
    for r in reports:
        table.add_row(*[fmt.format(r[k]) if k in r else "-" for _, fmt, k in columns])
    return table
