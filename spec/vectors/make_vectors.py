#!/usr/bin/env python3
"""Regenerate the .tqz v1 test vectors in this folder (see README.md and ../tqz-v1.md).

    python spec/vectors/make_vectors.py

Deterministic: every input comes from numpy.random.default_rng with a fixed seed, the .npy
files are written with tq's own .npy writer (tqcli.arrayio.npy_header_bytes, so their bytes
do not depend on the numpy version), the containers with tqcli.compress and the decoded
arrays with tqcli.decompress(..., dtype="original").  NAME.inspect.json is the verbatim
standard output of `tq inspect NAME.tqz --json`.

vectors.json records, for every vector, the parameters it was compressed with; the tests
(tests/test_spec_vectors.py) and other implementations read it from there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# name, input shape, dtype, data seed, compress options (all stated explicitly), zero rows.
# chunk_rows is 8 or 16 where a vector should span several chunks; 8192 and 32768 are what
# tq 1.0.0 picks by default for d = 97 and d = 32 (so the command line reproduces those).
VECTORS = [
    dict(name="mse_b3_d64", shape=[20, 64], dtype="float32", data_seed=101, zero_rows=[5],
         options=dict(bits=3, mode="mse", seed=0, rounds=3, scale_rule="ls",
                      scale_dtype="float32", chunk_rows=8,
                      rotation="hadamard2")),
    dict(name="mse_b1_d97", shape=[17, 97], dtype="float32", data_seed=102, zero_rows=[],
         options=dict(bits=1, mode="mse", seed=12345, rounds=3, scale_rule="norm",
                      scale_dtype="float32", chunk_rows=8192,
                      rotation="hadamard2")),
    dict(name="prod_b4_d200", shape=[33, 200], dtype="float32", data_seed=103, zero_rows=[],
         options=dict(bits=4, mode="prod", seed=7, rounds=3, scale_rule="norm",
                      scale_dtype="float32", chunk_rows=16,
                      rotation="hadamard2")),
    dict(name="mse_b2_rank4_f16", shape=[3, 2, 5, 32], dtype="float16", data_seed=104,
         zero_rows=[], options=dict(bits=2, mode="mse", seed=42, rounds=3, scale_rule="ip",
                                    scale_dtype="float32", chunk_rows=32768,
                      rotation="hadamard2")),
    dict(name="mse_b8_d384_f64", shape=[12, 384], dtype="float64", data_seed=105,
         zero_rows=[], options=dict(bits=8, mode="mse", seed=2**64 - 1, rounds=3,
                                    scale_rule="ls", scale_dtype="float16", chunk_rows=8,
                      rotation="hadamard2")),
    dict(name="prod_b2_d130", shape=[9, 130], dtype="float32", data_seed=106, zero_rows=[3],
         options=dict(bits=2, mode="prod", seed=3, rounds=1, scale_rule="norm",
                      scale_dtype="float32", chunk_rows=8,
                      rotation="hadamard2")),
    dict(name="prod_b1_rank1", shape=[48], dtype="float32", data_seed=107, zero_rows=[],
         options=dict(bits=1, mode="prod", seed=99, rounds=4, scale_rule="norm",
                      scale_dtype="float16", chunk_rows=8,
                      rotation="hadamard2")),
    # Added later (appended, so the seven above keep their bytes): code widths 4 (the
    # default) to 7, float64 scales from float32 and float64 sources, prod with wide codes.
    dict(name="mse_b4_d384", shape=[24, 384], dtype="float32", data_seed=108, zero_rows=[9],
         options=dict(bits=4, mode="mse", seed=0, rounds=3, scale_rule="ls",
                      scale_dtype="float32", chunk_rows=8,
                      rotation="hadamard2")),
    dict(name="mse_b5_d100_f64s", shape=[13, 100], dtype="float64", data_seed=109,
         zero_rows=[], options=dict(bits=5, mode="mse", seed=5, rounds=3, scale_rule="ls",
                                    scale_dtype="float64", chunk_rows=8,
                      rotation="hadamard2")),
    dict(name="mse_b6_d257_f64s", shape=[10, 257], dtype="float32", data_seed=110,
         zero_rows=[4], options=dict(bits=6, mode="mse", seed=2024, rounds=2, scale_rule="ip",
                                     scale_dtype="float64", chunk_rows=8,
                      rotation="hadamard2")),
    dict(name="mse_b7_rank3_f16", shape=[2, 9, 48], dtype="float16", data_seed=111,
         zero_rows=[], options=dict(bits=7, mode="mse", seed=77, rounds=3, scale_rule="norm",
                                    scale_dtype="float32", chunk_rows=8,
                      rotation="hadamard2")),
    dict(name="prod_b5_d72_f64s", shape=[11, 72], dtype="float32", data_seed=112,
         zero_rows=[2], options=dict(bits=5, mode="prod", seed=11, rounds=3,
                                     scale_rule="norm", scale_dtype="float64", chunk_rows=8,
                      rotation="hadamard2")),
    dict(name="prod_b8_d40_f64", shape=[9, 40], dtype="float64", data_seed=113, zero_rows=[],
         options=dict(bits=8, mode="prod", seed=13, rounds=3, scale_rule="norm",
                      scale_dtype="float32", chunk_rows=8,
                      rotation="hadamard2")),
    # Added with issue 11 (appended): f64 scales with a float16 source, where rounding the
    # binary64 results through binary32 would change two of the decoded values.
    dict(name="mse_b4_d96_f16_f64s", shape=[100, 96], dtype="float16", data_seed=114,
         zero_rows=[7], options=dict(bits=4, mode="mse", seed=21, rounds=3, scale_rule="ls",
                                     scale_dtype="float64", chunk_rows=64,
                                     rotation="hadamard2")),
    # tq 1.1: the rotation kind `tiled` (section 8.6), the default for new files: tiles of
    # 128 + 2, of 64 + 32 + 1 (d prime, a one-coordinate tile), prod mode on 64 + 8 tiles,
    # and the smallest d of all with five rounds.
    dict(name="tiled_mse_b3_d130", shape=[20, 130], dtype="float32", data_seed=114,
         zero_rows=[6], options=dict(bits=3, mode="mse", seed=0, rounds=3, scale_rule="ls",
                                     scale_dtype="float32", chunk_rows=8, rotation="tiled")),
    dict(name="tiled_mse_b4_d97", shape=[11, 97], dtype="float32", data_seed=115,
         zero_rows=[], options=dict(bits=4, mode="mse", seed=21, rounds=3, scale_rule="norm",
                                    scale_dtype="float32", chunk_rows=8, rotation="tiled")),
    dict(name="tiled_prod_b3_d72", shape=[10, 72], dtype="float32", data_seed=116,
         zero_rows=[1], options=dict(bits=3, mode="prod", seed=8, rounds=2,
                                     scale_rule="norm", scale_dtype="float16", chunk_rows=8,
                                     rotation="tiled")),
    dict(name="tiled_mse_b2_d3_f64", shape=[9, 3], dtype="float64", data_seed=117,
         zero_rows=[], options=dict(bits=2, mode="mse", seed=5, rounds=5, scale_rule="ip",
                                    scale_dtype="float32", chunk_rows=8, rotation="tiled")),
    # centred files (flags bit 8, section 3.4): rows with a common offset; the centre is
    # the mean of the first chunk.  mse in binary32 with a row that is the offset alone,
    # prod from float64 with binary64 scales, float16 through binary32.
    dict(name="centered_mse_b4_d48", shape=[20, 48], dtype="float32", data_seed=118,
         zero_rows=[13], offset=1.5,
         options=dict(bits=4, mode="mse", seed=0, rounds=3, scale_rule="ls",
                      scale_dtype="float32", chunk_rows=8, rotation="tiled", center=True)),
    dict(name="centered_prod_b3_d40_f64s", shape=[12, 40], dtype="float64", data_seed=119,
         zero_rows=[], offset=-4.0,
         options=dict(bits=3, mode="prod", seed=9, rounds=3, scale_rule="norm",
                      scale_dtype="float64", chunk_rows=8, rotation="tiled", center=True)),
    dict(name="centered_mse_b3_rank3_f16", shape=[2, 6, 24], dtype="float16", data_seed=120,
         zero_rows=[], offset=0.25,
         options=dict(bits=3, mode="mse", seed=4, rounds=3, scale_rule="ip",
                      scale_dtype="float32", chunk_rows=8, rotation="tiled", center=True)),
    # tq 1.3: the entropy coding (flags coding 1, section 19): a fractional rate over three
    # chunks (16 + 16 + 8 vectors, one segment each: G = 16 = chunk_rows); a target error
    # (--nmse) on a centred float16 array with the ip rule; a rate of 6.3 (a large grid)
    # from float64 with binary64 scales and a zero vector.
    dict(name="entropy_b2.5_d64", shape=[40, 64], dtype="float32", data_seed=121,
         zero_rows=[], options=dict(bits=2.5, mode="mse", seed=0, rounds=3, scale_rule="ls",
                                    scale_dtype="float32", chunk_rows=16, rotation="tiled",
                                    coding="entropy")),
    dict(name="entropy_nmse0.02_centered_f16", shape=[20, 48], dtype="float16",
         data_seed=122, zero_rows=[], offset=0.5,
         options=dict(bits=None, nmse=0.02, mode="mse", seed=6, rounds=3, scale_rule="ip",
                      scale_dtype="float32", chunk_rows=8, rotation="tiled", center=True,
                      coding="entropy")),
    dict(name="entropy_b6.3_d40_f64s", shape=[11, 40], dtype="float64", data_seed=123,
         zero_rows=[3], options=dict(bits=6.3, mode="mse", seed=31, rounds=2,
                                     scale_rule="ls", scale_dtype="float64", chunk_rows=8,
                                     rotation="tiled", coding="entropy")),
]


def make_input(v: dict) -> np.ndarray:
    """Gaussian rows with per-row norms spread over two orders of magnitude."""
    rng = np.random.default_rng(v["data_seed"])
    shape = tuple(v["shape"])
    d = shape[-1]
    x = rng.standard_normal(shape).reshape(-1, d)
    x *= np.exp(rng.uniform(-2.0, 2.0, size=(x.shape[0], 1)))
    x[v["zero_rows"]] = 0.0
    if "offset" in v:  # a common offset, different in every coordinate, for centring
        x += v["offset"] * (1.0 + np.arange(d) / d)
    return x.reshape(shape).astype(v["dtype"])


def npy_bytes(a: np.ndarray) -> bytes:
    from tqcli.arrayio import npy_header_bytes

    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return npy_header_bytes(a.shape, a.dtype) + a.tobytes()


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def main() -> None:
    import tqcli

    manifest = []
    for v in VECTORS:
        name = v["name"]
        x = make_input(v)
        base = os.path.join(HERE, name)
        _write(base + ".input.npy", npy_bytes(x))
        blob = tqcli.compress(x, **v["options"])
        _write(base + ".tqz", blob)
        _write(base + ".decoded.npy", npy_bytes(tqcli.decompress(blob, dtype="original")))
        out = subprocess.run(["tq", "inspect", name + ".tqz", "--json"], cwd=HERE,
                             check=True, capture_output=True).stdout
        _write(base + ".inspect.json", out)
        manifest.append(dict(name=name, shape=v["shape"], dtype=v["dtype"],
                             data_seed=v["data_seed"], zero_rows=v["zero_rows"],
                             options=v["options"], tqz_bytes=len(blob)))
        print(f"{name}: {len(blob)} bytes", file=sys.stderr)
    with open(os.path.join(HERE, "vectors.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
