"""zarr arrays as input (ZarrSource: `tq compress data.zarr/array`) and output (ZarrSink:
`tq decompress x.tqz -o out.zarr`), read and written chunk by chunk.

zarr is the `zarr` extra (pip install "tq[zarr]"); it is imported only when a zarr store
is opened or written, and its absence is a one-line error naming the extra.  A store is a
local folder holding zarr.json (v3) or .zarray/.zgroup (v2); a group that holds one array
may be named instead of the array.  Stores written with tq's own codecs are read, and the
tq codec is written, through zarr's registry, which finds them by the entry points of an
installed tq (this layer never imports the integrations above it).

The sink writes whole zarr chunks only: a partly written chunk would be read back,
merged and encoded again, which with the tq codec would quantise its rows twice.  It
writes into a hidden folder beside the output that is renamed into place when complete,
as files.AtomicOutput does for files; -f replaces an existing zarr store (never another
folder).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from ..errors import InputError, OutputExistsError, TqError
from ..limits import ZARR_CODECS
from .base import SelectionSource, check_dtype, check_shape
from .files import current_umask
from .sinks import cast_pieces

ZARR_MARKERS = ("zarr.json", ".zarray", ".zgroup")


def is_zarr_store(path: str) -> bool:
    """Whether `path` is a folder holding zarr metadata (an array or a group)."""
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, m))
                                       for m in ZARR_MARKERS)


def is_zarr_name(path: str) -> bool:
    """Whether an output name asks for a zarr store (decompress picks the sink by name)."""
    return os.fspath(path).rstrip("/").lower().endswith(".zarr")


def _zarr():
    try:
        import zarr
    except ImportError:
        raise TqError("zarr stores need the zarr extra: pip install 'tq[zarr]'") from None
    return zarr


TQ_CODEC = "tq.turboquant"  # tq's zarr v3 codec, found by its entry point (pyproject.toml)


def _tq_codec(zarr, options: dict):
    """tq's zarr v3 codec with `options`, from zarr's registry: the entry point of an
    installed tq names it, so that I/O never imports the integrations above it."""
    try:
        return zarr.registry.get_codec_class(TQ_CODEC)(**options)
    except KeyError:
        raise TqError(f"zarr does not know the codec {TQ_CODEC!r}: install tq (pip install "
                      f"'.[zarr]'), whose entry point registers it") from None


def _reason(e: Exception) -> str:
    text = (str(e).splitlines() or [""])[0].strip()
    return text or type(e).__name__


class ZarrSource(SelectionSource):
    """One array of a local zarr store (v2 or v3), read a block of rows at a time."""

    def __init__(self, path: str, memory_limit=None, max_ratio=None):
        """memory_limit, max_ratio: what a chunk may inflate to (_check_chunks)."""
        self.name = path
        try:
            zarr = _zarr()
        except TqError as e:
            raise InputError(e.reason) from None
        _check_inside(path)
        try:
            node = zarr.open(store=path, mode="r")
        except Exception as e:  # noqa: BLE001 - zarr's errors for bad metadata vary widely
            raise InputError(f"cannot open as a zarr store ({_reason(e)})") from None
        if isinstance(node, zarr.Group):
            names = sorted(k for k, v in node.arrays())
            if len(names) != 1:
                hint = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
                raise InputError(f"is a zarr group holding {len(names)} arrays; name one as "
                                 f"STORE/ARRAY ({hint})" if names else
                                 "is a zarr group holding no array")
            node = node[names[0]]
        self.array = node
        if _uses_pickle(node.metadata.to_dict()):
            raise InputError("the zarr array uses the pickle codec (decoding it would run code "
                             "from the file); tq does not read pickles", kind="pickle")
        check_dtype(node.dtype)
        check_shape(tuple(node.shape))
        _check_chunks(node, memory_limit, max_ratio)
        self.dtype, self.shape = np.dtype(node.dtype), tuple(int(s) for s in node.shape)

    def _read_whole(self, out):
        out[0] = self.array[...]

    def _read_run(self, out, sel, lo, hi):
        out[lo:hi] = self.array[sel]

    def _read_error(self, e):  # a damaged chunk, a missing codec
        return InputError(f"cannot read the zarr array ({_reason(e)})")


def _check_inside(path: str) -> None:
    """Refuse a store holding a symbolic link (a chunk, metadata, a folder) that leads
    out of it: zarr would follow it, and a small store could make tq read (and put into
    its output) any file the user can read -- refused as HDF5's external storage and
    --directory's links are.  The store itself may be reached through a link."""
    if not os.path.isdir(path):
        return
    top = os.path.realpath(path)
    pending = [path]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError as e:
            raise InputError(f"cannot read the zarr store ({e.strerror})") from None
        for entry in entries:
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if target != top and not target.startswith(top + os.sep):
                    raise InputError(f"{os.path.relpath(entry.path, path)} is a symbolic link "
                                     f"out of the zarr store (tq reads only the store it "
                                     f"is given)")
            elif entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)


def _check_chunks(node, memory_limit=None, max_ratio=None) -> None:
    """zarr decodes a chunk whole (v2 compressors, v3 codecs): a chunk must fit the memory
    budget, and the chunks stored must not inflate to more than the expansion limit times
    the bytes they take (arrayio.inflation), judged from the metadata and the store's
    sizes before any chunk is decoded."""
    from . import inflation

    shape = tuple(int(c) for c in node.chunks)  # a sharded array's inner chunks
    unit = int(np.prod(shape, dtype=object)) * np.dtype(node.dtype).itemsize
    inflation.check_unit("a zarr chunk", unit, memory_limit)
    try:
        count, stored = int(node.nchunks_initialized), int(node.nbytes_stored())
    except Exception:  # noqa: BLE001 - a store that cannot say: the chunk check stands
        return
    inflation.check_ratio(f"its {count} stored zarr chunk{'s' * (count != 1)}",
                          count * unit, stored, max_ratio)


def _uses_pickle(meta) -> bool:
    """Whether array metadata names a codec that unpickles its data (numcodecs' Pickle, as a
    v2 compressor, filter or object codec, or a v3 codec)."""
    if isinstance(meta, dict):
        return any(_uses_pickle(v) or (k in ("id", "name", "object_codec_id")
                                       and isinstance(v, str) and "pickle" in v.lower())
                   for k, v in meta.items())
    if isinstance(meta, (list, tuple)):
        return any(_uses_pickle(v) for v in meta)
    return False


def _not_replaceable(path: str) -> str | None:
    """Why the zarr store at `path` is more than one array that -f may replace: a group
    (its other arrays and groups would go with it), or a file zarr did not write (chunk
    keys are numbers joined by '.' or '/', under c/ in zarr v3's default encoding)."""
    import json

    if os.path.isfile(os.path.join(path, ".zgroup")):
        return "is a zarr group (its arrays would be deleted)"
    meta = os.path.join(path, "zarr.json")
    if os.path.isfile(meta):
        try:
            with open(meta, "rb") as f:
                kind = json.loads(f.read(1 << 20) or b"{}").get("node_type")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind != "array":
            return "is a zarr group (its arrays would be deleted)" if kind == "group" \
                else "holds zarr metadata that is not an array's"
    elif not os.path.isfile(os.path.join(path, ".zarray")):
        return "holds zarr metadata that is not an array's"
    for folder, dirs, names in os.walk(path):
        rel = os.path.relpath(folder, path)
        top = rel == "."
        for n in dirs + names:
            full = os.path.join(folder, n)
            chunk = n.isdigit() or all(p.isdigit() for p in n.split(".")) or (
                top and n == "c" and n in dirs)
            if os.path.islink(full) or not (
                    (top and n in _ZARR_FILES and n in names) or chunk):
                return f"holds {os.path.relpath(full, path)!r}, which zarr did not write " \
                       f"for the array"
    return None


_ZARR_FILES = ("zarr.json", ".zarray", ".zattrs", ".zmetadata")


def _segments(shape: tuple[int, ...], c: int):
    """The zarr chunks of an array chunked (1, ..., 1, c, d), in row order: (selection,
    rows it holds)."""
    if len(shape) == 1:
        yield (slice(None),), 1
        return
    per = shape[-2]
    lead_shape = shape[:-2]
    for prefix in range(int(np.prod(lead_shape, dtype=np.int64)) if lead_shape else 1):
        lead = tuple(int(i) for i in np.unravel_index(prefix, lead_shape)) if lead_shape else ()
        for j in range(0, per, c):
            k = min(c, per - j)
            yield lead + (slice(j, j + k), slice(None)), k


class ZarrSink:
    """A new zarr v3 array (the store's root) of known shape, written block by block.

    codec "plain": zarr's default codecs (bytes, zstd), the decoded values exactly; "tq":
    the tq.turboquant codec with `options` (tqcli.compress's), chunks of `chunk_rows`
    rows.  commit() renames the finished store into place; close() without it discards it.
    """

    def __init__(self, path: str, shape, dtype, *, codec: str = "plain", options=None,
                 chunk_rows: int = 4096, force: bool = False, name: str | None = None):
        self.path = os.fspath(path).rstrip("/") or os.fspath(path)
        self.name = name or self.path
        try:
            zarr = _zarr()
        except TqError as e:
            raise e.with_source(self.name)
        self.force = force
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        if codec not in ZARR_CODECS:
            raise TqError(f"unknown zarr codec {codec!r} (known: {', '.join(ZARR_CODECS)})",
                          self.name)
        self._check_target()
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise TqError("output folder does not exist", self.name)
        try:
            self.tmp = tempfile.mkdtemp(prefix="." + os.path.basename(self.path) + ".",
                                        suffix=".tmp", dir=folder)
            os.chmod(self.tmp, 0o777 & ~current_umask())  # not mkdtemp's 0700
        except OSError as e:
            raise TqError(f"cannot create output ({e.strerror})", self.name) from None
        d = self.shape[-1]
        c = max(1, min(self.shape[-2], chunk_rows)) if len(self.shape) > 1 else 1
        chunks = (1,) * (len(self.shape) - 2) + (c, d) if len(self.shape) > 1 else (d,)
        kw = {}
        if codec == "tq":
            kw = dict(serializer=_tq_codec(zarr, options or {}), compressors=None)
        try:
            self.array = zarr.create_array(store=self.tmp, shape=self.shape, chunks=chunks,
                                           dtype=self.dtype, **kw)
        except Exception as e:  # noqa: BLE001
            self._discard()
            raise TqError(f"cannot create the zarr array ({_reason(e)})", self.name) from None
        self.segments = _segments(self.shape, c)
        self.band = np.empty((c, d), self.dtype)
        self._next()

    def _check_target(self) -> None:
        p = self.path
        if not os.path.lexists(p):
            return
        if not self.force:
            raise OutputExistsError(self.name)
        if os.path.isdir(p) and not os.path.islink(p) and not is_zarr_store(p) \
                and os.listdir(p):
            raise TqError("is a folder that is not a zarr store; refusing to replace it",
                          self.name)
        if os.path.isdir(p) and not os.path.islink(p) and is_zarr_store(p):
            problem = _not_replaceable(p)
            if problem:
                raise TqError(f"{problem}; -f replaces only a zarr array, as tq writes one "
                              f"(remove it yourself, or write to another name)", self.name)

    def _next(self) -> None:
        self.sel, self.need = next(self.segments, (None, 0))
        self.have = 0

    def write(self, block: np.ndarray) -> None:
        for _, piece in cast_pieces(block, self.dtype):
            self._write_cast(piece)

    def _write_cast(self, block: np.ndarray) -> None:
        pos = 0
        while pos < block.shape[0]:
            if self.sel is None:
                raise TqError("more rows than the array holds", self.name)
            take = min(self.need - self.have, block.shape[0] - pos)
            self.band[self.have:self.have + take] = block[pos:pos + take]
            self.have += take
            pos += take
            if self.have == self.need:
                rows = self.band[:self.need]
                try:
                    self.array[self.sel] = rows[0] if len(self.shape) == 1 else rows
                except TqError:
                    raise
                except OSError as e:
                    raise TqError(f"write failed ({e.strerror or e})", self.name) from None
                except Exception as e:  # noqa: BLE001
                    raise TqError(f"write failed ({_reason(e)})", self.name) from None
                self._next()

    def commit(self) -> None:
        if self.sel is not None and self.shape and all(self.shape):
            raise TqError("fewer rows than the array holds", self.name)
        self._check_target()
        old = None
        try:
            if os.path.lexists(self.path):
                old = tempfile.mkdtemp(prefix="." + os.path.basename(self.path) + ".",
                                       suffix=".old.tmp",
                                       dir=os.path.dirname(os.path.abspath(self.path)))
                os.rmdir(old)
                os.rename(self.path, old)
            os.rename(self.tmp, self.path)
        except OSError as e:
            if old is not None and not os.path.lexists(self.path):
                os.rename(old, self.path)  # put the old store back
                old = None
            raise TqError(f"cannot rename the finished output into place ({e.strerror})",
                          self.name) from None
        self.tmp = None
        if old is not None:
            if os.path.isdir(old) and not os.path.islink(old):
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.unlink(old)

    def _discard(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def close(self) -> None:
        self._discard()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
