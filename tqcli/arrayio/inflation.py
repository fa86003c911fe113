"""Inputs that inflate: a zip member (.npz), a zarr chunk, an HDF5 chunk behind a filter.

A compressed input can declare far more than it holds: 2 MB of deflated zeros are a
2 GiB .npz member, a zarr chunk of a few KB can decode to 1 GiB.  tq checks what a unit
will inflate to from its metadata, before reading it:

* check_unit: a unit tq's readers decode whole at once (a zarr chunk, an HDF5 chunk behind
  a filter) must fit the memory budget (limits.DEFAULT_MEMORY_LIMIT, --memory /
  memory_limit=);
* check_ratio: the decoded bytes of what is stored compressed must be at most the
  expansion limit (limits.DEFAULT_MAX_RATIO, --max-ratio / max_ratio=) times its stored
  bytes, as for a .tqz (spec 13.9).  Float data compress about 1.1:1 with deflate or zstd;
  zeros about 1000:1.

Both refusals are resource limits (InputError kinds "memory" and "ratio"): the file may be
valid, and the message names the flag that accepts it.
"""

from __future__ import annotations

import math

import numpy as np

from .. import limits
from ..errors import InputError


def check_unit(what: str, decoded: int, memory_limit=None) -> None:
    limit = limits.DEFAULT_MEMORY_LIMIT if memory_limit is None else memory_limit
    if decoded > limit:
        raise InputError(f"{what} decodes to {limits.format_size(decoded)} at once, above "
                         f"the memory limit of {limits.format_size(int(limit))} (raise it "
                         f"with --memory or memory_limit=)", kind="memory")


def check_ratio(what: str, decoded: int, stored: int, max_ratio=None) -> None:
    limit = float(limits.DEFAULT_MAX_RATIO if max_ratio is None else max_ratio)
    if math.isinf(limit) or decoded <= limit * stored:
        return
    ratio = f"{decoded / stored:,.0f} x" if stored else "from nothing"
    raise InputError(f"{what}: {limits.format_size(stored)} inflate to "
                     f"{limits.format_size(decoded)} ({ratio}, above the expansion limit "
                     f"of {limit:g} x: raise it with --max-ratio or max_ratio= for a file "
                     f"you trust)", kind="ratio")


def check_filtered(ds, name: str, memory_limit=None, max_ratio=None) -> None:
    """A chunked dataset behind a filter (gzip, lzf, ...) inflates each chunk whole when
    read: a chunk must fit the memory budget, and the chunks stored must not inflate to
    more than the expansion limit times their bytes, judged from the metadata before any
    chunk is read.  Chunks never written cost nothing (HDF5 fills
    them)."""
    if ds.chunks is None or ds.shape is None:
        return
    try:
        filtered = ds.id.get_create_plist().get_nfilters() > 0
    except Exception:  # noqa: BLE001 - an unreadable property list: h5py refuses the reads
        return
    if not filtered:
        return
    unit = int(np.prod(ds.chunks, dtype=object)) * ds.dtype.itemsize
    check_unit(f"dataset {name}: a chunk", unit, memory_limit)
    try:
        count, stored = ds.id.get_num_chunks(), ds.id.get_storage_size()
    except Exception:  # noqa: BLE001 - an old HDF5 library: the chunk check above stands
        return
    check_ratio(f"dataset {name}: its {count} stored chunk{'s' * (count != 1)}",
                count * unit, stored, max_ratio)


def check_collection(path: str, source: str, group=None, memory_limit=None,
                     max_ratio=None) -> None:
    """The checks above for every member of a collection input (source "npz" or "hdf5"),
    from the metadata alone: what `tq compress` makes before it loads its kernels, so that
    a refused file costs no start-up (reading the members makes them again)."""
    if source == "npz":
        import zipfile

        try:
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    check_ratio(f"member {info.filename!r}", info.file_size,
                                info.compress_size, max_ratio)
        except zipfile.BadZipFile as e:
            raise InputError(f"not a valid .npz ({e})") from None
    elif source == "hdf5":
        import h5py

        try:
            f = h5py.File(path, "r")
        except OSError:
            return  # reading the members says what is wrong
        with f:
            root = f if group in (None, "/", "") else f.get(group)
            if not isinstance(root, h5py.Group):
                return  # reading the members says what is wrong
            found = []
            root.visititems(lambda name, obj: found.append(obj) if isinstance(
                obj, h5py.Dataset) else None)
            for ds in found:
                check_filtered(ds, ds.name, memory_limit, max_ratio)
