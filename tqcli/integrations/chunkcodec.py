"""One array chunk as one .tqz stream: the core that the zarr v3 codec (zarr_codecs) and the
numcodecs codec (numcodecs_codec) are thin adapters over.

A chunk's bytes are a complete single-array .tqz container (spec/tqz-v1.md), written by
api.compress and read by api.decompress, so every chunk is self-describing and decodes
to exactly what tqcli.decompress gives for the same rows.  This module imports neither
zarr nor numcodecs.

Rules of a chunk:

* the vector axis is the last axis, and a chunk holds whole vectors (the adapters refuse
  chunk grids that split it);
* float16/32/64 only; NaN and infinity are refused, the message naming the chunk and row;
* edge chunks arrive padded with the array's fill value.  When the adapter knows that
  value (zarr v3), trailing rows made only of it are not encoded: they cost neither bytes
  nor time, and decoding puts the fill value back exactly.  Rows are quantised
  independently, so leaving them out changes nothing for the rows before them.
"""

from __future__ import annotations

import numpy as np

class ChunkError(ValueError):
    """A chunk, chunk grid, dtype or configuration the tq codecs refuse."""


def normalize_options(config: dict, who: str) -> dict:
    """The full, checked codec configuration for `config` (any of options.CONFIG_KEYS, and
    nmse), defaults filled in and resolved (EncodeOptions.from_config / to_config), so that
    two spellings of one setting compare equal and the stored JSON says what was used.
    ChunkError names `who` and the offending key."""
    from ..codec.options import EncodeOptions, OptionError

    try:
        options = EncodeOptions.from_config(config).to_config()
    except (OptionError, TypeError) as e:
        raise ChunkError(f"{who}: {getattr(e, 'reason', e)}") from None
    if options["mode"] == "prod" and options["bits"] < 2:  # the codecs' rule (tq 1.2)
        raise ChunkError(f"{who}: prod mode needs bits >= 2 (b - 1 bits and a 1-bit sketch)")
    return options


def check_basis(basis, who: str):
    """A fitted basis given to a codec (tqcli.fit_basis), or None; ChunkError otherwise."""
    if basis is None:
        return None
    if type(basis).__name__ != "Basis" or not hasattr(basis, "components"):
        raise ChunkError(f"{who}: basis must be a fitted basis (tqcli.fit_basis), "
                         f"got {type(basis).__name__}")
    return basis


def with_basis(options: dict, basis) -> dict:
    """The keywords of tqcli.compress for a chunk: the configuration, and the codec's basis
    in place of adapt=true when one was given."""
    if basis is None:
        return options
    out = dict(options, adapt=basis)
    out.pop("center", None)  # the basis's mean is the centre
    out.pop("coding", None)
    return out


def check_dtype(dtype, who: str) -> np.dtype:
    """Refuse integer, bool, complex and structured dtypes (tq quantises floats)."""
    from ..arrayio import base
    from ..errors import InputError

    try:
        base.check_dtype(dtype)
    except InputError as e:
        raise ChunkError(f"{who}: {e.reason}") from None
    return np.dtype(dtype)


def split_problem(shape, chunk_shape) -> str | None:
    """Why a chunk grid cannot be used (its chunks do not hold whole vectors), or None."""
    shape, chunk_shape = tuple(shape), tuple(chunk_shape)
    if not shape:
        return "a 0-dimensional array holds no vector"
    d, c = shape[-1], chunk_shape[-1]
    if c == d:
        return None
    axis = len(shape) - 1
    fixed = chunk_shape[:-1] + (d,)
    return (f"chunks {chunk_shape} of an array {shape} must span the last axis (the vector, "
            f"{d} values) exactly, not {c}: rechunk with {{{axis}: -1}} (Dask) or use "
            f"chunks={fixed}")


def _fill_rows(flat: np.ndarray, fill_value) -> int:
    """How many trailing rows of `flat` hold only `fill_value` (NaN matches NaN)."""
    fill = np.asarray(fill_value, dtype=flat.dtype)
    n = flat.shape[0]
    k = 0
    step = 256
    # from the end, a block of rows at a time: a chunk without padding costs one block
    while k < n:
        lo = max(0, n - k - step)
        block = flat[lo:n - k]
        same = np.isnan(block).all(axis=1) if np.isnan(fill) else (block == fill).all(axis=1)
        if same.all():
            k += block.shape[0]
            step *= 2
            continue
        last = int(np.flatnonzero(~same)[-1])
        return k + (block.shape[0] - 1 - last)
    return n


def encode_chunk(chunk: np.ndarray, options: dict, who: str, fill_value=None) -> bytes:
    """The .tqz bytes of one chunk (a float array whose last axis is the vector).

    With fill_value given, trailing rows made only of it are left out (decode_chunk puts
    them back); the stream then holds the (k, d) rows before them.  Errors: ChunkError,
    naming `who`, the chunk's shape and the row within the chunk.
    """
    from ..library import api
    from ..errors import TqError

    arr = np.asarray(chunk)
    check_dtype(arr.dtype, who)
    if arr.ndim == 0:
        raise ChunkError(f"{who}: a 0-dimensional chunk holds no vector")
    d = arr.shape[-1]
    n = arr.size // d if d else 0
    rows = arr
    if fill_value is not None and n and arr.ndim >= 1:
        flat = arr.reshape(n, d)
        pad = _fill_rows(flat, fill_value)
        if pad:
            rows = flat[:n - pad]
    try:
        return api.compress(rows, **options)
    except TqError as e:
        reason = e.reason
        if e.kind == "non-finite":  # "row 5: contains NaN ..." -> the row of this chunk
            head, _, tail = reason.partition(":")
            reason = f"{head} of the chunk:{tail}; tq refuses NaN and infinity"
        raise ChunkError(f"{who}: chunk of shape {arr.shape} ({arr.dtype}): {reason}") \
            from None


def decode_chunk(data, shape, dtype, who: str, fill_value=None) -> np.ndarray:
    """The array of `shape` and `dtype` that the .tqz bytes `data` of a chunk hold: the
    decoded rows, then fill_value for the rows encode_chunk left out."""
    from ..library import api
    from ..arrayio import saturating_cast
    from ..errors import TqError

    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    data = bytes(data) if not isinstance(data, bytes) else data
    try:
        # the array's metadata bounds what a chunk may hold: a chunk that declares no more
        # values than that is decoded at any expansion (zero rows at an error target
        # compress past the file limit of spec 13.9); one that declares more is held to it
        h = api.read_header(data)
        fits = h.n_vectors * h.dim <= int(np.prod(shape, dtype=object))
        y = api.decompress(data, max_ratio=float("inf") if fits else None)
    except TqError as e:
        raise ChunkError(f"{who}: chunk of shape {shape}: {e.reason}") from None
    if y.dtype != dtype:
        y = saturating_cast(y, dtype)
    if y.shape == shape:
        return y
    d = shape[-1] if shape else 0
    n = int(np.prod(shape[:-1], dtype=np.int64)) if len(shape) > 1 else 1
    if y.ndim == 2 and y.shape[1] == d and y.shape[0] < n and fill_value is not None:
        out = np.empty((n, d), dtype)
        out[:y.shape[0]] = y
        out[y.shape[0]:] = fill_value
        return out.reshape(shape)
    raise ChunkError(f"{who}: the chunk holds an array of shape {y.shape}, but the array "
                     f"expects chunks of shape {shape}")


def decode_chunk_as_stored(data: bytes, who: str) -> np.ndarray:
    """The array a chunk's .tqz bytes hold, in the shape and dtype they record."""
    from ..library import api
    from ..errors import TqError

    try:
        return api.decompress(data)
    except TqError as e:
        raise ChunkError(f"{who}: {e.reason}") from None
