"""SplitMix64 and Marsaglia's polar method, jitted: the prod-mode sketch's N(0, 1) draws.

The constants are tqcli/prng.py's, shared with prng.splitmix64 (numpy), so both produce
the same stream.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..prng import GOLDEN, MIX1, MIX2


@njit(cache=True)
def splitmix(key, k):
    """Output k of SplitMix64 keyed by `key`: mix(key + k * GOLDEN), uint64 arithmetic."""
    z = key + k * GOLDEN
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def gaussian_fill_kernel(key, out):
    """Fill `out` with N(0, 1) draws (see kernels.gaussian_fill)."""
    n = out.size
    k = np.uint64(0)
    i = 0
    scale = 2.0 ** -52
    while i < n:
        k += np.uint64(1)
        x = splitmix(key, k)
        k += np.uint64(1)
        y = splitmix(key, k)
        u = np.float64(x >> np.uint64(11)) * scale - 1.0
        v = np.float64(y >> np.uint64(11)) * scale - 1.0
        s = u * u + v * v
        if s >= 1.0 or s == 0.0:
            continue
        f = math.sqrt(-2.0 * math.log(s) / s)
        out[i] = np.float32(u * f)
        i += 1
        if i < n:
            out[i] = np.float32(v * f)
            i += 1
