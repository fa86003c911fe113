"""Turns blocks of vectors into chunk payloads and back, for the parameters of a Header."""

from __future__ import annotations

import numpy as np

from . import codebook, kernels, rotation
from .container import Header
from .errors import InputError, ScaleRangeError

TARGET_CHUNK_INPUT_BYTES = 1 << 22  # about 4 MiB of float32 input per chunk


def default_chunk_rows(dim: int) -> int:
    """Largest power of two <= 4 MiB / (4 d), clamped to 8 .. 65536 (encoder's choice)."""
    rows = max(1, TARGET_CHUNK_INPUT_BYTES // (4 * dim))
    return min(1 << 16, max(8, 1 << (rows.bit_length() - 1)))


def make_header(dim: int, bits: int, *, mode: str = "mse", seed: int = 0, rounds: int = 3,
                scale_rule: str | None = None, scale_dtype: str = "float32",
                source_dtype: str = "float32", shape: tuple[int, ...] | None = None,
                chunk_rows: int | None = None) -> Header:
    """A header for new data; computes the codebook the encoder will use and store."""
    if mode not in ("mse", "prod"):
        raise ValueError(f"mode must be 'mse' or 'prod', got {mode!r}")
    if scale_rule is None:
        scale_rule = "ls" if mode == "mse" else "norm"
    if mode == "prod" and scale_rule != "norm":
        raise ValueError("prod mode needs the 'norm' scale rule (its estimate is unbiased only then)")
    if mode == "prod" and bits < 1:
        raise ValueError("bits must be at least 1")
    code_bits = bits if mode == "mse" else bits - 1
    cb = codebook.codebook(dim, code_bits) if code_bits > 0 else np.zeros(0, np.float32)
    hdr = Header(dim=dim, bits=bits, mode=mode, seed=seed, rounds=rounds,
                 scale_rule=scale_rule, scale_dtype=scale_dtype, source_dtype=source_dtype,
                 shape=tuple(shape) if shape is not None else (0, dim),
                 chunk_rows=chunk_rows or default_chunk_rows(dim), codebook=cb)
    return hdr


class Codec:
    """Encoder and decoder state for one header: rotation, codebook, thresholds, sketch."""

    def __init__(self, header: Header):
        h = self.header = header
        self.rot = rotation.make_rotation(h.dim, h.seed, h.rounds)
        self.cents = np.ascontiguousarray(h.codebook, dtype=np.float32)
        self.bounds = codebook.boundaries(self.cents) if self.cents.size else np.zeros(0)
        self.thr = codebook.float32_thresholds(self.bounds)
        self.table = codebook.search_table(self.thr)
        self.plan = rotation.hadamard2_plan(self.rot)  # the rotation as the kernels take it
        self.rule = ("ls", "norm", "ip").index(h.scale_rule)
        self.scale_dtype = np.dtype(h.scale_dtype).newbyteorder("<")
        self._sketch = None
        self._sketch_t = None
        # decoded values are binary32, or binary64 when the scales are (see spec section 12)
        self.out_dtype = np.dtype(np.float64 if h.scale_dtype == "float64" else np.float32)

    @property
    def sketch(self) -> np.ndarray:
        if self._sketch is None:
            self._sketch = rotation.make_sketch(self.header.dim, self.header.seed)
        return self._sketch

    @property
    def sketch_t(self) -> np.ndarray:
        if self._sketch_t is None:
            self._sketch_t = np.ascontiguousarray(self.sketch.T)
        return self._sketch_t

    def encode(self, x: np.ndarray, first_row: int = 0) -> bytes:
        """Encode rows of x (rows first_row.. of the input) into one chunk payload.

        Refuses NaN or infinite values and norms the scale dtype cannot hold, naming the row.
        """
        codes, signs, floats = self._encode_arrays(x, first_row)
        return b"".join([codes.tobytes(), signs.tobytes()] + [f.tobytes() for f in floats])

    def encode_chunks(self, x: np.ndarray, first_row: int = 0) -> list[list[memoryview]]:
        """Encode rows of x, which start at a chunk boundary, in one kernel call; return
        one payload per chunk of header.chunk_rows rows (the last may be shorter), each a
        list of byte views (codes, signs, floats) whose concatenation is the payload.

        Chunks hold a multiple of 8 rows, so every chunk starts on a byte of the code and
        sign streams and the payloads are exactly those encode() gives chunk by chunk.
        """
        h = self.header
        codes, signs, floats = self._encode_arrays(x, first_row)
        n, d, cr = x.shape[0], h.dim, h.chunk_rows
        out = []
        for a in range(0, n, cr):
            k = min(cr, n - a)
            c0 = a * d * h.code_bits // 8
            s0 = a * d // 8 if signs.size else 0
            ncode, nsign, _ = h.section_sizes(k)
            parts = [codes[c0:c0 + ncode], signs[s0:s0 + nsign]] + [f[a:a + k] for f in floats]
            out.append([memoryview(p).cast("B") for p in parts if p.size])
        return out

    def _encode_arrays(self, x: np.ndarray, first_row: int):
        """The code stream, the sign stream (empty in mse mode) and the per-vector floats
        (scales, and gammas in prod mode) of all rows of x, checked."""
        h = self.header
        if x.dtype == np.float16:
            # numba has no float16 arrays; float16 -> float32 is exact, and the kernels
            # widen every element to float64 first, so the encoding is unchanged.
            x = x.astype(np.float32)
        n = x.shape[0]
        ncode, nsign, _ = h.section_sizes(n)
        codes = np.empty(ncode, np.uint8)  # the kernels write every byte
        qbits = np.empty(nsign, np.uint8)
        scales = np.empty(n, np.float64)
        if h.mode == "mse":
            kernels.encode_mse(x, self.plan, self.thr, self.table, self.cents,
                               h.code_bits, self.rule, codes, scales)
            with np.errstate(over="ignore"):
                floats = [scales.astype(self.scale_dtype)]
        else:
            gammas = np.empty(n, np.float64)
            kernels.encode_prod(x, self.plan, self.thr, self.table, self.cents,
                                h.code_bits, self.sketch_t, codes, qbits, scales, gammas)
            with np.errstate(over="ignore"):
                floats = [scales.astype(self.scale_dtype), gammas.astype(self.scale_dtype)]
        _check_scales(scales, floats[0], h.scale_dtype, first_row)
        return codes, qbits, floats

    def decode(self, payload, rows: int, out: np.ndarray | None = None) -> np.ndarray:
        """Decode a chunk payload of `rows` vectors into a (rows, d) array of out_dtype.

        The payload is one ContainerReader.read_chunk returned, which has checked its CRC
        and that its stored scales are finite (container.check_floats).

        With `out` (out_dtype, at least rows x d, C-contiguous) the result is written there
        and a view of it returned, so a caller can reuse one buffer for every chunk.
        """
        h = self.header
        ncode, nsign, nfloat = h.section_sizes(rows)
        buf = np.frombuffer(payload, dtype=np.uint8)
        codes = buf[:ncode]
        per = nfloat // h.floats_per_vector
        scales = buf[ncode + nsign:ncode + nsign + per].view(self.scale_dtype)
        scales = scales.astype(np.float64 if h.scale_dtype == "float64" else np.float32)
        out = np.empty((rows, h.dim), self.out_dtype) if out is None else out[:rows]
        if h.mode == "mse":
            kernels.decode_mse(codes, scales, self.plan, self.cents, h.code_bits, out)
        else:
            qbits = buf[ncode:ncode + nsign]
            gammas = buf[ncode + nsign + per:].view(self.scale_dtype).astype(np.float64)
            kernels.decode_prod(codes, qbits, scales, gammas, self.plan, self.cents,
                                h.code_bits, self.sketch, out)
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
        raise InputError(f"row {first_row + bad}: contains NaN or infinite values")
    hint = {"float16": "; use --scale-dtype float32", "float32": "; use --scale-dtype float64"}
    raise ScaleRangeError(f"row {first_row + bad}: norm {scales[bad]:.4g} is outside the "
                          f"range of the {scale_dtype} scale" + hint.get(scale_dtype, ""),
                          first_row + bad, scale_dtype)
