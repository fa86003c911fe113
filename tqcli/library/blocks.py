"""Blocks of vectors quantised in memory: (codes, scales) arrays without a container.

For an integration that keeps small blocks quantised (a KV cache, a search index) and for
search on compressed data.  Every function takes the codec of a header -- a Codec, a
Header (tqcli.read_header of a file, or tqcli.format.header.make_header for new data) or an open
TqFile -- and runs the kernels a container's chunks go through, so that

    encode_block(x, h)             == the ChunkCodes a chunk of rows x stores (bit for bit)
    decode_block(codes, h)         == TqFile.chunk of those rows (bit for bit; decompress then
                                      casts to the original dtype)
    query_transform(q, h)          -> y = R (q - centre), the query side of search
    scores(y, codes, h)            -> <q - centre, x_hat - centre> from the codes alone

(tqcli/codec/codes.py states the identity behind scores.)
"""

from __future__ import annotations

import math

import numpy as np

from ..codec.state import Codec
from ..codec.codes import ChunkCodes
from ..format.header import Header


def codec_of(obj) -> Codec:
    """The Codec of a Codec, a Header or an open TqFile (its .codec)."""
    if isinstance(obj, Codec):
        return obj
    if isinstance(obj, Header):
        return Codec(obj)
    codec = getattr(obj, "codec", None)
    if isinstance(codec, Codec):
        return codec
    raise TypeError(f"expected a Codec, a Header or an open TqFile, not {type(obj).__name__}")


def _rows(x, d: int, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"{what} must be a 2-D array of rows of {d} values, got shape "
                         f"{x.shape}")
    return x


def encode_block(x, codec, first_row: int = 0) -> ChunkCodes:
    """Rows of x, (n, d) floating point, quantised as the encoder of `codec`'s header does:
    centred if it has a centre, then the coding's kernels.  The result equals
    TqFile.chunk_codes of a chunk holding the same rows (any n: codes of rows do not depend
    on one another).  Refuses NaN, infinities and norms the scale dtype cannot hold
    (InputError, ScaleRangeError; rows numbered from first_row)."""
    codec = codec_of(codec)
    x = _rows(x, codec.header.dim, "x")
    if x.dtype not in (np.float32, np.float64):
        if x.dtype.kind != "f" and x.dtype.name != "bfloat16":
            raise TypeError(f"x must hold floating-point values, not {x.dtype}")
        x = x.astype(np.float32)  # float16 and bfloat16 are exact in float32
    x = codec.to_format(x)  # as Codec.encode_chunks
    return codec.coding.encode_codes(codec, np.ascontiguousarray(x), first_row)


def decode_block(codes: ChunkCodes, codec, out: np.ndarray | None = None) -> np.ndarray:
    """ChunkCodes back to (rows, d) floats, as the decoder does (float32, or float64 with
    float64 scales; the centre added): equal to TqFile.chunk / iter_blocks of those rows,
    which decompress casts to the original dtype.  `out`: an array
    of at least rows x d of that dtype, C-contiguous, to decode into (a view is returned).
    No check of the values is made (Codec.decode refuses a crafted file's infinities)."""
    codec = codec_of(codec)
    if codes.dim != codec.header.dim or codes.coding != codec.coding.name:
        raise ValueError(f"codes of {codes.coding} d={codes.dim} do not fit this codec "
                         f"({codec.coding.name} d={codec.header.dim})")
    if out is None:
        out = np.empty((codes.rows, codes.dim), codec.out_dtype)
    return codec.from_format(codec.coding.decode_codes(codec, codes, out))


def query_transform(q, codec, normalize: bool = False) -> np.ndarray:
    """The query side of search: y = R (q - centre) for q of shape (..., d), float32.

    The centre (if the header has one) is subtracted in float64, then, with normalize,
    each query is divided by its norm (as the encoder makes unit directions; a zero query
    stays zero), then R, the file's forward rotation, is applied by the encoder's kernel
    in float32.  Then <y, c[idx]> s (scores) is <q - centre, x_hat - centre> (or that over
    ||q - centre|| with normalize).  prod mode's residual term needs S y besides
    (scores computes it).
    """
    codec = codec_of(codec)
    d = codec.header.dim
    q = np.asarray(q)
    if q.ndim == 0 or q.shape[-1] != d:
        raise ValueError(f"a query must end in an axis of {d} values, got shape {q.shape}")
    t = codec.to_format(q.reshape(-1, d).astype(np.float64))  # the centre subtracted
    if normalize:
        norms = np.sqrt(np.einsum("ij,ij->i", t, t))
        t = t / np.where(norms == 0, 1.0, norms)[:, None]
    y = np.ascontiguousarray(t, dtype=np.float32)
    from .. import kernels

    kernels.rotate_rows(y, codec.plan, False)
    return y.reshape(q.shape)


def scores(y, codes: ChunkCodes, codec) -> np.ndarray:
    """s[j] (<y, c[idx[j]]> + sqrt(pi/2) / d gamma[j] <S y, sgn[j]>) for transformed
    queries y (m, d) or (d,) and every row j of `codes`: (m, rows) float64 (or (rows,)).
    In numpy from the codes, never the decoded floats; a reference for search kernels."""
    codec = codec_of(codec)
    y = np.asarray(y, np.float64)
    yy = np.atleast_2d(y)
    idx = codes.indices()
    total = np.zeros((yy.shape[0], codes.rows))
    if idx is not None:
        total += yy @ codec.centroids[idx].astype(np.float64).T
    if codes.signs is not None:
        sy = yy @ codec.sketch.astype(np.float64).T  # (S y) for each query
        k = math.sqrt(math.pi / 2.0) / codes.dim * codes.gammas
        total += (sy @ codes.sign_values().T.astype(np.float64)) * k
    total *= np.asarray(codes.scales, np.float64)
    return total if y.ndim == 2 else total[0]
