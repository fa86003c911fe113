"""tq search: the exact top-k of a .tqz's decoded vectors for each query (fileio.search)."""

from __future__ import annotations

import json
import sys

import click

from .options import CONTEXT, _rows_option, common_memory, common_progress, common_threads
from . import process
from .progress import _Progress, _progress_enabled


@click.command(context_settings=CONTEXT)
@click.argument("db", metavar="DB.tqz")
@click.argument("queries", metavar="QUERIES")
@click.option("-k", "k", type=int, default=10, show_default=True,
              help="Hits per query (more than the vectors searched: all of them).")
@click.option("--metric", type=click.Choice(("ip", "cosine", "l2")), default="ip",
              show_default=True, help="ip: inner product; cosine; l2: squared Euclidean "
              "distance (smaller first).")
@click.option("-o", "--output", metavar="HITS", help="Write HITS.npz (ids (nq, k) int64, "
              "scores (nq, k) float32) or HITS.npy (the ids). Default: one line per hit "
              "on stdout: query rank id score.")
@click.option("--json", "as_json", is_flag=True, help="The hits as JSON on stdout.")
@click.option("--rerank", metavar="SOURCE", help="Re-score the best --candidates hits per "
              "query from the original floats (.npy, FILE.h5:/path, zarr), reading only "
              "those rows.")
@click.option("--candidates", type=int, default=None, metavar="N",
              help="Hits re-scored with --rerank (default 100).")
@click.option("--rows", metavar="A:B", callback=_rows_option,
              help="Search only vectors A:B (ids stay those of the whole file).")
@click.option("--ids", "ids", metavar="FILE", help="Search only these vectors: a .npy of "
              "integers or one id per line (applied inside the scan).")
@click.option("--member", metavar="NAME", help="Collections: search this member.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing HITS file.")
@click.option("-q", "--quiet", is_flag=True, help="No warning, no progress.")
@common_progress
@common_memory
@common_threads
def search(db, queries, k, metric, output, as_json, rerank, candidates, rows, ids, member,
           force, quiet, progress, memory_limit, threads):
    """Search DB.tqz for the vectors nearest each query in QUERIES (.npy, one query per
    row or a 1-D query; FILE.h5:/path; '-' for a .npy on stdin).

    The hits are exactly those of the decoded vectors (as numpy on `tq decompress`'s
    output), ties broken by the smaller id; --rerank re-scores them from the originals.
    """
    from ..errors import TqError

    if k <= 0:  # a wrong request of this file's search, as a bad query is: exit 1
        raise TqError(f"-k must be a positive number of hits, got {k}", db)
    if candidates is not None and candidates <= 0:
        raise TqError(f"--candidates must be a positive number, got {candidates}", db)
    if candidates is not None and rerank is None:
        raise click.UsageError("--candidates is the number of hits --rerank re-scores; "
                               "give --rerank SOURCE")
    if output is not None and as_json:
        raise click.UsageError("-o writes the hits to a file; --json prints them: give one")
    process.load_fileio()  # the library, as the other commands load it
    from ..fileio import search as searching
    from .options import usage_errors

    with usage_errors():
        searching.check_hits_output(output)
    process.start_engine(threads)
    with _Progress(_progress_enabled(progress, quiet), "search") as bar:
        with usage_errors():
            r = searching.search_file(db, queries, k=k, metric=metric, rows=rows, ids=ids,
                                      member=member, rerank=rerank, candidates=candidates,
                                      output=output, force=force, memory_limit=memory_limit,
                                      threads=threads, progress=bar)
    if r["k"] < k and not quiet:
        click.echo(f"tq: {db}: warning: -k {k} but {r['k']} vectors can be hits; "
                   f"{r['k']} hits per query", err=True)
    if output is not None:
        return
    ids_, scores = r["ids"], r["scores"]
    if as_json:
        click.echo(json.dumps({"db": db, "metric": metric, "k": r["k"],
                               "ids": ids_.tolist(),
                               "scores": [[float(s) for s in row] for row in
                                          scores.astype("float32")]}))
        return
    out = sys.stdout
    lines = []
    for i in range(ids_.shape[0]):
        for rank in range(ids_.shape[1]):
            lines.append(f"{i} {rank} {int(ids_[i, rank])} "
                         f"{float(scores[i, rank].astype('float32')):.9g}\n")
            if len(lines) >= 4096:
                out.write("".join(lines))
                lines = []
    out.write("".join(lines))
