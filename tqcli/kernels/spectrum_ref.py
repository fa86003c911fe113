"""Plain-numpy twins of the spectrum kernels (spectrum.py), in the same order of operations:
tests compare them bit for bit.  Elementwise steps are numpy array operations (each a
separate rounding, as in the kernels); every sum is taken in the kernels' fixed 8-lane order (`_dot`), never
by numpy's pairwise reductions or BLAS.  Slow (Python loops over the sums): for tests at
small d only.
"""

from __future__ import annotations

import math

import numpy as np

from .spectrum import MAX_SWEEPS, order_and_sign


def _dot(a, b) -> float:
    """The kernels' 8-lane inner product: lane l sums the products j = l (mod 8) in order,
    then the lanes are added in order."""
    prods = np.asarray(a, np.float64) * np.asarray(b, np.float64)
    lanes = np.zeros(8)
    for j in range(0, prods.size, 8):
        part = prods[j:j + 8]
        lanes[:part.size] += part
    acc = 0.0
    for t in lanes.tolist():
        acc += t
    return acc


def scatter_reference(x, shift, s1, s2) -> None:
    """scatter_kernel over all rows of the triangle: row by row, s1 += y, and the upper
    triangle of s2 += outer(y, y)."""
    d = s1.shape[0]
    upper = np.triu(np.ones((d, d), bool))
    for row in np.asarray(x):
        y = row.astype(np.float64) - shift
        s1 += y
        s2[upper] += np.outer(y, y)[upper]


def inverse_energy_reference(x, acc, s1) -> None:
    """inverse_energy: row by row, e summed in order of j."""
    for row in np.asarray(x):
        y = row.astype(np.float64)
        e = 0.0
        for t in (y * y).tolist():
            e += t
        if e > 0.0:
            w = 1.0 / e
            acc[0] += w
            acc[1] += 1.0
            s1 += y * w


def tridiagonalise_reference(a):
    """(diag, off, qt) of tridiagonalise for the upper triangle of `a` (not modified)."""
    n = a.shape[0]
    a = np.triu(a) + np.triu(a, 1).T
    diag = np.zeros(n)
    off = np.zeros(n)
    vs, hs = {}, {}
    for k in range(n - 2):
        x = a[k + 1:, k].copy()
        diag[k] = a[k, k]
        ss = _dot(x, x)
        if ss == 0.0:
            off[k] = 0.0
            continue
        norm = math.sqrt(ss)
        alpha = -norm if x[0] >= 0.0 else norm
        h = alpha * alpha - alpha * x[0]
        v = x.copy()
        v[0] = x[0] - alpha
        vs[k], hs[k] = v, h
        off[k] = alpha
        b = a[k + 1:, k + 1:]
        p = np.array([_dot(b[i], v) for i in range(v.size)]) / h
        kk = _dot(v, p) / (2.0 * h)
        w = p - kk * v
        a[k + 1:, k + 1:] = b - np.outer(v, w) - np.outer(w, v)
    if n >= 2:
        diag[n - 2] = a[n - 2, n - 2]
        off[n - 2] = a[n - 1, n - 2]
    if n >= 1:
        diag[n - 1] = a[n - 1, n - 1]
    qt = np.eye(n)
    for k in range(n - 3, -1, -1):
        if k not in vs:
            continue
        v, h = vs[k], hs[k]
        for r in range(k + 1, n):
            f = _dot(qt[r, k + 1:], v) / h
            qt[r, k + 1:] = qt[r, k + 1:] - f * v
    return diag, off, qt


def tridiagonal_eigen_reference(diag, off, z):
    """tridiagonal_eigen on copies: (status, eigenvalues, rotated z)."""
    d, e, z = diag.astype(np.float64), off.astype(np.float64), z.astype(np.float64)
    n = d.size
    eps = 2.0 ** -52
    if n:
        e[n - 1] = 0.0
    norm = 0.0
    for i in range(n):
        norm = max(norm, abs(d[i]) + abs(e[i]))
    small = eps * norm
    for l in range(n):
        steps = 0
        while True:
            m = l
            while m < n - 1 and not (abs(e[m]) <= eps * (abs(d[m]) + abs(d[m + 1]))
                                     or abs(e[m]) <= small):
                m += 1
            if m == l:
                break
            steps += 1
            if steps > MAX_SWEEPS:
                return 1, d, z
            g = (d[l + 1] - d[l]) / (2.0 * e[l])
            r = abs(g) if abs(g) > 1e150 else math.sqrt(g * g + 1.0)
            g = d[m] - d[l] + e[l] / (g + (r if g >= 0.0 else -r))
            s, c, p = 1.0, 1.0, 0.0
            early = False
            for i in range(m - 1, l - 1, -1):
                f, b = s * e[i], c * e[i]
                r = math.sqrt(f * f + g * g)
                e[i + 1] = r
                if r == 0.0:
                    d[i + 1] -= p
                    e[m] = 0.0
                    early = True
                    break
                s, c = f / r, g / r
                g = d[i + 1] - p
                r = (d[i] - g) * s + 2.0 * c * b
                p = s * r
                d[i + 1] = g + p
                g = c * r - b
                zi, zj = z[i].copy(), z[i + 1].copy()
                z[i + 1] = s * zi + c * zj
                z[i] = c * zi - s * zj
            if early:
                continue
            d[l] -= p
            e[l] = g
            e[m] = 0.0
    return 0, d, z


def symmetric_eigen_reference(a):
    """symmetric_eigen on a copy, from the twins above."""
    diag, off, qt = tridiagonalise_reference(a)
    status, values, vectors = tridiagonal_eigen_reference(diag, off, qt)
    if status:
        raise ArithmeticError("the eigenvalue iteration did not converge")
    return order_and_sign(values, vectors)
