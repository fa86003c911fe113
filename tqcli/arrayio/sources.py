"""Input arrays as sources of row blocks: a .npy file or stream, an in-memory array, and
open_input, which picks the source for a name on the command line.

A source is n rows of d values (the last axis is the vector) that the encoder reads block
by block, so that an input of any size costs a block of memory: a .npy file is read by
position, block by block, and checked for changes around every read (arrayio.stable),
stdin is read into one reused buffer.
Each source checks dtype and shape (arrayio.base) before it reads a data byte; the .npy
header rules are in arrayio.npy, HDF5 input in arrayio.hdf5.
"""

from __future__ import annotations

import io
import os
import stat
import sys

import numpy as np

from ..errors import InputError
from .files import refuse_terminal_input
from . import bf16
from .base import ArraySource, check_dtype, check_shape
from .hdf5 import H5Source, split_h5_spec
from .stable import StableFile
from .npy import NPY_MAGIC, TQZ_MAGIC, read_npy_header, what_it_is
from .zarrio import ZarrSource, is_zarr_store


class NpyStreamSource(ArraySource):
    """A C-order .npy read sequentially from a binary stream (a file or stdin)."""

    def __init__(self, stream, name: str, size: int | None = None,
                 input_dtype: str | None = None, opened: os.stat_result | None = None):
        """size: a regular file's size (None: a stream); opened: its status when opened,
        which every read checks it against (arrayio.stable)."""
        self.stream = stream
        self.name = name
        self._opened = opened
        dtype, fortran, shape, offset = read_npy_header(stream.read, input_dtype is None)
        dtype = _reinterpret(dtype, input_dtype)
        check_shape(shape)
        self.dtype, self.shape, self.fortran = dtype, shape, fortran
        self.data_offset = offset
        self.size = size
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        self.nbytes = nbytes
        if size is not None and size - offset != nbytes:
            raise InputError(f".npy header declares {nbytes} data bytes but the file has "
                             f"{size - offset}",
                             kind="truncated" if size - offset < nbytes else None)

    def _read_all(self) -> bytearray:
        """All data bytes, read piecewise so that a lying header costs no memory up front."""
        raw = bytearray()
        while len(raw) < self.nbytes:
            piece = bytearray(min(1 << 24, self.nbytes - len(raw)))
            self._read_full(memoryview(piece), self.nbytes - len(raw))
            raw += piece
        return raw

    def _check_end(self) -> None:
        """A stream (stdin) must end with the array, as a file's size must match it."""
        if self.size is None and self.stream.read(1):
            raise InputError("trailing data after the .npy array")

    def _read_full(self, buf: memoryview, remaining: int | None = None) -> None:
        """Fill buf from the stream; `remaining` is the data bytes still due, for the message
        when the stream ends early (by default the end of buf is the end of a block)."""
        got = 0
        while got < len(buf):
            try:
                k = self.stream.readinto(buf[got:])
            except OSError as e:
                raise InputError(f"read failed ({e.strerror or e})") from None
            if not k:
                short = (len(buf) - got) if remaining is None else remaining - got
                raise InputError(f"truncated .npy data (ended {short} bytes short"
                                 + (" of a block)" if remaining is None else ")"),
                                 kind="truncated")
            got += k

    @property
    def rereadable(self) -> bool:
        return self.size is not None  # a file (read by position); not a pipe

    @property
    def fresh_blocks(self) -> bool:
        return self.size is not None  # a file's blocks are new arrays; a pipe's reuse one

    def check_unchanged(self) -> None:
        stable = getattr(self, "_stable", None)
        if stable is not None:
            stable.check()

    def _file_blocks(self, rows: int):
        """Blocks of a regular file by positioned reads, each into a new array (a consumer
        may keep them): no memory map, whose pages would turn a file truncated while tq
        reads it into SIGBUS.  The file is checked around every read (StableFile): one
        truncated, grown, rewritten or replaced meanwhile is refused with one line."""
        d, n = self.dim, self.n_rows
        f = self._stable = StableFile(self.stream.fileno(), self.name, self._opened)
        native = self.dtype.newbyteorder("=")
        row_bytes = d * self.dtype.itemsize
        if self.fortran and len(self.shape) > 1:
            # each row is strided across the whole file: read it whole, as from a pipe
            raw = bytearray(self.nbytes)
            for a in range(0, self.nbytes, 1 << 24):
                f.read_into(memoryview(raw)[a:a + (1 << 24)], self.data_offset + a)
            flat = np.frombuffer(raw, dtype=self.dtype).reshape(self.shape, order="F") \
                .reshape(n, d)
            for a in range(0, n, rows):
                yield np.ascontiguousarray(flat[a:a + rows], dtype=native)
            return
        for a in range(0, n, rows):
            k = min(rows, n - a)
            block = np.empty((k, d), self.dtype)
            f.read_into(block.reshape(-1).view(np.uint8), self.data_offset + a * row_bytes)
            yield block if block.dtype.isnative else block.astype(native)

    def blocks(self, rows: int):
        d, n = self.dim, self.n_rows
        if self.size is not None and n > 0:
            yield from self._file_blocks(rows)
            return
        if self.fortran and len(self.shape) > 1:
            raw = self._read_all()
            self._check_end()
            arr = np.frombuffer(raw, dtype=self.dtype).reshape(self.shape, order="F")
            flat = arr.reshape(n, d)
            for a in range(0, n, rows):
                yield np.ascontiguousarray(flat[a:a + rows], dtype=self.dtype.newbyteorder("="))
            return
        if n == 0:
            self._check_end()
        buf = np.empty(min(rows, n) * d, dtype=self.dtype)
        for a in range(0, n, rows):
            k = min(rows, n - a)
            view = buf[:k * d]
            self._read_full(memoryview(view).cast("B"))
            block = view.reshape(k, d)
            if not block.dtype.isnative:
                block = block.astype(block.dtype.newbyteorder("="))
            if a + k >= n:
                self._check_end()
            yield block

    def close(self) -> None:
        if self.stream is not sys.stdin.buffer:
            self.stream.close()


def _reinterpret(dtype: np.dtype, input_dtype: str | None) -> np.dtype:
    """--input-dtype: the .npy's 2-byte items read as bfloat16 (ml_dtypes saves them as
    '<V2'); None keeps the header's dtype."""
    if input_dtype is None:
        return dtype
    if input_dtype != "bfloat16":
        raise InputError(f"--input-dtype {input_dtype}: only bfloat16 is supported")
    if dtype.itemsize != 2 or dtype.kind not in "Vu" and not bf16.is_bf16(dtype):
        raise InputError(f"--input-dtype bfloat16 needs 2-byte items, the .npy holds {dtype}",
                         kind="dtype")
    return bf16.dtype()


class _Replayed:
    """A binary stream whose first bytes were already read (to tell the file's kind):
    read and readinto give those bytes again, then the stream's.  A pipe cannot be
    rewound, so this is how a FIFO or process substitution is sniffed and then read."""

    def __init__(self, prefix: bytes, stream):
        self.prefix, self.stream = prefix, stream

    def read(self, n: int = -1) -> bytes:
        if not self.prefix:
            return self.stream.read(n)
        if n is None or n < 0:
            head, self.prefix = self.prefix, b""
            return head + self.stream.read()
        head, self.prefix = self.prefix[:n], self.prefix[n:]
        return head + (self.stream.read(n - len(head)) if len(head) < n else b"")

    def readinto(self, buf) -> int:
        if not self.prefix:
            return self.stream.readinto(buf)
        k = min(len(buf), len(self.prefix))
        memoryview(buf)[:k] = self.prefix[:k]
        self.prefix = self.prefix[k:]
        return k

    def close(self) -> None:
        self.stream.close()


def open_npy(path: str, input_dtype: str | None = None) -> NpyStreamSource:
    """A .npy file (read by position), or stdin for '-' (read once, in order)."""
    if path == "-":
        return NpyStreamSource(sys.stdin.buffer, "-", input_dtype=input_dtype)
    f = open(path, "rb", buffering=0)
    try:
        return _npy_source(f, path, b"", input_dtype)
    except BaseException:
        f.close()
        raise


def _npy_source(f, path: str, prefix: bytes, input_dtype=None) -> NpyStreamSource:
    """The source of an open file: read by position when it is a regular file (its size is
    known and it can seek), read as a stream otherwise (a FIFO, /dev/stdin, a socket)."""
    st = os.fstat(f.fileno())
    if stat.S_ISREG(st.st_mode):
        f.seek(0)
        return NpyStreamSource(f, path, size=st.st_size, input_dtype=input_dtype, opened=st)
    return NpyStreamSource(_Replayed(prefix, f) if prefix else f, path,
                           input_dtype=input_dtype)


def open_input(spec: str, dataset: str | None = None,
               input_dtype: str | None = None, *, memory_limit=None,
               max_ratio=None) -> ArraySource:
    """The source for a command-line input: '-' (a .npy on stdin), a .npy file, an
    HDF5 file (FILE.h5:/path or `dataset` chooses the dataset), or a local zarr array
    (a folder with zarr metadata: STORE or STORE/ARRAY).  The kind is decided by the
    file's first bytes, not its name; errors name the file.  The file is opened once, so
    a FIFO or a process substitution (<(cat x.npy)) is read as the stream it is.
    memory_limit, max_ratio: what a zarr or HDF5 chunk may inflate to (arrayio.inflation;
    None: the defaults)."""
    if spec == "-":
        refuse_terminal_input(sys.stdin, "-")
        try:
            return open_npy("-", input_dtype)
        except InputError as e:
            raise e.with_source("-")
    path, ds = split_h5_spec(spec)
    if ds is not None and dataset is not None and ds != dataset:
        raise InputError("dataset given twice (FILE:/path and --dataset)", spec)
    ds = ds or dataset
    try:
        if not os.path.exists(path):
            raise InputError("no such file")
        if os.path.isdir(path):
            if is_zarr_store(path):
                if ds is not None:
                    raise InputError("--dataset given but the input is a zarr store "
                                     "(name the array as STORE/ARRAY)")
                return ZarrSource(path, memory_limit, max_ratio)
            raise InputError("is a directory")
        f = open(path, "rb", buffering=0)
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            # a pipe's raw reads may come short; a buffered reader's read(n) does not
            f = io.BufferedReader(f)
        try:
            refuse_terminal_input(f, None)
            magic = _read_upto(f, 8)
            if magic.startswith(b"\x89HDF"):
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise InputError("HDF5 input must be a regular file, not a pipe or device")
                f.close()
                return H5Source(path, ds, memory_limit, max_ratio)
            if ds is not None:
                raise InputError("--dataset given but the file is not HDF5")
            if magic.startswith(NPY_MAGIC):
                return _npy_source(f, path, magic, input_dtype)
            if magic.startswith(TQZ_MAGIC[:4]):
                magic += _read_upto(f, 8)
            raise InputError(("not an array tq reads" if magic else "empty input")
                             + " (tq compresses .npy, HDF5 .h5/.hdf5, .safetensors, .npz "
                             "and zarr array folders)" + what_it_is(magic, stream=False),
                             kind="not-npy")
        except BaseException:
            f.close()
            raise
    except InputError as e:
        raise e.with_source(path)
    except PermissionError:
        raise InputError("permission denied", path) from None


def _read_upto(f, n: int) -> bytes:
    """n bytes, or fewer only at the end (a pipe may deliver them in pieces)."""
    data = b""
    while len(data) < n:
        piece = f.read(n - len(data))
        if not piece:
            break
        data += piece
    return data


def from_array(array: np.ndarray, name: str = "<array>") -> ArraySource:
    """An in-memory array as a source (the library's compress() reads through it)."""
    return InMemorySource(array, name)


class InMemorySource(ArraySource):
    """A numpy array already in memory, checked like a file and cut into blocks."""

    def __init__(self, array, name: str):
        arr = np.asarray(array)
        check_dtype(arr.dtype)
        check_shape(arr.shape)
        self.array, self.name = arr, name
        self.shape, self.dtype = arr.shape, arr.dtype

    fresh_blocks = True  # views of the array, or copies

    def blocks(self, rows: int):
        flat = self.array.reshape(self.n_rows, self.dim)
        for a in range(0, self.n_rows, rows):
            yield np.ascontiguousarray(flat[a:a + rows], dtype=self.dtype.newbyteorder("="))


