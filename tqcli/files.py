"""Output files that appear under their final name only when complete.

Data goes to a hidden temporary file in the destination folder, which is flushed and
renamed over the final name at the end; on any error or interrupt it is removed.
"""

from __future__ import annotations

import os
import sys
import tempfile

from .errors import TqError

BUFFER = 1 << 20


def write_error(e: OSError, name: str) -> TqError:
    """A failed write (disk full, I/O error) as a one-line error naming the output."""
    return TqError(f"write failed ({e.strerror or e})", name)


class GuardedStream:
    """A binary output stream whose write errors name the output instead of nobody."""

    def __init__(self, raw, name: str):
        self.raw = raw
        self.name = name

    def write(self, data) -> int:
        try:
            return self.raw.write(data)
        except OSError as e:
            raise write_error(e, self.name) from None

    def flush(self) -> None:
        try:
            self.raw.flush()
        except OSError as e:
            raise write_error(e, self.name) from None

    def fileno(self) -> int:
        return self.raw.fileno()

    def seekable(self) -> bool:
        return self.raw.seekable()

    def tell(self) -> int:
        return self.raw.tell()

    def seek(self, pos: int, whence: int = 0) -> int:
        return self.raw.seek(pos, whence)

    def truncate(self, size: int | None = None) -> int:
        return self.raw.truncate(size)

    @property
    def closed(self) -> bool:
        return self.raw.closed

    def close(self) -> None:
        try:
            self.raw.close()
        except OSError as e:
            raise write_error(e, self.name) from None


def refuse_terminal(stream, name: str = "-") -> None:
    if stream.isatty():
        raise TqError("refusing to write binary data to a terminal (use -o FILE or redirect)",
                      name)


class AtomicOutput:
    """A new file at `path` written through `stream` (or by a writer given writer_path())."""

    def __init__(self, path: str, force: bool = False):
        self.path = path
        self.force = force
        self.tmp = None
        self.stream = None
        self._handed_over = False
        if os.path.isdir(path):
            raise TqError("is a directory", path)
        if os.path.lexists(path) and not force:
            raise TqError("already exists; use -f to overwrite", path)
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise TqError("output folder does not exist", path)
        try:
            fd, self.tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                                            suffix=".tmp", dir=folder)
        except PermissionError:
            raise TqError("cannot write to the output folder (permission denied)", path) from None
        except OSError as e:
            raise TqError(f"cannot create output ({e.strerror})", path) from None
        umask = os.umask(0)
        os.umask(umask)
        try:
            os.fchmod(fd, 0o666 & ~umask)
        except OSError:
            pass  # a file system without permissions (FAT, some FUSE mounts)
        self.stream = GuardedStream(os.fdopen(fd, "wb", buffering=BUFFER), path)

    def writer_path(self) -> str:
        """Hand the temporary file to a writer that opens files by name (HDF5).

        The stream is closed here, so nothing written through it competes with that writer;
        the writer must have closed the file before commit() renames it into place, and
        discard() still removes it on failure.
        """
        self.stream.close()
        self._handed_over = True
        return self.tmp

    def commit(self) -> None:
        if self._handed_over:
            self._publish()
            return
        try:
            # like gzip and zstd, no fsync: the rename publishes a complete file, and the
            # kernel's write-back is left to do its job (an fsync costs a disk round trip
            # per file and dominates on large outputs)
            self.stream.flush()
            self.stream.close()
        except OSError as e:
            raise write_error(e, self.path) from None
        self._publish()

    def _publish(self) -> None:
        if os.path.lexists(self.path) and not self.force:
            raise TqError("already exists; use -f to overwrite", self.path)
        try:
            os.replace(self.tmp, self.path)
        except OSError as e:
            raise TqError(f"cannot rename the finished output into place ({e.strerror})",
                          self.path) from None
        self.tmp = None

    def discard(self) -> None:
        if self.stream is not None and not self.stream.closed:
            try:
                self.stream.close()
            except (OSError, TqError):
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


class StreamOutput:
    """A binary stream the caller owns as an output: written in place, flushed, not closed."""

    def __init__(self, stream, name: str = "<stream>"):
        self.path = name
        self.stream = GuardedStream(stream, name)

    def writer_path(self) -> str:
        raise TqError("HDF5 output needs a file name, not a stream", self.path)

    def commit(self) -> None:
        self.stream.flush()

    def discard(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class StdoutOutput(StreamOutput):
    """stdout as an output: never a terminal, nothing to rename."""

    def __init__(self):
        refuse_terminal(sys.stdout, "-")
        super().__init__(sys.stdout.buffer, "-")


def open_output(target, force: bool = False):
    """The output for a path (written atomically), '-' (stdout) or a binary stream."""
    if isinstance(target, (str, os.PathLike)):
        target = os.fspath(target)
        return StdoutOutput() if target == "-" else AtomicOutput(target, force)
    return StreamOutput(target, getattr(target, "name", None) or "<stream>")
