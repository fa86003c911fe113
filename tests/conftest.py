"""Shared helpers for the engine tests: the real-data location and small array factories.

The real data sets live outside the repository, in ../shared/data relative to the project
root (see that folder's README.md).  Tests that need them use the fixtures below, which skip
with an explicit reason only when the file is not there; everything else runs on a machine
that has nothing but the project.  Where the data must be there (CI, which has ../shared
beside the clone), TQ_REQUIRE_DATA=1 turns that skip into a failure, so that a moved or
renamed data file cannot silently switch the real-data tests off.

The numeric helpers (nmse, row_nmse, unit_rows) live here, once, for every test file.
"""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest

DATA_DIR = Path(__file__).parents[2] / "shared" / "data"

# TQ_REQUIRE_DATA=1 (set by .ci/run): a missing real-data file fails the test instead of
# skipping it.
REQUIRE_DATA = os.environ.get("TQ_REQUIRE_DATA") == "1"

# Solved codebooks are cached per user; the tests use a cache of their own (inherited by the
# tq processes they start) so that they solve every codebook afresh and leave ~ alone.  It
# is removed when the session ends (pytest_sessionfinish), so that runs leave nothing behind.
TEST_CACHE_DIR = tempfile.mkdtemp(prefix="tq-test-cache-")
os.environ["TQ_CACHE_DIR"] = TEST_CACHE_DIR


def pytest_sessionfinish(session, exitstatus):
    """Remove this run's codebook cache folder (tq-test-cache-* in the temp directory)."""
    import shutil

    shutil.rmtree(TEST_CACHE_DIR, ignore_errors=True)


def data_file(name: str) -> Path:
    """Path of a shared data file, or skip the test (and only then) if it is absent.

    With TQ_REQUIRE_DATA=1 an absent file is a failure: there the data should be present.
    """
    path = DATA_DIR / name
    if not path.is_file():
        reason = (f"real data file {path} is not present on this machine "
                  f"(it ships outside the repository, in ../shared/data)")
        if REQUIRE_DATA:
            pytest.fail(f"{reason}; TQ_REQUIRE_DATA=1 requires it")
        pytest.skip(reason)
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


def row_nmse(x: np.ndarray, xh: np.ndarray, block: int = 4096) -> np.ndarray:
    """||x - xh||^2 / ||x||^2 for every vector (last axis), in float64 (rows of x must be
    nonzero).  Works a block of rows at a time, so that 20000 x 1536 inputs do not need
    float64 copies of the whole arrays."""
    d = np.shape(x)[-1]
    x = np.asarray(x).reshape(-1, d)
    xh = np.asarray(xh).reshape(x.shape)
    out = np.empty(x.shape[0])
    for a in range(0, x.shape[0], block):
        xs = x[a:a + block].astype(np.float64)
        diff = xs - xh[a:a + block].astype(np.float64)
        out[a:a + block] = np.einsum("ij,ij->i", diff, diff) / np.einsum("ij,ij->i", xs, xs)
    return out


def nmse(x: np.ndarray, xh: np.ndarray) -> float:
    """Mean over rows of ||x - xh||^2 / ||x||^2, in float64 (rows of x must be nonzero)."""
    return float(np.mean(row_nmse(x, xh)))


def pytest_terminal_summary(terminalreporter):
    """One line of the fuzz and fault suites' case counters (tests/fuzzkit.py), when any ran."""
    import sys

    fuzzkit = sys.modules.get("fuzzkit")
    if fuzzkit is None or not fuzzkit.COUNTS.tried:
        return
    terminalreporter.write_line(fuzzkit.COUNTS.summary())
    for line in fuzzkit.COUNTS.table():
        terminalreporter.write_line(f"  {line}")
    for note in fuzzkit.COUNTS.notes[:20]:
        terminalreporter.write_line(f"  {note}")


def gaussian(n: int, d: int, dtype=np.float32, seed: int = 0) -> np.ndarray:
    """n x d standard normal rows (seeded), as `dtype`."""
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


@pytest.fixture
def xfile(tmp_path) -> tuple[Path, np.ndarray]:
    """A 200 x 64 float32 .npy in the test's folder, and its array."""
    x = gaussian(200, 64)
    p = tmp_path / "x.npy"
    np.save(p, x)
    return p, x


@pytest.fixture
def tq(monkeypatch, tmp_path):
    """(test_cli_files, test_collections) tq run in-process in tmp_path; returns (exit code, stdout bytes, stderr lines).
    The signal handlers tq installs are put back after each run."""
    from click.testing import CliRunner

    from tqcli.cli import main

    monkeypatch.chdir(tmp_path)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGPIPE)}

    def run(*args, input=None):
        result = CliRunner().invoke(main, [str(a) for a in args], input=input)
        for s, handler in saved.items():
            signal.signal(s, handler)
        assert "Traceback" not in result.stderr
        return result.exit_code, result.stdout_bytes, result.stderr.splitlines()

    return run


@pytest.fixture(autouse=True)
def _fuzz_family(request):
    """The family the fuzz counters of this test count in (tests/fuzzkit.py, family_of)."""
    import sys

    fuzzkit = sys.modules.get("fuzzkit")
    if fuzzkit is not None:
        fuzzkit.COUNTS.family = fuzzkit.family_of(request.node.nodeid)
    yield


@pytest.fixture(scope="module")
def pool():
    """One pre-warmed tq command-line child (fuzzkit.CliPool) per test module that asks
    for it; a module wanting more workers defines its own."""
    from fuzzkit import CliPool

    p = CliPool(1)
    yield p
    p.close()
