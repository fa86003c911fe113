"""The spectrum of a data set: its mean and principal components, fitted for the
data-adaptive mode (issue 24).

This is the seam between the fitting (how a basis is computed from the data: which rows,
in what order, with which arithmetic) and the coding that uses it (which components get
bits, how the basis is stored, how components are coded).  The coding asks for a
`Spectrum` through `fit_spectrum` and never computes one itself.

PROVISIONAL: the body below is a first stand-in (numpy's eigh, whose last bits depend on
the BLAS and the thread count); it is replaced by deterministic kernels.  The interface
(the names and meanings below) is what callers rely on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Spectrum:
    """mean: (d,) float64, the mean of the rows fitted; components: (k, d) float64,
    orthonormal rows, the principal directions by decreasing variance; variances: (k,)
    float64, the variance of the centred data along each (non-increasing, >= 0); rows:
    how many vectors were fitted."""

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    rows: int

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])


def fit_spectrum(blocks, dim: int) -> Spectrum:
    """The spectrum of the vectors in `blocks` (an iterable of (r, dim) float arrays, r may
    be 0), taken in order.  InputError for non-finite values is the caller's check."""
    total = np.zeros(dim, np.float64)
    outer = np.zeros((dim, dim), np.float64)
    count = 0
    for block in blocks:
        b = np.asarray(block, dtype=np.float64)
        total += b.sum(axis=0)
        outer += b.T @ b
        count += b.shape[0]
    mean = total / max(count, 1)
    cov = outer / max(count, 1) - np.outer(mean, mean)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    return Spectrum(mean=mean, components=vectors[:, order].T.copy(),
                    variances=np.maximum(values[order], 0.0), rows=count)
