"""The spectrum of a data set: its mean and principal components, fitted for the
data-adaptive mode (issue 24; spec section 22).

This is the seam between the fitting (how a basis is computed from the data: which rows,
in what order, with which arithmetic) and the coding that uses it (which components get
bits, how the basis is stored, how components are coded).  The coding asks for a
`Spectrum` through `fit_spectrum` and never computes one itself.

Same bits everywhere: the sums and the eigen-decomposition are tqcli/kernels/spectrum.py's
fixed-order float64 kernels (no BLAS, no LAPACK), so a basis does not depend on the
machine, the library build or the thread count, nor on how the rows are cut into blocks.

Which rows: `sample_positions` (a file of known length: evenly spaced rows over the whole
file, all of them up to FIT_ROWS); a stream fits its first block.  Large d: above
MAX_BLOCK_DIM coordinates the basis is block-diagonal (contiguous coordinate blocks of at
most MAX_BLOCK_DIM, each fitted on its own), which bounds the time (cubic in the block)
and the memory (`fit_memory`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIT_ROWS = 32768        # rows a file's fit reads at most (evenly spaced over the file)
MAX_BLOCK_DIM = 1536    # widest block fitted whole (~6 s on the 2-core VM, 36 MiB of work)


@dataclass(frozen=True)
class Spectrum:
    """mean: (d,) float64, the mean of the rows fitted; components: (k, d) float64,
    orthonormal rows, the principal directions by decreasing variance; variances: (k,)
    float64, the variance of the centred data along each (non-increasing, >= 0); rows:
    how many vectors were fitted; blocks: the (start, stop) coordinate ranges fitted
    separately ((0, d) alone unless d > MAX_BLOCK_DIM): a component is zero outside its
    block."""

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray
    rows: int
    blocks: tuple = ()

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])


def coordinate_blocks(dim: int, max_block: int = MAX_BLOCK_DIM) -> tuple:
    """The (start, stop) ranges fitted separately: q = ceil(dim / max_block) contiguous
    blocks of as equal a width as possible, the first dim % q of them one wider."""
    q = max(1, -(-dim // max_block))
    base, extra = divmod(dim, q)
    out, start = [], 0
    for i in range(q):
        stop = start + base + (1 if i < extra else 0)
        out.append((start, stop))
        start = stop
    return tuple(out)


def fit_memory(dim: int, max_block: int = MAX_BLOCK_DIM) -> int:
    """Bytes the fit allocates at most besides its input blocks: per coordinate block the
    sums and the eigenvector work space (2 w^2 float64), plus the (d, d) float64 result."""
    widest = max(b - a for a, b in coordinate_blocks(dim, max_block))
    return 2 * 8 * widest * widest + 8 * dim * dim + 64 * dim


def fit_spectrum(blocks, dim: int, *, max_block: int = MAX_BLOCK_DIM) -> Spectrum:
    """The spectrum of the vectors in `blocks` (an iterable of (r, dim) float32 or float64
    arrays, r may be 0), taken in order.  The result depends only on the rows and their
    order, not on how they are cut into blocks.  InputError for non-finite values is the
    caller's check (a non-finite row makes every sum non-finite).

    The arithmetic (spec 22.2): y = x - x_0 (x_0 the first row, float64), S1 = sum y,
    S2 = sum y y^T in row order per entry; m = S1 / n, C = S2 / n - m m^T, mean = x_0 + m;
    C's eigenpairs by Householder tridiagonalisation and implicit QL (kernels.spectrum),
    sorted by non-increasing eigenvalue (stable), each vector's first largest-magnitude
    entry positive; variances = max(eigenvalue, 0).  Above max_block coordinates the
    blocks of `coordinate_blocks` are fitted separately and merged by variance (stable:
    block order on ties)."""
    from ..kernels import spectrum as ks

    parts = coordinate_blocks(dim, max_block)
    s1 = [np.zeros(b - a) for a, b in parts]
    s2 = [np.zeros((b - a, b - a)) for a, b in parts]
    shift = None
    count = 0
    for block in blocks:
        x = np.asarray(block)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
        if x.ndim != 2 or x.shape[1] != dim:
            raise ValueError(f"fit_spectrum: a block of shape {x.shape}, not (r, {dim})")
        if x.shape[0] == 0:
            continue
        if shift is None:
            shift = x[0].astype(np.float64)
        for (a, b), t1, t2 in zip(parts, s1, s2):
            ks.scatter(x[:, a:b] if len(parts) > 1 else x, shift[a:b], t1, t2)
        count += x.shape[0]
    if shift is None:
        shift = np.zeros(dim)
    n = max(count, 1)
    values, vectors = [], []
    mean = np.empty(dim)
    for (a, b), t1, t2 in zip(parts, s1, s2):
        m = t1 / n
        mean[a:b] = shift[a:b] + m
        t2 /= n
        t2 -= np.outer(m, m)  # only the upper triangle is read
        vals, vecs = ks.symmetric_eigen(t2)
        values.append(vals)
        vectors.append(vecs)
    if len(parts) == 1:
        variances, components = values[0], vectors[0]
    else:
        allv = np.concatenate(values)
        order = np.argsort(-allv, kind="stable")
        components = np.zeros((dim, dim))
        row = 0
        for (a, b), vecs in zip(parts, vectors):
            components[row:row + b - a, a:b] = vecs
            row += b - a
        variances, components = allv[order], components[order]
    return Spectrum(mean=mean, components=components, variances=np.maximum(variances, 0.0),
                    rows=count, blocks=parts)


def sample_positions(n: int, cap: int = FIT_ROWS) -> np.ndarray:
    """The rows of a file of n rows that its fit reads, in increasing order: all of them
    when n <= cap, else the cap rows floor(i n / cap), i = 0 .. cap - 1 (row 0 always)."""
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    i = np.arange(cap, dtype=np.int64)
    return (i * n) // cap


def sampled_blocks(read_rows, n: int, cap: int = FIT_ROWS, block: int = 4096):
    """Blocks of the sample of a file of n rows: read_rows(positions) -> (len, d) array,
    called with up to `block` increasing positions at a time (bounded memory)."""
    pos = sample_positions(n, cap)
    for start in range(0, pos.size, block):
        yield read_rows(pos[start:start + block])


def sample_of(blocks, n: int, cap: int = FIT_ROWS, positions: bool = False):
    """The rows of sample_positions(n, cap) picked from `blocks`, the n rows of a file in
    order in blocks of any size (one sequential pass: no random access needed; memory of
    one block).  Yields (r, d) arrays (r may be 0), or (row numbers, rows) with
    `positions`."""
    pos = sample_positions(n, cap)
    start = 0
    for block in blocks:
        k = block.shape[0]
        lo, hi = np.searchsorted(pos, [start, start + k])
        picked = block[pos[lo:hi] - start]
        yield (pos[lo:hi], picked) if positions else picked
        start += k
        if hi == pos.size:
            break


def coding_gain(variances) -> float:
    """Arithmetic over geometric mean of the positive variances: the high-rate gain of
    coding the components over coding the coordinates alike (1.0 for a flat spectrum)."""
    v = np.asarray(variances, np.float64)
    v = v[v > 0]
    if v.size == 0:
        return 1.0
    return float(np.mean(v) / np.exp(np.mean(np.log(v))))
