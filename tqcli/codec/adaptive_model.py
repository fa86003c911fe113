"""The adaptive coding's model (issue 24, spec section 21): a fitted basis, one uniform
step for every component, per-class Gaussian models, and the rate control that picks them.

API (small on purpose; tqcli/codec/codings/adaptive.py and the library use it):

    Basis                  a fitted basis (reusable: shards given one Basis share it; each
                           file still stores what it uses)
    fit_basis(x_or_blocks) a Basis from an (n, d) array or an iterable of (r, d) blocks
                           (through tqcli.codec.fitting.fit_spectrum, the one fitting seam)
    plan(basis, n, bits=, nmse=)
                           the AdaptiveModel a file of n vectors gets for a target: `bits`
                           R means the bytes of the fixed coding's payload at R bits,
                           n (d R / 8 + 4), with the basis and models counted; `nmse` the
                           largest step whose predicted error is at most that
    AdaptiveModel          what the header stores (spec 21.2)

How a step decides the rest (all from the fitted variances v_i, none from the data again):
  - component i's values y_i = <x - mean, b_i> are quantised to round(y_i / step), clamped
    to its class's cells; its rate R_i and error D_i follow from a Gaussian of variance v_i
    under the class's stored frequencies and codebook;
  - component i is kept iff what it removes from the error pays for its bits and its basis
    row at the slope of the high-rate curve, lambda = 2 ln 2 step^2 / 12 per bit (reverse
    water-filling with the basis bytes counted); the kept ones are a prefix by variance;
  - the basis is stored int8 (a float32 scale per row), float16 or float32: the one whose
    file has the least predicted error at the target bytes (or the fewest bytes at the target
    error), counting the error its rounding adds, 2 sum v_i |b~_i - b_i|^2 (the encoder
    projects with the stored rows, the decoder multiplies by them);
  - classes: r = sigma / step on a log grid, CLASSES_PER_OCTAVE per octave from R_MIN; a
    class's model is the Gaussian of its centre ratio: cells -K..K (K covers SPAN sigma),
    conditional-mean codebook, frequencies (each >= 1) summing to 2^P;
  - a scaled Basis (fit_basis's default) codes directions and 16 bits a vector of scales.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

PRECISION = 16            # frequencies of every class sum to 2^16
LANES = 8                 # interleaved coder states per stream (spec 19.3)
SPAN = 7.0                # a class's cells cover +-SPAN sigma of its centre ratio
MAX_HALF = 2047           # K <= 2047: at most 4095 symbols per class
R_MIN = 2.0 ** -3         # the lowest class's lower edge (sigma / step)
CLASSES_PER_OCTAVE = 4
MAX_CLASSES = 255
BISECTIONS = 26           # halvings of the log-step range (about 1e-7 of it)
MAX_ADAPTIVE_DIM = 4096   # the basis is k x d: 32 MiB at d = 4096 in float16 (spec 21.6)
BASIS_DTYPES = ("float16", "float32", "int8")  # header codes 0, 1, 2


@dataclass(frozen=True, eq=False)
class Basis:
    """A fitted basis: mean (d,) float32 (the centre files store), components (m, d)
    float64 orthonormal rows by decreasing variance, variances (m,) float64, rows fitted."""

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    rows: int
    scaled: bool = False  # fitted to the rows' directions: files store a scale per vector
    rho: float = 1.0      # the rms norm of the centred rows (directions are coded at it)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def key(self) -> bytes:
        """Bytes identifying it (options compare bases by value)."""
        import hashlib

        h = hashlib.sha256()
        for a in (self.mean, self.components, self.variances, [self.scaled, self.rho]):
            h.update(np.ascontiguousarray(a, getattr(a, "dtype", np.float64)).tobytes())
        return h.digest()


def fit_basis(data, scaled: bool | None = None) -> Basis:
    """The Basis of an (n, d) array (any float dtype) or an iterable of (r, d) blocks, read
    block by block (each checked as it passes).  scaled (21.3; None: when they pay,
    adaptive_scales.fit_scaled) refits to the directions, the blocks kept for that second
    pass.  InputError for non-finite values or a width the coding does not take."""
    import itertools

    from .fitting import fit_spectrum

    if isinstance(data, np.ndarray) or hasattr(data, "shape"):
        a = np.asarray(data)
        it = iter([a.reshape(-1, a.shape[-1]) if a.ndim != 2 else a])
    else:
        it = iter(data)
    first = next(it, None)
    if first is None:
        raise InputError("fit_basis: no blocks given")
    dim = int(np.shape(first)[-1])
    problem = dim_problem(dim)
    if problem:
        raise InputError(problem)

    def checked():
        row = 0
        for b in itertools.chain([first], it):
            b = np.asarray(b)
            if b.dtype.kind != "f" or b.ndim != 2 or b.shape[1] != dim:
                raise InputError(f"fit_basis: blocks must be (r, {dim}) float arrays")
            bad = ~np.isfinite(b).all(axis=1)
            if bad.any():
                raise InputError(f"row {row + int(np.argmax(bad))}: contains NaN or infinite "
                                 f"values", kind="non-finite")
            row += b.shape[0]
            yield b

    kept = []
    s = fit_spectrum((b for b in checked() if scaled is False or kept.append(b) or 1), dim)
    with np.errstate(over="ignore"):
        mean = s.mean.astype(np.float32)
    rho, rows = 1.0, s.rows
    if scaled is not False:
        from .adaptive_scales import fit_scaled

        scaled, rho, s = fit_scaled(kept, mean, s, dim, scaled)
    return Basis(mean=mean, components=np.asarray(s.components, np.float64),
                 variances=np.maximum(np.asarray(s.variances, np.float64), 0.0), rows=rows,
                 scaled=bool(scaled), rho=float(rho))



def dim_problem(dim: int) -> str | None:
    if not 2 <= dim <= MAX_ADAPTIVE_DIM:
        return f"the adaptive coding takes vectors of 2 to {MAX_ADAPTIVE_DIM} values, not {dim}"
    return None


@dataclass(frozen=True, eq=False)
class AdaptiveModel:
    """What the header stores (spec 21.2).  basis: (k, d) float32 holding the stored
    values exactly (float16 ones widened; int8 ones as RN32(scale q)); basis_scales: the
    int8 rows' float32 scales (k,), else None; classes: uint8 (k,); codebooks /
    frequencies: one float32 / uint16 array per class (M_c each)."""

    basis: np.ndarray
    basis_dtype: str
    precision: int
    lanes: int
    step: float
    rate: float       # predicted bits per vector of the component streams (informative)
    nmse: float       # predicted error (informative)
    classes: np.ndarray
    codebooks: tuple
    frequencies: tuple
    basis_scales: np.ndarray | None = None
    scales: int = 0    # 1: a float16 scale per vector after its cells (21.4)
    rho: float = 1.0   # the encoder's norm of directions (not stored; 1 when read)

    def basis_codes(self) -> np.ndarray:
        """The int8 basis's stored integers (k, d)."""
        q = np.rint(self.basis.astype(np.float64) / self.basis_scales.astype(np.float64)[:, None])
        return q.astype(np.int8)

    @property
    def k(self) -> int:
        return int(self.basis.shape[0])

    @property
    def n_classes(self) -> int:
        return len(self.codebooks)

    @property
    def halves(self) -> np.ndarray:
        """K_c of each class (M_c = 2 K_c + 1)."""
        return np.array([(len(c) - 1) // 2 for c in self.codebooks], np.int64)


def _ndtr(z):
    from scipy.special import ndtr

    return ndtr(z)


def _phi(z):
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def half_cells(ratio: float) -> int:
    return int(min(MAX_HALF, max(1, math.ceil(SPAN * ratio + 0.5))))


def class_of(ratio: np.ndarray) -> np.ndarray:
    """The class index of sigma / step ratios (0 below R_MIN)."""
    with np.errstate(divide="ignore"):
        c = np.floor(CLASSES_PER_OCTAVE * np.log2(np.maximum(ratio, 1e-300) / R_MIN))
    return np.clip(c, 0, MAX_CLASSES - 1).astype(np.int64)


def class_ratio(c: int) -> float:
    return R_MIN * 2.0 ** ((c + 0.5) / CLASSES_PER_OCTAVE)


def _cell_moments(sigma: np.ndarray, half: int):
    """(p, m1, m2) of cells j = -K..K (unit step, outer cells open) under N(0, sigma^2)
    for each sigma: arrays (len(sigma), 2K + 1)."""
    j = np.arange(-half, half + 1, dtype=np.float64)
    lo = (j - 0.5)[None, :]
    hi = (j + 0.5)[None, :]
    lo = np.where(j[None, :] == -half, -np.inf, lo)
    hi = np.where(j[None, :] == half, np.inf, hi)
    s = np.maximum(sigma, 1e-300)[:, None]
    a, b = lo / s, hi / s
    p = np.maximum(_ndtr(b) - _ndtr(a), 0.0)
    pa = np.where(np.isfinite(a), _phi(np.where(np.isfinite(a), a, 0.0)), 0.0)
    pb = np.where(np.isfinite(b), _phi(np.where(np.isfinite(b), b, 0.0)), 0.0)
    m1 = s * (pa - pb)
    aa = np.where(np.isfinite(a), a, 0.0)
    bb = np.where(np.isfinite(b), b, 0.0)
    m2 = s * s * (p + aa * pa - bb * pb)
    return p, m1, m2


def frequencies(p: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Integer frequencies >= 1 summing to 2^precision, proportional to p (the entropy
    coding's rule: rounded, then the difference taken from or given to the most probable
    symbols in turn)."""
    from .codings.entropy_model import frequencies as f

    return f(p, precision)


def class_model(c: int, precision: int = PRECISION):
    """(codebook in units of the step, float64; frequencies uint16) of class c."""
    r = class_ratio(c)
    half = half_cells(r)
    p, m1, _ = _cell_moments(np.array([r]), half)
    p, m1 = p[0], m1[0]
    j = np.arange(-half, half + 1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cm = np.where(p > 1e-300, m1 / np.maximum(p, 1e-300), j)
    cm = np.clip(cm, j - 0.5, j + 0.5)
    return cm, frequencies(p / p.sum(), precision)


@functools.lru_cache(maxsize=None)
def _class(c: int):
    return class_model(c)


def component_costs(sigma: np.ndarray, classes: np.ndarray, step: float,
                    precision: int = PRECISION):
    """(rate bits, error) of each component of std sigma coded with its class's model at
    `step`, codebook values rounded to float32 as stored."""
    rate = np.empty(sigma.size)
    err = np.empty(sigma.size)
    for c in np.unique(classes):
        sel = np.flatnonzero(classes == c)
        cm, f = _class(int(c))
        half = (cm.size - 1) // 2
        p, m1, m2 = _cell_moments(sigma[sel] / step, half)
        bits = precision - np.log2(f.astype(np.float64))
        rate[sel] = p @ bits
        cb = (cm * step).astype(np.float32).astype(np.float64) / step
        e = (m2 - 2 * m1 * cb[None, :] + p * cb[None, :] ** 2).sum(axis=1)
        err[sel] = np.maximum(e, 0.0) * step * step
    return rate, err


def _stream_overhead_bits(n_classes: int, n: int, d: int, lanes: int) -> float:
    """Bits per vector the streams' states and lengths cost (4 + 8 L + 2 bytes a stream),
    over chunks as tq cuts them from d alone (so that the model does not depend on the
    chunk size a file asks for)."""
    from .. import limits

    chunks = max(1, -(-n // limits.default_chunk_rows(d)))
    return chunks * n_classes * (4 + 8 * lanes + 2) * 8 / max(n, 1)


def store_basis(rows: np.ndarray, dtype: str):
    """(values as float32, int8 scales or None) of basis rows stored as `dtype`: float16 /
    float32 rounded to nearest; int8: s = RN32(max |b| / 127), q = rint(b / s), the value
    RN32(s q) (spec 21.2)."""
    if dtype != "int8":
        return rows.astype(np.dtype(dtype)).astype(np.float32), None
    top = np.abs(rows).max(axis=1) if rows.size else np.zeros(rows.shape[0])
    scales = (top / 127).astype(np.float32)
    scales[scales == 0] = np.float32(1.0)
    q = np.clip(np.rint(rows / scales.astype(np.float64)[:, None]), -127, 127)
    return (q * scales.astype(np.float64)[:, None]).astype(np.float32), scales


def basis_row_bytes(d: int, dtype: str) -> int:
    return {"float16": 2 * d, "float32": 4 * d, "int8": d + 4}[dtype]


def _costs(basis: Basis, step: float):
    """Rate bits and error of every component at `step`, and their classes."""
    sigma = np.sqrt(basis.variances)
    cls = class_of(sigma / step)
    rate, err = component_costs(sigma, cls, step)
    return cls, rate, err


_ROUNDING: dict = {}


def _rounding(basis: Basis, dtype: str) -> np.ndarray:
    """|b~_i - b_i|^2 of every component stored as dtype (cached per basis object: the
    cache holds the object, so that its id cannot be reused while cached)."""
    key = (id(basis), dtype)
    hit = _ROUNDING.get(key)
    if hit is None or hit[0] is not basis:
        stored, _ = store_basis(basis.components, dtype)
        hit = (basis, ((stored.astype(np.float64) - basis.components) ** 2).sum(axis=1))
        _ROUNDING[key] = hit
        while len(_ROUNDING) > 12:
            _ROUNDING.pop(next(iter(_ROUNDING)))
    return hit[1]


def _evaluate(basis: Basis, n: int, step: float, chunk_rows: int, dtype: str):
    """Everything a step decides: (kept count k, classes (k,), bytes of the header block,
    predicted payload bits per vector, predicted error per vector)."""
    v = basis.variances
    d = basis.dim
    cls, rate, err = _costs(basis, step)
    lam = 2 * math.log(2) * step * step / 12
    rounding = 2 * v * _rounding(basis, dtype)
    basis_bits = 8 * basis_row_bytes(d, dtype) / max(n, 1)
    keep = (v - err - rounding) > lam * (rate + basis_bits)
    rate_scale = 16 if basis.scaled else 0  # a float16 scale per vector
    k = int(np.argmin(keep)) if not keep.all() else v.size
    k = max(1, k)
    code_err = float(err[:k].sum() + rounding[:k].sum() + v[k:].sum())
    used = np.unique(cls[:k])
    block = header_block_size(k, d, dtype, [2 * half_cells(class_ratio(int(c))) + 1
                                            for c in used])
    bits = float(rate[:k].sum()) + _stream_overhead_bits(used.size, n, d, LANES) + rate_scale
    return k, cls[:k], block, bits, code_err


def header_block_size(k: int, d: int, dtype: str, symbols) -> int:
    """Bytes of the coding's header block (spec 21.2)."""
    return (FIXED_BLOCK + 2 * len(symbols) + 6 * int(sum(symbols)) + k
            + k * basis_row_bytes(d, dtype))


FIXED_BLOCK = 32  # codings/adaptive.py _BLOCK: k, classes, dtype, precision, lanes, 0, 3 f64


def plan(basis: Basis, n: int, chunk_rows: int, bits: float | None = None,
         nmse: float | None = None) -> AdaptiveModel:
    """The model of a file of n vectors under a target: `bits` R (the bytes of the fixed
    coding's payload at R bits per coordinate with its 4-byte scale, n (d R / 8 + 4), for
    the header block and the payloads together) or `nmse` (the predicted error)."""
    d = basis.dim
    v = basis.variances
    energy = float(np.dot(basis.mean.astype(np.float64), basis.mean.astype(np.float64))
                   + v.sum())
    top = math.sqrt(max(float(v.max()) if v.size else 0.0, 0.0))
    if top <= 0 or energy <= 0:  # constant data: the mean says it all
        top = max(top, 1e-30)
    if not math.isfinite(energy) or 64 * top > float(np.finfo(np.float32).max) / 4:
        raise ValueError(f"the data's spread ({top:.3g} along its first component) is "
                         f"beyond the adaptive coding's float32 codebooks; use the fixed "
                         f"or entropy coding")
    # the step's range: from where the largest component needs MAX_HALF cells to where
    # every component falls in the middle cell
    lo0, hi0 = math.log(top * SPAN / (MAX_HALF - 1)), math.log(top * 64)
    if nmse is not None and not 0 < float(nmse) < 1:
        raise ValueError(f"nmse must be between 0 and 1, got {nmse!r}")
    best = None
    for dtype in ("int8", "float16", "float32"):
        if dtype == "float32" and best is not None and best[1] == "float16" and best[3]:
            continue  # float16's rounding is negligible there: twice its bytes cannot win
        lo, hi = lo0, hi0
        if bits is not None:
            budget = max(n, 1) * (d * float(bits) / 8 + 4)
            for _ in range(BISECTIONS):  # the smallest step that fits the bytes
                mid = 0.5 * (lo + hi)
                _, _, block, b, _ = _evaluate(basis, n, math.exp(mid), chunk_rows, dtype)
                if block + max(n, 1) * b / 8 <= budget:
                    hi = mid
                else:
                    lo = mid
            step = math.exp(hi)
        else:
            goal = float(nmse) * energy
            for _ in range(BISECTIONS):  # the largest step whose predicted error meets the goal
                mid = 0.5 * (lo + hi)
                if _evaluate(basis, n, math.exp(mid), chunk_rows, dtype)[4] <= goal:
                    lo = mid
                else:
                    hi = mid
            step = math.exp(lo)
        _, _, block, b, err = _evaluate(basis, n, step, chunk_rows, dtype)
        # bits: the least error at the bytes; nmse: the fewest bytes at the error
        # (a dtype whose rounding alone exceeds the goal does not meet it at any step)
        size = block + max(n, 1) * b / 8
        if bits is not None:
            score = (err, size)
        else:  # the fewest bytes among those meeting the goal; else the least error
            score = (0, size, err) if err <= goal * (1 + 1e-9) else (1, err, size)
        if best is None or score < best[0]:
            k = _evaluate(basis, n, step, chunk_rows, dtype)[0]
            tiny = 2 * float((v[:k] * _rounding(basis, dtype)[:k]).sum()) < 1e-3 * err
            best = (score, dtype, step, tiny)
    return model_at(basis, n, chunk_rows, best[2], best[1], energy)


def model_at(basis: Basis, n: int, chunk_rows: int, step: float, dtype: str = "float16",
             energy: float | None = None) -> AdaptiveModel:
    """The AdaptiveModel of one step and basis dtype (what plan settles on)."""
    k, cls, _, bits, err = _evaluate(basis, n, step, chunk_rows, dtype)
    if energy is None:
        energy = float(np.dot(basis.mean.astype(np.float64), basis.mean.astype(np.float64))
                       + basis.variances.sum())
    # the expansion floor (spec 13.9, 21.6): every row costs at least FLOOR_BITS(d) bits,
    # so that tq reads back what it writes under the default expansion limit: enough
    # components, each symbol at least floor / k bits
    need = floor_bits(basis.dim)
    if k * (PRECISION - 2) < need:
        k = min(basis.dim, math.ceil(need / (PRECISION - 2)))
        cls = class_of(np.sqrt(basis.variances[:k]) / step)
    least = need / k
    used = np.unique(cls)
    compact = np.searchsorted(used, cls).astype(np.uint8)
    codebooks, freqs = [], []
    for c in used:
        cm, f = _class(int(c))
        codebooks.append((cm * step).astype(np.float32))
        freqs.append(cap_frequencies(f, least))
    stored, scales = store_basis(basis.components[:k], dtype)
    return AdaptiveModel(basis=stored, basis_dtype=dtype, precision=PRECISION, lanes=LANES,
                         step=float(step), rate=float(bits),
                         nmse=float(err / energy) if energy > 0 else 0.0, classes=compact,
                         codebooks=tuple(codebooks), frequencies=tuple(freqs),
                         basis_scales=scales, scales=int(basis.scaled), rho=basis.rho)


def floor_bits(d: int) -> float:
    """Bits a row costs at least in tq's files: 1.25 times what keeps a float64 row of d
    values within the default expansion limit (limits.DEFAULT_MAX_RATIO)."""
    from .. import limits

    return 1.25 * 8 * 8 * d / limits.DEFAULT_MAX_RATIO


def cap_frequencies(f: np.ndarray, least: float, precision: int = PRECISION) -> np.ndarray:
    """f with its largest frequency lowered so that every symbol costs at least `least`
    bits (precision - log2 f >= least), the units taken given to its neighbours."""
    cap = int(2 ** (precision - least))
    f = f.astype(np.int64).copy()
    top = int(np.argmax(f))
    if f[top] <= cap:
        return f.astype(np.uint16)
    extra = int(f[top]) - cap
    f[top] = cap
    left, right = top - 1, top + 1
    if left < 0:
        f[right] += extra
    elif right >= f.size:
        f[left] += extra
    else:
        f[left] += extra // 2
        f[right] += extra - extra // 2
    return f.astype(np.uint16)


def batch_rows(dim: int, options) -> int:
    """Rows of the encoder's first batch (library/api.py: chunk_rows times
    format/memory.py batch_chunks), from which adapt=True fits its basis."""
    from .. import limits

    chunk = options.chunk_rows or limits.default_chunk_rows(dim)
    batch = max(1, (1 << 24) // (chunk * dim * 4))
    return chunk * batch


def identity_basis(dim: int) -> Basis:
    """The basis of no data: the identity, zero mean, the variances of a uniform unit vector
    (1 / d each)."""
    return Basis(mean=np.zeros(dim, np.float32), components=np.eye(dim),
                 variances=np.full(dim, 1.0 / dim), rows=0)


def fitted_options(options, first, dim: int):
    """`options` with adapt=True replaced by a Basis: `first` itself when it is one, else
    that of the rows `first` (None or no rows: identity_basis); the centre is its mean."""
    if isinstance(first, Basis):
        basis = first
    elif first is None or first.shape[0] == 0:
        basis = identity_basis(dim)
    else:
        basis = fit_basis(first)
    return options.replace(adapt=basis, center=False)
