"""Files of many arrays: an HDF5 tree, a .safetensors file and an .npz, read as the named
members of a collection (tqcli/library/collections.py) and written back as the same kind of file.

* HDF5 (h5members.py): every dataset under the file (or a group), recursively, with the attributes of
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
from . import bf16, h5members, inflation, jsontext
from .base import ArraySource, check_shape
from .npy import npy_header_bytes, read_npy_header
from .stable import StableFile
from .streamed import ZipMemberSource, file_pieces, zip_pieces
from .members import MemberInput, flat_pieces, le_bytes, reserved_name_problem
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
            return h5members.read_hdf5_members(path, group, memory_limit, max_ratio)
        if group is not None:
            raise InputError("--dataset given but the file is not HDF5")
        if kind == "safetensors":
            return _safetensors_members(path)
        if kind == "npz":
            return _npz_members(path, max_ratio)
        raise InputError("not an HDF5, .safetensors or .npz file")
    except InputError as e:
        raise e.with_source(path)


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
    """A float tensor of a .safetensors file, read block by block (plain reads: a memory
    map would keep every page it touched resident until the tensor is done)."""

    def __init__(self, path: str, dt: str, shape: tuple, start: int,
                 opened: os.stat_result | None = None):
        """opened: the file's status when its header was read (a change since is
        refused)."""
        check_shape(shape)
        self.name, self.shape, self.dtype = path, shape, _dtype(dt)
        self._stored, self._start, self._opened = dt, start, opened

    fresh_blocks = True

    def check_unchanged(self) -> None:
        stable = getattr(self, "_stable", None)
        if stable is not None:  # its descriptor is closed with the last block: by name
            stable.check_name()

    def blocks(self, rows: int):
        """Blocks by positioned reads, each a new array, the file checked around every
        read (arrayio.stable: no memory map, so no SIGBUS if it is truncated meanwhile)."""
        n, d = self.n_rows, self.dim
        if n == 0:
            return
        bf = self._stored == "bfloat16"
        stored = np.dtype("<u2") if bf else np.dtype(self._stored).newbyteorder("<")
        with open(self.name, "rb", buffering=0) as fh:
            f = self._stable = StableFile(fh.fileno(), self.name, self._opened)
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
            sdt = np.dtype(np.dtype(dt).newbyteorder("<") if dt != "bool" else bool)
            members.append(MemberInput(name, shape, sdt, {}, pieces=(
                lambda sdt=sdt, a=a, b=b: file_pieces(path, start + a, sdt,
                                                      (b - a) // sdt.itemsize))))
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
                    if dt.kind == "f" and shape and not fortran and dt.fields is None:
                        # a float member is read in blocks through the zip stream when it
                        # is compressed: never whole (a deflated member may inflate to GiB)
                        members.append(MemberInput(
                            info.filename[:-4], tuple(shape), dt, {},
                            open=lambda info=info, dt=dt, shape=tuple(shape), offset=offset:
                            ZipMemberSource(path, info, dt, shape, offset)))
                        continue
                    if not fortran and dt.fields is None:  # stored raw, read in pieces
                        members.append(MemberInput(
                            info.filename[:-4], tuple(shape), dt, {},
                            pieces=lambda info=info, dt=dt, offset=offset, count=count:
                            zip_pieces(path, info, dt, offset, count)))
                        continue
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
                dt, fortran, shape, offset = read_npy_header(f.read, check=False)
                count = int(np.prod(shape, dtype=object))
                pieces = (not (dt.kind == "f" and shape) and not fortran and dt.fields is None
                          and os.path.getsize(full) >= offset + count * dt.itemsize)
                if not (dt.kind == "f" and shape) and not pieces:
                    # Fortran order, fields, or truncated: read whole, here (the header was
                    # checked: no objects, no pickles), not by np.load, which would parse
                    # the header again; a truncated file is refused with one line
                    arr = _npy_values(f, dt, fortran, shape, rel)
            if dt.kind == "f" and shape:  # a 0-d array holds no vector: stored raw
                with open_npy(full) as src:  # every check of a .npy input
                    shape, dt = src.shape, src.dtype
                members.append(MemberInput(rel[:-4], shape, dt, {},
                                           open=lambda full=full: open_npy(full)))
            elif pieces:  # ids, masks: read in pieces when written
                members.append(MemberInput(rel[:-4], tuple(shape), dt, {}, pieces=(
                    lambda full=full, dt=dt, offset=offset, count=count:
                    file_pieces(full, offset, dt, count))))
            else:
                members.append(MemberInput(rel[:-4], arr.shape, arr.dtype, {}, array=arr))
    if not members:
        raise InputError("holds no .npy file")
    return {"source": "directory"}, members


def _npy_values(f, dt, fortran: bool, shape, rel: str) -> np.ndarray:
    """The values that follow a checked .npy header in `f` (as np.load, bytes after them
    are ignored; fewer than the header says are refused)."""
    count = 1
    for n in shape:
        count *= n
    data = bytearray(count * dt.itemsize)
    if f.readinto(data) != len(data):
        raise InputError(f"{rel} is truncated (shorter than its header says)")
    arr = np.frombuffer(data, dtype=dt).reshape(shape, order="F" if fortran else "C")
    return np.require(arr, requirements="C")  # keeps a 0-d array 0-d


def write_directory(path: str, items, name: str | None = None) -> None:
    """Each member as NAME.npy under the new folder `path` (names were checked by the
    reader: no '..', no absolute path; each target is checked to stay inside anyway).  A
    failed write names `name`, the output folder asked for, not the temporary `path`."""
    top = os.path.realpath(path)
    for rec, arr in items:
        target = os.path.realpath(os.path.join(path, *rec["name"].split("/")) + ".npy")
        if not target.startswith(top + os.sep):
            raise TqError(f"member {rec['name']!r} would be written outside the folder")
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.lexists(target):
                raise TqError(f"member {rec['name']!r} is written twice (names that one "
                              f"file system takes for the same)", name or path)
            with open(target, "xb") as f:
                write_npy(f, arr)
        except OSError as e:
            raise TqError(f"write failed ({e.strerror or e})", name or path) from None


def write_npy(stream, arr) -> None:
    """One array as a .npy (any dtype a collection holds; bfloat16 as '<V2'): an array in
    memory, or a StreamedArray written piece by piece."""
    dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    stream.write(npy_header_bytes(arr.shape, dt))
    for piece in flat_pieces(arr):
        stream.write(le_bytes(piece))


# ---------------------------------------------------------------------- writing


def write_members(path: str, kind: str, info: dict, items, name: str | None = None) -> None:
    """Write (record, array) items as an HDF5, .safetensors or .npz file at `path` (a
    temporary name: the caller renames it into place).  A failed write (a full disk) is
    a TqError naming `name`, the output the user asked for, never the temporary file."""
    name = name or path
    try:
        if kind == "hdf5":
            h5members.write_hdf5(path, info, items, name)
        elif kind == "safetensors":
            _write_safetensors(path, info, items, name)
        elif kind == "npz":
            _write_npz(path, items)
        else:
            raise TqError(f"cannot write a collection as {kind!r}")
    except OSError as e:
        raise TqError(f"write failed ({e.strerror or e})", name) from None


def _write_safetensors(path: str, info: dict, items, name: str | None = None) -> None:
    """The tensors go to a temporary file as they are decoded (one in memory at a time),
    then the header, which needs every offset, and the data are written to `path`."""
    import shutil
    import tempfile

    inverse = {v: k for k, v in SAFETENSORS_DTYPES.items()}
    header, pos = {}, 0
    with tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(path))) as data:
        for rec, arr in items:
            problem = reserved_name_problem("safetensors", [rec["name"]])
            if problem:  # a stream's member (a file's are refused before writing)
                raise TqError(problem, name)
            nbytes = 0
            for piece in flat_pieces(arr):
                raw = le_bytes(piece)
                data.write(raw)
                nbytes += raw.nbytes
            header[rec["name"]] = {"dtype": inverse[rec["dtype"]], "shape": list(arr.shape),
                                   "data_offsets": [pos, pos + nbytes]}
            pos += nbytes
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
