"""Output files that appear under their final name only when complete, and their names.

Data goes to a hidden temporary file in the destination folder, which is flushed and
renamed over the final name at the end; on any error or interrupt it is removed.  A name
that is already a FIFO, a character device (/dev/stdout, /dev/null) or a process
substitution (>(...)) is not a file to replace: it is written in place, as zstd does.

Names: the default output of `tq compress X` is X.tqz, of `tq decompress X.tqz` X (with
.npy added when X has no extension, so that key0.tqz becomes key0.npy), both optionally
in an --output-dir.  A name whose extension says another format is refused rather than
filled with bytes of the wrong kind (OTHER_FORMATS).
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile

from ..errors import InputError, OutputExistsError, TqError

BUFFER = 1 << 20


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


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


# extensions of formats tq does not write, by what they are: an output named so is refused
OTHER_FORMATS = {
    ".npz": "a numpy .npz archive", ".tqz": "a .tqz container", ".npy": "a .npy array",
    ".h5": "an HDF5 file", ".hdf5": "an HDF5 file", ".zst": "a zstd file",
    ".gz": "a gzip file", ".xz": "an xz file", ".bz2": "a bzip2 file",
    ".pt": "a PyTorch file", ".pth": "a PyTorch file", ".safetensors": "a safetensors file",
    ".pkl": "a pickle", ".pickle": "a pickle", ".csv": "a CSV file", ".txt": "a text file",
    ".json": "a JSON file", ".parquet": "a Parquet file", ".mat": "a MATLAB file",
}
ARRAY_EXTENSIONS = (".npy", ".h5", ".hdf5")  # what decompress writes (HDF5 by the name)


def _extension(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[1].lower()


def _is_special(path: str) -> bool:
    """An existing name that is not a regular file or a folder (a FIFO, a device)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def check_array_output_name(path: str) -> None:
    """Refuse a decompress output named as a format other than .npy or HDF5 (-o x.npz
    would otherwise hold .npy bytes).  FIFOs and devices are not judged by their names."""
    ext = _extension(path)
    if ext in OTHER_FORMATS and ext not in ARRAY_EXTENSIONS and not _is_special(path):
        raise TqError(f"the name says {OTHER_FORMATS[ext]}, but decompress writes .npy or "
                      f"HDF5 (.h5/.hdf5); choose a name ending in one of those", path)


def check_container_output_name(path: str) -> None:
    """Refuse a compress output named as another format (-o out.npy would hold a .tqz
    that numpy and every other reader would take for broken).  -f does not change this:
    it is about overwriting, not naming; `-c > out.npy` still writes anywhere."""
    ext = _extension(path)
    if ext in OTHER_FORMATS and ext != ".tqz" and not _is_special(path):
        raise TqError(f"the name says {OTHER_FORMATS[ext]}, but compress writes a .tqz "
                      f"container; name it .tqz (or write to stdout with -c)", path)


def compressed_name(input: str, output_dir: str | None = None) -> str:
    """The default output of compressing `input`: INPUT.tqz (in output_dir if given)."""
    name = input + ".tqz"
    return os.path.join(output_dir, os.path.basename(name)) if output_dir else name


def decompressed_name(input: str, output_dir: str | None = None) -> str:
    """The default output of decompressing `input`: its name without .tqz, with .npy
    added when what remains has no extension (key0.tqz -> key0.npy); in output_dir if
    given.  A name not ending in .tqz is refused (there is nothing to strip)."""
    base = os.path.basename(input)
    if not (base.lower().endswith(".tqz") and len(base) > 4):
        raise TqError("unknown suffix (expected .tqz); use -o OUT", input)
    name = input[:-4]
    if not _extension(name):
        name += ".npy"
    return os.path.join(output_dir, os.path.basename(name)) if output_dir else name


def refuse_terminal_input(stream, name: str | None = "-") -> None:
    """Never read binary data from a terminal (stdin or a path that is one)."""
    if stream.isatty():
        raise InputError("refusing to read binary data from a terminal", name)


def binary_stdin():
    """'-' as an input: stdin's bytes, never a terminal's."""
    refuse_terminal_input(sys.stdin, "-")
    return sys.stdin.buffer


def refuse_terminal_output(stream, name: str = "-") -> None:
    """Never write binary data to a terminal (stdout or a path that is one)."""
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
            raise OutputExistsError(path)
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
        try:
            os.fchmod(fd, 0o666 & ~current_umask())
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
            raise OutputExistsError(self.path)
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
        refuse_terminal_output(sys.stdout, "-")
        super().__init__(sys.stdout.buffer, "-")


class SpecialFileOutput(StreamOutput):
    """An existing FIFO or device (a process substitution, /dev/stdout): opened and written
    in place, since there is no file to replace; never a terminal, nothing to rename."""

    def __init__(self, path: str):
        try:
            raw = open(path, "wb", buffering=BUFFER)
        except OSError as e:
            raise TqError(f"cannot open for writing ({e.strerror})", path) from None
        try:
            refuse_terminal_output(raw, path)
        except TqError:
            raw.close()
            raise
        super().__init__(raw, path)

    def writer_path(self) -> str:
        raise TqError("HDF5 output needs a regular file, not a pipe or device", self.path)

    def commit(self) -> None:
        self.stream.flush()
        self.stream.close()

    def discard(self) -> None:
        if not self.stream.closed:
            try:
                self.stream.close()
            except (OSError, TqError):
                pass

    def __exit__(self, *exc):
        self.discard()


def open_output(target, force: bool = False):
    """The output for a path (written atomically; a FIFO or device in place), '-'
    (stdout) or a binary stream."""
    if isinstance(target, (str, os.PathLike)):
        target = os.fspath(target)
        if target == "-":
            return StdoutOutput()
        if _is_special(target):
            return SpecialFileOutput(target)
        return AtomicOutput(target, force)
    return StreamOutput(target, getattr(target, "name", None) or "<stream>")
