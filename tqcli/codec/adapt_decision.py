"""`--adapt auto`: whether a fitted basis pays for itself on this data, decided before any
coding from the fitted spectrum and the byte budget (issue 24; spec section 22.4).

Both sides are predicted by the model each coding already uses for its rate control, for
the same target: the adaptive coding's plan (its error at the bytes of `-b R`, the basis and
models in the header counted, or its bytes at `--nmse X`), and the oblivious rotation: the
better of the coding the user would get otherwise (the packed coding's Lloyd-Max error at
b bits) and the entropy coding (its law at the rate), whose error on the data is its error
on a unit vector times the share of the energy it codes (all of it, or the centred part
when the user centres).  So the question is whether the BASIS pays, not whether entropy
coding beats fixed-length codes (it does at any spectrum, and a user who chose fixed-length
codes chose them for search and speed).  The basis is taken when
it is predicted to cut the error (or the bytes) by at least MARGIN; otherwise the file is
exactly what the same command without --adapt writes (same bytes).

What declines, and why it should: a flat spectrum (KV keys and values per head: coding gain
~1.0, so the basis bytes buy nothing), a small file (the basis, k x d values, is spread over
few vectors), and a fit that cannot describe the file (fewer fitted rows than
MIN_ROWS_PER_DIM x d while the file has more rows than were fitted: the sample's spectrum
then promises more than the rest of the file keeps).

This module imports numpy only when deciding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MARGIN = 0.9            # adapt when predicted error (or bytes) <= 0.9 x the other coding's
MIN_ROWS_PER_DIM = 2    # a partial fit needs at least 2 d rows to be trusted
NMSE_SLACK = 1.1        # --nmse X: the adaptive side's mean error per row must be <= 1.1 X


@dataclass(frozen=True)
class Decision:
    """adapt: take the adaptive coding; reason: one line for eval/inspect/--verbose;
    predicted: the figures compared (nmse or bytes of each side)."""

    adapt: bool
    reason: str
    predicted: dict = field(default_factory=dict)


def _entry(coding: str):
    from .codings import CODINGS

    return CODINGS.resolve(coding)


def rated_coding() -> str:
    """The name of the oblivious coding with fractional rates (the entropy coding)."""
    from .codings import CODINGS

    return next(c.name for c in CODINGS if c.fractional_rates and not c.data_fitted)


def oblivious_nmse(d: int, coding: str, bits=None, nmse=None) -> float:
    """The oblivious coding's predicted error on a unit vector (the share of the energy it
    codes is the caller's factor): the packed coding's Lloyd-Max optimum at b bits, the
    entropy coding's law at its rate or its target."""
    from .codings import entropy_model as em
    from .codebook import expected_distortion

    if _entry(coding).fractional_rates:  # the entropy coding's law
        if nmse is not None:
            return float(nmse)
        model = em.model_for(d, rate=float(bits), overhead=em.rate_overhead(d))
        return em.nmse_of(d, model.step)
    return expected_distortion(d, int(bits))


def oblivious_bytes_per_vector(d: int, coding: str, bits=None, nmse=None) -> float:
    """Payload bytes per vector the oblivious coding spends (its 4-byte scale included)."""
    from .codings import entropy_model as em

    if _entry(coding).fractional_rates and nmse is not None:
        return d * (em.rate_for_nmse(d, float(nmse)) + em.rate_overhead(d)) / 8 + 4
    return d * float(bits) / 8 + 4


def decide(spectrum, n: int, *, coding: str, bits=None, nmse=None, centered: bool = False,
           adaptive=None, inverse=None) -> Decision:
    """Whether `--adapt auto` takes the adaptive coding for a file of n vectors whose fit is
    `spectrum` (fields mean, variances, rows; a fitting.Spectrum or an adaptive Basis).

    coding / bits / nmse / centered: what the file would be coded with otherwise.
    adaptive(n) -> (predicted nmse, predicted total bytes) of the adaptive coding for the
    same target (bits: at the oblivious coding's bytes; nmse: the bytes it needs), or None
    when it cannot code this data (then it declines).

    inverse: (mean of 1/|x|^2, mean of x/|x|^2) over the fitted rows (zero rows left out),
    or None.  tq's nmse is the mean over the vectors of |x - x^|^2 / |x|^2 (tq eval): a
    coding with a scale per vector (the oblivious ones) has about the same relative error on
    every vector, the adaptive coding about the same absolute error, so on vectors of
    unequal norms (a KV cache) its mean relative error is its error over the energy times
    E mean(1/|x|^2) >= 1, and a centred oblivious coding's is its error times
    mean(|x - c|^2 / |x|^2) = 1 - 2 <mean(x/|x|^2), c> + |c|^2 mean(1/|x|^2).  A scaled
    basis (`spectrum.scaled`, a float16 scale per vector) codes each centred row's direction:
    its mean relative error is the model's error over the spread times that same share.
    Without `inverse`, the factors are taken for unit vectors."""
    import numpy as np

    d = int(spectrum.mean.shape[0])
    rows = int(spectrum.rows)
    if n <= 0 or rows <= 0:
        return Decision(False, "no vectors to fit")
    if rows < n and rows < MIN_ROWS_PER_DIM * d:
        return Decision(False, f"fitted {rows} of {n} rows, fewer than "
                               f"{MIN_ROWS_PER_DIM} x d = {MIN_ROWS_PER_DIM * d}")
    mean = np.asarray(spectrum.mean, np.float64)
    spread = float(np.maximum(np.asarray(spectrum.variances, np.float64), 0.0).sum())
    energy = float(mean @ mean) + spread
    if energy <= 0.0:
        return Decision(False, "all vectors are zero")
    got = adaptive(n) if adaptive is not None else None
    if got is None:
        return Decision(False, "the adaptive coding does not take this data")
    a_nmse, a_bytes = float(got[0]), float(got[1])
    if inverse is not None:  # the share mean(|x - c|^2 / |x|^2) of the fitted mean c
        m0, m1 = float(inverse[0]), np.asarray(inverse[1], np.float64)
        c_share = max(1.0 - 2.0 * float(m1 @ mean) + float(mean @ mean) * m0, 0.0)
    else:  # unit vectors
        m0, c_share = 1.0 / energy, spread / energy
    if getattr(spectrum, "scaled", False):
        # a scale per vector (spec 21.3): each centred row's direction is coded at the rms
        # norm rho (the spectrum's spread), so every row's error relative to its centred
        # part is the model's error over the spread; relative to |x|^2, times c_share
        a_nmse *= energy / spread * c_share
    else:
        a_nmse *= energy * m0
    share = c_share if centered else 1.0
    # the basis must beat the oblivious rotation, not the fixed-length codes: against the
    # better of the user's coding and the entropy coding (which the adaptive coding's
    # entropy coding of components would beat the fixed coding by without any basis)
    o_nmse = min(oblivious_nmse(d, c, bits, nmse) for c in {coding, rated_coding()}) * share
    o_bytes = n * oblivious_bytes_per_vector(d, coding, bits, nmse)
    predicted = {"adapt_nmse": a_nmse, "adapt_bytes": a_bytes, "other_nmse": o_nmse,
                 "other_bytes": o_bytes}
    if nmse is not None and a_nmse > NMSE_SLACK * float(nmse):
        # the rate control meets the target over the energy; in tq's mean over rows it
        # would miss it (rows of unequal norms without scales): not the same error
        ok = False
        why = (f"predicted nmse {a_nmse:.3g} per vector at its target, above {nmse:g}")
    elif nmse is not None:  # the same error: compare the bytes
        ok = a_bytes <= MARGIN * o_bytes
        why = (f"predicted {a_bytes / max(o_bytes, 1e-300):.2f}x the bytes of the oblivious "
               f"rotation at nmse {nmse:g}")
    else:
        ok = a_nmse <= MARGIN * o_nmse
        why = (f"predicted {a_nmse / max(o_nmse, 1e-300):.2f}x the error of the oblivious "
               f"rotation at -b {bits:g}")
    return Decision(ok, ("basis pays: " if ok else "basis does not pay: ") + why, predicted)
