"""Collections in the library: compress named arrays into one .tqz, read them back.

compress_collection(members, out, ...) writes the collection layout (tqcli/format/collection.py):
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
import tempfile

import numpy as np

from .. import arrayio
from ..arrayio.members import MemberInput, le_bytes
from ..errors import InputError, TqError
from ..format import collection
from ..format.collection import CollectionWriter
from ..format.header import CRC, crc32

COPY_PIECE = 1 << 22
MIN_VALUES = 256  # fewer float values than this are stored raw


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

    @property
    def chunk_bytes(self) -> int:
        return getattr(self.inner, "chunk_bytes", 0)

    def check_unchanged(self) -> None:
        self.inner.check_unchanged()

    def blocks(self, rows: int):
        # no reference to a block outlives its use here: while the next one is read or
        # encoded, the one before it is gone (the encoder's count holds two at most)
        d, pending, have = self.dim, [], 0
        for block in self.inner.blocks(max(1, rows // self.per)):
            pending.append(block.reshape(-1, d))
            have += pending[-1].shape[0]
            del block
            while have >= rows:
                joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
                out, rest = joined[:rows], joined[rows:]
                pending, have = ([rest] if rest.shape[0] else []), rest.shape[0]
                del joined, rest
                yield out
                del out
        if have:
            yield np.concatenate(pending)


def compress_collection(members, out, *, info: dict | None = None, bits: int = 4,
                        bits_for=(), lossless=(), vector_size: int | None = None,
                        progress=None, strict: bool = False, warn=None,
                        memory_limit: int | None = None, **options) -> list[dict]:
    """Write `members` (a dict name -> array, or MemberInputs) as a collection to the binary
    stream `out`; returns the table of contents.  info: "source" (hdf5, safetensors, npz,
    arrays), "groups" (group name -> attrs) and "metadata" (str -> str) of the source.
    A bits_for or lossless pattern that matches no member is a warning (warn(text), by
    default warnings.warn), or with `strict` an InputError before anything is written.
    options: EncodeOptions' fields but bits (mode, seed, center, ...), checked once here and
    given to compress_to for every compressed member with its width (and memory_limit, the
    encoder's budget, applied to each)."""
    from ..codec.options import EncodeOptions
    from .api import compress_to

    base = EncodeOptions(**options)  # TypeError for a keyword that is not an option

    members = as_members(members)
    names = [m.name for m in members]
    info = dict(info or {})
    problem = collection.members_problem(info, [(m.name, m.attrs) for m in members])
    if problem:
        raise InputError(problem)
    bits_for = parse_bits_for(bits_for)
    check_patterns(names, bits_for, lossless, strict, warn)
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
                    h = compress_to(_Reblocked(src, d), tmp, base.replace(bits=b),
                                    memory_limit=memory_limit)
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
        _add_raw(writer, dict(rec, kind="raw"), m)
        if progress is not None:
            progress(i + 1, len(members))
    writer.finish()
    return writer.toc


def _add_raw(writer: CollectionWriter, rec: dict, m: MemberInput) -> None:
    """A member stored as it is (little-endian, bfloat16 as its 16-bit patterns), written
    piece by piece as its reader gives it: a member of any size costs one piece."""
    size = 1
    for s in m.shape:
        size *= int(s)
    length = size * np.dtype(m.dtype).itemsize
    writer.begin(dict(rec, length=length + CRC.size))
    crc, done = 0, 0
    for piece in m.flat_values():
        raw = le_bytes(piece)
        done += raw.nbytes
        if done > length:
            break
        crc = crc32(raw, crc)
        writer.write_data(raw)
        del piece, raw  # not held while the next piece is read
    if done != length:
        raise InputError(f"member {m.name!r}: its values are not the {length} bytes its "
                         f"shape and dtype say (the input changed while it was read)")
    writer.write_data(CRC.pack(crc))


def _jsonable(attrs, name: str) -> dict:
    try:
        collection.dump_json(attrs)
    except (TypeError, ValueError) as e:
        raise InputError(f"member {name!r}: attributes are not JSON ({e})") from None
    return attrs


__all__ = ["compress_collection", "MemberInput", "parse_bits_for", "member_plan",
           "unmatched_patterns"]  # opened collections: tqcli.library.collection_file
