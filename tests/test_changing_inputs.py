"""Inputs that change while tq compresses them: truncated, grown, rewritten in place, or
replaced by another file under the same name -- before the first block is read, and
between blocks.  Each gives one line `tq: FILE: changed while tq read it (...)`, exit 1,
no output and no temporary left, no signal.

Before: a .npy truncated between blocks killed tq with SIGBUS (a memory map) and left a
25 MB hidden temporary; truncated before the first block, it was "internal error:
TypeError: buffer is too small"; the other changes went unnoticed (exit 0, an output mixing
two files).  The change is made by an injected fault (tests/fuzzkit.py, change_input) once
the encoder has taken a block: the input is 17.8 MB, two blocks of the encoder's 16 MiB.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from fuzzkit import COUNTS

ROWS, DIM = 4352, 1024  # 4096 + 256 rows: two blocks


@pytest.fixture(scope="module")
def array():
    return np.random.default_rng(3).standard_normal((ROWS, DIM)).astype(np.float32)


def _write(folder, kind: str, x) -> str:
    if kind == "npy":
        np.save(folder / "x.npy", x)
        return "x.npy"
    from safetensors.numpy import save_file

    save_file({"w": x}, str(folder / "x.safetensors"))
    return "x.safetensors"


# a collection (safetensors) to stdout needs --member: its outputs are a name and the default
CASES = [(kind, how, after, target) for kind in ("npy", "safetensors")
         for how in ("truncate", "grow", "rewrite", "replace") for after in (0, 1)
         for target in ("default", "other", "stdout")
         if not (kind == "safetensors" and target == "stdout")]


@pytest.mark.parametrize("kind,how,after,target", CASES)
def test_an_input_that_changes_is_refused_in_one_line(pool, tmp_path, array, kind, how,
                                                      after, target):
    name = _write(tmp_path, kind, array)
    args = ["compress", name, "-b", "1"] + {"default": [], "other": ["-o", "out.tqz"],
                                           "stdout": ["-c"]}[target]
    r = pool.run(args, tmp_path, fault={"kind": "change_input", "path": str(tmp_path / name),
                                        "how": how, "after": after})
    COUNTS.tried += 1
    err = r.stderr.decode(errors="replace")
    left = sorted(set(os.listdir(tmp_path)) - {name})
    if r.returncode < 0 or "internal error" in err or "Traceback" in err:
        COUNTS.note("crashes", f"{kind} {how} after {after}: {r.returncode} {err[-200:]}")
    if left:
        COUNTS.note("partial", f"{kind} {how} after {after}: left {left}")
    assert r.returncode == 1, (r.returncode, err)
    assert len(r.lines) == 1 and r.lines[0].startswith(f"tq: {name}: "), r.lines
    assert "changed while tq read it" in r.lines[0], r.lines
    assert left == [], left
    if target != "stdout":
        assert r.stdout == b""


def test_an_input_removed_while_read_is_read_to_its_end(pool, tmp_path, array):
    """Removing the name does not change the data tq holds open: the output is complete
    and equals the one of the file left alone."""
    import tqcli

    for name, fault in (("a", None), ("b", {"kind": "change_input", "how": "remove",
                                            "after": 1})):
        np.save(tmp_path / f"{name}.npy", array)
        if fault:
            fault["path"] = str(tmp_path / f"{name}.npy")
        r = pool.run(["compress", f"{name}.npy", "-b", "1", "-o", f"{name}.tqz"], tmp_path,
                     fault=fault)
        assert r.returncode == 0, r.stderr
    assert not (tmp_path / "b.npy").exists()
    assert (tmp_path / "a.tqz").read_bytes() == (tmp_path / "b.tqz").read_bytes()
    assert tqcli.decompress(str(tmp_path / "b.tqz")).shape == (ROWS, DIM)
