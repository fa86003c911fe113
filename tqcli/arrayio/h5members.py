"""HDF5 files as collections: the members a file holds (read_hdf5_members) and a
collection written back as groups and datasets with their attributes (write_hdf5).
Kept apart from containers.py, which dispatches every kind of collection file."""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputError, TqError
from . import bf16, h5attrs, inflation
from .members import MemberInput, StreamedArray, write_slabs
from .streamed import h5_pieces


def read_hdf5_members(path: str, group: str | None, memory_limit=None, max_ratio=None):
    """The datasets under `group` of the HDF5 file `path` as collection members (floats
    read through H5Source, the rest in pieces) and the attributes of every group."""
    import h5py

    from .hdf5 import H5Source, _check_self_contained, _h5_reason

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"cannot open as HDF5 ({_h5_reason(e)})") from None
    with f:
        root = f if group in (None, "/", "") else f.get(group)
        if root is None:
            raise InputError(f"no group {group!r}")
        if isinstance(root, h5py.Dataset):
            raise InputError(f"{group!r} is a dataset, not a group")
        base = root.name.rstrip("/")
        found, groups = [], {"": h5attrs.read_attrs(root)}

        problems = []

        def visit(name, link):
            # an exception raised inside HDF5's iteration is mangled by h5py: record the
            # first problem and stop the walk (a non-None return value), raise it after
            full = f"{root.name.rstrip('/')}/{name}"
            try:
                _visit(name, link, full)
            except InputError as e:
                problems.append(e)
                return True
            return None

        def _visit(name, link, full):
            if isinstance(link, h5py.ExternalLink):
                raise InputError(f"{full} is a link into another file (tq reads only the "
                                 f"file it is given)")
            if isinstance(link, h5py.SoftLink):
                raise InputError(f"{full} is a soft link (tq stores each dataset once; "
                                 f"name the target instead)")
            obj = root.get(name)
            if isinstance(obj, h5py.Group):
                groups[name] = h5attrs.read_attrs(obj)
            elif isinstance(obj, h5py.Dataset):
                _check_self_contained(f, obj, full)
                inflation.check_filtered(obj, full, memory_limit, max_ratio)
                if obj.shape is None:
                    raise InputError(f"dataset {full} is empty (it has no dataspace)")
                found.append((name, tuple(obj.shape), np.dtype(obj.dtype),
                              h5attrs.read_attrs(obj)))

        root.visititems_links(visit)
        if problems:
            raise problems[0]
        if not found:
            raise InputError("holds no dataset" + (f" under {root.name}" if base else ""))
    members = []
    for name, shape, dt, attrs in found:
        full = f"{base}/{name}"
        if dt.kind == "f" and shape:
            members.append(MemberInput(name, shape, dt, attrs,
                                       open=lambda full=full: H5Source(
                                           path, full, memory_limit, max_ratio)))
        else:  # stored raw: read in pieces when it is written, never whole
            if dt.kind not in "biuf" or dt.fields is not None:
                raise InputError(f"dataset {full} has dtype {dt}, which tq cannot store")
            members.append(MemberInput(name, shape, dt, attrs,
                                       pieces=lambda full=full: h5_pieces(path, full)))
    return {"source": "hdf5", "groups": groups}, members


def write_hdf5(path: str, info: dict, items, name: str) -> None:
    """Groups (with their attributes), then each member as a dataset with its own.  After
    a failed write the file is given up as H5Sink does (hdf5.py): HDF5 cannot always
    close a file whose writes failed, and must not be made to touch it again."""
    import h5py

    from .hdf5 import H5Sink, _h5_write_reason

    errors = (OSError, RuntimeError, ValueError, TypeError)
    try:
        f = h5py.File(path, "w")
    except errors as e:
        raise TqError(f"cannot create HDF5 output ({_h5_write_reason(e)})", name) from None
    try:
        hdf5 = info.get("source") == "hdf5"
        for g, attrs in sorted((info.get("groups") or {}).items()):
            try:
                obj = f if g == "" else f.require_group(g)
                for k, v in attrs.items():
                    h5attrs.write_attr(obj.attrs, k, v, hdf5)
            except errors as e:
                raise TqError(f"write failed ({_h5_write_reason(e)})", name) from None
        for rec, arr in items:
            if bf16.is_bf16(arr.dtype):
                raise TqError(f"member {rec['name']!r} is bfloat16, which HDF5 cannot hold; "
                              f"write .safetensors or .npz instead")
            try:
                if isinstance(arr, StreamedArray):
                    ds = f.create_dataset(rec["name"], shape=arr.shape, dtype=arr.dtype)
                    write_slabs(ds, arr)
                else:
                    ds = f.create_dataset(rec["name"], data=arr)
                for k, v in (rec.get("attrs") or {}).items():
                    h5attrs.write_attr(ds.attrs, k, v, hdf5)
            except errors as e:
                raise TqError(f"write failed ({_h5_write_reason(e)})", name) from None
        try:
            f.flush()
            f.close()
        except errors as e:
            raise TqError(f"write failed ({_h5_write_reason(e)})", name) from None
    except BaseException:
        if f.id.valid:
            try:
                os.truncate(path, 0)  # free the space at once
            except OSError:
                pass
            try:
                f.close()
            except Exception:  # noqa: BLE001 - HDF5 may fail in any way here; never retry
                H5Sink.broken.append(f)
        raise
