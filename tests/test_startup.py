"""Start-up cost: what the command line imports, and the on-disk codebook cache."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from tqcli.codec import codebook

PROBE = """
import sys
from tqcli.cli import main
try:
    main(%r, prog_name="tq")
except SystemExit:
    pass
print(sorted(m for m in ("numba", "scipy", "numpy", "h5py", "rich") if m in sys.modules))
"""


def _imported(args: list[str], env=None) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE % (args,)], capture_output=True,
                         text=True, timeout=120, env=env)
    return eval(out.stdout.strip().splitlines()[-1])


def test_help_and_version_import_neither_numba_nor_scipy():
    for args in (["--help"], ["--version"], ["compress", "--help"], ["eval", "--help"]):
        assert _imported(args) == [], args


def test_second_run_reads_codebooks_from_the_cache_without_solving(tmp_path):
    """numba itself imports the scipy package, but not scipy.special, which the solver needs."""
    env = dict(os.environ, TQ_CACHE_DIR=str(tmp_path / "cache"))
    code = ("import sys, numpy as np, tqcli; "
            "tqcli.compress(np.ones((3, 200), np.float32), bits=5); "
            "print('scipy.special' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=300).stdout.strip() for _ in range(2)]
    assert runs == ["True", "False"]
    assert os.listdir(tmp_path / "cache" / "codebooks") == ["lloyd-max-d200-b5.f64"]


def test_a_damaged_cache_entry_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("TQ_CACHE_DIR", str(tmp_path))
    d, bits = 123, 3
    fresh = codebook._solve_half(d, bits)
    path = codebook._cache_file(d, bits)
    os.makedirs(os.path.dirname(path))
    for junk in (b"", b"\x00" * 31, np.array([0.5, 0.1, 0.2, 0.3]).tobytes(),
                 np.array([np.nan, 0.1, 0.2, 0.3]).tobytes(), b"\xff" * 33):
        with open(path, "wb") as f:
            f.write(junk)
        assert codebook._read_cached(d, bits) is None
    codebook._write_cached(d, bits, fresh)
    assert codebook._read_cached(d, bits) == fresh
