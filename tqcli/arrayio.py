"""Reading input arrays (.npy files and streams, HDF5 datasets) block by block, and writing
decoded arrays (.npy, HDF5) without ever holding more than a block in memory.

The .npy header is parsed here with ast.literal_eval and checked field by field; object and
structured dtypes are refused before a single data byte is read, so nothing is unpickled.
"""

from __future__ import annotations

import ast
import mmap
import os
import struct
import sys

import numpy as np

from .errors import InputError, TqError

NPY_MAGIC = b"\x93NUMPY"
MAX_NPY_HEADER = 1 << 16
FLOAT_KINDS = {"float16", "float32", "float64"}


def check_dtype(dtype: np.dtype, where: str = "") -> None:
    dt = np.dtype(dtype)
    if dt.fields is not None or dt.subdtype is not None:
        raise InputError(f"structured dtype {dt} is not supported (need float16/32/64)")
    if dt.kind != "f" or dt.newbyteorder("=").name not in FLOAT_KINDS:
        raise InputError(f"dtype {dt} is not supported (need float16, float32 or float64)")


def check_shape(shape: tuple[int, ...]) -> None:
    from .limits import MAX_DIM, MAX_NDIM, MAX_VECTORS

    if len(shape) == 0:
        raise InputError("a 0-dimensional array holds no vector")
    if len(shape) > MAX_NDIM:
        raise InputError(f"rank {len(shape)} is above the limit of {MAX_NDIM}")
    if shape[-1] < 2:
        raise InputError(f"vector dimension (last axis) is {shape[-1]}; need at least 2")
    if shape[-1] > MAX_DIM:
        raise InputError(f"vector dimension (last axis) is {shape[-1]}; the limit is {MAX_DIM}")
    n = 1
    for s in shape[:-1]:
        n *= s
    if n > MAX_VECTORS:
        raise InputError(f"{n} vectors is above the limit of {MAX_VECTORS}")


# ---------------------------------------------------------------------- .npy header


def read_npy_header(read) -> tuple[np.dtype, bool, tuple[int, ...], int]:
    """Parse a .npy header via read(n); returns dtype, fortran_order, shape, header length."""
    pre = read(10)
    if len(pre) < 10 or pre[:6] != NPY_MAGIC:
        raise InputError("not a .npy file (bad magic bytes)")
    major = pre[6]
    if major == 1:
        hlen = struct.unpack("<H", pre[8:10])[0]
        start = 10
    elif major in (2, 3):
        more = read(2)
        if len(more) < 2:
            raise InputError("truncated .npy header")
        hlen = struct.unpack("<I", pre[8:10] + more)[0]
        start = 12
    else:
        raise InputError(f"unsupported .npy format version {major}.{pre[7]}")
    if hlen > MAX_NPY_HEADER:
        raise InputError(f".npy header of {hlen} bytes is implausibly large")
    raw = read(hlen)
    if len(raw) < hlen:
        raise InputError("truncated .npy header")
    try:
        text = raw.decode("utf-8" if major == 3 else "latin1")
        meta = ast.literal_eval(text)
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise InputError("malformed .npy header") from None
    if not isinstance(meta, dict) or set(meta) != {"descr", "fortran_order", "shape"}:
        raise InputError("malformed .npy header (unexpected keys)")
    descr, fortran, shape = meta["descr"], meta["fortran_order"], meta["shape"]
    if not isinstance(descr, str):
        raise InputError("structured dtype is not supported (need float16, float32 or float64)")
    if not isinstance(fortran, bool):
        raise InputError("malformed .npy header (fortran_order)")
    if (not isinstance(shape, tuple) or
            not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
        raise InputError("malformed .npy header (shape)")
    if descr.lstrip("<>|=").startswith("O"):
        raise InputError("object arrays (pickled data) are refused")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise InputError(f"unknown dtype {descr!r} in .npy header") from None
    check_dtype(dtype)
    return dtype, fortran, tuple(shape), start + hlen


def npy_header_bytes(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A version 1.0 .npy header, padded to a multiple of 64 bytes as numpy writes it."""
    dtype = np.dtype(dtype)
    text = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (
        dtype.str, tuple(int(s) for s in shape))
    total = 10 + len(text) + 1
    pad = (-total) % 64
    text = text + " " * pad + "\n"
    if len(text) > 0xFFFF:
        raise InputError("array rank too large for a .npy header")
    return NPY_MAGIC + b"\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


# ---------------------------------------------------------------------- sources


class ArraySource:
    """An input array seen as n rows of d values (the last axis is the vector)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def dim(self) -> int:
        return self.shape[-1]

    @property
    def n_rows(self) -> int:
        return int(np.prod(self.shape[:-1], dtype=object)) if len(self.shape) > 1 else 1

    def blocks(self, rows: int):
        """Yield consecutive (k, d) native-order arrays with k == rows except the last."""
        raise NotImplementedError

    @property
    def rereadable(self) -> bool:
        """Whether blocks() may be called again to read everything once more."""
        return True

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class NpyStreamSource(ArraySource):
    """A C-order .npy read sequentially from a binary stream (a file or stdin)."""

    def __init__(self, stream, name: str, size: int | None = None):
        self.stream = stream
        self.name = name
        dtype, fortran, shape, offset = read_npy_header(stream.read)
        check_shape(shape)
        self.dtype, self.shape, self.fortran = dtype, shape, fortran
        self.data_offset = offset
        self.size = size
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        self.nbytes = nbytes
        if size is not None and size - offset != nbytes:
            raise InputError(f".npy header declares {nbytes} data bytes but the file has "
                             f"{size - offset}")

    def _read_all(self) -> bytearray:
        """All data bytes, read piecewise so that a lying header costs no memory up front."""
        raw = bytearray()
        piece = 1 << 24
        while len(raw) < self.nbytes:
            want = min(piece, self.nbytes - len(raw))
            try:
                got = self.stream.read(want)
            except OSError as e:
                raise InputError(f"read failed ({e.strerror or e})") from None
            if not got:
                raise InputError(f"truncated .npy data (ended {self.nbytes - len(raw)} bytes "
                                 f"short)")
            raw += got
        return raw

    def _check_end(self) -> None:
        """A stream (stdin) must end with the array, as a file's size must match it."""
        if self.size is None and self.stream.read(1):
            raise InputError("trailing data after the .npy array")

    def _read_full(self, buf: memoryview) -> None:
        got = 0
        while got < len(buf):
            try:
                k = self.stream.readinto(buf[got:])
            except OSError as e:
                raise InputError(f"read failed ({e.strerror or e})") from None
            if not k:
                raise InputError(f"truncated .npy data (ended {len(buf) - got} bytes short "
                                 f"of a block)")
            got += k

    @property
    def rereadable(self) -> bool:
        return self.size is not None  # a file (memory-mapped); not a pipe

    def _mapped_blocks(self, rows: int):
        """Blocks of a regular file through a read-only memory map: no copy for native
        C-order data, and pages already used are dropped from this process's mapping so
        that its resident memory stays bounded however large the file is."""
        d, n = self.dim, self.n_rows
        mm = mmap.mmap(self.stream.fileno(), 0, access=mmap.ACCESS_READ)
        if hasattr(mmap, "MADV_SEQUENTIAL"):
            mm.madvise(mmap.MADV_SEQUENTIAL)
        order = "F" if self.fortran else "C"
        arr = np.ndarray(self.shape, dtype=self.dtype, buffer=mm, offset=self.data_offset,
                         order=order)
        flat = arr.reshape(n, d) if order == "C" else None
        native = self.dtype.newbyteorder("=")
        page = mmap.PAGESIZE
        done = 0  # bytes of the map already released
        for a in range(0, n, rows):
            k = min(rows, n - a)
            if flat is not None:
                block = flat[a:a + k]
                if not block.dtype.isnative:
                    block = block.astype(native)
            else:  # Fortran order: gather the rows (each is strided across the file)
                lead = np.unravel_index(np.arange(a, a + k), self.shape[:-1])
                block = np.ascontiguousarray(arr[lead], dtype=native)
            yield block
            del block
            if flat is not None and hasattr(mmap, "MADV_DONTNEED"):
                end = (self.data_offset + (a + k) * d * self.dtype.itemsize) // page * page
                if end > done:
                    mm.madvise(mmap.MADV_DONTNEED, done, end - done)
                    done = end

    def blocks(self, rows: int):
        d, n = self.dim, self.n_rows
        if self.size is not None and n > 0:
            yield from self._mapped_blocks(rows)
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


def open_npy(path: str) -> NpyStreamSource:
    if path == "-":
        return NpyStreamSource(sys.stdin.buffer, "-")
    f = open(path, "rb", buffering=0)
    try:
        return NpyStreamSource(f, path, size=os.fstat(f.fileno()).st_size)
    except BaseException:
        f.close()
        raise


class H5Source(ArraySource):
    def __init__(self, path: str, dataset: str | None):
        import h5py

        self.name = path
        try:
            self.file = h5py.File(path, "r")
        except OSError as e:
            raise InputError(f"cannot open as HDF5 ({_h5_reason(e)})") from None
        try:
            if dataset is None:
                names = []
                self.file.visititems(lambda k, v: names.append(k)
                                     if isinstance(v, h5py.Dataset) else None)
                if len(names) != 1:
                    hint = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
                    raise InputError(f"holds {len(names)} datasets; choose one with --dataset "
                                     f"or FILE.h5:/path ({hint})" if names else
                                     "holds no dataset")
                dataset = names[0]
            try:
                obj = self.file.get(dataset)
            except (KeyError, ValueError, TypeError, OSError, RuntimeError):
                obj = None  # a path through a dataset, a link to a missing file, ...
            if obj is None:
                raise InputError(f"no dataset {dataset!r}")
            if not isinstance(obj, h5py.Dataset):
                raise InputError(f"{dataset!r} is a group, not a dataset")
            _check_self_contained(self.file, obj, dataset)
            self.ds = obj
            self.dataset = obj.name
            if obj.shape is None:
                raise InputError(f"dataset {obj.name} is empty (it has no dataspace)")
            check_dtype(obj.dtype)
            check_shape(obj.shape)
            self.dtype, self.shape = np.dtype(obj.dtype), tuple(obj.shape)
        except BaseException:
            self.file.close()
            raise

    def blocks(self, rows: int):
        d, n = self.dim, self.n_rows
        native = self.dtype.newbyteorder("=")
        for a in range(0, n, rows):
            k = min(rows, n - a)
            out = np.empty((k, d), dtype=native)
            try:
                if len(self.shape) == 1:
                    out[0] = self.ds[()]
                else:
                    for sel, lo, hi in row_runs(self.shape, a, k):
                        self.ds.read_direct(out, source_sel=sel, dest_sel=np.s_[lo:hi])
            except (OSError, RuntimeError, ValueError) as e:  # a damaged file, a missing filter
                raise InputError(f"cannot read dataset {self.dataset} "
                                 f"({_h5_reason(e)})") from None
            yield out

    def close(self) -> None:
        self.file.close()


def _check_self_contained(file, ds, name: str) -> None:
    """Refuse a dataset whose data lives outside the file tq was given: an external link,
    external raw storage or a virtual dataset mapping other files.  Following them would
    let a small HDF5 file make tq read (and put into its output) any file the user can
    read, which is not what `tq compress FILE` promises."""
    refuse = " (tq reads only the file it is given)"
    if ds.file != file:
        raise InputError(f"dataset {name!r} is a link into another file{refuse}")
    if ds.external:
        raise InputError(f"dataset {ds.name} stores its data in other files{refuse}")
    if ds.is_virtual and any(src.file_name != "." for src in ds.virtual_sources()):
        raise InputError(f"dataset {ds.name} is a virtual dataset over other files{refuse}")


def _h5_reason(e: OSError) -> str:
    msg = str(e)
    if "signature" in msg:
        return "not an HDF5 file"
    if "No such file" in msg or "unable to open file" in msg and "name =" in msg:
        return "no such file"
    return msg.split("(")[0].strip() or "unreadable"


def is_hdf5_name(path: str) -> bool:
    return path.lower().endswith((".h5", ".hdf5"))


def split_h5_spec(spec: str) -> tuple[str, str | None]:
    """'file.h5:/group/ds' -> ('file.h5', '/group/ds') when file.h5 exists as written."""
    if not os.path.exists(spec):
        for ext in (".h5:", ".hdf5:"):
            i = spec.lower().find(ext)
            if i >= 0:
                cut = i + len(ext) - 1
                return spec[:cut], spec[cut + 1:] or None
    return spec, None


def open_input(spec: str, dataset: str | None = None) -> ArraySource:
    if spec == "-":
        if sys.stdin.isatty():
            raise InputError("refusing to read binary data from a terminal", "-")
        try:
            return open_npy("-")
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
            raise InputError("is a directory")
        with open(path, "rb") as f:
            magic = f.read(8)
        if magic.startswith(b"\x89HDF"):
            return H5Source(path, ds)
        if ds is not None:
            raise InputError("--dataset given but the file is not HDF5")
        if magic.startswith(NPY_MAGIC):
            return open_npy(path)
        raise InputError("not a .npy or HDF5 file")
    except InputError as e:
        raise e.with_source(path)
    except PermissionError:
        raise InputError("permission denied", path) from None


def from_array(array: np.ndarray, name: str = "<array>") -> ArraySource:
    return InMemorySource(array, name)


class InMemorySource(ArraySource):
    def __init__(self, array, name: str):
        arr = np.asarray(array)
        check_dtype(arr.dtype)
        check_shape(arr.shape)
        self.array, self.name = arr, name
        self.shape, self.dtype = arr.shape, arr.dtype

    def blocks(self, rows: int):
        flat = self.array.reshape(self.n_rows, self.dim)
        for a in range(0, self.n_rows, rows):
            yield np.ascontiguousarray(flat[a:a + rows], dtype=self.dtype.newbyteorder("="))


# ---------------------------------------------------------------------- sinks


def saturating_cast(block: np.ndarray, dtype) -> np.ndarray:
    """block as a C-contiguous array of `dtype`; values beyond a narrower float type's range
    become its largest finite value instead of infinity (a reconstruction may overshoot
    a source value that sat near the top of the range)."""
    dtype = np.dtype(dtype)
    if dtype.itemsize < block.dtype.itemsize:
        top = np.finfo(dtype).max
        block = np.clip(block, -top, top)
    return np.ascontiguousarray(block, dtype=dtype)


class NpySink:
    """Writes a C-order .npy of known shape to a binary stream, block by block."""

    def __init__(self, stream, shape, dtype):
        self.stream = stream
        self.dtype = np.dtype(dtype).newbyteorder("<")
        stream.write(npy_header_bytes(shape, self.dtype))

    def write(self, block: np.ndarray) -> None:
        self.stream.write(saturating_cast(block, self.dtype).data)

    def close(self) -> None:
        self.stream.flush()


def row_runs(shape: tuple[int, ...], start: int, count: int):
    """Split rows [start, start+count) of an array viewed as (rows, d) into HDF5 selections.

    Yields (selection in the N-d array, lo, hi) with lo:hi the matching rows of the block;
    each run stays inside one index of the axes before the last two.
    """
    if len(shape) < 2:
        yield (), 0, count
        return
    per = shape[-2]
    k = 0
    while k < count:
        prefix, j = divmod(start + k, per)
        take = min(per - j, count - k)
        lead = tuple(int(i) for i in np.unravel_index(prefix, shape[:-2])) if len(shape) > 2 else ()
        yield lead + (slice(j, j + take), slice(None)), k, k + take
        k += take


class H5Sink:
    """Writes a dataset of the original shape into a new HDF5 file, block by block.

    A failed write (a full disk) is reported as `tq: NAME: write failed (...)`.  HDF5 keeps
    dirty data in its caches and cannot always close a file whose writes failed; touching
    such a file again -- which the interpreter does when it shuts down -- crashes the HDF5
    library.  So after a failure the sink frees the space it used (truncates the file),
    closes it once, and if even that fails records it in `H5Sink.broken`, which tells the
    command line to end the process without the interpreter's shutdown (cli._exit).
    """

    broken: list = []  # HDF5 file objects that could not be closed

    def __init__(self, path: str, shape, dtype, dataset: str = "data", name: str | None = None):
        import h5py

        self.path = path
        self.name = name or path
        self.failed = False
        self.file = None
        self.shape = tuple(int(s) for s in shape)
        d = self.shape[-1]
        chunks = None
        if len(self.shape) > 1 and all(self.shape):
            chunks = (1,) * (len(self.shape) - 2) + (
                max(1, min(self.shape[-2], (1 << 18) // d)), d)
        try:
            self.file = h5py.File(path, "w")
        except (OSError, RuntimeError, ValueError) as e:
            raise TqError(f"cannot create HDF5 output ({_h5_write_reason(e)})", self.name) \
                from None
        try:
            self.ds = self.file.create_dataset(dataset, shape=self.shape, dtype=dtype,
                                               chunks=chunks)
        except (OSError, RuntimeError, ValueError, TypeError) as e:
            self._abandon()
            raise TqError(f"cannot create dataset {dataset!r} ({_h5_write_reason(e)})",
                          self.name) from None
        self.pos = 0

    def write(self, block: np.ndarray) -> None:
        block = saturating_cast(block, self.ds.dtype)
        try:
            if len(self.shape) == 1:
                self.ds[...] = block[0]
            else:
                for sel, lo, hi in row_runs(self.shape, self.pos, block.shape[0]):
                    self.ds.write_direct(block, source_sel=np.s_[lo:hi], dest_sel=sel)
        except (OSError, RuntimeError, ValueError) as e:
            self.failed = True
            raise TqError(f"write failed ({_h5_write_reason(e)})", self.name) from None
        self.pos += block.shape[0]

    def close(self) -> None:
        if self.file is None:
            return
        if self.failed:  # the error is already on its way: just let go of the file
            self._abandon()
            return
        try:
            self.file.flush()
        except (OSError, RuntimeError, ValueError) as e:
            self.failed = True
            self._abandon()
            raise TqError(f"write failed ({_h5_write_reason(e)})", self.name) from None
        try:
            self.file.close()
        except (OSError, RuntimeError, ValueError) as e:
            H5Sink.broken.append(self.file)
            self.file = None
            raise TqError(f"write failed ({_h5_write_reason(e)})", self.name) from None
        self.file = None

    def _abandon(self) -> None:
        """Close a file whose output is being thrown away, once, after freeing its space."""
        f, self.file = self.file, None
        try:
            os.truncate(self.path, 0)
        except OSError:
            pass
        try:
            f.close()
        except Exception:  # noqa: BLE001 - HDF5 may fail in any way here; never retry
            H5Sink.broken.append(f)


def _h5_write_reason(e: Exception) -> str:
    """The OS's reason inside an HDF5 error message, e.g. 'No space left on device'."""
    import re

    msg = str(e)
    m = re.search(r"error message = '([^']+)'", msg)
    if m:
        return m.group(1)
    if isinstance(e, OSError) and e.strerror and not e.strerror.startswith(("Can't", "Unable")):
        return e.strerror
    return (msg.split("(")[0].strip() or type(e).__name__).splitlines()[0]
