"""The entropy coding's model: a uniform grid on the coordinate law, and its rate and error.

After the rotation every coordinate y of a unit vector follows the law f_d of
tqcli/codec/codebook.py, known in advance.  The `entropy` coding (tqcli/codec/codings/entropy.py)
quantises y on a uniform grid of step `step`: cell k (k = -K..K) holds
[(k - 1/2) step, (k + 1/2) step), the two outer cells reach to -1 and +1, so every value of
the law has a cell (no escape symbol).  Each cell is reconstructed at the law's conditional
mean inside it, and its index is coded with static integer frequencies proportional to the
cell's probability (at least 1 each, summing to 2^precision).  Everything follows from
(d, step): the model needs no training and never looks at the data.

The grid stops at K = the cells covering +-SPAN standard deviations (or the whole of
[-1, 1] when that is narrower): beyond 7 sigma the law holds about 10^-12 of its mass, so the
outer cells cost nothing in rate and at most that in error.

Rate control inverts the two curves of a step, both monotone in it and both computed
from the law alone: `rate_of` (expected code bits per coordinate under the stored integer
frequencies, the exact expectation of what the coder writes, up to its flush) and
`nmse_of` (expected squared error of a unit vector).
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from ... import limits
from .. import codebook

SPAN = 7.0            # the grid covers +-SPAN standard deviations of the law (sigma = 1/sqrt(d))
PRECISION = 16        # tq's frequency precision: frequencies sum to 2^16
LANES = 8             # tq's interleaved coder states per segment
SEGMENT_SYMBOLS = 1 << 16   # tq aims a segment (one independent stream) at about 64K symbols
MIN_SYMBOLS, MAX_SYMBOLS = 2, 4096
MIN_PRECISION, MAX_PRECISION = 8, 16
MIN_LANES, MAX_LANES = 1, 32
MIN_RATE, MAX_RATE = 1.0, 8.0   # the bits per coordinate tq's rate control accepts
CACHE_FOLDER = "entropy"        # its solved models, under codebook.cache_dir()


@dataclass(frozen=True)
class Grid:
    """The cells of one step: their centroids (float32, increasing), their probabilities
    under the law (float64) and the encoder's thresholds (binary64 edges between cells)."""

    step: float
    half: int                  # K: cells -K..K, M = 2K + 1 symbols
    centroids: np.ndarray      # float32 (M,)
    probabilities: np.ndarray  # float64 (M,), summing to 1
    thresholds: np.ndarray     # float64 (M - 1,): (j - K + 1/2) * step

    @property
    def symbols(self) -> int:
        return self.centroids.size


def half_cells(d: int, step: float) -> int:
    """K for step: the smallest K >= 1 whose outer edge (K - 1/2) step reaches the span."""
    span = min(1.0, SPAN / math.sqrt(d))
    return max(1, math.ceil(span / step - 0.5))


@functools.lru_cache(maxsize=256)
def grid(d: int, step: float) -> Grid:
    """The grid of `step` on f_d, its conditional-mean centroids and cell probabilities."""
    k = half_cells(d, step)
    # positive cells 1..K: [(j - 1/2) step, (j + 1/2) step), the last one up to 1
    edges = np.minimum((np.arange(1, k + 1) - 0.5) * step, 1.0)
    edges = np.concatenate([edges, [1.0]])
    mass, moment = codebook._moments(edges, d)
    mass = np.maximum(mass, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = np.where(mass > 0, moment / mass, 0.5 * (edges[:-1] + edges[1:]))
    # a centroid lies inside its cell: clip what rounding in a far tail may push out
    pos = np.clip(pos, edges[:-1], edges[1:])
    centre_mass = max(0.0, 1.0 - 2.0 * float(mass.sum()))
    cents = np.concatenate([-pos[::-1], [0.0], pos]).astype(np.float32)
    probs = np.concatenate([mass[::-1], [centre_mass], mass])
    probs = probs / probs.sum()
    thresholds = (np.arange(2 * k) - k + 0.5) * step
    if not np.all(np.diff(cents) > 0):
        raise ValueError(f"step {step} is too fine for float32 centroids at d = {d}")
    return Grid(step=float(step), half=k, centroids=cents, probabilities=probs,
                thresholds=thresholds)


def frequencies(probabilities: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Integer frequencies, each >= 1, summing to 2^precision, proportional to the
    probabilities: rounded, then the difference to the total taken from (or given to) the
    most probable symbols in turn (a fixed order: by probability, then by index)."""
    p = np.asarray(probabilities, np.float64)
    total = 1 << precision
    if p.size > total:
        raise ValueError(f"{p.size} symbols do not fit frequencies of total 2^{precision}")
    f = np.maximum(1, np.floor(p * total + 0.5)).astype(np.int64)
    order = np.argsort(-p, kind="stable")
    diff = total - int(f.sum())
    while diff != 0:
        for s in order:
            if diff > 0:
                f[s] += 1
                diff -= 1
            elif f[s] > 1:
                f[s] -= 1
                diff += 1
            if diff == 0:
                break
    return f.astype(np.uint16)  # each f <= 2^16 - 1: there are at least 2 symbols


def rate_of(d: int, step: float, precision: int = PRECISION) -> float:
    """Expected code bits per coordinate: sum_s p_s (precision - log2 f_s)."""
    g = grid(d, step)
    f = frequencies(g.probabilities, precision).astype(np.float64)
    return float(np.sum(g.probabilities * (precision - np.log2(f))))


def nmse_of(d: int, step: float) -> float:
    """Expected ||u - u_hat||^2 of a uniform unit vector u (the error with the norm as the
    scale; the least-squares scale removes a little more): d (E[y^2] - sum_s p_s c_s^2)
    with the float32 centroids, which are the conditional means up to rounding."""
    g = grid(d, step)
    c = g.centroids.astype(np.float64)
    # E[(y - c)^2] = E[y^2] - 2 sum c_s m1_s + sum c_s^2 p_s, and m1_s ~ c_s p_s
    return float(max(0.0, d * (1.0 / d - np.sum(g.probabilities * c * c))))


def _bisect(f, target: float, increasing: bool) -> float:
    """The step (on a log scale, 2^-16 sigma .. 2) where f(step) crosses target."""
    lo, hi = math.log(1e-7), math.log(2.0)
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        above = f(math.exp(mid)) > target
        if above == increasing:
            hi = mid
        else:
            lo = mid
    return math.exp(lo if increasing else hi)


def step_for_rate(d: int, rate: float, overhead: float = 0.0,
                  precision: int = PRECISION) -> float:
    """The step whose expected code length is `rate` - `overhead` bits per coordinate
    (overhead: the coder's flush and length fields, spread over the coordinates)."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"rate must be from {MIN_RATE:g} to {MAX_RATE:g} bits per coordinate, "
                         f"got {rate!r}")
    return _bisect(lambda s: rate_of(d, s, precision), rate - overhead, increasing=False)


def step_for_nmse(d: int, nmse: float) -> float:
    """The largest step whose expected error is at most nmse (from the law)."""
    if not 0 < nmse < 1:
        raise ValueError(f"nmse must be between 0 and 1, got {nmse!r}")
    return _bisect(lambda s: nmse_of(d, s), nmse, increasing=True)


def rate_for_nmse(d: int, nmse: float, precision: int = PRECISION) -> float:
    return rate_of(d, step_for_nmse(d, nmse), precision)


# ---------------------------------------------------------------------- the model of a target


@dataclass(frozen=True)
class Model:
    """What a header stores for a target: the step, the centroids, the frequencies and the
    expected code bits per coordinate."""

    step: float
    centroids: np.ndarray   # float32 (M,)
    frequencies: np.ndarray  # uint16 (M,)
    rate: float


def model_for(d: int, *, rate: float | None = None, nmse: float | None = None,
              overhead: float = 0.0) -> Model:
    """The model for a rate (less `overhead` bits per coordinate) or an error target.

    Solved models are kept in tq's cache folder (codebook.cache_dir(), as the Lloyd-Max
    codebooks are), so that a run whose model was solved before does not import scipy; an
    entry that is unreadable or implausible is ignored and solved again."""
    key = (f"d{d}-nmse{float(nmse).hex()}" if nmse is not None
           else f"d{d}-rate{float(rate).hex()}-over{float(overhead).hex()}")
    key += f"-p{PRECISION}-span{SPAN.hex()}"
    path = os.path.join(codebook.cache_dir(), CACHE_FOLDER, key + ".json")
    cached = _read_model(path)
    if cached is not None:
        return cached
    if nmse is not None:
        step = step_for_nmse(d, float(nmse))
    else:
        step = step_for_rate(d, float(rate), overhead)
    g = grid(d, step)
    model = Model(step=float(step), centroids=g.centroids,
                  frequencies=frequencies(g.probabilities, PRECISION),
                  rate=rate_of(d, step, PRECISION))
    _write_model(path, model)
    return model


def _read_model(path: str) -> Model | None:
    try:
        with open(path) as f:
            raw = json.load(f)
        cents = np.array([float.fromhex(v) for v in raw["centroids"]], np.float64)
        model = Model(step=float.fromhex(raw["step"]), centroids=cents.astype(np.float32),
                      frequencies=np.asarray(raw["frequencies"], np.int64).astype(np.uint16),
                      rate=float.fromhex(raw["rate"]))
        m = model.centroids.size
        ok = (MIN_SYMBOLS <= m <= MAX_SYMBOLS and model.frequencies.size == m
              and np.array_equal(cents, model.centroids.astype(np.float64))
              and np.all(np.isfinite(cents)) and np.all(np.diff(cents) > 0)
              and int(np.asarray(raw["frequencies"]).min()) >= 1
              and int(np.asarray(raw["frequencies"]).max()) < 1 << 16
              and int(np.sum(raw["frequencies"])) == 1 << PRECISION
              and math.isfinite(model.step) and model.step > 0 and math.isfinite(model.rate))
        return model if ok else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_model(path: str, model: Model) -> None:
    raw = {"step": model.step.hex(), "rate": model.rate.hex(),
           "centroids": [float(c).hex() for c in model.centroids],
           "frequencies": [int(f) for f in model.frequencies]}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(raw, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only or full cache only costs the next run the solve


def law_theory(d: int, step: float) -> dict:
    """The law's error of the grid of `step` ("optimum") and the rate-distortion bound at
    its rate ("lower_bound"), as eval reports them."""
    return {"optimum": nmse_of(d, step), "lower_bound": 4.0 ** -rate_of(d, step)}


def segment_rows_for(dim: int, chunk_rows: int) -> int:
    """tq's segment: the largest power of two of rows with at most 64K symbols, 8 at least,
    at most a chunk (so that a chunk's segments decode in parallel)."""
    rows = max(1, SEGMENT_SYMBOLS // dim)
    rows = 1 << (rows.bit_length() - 1)
    return int(min(chunk_rows, max(8, rows)))


def rate_overhead(dim: int) -> float:
    """Bits per coordinate that tq's rate control sets aside for the coder's flush and stream
    lengths, about 4 + 6 L bytes a segment, so that a file meets the requested size: over a
    segment as tq cuts it from d alone, so that the grid does not depend on the chunk size."""
    return (4 + 6 * LANES) * 8 / (segment_rows_for(dim, limits.MAX_CHUNK_ROWS) * dim)
