#!/usr/bin/env python3
"""Hashes of .tqz files of varied options and of their decoded arrays, as JSON.

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

Cases 14 and later need tq 1.3 (the entropy coding, centring, collections with bfloat16
members): a tree that lacks a keyword they use reports them as "n/a" instead of failing,
so older trees still compare on the first 14.
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
# tq 1.3: the entropy coding (integer, fractional and --nmse rates, centred, prod refused so
# mse only), centring with the fixed coding, bfloat16 input (ml_dtypes), and collections
cases += [
    dict(shape=(1000, 384), dtype="float32", bits=4, coding="entropy"),
    dict(shape=(517, 97), dtype="float32", bits=2.5, coding="entropy", chunk_rows=128),
    dict(shape=(300, 130), dtype="float64", bits=None, nmse=0.01, coding="entropy"),
    dict(shape=(4, 5, 33, 64), dtype="float16", bits=1.3, coding="entropy", scale_rule="ip"),
    dict(shape=(200, 40), dtype="float32", bits=6.3, coding="entropy", scale_dtype="float16"),
    dict(shape=(400, 96), dtype="float32", bits=3, center=True, offset=True),
    dict(shape=(400, 96), dtype="float32", bits=3, coding="entropy", center=True, offset=True),
    dict(shape=(64, 128), dtype="bfloat16", bits=4),
]
COLLECTION_CASES = [
    dict(bits=4, bits_for=["*key*=8"], lossless=["ids"]),
    dict(bits=3.5, coding="entropy", bits_for=["*value*=2.5"]),
    dict(bits=4, center=True),
]


def has_keywords(fn, c) -> bool:
    params = inspect.signature(fn).parameters
    return "options" in params or all(k in params for k in c)


def digest(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()[:16]


def bf16():
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


out = {}
for i, c in enumerate(cases):
    c = dict(c)
    shape, dtype = c.pop("shape"), c.pop("dtype")
    big = c.pop("big", False)
    offset = c.pop("offset", False)
    x = rng.standard_normal(shape)
    if offset:
        x += 3.0 * rng.standard_normal(shape[-1])  # a shared offset, what --center removes
    key = f"{i}:{shape}:{dtype}:{c}"
    if dtype == "bfloat16":
        if bf16() is None:
            out[key] = "n/a (no ml_dtypes)"
            continue
        x = x.astype(np.float32).astype(bf16())
    else:
        x = x.astype(dtype)
    if big:
        x[3] *= 1e300
    if i < 14:
        kind = ({"rotation": "hadamard2"}
                if "rotation" in inspect.signature(tqcli.compress).parameters else {})
    else:
        kind = {}
        if not has_keywords(tqcli.compress, c):
            out[key] = "n/a (keywords of a later tq)"
            continue
    blob = tqcli.compress(x, **c, **kind)
    y = tqcli.decompress(blob)
    out[key] = [digest(blob), digest(np.ascontiguousarray(y).tobytes()), len(blob)]

# collections: a KV-like dict with an integer member and a bfloat16 member
if hasattr(tqcli, "compress_collection"):
    import io

    members = {
        "layers/0/key": rng.standard_normal((4, 96, 32)).astype(np.float32),
        "layers/0/value": rng.standard_normal((4, 96, 32)).astype(np.float16),
        "layers/1/key": rng.standard_normal((4, 96, 32)) * 10.0,
        "layers/1/value": rng.standard_normal((4, 96, 32)).astype(np.float32),
        "ids": np.arange(300, dtype=np.int64),
    }
    if bf16() is not None:
        members["layers/1/value"] = members["layers/1/value"].astype(bf16())
    for j, c in enumerate(COLLECTION_CASES):
        key = f"collection{j}:{c}"
        opts = {k: v for k, v in c.items() if k not in ("bits", "bits_for", "lossless")}
        if not has_keywords(tqcli.compress, opts):
            out[key] = "n/a (keywords of a later tq)"
            continue
        buf = io.BytesIO()
        tqcli.compress_collection(members, buf, **c)
        blob = buf.getvalue()
        with tqcli.open_collection(blob) as coll:
            decoded = b"".join(np.ascontiguousarray(coll.read(n)).tobytes() for n in coll.names)
        out[key] = [digest(blob), digest(decoded), len(blob)]
json.dump(out, sys.stdout, indent=1)
