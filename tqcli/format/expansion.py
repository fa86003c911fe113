"""The expansion limit (spec 13.9): how many decoded bytes a file may declare per byte it
holds, checked per chunk and per file before anything is decoded or written.

A valid file can declare far more than it holds: an entropy-coded stream whose model gives
one symbol 2^16 - 1 of 2^16 frequency units spends 2.2e-5 bits on it, so a 1 MB file can
declare 625 GiB of float64.  Decoding it is not wrong, but nobody who did not ask for it
wants tq to start writing 625 GiB from a download; the limit (limits.DEFAULT_MAX_RATIO,
256) is far above what tq's own coders spend (see limits.py) and is raised with
--max-ratio / max_ratio= for files one trusts.  A refusal is a resource limit like
`memory` (rule `ratio`): the file is valid.

The file check needs the file's length and the chunk lengths (the header for the packed
coding, the index for the entropy coding); a stream has neither, so its reader checks
every chunk when the chunk's length is known and before its payload is read: the output
never outgrows the limit times the bytes that arrived.
"""

from __future__ import annotations

import math

from .. import limits
from ..errors import FormatError

HINT = "raise it with --max-ratio or max_ratio= for a file you trust"


def resolve(max_ratio) -> float:
    """The limit in effect: None is the default; math.inf none."""
    return float(limits.DEFAULT_MAX_RATIO if max_ratio is None else max_ratio)


def decoded_bytes(header, rows: int) -> int:
    """Bytes of `rows` decoded vectors in the source dtype (what decompress writes)."""
    return rows * header.dim * limits.SOURCE_DTYPE_SIZES[header.source_dtype]


def _ratio_text(r: float) -> str:
    return f"{r:,.0f}" if r >= 10 else f"{r:.1f}"


def _refuse(what: str, decoded: int, stored: int, limit: float, chunk=None):
    ratio = decoded / stored if stored else math.inf
    raise FormatError(f"{what}declares {limits.format_size(decoded)} decoded from "
                      f"{limits.format_size(stored)} ({_ratio_text(ratio)} x, above the "
                      f"expansion limit of {_ratio_text(limit)} x: {HINT})", rule="ratio",
                      chunk=chunk)


def check_chunk(header, i: int, stored: int, max_ratio=None) -> None:
    """Chunk i, of `stored` bytes (payload and CRC), within the limit (FormatError, rule
    ratio, if not)."""
    limit = resolve(max_ratio)
    dec = decoded_bytes(header, header.chunk_rows_of(i))
    if dec > limit * stored:
        _refuse(f"chunk {i}: ", dec, stored, limit, chunk=i)


def check_file(header, file_size: int, lengths=None, max_ratio=None) -> None:
    """A file of `file_size` bytes and every chunk within the limit.  lengths: the payload
    length of every chunk (the index's), or None for a fixed layout (from the header)."""
    limit = resolve(max_ratio)
    if math.isinf(limit) or header.n_vectors == 0:
        return
    dec = decoded_bytes(header, header.n_vectors)
    if dec > limit * file_size:
        _refuse("", dec, file_size, limit)
    k = header.n_chunks
    if lengths is None:
        chunks = sorted({0, k - 1})
        lengths = [header.payload_size(header.chunk_rows_of(i)) for i in chunks]
    else:  # the shortest full chunk, and the last one
        full = range(k - 1)
        chunks = ([min(full, key=lengths.__getitem__)] if k > 1 else []) + [k - 1]
        lengths = [lengths[i] for i in chunks]
    for i, n in zip(chunks, lengths):
        check_chunk(header, i, n + 4, limit)
