"""First use: the kernels' worker threads, the first-compile notice, the decoder compiled
early in a second process -- none of which may change a byte of any result.

One test compiles from an empty numba cache (a fresh NUMBA_CACHE_DIR), as a new user's
first `tq eval` does; it is the only one here that pays a compile (about 6 s of CPU on the
2-core development VM).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import tqcli
from tqcli import kernels
from tqcli.library import precompile
from tqcli.codec.state import Codec
from tqcli.format.header import make_header

from conftest import gaussian
from fuzzkit import TQ


@pytest.fixture
def worker_threads():
    """Set the kernels' worker count directly (beyond the cores, to exercise uneven
    splits), and restore it."""
    from tqcli.kernels import workers

    saved = workers.thread_count()

    def set_count(n):
        workers._threads = n

    yield set_count
    workers._threads = saved


@pytest.mark.parametrize("n", [1, 8, 127, 128, 129, 1000, 2049])
def test_any_worker_count_gives_the_same_bytes(worker_threads, n):
    """The tasks of a call are split into one contiguous range per worker; whatever the
    count (more workers than tasks included), every task runs once and the bytes agree."""
    x = gaussian(n, 40, seed=5)
    results = []
    for threads in (1, 2, 3, 7):
        worker_threads(threads)
        for mode in ("mse", "prod"):
            blob = tqcli.compress(x, bits=3, mode=mode, chunk_rows=64)
            results.append((threads, mode, blob, tqcli.decompress(blob).tobytes()))
    for mode in ("mse", "prod"):
        runs = [r for r in results if r[1] == mode]
        assert all(r[2] == runs[0][2] and r[3] == runs[0][3] for r in runs), mode


def test_rotate_rows_is_split_without_overlap(worker_threads):
    """Rotating in place twice over the same rows would show: each row is rotated once."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 24)).astype(np.float32)
    plan = tqcli.codec.rotations.ROTATIONS.by_name("tiled").plan(24, 7, 3).kernel_args
    want = x.copy()
    worker_threads(1)
    kernels.rotate_rows(want, plan, False)
    got = x.copy()
    worker_threads(5)
    kernels.rotate_rows(got, plan, False)
    assert np.array_equal(got, want)


def test_set_threads_is_bounded_by_the_limit():
    try:
        assert tqcli.set_threads(1) == 1
        assert kernels.thread_count() == 1
        assert tqcli.set_threads(10 ** 6) == kernels.thread_limit()
        assert tqcli.set_threads(0) == kernels.thread_limit()
    finally:
        tqcli.set_threads(None)


def test_no_early_decoder_when_it_is_cached():
    """The decoders this test process has used are in numba's cache: nothing is started."""
    x = gaussian(16, 32, seed=2)
    tqcli.decompress(tqcli.compress(x))  # compiled or loaded: now cached
    assert kernels.is_cached("decode_mse_kernel")
    pending = precompile.decoder_early(make_header(32, 4))
    assert pending.proc is None
    pending.wait()  # and waiting on nothing returns


def test_the_child_decodes_zeros_under_a_header():
    """What the precompiling child runs, in this process: one chunk of zeros decodes."""
    h = make_header(32, 3, mode="prod", shape=(16, 32))
    out = Codec(h).decode(bytes(h.payload_size(8)), 8)
    assert out.shape == (8, 32) and not out.any()
    res = subprocess.run([sys.executable, "-m", "tqcli.library.precompile"], input=h.to_bytes(),
                         capture_output=True, timeout=300)
    assert res.returncode == 0, res.stderr


def test_first_use_says_it_compiles_once_and_changes_nothing(tmp_path):
    """From an empty numba cache: `tq eval --progress` says once that it compiles, the
    decoder is compiled by the early child (it is in the cache afterwards), and the report
    is the same as on the next run, which loads everything and says nothing."""
    x = gaussian(300, 48, seed=9)
    src = tmp_path / "x.npy"
    np.save(src, x)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    cmd = [*TQ, "eval", str(src), "-b", "3", "--json", "--progress"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    # --progress into a pipe draws the bar with its escape codes; the notice is a line of it
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", first.stderr).replace("\r", "\n")
    notices = [ln for ln in text.splitlines() if "compiling kernels" in ln]
    assert len(notices) == 1, first.stderr
    assert notices[0].startswith("tq: compiling kernels for first use, once, ~")
    cached = subprocess.run(
        [sys.executable, "-c", "from tqcli import kernels; "
         "print(kernels.is_cached('decode_mse_kernel'), kernels.is_cached('encode_mse_kernel'),"
         " kernels.is_cached('decode_prod_kernel'))"],
        env=env, capture_output=True, text=True, timeout=120)
    assert cached.stdout.split() == ["True", "True", "False"], cached.stderr
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "compiling" not in second.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout)
    # and the compress of a cold process is the compress of this one
    out = tmp_path / "x.tqz"
    res = subprocess.run([*TQ, "compress", str(src), "-b", "3", "-o", str(out)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == tqcli.compress(x, bits=3)
