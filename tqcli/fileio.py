"""Per-file policy, as zstd's fileio.c: what the `tq` command (and a library user with file
names) does around the codec for each file.

The library below (tqcli.api, tqcli.members, tqcli.tqfile) works on arrays, sources and
streams and never decides anything about a file name; the command line above (tqcli.cli)
fills options and prints.  Here: the names of outputs, whether an output would overwrite
its input, '-' for stdin and stdout (never a terminal), and whether an input is one array
or a collection of them.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
import tempfile

from . import arrayio, files
from .api import CODING, ROTATION, Decompressed, compress_to
from .container import Header
from .errors import InputError, TqError
from .members import CollectionFile, compress_collection
from .pipeline import BackgroundConsumer
from .tqfile import TqFile, output_dtype, plan_read


# ---------------------------------------------------------------------- single arrays


def compress_file(input, output, *, dataset: str | None = None, force: bool = False,
                  progress=None, bits: float | None = 4, mode: str = "mse", seed: int = 0,
                  rounds: int = 3, scale_rule: str | None = None, scale_dtype: str = "auto",
                  chunk_rows: int | None = None, rotation: str = ROTATION,
                  coding: str = CODING, center=False, nmse: float | None = None) -> Header:
    """Compress the array in `input` into the container `output`; returns its header.

    input: a .npy or HDF5 path ('FILE.h5:/dataset' or `dataset`), '-' for a .npy on stdin,
    or an already open arrayio.ArraySource (left open).  output: a path, written to a
    temporary file renamed into place when complete (never over the input; an existing
    file only with force; a FIFO or device in place; never a name that says another
    format, such as .npy: files.check_container_output_name), '-' for stdout, or a binary
    stream.  Errors name the file.
    """
    opened = (contextlib.nullcontext(input) if isinstance(input, arrayio.ArraySource)
              else arrayio.open_input(os.fspath(input), dataset))
    with opened as source:
        if is_path(output) and source.name != "-" and same_file(source.name, output):
            raise TqError("output would overwrite the input", os.fspath(output))
        if is_path(output):
            files.check_container_output_name(os.fspath(output))
        try:
            with files.open_output(output, force) as sink:
                header = compress_to(source, sink.stream, bits=bits, mode=mode, seed=seed,
                                     rounds=rounds, scale_rule=scale_rule,
                                     scale_dtype=scale_dtype, chunk_rows=chunk_rows,
                                     rotation=rotation, coding=coding, center=center,
                                     nmse=nmse, progress=progress)
                sink.commit()
        except TqError as e:
            raise e.with_source(source.name)
    return header


def decompress_file(input, output, *, rows=None, dtype: str | None = None,
                    dataset: str = "data", force: bool = False, progress=None,
                    memory_limit: int | None = None, select=None,
                    clip_rows: bool = True, zarr_codec: str = "plain") -> Decompressed:
    """Decode the container `input` into the array file `output`.

    input: a path, '-' for stdin, or a binary stream.  output: a .npy path, or HDF5 when it
    ends in .h5/.hdf5 (the array as `dataset`), written to a temporary file renamed into
    place when complete (never over the input; an existing file only with force; a FIFO
    or device is written in place); '-' for a .npy on stdout, or a binary stream.  A name
    that says another format (.npz, .tqz, ...) is refused (files.check_array_output_name).
    With rows, the result is the 2-D (rows, d) view; with select (as for decompress) the
    shape numpy gives x[select].  clip_rows=False refuses a rows range beyond the array
    (the command line's --rows) instead of clipping it.  Chunk k is written while chunk
    k+1 is decoded.  Errors name the file.  memory_limit as for decompress.
    An output named *.zarr is a zarr v3 store (the zarr extra; arrayio.ZarrSink) holding
    the array at its root, with zarr's default codecs (zarr_codec "plain": the decoded
    values exactly) or the tq.turboquant codec with this container's settings ("tq").
    """
    f, name = open_named(input, refuse_directory=True, memory_limit=memory_limit)
    try:
        with f:
            h = f.header
            try:
                shape, starts, stops = plan_read(h, rows, select, clip_rows=clip_rows)
            except ValueError as e:
                raise TqError(f"{'--select' if select is not None else '--rows'}: {e}")
            dt = output_dtype(h, dtype)
            if is_path(output) and is_path(input) and same_file(input, output):
                raise TqError("output would overwrite the input", os.fspath(output))
            if is_path(output):
                files.check_array_output_name(os.fspath(output))
            if is_path(output) and arrayio.is_zarr_name(os.fspath(output)):
                _decompress_to_zarr(f, os.fspath(output), shape, dt, starts, stops, force,
                                    progress, zarr_codec)
                count = int((stops - starts).sum())
                start = int(starts[0]) if starts.size else 0
                return Decompressed(h, start, start + count, dt, tuple(shape))
            h5 = is_path(output) and arrayio.is_hdf5_name(os.fspath(output))
            with files.open_output(output, force) as sink:
                if h5:
                    writer = arrayio.H5Sink(sink.writer_path(), shape, dt, dataset,
                                            name=os.fspath(output))
                else:
                    writer = arrayio.NpySink(sink.stream, shape, dt)
                try:
                    # three buffers in turn and a queue of one keep the block being written
                    # out of the decoder's way
                    with BackgroundConsumer(writer.write, depth=1) as background:
                        for block in f.iter_runs(starts, stops, progress=progress,
                                                 buffers=3):
                            background.put(block)
                finally:
                    writer.close()
                sink.commit()
    except TqError as e:
        raise e.with_source(name)
    count = int((stops - starts).sum())
    start = int(starts[0]) if starts.size else 0
    return Decompressed(h, start, start + count, dt, tuple(shape))


def _decompress_to_zarr(f: TqFile, output: str, shape, dt, starts, stops, force, progress,
                        zarr_codec: str) -> None:
    """decompress_file's zarr branch: the rows into a new zarr store at `output`."""
    h = f.header
    options = None
    if zarr_codec == "tq":  # the container's own settings, chunk for chunk
        bits = h.bits
        if h.coding == "entropy" and f.seekable and h.n_vectors:  # the rate it achieved
            achieved = (f.payload_bytes - h.n_vectors * h.scale_size) * 8 / (h.n_vectors * h.dim)
            bits = min(8.0, max(1.0, round(achieved, 3)))
        options = dict(bits=bits, mode=h.mode, seed=h.seed, rounds=h.rounds,
                       scale_rule=h.scale_rule, scale_dtype=h.scale_dtype,
                       rotation=h.rotation, coding=h.coding, center=h.centered)
    with arrayio.ZarrSink(output, shape, dt, codec=zarr_codec, options=options,
                          chunk_rows=h.chunk_rows, force=force) as writer:
        with BackgroundConsumer(writer.write, depth=1) as background:
            for block in f.iter_runs(starts, stops, progress=progress, buffers=3):
                background.put(block)
        writer.commit()


# ---------------------------------------------------------------------- collections


OUTPUT_EXTENSIONS = {"hdf5": ".h5", "safetensors": ".safetensors", "npz": ".npz"}


def is_collection_input(path: str, dataset: str | None) -> bool:
    """Whether `tq compress PATH` makes a collection: an HDF5 file without a dataset
    named (FILE.h5:/path or --dataset keep the single-array form), a .safetensors file
    or an .npz."""
    from .arrayio import containers, split_h5_spec

    if path == "-" or not isinstance(path, (str, os.PathLike)):
        return False
    path, ds = split_h5_spec(os.fspath(path))
    if not os.path.isfile(path):
        return False
    kind = containers.kind_of(path)
    return kind in ("safetensors", "npz") or (kind == "hdf5" and ds is None and dataset is None)


def compress_collection_file(input, output, *, group: str | None = None,
                             force: bool = False, progress=None, bits: int = 4,
                             bits_for=(), lossless=(), vector_size: int | None = None,
                             **options) -> list[dict]:
    """Compress every array of an HDF5 file (or `group`), .safetensors or .npz into one
    collection .tqz at `output` (atomic, as compress_file); returns the table of contents."""
    from .arrayio import containers

    name = os.fspath(input)
    info, mems = containers.read_members(name, group)
    if is_path(output) and same_file(name, output):
        raise TqError("output would overwrite the input", os.fspath(output))
    if is_path(output):
        files.check_container_output_name(os.fspath(output))
    try:
        with files.open_output(output, force) as sink:
            toc = compress_collection(mems, sink.stream, info=info, bits=bits,
                                      bits_for=bits_for, lossless=lossless,
                                      vector_size=vector_size, progress=progress, **options)
            sink.commit()
    except TqError as e:
        raise e.with_source(name if e.source is None else e.source)
    return toc


def collection_output_name(input: str, info: dict, output_dir: str | None = None) -> str:
    """decompress's default name: IN without .tqz, given the source's extension if what is
    left has another (or none): kv.h5.tqz -> kv.h5, kv.tqz -> kv.h5 for an HDF5 source."""
    from .arrayio import containers

    if info.get("source") == "directory":  # dir.tqz -> dir
        return files.decompressed_name(input, output_dir).removesuffix(".npy")
    name = files.decompressed_name(input, output_dir)
    if containers.kind_of_name(name) is None:
        base = name[:-4] if name.endswith(".npy") else name
        name = base + OUTPUT_EXTENSIONS.get(info.get("source"), ".npz")
    return name


def decompress_collection_file(input, output, *, members=None, dtype: str | None = None,
                               force: bool = False, memory_limit: int | None = None,
                               output_dir: str | None = None, progress=None) -> dict:
    """Decode a collection into the same kind of file it came from (or the kind `output`
    names: .h5/.hdf5, .safetensors, .npz); `members` (names) writes only those.  One member
    to a .npy name or '-' writes that array as .npy.  Returns {"output", "members"}."""
    from .arrayio import containers

    if isinstance(input, (str, os.PathLike)):
        name = os.fspath(input)
        src = sys_stdin() if name == "-" else name
    else:
        name, src = getattr(input, "name", None) or "-", input
    try:
        with CollectionFile(src, memory_limit) as c:
            if output is None:
                if name == "-":
                    raise TqError("a collection on stdin needs an output name: -o OUT "
                                  "(.h5, .safetensors, .npz), or --member NAME -c")
                output = collection_output_name(name, c.info, output_dir)
            out = os.fspath(output)
            kind = containers.kind_of_name(out) if out != "-" else None
            one_npy = members and len(members) == 1 and (out == "-" or out.endswith(".npy"))
            if kind is None and c.info.get("source") == "directory" and not one_npy:
                return _decompress_directory(c, name, out, members, dtype)
            if c.seekable and members:
                for m in members:
                    c._entry(m)  # unknown names first, before any output
            if kind is None:
                if not members or len(members) != 1:
                    raise TqError("a collection is written as .h5, .safetensors or .npz "
                                  "(-o NAME); one member (--member NAME) as .npy or to stdout")
                if out != "-":
                    files.check_array_output_name(out)
            if is_path(out) and same_file(name, out):
                raise TqError("output would overwrite the input", out)
            if kind == "hdf5" and not is_path(out):
                raise TqError("HDF5 output needs a file name")
            with files.open_output(out, force) as sink:
                if kind is None:
                    ((rec, arr),) = list(c.items(members, dtype)) or [(None, None)]
                    if rec is None:
                        raise TqError(f"no member {members[0]!r}")
                    containers.write_npy(sink.stream, arr)
                    written = [rec["name"]]
                else:
                    written = []

                    def items():
                        for rec, arr in c.items(members, dtype):
                            written.append(rec["name"])
                            if progress is not None:
                                progress(len(written), len(members or []) or
                                         c.info["members"])
                            yield rec, arr

                    path = sink.writer_path() if kind == "hdf5" else None
                    if path is None:
                        # write to the stream's temporary file by name as well
                        path = sink.writer_path()
                    containers.write_members(path, kind, c.info, items())
                if members and set(members) - set(written):
                    missing = sorted(set(members) - set(written))
                    raise TqError(f"no member {missing[0]!r}")
                sink.commit()
    except TqError as e:
        raise e.with_source(name if e.source is None else e.source)
    return {"output": out, "members": written}


def _decompress_directory(c, name: str, out: str, members, dtype) -> dict:
    """Every member as OUT/NAME.npy, in a new folder made under a temporary name and
    renamed into place when complete (an existing OUT is refused, -f or not)."""
    import shutil

    from .arrayio import containers

    if out == "-":
        raise TqError("a folder collection is written to a folder; name it with -o")
    if os.path.lexists(out):
        raise TqError("already exists (a folder output is never replaced)", out)
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise TqError("output folder does not exist", out)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(out) + ".", suffix=".tmp",
                           dir=parent)
    written = []
    try:
        def items():
            for rec, arr in c.items(members, dtype):
                written.append(rec["name"])
                yield rec, arr

        containers.write_directory(tmp, items())
        if members and set(members) - set(written):
            raise TqError(f"no member {sorted(set(members) - set(written))[0]!r}")
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"output": out, "members": written}


def sys_stdin():
    if sys.stdin.isatty():
        raise TqError("refusing to read binary data from a terminal", "-")
    return sys.stdin.buffer


def inspect_collection(src, verify: bool = False, memory_limit: int | None = None) -> dict:
    name = os.fspath(src) if isinstance(src, (str, os.PathLike)) else None
    try:
        with CollectionFile(sys_stdin() if name == "-" else src, memory_limit) as c:
            return c.report(verify)
    except TqError as e:
        raise e.with_source(name if e.source is None else e.source)


def hdf5_group(path: str, dataset: str | None) -> str | None:
    """The group an HDF5 input names (FILE.h5:/group or --dataset GROUP), else None."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            obj = f.get(dataset) if dataset else None
            return obj.name if isinstance(obj, h5py.Group) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def collection_input(spec: str, dataset: str | None):
    """(path, group) when `tq compress spec` makes a collection, else None: an HDF5 file
    without a dataset named (or naming a group), a .safetensors file, an .npz."""
    from .arrayio import containers, split_h5_spec

    if spec == "-":
        return None
    path, ds = split_h5_spec(spec)
    ds = ds or dataset
    if not os.path.isfile(path):
        return None
    kind = containers.kind_of(path)
    if kind in ("safetensors", "npz"):
        return (path, None) if ds is None else None
    if kind == "hdf5":
        if ds is None:
            return path, None
        group = hdf5_group(path, ds)
        return (path, group) if group is not None else None
    return None


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


def sniff(spec: str):
    """(is a collection, what to read): a regular file is peeked at and read again by
    name; '-' and other non-regular files are opened once, their first 16 bytes read, and
    handed on as a SniffedStream (a FIFO cannot be opened twice)."""
    from .container import MAGIC

    def is_collection(head: bytes) -> bool:
        return (len(head) >= 12 and head[:8] == MAGIC and head[8:10] == b"\x01\x00"
                and bool(head[11] & 0x80))

    if spec != "-":
        try:
            regular = stat.S_ISREG(os.stat(spec).st_mode)
        except FileNotFoundError:  # said first, before anything about the file's kind
            raise InputError("no such file", spec) from None
        except OSError:
            return False, spec  # the reader's own message
        if regular:
            try:
                with open(spec, "rb") as f:
                    return is_collection(f.read(16)), spec
            except OSError:
                return False, spec
        if os.path.isdir(spec):
            return False, spec
        stream, own = io.open(spec, "rb"), True
    else:
        stream, own = sys_stdin(), False
    head = b""
    while len(head) < 16:
        piece = stream.read(16 - len(head))
        if not piece:
            break
        head += piece
    return is_collection(head), SniffedStream(head, stream, spec, own)


# ---------------------------------------------------------------------- helpers


def is_path(target) -> bool:
    return isinstance(target, (str, os.PathLike)) and os.fspath(target) != "-"


def same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def open_named(src, refuse_directory: bool,
                memory_limit: int | None = None) -> tuple[TqFile, str | None]:
    """TqFile of `src`, with '-' for stdin (never a terminal) and one-line errors for a
    path that is missing (or a directory); returns it and the name errors should carry."""
    if isinstance(src, (str, os.PathLike)):
        name = os.fspath(src)
        if name == "-" and sys.stdin.isatty():
            raise TqError("refusing to read binary data from a terminal", "-")
        try:
            if name == "-":
                return TqFile(sys.stdin.buffer, memory_limit), name
            if not os.path.exists(name):
                raise TqError("no such file")
            if refuse_directory and os.path.isdir(name):
                raise TqError("is a directory")
            return TqFile(name, memory_limit), name
        except TqError as e:
            raise e.with_source(name)
    return TqFile(src, memory_limit), getattr(src, "name", None) if not isinstance(
        src, (bytes, bytearray, memoryview)) else None
