"""tq: TurboQuant compression for embedding matrices and KV-cache dumps.

    import tqcli
    blob = tqcli.compress(x, bits=4)          # .tqz bytes
    y = tqcli.decompress(blob)                # same shape, original dtype
    hdr = tqcli.read_header(blob)             # dimension, bits, seed, codebook, ...

    with tqcli.open("big.tqz") as f:          # streaming: one chunk in memory at a time
        for block in f.iter_blocks(slice(0, 10_000)):
            ...
    tqcli.compress_to(source, stream, bits=3)          # an array or arrayio source
    tqcli.compress_file("x.npy", "x.tqz")              # atomic, like `tq compress`
    tqcli.decompress_file("x.tqz", "y.h5", rows=(0, 100))

    with tqcli.open("db.tqz") as f:            # search: the exact top-k of the decoded rows
        ids, scores = f.search(queries, k=10, metric="ip")
    index = tqcli.load_index("db.tqz")         # codes in memory, for repeated queries

    basis = tqcli.fit_basis(shard0)            # the adaptive coding's basis (spec 21),
    for shard in shards:                       # fitted once and shared by many files
        tqcli.compress(shard, bits=3, adapt=basis)   # (each stores it)

The heavy modules (numpy kernels, numba, scipy) load on first use, so importing the
package and running `tq --help` stay fast.
"""

from .version import __version__  # noqa: F401

_API = {"compress", "compress_to", "decompress", "read_header", "evaluate_file",
        "set_threads", "Decompressed"}
_COLLECTIONS = {"compress_collection"}
_COLLECTION_FILE = {"open_collection"}
_FILEIO = {"compress_file", "decompress_file", "compress_collection_file",
           "decompress_collection_file", "inspect"}  # files by name: the per-file policy
_TQFILE = {"open", "TqFile"}
_SEARCH = {"load_index", "Index"}
_ADAPTIVE = {"fit_basis", "Basis"}
_ERRORS = {"TqError", "FormatError", "InputError", "ScaleRangeError"}


def __getattr__(name):
    if name in _API:
        from .library import api

        return getattr(api, name)
    if name in _COLLECTIONS:
        from .library import collections

        return getattr(collections, name)
    if name in _COLLECTION_FILE:
        from .library import collection_file

        return getattr(collection_file, name)
    if name in _FILEIO:
        from . import fileio

        return getattr(fileio, name)
    if name in _TQFILE:
        from .library import tqfile

        return getattr(tqfile, name)
    if name in _SEARCH:
        from .library import search_index

        return getattr(search_index, name)
    if name in _ADAPTIVE:
        from .codec import adaptive_model

        return getattr(adaptive_model, name)
    if name in _ERRORS:
        from . import errors

        return getattr(errors, name)
    if name == "Header":
        from .format.header import Header

        return Header
    raise AttributeError(f"module 'tqcli' has no attribute {name!r}")


__all__ = sorted(_API | _COLLECTIONS | _COLLECTION_FILE | _FILEIO | _TQFILE | _SEARCH
                 | _ADAPTIVE | _ERRORS
                 | {"Header", "__version__"})


def __dir__():
    """The lazy names too (a REPL's completion and dir(tqcli) list them), without
    importing anything."""
    return sorted(set(globals()) | set(__all__))
