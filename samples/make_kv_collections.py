#!/usr/bin/env python3
"""Cut the two small KV collections in this folder from ../shared/data/minilm_kv.h5.

    python samples/make_kv_collections.py

kv_small.h5: layers 0-2, heads 0-3, tokens 0-63 (HDF5 tree, float32, with the source's
attributes and a token-position dataset).  kv_cache.safetensors: layers 0-1 as Hugging Face
transformers lays out a cache, [batch, heads, tokens, head_dim] = [1, 12, 64, 32], in
bfloat16 (the dtype most KV caches are in), with `positions` (int64) and metadata.
"""

import os

import h5py
import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "..", "..", "shared", "data", "minilm_kv.h5")

with h5py.File(SOURCE, "r") as src, h5py.File(os.path.join(HERE, "kv_small.h5"), "w") as out:
    for k, v in src.attrs.items():
        out.attrs[k] = v
    out.attrs["slice"] = "layers 0-2, heads 0-3, tokens 0-63 of ../shared/data/minilm_kv.h5"
    for i in range(3):
        for part in ("key", "value"):
            out[f"layers/{i}/{part}"] = src[f"layers/{i}/{part}"][:4, :64, :]
        out[f"layers/{i}"].attrs["layer"] = np.int64(i)
    out["positions"] = np.arange(64, dtype=np.int64)
    tensors = {}
    for i in range(2):
        for part in ("key", "value"):
            x = src[f"layers/{i}/{part}"][:, :64, :][None]  # [1, heads, tokens, head_dim]
            tensors[f"layers.{i}.{part}"] = x.astype(ml_dtypes.bfloat16)
    tensors["positions"] = np.arange(64, dtype=np.int64)
    save_file(tensors, os.path.join(HERE, "kv_cache.safetensors"),
              metadata={"model": "sentence-transformers/all-MiniLM-L6-v2",
                        "layout": "[batch, heads, tokens, head_dim] per layer",
                        "slice": "layers 0-1, tokens 0-63 of ../shared/data/minilm_kv.h5"})
