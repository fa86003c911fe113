"""The spectrum of a set of vectors, in fixed-order float64 arithmetic (issue 24).

Fitting a basis must give the same bits on any machine and any thread count (the basis
goes into the file), so nothing here calls BLAS or LAPACK, whose last bits depend on the
library build, the CPU's kernels and the threads.  Three kernels, each with a twin in
spectrum_ref.py that a test compares bit for bit:

    scatter_kernel     S1 += y and S2 += y y^T (upper triangle) for y = x_r - shift, rows
                       r in order: every entry of S2 is a sequential sum over the rows, so
                       splitting the triangle's rows between threads changes no bit
    tridiagonalise     Householder reduction of a symmetric matrix to tridiagonal form,
                       with the orthogonal factor accumulated (transposed)
    tridiagonal_eigen  implicit QL with Wilkinson's shift on the tridiagonal form, rotating
                       the accumulated factor: eigenvalues and eigenvectors (rows)
    inverse_energy     sums of 1/|x|^2 and x/|x|^2 over the rows (what --adapt auto needs to
                       predict the mean of the rows' relative errors)

Inner products are sums on 8 lanes in a fixed order (`_dot`).  No fastmath: numba leaves every
multiplication and addition separate (LLVM contracts a*b+c into an FMA only under a
fast-math flag), which the bit-for-bit tests would catch.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TILE = 16          # rows of x per pass over the triangle (each S2 row stays in cache)
MAX_SWEEPS = 64    # QL iterations per eigenvalue before giving up (2-3 are typical)


@njit(cache=True, nogil=True)
def scatter_kernel(x, shift, s1, s2, i0, i1):
    """For rows r = 0..n-1 of x (float32 or float64, (n, d)) in order, y = float64(x[r]) -
    shift: s1[i] += y[i] for i0 <= i < i1 and s2[i, j] += y[i] * y[j] for i0 <= i < i1,
    i <= j < d.  Entries outside those rows are not touched."""
    n, d = x.shape
    y = np.empty((TILE, d), np.float64)
    for r0 in range(0, n, TILE):
        t = min(TILE, n - r0)
        for r in range(t):
            for j in range(d):
                y[r, j] = np.float64(x[r0 + r, j]) - shift[j]
        for i in range(i0, i1):
            acc = s1[i]
            for r in range(t):
                acc += y[r, i]
            s1[i] = acc
            for r in range(t):
                yi = y[r, i]
                for j in range(i, d):
                    s2[i, j] += yi * y[r, j]


@njit(cache=True, inline="always")
def _dot(a, b, m):
    """sum_{j < m} a[j] * b[j] on 8 lanes: lane l adds the products of j = l, l + 8, ...
    in order, then the lanes are added in order 0..7 (a fixed order that SIMD can run)."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    full = m - m % 8
    for j in range(0, full, 8):
        a0 += a[j] * b[j]
        a1 += a[j + 1] * b[j + 1]
        a2 += a[j + 2] * b[j + 2]
        a3 += a[j + 3] * b[j + 3]
        a4 += a[j + 4] * b[j + 4]
        a5 += a[j + 5] * b[j + 5]
        a6 += a[j + 6] * b[j + 6]
        a7 += a[j + 7] * b[j + 7]
    t = m - full
    if t > 0:
        a0 += a[full] * b[full]
    if t > 1:
        a1 += a[full + 1] * b[full + 1]
    if t > 2:
        a2 += a[full + 2] * b[full + 2]
    if t > 3:
        a3 += a[full + 3] * b[full + 3]
    if t > 4:
        a4 += a[full + 4] * b[full + 4]
    if t > 5:
        a5 += a[full + 5] * b[full + 5]
    if t > 6:
        a6 += a[full + 6] * b[full + 6]
    return a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7


@njit(cache=True, nogil=True)
def tridiagonalise(a, diag, off, qt):
    """Reduce the symmetric (n, n) float64 `a` (upper triangle read, the whole array
    then used as work space: its contents on return are not specified) to T = Q^T A Q tridiagonal: diag (n) its diagonal, off (n) its
    off-diagonal (off[k] couples k and k+1; off[n-1] = 0), qt (n, n) receives Q^T.

    Step k = 0..n-3 takes x = A[k+1:, k], alpha = -sign(x[0]) |x| (sign(0) = +1),
    v = x - alpha e_1, h = alpha^2 - alpha x[0] (= v.v / 2), and with B = A[k+1:, k+1:]:
    p = B v / h, K = (v.p) / (2 h), w = p - K v, B -= v w^T + w v^T; off[k] = alpha
    (a column with |x| = 0 is skipped: off[k] = 0)."""
    n = a.shape[0]
    for i in range(n):          # mirror the upper triangle
        for j in range(i):
            a[i, j] = a[j, i]
    hs = np.zeros(n, np.float64)        # h of step k (0: no reflection); its v is kept
    vk = np.empty(n, np.float64)        # in a[k+1:, k], which no later step reads
    p = np.empty(n, np.float64)
    w = np.empty(n, np.float64)
    for k in range(n - 2):
        m = n - k - 1
        x0 = a[k + 1, k]
        for j in range(m):
            vk[j] = a[k + 1 + j, k]
        ss = _dot(vk, vk, m)
        diag[k] = a[k, k]
        if ss == 0.0:
            off[k] = 0.0
            continue
        norm = math.sqrt(ss)
        alpha = -norm if x0 >= 0.0 else norm
        h = alpha * alpha - alpha * x0
        v = vk[:m]
        v[0] = x0 - alpha
        a[k + 1, k] = v[0]
        hs[k] = h
        off[k] = alpha
        for i in range(m):
            p[i] = _dot(a[k + 1 + i, k + 1:], v, m) / h
        kk = _dot(v, p, m) / (2.0 * h)
        for i in range(m):
            w[i] = p[i] - kk * v[i]
        for i in range(m):
            row = a[k + 1 + i, k + 1:]
            vi = v[i]
            wi = w[i]
            for j in range(m):
                row[j] = row[j] - vi * w[j] - wi * v[j]
    if n >= 2:
        diag[n - 2] = a[n - 2, n - 2]
        off[n - 2] = a[n - 1, n - 2]
    if n >= 1:
        diag[n - 1] = a[n - 1, n - 1]
        off[n - 1] = 0.0
    # Q^T = H_{n-3} ... H_0: start from I, apply Q^T <- Q^T H_k for k = n-3 .. 0 (rows
    # r > k only: the others are zero in columns k+1..)
    qt[:, :] = 0.0
    for i in range(n):
        qt[i, i] = 1.0
    for k in range(n - 3, -1, -1):
        h = hs[k]
        if h == 0.0:
            continue
        m = n - k - 1
        v = vk[:m]
        for j in range(m):
            v[j] = a[k + 1 + j, k]
        for r in range(k + 1, n):
            row = qt[r, k + 1:]
            f = _dot(row, v, m) / h
            for j in range(m):
                row[j] = row[j] - f * v[j]


@njit(cache=True, nogil=True)
def tridiagonal_eigen(diag, off, z):
    """Eigen-decompose the symmetric tridiagonal (diag, off) by implicit QL steps with
    Wilkinson's shift (an off-diagonal is negligible below eps (|d_m| + |d_m+1|) or
    below eps max_i (|d_i| + |e_i|), the norm on entry); the plane rotations are applied to the rows of z (n, n), so that
    z = Q^T on entry gives eigenvector i of A = Q T Q^T in z[i] on return (not sorted).
    diag receives the eigenvalues.  Returns 0, or 1 if an eigenvalue did not converge in
    MAX_SWEEPS steps."""
    n = diag.shape[0]
    eps = 2.0 ** -52
    if n:
        off[n - 1] = 0.0
    norm = 0.0  # max_i |d_i| + |e_i|: off-diagonals below eps * norm are dropped too, so
    for i in range(n):  # that a cluster of (near-)zero eigenvalues cannot stall the iteration
        t = abs(diag[i]) + abs(off[i])
        if t > norm:
            norm = t
    small = eps * norm
    for l in range(n):
        steps = 0
        while True:
            m = l
            while m < n - 1:
                if abs(off[m]) <= eps * (abs(diag[m]) + abs(diag[m + 1])) \
                        or abs(off[m]) <= small:
                    break
                m += 1
            if m == l:
                break
            steps += 1
            if steps > MAX_SWEEPS:
                return 1
            g = (diag[l + 1] - diag[l]) / (2.0 * off[l])
            if abs(g) > 1e150:
                r = abs(g)
            else:
                r = math.sqrt(g * g + 1.0)
            g = diag[m] - diag[l] + off[l] / (g + (r if g >= 0.0 else -r))
            s = 1.0
            c = 1.0
            p = 0.0
            early = False
            i = m - 1
            while i >= l:
                f = s * off[i]
                b = c * off[i]
                r = math.sqrt(f * f + g * g)
                off[i + 1] = r
                if r == 0.0:
                    diag[i + 1] -= p
                    off[m] = 0.0
                    early = True
                    break
                s = f / r
                c = g / r
                g = diag[i + 1] - p
                r = (diag[i] - g) * s + 2.0 * c * b
                p = s * r
                diag[i + 1] = g + p
                g = c * r - b
                zi = z[i]
                zj = z[i + 1]
                for k in range(n):
                    t = zj[k]
                    zj[k] = s * zi[k] + c * t
                    zi[k] = c * zi[k] - s * t
                i -= 1
            if early:
                continue
            diag[l] -= p
            off[l] = g
            off[m] = 0.0
    return 0


@njit(cache=True, nogil=True)
def inverse_energy(x, acc, s1):
    """For rows r in order with e = sum_j x[r, j]^2 > 0 (float64, j in order): acc[0] +=
    1 / e, acc[1] += 1 (rows counted), s1 += x[r] * (1 / e); zero rows are skipped."""
    n, d = x.shape
    for r in range(n):
        e = 0.0
        for j in range(d):
            v = np.float64(x[r, j])
            e += v * v
        if e > 0.0:
            w = 1.0 / e
            acc[0] += w
            acc[1] += 1.0
            for j in range(d):
                s1[j] += np.float64(x[r, j]) * w


@njit(cache=True, nogil=True)
def scatter_bands(x, shift, s1, s2, bands, t0, t1):
    """scatter_kernel over the triangle's rows bands[t0] .. bands[t1] - 1 (one task range
    of kernels._run_task_range)."""
    scatter_kernel(x, shift, s1, s2, bands[t0], bands[t1])


# ---------------------------------------------------------------------- interface

def row_bands(d: int, parts: int) -> np.ndarray:
    """parts + 1 row cuts of the d x d upper triangle into bands of about equal area
    (row i holds d - i entries): the tasks of `scatter`."""
    parts = max(1, min(parts, d))
    area = np.cumsum(np.arange(d, 0, -1, dtype=np.int64))  # entries in rows 0..i
    total = int(area[-1]) if d else 0
    cuts = [0] + [int(np.searchsorted(area, total * t // parts, side="left")) + 1
                  for t in range(1, parts)] + [d]
    return np.maximum.accumulate(np.minimum(np.array(cuts, np.int64), d))


def scatter(x, shift, s1, s2) -> None:
    """s1 += sum_r y_r, s2 (upper triangle) += sum_r y_r y_r^T for y_r = x[r] - shift, in
    the order of the rows, on the kernels' worker threads (the result does not depend on
    their number: each entry is one thread's sequential sum)."""
    from . import _run_task_range

    x = np.ascontiguousarray(x)
    if x.dtype not in (np.float32, np.float64) or x.ndim != 2 or x.shape[1] != s1.shape[0]:
        raise ValueError("scatter: x must be (n, d) float32 or float64")
    if x.shape[0] == 0:
        return
    bands = row_bands(s1.shape[0], 64)
    _run_task_range(scatter_bands, bands.size - 1, x, shift, s1, s2, bands)


def symmetric_eigen(a):
    """Eigenvalues (non-increasing) and eigenvectors (rows, orthonormal, each with its
    largest-magnitude entry positive: the first such entry on a tie) of the symmetric
    float64 matrix whose upper triangle is `a` (overwritten).  Ties in value keep the
    order the QL iteration left them in (a stable sort).  ArithmeticError if the
    iteration does not converge (not seen on finite input)."""
    n = a.shape[0]
    diag = np.zeros(n)
    off = np.zeros(n)
    z = np.empty((n, n))
    tridiagonalise(a, diag, off, z)
    if tridiagonal_eigen(diag, off, z):
        raise ArithmeticError("the eigenvalue iteration did not converge")
    return order_and_sign(diag, z)


def order_and_sign(values, vectors):
    """Sort (values, row vectors) by non-increasing value (stable) and fix each vector's
    sign: its first entry of largest magnitude is positive."""
    order = np.argsort(-values, kind="stable")
    values, vectors = values[order], vectors[order]
    n = vectors.shape[0]
    if n:
        big = vectors[np.arange(n), np.argmax(np.abs(vectors), axis=1)]
        vectors = np.where((big < 0)[:, None], -vectors, vectors)
    return values, vectors
