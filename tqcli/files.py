"""Output files that appear under their final name only when complete.

Data goes to a hidden temporary file in the destination folder, which is flushed, synced
and renamed over the final name at the end; on any error or interrupt it is removed.
"""

from __future__ import annotations

import os
import sys
import tempfile

from .errors import TqError

BUFFER = 1 << 20


def refuse_terminal(stream, name: str = "-") -> None:
    if stream.isatty():
        raise TqError("refusing to write binary data to a terminal (use -o FILE or redirect)",
                      name)


class AtomicOutput:
    def __init__(self, path: str, force: bool = False):
        self.path = path
        self.force = force
        self.tmp = None
        self.stream = None
        if os.path.isdir(path):
            raise TqError("is a directory", path)
        if os.path.lexists(path) and not force:
            raise TqError("already exists; use -f to overwrite", path)
        folder = os.path.dirname(os.path.abspath(path))
        try:
            fd, self.tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                                            suffix=".tmp", dir=folder)
        except FileNotFoundError:
            raise TqError("output folder does not exist", path) from None
        except PermissionError:
            raise TqError("cannot write to the output folder (permission denied)", path) from None
        except OSError as e:
            raise TqError(f"cannot create output ({e.strerror})", path) from None
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        self.stream = os.fdopen(fd, "wb", buffering=BUFFER)

    def commit(self) -> None:
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()
        if os.path.lexists(self.path) and not self.force:
            raise TqError("already exists; use -f to overwrite", self.path)
        os.replace(self.tmp, self.path)
        self.tmp = None

    def discard(self) -> None:
        if self.stream is not None and not self.stream.closed:
            try:
                self.stream.close()
            except OSError:
                pass
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass
            self.tmp = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()


class StdoutOutput:
    """stdout as an output: never a terminal, nothing to rename."""

    path = "-"

    def __init__(self):
        refuse_terminal(sys.stdout, "-")
        self.stream = sys.stdout.buffer
        self.tmp = None

    def commit(self) -> None:
        self.stream.flush()

    def discard(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass
