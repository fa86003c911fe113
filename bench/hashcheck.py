#!/usr/bin/env python3
"""Hashes of 14 .tqz files of varied options and of their decoded arrays, as JSON.

Whether a change kept every byte and every decoded value: run it for two trees and diff,

    git worktree add /tmp/tq-old COMMIT
    PYTHONPATH=/tmp/tq-old python bench/hashcheck.py > old.json
    PYTHONPATH=$PWD python bench/hashcheck.py > new.json
    diff old.json new.json && echo identical

The cases vary d, bits (1-8), mode, scale rule, scale dtype (with the auto float64 restart),
source dtype, rank, rounds, seed and chunking; inputs come from a fixed seed.  It uses only
tqcli.compress / tqcli.decompress with keywords every tq release takes, and asks a tree
that has rotation kinds for tq 1.0's, hadamard2 (tiled became the default in tq 1.1), so
that the files of every release can be compared.
"""
import inspect
import hashlib, json, sys
import numpy as np
import tqcli

rng = np.random.default_rng(123)
cases = [
    dict(shape=(1000, 384), dtype="float32", bits=4),
    dict(shape=(517, 97), dtype="float32", bits=1),
    dict(shape=(300, 130), dtype="float32", bits=2, scale_rule="norm"),
    dict(shape=(4, 5, 33, 64), dtype="float16", bits=3),
    dict(shape=(250, 768), dtype="float64", bits=5, scale_rule="ip"),
    dict(shape=(129, 1000), dtype="float32", bits=6, rounds=1, seed=7),
    dict(shape=(64, 200), dtype="float32", bits=7, chunk_rows=16),
    dict(shape=(40, 64), dtype="float32", bits=8, scale_dtype="float16"),
    dict(shape=(200, 128), dtype="float32", bits=3, mode="prod"),
    dict(shape=(77, 96), dtype="float64", bits=1, mode="prod", seed=99),
    dict(shape=(300, 48), dtype="float32", bits=4, scale_dtype="float64", chunk_rows=64),
    dict(shape=(3000, 2), dtype="float32", bits=2, rounds=5),
    dict(shape=(50, 300), dtype="float64", bits=4, big=True),  # float64 restart
    dict(shape=(384,), dtype="float32", bits=4),
]
out = {}
for i, c in enumerate(cases):
    c = dict(c)
    shape, dtype = c.pop("shape"), c.pop("dtype")
    big = c.pop("big", False)
    x = rng.standard_normal(shape).astype(dtype)
    if big:
        x[3] *= 1e300
    kind = ({"rotation": "hadamard2"}
            if "rotation" in inspect.signature(tqcli.compress).parameters else {})
    blob = tqcli.compress(x, **c, **kind)
    y = tqcli.decompress(blob)
    out[f"{i}:{shape}:{dtype}:{c}"] = [hashlib.sha256(blob).hexdigest()[:16], hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest()[:16], len(blob)]
json.dump(out, sys.stdout, indent=1)
