"""The .npy format: the rules tq reads and writes, and the code that implements them.

A .npy file is one array: a header that describes it, then its raw data bytes.

Header, as tq reads it
----------------------
* Bytes 0-5: the magic string ``\\x93NUMPY``.  Anything else is "not a .npy file".
* Byte 6: the major version, byte 7 the minor version.  Majors 1, 2 and 3 are read; the
  minor is not looked at (numpy has only written 0).  The versions differ only in the
  header length field and in the text's encoding:

  ======= ==================================== ===========
  version header length (HEADER_LEN)           text
  ======= ==================================== ===========
  1.x     bytes 8-9, little-endian uint16      latin-1
  2.x     bytes 8-11, little-endian uint32     latin-1
  3.x     bytes 8-11, little-endian uint32     UTF-8
  ======= ==================================== ===========

* Then HEADER_LEN bytes of text: a Python dict literal, padded with spaces and ended by a
  newline.  Its keys are exactly ``descr`` (the dtype as a string, e.g. ``'<f4'``),
  ``fortran_order`` (a bool) and ``shape`` (a tuple of non-negative ints).
* The data follow at offset 10 + HEADER_LEN (version 1) or 12 + HEADER_LEN (2 and 3):
  prod(shape) * itemsize bytes in C order, or Fortran order when ``fortran_order``.

What tq refuses, before it reads a single data byte
---------------------------------------------------
* A header above MAX_NPY_HEADER (64 KiB) bytes: a float array's header is a few hundred
  bytes at most (numpy needs the 32-bit field only for structured dtypes of many fields),
  and a length field must not make tq allocate up to 4 GiB on a file's word.
* A header that is not a literal dict with exactly those three keys.  The text is parsed
  with ast.literal_eval, which evaluates literals only: no name, call or attribute is
  ever looked up, so a header cannot run code.
* A ``descr`` that is not a string (a list describes a structured dtype), an object dtype
  (its data would be pickles, and nothing is ever unpickled), and any dtype other than
  float16, float32 or float64 in either byte order (base.check_dtype).
* A ``fortran_order`` that is not a bool, a ``shape`` that is not a tuple of ints >= 0
  (True and False are ints to Python, and are refused as well).

Header, as tq writes it
-----------------------
Version 1.0, the dict in numpy's own key order and spelling
(``{'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }``), padded with spaces so
that magic + version + length field + text, newline included, is a multiple of 64 bytes
(the data then start aligned for memory mapping).  The data are always little-endian C
order.  numpy reads these headers as its own (np.save may add more padding spaces, which
leaves room for its header to grow; tq's output never grows, so it does not).
"""

from __future__ import annotations

import ast
import struct

import numpy as np

from ..errors import InputError
from .base import check_dtype

NPY_MAGIC = b"\x93NUMPY"
MAX_NPY_HEADER = 1 << 16
HEADER_KEYS = frozenset({"descr", "fortran_order", "shape"})
ALIGNMENT = 64  # the header ends on a multiple of this many bytes

# major version -> (struct format of HEADER_LEN, encoding of the header text)
VERSIONS = {
    1: ("<H", "latin1"),
    2: ("<I", "latin1"),
    3: ("<I", "utf-8"),
}


TQZ_MAGIC = b"\x89TQZ\r\n\x1a\n"  # tqcli.format.container.MAGIC (not imported: keep this light)


def what_it_is(head: bytes, stream: bool) -> str:
    """For a refusal of input that is not an array tq reads: what its first bytes show it
    is, and the next step (empty when they show nothing known).  `stream`: it came on
    stdin or a pipe, which carries only a .npy."""
    if head[:8] == TQZ_MAGIC:
        if len(head) >= 12 and head[11] & 0x80:
            return ("; it is a tq collection (.tqz), already compressed: decode it with "
                    "tq decompress (-o OUT.h5/.safetensors/.npz, or --member NAME -c), "
                    "or look at it with tq inspect")
        return ("; it is a .tqz file, already compressed: decode it with tq decompress, or "
                "give it to tq eval after its source array (tq eval INPUT FILE.tqz)")
    if not stream:
        return ""
    kinds = [(b"\x89HDF", "an HDF5 file"), (b"PK\x03\x04", "a zip archive (.npz)"),
             (b"PK\x05\x06", "a zip archive (.npz)")]
    for magic, kind in kinds:
        if head.startswith(magic):
            return f"; it looks like {kind}, which is read by file name, not from a pipe"
    if len(head) >= 9 and head[8:9] == b"{":
        return ("; it looks like .safetensors, which is read by file name, not from a "
                "pipe")
    return ""


def read_npy_header(read, check: bool = True) -> tuple[np.dtype, bool, tuple[int, ...], int]:
    """Parse a .npy header through read(n) and check it against the rules above.

    Returns (dtype, fortran_order, shape, offset of the first data byte).  Anything tq
    refuses raises InputError with a kind: not-npy, truncated, pickle or dtype.
    """
    pre = read(10)
    if len(pre) < 10 or pre[:6] != NPY_MAGIC:
        if pre[:4] == TQZ_MAGIC[:4] and len(pre) == 10:
            pre += read(6)  # the flags tell a collection from a single array
        raise InputError("not a .npy file (bad magic bytes)" + what_it_is(pre, stream=True),
                         kind="not-npy")
    major = pre[6]
    if major not in VERSIONS:
        raise InputError(f"unsupported .npy format version {major}.{pre[7]}", kind="not-npy")
    length_format, encoding = VERSIONS[major]
    length_field = pre[8:10]
    if struct.calcsize(length_format) == 4:
        more = read(2)
        if len(more) < 2:
            raise InputError("truncated .npy header", kind="truncated")
        length_field += more
    hlen = struct.unpack(length_format, length_field)[0]
    start = 8 + len(length_field)
    if hlen > MAX_NPY_HEADER:
        raise InputError(f".npy header of {hlen} bytes is implausibly large", kind="not-npy")
    raw = read(hlen)
    if len(raw) < hlen:
        raise InputError("truncated .npy header", kind="truncated")
    try:
        meta = ast.literal_eval(raw.decode(encoding))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError):
        raise InputError("malformed .npy header", kind="not-npy") from None
    if not isinstance(meta, dict) or set(meta) != HEADER_KEYS:
        raise InputError("malformed .npy header (unexpected keys)", kind="not-npy")
    descr, fortran, shape = meta["descr"], meta["fortran_order"], meta["shape"]
    if not isinstance(descr, str):
        raise InputError("structured dtype is not supported (need float16, float32 or float64)",
                         kind="dtype")
    if not isinstance(fortran, bool):
        raise InputError("malformed .npy header (fortran_order)", kind="not-npy")
    if (not isinstance(shape, tuple) or
            not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
        raise InputError("malformed .npy header (shape)", kind="not-npy")
    if descr.lstrip("<>|=").startswith("O"):
        raise InputError("object arrays (pickled data) are refused", kind="pickle")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise InputError(f"unknown dtype {descr!r} in .npy header", kind="dtype") from None
    if check:  # check=False: any plain dtype (a collection's lossless member), never objects
        check_dtype(dtype)
    elif dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise InputError(f"dtype {dtype} is not supported", kind="dtype")
    return dtype, fortran, tuple(shape), start + hlen


def npy_header_bytes(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A version 1.0 .npy header for a C-order array, written as the rules above say."""
    dtype = np.dtype(dtype)
    text = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (
        dtype.str, tuple(int(s) for s in shape))
    total = 10 + len(text) + 1  # magic, version, uint16 length, the text and its newline
    text = text + " " * ((-total) % ALIGNMENT) + "\n"
    if len(text) > 0xFFFF:
        raise InputError("array rank too large for a .npy header", kind="shape")
    return NPY_MAGIC + b"\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")
