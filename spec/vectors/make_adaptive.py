"""Regenerate the adaptive coding's test vectors (spec section 21): adaptive_*.input.npy,
.basis.npz (the Basis given to the encoder: mean, components, variances, rows), .tqz and
.decoded.npy, and adaptive.json.  The basis is given, not fitted, so that the vectors do not
depend on the fitting (tqcli/codec/fitting.py); tests/test_spec_adaptive.py checks them.

    python spec/vectors/make_adaptive.py
"""

from __future__ import annotations

import io
import json
import os

import numpy as np

import tqcli
from tqcli.codec.adaptive_model import Basis

HERE = os.path.dirname(os.path.abspath(__file__))

VECTORS = [
    # name, shape, source dtype, options, seed of the data
    ("adaptive_b2_d48", (300, 48), "float32", {"bits": 2, "chunk_rows": 64}, 1),
    ("adaptive_b5_rank3_d24", (4, 50, 24), "float16", {"bits": 5, "chunk_rows": 48}, 2),
    ("adaptive_nmse_d20_f64", (90, 20), "float64", {"nmse": 1e-7, "chunk_rows": 32}, 3),
    ("adaptive_nmse_d32", (120, 32), "float32", {"nmse": 2e-5, "chunk_rows": 40}, 4),
    # a basis with scales (21.3): rows of unequal norms, a zero row, a partial chunk
    ("adaptive_scaled_b3_d40", (257, 40), "float32", {"bits": 3, "chunk_rows": 96}, 5),
]


def data(name, shape, dtype, seed):
    """Rows with a decaying spectrum around an offset, in a basis rotated by a fixed
    orthonormal matrix (the basis given to the encoder is that matrix's rows)."""
    rng = np.random.default_rng(seed)
    d = shape[-1]
    n = int(np.prod(shape[:-1]))
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    var = np.exp(-0.15 * np.arange(d))
    z = rng.standard_normal((n, d)) * np.sqrt(var)
    scaled = "scaled" in name
    if scaled:  # norms spread over two decades
        z *= np.exp(rng.uniform(-2.3, 2.3, (n, 1)))
    x = (z @ q.T + rng.standard_normal(d)).astype(dtype)
    x[5] = 0
    mean = x.astype(np.float64).mean(axis=0).astype(np.float32)
    basis = Basis(mean=mean, components=q.T.copy(), variances=var, rows=n, scaled=scaled,
                  rho=float(np.sqrt(var.sum())))
    return x.reshape(shape), basis


def main():
    manifest = []
    for name, shape, dtype, options, seed in VECTORS:
        x, basis = data(name, shape, dtype, seed)
        blob = tqcli.compress(x, adapt=basis, **options)
        h = tqcli.read_header(blob)
        np.save(os.path.join(HERE, name + ".input.npy"), x)
        np.savez(os.path.join(HERE, name + ".basis.npz"), mean=basis.mean,
                 components=basis.components, variances=basis.variances,
                 **({"scaled": basis.scaled, "rho": basis.rho} if basis.scaled else {}))
        with open(os.path.join(HERE, name + ".tqz"), "wb") as f:
            f.write(blob)
        np.save(os.path.join(HERE, name + ".decoded.npy"), tqcli.decompress(blob))
        manifest.append({"name": name, "shape": list(shape), "dtype": dtype,
                         "options": options, "components": h.model.k,
                         "basis_dtype": h.model.basis_dtype, "classes": h.model.n_classes,
                         "chunks": h.n_chunks, "bytes": len(blob),
                         **({"scales": 1} if h.model.scales else {})})
    with open(os.path.join(HERE, "adaptive.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    for m in manifest:
        print(m)


if __name__ == "__main__":
    main()
