"""Tuning of the command-line process: helper threads, garbage collection, engine start.

None of this is for a library user's process: the `tq` command calls these functions
because it owns its process and runs one short job in it.  Nothing heavy is imported at
module level (no numpy, no numba), so `tq --help` stays instant.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys

_gc_paused = False
_gc_frozen = False


def quiet_idle_threads() -> None:
    """Keep idle helper threads off the CPUs the kernels need.

    tq never calls BLAS, yet numpy's OpenBLAS starts a thread per core that spins for a
    while.  (The kernels' own workers are plain threads that sleep between calls.)  Only
    this command-line process is affected, before numpy loads, and a value the user set is
    kept.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def pause_gc() -> bool:
    """numba's start-up builds a large object graph.  Collecting it again and again while it
    is built costs ~10% of a short command, and once more when the interpreter exits
    (~0.14 s).  So collection is off until the kernels are loaded (start_engine) and then
    resumes with that graph frozen (gc.freeze, once per process) out of later collections.

    Returns whether collection was paused; the caller then calls resume_gc when the command
    ends, also if it ends before start_engine.  A caller that had switched collection off
    keeps it off (nothing is paused).
    """
    global _gc_paused
    if not gc.isenabled():
        return False
    gc.disable()
    _gc_paused = True
    return True


_freeze_registered = False


def freeze_at_exit() -> None:
    """Have the interpreter's exit skip its last garbage collections: at exit (atexit, once
    per process) every object still alive is frozen (gc.freeze), so that the collections
    of the interpreter's shutdown do not walk numpy's, click's and tq's objects one by
    one -- a third of `tq inspect` and of `tq --help` on the development VM.  Nothing
    changes before the exit; what tq writes is closed by then (outputs are renamed into
    place by the command itself)."""
    global _freeze_registered
    if not _freeze_registered:
        _freeze_registered = True
        atexit.register(gc.freeze)


def resume_gc(freeze: bool = False) -> None:
    global _gc_paused, _gc_frozen
    if not _gc_paused:
        return
    if freeze and not _gc_frozen:
        gc.freeze()
        _gc_frozen = True
    _gc_paused = False
    gc.enable()


class Unimportable:
    """Within the block, `import name` fails for the given modules not yet imported (an
    ImportError their optional users handle); afterwards they import normally."""

    def __init__(self, *names: str):
        self.names = [n for n in names if n not in sys.modules]

    def __enter__(self):
        for n in self.names:
            sys.modules[n] = None

    def __exit__(self, *exc):
        for n in self.names:
            sys.modules.pop(n, None)


def load_library():
    """tqcli.library.api, imported with numba behind it; numba imports scipy only to check its
    version (10 ms), which this command-line process skips."""
    with Unimportable("scipy"):
        from ..library import api
    return api


def start_engine(n: int | None) -> None:
    """Start the engine for this process: numba, the kernels, n worker threads.

    numba's first compiled call loads its NumPy support, which imports scipy.linalg only to
    find a BLAS for np.dot and np.linalg -- 0.2 s that tq, which uses neither, would pay on
    every command.  In this command-line process (never in a library user's) that import
    is made to fail while the registries load; scipy stays importable afterwards (the
    codebook solver uses scipy.special).
    """
    with Unimportable("scipy", "scipy.linalg"):
        from .. import kernels

        kernels.warm_up()
    load_library().set_threads(n)
    resume_gc(freeze=True)


def load_fileio():
    """tqcli.fileio, the per-file policy over the library (loaded as load_library loads
    it)."""
    load_library()
    from .. import fileio
    return fileio
