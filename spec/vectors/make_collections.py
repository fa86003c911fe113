#!/usr/bin/env python3
"""Regenerate the collection test vector of spec/tqz-v1.md section 18 (see README.md).

    python spec/vectors/make_collections.py

Deterministic: the inputs come from numpy.random.default_rng(1812); the .npz files are
written with tq's own writer (stored, not deflated), the collection with
tqcli.compress_collection and the options in collections.json; NAME.inspect.json is the
verbatim standard output of `tq inspect NAME.tqz --json`.  Needs ml_dtypes (bfloat16).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import ml_dtypes
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "collection_kv"
OPTIONS = dict(bits=4, bits_for=["*key*=8"], lossless=["*scale*"], vector_size=16,
               seed=5, chunk_rows=8, rotation="tiled")
INFO = {"source": "safetensors", "metadata": {"model": "tq test vector",
                                              "layout": "[heads, tokens, head_dim]"}}


def make_inputs() -> dict:
    rng = np.random.default_rng(1812)
    return {
        "layers/0/key": rng.standard_normal((2, 24, 16)).astype(np.float32),
        "layers/0/value": rng.standard_normal((2, 24, 16)).astype(ml_dtypes.bfloat16),
        "kv_cache": (rng.standard_normal((2, 12, 32)) * 3).astype(np.float16),
        "positions": np.arange(24, dtype=np.int64) + 100,
        "mask": np.arange(24) % 5 != 0,
        "scale": rng.standard_normal(300).astype(np.float32),
        "tiny": np.float64([0.5, -1.25]),
    }


def npz_bytes(arrays: dict) -> bytes:
    from tqcli.arrayio import containers

    path = os.path.join(HERE, ".tmp.npz")
    containers.write_members(path, "npz", {}, [({"name": k}, v) for k, v in arrays.items()])
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


def collection_bytes(arrays: dict) -> bytes:
    import tqcli

    buf = io.BytesIO()
    tqcli.compress_collection(arrays, buf, info=INFO, **OPTIONS)
    return buf.getvalue()


def main() -> None:
    import tqcli

    arrays = make_inputs()
    blob = collection_bytes(arrays)
    with open(os.path.join(HERE, NAME + ".input.npz"), "wb") as f:
        f.write(npz_bytes(arrays))
    with open(os.path.join(HERE, NAME + ".tqz"), "wb") as f:
        f.write(blob)
    with tqcli.open_collection(blob) as c:
        decoded = {rec["name"]: a for rec, a in c.items()}
    with open(os.path.join(HERE, NAME + ".decoded.npz"), "wb") as f:
        f.write(npz_bytes(decoded))
    out = subprocess.run(["tq", "inspect", NAME + ".tqz", "--json"], cwd=HERE, check=True,
                         capture_output=True).stdout
    with open(os.path.join(HERE, NAME + ".inspect.json"), "wb") as f:
        f.write(out)
    with open(os.path.join(HERE, "collections.json"), "w") as f:
        json.dump({NAME: {"info": INFO, "options": OPTIONS, "bytes": len(blob)}}, f,
                  indent=2)
        f.write("\n")
    print(f"{NAME}.tqz: {len(blob)} bytes, {len(arrays)} members")


if __name__ == "__main__":
    sys.exit(main())
