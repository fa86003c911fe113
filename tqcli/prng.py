"""SplitMix64's three constants, defined once for both of its implementations.

rotation.splitmix64 (numpy, whole stretches of a stream at once) and the jitted generator
behind kernels.gaussian_fill must produce the same stream bit for bit (spec/tqz-v1.md), so
they read the constants from here.  They are numpy uint64 scalars: numba reads a module
global at compile time and types it from its value, and a plain Python int above 2**63
would not stay an unsigned 64-bit integer in every expression.
"""

from __future__ import annotations

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # the stream's increment: output k mixes key + k * GOLDEN
MIX1 = np.uint64(0xBF58476D1CE4E5B9)    # multiplier after the first xor-shift (>> 30)
MIX2 = np.uint64(0x94D049BB133111EB)    # multiplier after the second xor-shift (>> 27)
