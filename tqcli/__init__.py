"""tq: TurboQuant compression for embedding matrices and KV-cache dumps.

    import tqcli
    blob = tqcli.compress(x, bits=4)          # .tqz bytes
    y = tqcli.decompress(blob)                # same shape, original dtype
    hdr = tqcli.read_header(blob)             # dimension, bits, seed, codebook, ...

The heavy modules (numpy kernels, numba, scipy) load on first use, so importing the
package and running `tq --help` stay fast.
"""

__version__ = "1.0.0"

_API = {"compress", "compress_source", "decompress", "iter_decoded", "read_header",
        "open_container", "parse_rows", "set_threads"}


def __getattr__(name):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name in ("TqError", "FormatError", "InputError"):
        from . import errors

        return getattr(errors, name)
    if name == "Header":
        from .container import Header

        return Header
    raise AttributeError(f"module 'tqcli' has no attribute {name!r}")


__all__ = sorted(_API | {"TqError", "FormatError", "InputError", "Header", "__version__"})
