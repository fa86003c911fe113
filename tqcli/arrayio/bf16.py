"""bfloat16 without a numba specialisation: exact conversions by integer bit operations.

bfloat16 is the top half of a binary32 (1 sign, 8 exponent, 7 fraction bits), so widening
is exact -- the 16 bits shifted left by 16 -- and the encoder sees float32 rows; the decoder's
float32 (or float64) results are narrowed to bfloat16 with round-to-nearest-even (spec 12,
narrowing).  numpy has no bfloat16 of its own: the dtype object is ml_dtypes' (the `kv`
extra); a .npy that ml_dtypes saved says '<V2', read with --input-dtype bfloat16.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

NAME = "bfloat16"
MAX = float(np.uint32(0x7F7F0000).view(np.float32))  # largest finite bfloat16


def dtype(required: bool = True):
    """ml_dtypes' bfloat16 dtype, or None (or an InputError when required) without it."""
    try:
        import ml_dtypes
    except ImportError:
        if required:
            raise InputError("bfloat16 needs the ml_dtypes package (pip install "
                             "\"tq[kv]\")", kind="dtype") from None
        return None
    return np.dtype(ml_dtypes.bfloat16)


def is_bf16(dt) -> bool:
    dt = np.dtype(dt)
    return dt.name == NAME and dt.itemsize == 2


def bits_to_f32(bits: np.ndarray) -> np.ndarray:
    """uint16 bfloat16 patterns -> float32, exactly."""
    return (np.asarray(bits, np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def to_f32(array: np.ndarray) -> np.ndarray:
    """A bfloat16 array (ml_dtypes, or raw 2-byte '<V2' / uint16 patterns) as float32."""
    a = np.ascontiguousarray(array)
    return bits_to_f32(a.view("<u2"))


def f32_to_bits(x: np.ndarray) -> np.ndarray:
    """float32 or float64 -> uint16 bfloat16 patterns, rounded once (to nearest, ties to
    even) directly from the value; values beyond the largest finite bfloat16 saturate
    there (as tq's other narrowing casts do)."""
    x = np.asarray(x)
    if x.dtype == np.float64:
        # float64 -> float32 -> bfloat16 could round twice; clip, then round the float64
        # value's own bits to 8 significant bits (np.float64 keeps 53, so the ties are exact)
        x = np.clip(x, -MAX, MAX)
        m, e = np.frexp(x)                        # x = m * 2^e, 0.5 <= |m| < 1
        r = np.ldexp(np.rint(np.ldexp(m, 8)), e - 8)  # rint is ties-to-even
        r = np.where(np.abs(r) < float(np.finfo(np.float32).tiny), _sub(x), r)
        # r is a bfloat16 value now: as float32 its low 16 bits are zero
        return (np.clip(r, -MAX, MAX).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    x = np.clip(np.asarray(x, np.float32), -MAX, MAX)
    u = x.view(np.uint32).astype(np.uint64)
    u = u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & np.uint64(1))
    return (u >> np.uint64(16)).astype(np.uint16)


def _sub(x: np.ndarray) -> np.ndarray:
    """Subnormal range of bfloat16 (|x| < 2^-126): a multiple of 2^-133, ties to even."""
    return np.ldexp(np.rint(np.ldexp(x, 133)), -133)
