"""Collections in the library: compress named arrays into one .tqz, read them back.

compress_collection(members, out, ...) writes the collection layout (tqcli/collection.py):
floating-point members are compressed, each into a single-array .tqz of its own (so every
option of compress_to applies per member), and everything else -- integer ids, positions,
masks, members matched by `lossless` patterns, arrays too small to gain -- is stored raw.
Bits are chosen per member: `bits` for all, then `bits_for` patterns in order (shell-style,
fnmatch, on the member name; the last match wins).  `vector_size` D cuts the last axis of
every compressed member into vectors of D values (a [2, tokens, heads * head_dim] tensor
quantised per head); the record keeps the original shape.

open_collection(src) reads one: `.names`, `.members` (the table of contents), `.read(name)`
for one member -- reading only its bytes -- and `.items()` for all, in order (also from a
pipe).
"""

from __future__ import annotations

import fnmatch
import io
import os
import stat
import tempfile
from dataclasses import dataclass, field

import numpy as np

from . import arrayio, collection
from .collection import CollectionWriter, stored_shape
from .container import CRC
from .errors import FormatError, InputError, TqError
from .layouts import OpenContainer
from .tqfile import TqFile

COPY_PIECE = 1 << 22
MIN_VALUES = 256  # fewer float values than this are stored raw


@dataclass
class MemberInput:
    """One member to write: `array` (in memory) or `open` (a callable returning an
    arrayio.ArraySource, for a float member read block by block)."""

    name: str
    shape: tuple
    dtype: np.dtype
    attrs: dict = field(default_factory=dict)
    array: np.ndarray | None = None
    open: object = None

    def values(self) -> np.ndarray:
        if self.array is not None:
            return np.asarray(self.array)
        with self.open() as src:
            return src.read_all() if hasattr(src, "read_all") else np.concatenate(
                list(src.blocks(1 << 16)) or [np.zeros((0, src.dim), src.dtype)]
            ).reshape(src.shape)

    def source(self):
        if self.array is not None:
            return arrayio.from_array(self.array, self.name)
        return self.open()


def as_members(arrays) -> list[MemberInput]:
    """A dict of name -> array (or a list of MemberInput) as MemberInputs."""
    if isinstance(arrays, dict):
        out = []
        for name, a in arrays.items():
            a = np.asarray(a)
            out.append(MemberInput(name, a.shape, a.dtype, array=a))
        return out
    return list(arrays)


def parse_bits_for(items) -> list[tuple[str, float]]:
    """['*key*=8', ...] (or (pattern, bits) pairs) -> [(pattern, bits)], checked; bits are
    integers, or fractional rates for the entropy coding ('*value*=2.5')."""
    out = []
    for item in items or ():
        if isinstance(item, str):
            pattern, sep, b = item.rpartition("=")
            if not sep or not pattern:
                raise ValueError(f"expected PATTERN=BITS, got {item!r}")
            try:
                b = float(b)
            except ValueError:
                raise ValueError(f"expected PATTERN=BITS with a number of bits, got {item!r}") \
                    from None
        else:
            pattern, b = item
        if not 1 <= b <= 8:
            raise ValueError(f"bits for {pattern!r} must be 1..8, got {b:g}")
        out.append((pattern, int(b) if float(b).is_integer() else float(b)))
    return out


def unmatched_patterns(names, bits_for, lossless) -> list[str]:
    """The --bits-for and --lossless patterns that match none of `names` (a typo such as
    '*kye*=8' would otherwise leave every key at the default width), each as the option
    the user wrote: "--bits-for '*kye*=8'"."""
    def hits(p):
        return any(fnmatch.fnmatchcase(n, p) for n in names)

    out = [f"--bits-for '{p}={b:g}'" for p, b in parse_bits_for(bits_for) if not hits(p)]
    return out + [f"--lossless '{p}'" for p in lossless or () if not hits(p)]


def check_patterns(names, bits_for, lossless, strict: bool = False, warn=None) -> None:
    """Patterns that match no member: an InputError (kind "unmatched-pattern") when
    `strict`, else one warning each through warn(text) (default: warnings.warn)."""
    missing = unmatched_patterns(names, bits_for, lossless)
    if not missing:
        return
    shown = ", ".join(names[:4]) + (" ..." if len(names) > 4 else "")
    text = (f"{missing[0]} matches no member (members: {shown})" if len(missing) == 1 else
            f"{', '.join(missing)} match no member (members: {shown})")
    if strict:
        raise InputError(text + "; nothing written (--strict)", kind="unmatched-pattern")
    if warn is None:
        import warnings

        warnings.warn(text, UserWarning, stacklevel=3)
    else:
        warn(text)


def member_plan(m: MemberInput, bits: int, bits_for, lossless, vector_size, mode: str):
    """("raw", None, None) or ("tqz", bits, vector) for a member, with the reason rules."""
    name = collection.dtype_name(m.dtype)
    if name is None:
        raise InputError(f"member {m.name!r}: dtype {np.dtype(m.dtype)} cannot be stored",
                         kind="dtype")
    if name not in collection.LOSSY_DTYPES or any(
            fnmatch.fnmatchcase(m.name, p) for p in lossless or ()):
        return "raw", None, None
    b = bits
    for pattern, pb in bits_for or ():
        if fnmatch.fnmatchcase(m.name, pattern):
            b = pb
    shape = tuple(m.shape)
    if not shape or int(np.prod(shape, dtype=object)) < MIN_VALUES:
        return "raw", None, None  # a header and codebook would outweigh the values
    d = shape[-1]
    if vector_size:
        if d % vector_size:
            raise InputError(f"member {m.name!r}: --vector-size {vector_size} does not "
                             f"divide its last axis ({d})")
        d = vector_size
    if d < 2 or d > (4096 if mode == "prod" else 1 << 20):
        return "raw", None, None
    return "tqz", b, d


class _Reblocked(arrayio.ArraySource):
    """A source whose last axis is cut into vectors of `d` values, in blocks of exactly
    the rows asked for (the encoder's chunks start on block boundaries)."""

    def __init__(self, inner, d: int):
        self.inner, self.name, self.dtype = inner, inner.name, inner.dtype
        self.shape = tuple(inner.shape[:-1]) + (inner.shape[-1] // d, d) \
            if d != inner.shape[-1] else tuple(inner.shape)
        self.per = inner.shape[-1] // d

    @property
    def rereadable(self) -> bool:
        return self.inner.rereadable

    def blocks(self, rows: int):
        d, pending, have = self.dim, [], 0
        for block in self.inner.blocks(max(1, rows // self.per)):
            block = block.reshape(-1, d)
            pending.append(block)
            have += block.shape[0]
            while have >= rows:
                joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
                yield joined[:rows]
                rest = joined[rows:]
                pending, have = ([rest] if rest.shape[0] else []), rest.shape[0]
        if have:
            yield np.concatenate(pending)


def compress_collection(members, out, *, info: dict | None = None, bits: int = 4,
                        bits_for=(), lossless=(), vector_size: int | None = None,
                        progress=None, strict: bool = False, warn=None,
                        **options) -> list[dict]:
    """Write `members` (a dict name -> array, or MemberInputs) as a collection to the binary
    stream `out`; returns the table of contents.  info: "source" (hdf5, safetensors, npz,
    arrays), "groups" (group name -> attrs) and "metadata" (str -> str) of the source.
    A bits_for or lossless pattern that matches no member is a warning (warn(text), by
    default warnings.warn), or with `strict` an InputError before anything is written.
    options: EncodeOptions' fields but bits (mode, seed, center, ...), checked once here and
    given to compress_to for every compressed member with its width."""
    from .api import compress_to
    from .options import EncodeOptions

    base = EncodeOptions(**options)  # TypeError for a keyword that is not an option

    members = as_members(members)
    names = [m.name for m in members]
    for n in names:
        problem = collection.name_problem(n)
        if problem:
            raise InputError(problem)
    problem = collection.names_problem(names)
    if problem:
        raise InputError(problem)
    bits_for = parse_bits_for(bits_for)
    check_patterns(names, bits_for, lossless, strict, warn)
    info = dict(info or {})
    info.setdefault("source", "arrays")
    info["members"] = len(members)
    writer = CollectionWriter(out, info)
    mode = base.mode
    for i, m in enumerate(members):
        kind, b, d = member_plan(m, bits, bits_for, lossless, vector_size, mode)
        rec = dict(name=m.name, shape=[int(s) for s in m.shape],
                   dtype=collection.dtype_name(m.dtype), attrs=_jsonable(m.attrs, m.name))
        if kind == "tqz":
            with tempfile.TemporaryFile() as tmp, m.source() as src:
                try:
                    h = compress_to(_Reblocked(src, d), tmp, base.replace(bits=b))
                except TqError as e:
                    raise TqError(f"member {m.name!r}: {e.reason}") from None
                length = tmp.tell()
                raw_size = int(np.prod(m.shape, dtype=object)) * np.dtype(m.dtype).itemsize
                if length < raw_size + CRC.size:
                    writer.begin(dict(rec, kind="tqz", length=length, vector=d, bits=h.bits))
                    tmp.seek(0)
                    while True:
                        piece = tmp.read(COPY_PIECE)
                        if not piece:
                            break
                        writer.write_data(piece)
                    kind = None
            if kind is None:
                if progress is not None:
                    progress(i + 1, len(members))
                continue
        values = m.values()
        if collection.dtype_name(values.dtype) == "bfloat16":
            values = values.view("<u2")
        elif values.dtype.kind in "iuf" and not values.dtype.isnative or \
                values.dtype.byteorder == ">":
            values = values.astype(values.dtype.newbyteorder("<"))
        writer.add_raw(dict(rec, kind="raw"), np.ascontiguousarray(values))
        if progress is not None:
            progress(i + 1, len(members))
    writer.finish()
    return writer.toc


def _jsonable(attrs, name: str) -> dict:
    try:
        collection.dump_json(attrs)
    except (TypeError, ValueError) as e:
        raise InputError(f"member {name!r}: attributes are not JSON ({e})") from None
    return attrs


# ---------------------------------------------------------------------- reading


class CollectionFile(OpenContainer):
    """An open collection (bytes, a path or a binary stream).  Seekable: `members` is the
    table of contents and read(name) reads only that member's bytes.  A pipe: items()
    once, in order."""

    def __init__(self, src, memory_limit: int | None = None, reader=None, own=None):
        self.memory_limit = memory_limit
        self._codings = {}  # member name -> member_coding() of an entropy-coded member
        super().__init__(src, reader, own)

    def _note(self, name: str, f: TqFile) -> None:
        if f.header.coding == "entropy":
            self._codings[name] = member_coding(f.header, f.payload_bytes)

    @property
    def codings(self) -> dict:
        """name -> member_coding() of the entropy-coded members opened or read so far."""
        return dict(self._codings)

    def coding(self, name: str) -> dict | None:
        """member_coding() of an entropy-coded compressed member (None for a fixed-length
        or lossless one): its achieved bits per coordinate, which the header's `bits`
        (and the record's) is not."""
        rec = self._entry(name)
        if rec["kind"] != "tqz":
            return None
        if name not in self._codings and self.seekable:
            self.open_member(name).close()
        return self._codings.get(name)

    def _check(self) -> None:
        if getattr(self._reader, "layout", "array") != "collection":
            raise TqError("is a single-array .tqz, not a collection")

    @property
    def info(self) -> dict:
        return self._reader.info

    @property
    def members(self) -> list[dict]:
        if not self.seekable:
            raise TqError("a stream's table of contents is at its end; use items()")
        return self._reader.members

    @property
    def names(self) -> list[str]:
        return [e["name"] for e in self.members]

    def _decode(self, rec: dict, window, dtype=None, progress=None):
        name = rec["name"]
        try:
            if rec["kind"] == "raw":
                return collection.read_raw(window, rec, name)
            with TqFile(window, self.memory_limit) as f:
                _check_member_header(f.header, rec)
                out = f.read(dtype=dtype).reshape(rec["shape"])
                self._note(name, f)
            if not self.seekable:
                window.skip_rest()
            return out
        except TqError as e:
            e.reason = f"member {name!r}: {e.reason}"
            raise

    def open_member(self, name: str) -> TqFile:
        """The TqFile of a compressed member (select=, iter_blocks, ... as for any file)."""
        rec = self._entry(name)
        if rec["kind"] != "tqz":
            raise TqError(f"member {name!r} is stored losslessly (use read)")
        f = TqFile(self._reader.open_member(rec), self.memory_limit)
        _check_member_header(f.header, rec)
        self._note(name, f)
        return f

    def _entry(self, name: str) -> dict:
        try:
            return self._reader.entry(name)
        except KeyError:
            raise TqError(f"no member {name!r} (members: "
                          f"{', '.join(self.names[:6])}{' ...' if len(self.names) > 6 else ''})"
                          ) from None

    def read(self, name: str, dtype: str | None = None) -> np.ndarray:
        """One member, in its original shape and dtype (or `dtype` for a compressed one)."""
        rec = self._entry(name)
        return self._decode(rec, self._reader.open_member(rec), dtype)

    def items(self, names=None, dtype: str | None = None):
        """(record, array) of every member in file order (only `names`, if given); a
        stream is read to its end, so that its table of contents is checked."""
        wanted = None if names is None else set(names)
        if self.seekable:
            for rec in self.members:
                if wanted is None or rec["name"] in wanted:
                    yield rec, self._decode(rec, self._reader.open_member(rec), dtype)
            return
        while True:
            nxt = self._reader.next_member()
            if nxt is None:
                return
            rec, window = nxt
            if wanted is None or rec["name"] in wanted:
                yield rec, self._decode(rec, window, dtype)
            else:
                window.skip_rest()

    def verify(self) -> list[dict]:
        """Read every member (checksums, every rule); returns the records."""
        recs = []
        for rec, _ in self.items():
            recs.append(rec)
        return recs

    def report(self, verify: bool = False) -> dict:
        """The inspect report: every member's name, shape, dtype, bits or lossless, bytes,
        ratio; and the total."""
        if verify or not self.seekable:
            recs = []
            for rec, _ in self.items():
                recs.append(rec)
        else:
            recs = self.members
            for rec in recs:  # each member's header, checked against its record
                if rec["kind"] == "tqz":
                    self.open_member(rec["name"]).close()
        rows, total_raw, total = [], 0, 0
        for rec in recs:
            n = 1
            for s in rec["shape"]:
                n *= s
            raw = n * collection.itemsize(rec["dtype"])
            total_raw += raw
            total += rec["length"]
            rows.append({"name": rec["name"], "shape": rec["shape"], "dtype": rec["dtype"],
                         "kind": rec["kind"], "bits": rec.get("bits"),
                         "vector": rec.get("vector"), "bytes": rec["length"],
                         "original_bytes": raw,
                         "ratio": raw / rec["length"] if rec["length"] else None,
                         "attrs": rec.get("attrs", {})})
            if rec["name"] in self._codings:  # only then: a fixed member's record is as before
                rows[-1]["coding"] = self._codings[rec["name"]]
        size = self._reader.size
        out = {"format": "tqz", "version": 1, "layout": "collection",
               "source": self.info.get("source", "arrays"), "members": rows,
               "member_count": len(rows), "original_bytes": total_raw,
               "member_bytes": total, "file_bytes": size,
               "ratio_vs_original": total_raw / size if size else None}
        if self.info.get("metadata") is not None:
            out["metadata"] = self.info["metadata"]
        if verify:
            out["verified"] = True
        return out



def member_coding(h, payload_bytes: int) -> dict:
    """The "coding" of an entropy-coded member in inspect's JSON: the name, the bits per
    coordinate achieved (payload less the scales, over n d coordinates, as inspect reports
    for a single file) and the model's rate and step."""
    n, d = h.n_vectors, h.dim
    achieved = (payload_bytes - n * h.scale_size) * 8 / (n * d) if n else 0.0
    return {"name": "entropy", "achieved_bits": achieved, "model_bits": h.model.rate,
            "step": h.model.step}


def _check_member_header(h, rec: dict) -> None:
    if tuple(h.shape) != stored_shape(rec) or h.source_dtype != rec["dtype"] or \
            h.bits != rec["bits"]:
        raise FormatError(f"its header ({h.shape} {h.source_dtype}, {h.bits} bits) differs "
                          f"from its record", rule="member-header")


def open_collection(src, memory_limit: int | None = None) -> CollectionFile:
    """Open a collection given as bytes, a path or a binary stream."""
    return CollectionFile(src, memory_limit)


__all__ = ["compress_collection", "open_collection", "CollectionFile", "MemberInput",
           "parse_bits_for", "member_plan", "unmatched_patterns"]


# ---------------------------------------------------------------------- files by name

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
    from . import files
    from .api import _is_path, _same_file
    from .arrayio import containers

    name = os.fspath(input)
    info, mems = containers.read_members(name, group)
    if _is_path(output) and _same_file(name, output):
        raise TqError("output would overwrite the input", os.fspath(output))
    if _is_path(output):
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
    from . import files
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
    from . import files
    from .api import _is_path, _same_file
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
            if _is_path(out) and _same_file(name, out):
                raise TqError("output would overwrite the input", out)
            if kind == "hdf5" and not _is_path(out):
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
    import sys

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
