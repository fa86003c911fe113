"""Per-file policy, as zstd's fileio.c: everything the `tq` command decides about a file.

The library below (api, members, tqfile, arrayio) works on arrays, sources and streams; the
command line above (tqcli.cli) fills options and prints.  Here, once each:

  * what an input is (probe_input for compress: one array, a zarr store, a collection --
    HDF5 tree, .safetensors, .npz, folder -- or a stream; probe_container for decompress:
    one array or a collection, by the layouts' own test of the first 16 bytes);
  * the names of outputs (compressed_output, decompressed_output, collection_output_name,
    --output-dir), and never an output over its input (refuse_same_file);
  * '-' for stdin, never a terminal (stdin, from files.binary_stdin);
  * --rm: refused where it makes no sense (stdout, stdin, a folder, HDF5, zarr), and the
    input deleted only after a complete write (remove_input);
  * several inputs each on its own (each);
  * the files-by-name verbs of the library: compress_file, decompress_file,
    compress_collection_file, decompress_collection_file (tqcli.compress_file, ...).

Plans for the command line: plan_compress / open_compress_input / compress_planned and
plan_decompress / decompress_planned, between which the command starts the engine and
its progress bar.  A refusal of options that make no sense together for an input is a
Refused (kind "usage"), which the command line reports as a usage error.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from dataclasses import dataclass

from . import arrayio
from .arrayio import files
from .format import layouts
from .library import report
from .library.api import Decompressed, compress_to
from .arrayio import containers
from .format.header import Header
from .errors import InputError, TqError
from .library.collections import CollectionFile, compress_collection
from .codec.options import EncodeOptions, option_keywords, options_of
from .arrayio.pipeline import BackgroundConsumer
from .library.tqfile import CollectionError, TqFile, output_dtype, plan_read

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


# ---------------------------------------------------------------------- names


def compressed_output(inp: Input, output: str | None = None, to_stdout: bool = False,
                      output_dir: str | None = None) -> str:
    """compress's output: '-' (-c, or stdin in), -o OUT, or INPUT.tqz (in output_dir)."""
    if to_stdout:
        return "-"
    if output is not None:
        return output
    if inp.kind == "stream":
        return "-"
    base = inp.spec.rstrip("/") or inp.spec
    if inp.kind == "zarr":
        if output_dir is None:  # INPUT.tqz would land inside the zarr store
            raise TqError("a zarr array is a folder: name the output with -o OUT.tqz "
                          "or --output-dir DIR", inp.spec)
        return files.compressed_name(base, output_dir)
    return files.compressed_name(arrayio.split_h5_spec(base)[0], output_dir)


def decompressed_output(spec: str, output: str | None = None, to_stdout: bool = False,
                        output_dir: str | None = None) -> str:
    """decompress's output of one array: '-', -o OUT, or IN without .tqz (.npy added when
    nothing is left of an extension); a collection's is collection_output_name."""
    if to_stdout:
        return "-"
    if output is not None:
        return output
    return "-" if spec == "-" else files.decompressed_name(spec, output_dir)


def collection_output_name(input: str, info: dict, output_dir: str | None = None) -> str:
    """decompress's default name: IN without .tqz, given the source's extension if what is
    left has another (or none): kv.h5.tqz -> kv.h5, kv.tqz -> kv.h5 for an HDF5 source."""
    if info.get("source") == "directory":  # dir.tqz -> dir
        return files.decompressed_name(input, output_dir).removesuffix(".npy")
    name = files.decompressed_name(input, output_dir)
    if containers.kind_of_name(name) is None:
        base = name[:-4] if name.endswith(".npy") else name
        name = base + OUTPUT_EXTENSIONS.get(info.get("source"), ".npz")
    return name


def make_output_dir(output_dir: str) -> None:
    """--output-dir: made if missing."""
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as e:
        raise TqError(f"cannot create the output folder ({e.strerror})", output_dir) from None


# ---------------------------------------------------------------------- --rm and several inputs


def refuse_rm(output: str, spec: str) -> None:
    if output == "-":
        raise Refused("--rm needs an output file (it is ignored with stdout)")
    if spec == "-":
        raise Refused("--rm needs an input file (there is nothing to delete on stdin)")


def remove_input(name: str) -> None:
    """--rm, once the output is complete: delete a regular input file; a FIFO or device is
    left alone, as by zstd."""
    if stat.S_ISREG(os.stat(name).st_mode):
        os.remove(name)


def each(inputs: list[str], one, failed) -> bool:
    """one(input) for every input, as zstd does with several files: a failure is told to
    failed(input, error) and the next file still runs; returns whether any failed.  A
    single input raises as it fails; an interrupt ends them all."""
    if len(inputs) == 1:
        one(inputs[0])
        return False
    bad = False
    for input in inputs:
        try:
            one(input)
        except (TqError, MemoryError, OSError) as e:
            failed(input, e)
            bad = True
    return bad


# ---------------------------------------------------------------------- the command's plans


@dataclass(frozen=True)
class CompressPlan:
    input: Input
    output: str
    remove: bool = False


def plan_compress(spec: str, *, output: str | None = None, to_stdout: bool = False,
                  output_dir: str | None = None, dataset: str | None = None,
                  directory: bool = False, remove: bool = False,
                  input_dtype: str | None = None,
                  collection_options: bool = False) -> CompressPlan:
    """The input's kind, the output's name and the refusals of `tq compress SPEC`, in the
    order the command says them; nothing is read but what probe_input looks at."""
    inp = probe_input(spec, dataset, directory)
    out = compressed_output(inp, output, to_stdout, output_dir)
    if remove:
        refuse_rm(out, spec)
    if inp.problem:
        raise TqError(inp.problem, spec)
    if directory and remove:
        raise Refused("--rm is refused for a folder")
    if inp.collection:
        if input_dtype is not None:
            raise Refused("--input-dtype is for .npy input (a collection's members carry "
                          "their dtypes)")
        if remove and arrayio.is_hdf5_name(inp.path):
            raise TqError("--rm refused for HDF5 input (the file may hold other data)",
                          inp.path)
    elif collection_options:
        raise Refused("--bits-for, --lossless and --vector-size apply to collections "
                      "(HDF5, .safetensors, .npz input)")
    return CompressPlan(inp, out, remove)


@contextlib.contextmanager
def open_compress_input(plan: CompressPlan, input_dtype: str | None = None):
    """The open arrayio source of a single array (None for a collection, which
    compress_planned reads), its --rm refused for zarr and HDF5 once it has opened."""
    if plan.input.collection:
        yield None
        return
    with arrayio.open_input(plan.input.spec, plan.input.dataset, input_dtype) as source:
        if plan.remove and plan.input.kind == "zarr":
            raise TqError("--rm refused for zarr input (a store is a folder that may hold "
                          "other data)", source.name)
        if plan.remove and plan.input.source == "hdf5":
            raise TqError("--rm refused for HDF5 input (the file may hold other data)",
                          source.name)
        yield source


def compress_planned(plan: CompressPlan, source, options: EncodeOptions | None = None, *,
                     force: bool = False, progress=None, bits_for=(), lossless=(),
                     vector_size=None, strict: bool = False, warn=None, **keywords):
    """Compress as planned with `options` (an EncodeOptions or its fields as keywords; a
    collection: every member, with its width from bits_for); --rm deletes the input once
    the output is complete (finish).  Returns the header (one array) or the table of
    contents (a collection)."""
    options = options_of(options, **keywords)
    inp = plan.input
    if inp.collection:
        return compress_collection_file(inp.path, plan.output, group=inp.group, force=force,
                                        progress=progress, bits_for=bits_for,
                                        lossless=lossless, vector_size=vector_size,
                                        strict=strict, warn=warn, **options.to_kwargs())
    return compress_file(source, plan.output, options, force=force, progress=progress)


@dataclass
class DecompressPlan:
    container: Container
    output: str        # one array's output name
    target: str | None  # what -o/-c said (a collection names its own output otherwise)
    remove: bool = False

    @property
    def collection(self) -> bool:
        return self.container.collection

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.container.close()


def plan_decompress(spec: str, *, output: str | None = None, to_stdout: bool = False,
                    output_dir: str | None = None, remove: bool = False,
                    members=(), one_array_options: bool = False) -> DecompressPlan:
    """The output's name, the refusals and the container's layout of `tq decompress SPEC`
    (a pipe is opened here: use the plan in a `with` block)."""
    out = decompressed_output(spec, output, to_stdout, output_dir)
    if remove:
        refuse_rm(out, spec)
    c = probe_container(spec)
    try:
        if c.collection and one_array_options:
            raise Refused("--select and --rows read one array; for a collection choose "
                          "members with --member")
        if not c.collection and members:
            raise TqError("--member given but the file holds one array, not a collection",
                          spec)
    except BaseException:
        c.close()
        raise
    return DecompressPlan(c, out, "-" if to_stdout else output, remove)


def decompress_planned(plan: DecompressPlan, *, members=None, progress=None,
                       output_dir: str | None = None, memory_limit: int | None = None,
                       dtype: str | None = None, force: bool = False, **one_array):
    """Decompress as planned: a collection (decompress_collection_file: {"output",
    "members"}) or one array (decompress_file, one_array its rows, select, dataset,
    zarr_codec: a Decompressed).  Errors name the input."""
    src = plan.container.src
    try:
        if plan.collection:
            return decompress_collection_file(src, plan.target, members=members, dtype=dtype,
                                              force=force, progress=progress,
                                              memory_limit=memory_limit,
                                              output_dir=output_dir)
        return decompress_file(src, plan.output, dtype=dtype, force=force, progress=progress,
                               memory_limit=memory_limit, clip_rows=False, **one_array)
    except TqError as e:  # a refusal of the stream as it opened names no file yet
        raise e.with_source(plan.container.spec)


def finish(plan, output: str) -> None:
    """--rm after a complete write of `output`."""
    if plan.remove:
        spec = plan.input.path if isinstance(plan, CompressPlan) else plan.container.spec
        refuse_rm(output, spec)
        remove_input(spec)


# ---------------------------------------------------------------------- files by name


@option_keywords
def compress_file(input, output, options: EncodeOptions | None = None, *,
                  dataset: str | None = None, force: bool = False, progress=None,
                  **keywords) -> Header:
    """Compress the array in `input` into the container `output`; returns its header.

    input: a .npy or HDF5 path ('FILE.h5:/dataset' or `dataset`), '-' for a .npy on stdin,
    or an already open arrayio.ArraySource (left open).  output: a path, written to a
    temporary file renamed into place when complete (never over the input; an existing
    file only with force; a FIFO or device in place; never a name that says another
    format, such as .npy: files.check_container_output_name), '-' for stdout, or a binary
    stream.  Errors name the file.  The options: an EncodeOptions or its fields as
    keywords (bits, mode, seed, rounds, scale_rule, scale_dtype, chunk_rows, rotation,
    coding, center, nmse), as for compress_to.
    """
    options = options_of(options, **keywords)
    opened = (contextlib.nullcontext(input) if isinstance(input, arrayio.ArraySource)
              else arrayio.open_input(os.fspath(input), dataset))
    with opened as source:
        refuse_same_file(source.name, output)
        if is_path(output):
            files.check_container_output_name(os.fspath(output))
        try:
            with files.open_output(output, force) as sink:
                header = compress_to(source, sink.stream, options, progress=progress)
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
            refuse_same_file(input, output)
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
        coding = h.payload_coding
        if coding.fractional_rates and f.seekable and h.n_vectors:  # the rate it achieved
            achieved = coding.achieved_bits(h, f.payload_bytes)
            bits = min(float(coding.max_rate), max(float(coding.min_rate), round(achieved, 3)))
        options = dict(bits=bits, mode=h.mode, seed=h.seed, rounds=h.rounds,
                       scale_rule=h.scale_rule, scale_dtype=h.scale_dtype,
                       rotation=h.rotation, coding=h.coding, center=h.centered)
    with arrayio.ZarrSink(output, shape, dt, codec=zarr_codec, options=options,
                          chunk_rows=h.chunk_rows, force=force) as writer:
        with BackgroundConsumer(writer.write, depth=1) as background:
            for block in f.iter_runs(starts, stops, progress=progress, buffers=3):
                background.put(block)
        writer.commit()


def compress_collection_file(input, output, *, group: str | None = None,
                             force: bool = False, progress=None, bits: int = 4,
                             bits_for=(), lossless=(), vector_size: int | None = None,
                             **options) -> list[dict]:
    """Compress every array of an HDF5 file (or `group`), .safetensors or .npz into one
    collection .tqz at `output` (atomic, as compress_file); returns the table of contents."""
    name = os.fspath(input)
    info, mems = containers.read_members(name, group)
    refuse_same_file(name, output)
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


def decompress_collection_file(input, output, *, members=None, dtype: str | None = None,
                               force: bool = False, memory_limit: int | None = None,
                               output_dir: str | None = None, progress=None) -> dict:
    """Decode a collection into the same kind of file it came from (or the kind `output`
    names: .h5/.hdf5, .safetensors, .npz); `members` (names) writes only those.  One member
    to a .npy name or '-' writes that array as .npy.  Returns {"output", "members"}."""
    if isinstance(input, (str, os.PathLike)):
        name = os.fspath(input)
        src = stdin() if name == "-" else name
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
            refuse_same_file(name, out)
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

                    # by name: HDF5's writer, and a stream's temporary file as well
                    containers.write_members(sink.writer_path(), kind, c.info, items())
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


def open_named(src, refuse_directory: bool,
                memory_limit: int | None = None) -> tuple[TqFile, str | None]:
    """TqFile of `src`, with '-' for stdin (never a terminal) and one-line errors for a
    path that is missing (or a directory); returns it and the name errors should carry."""
    if isinstance(src, (str, os.PathLike)):
        name = os.fspath(src)
        try:
            if name == "-":
                return TqFile(stdin(), memory_limit), name
            if not os.path.exists(name):
                raise TqError("no such file")
            if refuse_directory and os.path.isdir(name):
                raise TqError("is a directory")
            return TqFile(name, memory_limit), name
        except TqError as e:
            raise e.with_source(name)
    return TqFile(src, memory_limit), getattr(src, "name", None) if not isinstance(
        src, (bytes, bytearray, memoryview)) else None


def inspect(src, verify: bool = False, memory_limit: int | None = None) -> dict:
    """The inspect report of a container (path, '-' for stdin, bytes or a stream).

    The keys and values are the schema of `tq inspect --json` (spec/vectors/*.inspect.json).
    A stream is always read to its end, so that its index and footer are checked; verify
    reads every chunk of any container and checks its CRC-32 (FormatError at a fault) and
    adds "verified": true.  A file whose decoding would need more than memory_limit
    (as for decompress) is refused like any file a decoder refuses.
    """
    try:
        f, name = open_named(src, refuse_directory=False, memory_limit=memory_limit)
    except CollectionError as e:  # a collection: its members and the total
        name = os.fspath(src) if isinstance(src, (str, os.PathLike)) else None
        try:
            reopen = name not in (None, "-")
            with CollectionFile(src if reopen else None, memory_limit,
                                reader=None if reopen else e.reader) as c:
                return c.report(verify)
        except TqError as e:
            raise e.with_source(name if e.source is None else e.source)
    try:
        with f:
            if verify:
                f.verify()
            elif not f.seekable:
                f.verify(checksums=False)
            h = f.header
            size, payload = f.file_size, f.payload_bytes
    except TqError as e:
        raise e.with_source(name)
    result = report.header_report(h, size, payload)
    coding = h.payload_coding.inspect_report(h, payload)
    if coding is not None:
        result["coding"] = coding
    if verify:
        result["verified"] = True
    return result
