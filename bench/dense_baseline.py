"""A plain-numpy TurboQuant with a dense random rotation: the baseline tq is measured against.

This is the textbook form of TurboQuant (MSE variant) written the obvious way with numpy:

* rotation: a random orthogonal d x d matrix R, the Q factor of a QR decomposition of a
  Gaussian matrix with the signs fixed (Q * sign(diag(R_qr))), which makes it Haar
  distributed;
* per vector: its norm, the unit vector u = x / |x|, the rotated vector u @ R.T (one BLAS
  matmul per block of rows);
* every rotated coordinate is quantised with np.searchsorted against the Lloyd-Max
  decision thresholds of tq's own codebook (tqcli.codec.codebook.codebook / boundaries), so the
  quantiser is exactly the one tq uses;
* the b-bit codes are packed without padding: b bit planes, each flattened over the block
  and packed with np.packbits (little bit order), so a block of n vectors costs
  ceil(n*d/8) bytes per plane, i.e. d*b/8 bytes per vector, plus a float32 norm;
* decompression is the inverse: np.unpackbits of the planes, a centroid lookup, @ R, times
  the norm.

It stores the norm as the scale (tq's default is the least-squares scale, which gives a
slightly lower error) and has no container, checksums or random access: it is only the
arithmetic, as fast as numpy makes it.  Rows are processed in blocks (64k by default) so
that the temporaries stay bounded.

    from dense_baseline import DenseTurboQuant
    q = DenseTurboQuant(d=768, bits=4, seed=0)
    packed, norms = q.compress(x)            # uint8 array, float32 array
    y = q.decompress(packed, norms, n=len(x))
"""

from __future__ import annotations

import time

import numpy as np

BLOCK_ROWS = 1 << 16


def random_rotation(d: int, seed: int = 0) -> np.ndarray:
    """A Haar-random orthogonal d x d matrix in float32 (QR of a Gaussian, sign-fixed)."""
    g = np.random.default_rng(seed).standard_normal((d, d))
    q, r = np.linalg.qr(g)
    q *= np.sign(np.diag(r))[None, :]
    return np.ascontiguousarray(q, dtype=np.float32)


class DenseTurboQuant:
    """TurboQuant-MSE with a dense rotation, numpy only.  `stages` accumulates seconds."""

    def __init__(self, d: int, bits: int, seed: int = 0, block_rows: int = BLOCK_ROWS):
        from tqcli.codec import codebook

        self.d, self.bits, self.block_rows = int(d), int(bits), int(block_rows)
        self.R = random_rotation(self.d, seed)       # rotated = u @ R.T ; back = y @ R
        self.RT = np.ascontiguousarray(self.R.T)
        self.centroids = codebook.codebook(self.d, self.bits)               # float32
        # float32 thresholds so that searchsorted does not upcast every block to float64
        self.thresholds = codebook.boundaries(self.centroids).astype(np.float32)
        self.stages: dict[str, float] = {}

    # -- sizes ---------------------------------------------------------------------------

    def packed_bytes(self, n: int) -> int:
        """Bytes of packed codes for n vectors (each block pads to a byte per plane)."""
        total, bits = 0, self.bits
        for a in range(0, n, self.block_rows):
            rows = min(self.block_rows, n - a)
            total += bits * (-(-rows * self.d // 8))
        return total

    def _tick(self, name: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.stages[name] = self.stages.get(name, 0.0) + (t1 - t0)
        return t1

    # -- compress ------------------------------------------------------------------------

    def compress(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(packed codes uint8[packed_bytes(n)], norms float32[n]) for x of shape (n, d)."""
        x = np.asarray(x, dtype=np.float32).reshape(-1, self.d)
        n = x.shape[0]
        packed = np.empty(self.packed_bytes(n), dtype=np.uint8)
        norms = np.empty(n, dtype=np.float32)
        pos = 0
        for a in range(0, n, self.block_rows):
            block = x[a:a + self.block_rows]
            pos += self._compress_block(block, packed[pos:], norms[a:a + block.shape[0]])
        return packed, norms

    def _compress_block(self, block: np.ndarray, out: np.ndarray, norms: np.ndarray) -> int:
        t = time.perf_counter()
        nrm = np.sqrt(np.einsum("ij,ij->i", block, block))
        norms[:] = nrm
        inv = np.divide(1.0, nrm, out=np.zeros_like(nrm), where=nrm > 0)
        u = block * inv[:, None]
        t = self._tick("norm", t)
        rot = u @ self.RT                                   # BLAS sgemm
        del u
        t = self._tick("rotate", t)
        codes = np.searchsorted(self.thresholds, rot).astype(np.uint8).ravel()
        del rot
        t = self._tick("quantise", t)
        plane_bytes = -(-codes.size // 8)
        for j in range(self.bits):
            plane = (codes >> j) & 1
            out[j * plane_bytes:(j + 1) * plane_bytes] = np.packbits(plane, bitorder="little")
        self._tick("pack", t)
        return self.bits * plane_bytes

    # -- decompress ----------------------------------------------------------------------

    def decompress(self, packed: np.ndarray, norms: np.ndarray, n: int) -> np.ndarray:
        """The (n, d) float32 reconstruction."""
        out = np.empty((n, self.d), dtype=np.float32)
        pos = 0
        for a in range(0, n, self.block_rows):
            rows = min(self.block_rows, n - a)
            plane_bytes = -(-rows * self.d // 8)
            self._decompress_block(packed[pos:pos + self.bits * plane_bytes], rows,
                                   norms[a:a + rows], out[a:a + rows])
            pos += self.bits * plane_bytes
        return out

    def _decompress_block(self, packed: np.ndarray, rows: int, norms: np.ndarray,
                          out: np.ndarray) -> None:
        t = time.perf_counter()
        count = rows * self.d
        plane_bytes = -(-count // 8)
        codes = np.unpackbits(packed[:plane_bytes], count=count, bitorder="little")
        for j in range(1, self.bits):
            plane = np.unpackbits(packed[j * plane_bytes:(j + 1) * plane_bytes], count=count,
                                  bitorder="little")
            codes |= plane << j
        t = self._tick("unpack", t)
        y = self.centroids[codes].reshape(rows, self.d)
        del codes
        t = self._tick("lookup", t)
        np.matmul(y, self.R, out=out)                       # BLAS sgemm
        t = self._tick("rotate", t)
        out *= norms[:, None]
        self._tick("scale", t)


if __name__ == "__main__":  # a quick self-check: python bench/dense_baseline.py
    import sys

    d = int(sys.argv[1]) if len(sys.argv) > 1 else 768
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20000, d)).astype(np.float32)
    for b in (2, 4):
        q = DenseTurboQuant(d, b, block_rows=4096)
        packed, norms = q.compress(x)
        y = q.decompress(packed, norms, len(x))
        nmse = float(np.mean(np.sum((x - y) ** 2, 1) / np.sum(x * x, 1)))
        print(f"d={d} b={b}: {packed.size / len(x):.1f} code bytes/vector "
              f"(d*b/8 = {d * b / 8:.1f}), nmse {nmse:.5f}")
