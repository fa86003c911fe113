"""Lloyd-Max codebooks for one coordinate of a uniformly random unit vector.

A coordinate t of a uniform random point on the unit sphere in R^d has density

    f_d(t) = Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)) * (1 - t^2)^((d-3)/2),   -1 <= t <= 1,

that is (t + 1)/2 ~ Beta((d-1)/2, (d-1)/2).  Both quantities a Lloyd-Max iteration needs
have closed forms: the mass of an interval is a regularised incomplete beta function and
its first moment is an elementary expression, so no quadrature grid is involved.

The law is symmetric, so only the positive half of the codebook is iterated; the negative
half is its mirror image, which makes the stored table exactly symmetric.

Solved codebooks are kept in a small per-user cache (TQ_CACHE_DIR, else
$XDG_CACHE_HOME/tq or ~/.cache/tq), so that a run whose codebooks were solved before does
not even import scipy.  A cache entry that is unreadable or implausible is ignored.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile

import numpy as np

MAX_BITS = 8
_MAX_ITER = 20000
_TOL = 1e-15


def _upper_tail(t: np.ndarray, d: int) -> np.ndarray:
    """P(T > t) for t >= 0, computed without cancellation in the tail."""
    from scipy import special

    a = (d - 1) / 2.0
    return special.betainc(a, a, (1.0 - t) / 2.0)


def _log_density_constant(d: int) -> float:
    return math.lgamma(d / 2.0) - 0.5 * math.log(math.pi) - math.lgamma((d - 1) / 2.0)


def _log_density(t: np.ndarray, d: int) -> np.ndarray:
    return _log_density_constant(d) + (d - 3) / 2.0 * np.log1p(-(t * t))


def _moments(edges: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Mass and first moment of f_d on each interval [edges[i], edges[i+1]], 0 <= edges <= 1."""
    tail = _upper_tail(edges, d)
    mass = tail[:-1] - tail[1:]
    # integral_a^b t (1-t^2)^((d-3)/2) dt = [g(a) - g(b)] / (d-1), g(t) = (1-t^2)^((d-1)/2);
    # formed as g(b) * expm1(log g(a) - log g(b)) to stay accurate for narrow cells.
    k = (d - 1) / 2.0
    with np.errstate(divide="ignore"):
        log_g = k * np.log1p(-(edges * edges))  # -inf at t = 1
    lo, hi = log_g[:-1], log_g[1:]
    at_end = np.isneginf(hi)
    safe_hi = np.where(at_end, 0.0, hi)
    diff = np.where(at_end, np.exp(lo), np.exp(safe_hi) * np.expm1(lo - safe_hi))
    moment = math.exp(_log_density_constant(d)) * diff / (d - 1)
    return mass, moment


def _initial_half(d: int, half: int) -> np.ndarray:
    """Positive centroids placed by the asymptotic (Panter-Dite) point density f_d^(1/3).

    f_d^(1/3) is again a symmetric beta law, with parameter (d+3)/6, so its quantiles are
    available in closed form and the starting point is already close to the optimum.
    """
    from scipy import special

    alpha = (d + 3) / 6.0
    k = 2 * half
    probs = (np.arange(half, k) + 0.5) / k
    return 2.0 * special.betaincinv(alpha, alpha, probs) - 1.0


def _half_edges(inner: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], inner, [1.0]])


def cache_dir() -> str:
    explicit = os.environ.get("TQ_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tq")


def _cache_file(d: int, bits: int) -> str:
    return os.path.join(cache_dir(), "codebooks", f"lloyd-max-d{d}-b{bits}.f64")


def _read_cached(d: int, bits: int) -> tuple[float, ...] | None:
    half = 1 << (bits - 1)
    try:
        with open(_cache_file(d, bits), "rb") as f:
            raw = f.read(8 * half + 1)
    except OSError:
        return None
    if len(raw) != 8 * half:
        return None
    c = np.frombuffer(raw, dtype="<f8")
    if not (np.all(np.isfinite(c)) and c[0] > 0 and c[-1] < 1 and np.all(np.diff(c) > 0)):
        return None
    return tuple(float(v) for v in c)


def _write_cached(d: int, bits: int, half: tuple[float, ...]) -> None:
    path = _cache_file(d, bits)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(np.asarray(half, dtype="<f8").tobytes())
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only or full cache only costs the next run the solve


@functools.lru_cache(maxsize=None)
def _lloyd_max_half(d: int, bits: int) -> tuple[float, ...]:
    cached = _read_cached(d, bits)
    if cached is not None:
        return cached
    half = _solve_half(d, bits)
    _write_cached(d, bits, half)
    return half


def _solve_half(d: int, bits: int) -> tuple[float, ...]:
    """Positive half of the Lloyd-Max codebook, solved by Newton's method on the thresholds.

    The fixed point t_i = (c_i + c_{i+1}) / 2, with c_i the centroid of [t_{i-1}, t_i], is a
    tridiagonal system in the inner thresholds; Newton converges in a handful of steps from
    the Panter-Dite start, where plain Lloyd iteration needs tens of thousands at b = 8.
    """
    from scipy import linalg

    half = 1 << (bits - 1)
    c = _initial_half(d, half)
    inner = 0.5 * (c[:-1] + c[1:])

    def residual(inner):
        mass, moment = _moments(_half_edges(inner), d)
        cent = moment / mass
        return inner - 0.5 * (cent[:-1] + cent[1:]), cent, mass

    r, cent, mass = residual(inner)
    for _ in range(100):
        if half == 1 or np.max(np.abs(r)) <= _TOL * cent[-1]:
            break
        edges = _half_edges(inner)
        dens = np.exp(_log_density(edges[1:-1], d))  # f at each inner threshold
        # centroid of cell j moves with its upper end by f(hi)(hi - c)/P and with its lower
        # end by f(lo)(c - lo)/P; threshold i sits between cells i and i+1.
        up = dens * (edges[1:-1] - cent[:-1]) / mass[:-1]   # d c_i / d t_i
        down = dens * (cent[1:] - edges[1:-1]) / mass[1:]   # d c_{i+1} / d t_i
        ab = np.zeros((3, half - 1))
        ab[1] = 1.0 - 0.5 * (up + down)
        ab[0, 1:] = -0.5 * up[1:]      # d r_i / d t_{i+1} through c_{i+1}
        ab[2, :-1] = -0.5 * down[:-1]  # d r_{i+1} / d t_i through c_{i+1}
        step = linalg.solve_banded((1, 1), ab, -r)
        lam = 1.0
        while True:
            trial = inner + lam * step
            edges_t = _half_edges(trial)
            if np.all(np.diff(edges_t) > 0):
                r_t, cent_t, mass_t = residual(trial)
                if np.max(np.abs(r_t)) < np.max(np.abs(r)) or lam < 1e-6:
                    break
            lam *= 0.5
        inner, r, cent, mass = trial, r_t, cent_t, mass_t
    return tuple(float(v) for v in cent)


def _check(d: int, bits: int) -> None:
    if not isinstance(d, (int, np.integer)) or d < 2:
        raise ValueError(f"dimension must be an integer >= 2, got {d!r}")
    if not isinstance(bits, (int, np.integer)) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an integer from 1 to {MAX_BITS}, got {bits!r}")


def lloyd_max_centroids(d: int, bits: int) -> np.ndarray:
    """The 2**bits optimal centroids for f_d, ascending, in float64 (memoised)."""
    _check(d, bits)
    half = np.array(_lloyd_max_half(int(d), int(bits)))
    return np.concatenate([-half[::-1], half])


def codebook(d: int, bits: int) -> np.ndarray:
    """The centroids tq stores and uses: the float64 optimum rounded to float32."""
    return lloyd_max_centroids(d, bits).astype(np.float32)


def boundaries(centroids: np.ndarray) -> np.ndarray:
    """Decision thresholds: exact float64 midpoints of neighbouring float32 centroids.

    A coordinate y gets the index of the number of thresholds strictly below it.
    """
    c = np.asarray(centroids, dtype=np.float64)
    return (c[:-1] + c[1:]) * 0.5


def float32_thresholds(bounds: np.ndarray) -> np.ndarray:
    """Thresholds in float32 that classify every float32 y exactly as the float64 ones do.

    For a float32 y and a float64 m, y > m holds exactly when y > f, f the largest float32
    not above m; the kernels can then compare in float32, 8 lanes per instruction.
    """
    m = np.asarray(bounds, np.float64)
    f = m.astype(np.float32)
    over = f.astype(np.float64) > m
    f[over] = np.nextafter(f[over], np.float32(-np.inf))
    return f


def search_table(thr32: np.ndarray) -> np.ndarray:
    """thr32 padded with +inf to a power of two, for the kernels' branchless binary search
    (used from 6 bits on, where one SIMD pass per threshold costs more)."""
    k = 1
    while k < thr32.size + 1:
        k *= 2
    out = np.full(k, np.inf, np.float32)
    out[:thr32.size] = thr32
    return out


def expected_distortion(d: int, bits: int, centroids: np.ndarray | None = None) -> float:
    """E||u - u_hat||^2 for a uniform unit vector u quantised coordinate-wise with `centroids`.

    With the Lloyd-Max centroids (the default) this is the exact optimum for this d and b.
    """
    _check(d, bits)
    c = lloyd_max_centroids(d, bits) if centroids is None else np.asarray(centroids, np.float64)
    pos = c[c.size // 2:]
    edges = np.concatenate([[0.0], boundaries(c)[c.size // 2:], [1.0]])
    mass, moment = _moments(edges, d)
    # per coordinate: E[(y - c)^2] = E[y^2] - 2 sum c_k m1_k + sum c_k^2 P_k, times 2 halves
    per_coord = 1.0 / d + 2.0 * np.sum(pos * pos * mass - 2.0 * pos * moment)
    return float(d * per_coord)
