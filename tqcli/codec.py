"""The codec of one header: the state its encoder and decoder share.

A Codec holds what a header implies and what is costly to rebuild: the rotation's plan
(from the rotation table), the quantiser's centroids and float32 thresholds, prod mode's
sketch.  The bytes of a chunk are the payload coding's business (from the coding table):
Codec.encode_chunks and Codec.decode hand this state to it.  Everything here is built from
the header's stored values; nothing the header stores is recomputed.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import codebook, limits, prng, rotations
from .container import Header
from .errors import FormatError, InputError, ScaleRangeError


def make_header(dim: int, bits: int | float | None, *, mode: str = limits.DEFAULT_MODE,
                seed: int = limits.DEFAULT_SEED, rounds: int = limits.DEFAULT_ROUNDS,
                rotation: str = rotations.DEFAULT, coding: str = "packed",
                scale_rule: str | None = None, scale_dtype: str = "float32",
                source_dtype: str = "float32", shape: tuple[int, ...] | None = None,
                chunk_rows: int | None = None, center=None,
                nmse: float | None = None) -> Header:
    """A header for new data; computes the codebook the encoder will use and store.

    With coding="entropy" (mse mode only), `bits` is a target rate in bits per coordinate,
    any number from 1 to 8, or None with `nmse`, a target expected error: the grid step
    is the one the coordinate law says meets it (tqcli/entropy_model.py).

    `center` is None (no centring) or the d values subtracted from every vector before
    encoding, stored as float32 in the header (make_center computes the usual one).

    Raises ValueError for an option combination the format does not allow.
    """
    if mode not in limits.MODES:
        raise ValueError(f"mode must be one of {', '.join(limits.MODES)}, got {mode!r}")
    if scale_rule is None:
        scale_rule = limits.default_scale_rule(mode)
    if coding == "entropy":
        return _entropy_header(dim, bits, nmse, mode=mode, seed=seed, rounds=rounds,
                               rotation=rotation, scale_rule=scale_rule,
                               scale_dtype=scale_dtype, source_dtype=source_dtype,
                               shape=shape, chunk_rows=chunk_rows, center=center)
    if nmse is not None:
        raise ValueError("a target error (nmse) needs the entropy coding (coding='entropy')")
    problem = limits.scale_rule_problem(mode, scale_rule)
    if problem:
        raise ValueError(problem)
    if not isinstance(bits, int) or not limits.MIN_BITS <= bits <= limits.MAX_BITS:
        raise ValueError(f"bits must be an integer from {limits.MIN_BITS} to "
                         f"{limits.MAX_BITS}, got {bits!r}")
    q = limits.code_bits(mode, bits)
    cb = codebook.codebook(dim, q) if q > 0 else np.zeros(0, np.float32)
    return Header(dim=dim, bits=bits, mode=mode, seed=seed, rounds=rounds, rotation=rotation,
                  coding=coding, scale_rule=scale_rule, scale_dtype=scale_dtype,
                  source_dtype=source_dtype,
                  shape=tuple(shape) if shape is not None else (0, dim),
                  chunk_rows=chunk_rows or limits.default_chunk_rows(dim), codebook=cb,
                  center=None if center is None else _center_values(center, dim))


def _entropy_header(dim, rate, nmse, *, mode, chunk_rows, shape, center, **fields) -> Header:
    """The entropy coding's header: the grid step from the target rate or error, its
    centroids and frequencies (spec 19)."""
    from . import entropy_model as em
    from .codings.entropy import EntropyModel, rate_overhead, segment_rows_for

    if mode != "mse":
        raise ValueError("the entropy coding is defined for mse mode only (use --mode mse)")
    problem = limits.dim_problem(mode, dim)
    if problem:
        raise ValueError(problem)
    if (rate is None) == (nmse is None):
        raise ValueError("give either a rate (bits) or a target error (nmse)")
    chunk_rows = chunk_rows or limits.default_chunk_rows(dim)
    seg = segment_rows_for(dim, chunk_rows)
    if nmse is not None:
        if isinstance(nmse, bool) or not isinstance(nmse, (int, float)) or not 0 < nmse < 1:
            raise ValueError(f"nmse must be a number between 0 and 1, got {nmse!r}")
        model = em.model_for(dim, nmse=float(nmse))
    else:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise ValueError(f"bits must be a number, got {rate!r}")
        if not em.MIN_RATE <= rate <= em.MAX_RATE:
            raise ValueError(f"bits must be a rate from {em.MIN_RATE:g} to {em.MAX_RATE:g} "
                             f"with the entropy coding, got {rate!r}")
        model = em.model_for(dim, rate=float(rate), overhead=rate_overhead(dim))
    expected = model.rate
    entropy = EntropyModel(precision=em.PRECISION, lanes=em.LANES, segment_rows=seg,
                           step=model.step, rate=float(expected),
                           frequencies=model.frequencies)
    bits_field = min(limits.MAX_BITS, max(limits.MIN_BITS, math.ceil(expected - 1e-9)))
    return Header(dim=dim, bits=bits_field, mode=mode, coding="entropy",
                  shape=tuple(shape) if shape is not None else (0, dim),
                  chunk_rows=chunk_rows, codebook=model.centroids,
                  center=None if center is None else _center_values(center, dim),
                  model=entropy, **fields)


def _center_values(center, dim: int) -> np.ndarray:
    c = np.asarray(center)
    if c.shape != (dim,) or c.dtype.kind not in "fiu":
        raise ValueError(f"centre must be {dim} numbers, got shape {c.shape} ({c.dtype})")
    with np.errstate(over="ignore", invalid="ignore"):
        c32 = c.astype(np.float32)
    if not np.all(np.isfinite(c32)):
        raise ValueError("centre holds values that are not finite in float32")
    return c32


def make_center(rows: np.ndarray) -> np.ndarray:
    """tq's centre (spec section 14): the mean of `rows` -- the vectors of the first chunk --
    summed in binary64 in row order, divided by their count, rounded to float32; zeros when
    there are no rows.  Any vector is a valid centre; this one makes the encoded vectors
    small when the data has a common offset."""
    acc = np.zeros(rows.shape[1], np.float64)
    for row in rows:  # once per file, over one chunk: a fixed order on every machine
        acc += row
    if rows.shape[0]:
        acc /= rows.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        return acc.astype(np.float32)


@functools.lru_cache(maxsize=8)
def make_sketch(d: int, seed: int) -> np.ndarray:
    """The d x d matrix of i.i.d. N(0, 1) float32 entries used by prod mode (row-major)."""
    from .kernels import gaussian_fill

    out = np.empty(d * d, dtype=np.float32)
    gaussian_fill(prng.stream_key(seed, prng.SKETCH_TAG), out)
    out = out.reshape(d, d)
    out.setflags(write=False)
    return out


class Codec:
    """Encoder and decoder state for one header: rotation plan, quantiser, sketch."""

    def __init__(self, header: Header):
        h = self.header = header
        self.rotation_kind = h.rotation_kind
        self.coding = h.payload_coding
        self.rotation = self.rotation_kind.plan(h.dim, h.seed, h.rounds)
        self.plan = self.rotation.kernel_args  # the rotation as the kernels take it
        self.centroids = np.ascontiguousarray(h.codebook, dtype=np.float32)
        bounds = self.coding.thresholds(h) if self.centroids.size else np.zeros(0)
        thresholds = codebook.float32_thresholds(bounds)
        # (float32 thresholds, the same padded for the branchless search, centroids)
        self.quantizer = (thresholds, codebook.search_table(thresholds), self.centroids)
        self.rule = limits.SCALE_RULES.index(h.scale_rule)  # the kernels take the header code
        self.scale_dtype = np.dtype(h.scale_dtype).newbyteorder("<")
        # decoded values are binary32, or binary64 when the scales are (see spec section 12)
        self.out_dtype = np.dtype(np.float64 if h.scale_dtype == "float64" else np.float32)
        self._sketch_t = None
        # the centre (spec 11 and 12): subtracted in binary64 before encoding, added back
        # in the decoded values' format
        self.center_in = None if h.center is None else h.center.astype(np.float64)
        self.center_out = None if h.center is None else h.center.astype(self.out_dtype)

    @functools.cached_property
    def slot_table(self) -> np.ndarray:
        """The entropy decoder's slot -> symbol table, from the stored frequencies."""
        from .kernels import rans_slot_table

        m = self.header.model
        return rans_slot_table(m.frequencies, m.precision)

    @property
    def sketch(self) -> np.ndarray:
        return make_sketch(self.header.dim, self.header.seed)

    @property
    def sketch_t(self) -> np.ndarray:
        if self._sketch_t is None:
            self._sketch_t = np.ascontiguousarray(self.sketch.T)
        return self._sketch_t

    # ------------------------------------------------------------------ encode

    def encode_chunks(self, x: np.ndarray, first_row: int = 0) -> list[list[memoryview]]:
        """Encode rows of x (rows first_row.. of the input, starting at a chunk boundary)
        in one kernel call: one payload per chunk of header.chunk_rows rows (the last may
        be shorter), each a list of byte views whose concatenation is the payload.

        Refuses NaN or infinite values and norms the scale dtype cannot hold, naming the row.
        """
        if x.dtype == np.float16:
            # numba has no float16 arrays; float16 -> float32 is exact, and the kernels
            # widen every element to float64 first, so the encoding is unchanged.
            x = x.astype(np.float32)
        if self.center_in is not None:
            x = x.astype(np.float64) - self.center_in  # the vectors the format encodes
        return self.coding.encode_chunks(self, x, first_row)

    def encode(self, x: np.ndarray, first_row: int = 0) -> bytes:
        """Encode at most chunk_rows rows of x into one chunk payload (bytes)."""
        if x.shape[0] > self.header.chunk_rows:
            raise ValueError("more rows than a chunk holds; use encode_chunks")
        (parts,) = self.encode_chunks(x, first_row) or [[]]
        return b"".join(parts)

    def store_floats(self, floats: list[np.ndarray], first_row: int) -> list[np.ndarray]:
        """Per-vector floats (scales first) in the scale dtype, refusing what it cannot keep."""
        with np.errstate(over="ignore"):
            stored = [f.astype(self.scale_dtype) for f in floats]
        _check_scales(floats[0], stored[0], self.header.scale_dtype, first_row)
        return stored

    # ------------------------------------------------------------------ decode

    def load_floats(self, raw: np.ndarray) -> np.ndarray:
        """Stored scales (bytes) as the decoder computes with them (binary32 or binary64)."""
        return raw.view(self.scale_dtype).astype(self.out_dtype)

    def decode(self, payload, rows: int, out: np.ndarray | None = None) -> np.ndarray:
        """Decode a chunk payload of `rows` vectors into a (rows, d) array of out_dtype.

        The payload is one ContainerReader.read_chunk returned, which has checked its CRC
        and the coding's payload rules (finite stored scales).

        With `out` (out_dtype, at least rows x d, C-contiguous) the result is written there
        and a view of it returned, so a caller can reuse one buffer for every chunk.
        """
        out = np.empty((rows, self.header.dim), self.out_dtype) if out is None else out[:rows]
        out = self.coding.decode(self, payload, rows, out)
        if self.center_out is not None:
            out += self.center_out
        # a crafted file (a huge scale, codebook or centre value) can overflow the
        # arithmetic of spec section 12; its chunk is refused rather than infinities handed
        # on (13.4).  One pass over a chunk still in cache: about 2% of the decode.
        if not np.isfinite(out).all():
            raise FormatError("decoded values overflow to infinity (corrupt or crafted file)",
                              rule="decoded-finite")
        return out


def _check_scales(scales: np.ndarray, stored: np.ndarray, scale_dtype: str,
                  first_row: int) -> None:
    """Refuse rows with non-finite values and scales the scale dtype cannot keep.

    The kernels give a row that holds a NaN or an infinity the scale NaN.  A scale is kept
    when its rounded value is at most a quarter of the dtype's largest value (headroom for
    reconstructions that overshoot) and does not round a nonzero norm to zero.
    """
    info = np.finfo(stored.dtype)
    mag = np.abs(stored)
    # headroom at the top: a reconstructed coordinate may exceed the norm a little
    ok = (mag <= info.max / 4) & ((scales == 0) | (mag > 0))
    if ok.all():
        return
    bad = int(np.argmin(ok))
    if np.isnan(scales[bad]):
        raise InputError(f"row {first_row + bad}: contains NaN or infinite values",
                         kind="non-finite")
    hint = {"float16": "; use --scale-dtype float32", "float32": "; use --scale-dtype float64"}
    raise ScaleRangeError(f"row {first_row + bad}: norm {scales[bad]:.4g} is outside the "
                          f"range of the {scale_dtype} scale" + hint.get(scale_dtype, ""),
                          first_row + bad, scale_dtype)
