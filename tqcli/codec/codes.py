"""A block's codes and scales, before they are decoded to floats (the seam for search).

A payload coding (tqcli/codec/codings) hands out a chunk's quantised form as ChunkCodes: what
the decoder multiplies out, in the arrays it stores or decodes them into.  With R the
file's forward rotation, c the codebook (header.codebook), S the prod-mode sketch
(Codec.sketch, d x d) and centre the header's centre (zero when there is none), the
decoded row j is

    mse:   x_hat[j] = centre + s[j] R^T c[idx[j]]
    prod:  x_hat[j] = centre + s[j] R^T (c[idx[j]] + sqrt(pi/2) / d * gamma[j] S^T sgn[j])

(c[idx] is absent in prod mode at 1 bit, whose q is 0), so for a query q and
y = R (q - centre) (tqcli.library.blocks.query_transform)

    <q - centre, x_hat[j] - centre>
        = s[j] (<y, c[idx[j]]> + sqrt(pi/2) / d * gamma[j] <S y, sgn[j]>)

up to the float32 rounding of the rotation (tqcli.library.blocks.scores computes the right side).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChunkCodes:
    """The codes and per-vector floats of `rows` vectors of dimension `dim`.

    coding   the payload coding's table name (packed, entropy, ...)
    bits     q, the width of one code in `codes` for packed (0: no mse codes, prod mode
             at 1 bit); 0 for entropy, whose codes are not packed
    codes    packed: uint8, the LSB-first bit stream of the rows * dim q-bit codebook
             indices, row-major (code k in stream bits [k q, (k + 1) q)), ceil(rows dim q
             / 8) bytes -- read from a file, a zero-copy view of the chunk payload;
             entropy: uint16 (rows, dim), the cell indices after the rANS stage
    scales   (rows,) the per-vector scale s as the decoder computes with it: float32, or
             float64 when the file's scale dtype is float64 (a float16 scale widened)
    signs    prod mode only: uint8, the LSB-first bit stream of the rows * dim signs of
             the residual sketch (bit 1: +1, bit 0: -1), a view of the payload; else None
    gammas   prod mode only: (rows,) float64 residual norms gamma; else None

    Read from a file, the views are valid until the next chunk is read from it (copy()
    keeps them).  indices() and sign_values() unpack the bit streams.
    """

    coding: str
    rows: int
    dim: int
    bits: int
    codes: np.ndarray
    scales: np.ndarray
    signs: np.ndarray | None = None
    gammas: np.ndarray | None = None

    def indices(self) -> np.ndarray | None:
        """The codebook index of every coordinate, (rows, dim): uint8 for packed, uint16
        for entropy; None when there are no mse codes (prod mode at 1 bit)."""
        if self.coding != "packed":
            return self.codes.reshape(self.rows, self.dim)
        if self.bits == 0:
            return None
        return unpack(self.codes, self.bits, self.rows * self.dim).reshape(self.rows, self.dim)

    def sign_values(self) -> np.ndarray | None:
        """prod mode: the residual signs as int8 +-1, (rows, dim); else None."""
        if self.signs is None:
            return None
        bits = unpack(self.signs, 1, self.rows * self.dim).reshape(self.rows, self.dim)
        return (bits.astype(np.int8) << 1) - 1

    def copy(self) -> "ChunkCodes":
        """The same codes in arrays of their own (a file's views are reused)."""
        def own(a):
            return None if a is None else np.array(a, copy=True)

        return ChunkCodes(self.coding, self.rows, self.dim, self.bits, own(self.codes),
                          own(self.scales), own(self.signs), own(self.gammas))


def unpack(buf, bits: int, count: int) -> np.ndarray:
    """`count` codes of `bits` (1..8) bits from an LSB-first bit stream, as uint8, with
    numpy's bit operations (tqcli.codec.reference.unpack is the plain twin the tests compare)."""
    buf = np.asarray(buf, np.uint8)
    if not 1 <= bits <= 8 or buf.size * 8 < count * bits:
        raise ValueError(f"{buf.size} bytes do not hold {count} codes of {bits} bits")
    if bits == 8:
        return buf[:count].copy()
    planes = np.unpackbits(buf, count=count * bits, bitorder="little").reshape(count, bits)
    return np.packbits(planes, axis=1, bitorder="little").reshape(count)
