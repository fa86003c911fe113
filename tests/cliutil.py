"""Helpers of the command-line tests (test_cli.py, test_cli_refusals.py): running `tq` as a
subprocess, checking its one-line errors and leftovers, small arrays and .npy bytes."""

from __future__ import annotations

import io
import os
import struct
import subprocess

import numpy as np
from conftest import DATA_DIR, REQUIRE_DATA, data_file, gaussian
from fuzzkit import TQ


# ---------------------------------------------------------------------------- helpers


def run(args, cwd, input: bytes | None = None, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdin", None if input is not None else subprocess.DEVNULL)
    return subprocess.run(TQ + [str(a) for a in args], cwd=cwd, input=input,
                          capture_output=True, timeout=120, **kw)


def run_many(jobs, cwd) -> list[subprocess.CompletedProcess]:
    """Run independent tq commands a few at a time; jobs are args lists or (args, input)."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [j if isinstance(j, tuple) else (j, None) for j in jobs]
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(lambda j: run(j[0], cwd, input=j[1]), jobs))


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, (r.returncode, r.stderr.decode())
    return r


def assert_error(r: subprocess.CompletedProcess, name: str, *words: str, code: int = 1) -> str:
    """Exit `code`, exactly one stderr line `tq: name: ...` holding `words`, no traceback."""
    err = r.stderr.decode()
    assert r.returncode == code, (r.returncode, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"tq: {name}: "), lines[0]
    for w in words:
        assert w.lower() in lines[0].lower(), (w, lines[0])
    return lines[0]


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


def no_temp_files(folder) -> None:
    stray = [f for f in os.listdir(folder) if f.endswith(".tmp")]
    assert stray == [], stray


def load_npy_bytes(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def hand_npy(descr: str, shape: tuple, body: bytes, fortran: bool = False) -> bytes:
    """A version 1.0 .npy file written byte by byte (no numpy involved)."""
    text = "{'descr': %r, 'fortran_order': %s, 'shape': %r, }" % (descr, fortran, shape)
    text += " " * ((-(10 + len(text) + 1)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1") + body


def kv_dump() -> np.ndarray:
    """A rank-5 (layers, k/v, heads, tokens, head_dim) array: a slice of the real MiniLM
    KV dump when ../shared/data has it, otherwise synthetic data of the same rank."""
    path = DATA_DIR / "minilm_kv.npy"
    if path.is_file() or REQUIRE_DATA:  # TQ_REQUIRE_DATA=1: no silent fallback
        return np.load(data_file("minilm_kv.npy"), mmap_mode="r")[:, :, :3, :40, :].copy()
    return gaussian(6 * 2 * 3 * 40, 32, seed=5).reshape(6, 2, 3, 40, 32)


