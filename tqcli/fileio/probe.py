"""What an input is, decided once: probe_input (compress: one array, a zarr store, a
collection, a stream), probe_container (decompress: one array or a collection, by the
layouts' own test of the first 16 bytes), and the same-file rule."""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass

from .. import arrayio
from ..arrayio import containers, files
from ..errors import InputError, TqError
from ..format import layouts

OUTPUT_EXTENSIONS = {"hdf5": ".h5", "safetensors": ".safetensors", "npz": ".npz"}
stdin = files.binary_stdin  # '-': stdin's bytes, refused when it is a terminal


class Refused(TqError):
    """Options that make no sense together for this input (--rm with stdout, ...): the
    command line's usage error (exit status 2)."""

    kind = "usage"


# ---------------------------------------------------------------------- same file


def is_path(target) -> bool:
    return isinstance(target, (str, os.PathLike)) and os.fspath(target) != "-"


def same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_same_file(input, output) -> None:
    """Never write an output over its input (two names of one file included)."""
    if is_path(output) and is_path(input) and same_file(input, output):
        raise TqError("output would overwrite the input", os.fspath(output))


# ---------------------------------------------------------------------- what an input is


@dataclass(frozen=True)
class Input:
    """What `tq compress SPEC` reads, decided once (probe_input).

    kind: "stream" ('-', a .npy on stdin), "array" (a .npy, an HDF5 dataset, or whatever
    arrayio.open_input will judge), "zarr" (a zarr array folder) or "collection".  path:
    what is read (FILE of FILE.h5:/dataset).  source: a collection's "hdf5",
    "safetensors", "npz" or "directory"; "hdf5" for an HDF5 dataset.  group: an HDF5
    collection's group.  problem: what is wrong with it, said after the usage rules."""

    spec: str
    kind: str
    path: str
    source: str | None = None
    group: str | None = None
    dataset: str | None = None
    problem: str | None = None

    @property
    def collection(self) -> bool:
        return self.kind == "collection"


def probe_input(spec: str, dataset: str | None = None, directory: bool = False) -> Input:
    """The kind of a compress input, looked at (nothing read but leading bytes, and an
    HDF5 file's tree): a collection is an HDF5 file without a dataset named (or naming a
    group), a .safetensors file, an .npz, or with `directory` a folder."""
    if spec == "-":
        return Input(spec, "stream", "-", dataset=dataset)
    if directory:
        if os.path.isdir(spec):
            return Input(spec, "collection", spec, "directory")
        return Input(spec, "array", spec, problem="--directory: not a folder")
    if arrayio.is_zarr_store(spec):
        return Input(spec, "zarr", spec, dataset=dataset)
    path, ds = arrayio.split_h5_spec(spec)
    ds = ds or dataset
    kind = containers.kind_of(path) if os.path.isfile(path) else None
    if kind in ("safetensors", "npz") and ds is None:
        return Input(spec, "collection", path, kind)
    if kind == "hdf5":
        group = None if ds is None else hdf5_group(path, ds)
        if ds is None or group is not None:
            return Input(spec, "collection", path, "hdf5", group)
    return Input(spec, "array", path, kind, dataset=dataset)


def hdf5_group(path: str, dataset: str | None) -> str | None:
    """The group an HDF5 input names (FILE.h5:/group or --dataset GROUP), else None."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            obj = f.get(dataset) if dataset else None
            return obj.name if isinstance(obj, h5py.Group) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class Container:
    """What `tq decompress SPEC` reads, decided once (probe_container): one array or a
    collection, and what to read it from (a path, or a pipe's stream with its first bytes
    given again); close() closes a stream opened here."""

    spec: str
    collection: bool
    src: object

    def close(self) -> None:
        if not isinstance(self.src, str):
            self.src.close()


def probe_container(spec: str) -> Container:
    """A regular file is peeked at and read again by name; '-' and other non-regular files
    are opened once, their first bytes read and handed on as a SniffedStream (a FIFO
    cannot be opened twice).  The layout is told by layouts' own test."""
    def is_collection(head: bytes) -> bool:
        return layouts.COLLECTION.matches(head)

    if spec != "-":
        try:
            regular = stat.S_ISREG(os.stat(spec).st_mode)
        except FileNotFoundError:  # said first, before anything about the file's kind
            raise InputError("no such file", spec) from None
        except OSError:
            return Container(spec, False, spec)  # the reader's own message
        if regular:
            try:
                with open(spec, "rb") as f:
                    return Container(spec, is_collection(f.read(layouts.PREFIX)), spec)
            except OSError:
                return Container(spec, False, spec)
        if os.path.isdir(spec):
            return Container(spec, False, spec)
        stream, own = io.open(spec, "rb"), True
    else:
        stream, own = stdin(), False
    head = b""
    while len(head) < layouts.PREFIX:
        piece = stream.read(layouts.PREFIX - len(head))
        if not piece:
            break
        head += piece
    return Container(spec, is_collection(head), SniffedStream(head, stream, spec, own))


class SniffedStream(io.RawIOBase):
    """A pipe (stdin, a FIFO, a process substitution) whose first bytes were read to tell
    a collection from a single array: they are given again, then the rest of the stream."""

    def __init__(self, prefix: bytes, stream, name: str, own: bool):
        super().__init__()
        self.prefix, self.stream, self.name, self.own = prefix, stream, name, own

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        if self.prefix:
            k = min(len(view), len(self.prefix))
            view[:k] = self.prefix[:k]
            self.prefix = self.prefix[k:]
            return k
        return self.stream.readinto(view)

    def close(self) -> None:
        if self.own and not self.stream.closed:
            self.stream.close()
        super().close()
