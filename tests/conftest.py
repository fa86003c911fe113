"""Shared helpers for the engine tests: the real-data location and small array factories.

The real data sets live outside the repository, in ../shared/data relative to the project
root (see that folder's README.md).  Tests that need them use the fixtures below, which skip
with an explicit reason only when the file is not there; everything else runs on a machine
that has nothing but the project.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

DATA_DIR = Path(__file__).parents[2] / "shared" / "data"

# Solved codebooks are cached per user; the tests use a cache of their own (inherited by the
# tq processes they start) so that they solve every codebook afresh and leave ~ alone.
os.environ["TQ_CACHE_DIR"] = tempfile.mkdtemp(prefix="tq-test-cache-")


def data_file(name: str) -> Path:
    """Path of a shared data file, or skip the test (and only then) if it is absent."""
    path = DATA_DIR / name
    if not path.is_file():
        pytest.skip(f"real data file {path} is not present on this machine "
                    f"(it ships outside the repository, in ../shared/data)")
    return path


@pytest.fixture(scope="session")
def minilm_sentences() -> np.ndarray:
    """(10000, 384) float32 unit-norm all-MiniLM-L6-v2 sentence embeddings."""
    x = np.load(data_file("minilm_sentences.npy"))
    assert x.shape == (10000, 384) and x.dtype == np.float32
    return x


@pytest.fixture(scope="session")
def minilm_kv() -> np.ndarray:
    """(6, 2, 12, 512, 32) float32 keys and values of all-MiniLM-L6-v2."""
    x = np.load(data_file("minilm_kv.npy"))
    assert x.shape == (6, 2, 12, 512, 32) and x.dtype == np.float32
    return x


def unit_rows(rng: np.random.Generator, n: int, d: int, dtype=np.float32) -> np.ndarray:
    """n uniformly random unit vectors of R^d (normalised Gaussians), as `dtype`."""
    g = rng.standard_normal((n, d))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return g.astype(dtype)


def nmse(x: np.ndarray, xh: np.ndarray) -> float:
    """Mean over rows of ||x - xh||^2 / ||x||^2, in float64 (rows of x must be nonzero)."""
    x = np.asarray(x, np.float64).reshape(-1, np.shape(x)[-1])
    xh = np.asarray(xh, np.float64).reshape(x.shape)
    err = np.einsum("ij,ij->i", x - xh, x - xh)
    return float(np.mean(err / np.einsum("ij,ij->i", x, x)))


def pytest_terminal_summary(terminalreporter):
    """One line of the fuzz and fault suites' case counters (tests/fuzzkit.py), when any ran."""
    import sys

    fuzzkit = sys.modules.get("fuzzkit")
    if fuzzkit is None or not fuzzkit.COUNTS.tried:
        return
    terminalreporter.write_line(fuzzkit.COUNTS.summary())
    for note in fuzzkit.COUNTS.notes[:20]:
        terminalreporter.write_line(f"  {note}")
