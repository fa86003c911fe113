"""`tq eval --plot FILE.png`: error and recall against bytes per vector, with the theory.

matplotlib is an optional extra (`pip install "tq[plot]"`); require() says so in one line
before any work is done, and nothing here is imported by the rest of tq.
"""

from __future__ import annotations

from ..errors import TqError

INSTALL_HINT = "--plot needs matplotlib, which is not installed (pip install \"tq[plot]\")"


def require() -> None:
    """Raise a one-line TqError when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise TqError(INSTALL_HINT) from None


def eval_plot(stream, title: str, reports: list[dict], curve: list[dict]) -> None:
    """Write a PNG to the binary `stream`: left, measured nmse and the Lloyd-Max optimum
    (and 4^-b) per b against bytes per vector, log scale; right, recall@1 and
    recall@10@10 against bytes per vector.  curve: evaluation.theory_curve."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), dpi=100)
    err, rec = fig.subplots(1, 2)
    cx = [c["bytes_per_vector"] for c in curve]
    err.plot(cx, [c["optimum"] for c in curve], "-", color="0.55", label="Lloyd-Max optimum")
    err.plot(cx, [c["lower_bound"] for c in curve], ":", color="0.55", label="4^-b bound")
    for c in curve:
        err.annotate(f"b={c['bits']}", (c["bytes_per_vector"], c["optimum"]), fontsize=7,
                     color="0.4", textcoords="offset points", xytext=(3, 3))
    for centered, marker, label in ((False, "o", "measured"), (True, "s", "measured, centred")):
        rows = [r for r in reports if bool(r.get("centered")) == centered]
        if not rows:
            continue
        xs = [r["bytes_per_vector"] for r in rows]
        err.plot(xs, [r["nmse"] for r in rows], marker, color="C0" if not centered else "C2",
                 label=label)
        if any(r.get("recall_at_1") is not None for r in rows):
            suffix = ", centred" if centered else ""
            rec.plot(xs, [r.get("recall_at_1") for r in rows], marker + "-", color="C1",
                     label="recall@1" + suffix)
            rec.plot(xs, [r.get("recall_10_at_10") for r in rows], marker + "--",
                     color="C3", label="recall@10@10" + suffix)
    err.set_yscale("log")
    err.set_xlabel("bytes per vector")
    err.set_ylabel("nmse")
    err.set_title("error (all vectors)", fontsize=10)
    err.grid(True, which="both", alpha=0.3)
    err.legend(fontsize=8)
    rec.set_xlabel("bytes per vector")
    rec.set_ylabel("recall")
    r0 = reports[0]
    rec.set_title(f"search ({r0.get('queries', 0)} queries, sample {r0.get('sample')})",
                  fontsize=10)
    rec.set_ylim(0, 1.02)
    rec.grid(True, alpha=0.3)
    if rec.lines:
        rec.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(stream, format="png")
