"""Inputs that a data-oblivious rotation must not treat as special (issue 11), and the
error ratio tq is judged by; shared by tests/test_rotation_quality.py and
bench/rotation_quality.py (which prints the README's table).

Every family gives n rows of dimension d from a numpy Generator:

  one-hot    rows of the identity (distinct coordinates)
  sparse     5 nonzero Gaussian values at random coordinates
  channels   Gaussian rows with two channels scaled by 30 (the "massive activations" of
             attention keys: most of every row's energy lies in the same two directions)
  constant   rows of ones (one direction only)
  dense      Gaussian rows
"""

from __future__ import annotations

import numpy as np

FAMILIES = ("one-hot", "sparse", "channels", "constant", "dense")


def family_rows(family: str, d: int, n: int, rng: np.random.Generator) -> np.ndarray:
    if family == "one-hot":
        x = np.zeros((min(n, d), d), np.float32)
        x[np.arange(x.shape[0]), rng.choice(d, size=x.shape[0], replace=False)] = 1.0
        return x
    if family == "sparse":
        x = np.zeros((n, d), np.float32)
        cols = np.argsort(rng.random((n, d)), axis=1)[:, :5]
        np.put_along_axis(x, cols, rng.standard_normal((n, 5)).astype(np.float32), axis=1)
        return x
    if family == "channels":
        x = rng.standard_normal((n, d)).astype(np.float32)
        x[:, [3, d // 2]] *= 30.0
        return x
    if family == "constant":
        return np.ones((8, d), np.float32)
    if family == "dense":
        return rng.standard_normal((n, d)).astype(np.float32)
    raise ValueError(family)


def error_ratio(x: np.ndarray, xhat: np.ndarray, bits: int) -> float:
    """Mean normalised error ||x - xhat||^2 / ||x||^2 over the rows, divided by the exact
    Lloyd-Max optimum for this d and b (what a uniformly random rotation achieves)."""
    from tqcli.codec.codebook import expected_distortion

    x = x.astype(np.float64)
    err = ((x - xhat.astype(np.float64)) ** 2).sum(axis=1) / (x * x).sum(axis=1)
    return float(err.mean() / expected_distortion(x.shape[1], bits))
