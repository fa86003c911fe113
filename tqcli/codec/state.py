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

from . import codebook
from .. import limits, prng
from ..errors import FormatError, InputError, ScaleRangeError
from .stages import STAGES




@functools.lru_cache(maxsize=8)
def make_sketch(d: int, seed: int) -> np.ndarray:
    """The d x d matrix of i.i.d. N(0, 1) float32 entries used by prod mode (row-major)."""
    from ..kernels import gaussian_fill

    out = np.empty(d * d, dtype=np.float32)
    gaussian_fill(prng.stream_key(seed, prng.SKETCH_TAG), out)
    out = out.reshape(d, d)
    out.setflags(write=False)
    return out


class Codec:
    """Encoder and decoder state for one header (a tqcli.format.header.Header): rotation
    plan, quantiser, sketch."""

    def __init__(self, header):
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
        self._finite_top = float(np.finfo(self.out_dtype).max) / 4  # decode's proven range
        self._sketch_t = None
        # the fitted stages the header holds (tqcli/codec/stages.py; the centre, spec 11 and 12):
        # applied before encoding, undone after decoding in reverse order
        present = STAGES.present(h)
        self.forward_stages = [s.forward(p) for s, p in present]
        self.inverse_stages = [s.inverse(p, self.out_dtype) for s, p in reversed(present)]

    @functools.cached_property
    def slot_table(self) -> np.ndarray:
        """The entropy decoder's slot -> symbol table, from the stored frequencies."""
        from ..kernels import rans_slot_table

        m = self.header.model
        return rans_slot_table(m.frequencies, m.precision)

    @functools.cached_property
    def rans_tables(self) -> tuple:
        """The entropy decoder's tables for the fused kernels (kernels.rans_tables)."""
        from ..kernels import rans_tables

        m = self.header.model
        return rans_tables(m.frequencies, m.precision)

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
        return self.coding.encode_chunks(self, self.to_format(x), first_row)

    def to_format(self, x: np.ndarray) -> np.ndarray:
        """Rows as the format encodes them: float16 widened and the fitted stages applied
        (the centre subtracted, in binary64); what encoding and the query-side transform
        start from."""
        if x.dtype == np.float16:
            # numba has no float16 arrays; float16 -> float32 is exact, and the kernels
            # widen every element to float64 first, so the encoding is unchanged.
            x = x.astype(np.float32)
        for forward in self.forward_stages:
            x = forward(x)
        return x

    def from_format(self, out: np.ndarray) -> np.ndarray:
        """Decoded rows with the fitted stages undone in place (the centre added back)."""
        for inverse in self.inverse_stages:
            inverse(out)
        return out

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
        out = self.from_format(self.coding.decode(self, payload, rows, out))
        # a crafted file (a huge scale, codebook or centre value) can overflow the
        # arithmetic of spec section 12; its chunk is refused rather than infinities handed
        # on (13.4).  One pass over the chunk (6% of decompressing), skipped when the
        # coding bounds every value of this payload within range (no centre added)
        bound = (math.inf if self.inverse_stages
                 else self.coding.decoded_bound(self, payload, rows))
        if not bound <= self._finite_top and not _all_finite(out):
            raise FormatError("decoded values overflow to infinity (corrupt or crafted file)",
                              rule="decoded-finite")
        return out


def _all_finite(out: np.ndarray) -> bool:
    """np.isfinite(out).all() in pieces of rows, so that its boolean temporary stays small
    (tqcli/format/memory.py PIECE)."""
    step = max(1, (1 << 22) // max(1, out.shape[1] * out.itemsize)) if out.ndim == 2 else 0
    if not step or out.shape[0] <= step:
        return bool(np.isfinite(out).all())
    return all(np.isfinite(out[a:a + step]).all() for a in range(0, out.shape[0], step))


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
