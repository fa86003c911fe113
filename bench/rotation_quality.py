#!/usr/bin/env python3
"""Error of tq's rotation kinds against the optimum, beside a dense uniformly random one.

    python bench/rotation_quality.py                  # the README's table (a few minutes)
    python bench/rotation_quality.py --dims 130,1032 --bits 3 --families one-hot

For every input family of tests/structured_inputs.py, d and b: tq compress with
--scale norm and seeds 0-3 for `tiled` (the default) and `hadamard2` (tq 1.0's), and the
same quantiser behind a dense Haar-random rotation (scipy's ortho_group, seeds 0-3), each
given as the seed-averaged normalised error divided by the exact Lloyd-Max optimum for
that d and b.  1.00 is the optimum; rows of the "channels" and "constant" families share
a few directions, so each seed is one draw of the rotation's error for those directions
(the Haar column shows how much that alone varies).  It prints the table in markdown,
then the worst seed average over d for each family, kind and b (README's summary).

    python bench/rotation_quality.py --real           # the shared real data instead

--real gives, for ../shared/data's sentence embeddings and KV dump, the nmse averaged over
seeds 0-3 of each kind, without and with --center, at b = 2, 3, 4 (default options
otherwise): whether the new default changed anything on real data.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from structured_inputs import FAMILIES, error_ratio, family_rows  # noqa: E402

DIMS = (130, 576, 1000, 1032, 1536, 2056, 3072, 4104)
KINDS = ("tiled", "hadamard2", "haar")


def haar_ratio(q: np.ndarray, x: np.ndarray, bits: int) -> float:
    """The tq quantiser (norm rule) behind the dense rotation q, in float64."""
    from tqcli.codec.codebook import boundaries, codebook

    d = x.shape[1]
    u = x.astype(np.float64) @ q.T
    norms = np.linalg.norm(u, axis=1, keepdims=True)
    u /= norms
    cents = codebook(d, bits).astype(np.float64)
    uh = cents[np.searchsorted(boundaries(cents), u)]
    xh = (uh @ q) * norms  # back through q^T, times the norm
    return error_ratio(x, xh, bits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", default=",".join(map(str, DIMS)))
    ap.add_argument("--bits", default="2,3,4")
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--real", action="store_true", help="the shared real data (see above)")
    a = ap.parse_args()
    if a.real:
        return real_data([int(v) for v in a.bits.split(",")], a.seeds)
    import tqcli
    from scipy.stats import ortho_group

    dims = [int(v) for v in a.dims.split(",")]
    bits = [int(v) for v in a.bits.split(",")]
    families = a.families.split(",")
    table = {}  # (family, kind, b) -> {d: ratio}
    for d in dims:
        haar = [ortho_group.rvs(d, random_state=s) for s in range(a.seeds)]
        for family in families:
            x = family_rows(family, d, a.rows, np.random.default_rng(d))
            for b in bits:
                for kind in KINDS:
                    if kind == "haar":
                        r = [haar_ratio(q, x, b) for q in haar]
                    else:
                        r = [error_ratio(x, tqcli.decompress(tqcli.compress(
                            x, bits=b, seed=s, scale_rule="norm", rotation=kind)), b)
                            for s in range(a.seeds)]
                    table.setdefault((family, kind, b), {})[d] = float(np.mean(r))
            print(f"d={d} {family} done", file=sys.stderr, flush=True)
    head = "| b | input rows | rotation | " + " | ".join(f"d={d}" for d in dims) + " |"
    print(head)
    print("|" + "---|" * (3 + len(dims)))
    for b in bits:
        for family in families:
            for kind in KINDS:
                cells = " | ".join(f"{table[family, kind, b][d]:.2f}" for d in dims)
                print(f"| {b} | {family} | {kind} | {cells} |")
    print()
    print("| input rows | rotation | " + " | ".join(f"worst, b={b}" for b in bits) + " |")
    print("|" + "---|" * (2 + len(bits)))
    for family in families:
        for kind in KINDS:
            worst = []
            for b in bits:
                d, r = max(table[family, kind, b].items(), key=lambda kv: abs(kv[1] - 1.0))
                worst.append(f"{r:.3f} (d={d})")
            print(f"| {family} | {kind} | " + " | ".join(worst) + " |")


def real_data(bits: list[int], seeds: int) -> None:
    import tqcli

    data = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
    print("| data | b | " + " | ".join(f"{k}{c}" for k in ("hadamard2", "tiled")
                                        for c in ("", " --center")) + " |")
    print("|---|---|---|---|---|---|")
    for name in ("minilm_sentences", "minilm_kv"):
        x = np.load(os.path.join(data, name + ".npy"))
        rows = x.reshape(-1, x.shape[-1]).astype(np.float64)
        energy = (rows * rows).sum(axis=1)
        for b in bits:
            cells = []
            for kind in ("hadamard2", "tiled"):
                for center in (False, True):
                    errs = []
                    for seed in range(seeds):
                        y = tqcli.decompress(tqcli.compress(x, bits=b, seed=seed,
                                                            rotation=kind, center=center))
                        y = y.reshape(rows.shape).astype(np.float64)
                        errs.append(float((((rows - y) ** 2).sum(axis=1) / energy).mean()))
                    cells.append(f"{np.mean(errs):.5f}")
            print(f"| {name} | {b} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
