"""HDF5 input (H5Source: a file whose first bytes are HDF5's signature) and output
(H5Sink: an output named FILE.h5 or FILE.hdf5), and the FILE.h5:/dataset spelling.

h5py is imported only when an HDF5 file is opened or written, never when this module is
imported: `tq --help` and every .npy path start without it.  Two rules beyond reading
and writing live here:

* tq reads only the file it is given (_check_self_contained): external links, external
  raw storage and virtual datasets over other files are refused.
* HDF5's error text is long and internal; _h5_reason and _h5_write_reason turn it into
  the short reason of a `tq: FILE: reason` line.

An HDF5 dataset of any rank is read and written as rows of its last axis; row_runs maps a
range of those rows onto HDF5 selections that stay inside one index of the leading axes.
"""

from __future__ import annotations

import os
import re

import numpy as np

from ..errors import InputError, TqError
from . import inflation
from .base import SelectionSource, check_dtype, check_shape, row_runs
from .sinks import cast_pieces, saturating_cast


class H5Source(SelectionSource):
    """One dataset of an HDF5 file; `dataset` may be None when the file holds only one.

    Blocks are read with read_direct into a fresh native-order array, so a chunked or
    compressed dataset costs one block of memory as a contiguous one does.
    """

    def __init__(self, path: str, dataset: str | None, memory_limit=None, max_ratio=None):
        """memory_limit, max_ratio: what a chunk behind a filter may inflate to
        (check_filtered)."""
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
            inflation.check_filtered(obj, obj.name, memory_limit, max_ratio)
            self.ds = obj
            self.dataset = obj.name
            if obj.shape is None:
                raise InputError(f"dataset {obj.name} is empty (it has no dataspace)")
            check_dtype(obj.dtype)
            check_shape(obj.shape)
            self.dtype, self.shape = np.dtype(obj.dtype), tuple(obj.shape)
            # a filtered chunk is inflated whole to read any row of it: what reading costs
            # beyond a block (tqcli/format/memory.py check_encode)
            self.chunk_bytes = 2 * int(np.prod(obj.chunks, dtype=object)) * \
                self.dtype.itemsize if obj.chunks else 0
        except BaseException:
            self.file.close()
            raise

    def _read_whole(self, out):
        out[0] = self.ds[()]

    def _read_run(self, out, sel, lo, hi):
        self.ds.read_direct(out, source_sel=sel, dest_sel=np.s_[lo:hi])

    def _read_error(self, e):
        if isinstance(e, (OSError, RuntimeError, ValueError)):  # a damaged file, a filter
            return InputError(f"cannot read dataset {self.dataset} ({_h5_reason(e)})")
        return None

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
    """The short reason h5py's OSError gives for a file it cannot open."""
    msg = str(e)
    if "signature" in msg:
        return "not an HDF5 file"
    if "No such file" in msg or "unable to open file" in msg and "name =" in msg:
        return "no such file"
    return msg.split("(")[0].strip() or "unreadable"


def is_hdf5_name(path: str) -> bool:
    """Whether an output name asks for HDF5 (decompress chooses the sink by name)."""
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
        try:
            if len(self.shape) == 1:
                self.ds[...] = saturating_cast(block, self.ds.dtype)[0]
            else:
                for first, piece in cast_pieces(block, self.ds.dtype):
                    for sel, lo, hi in row_runs(self.shape, self.pos + first, piece.shape[0]):
                        self.ds.write_direct(piece, source_sel=np.s_[lo:hi], dest_sel=sel)
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
    msg = str(e)
    m = re.search(r"error message = '([^']+)'", msg)
    if m:
        return m.group(1)
    if isinstance(e, OSError) and e.strerror and not e.strerror.startswith(("Can't", "Unable")):
        return e.strerror
    return (msg.split("(")[0].strip() or type(e).__name__).splitlines()[0]
