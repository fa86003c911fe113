"""Files of many arrays: an HDF5 tree, a .safetensors file and an .npz, read as the named
members of a collection (tqcli/library/collections.py) and written back as the same kind of file.

* HDF5: every dataset under the file (or a group), recursively, with the attributes of
  every dataset and group (stored exactly: numbers as their little-endian bytes in hex,
  strings as strings).  External links, soft links, external storage and virtual datasets
  over other files are refused -- tq reads only the file it is given.
* safetensors: the header is parsed here -- an 8-byte length, then that many bytes of JSON
  -- and every size is checked against the file before it is trusted: the header fits
  the file, each tensor's byte range matches its shape and dtype, and the ranges tile the
  data without gaps or overlaps.  `__metadata__` is kept.
* .npz: a zip of .npy members, each header checked (object arrays -- pickles -- refused;
  nothing is ever unpickled); each member's size must be exactly what its header says.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile

import numpy as np

from ..errors import InputError, TqError
from . import bf16, inflation, jsontext
from .base import ArraySource, check_shape
from .npy import npy_header_bytes, read_npy_header
from .stable import StableFile
from .members import MemberInput
from ..limits import stored_itemsize

SAFETENSORS_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32",
                      "F64": "float64", "I8": "int8", "I16": "int16", "I32": "int32",
                      "I64": "int64", "U8": "uint8", "U16": "uint16", "U32": "uint32",
                      "U64": "uint64", "BOOL": "bool"}
MAX_SAFETENSORS_HEADER = 100 << 20  # the safetensors package's own limit
SAFETENSORS_JSON_DEPTH = 32  # as deep as a collection's header may nest (spec 18.1)


def kind_of(path: str) -> str | None:
    """'hdf5', 'safetensors', 'npz' (by the first bytes, and for safetensors the name too)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    if head.startswith(b"\x89HDF"):
        return "hdf5"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "npz"
    if path.lower().endswith(".safetensors") and len(head) == 8:
        return "safetensors"
    return None


def kind_of_name(path: str) -> str | None:
    """The kind an output name asks for."""
    low = path.lower()
    if low.endswith((".h5", ".hdf5")):
        return "hdf5"
    if low.endswith(".safetensors"):
        return "safetensors"
    if low.endswith(".npz"):
        return "npz"
    return None


def _dtype(name: str) -> np.dtype:
    return bf16.dtype() if name == "bfloat16" else np.dtype(name)


# ---------------------------------------------------------------------- reading


def read_members(path: str, group: str | None = None, *, memory_limit=None,
                 max_ratio=None):
    """(info, [MemberInput]) of the arrays in `path` (a folder: its .npy files, by their
    paths inside it without .npy); errors name the file.  memory_limit and max_ratio bound
    what a compressed member inflates to (arrayio.inflation)."""
    try:
        if os.path.isdir(path):
            return _directory_members(path)
        kind = kind_of(path)
        if kind == "hdf5":
            return _hdf5_members(path, group, memory_limit, max_ratio)
        if group is not None:
            raise InputError("--dataset given but the file is not HDF5")
        if kind == "safetensors":
            return _safetensors_members(path)
        if kind == "npz":
            return _npz_members(path, max_ratio)
        raise InputError("not an HDF5, .safetensors or .npz file")
    except InputError as e:
        raise e.with_source(path)


def encode_attr(value):
    """An HDF5 attribute value as exact JSON."""
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, str):
        return {"str": value}
    a = np.asarray(value)
    if a.dtype.kind in "OUS":
        flat = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                for v in a.reshape(-1).tolist()]
        return {"strs": flat, "shape": list(a.shape)}
    if a.dtype.kind not in "biuf" or a.dtype.fields is not None:
        raise InputError(f"attribute of dtype {a.dtype} is not supported")
    le = a.astype(a.dtype.newbyteorder("<"))
    return {"dtype": le.dtype.str, "shape": list(a.shape), "hex": le.tobytes().hex()}


def decode_attr(obj):
    if "str" in obj:
        return obj["str"]
    if "bytes" in obj:
        return np.bytes_(bytes.fromhex(obj["bytes"]))
    if "strs" in obj:
        return np.array(obj["strs"], dtype=object).reshape(obj["shape"])
    a = np.frombuffer(bytes.fromhex(obj["hex"]), dtype=np.dtype(obj["dtype"]))
    return a.reshape(obj["shape"]) if obj["shape"] else a[0]


def _attrs(obj) -> dict:
    out = {}
    for k in obj.attrs:
        try:
            out[k] = encode_attr(obj.attrs[k])
        except (OSError, TypeError, ValueError) as e:
            raise InputError(f"{obj.name}: attribute {k!r} cannot be read ({e})") from None
    return out


def _hdf5_members(path: str, group: str | None, memory_limit=None, max_ratio=None):
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
        found, groups = [], {"": _attrs(root)}

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
                groups[name] = _attrs(obj)
            elif isinstance(obj, h5py.Dataset):
                _check_self_contained(f, obj, full)
                inflation.check_filtered(obj, full, memory_limit, max_ratio)
                if obj.shape is None:
                    raise InputError(f"dataset {full} is empty (it has no dataspace)")
                found.append((name, tuple(obj.shape), np.dtype(obj.dtype), _attrs(obj)))

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
        else:
            members.append(MemberInput(name, shape, dt, attrs,
                                       array=_read_h5(path, full)))
    return {"source": "hdf5", "groups": groups}, members


def _read_h5(path: str, name: str) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        ds = f[name]
        if ds.dtype.kind not in "biuf" or ds.dtype.fields is not None:
            raise InputError(f"dataset {name} has dtype {ds.dtype}, which tq cannot store")
        return ds[()]


def parse_safetensors_header(f, size: int) -> tuple[dict, dict, int]:
    """({name: (dtype, shape, begin, end)}, metadata, data start) with every size checked."""
    head = f.read(8)
    if len(head) < 8:
        raise InputError("truncated .safetensors file (no header length)")
    (n,) = struct.unpack("<Q", head)
    if n > MAX_SAFETENSORS_HEADER or n > size - 8:
        raise InputError(f".safetensors header of {n} bytes does not fit the file "
                         f"({size} bytes)")
    raw = f.read(n)
    if len(raw) != n:
        raise InputError("truncated .safetensors header")
    try:
        obj = jsontext.loads(raw.rstrip(b" "), ".safetensors header", SAFETENSORS_JSON_DEPTH)
    except jsontext.JSONProblem as e:
        raise InputError(str(e)) from None
    if not isinstance(obj, dict):
        raise InputError(".safetensors header is not a JSON object")
    meta = obj.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in meta.items()):
        raise InputError(".safetensors __metadata__ must map strings to strings")
    data = size - 8 - n
    tensors, ranges = {}, []
    for name, t in obj.items():
        if not isinstance(t, dict) or set(t) != {"dtype", "shape", "data_offsets"}:
            raise InputError(f"tensor {name!r}: malformed entry")
        dt = SAFETENSORS_DTYPES.get(t["dtype"]) if isinstance(t["dtype"], str) else None
        if dt is None:
            raise InputError(f"tensor {name!r}: dtype {t['dtype']!r} is not supported")
        shape, offs = t["shape"], t["data_offsets"]
        if not (isinstance(shape, list) and len(shape) <= 32 and all(
                type(s) is int and 0 <= s <= 1 << 48 for s in shape)):
            raise InputError(f"tensor {name!r}: bad shape {shape!r}")
        if not (isinstance(offs, list) and len(offs) == 2 and all(
                type(o) is int for o in offs) and 0 <= offs[0] <= offs[1] <= data):
            raise InputError(f"tensor {name!r}: byte range {offs!r} outside the data "
                             f"({data} bytes)")
        count = 1
        for s in shape:
            count *= s
        if offs[1] - offs[0] != count * stored_itemsize(dt):
            raise InputError(f"tensor {name!r}: {offs[1] - offs[0]} bytes for shape "
                             f"{shape} {dt}")
        tensors[name] = (dt, tuple(shape), offs[0], offs[1])
        ranges.append((offs[0], offs[1], name))
    pos = 0
    for a, b, name in sorted(ranges):
        if a != pos:
            raise InputError(f"tensor {name!r}: its bytes " + ("overlap another's" if a < pos
                             else "leave a gap"))
        pos = b
    if pos != data:
        raise InputError(f"{data - pos} bytes after the last tensor")
    return tensors, meta, 8 + n


class SafetensorsSource(ArraySource):
    """A float tensor of a .safetensors file, read block by block through a memory map."""

    def __init__(self, path: str, dt: str, shape: tuple, start: int,
                 opened: os.stat_result | None = None):
        """opened: the file's status when its header was read (a change since is
        refused)."""
        check_shape(shape)
        self.name, self.shape, self.dtype = path, shape, _dtype(dt)
        self._stored, self._start, self._opened = dt, start, opened

    def blocks(self, rows: int):
        """Blocks by positioned reads, each a new array, the file checked around every
        read (arrayio.stable: no memory map, so no SIGBUS if it is truncated meanwhile)."""
        n, d = self.n_rows, self.dim
        if n == 0:
            return
        bf = self._stored == "bfloat16"
        stored = np.dtype("<u2") if bf else np.dtype(self._stored).newbyteorder("<")
        with open(self.name, "rb", buffering=0) as fh:
            f = StableFile(fh.fileno(), self.name, self._opened)
            for a in range(0, n, rows):
                block = np.empty((min(rows, n - a), d), stored)
                f.read_into(block.reshape(-1).view(np.uint8),
                            self._start + a * d * stored.itemsize)
                yield block.view(self.dtype) if bf else block.astype(
                    self.dtype.newbyteorder("="), copy=False)


def _safetensors_members(path: str):

    with open(path, "rb") as f:
        opened = os.fstat(f.fileno())  # what every read checks the file against
        size = opened.st_size
        tensors, meta, start = parse_safetensors_header(f, size)
    members = []
    for name in sorted(tensors, key=lambda k: tensors[k][2]):
        dt, shape, a, b = tensors[name]
        if dt in ("float16", "bfloat16", "float32", "float64") and len(shape) >= 1:
            members.append(MemberInput(name, shape, _dtype(dt), {}, open=(
                lambda dt=dt, shape=shape, a=a: SafetensorsSource(path, dt, shape,
                                                                  start + a, opened))))
        else:
            raw = np.fromfile(path, dtype=np.uint8, count=b - a, offset=start + a)
            arr = raw.view(np.dtype(dt).newbyteorder("<") if dt != "bool" else bool)
            members.append(MemberInput(name, shape, arr.dtype, {},
                                       array=arr.reshape(shape)))
    return {"source": "safetensors", "metadata": meta}, members


def _refuse_torch_zip(path: str, z: zipfile.ZipFile) -> None:
    """A torch.save file is a zip too (ARCHIVE/data.pkl, ARCHIVE/data/0, ...): say what it
    is and what to do, rather than that its first member is not a .npy."""
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in z.namelist()):
        stem = os.path.splitext(os.path.basename(path))[0] or "tensors"
        raise InputError(
            f"a PyTorch checkpoint (torch.save): tq never loads pickles; save its tensors as "
            f"safetensors and compress that: safetensors.torch.save_file(state_dict, "
            f"\"{stem}.safetensors\")", kind="pickle")


def _npz_members(path: str, max_ratio=None):

    members = []
    try:
        with zipfile.ZipFile(path) as z:
            _refuse_torch_zip(path, z)
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    raise InputError(f"member {info.filename!r} is not a .npy")
                # zipfile inflates no more than the declared size: judge that, unread
                inflation.check_ratio(f"member {info.filename!r}", info.file_size,
                                      info.compress_size, max_ratio)
                with z.open(info) as m:
                    dt, fortran, shape, offset = read_npy_header(m.read, check=False)
                    count = 1
                    for s in shape:
                        count *= s
                    nbytes = count * dt.itemsize
                    if info.file_size != offset + nbytes:
                        raise InputError(f"member {info.filename!r}: {info.file_size} bytes, "
                                         f"its header implies {offset + nbytes}")
                    data = m.read(nbytes)
                    if len(data) != nbytes:
                        raise InputError(f"member {info.filename!r} is truncated")
                arr = np.frombuffer(data, dtype=dt).reshape(shape, order="F" if fortran
                                                            else "C")
                arr = np.require(arr, requirements="C")  # keeps a 0-d array 0-d
                members.append(MemberInput(info.filename[:-4], arr.shape, arr.dtype, {},
                                           array=arr))
    except zipfile.BadZipFile as e:
        raise InputError(f"not a valid .npz ({e})") from None
    return {"source": "npz"}, members


def _directory_members(root: str):
    """The .npy files under `root` (recursively, in sorted order); symbolic links and
    other files than .npy are refused, so the collection is exactly the folder's arrays."""
    from .sources import open_npy

    members = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        for d in dirs:
            if os.path.islink(os.path.join(folder, d)):
                raise InputError(f"{os.path.join(folder, d)} is a symbolic link (refused)")
        for n in sorted(names):
            full = os.path.join(folder, n)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            if os.path.islink(full) or not os.path.isfile(full):
                raise InputError(f"{rel} is not a regular file (refused)")
            if not n.endswith(".npy"):
                raise InputError(f"{rel} is not a .npy file (a folder collection holds "
                                 f".npy files only)")
            with open(full, "rb") as f:
                dt, _, shape, _ = read_npy_header(f.read, check=False)
            if dt.kind == "f" and shape:  # a 0-d array holds no vector: stored raw
                with open_npy(full) as src:  # every check of a .npy input
                    shape, dt = src.shape, src.dtype
                members.append(MemberInput(rel[:-4], shape, dt, {},
                                           open=lambda full=full: open_npy(full)))
            else:  # ids, masks: read whole (the header was checked: no objects, no pickles)
                arr = np.load(full, allow_pickle=False)
                members.append(MemberInput(rel[:-4], arr.shape, arr.dtype, {}, array=arr))
    if not members:
        raise InputError("holds no .npy file")
    return {"source": "directory"}, members


def write_directory(path: str, items) -> None:
    """Each member as NAME.npy under the new folder `path` (names were checked by the
    reader: no '..', no absolute path; each target is checked to stay inside anyway)."""
    top = os.path.realpath(path)
    for rec, arr in items:
        target = os.path.realpath(os.path.join(path, *rec["name"].split("/")) + ".npy")
        if not target.startswith(top + os.sep):
            raise TqError(f"member {rec['name']!r} would be written outside the folder")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.lexists(target):
            raise TqError(f"member {rec['name']!r}: {target} is written twice")
        with open(target, "xb") as f:
            write_npy(f, arr)


def write_npy(stream, arr: np.ndarray) -> None:
    """One whole array as a .npy (any dtype a collection holds; bfloat16 as '<V2')."""
    a = np.require(arr, requirements="C")  # np.ascontiguousarray would make a 0-d array 1-d
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    stream.write(npy_header_bytes(a.shape, a.dtype))
    stream.write((a.view(np.uint16) if bf16.is_bf16(a.dtype) else a).tobytes())


# ---------------------------------------------------------------------- writing


def write_members(path: str, kind: str, info: dict, items) -> None:
    """Write (record, array) items as an HDF5, .safetensors or .npz file at `path` (a
    temporary name: the caller renames it into place)."""
    if kind == "hdf5":
        _write_hdf5(path, info, items)
    elif kind == "safetensors":
        _write_safetensors(path, info, items)
    elif kind == "npz":
        _write_npz(path, items)
    else:
        raise TqError(f"cannot write a collection as {kind!r}")


def _write_hdf5(path: str, info: dict, items) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        hdf5 = info.get("source") == "hdf5"
        for g, attrs in sorted((info.get("groups") or {}).items()):
            obj = f if g == "" else f.require_group(g)
            for k, v in attrs.items():
                obj.attrs[k] = decode_attr(v) if hdf5 else json.dumps(v)
        for rec, arr in items:
            if bf16.is_bf16(arr.dtype):
                raise TqError(f"member {rec['name']!r} is bfloat16, which HDF5 cannot hold; "
                              f"write .safetensors or .npz instead")
            ds = f.create_dataset(rec["name"], data=arr)
            for k, v in (rec.get("attrs") or {}).items():
                ds.attrs[k] = decode_attr(v) if hdf5 else json.dumps(v)


def _write_safetensors(path: str, info: dict, items) -> None:
    """The tensors go to a temporary file as they are decoded (one in memory at a time),
    then the header, which needs every offset, and the data are written to `path`."""
    import shutil
    import tempfile

    inverse = {v: k for k, v in SAFETENSORS_DTYPES.items()}
    header, pos = {}, 0
    with tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(path))) as data:
        for rec, arr in items:
            a = np.require(arr, requirements="C")
            if bf16.is_bf16(a.dtype):
                a = a.view("<u2")
            elif a.dtype.byteorder == ">":
                a = a.astype(a.dtype.newbyteorder("<"))
            header[rec["name"]] = {"dtype": inverse[rec["dtype"]], "shape": list(arr.shape),
                                   "data_offsets": [pos, pos + a.nbytes]}
            data.write(a.tobytes())
            pos += a.nbytes
        if info.get("metadata"):
            header["__metadata__"] = info["metadata"]
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        data.seek(0)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(raw)) + raw)
            shutil.copyfileobj(data, f, 1 << 22)


def _write_npz(path: str, items) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        for rec, arr in items:
            with z.open(rec["name"] + ".npy", "w", force_zip64=True) as m:
                write_npy(m, arr)
