"""`tq search` on files by name: the database (a .tqz, a collection's member, '-'), the
queries (.npy, FILE.h5:/path, '-'), an allow-list file, and the hits written atomically
(.npz with ids and scores, .npy with the ids) -- the per-file policy of search.

Every refusal names its file: a query file of the wrong dimension or with NaN, an
allow-list id out of range, a corrupt chunk of the database (which is read chunk by
chunk, so the error may come after other chunks were scored: nothing is written then).
"""

from __future__ import annotations

import io
import os

import numpy as np

from .. import arrayio
from ..arrayio import files
from ..errors import InputError, TqError
from ..library.collection_file import CollectionFile
from ..library.tqfile import CollectionError
from .probe import is_path, refuse_same_file
from .reading import open_named

HIT_EXTENSIONS = (".npz", ".npy")


def load_queries(spec: str) -> tuple[np.ndarray, bool]:
    """The query rows of a .npy, FILE.h5:/path or zarr array, or '-' (a .npy on stdin), as
    their own dtype, and whether the array was one 1-D vector."""
    with arrayio.open_input(spec) as src:
        single = len(src.shape) == 1
        parts = [np.array(b, copy=True) for b in src.blocks(max(1, (8 << 20) // (
            4 * max(src.dim, 1))))]
    q = np.concatenate(parts) if parts else np.empty((0, src.dim), src.dtype)
    return q, single


def load_ids(path: str) -> np.ndarray:
    """An allow-list: a .npy of integers, or text with one integer per line."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
            f.seek(0)
            if head == b"\x93NUMPY":
                a = np.load(f, allow_pickle=False)
            else:
                text = f.read().decode("utf-8", "strict")
                a = np.array([int(t) for t in text.split()], np.int64)
    except FileNotFoundError:
        raise InputError("no such file", path) from None
    except IsADirectoryError:
        raise InputError("is a directory", path) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"not an allow-list (a .npy of integers, or one integer per "
                         f"line): {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                         path) from None
    if a.dtype.kind not in "iu" and a.size:
        raise InputError(f"allow-list ids must be integers, not {a.dtype}", path)
    return a.reshape(-1)


def check_hits_output(output) -> None:
    if output is None or not is_path(output) or output == "-":
        return
    if not str(output).lower().endswith(HIT_EXTENSIONS):
        raise TqError("hits are written as .npz (ids and scores) or .npy (ids)", output,
                      kind="usage")


def write_hits(output, ids: np.ndarray, scores: np.ndarray, force: bool = False) -> None:
    """ids and scores (float32) as .npz, or the ids alone as .npy, atomically."""
    npz = str(output).lower().endswith(".npz")
    buf = io.BytesIO()
    if npz:  # np.savez would stamp each member with the time: the same hits, other bytes
        import zipfile

        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            for name, a in (("ids", ids.astype(np.int64)),
                            ("scores", scores.astype(np.float32))):
                member = io.BytesIO()
                np.save(member, a)
                z.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)),
                           member.getvalue())
    else:
        np.save(buf, ids.astype(np.int64))
    with files.open_output(output, force) as sink:
        sink.stream.write(buf.getvalue())
        sink.commit()


def search_file(db, queries, *, k: int = 10, metric: str = "ip", rows=None,
                ids=None, member: str | None = None, rerank=None,
                candidates: int | None = None, output=None, force: bool = False,
                memory_limit: int | None = None, threads: int | None = None,
                progress=None) -> dict:
    """Search the file `db` for `queries` (a name as above or an array); `ids` an
    allow-list (a file name or integers); `rerank` the original floats (a name or an
    array).  Writes `output` when given.  Returns {"ids", "scores", "k", "asked",
    "vectors", "single"} (k: the hits per query, fewer than asked when fewer rows may be
    hits)."""
    name = os.fspath(db) if isinstance(db, (str, os.PathLike)) else None
    check_hits_output(output)
    if output is not None and name is not None:
        refuse_same_file(name, output)
    if isinstance(queries, (str, os.PathLike)):
        qname = os.fspath(queries)
        if qname == "-" and name == "-":
            raise TqError("stdin ('-') can be read only once", kind="usage")
        q, single = load_queries(qname)
    else:
        qname, q, single = None, np.asarray(queries), np.ndim(queries) == 1
    allow = load_ids(os.fspath(ids)) if isinstance(ids, (str, os.PathLike)) else ids
    f, coll = _open_db(db, name, member, memory_limit)
    try:
        with f:
            n = f.header.n_vectors
            try:
                got_ids, got_scores = f.search(
                    q, k, metric=metric, rows=rows, ids=allow, rerank=rerank,
                    candidates=candidates, threads=threads, memory_limit=memory_limit,
                    progress=progress)
            except InputError as e:
                raise e.with_source(_culprit(e, qname, ids, rerank, name))
    except TqError as e:
        raise e.with_source(name)
    finally:
        if coll is not None:
            coll.close()
    got_ids, got_scores = np.atleast_2d(got_ids), np.atleast_2d(got_scores)
    if output is not None:
        write_hits(output, got_ids, got_scores, force)
    return {"ids": got_ids, "scores": got_scores, "k": int(got_ids.shape[1]),
            "asked": int(k), "vectors": int(n), "single": bool(single)}


def _culprit(e: InputError, qname, ids, rerank, name):
    """Which file an InputError of the search concerns, by what it says."""
    text = e.reason
    if "allow-list" in text and isinstance(ids, (str, os.PathLike)):
        return os.fspath(ids)
    if "re-rank" in text and isinstance(rerank, (str, os.PathLike)):
        return os.fspath(rerank)
    if "quer" in text and qname is not None:
        return qname
    return name


def _open_db(db, name, member, memory_limit):
    """The TqFile to search, and the collection holding it (to close after) if any."""
    if member is None:
        try:
            return open_named(db, refuse_directory=True, memory_limit=memory_limit)[0], None
        except CollectionError as e:
            e.reader.close() if hasattr(e.reader, "close") else None
            raise e.with_source(name)
    src = db
    if name is not None:
        if name == "-":
            raise TqError("--member needs a collection file, not stdin", "-", kind="usage")
        if not os.path.exists(name):
            raise TqError("no such file", name)
    try:
        coll = CollectionFile(src, memory_limit)
    except TqError as e:
        raise e.with_source(name)
    try:
        return coll.open_member(member), coll
    except (TqError, KeyError) as e:
        coll.close()
        reason = e.reason if isinstance(e, TqError) else f"no member {member!r}"
        raise TqError(reason, name) from None
