"""numba's on-disk cache of tq's kernels: where it is, and clearing it.

numba writes each `cache=True` kernel's index (*.nbi) and machine code (*.nbc) beside its
source file, in tqcli/kernels/__pycache__, or under NUMBA_CACHE_DIR when that is set (and
in the user's cache folder when the package folder is not writable).  It checks only the
source file of the function it loads, so after an edit of a helper module (lanes.py,
groups.py) a stale driver in encode.py would be loaded: clear the cache then,

    python -m tqcli.kernels.cache            # prints what it removed

and the next use compiles afresh (about 5 s for the first command).
"""

from __future__ import annotations

import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def cache_dirs() -> list[str]:
    """The folders that may hold tq's compiled kernels, existing or not."""
    dirs = [os.path.join(HERE, "__pycache__")]
    override = os.environ.get("NUMBA_CACHE_DIR")
    if override:
        dirs.append(override)
    return dirs


def cached_files(dirs=None) -> list[str]:
    """The compiled-kernel files of tqcli.kernels in `dirs` (default: cache_dirs())."""
    found = []
    for d in cache_dirs() if dirs is None else dirs:
        for pattern in ("*.nbi", "*.nbc"):
            found += glob.glob(os.path.join(d, "**", pattern), recursive=True)
    return sorted(os.fspath(f) for f in found
                  if os.path.basename(f).split(".")[0] in _modules())


def _modules() -> set[str]:
    return {name[:-3] for name in os.listdir(HERE) if name.endswith(".py")}


def clear(dirs=None) -> list[str]:
    """Remove every compiled kernel of tqcli.kernels from `dirs` (default: cache_dirs());
    returns the files removed."""
    removed = []
    for f in cached_files(dirs):
        try:
            os.remove(f)
            removed.append(f)
        except FileNotFoundError:
            pass
    return removed


if __name__ == "__main__":
    for f in clear():
        print(f"removed {f}", file=sys.stdout)
