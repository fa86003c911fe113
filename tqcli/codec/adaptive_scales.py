"""The adaptive coding's per-vector scales (spec 21.3, 21.4): the encoder codes each centred
row's direction at the fitted rms norm rho, and stores one float16 scale per row, the least
squares scale of the decoded direction against the centred row.  The decoder multiplies the
binary64 sum of 21.5 by that scale before rounding once to binary32.  Plain numpy: the
encoder's per-row arithmetic here is deterministic (rows are independent, every sum is
numpy's over one row)."""

from __future__ import annotations

import numpy as np

F16_MAX = 65504.0
RANKING_COST = 1.1  # scales whose bits cost at most 10% more error: always (see below)


def fit_scaled(blocks, mean, spectrum, dim: int, scaled):
    """(scaled, rho, spectrum) of fit_basis: rho the rms norm of the centred rows; scaled
    None decides (tq's rule, spec 21.3): scales pay when their 16 bits, which cost at most
    2^(32/d) times the error with every component kept, are repaid either by the gain in
    the mean relative error per row from coding directions, G = rho^2 E[1/|x|^2] /
    E[|c|^2/|x|^2] (1 for rows of equal norms; 5.2 on a MiniLM KV dump in rows of 32), or
    cost at most RANKING_COST (d >= 233: then they buy the least-squares correction of the
    codebooks' shrinkage, +0.007 to +0.01 recall@1 on MiniLM embeddings).  The spectrum
    returned is the second moments of the directions at rho (+-z: mean 0)."""
    from .fitting import fit_spectrum

    rho = float(np.sqrt(max(float(np.sum(spectrum.variances)), 0.0))) or 1.0
    mu = np.asarray(mean, np.float64)
    if scaled is None:
        cost = 2.0 ** (32.0 / dim)
        if cost <= RANKING_COST:
            scaled = True
        else:
            acc = np.zeros(3)
            for b in blocks:
                x = np.asarray(b, np.float64)
                nx = np.einsum("ij,ij->i", x, x)
                c = x - mu
                nc = np.einsum("ij,ij->i", c, c)
                ok = nx > 0
                acc += [np.sum(1 / nx[ok]), np.sum(nc[ok] / nx[ok]), np.count_nonzero(ok)]
            scaled = bool(acc[1] > 0 and rho * rho * acc[0] / acc[1] > cost)
    if not scaled:
        return False, 1.0, spectrum
    z = (w for b in blocks for u in [directions(np.asarray(b, np.float64) - mu, rho)]
         for w in (u, -u))
    return True, rho, fit_spectrum(z, dim)


def directions(c: np.ndarray, rho: float) -> np.ndarray:
    """Centred binary64 rows c at norm rho: c_r (rho / |c_r|); zero rows stay zero."""
    norm = np.sqrt(np.einsum("ij,ij->i", c, c))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        f = np.where(norm > 0, rho / norm, 0.0)
    return c * f[:, None]


def ls_scales(c: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """float16 (n,): <c_r, u_r> / <u_r, u_r> for centred rows c and their decoded directions
    u (binary32, decoded with scale 1), clamped to float16's finite range; 0 where u_r = 0."""
    u = decoded.astype(np.float64)
    num = np.einsum("ij,ij->i", c, u)
    den = np.einsum("ij,ij->i", u, u)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        s = np.where(den > 0, num / den, 0.0)
    return np.clip(s, -F16_MAX, F16_MAX).astype("<f2")


def read(payload, rows: int) -> np.ndarray:
    """The scales at the end of a chunk's payload as binary64 (FormatError, rule
    adaptive-stream, for one that is not finite)."""
    from ..errors import FormatError

    s = np.frombuffer(payload, "<f2", count=rows, offset=len(payload) - 2 * rows)
    s = s.astype(np.float64)
    if not np.all(np.isfinite(s)):
        raise FormatError("a vector's scale is not finite", rule="adaptive-stream")
    return s
