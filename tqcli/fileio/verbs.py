"""The library's verbs on files by name (tqcli.compress_file, decompress_file,
compress_collection_file, decompress_collection_file): atomic outputs, names checked
against what they say, never an output over its input.  The read-only ones (inspect,
open_named) live in reading.py and are named here too."""

from __future__ import annotations

import contextlib
import os
import tempfile

from .. import arrayio
from ..arrayio import containers, files
from ..arrayio.pipeline import BackgroundConsumer
from ..codec.options import EncodeOptions, option_keywords, options_of
from ..errors import TqError
from ..arrayio.members import reserved_name_problem
from ..format import memory
from ..format.collection import portable_names_problem
from ..format.header import Header
from ..library.api import Decompressed, compress_to
from ..library.collections import compress_collection
from ..library.collection_file import CollectionFile
from ..library.tqfile import TqFile, output_dtype, plan_read
from .names import collection_output_name
from .probe import is_path, refuse_same_file, stdin
from .reading import inspect, open_named  # noqa: F401 (the verbs' public names)

# ---------------------------------------------------------------------- files by name


@option_keywords
def compress_file(input, output, options: EncodeOptions | None = None, *,
                  dataset: str | None = None, force: bool = False, progress=None,
                  memory_limit: int | None = None, max_ratio: float | None = None,
                  **keywords) -> Header:
    """Compress the array in `input` into the container `output`; returns its header.

    input: a .npy or HDF5 path ('FILE.h5:/dataset' or `dataset`), '-' for a .npy on stdin,
    or an already open arrayio.ArraySource (left open).  output: a path, written to a
    temporary file renamed into place when complete (never over the input; an existing
    file only with force; a FIFO or device in place; never a name that says another
    format, such as .npy: files.check_container_output_name), '-' for stdout, or a binary
    stream.  Errors name the file.  The options: an EncodeOptions or its fields as
    keywords (bits, mode, seed, rounds, scale_rule, scale_dtype, chunk_rows, rotation,
    coding, center, nmse), as for compress_to, and memory_limit (the encoder's budget, which
    also bounds what a compressed input -- a zarr or HDF5 chunk -- may inflate to, as
    max_ratio does: arrayio.inflation).
    """
    options = options_of(options, **keywords)
    opened = (contextlib.nullcontext(input) if isinstance(input, arrayio.ArraySource)
              else arrayio.open_input(os.fspath(input), dataset, memory_limit=memory_limit,
                                      max_ratio=max_ratio))
    with opened as source:
        refuse_same_file(source.name, output)
        if is_path(output):
            files.check_container_output_name(os.fspath(output))
        try:
            with files.open_output(output, force) as sink:
                header = compress_to(source, sink.stream, options, progress=progress,
                                     memory_limit=memory_limit)
                sink.commit()
        except TqError as e:
            raise e.with_source(source.name)
    return header


def decompress_file(input, output, *, rows=None, dtype: str | None = None,
                    dataset: str = "data", force: bool = False, progress=None,
                    memory_limit: int | None = None, select=None,
                    clip_rows: bool = True, zarr_codec: str = "plain",
                    max_ratio: float | None = None) -> Decompressed:
    """Decode the container `input` into the array file `output`.

    input: a path, '-' for stdin, or a binary stream.  output: a .npy path, or HDF5 when it
    ends in .h5/.hdf5 (the array as `dataset`), written to a temporary file renamed into
    place when complete (never over the input; an existing file only with force; a FIFO
    or device is written in place); '-' for a .npy on stdout, or a binary stream.  A name
    that says another format (.npz, .tqz, ...) is refused (files.check_array_output_name).
    With rows, the result is the 2-D (rows, d) view; with select (as for decompress) the
    shape numpy gives x[select].  clip_rows=False refuses a rows range beyond the array
    (the command line's --rows) instead of clipping it.  Chunk k is written while chunk
    k+1 is decoded.  Errors name the file.  memory_limit and max_ratio as for decompress.
    An output named *.zarr is a zarr v3 store (the zarr extra; arrayio.ZarrSink) holding
    the array at its root, with zarr's default codecs (zarr_codec "plain": the decoded
    values exactly) or the tq.turboquant codec with this container's settings ("tq").
    """
    f, name = open_named(input, refuse_directory=True, memory_limit=memory_limit,
                         max_ratio=max_ratio)
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
                    write_runs(f, starts, stops, writer.write, progress)
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
        write_runs(f, starts, stops, writer.write, progress)
        writer.commit()


def write_runs(f: TqFile, starts, stops, write, progress=None) -> None:
    """write(block) for the decoded rows of the runs, in order.  While a decoded chunk is
    small and two threads may run (format/memory.py decode_pipelines), two threads each
    decode a chunk into a buffer of their own and write it in turn (TqFile.decode_runs):
    one writes while the other decodes, with no hand-over between them.  With one thread,
    three buffers in turn and a queue of one keep the block being written out of the
    decoder's way; a large chunk (decoding_buffers) has one buffer, written before the next
    chunk is decoded, so the budget holds one chunk, not three."""
    from .. import kernels

    pipes = memory.decode_pipelines(f.header, kernels.thread_count())
    if pipes > 1:
        f.decode_runs(starts, stops, write, progress=progress, pipelines=pipes)
        return
    buffers = memory.decoding_buffers(f.header)
    blocks = f.iter_runs(starts, stops, progress=progress, buffers=buffers)
    if buffers == 1:
        for block in blocks:
            write(block)
        return
    with BackgroundConsumer(write, depth=1) as background:
        for block in blocks:
            background.put(block)


def compress_collection_file(input, output, *, group: str | None = None,
                             force: bool = False, progress=None, bits: int = 4,
                             bits_for=(), lossless=(), vector_size: int | None = None,
                             memory_limit: int | None = None, max_ratio: float | None = None,
                             **options) -> list[dict]:
    """Compress every array of an HDF5 file (or `group`), .safetensors or .npz into one
    collection .tqz at `output` (atomic, as compress_file); returns the table of contents."""
    name = os.fspath(input)
    info, mems = containers.read_members(name, group, memory_limit=memory_limit,
                                         max_ratio=max_ratio)
    refuse_same_file(name, output)
    if is_path(output):
        files.check_container_output_name(os.fspath(output))
    try:
        with files.open_output(output, force) as sink:
            toc = compress_collection(mems, sink.stream, info=info, bits=bits,
                                      bits_for=bits_for, lossless=lossless,
                                      vector_size=vector_size, progress=progress,
                                      memory_limit=memory_limit, **options)
            sink.commit()
    except TqError as e:
        raise e.with_source(name if e.source is None else e.source)
    return toc


def decompress_collection_file(input, output, *, members=None, dtype: str | None = None,
                               force: bool = False, memory_limit: int | None = None,
                               output_dir: str | None = None, progress=None,
                               max_ratio: float | None = None) -> dict:
    """Decode a collection into the same kind of file it came from (or the kind `output`
    names: .h5/.hdf5, .safetensors, .npz); `members` (names) writes only those.  One member
    to a .npy name or '-' writes that array as .npy.  Returns {"output", "members"}."""
    if isinstance(input, (str, os.PathLike)):
        name = os.fspath(input)
        src = stdin() if name == "-" else name
    else:
        name, src = getattr(input, "name", None) or "-", input
    try:
        with CollectionFile(src, memory_limit, max_ratio=max_ratio) as c:
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
            if c.seekable and kind is not None:  # a stream's are checked as they come
                problem = reserved_name_problem(kind, members or c.names)
                if problem:
                    raise TqError(problem, out)
            with files.open_output(out, force) as sink:
                if kind is None:
                    written = []
                    for rec, arr in c.stream_items(members, dtype):  # one chunk at a time
                        containers.write_npy(sink.stream, arr)
                        written.append(rec["name"])
                    if not written:
                        raise TqError(f"no member {members[0]!r}")
                else:
                    written = []

                    def items():
                        for rec, arr in _reading(c.stream_items(members, dtype), name):
                            written.append(rec["name"])
                            if progress is not None:
                                progress(len(written), len(members or []) or
                                         c.info["members"])
                            yield rec, arr

                    # by name: HDF5's writer, and a stream's temporary file as well; its
                    # failures name `out`, never the temporary file
                    containers.write_members(sink.writer_path(), kind, c.info, items(), out)
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
    if c.seekable:  # two names one file on macOS and Windows: refused before writing
        problem = portable_names_problem(members or c.names)
        if problem:
            raise TqError(problem, out)
    try:
        tmp = tempfile.mkdtemp(prefix="." + os.path.basename(out) + ".", suffix=".tmp",
                               dir=parent)
        os.chmod(tmp, 0o777 & ~files.current_umask())  # mkdtemp's 0700 -> as mkdir makes it
    except OSError as e:
        raise TqError(f"cannot create output ({e.strerror})", out) from None
    written = []
    try:
        def items():
            for rec, arr in _reading(c.stream_items(members, dtype), name):
                written.append(rec["name"])
                yield rec, arr

        containers.write_directory(tmp, items(), out)
        if members and set(members) - set(written):
            raise TqError(f"no member {sorted(set(members) - set(written))[0]!r}")
        try:
            os.rename(tmp, out)
        except OSError as e:
            raise TqError(f"cannot rename the finished output into place ({e.strerror})",
                          out) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"output": out, "members": written}


def _reading(items, name: str):
    """A collection's (record, array) items, an OSError while reading them (an I/O error
    of the input) naming the input, so that it is never taken for the output's."""
    try:
        yield from items
    except OSError as e:
        raise TqError(f"read failed ({e.strerror or e})", name) from None
