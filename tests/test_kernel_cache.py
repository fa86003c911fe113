"""tqcli.kernels.cache: clearing numba's cache removes tq's compiled kernels, nothing else."""
from __future__ import annotations

from tqcli.kernels import cache


def test_clear_removes_the_kernels_compiled_files_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    nested = tmp_path / "work" / "tqcli" / "kernels"
    nested.mkdir(parents=True)
    ours = [nested / "encode.encode_rows-120.py311.nbi",
            nested / "encode.encode_rows-120.py311.1.nbc",
            tmp_path / "rans.rans_decode-40.py311.nbi"]
    theirs = [nested / "other_package.f-1.py311.nbi", nested / "encode.py", tmp_path / "notes.txt"]
    for f in ours + theirs:
        f.write_bytes(b"x")
    assert str(tmp_path) in cache.cache_dirs()  # NUMBA_CACHE_DIR is one of the folders
    # (the package's own folder is one too: the test clears only its scratch folder, so
    # that the compiled kernels of the suite stay)
    found = cache.cached_files([tmp_path])
    assert set(map(str, ours)) <= set(found) and not set(map(str, theirs)) & set(found)
    removed = cache.clear([tmp_path])
    assert set(map(str, ours)) <= set(removed)
    assert not any(f.exists() for f in ours) and all(f.exists() for f in theirs)
    assert cache.clear([tmp_path]) == []  # nothing of ours left to remove
