"""The in-memory rows of bench.py: one measurement per process, printed as one JSON line.

`bench.py --worker SPEC` runs worker(SPEC) in a process of its own, so that the peak RSS
the launcher takes with os.wait4 belongs to that measurement alone.  Each implementation
(tq's library, the dense numpy baseline, faiss) is a small class with the same methods:
warm (an untimed call that loads or compiles what the first call would), compress,
decompress, and the size / save / load of its compressed artifact, so that the
decompress process can start from what the compress process produced.
"""

from __future__ import annotations

import json
import time

CHECK_ROWS = 4096          # rows compared against the input for the nmse sanity column


def _vmrss() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def nmse(x, y) -> float:
    """Mean of |x - y|^2 / |x|^2 over the rows (rows of norm 0 count their squared error)."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    den = np.sum(x * x, axis=1)
    return float(np.mean(np.sum((x - y) ** 2, axis=1) / np.where(den > 0, den, 1.0)))


class _TqLib:
    """tqcli.compress / tqcli.decompress; the artifact is the .tqz bytes."""

    def __init__(self, d, bits):
        import tqcli

        self.tq, self.bits = tqcli, bits

    def warm(self, x):
        self.tq.decompress(self.tq.compress(x, bits=self.bits))

    def compress(self, x):
        return self.tq.compress(x, bits=self.bits)

    def size(self, blob):
        return len(blob)

    def save(self, blob, path):
        with open(path, "wb") as f:
            f.write(blob)

    def load(self, path):
        with open(path, "rb") as f:
            return f.read()

    def decompress(self, blob, n):
        return self.tq.decompress(blob)

    def stages(self):
        return {}


class _Dense:
    """bench/dense_baseline.py; the artifact is (packed codes, norms)."""

    def __init__(self, d, bits):
        from dense_baseline import DenseTurboQuant

        self.q = DenseTurboQuant(d, bits, seed=0)

    def warm(self, x):
        p, nr = self.q.compress(x)
        self.q.decompress(p, nr, x.shape[0])

    def compress(self, x):
        self.q.stages = {}
        return self.q.compress(x)

    def size(self, art):
        return art[0].nbytes + art[1].nbytes

    def save(self, art, path):
        import numpy as np

        with open(path, "wb") as f:
            np.save(f, art[0])
            np.save(f, art[1])

    def load(self, path):
        import numpy as np

        with open(path, "rb") as f:
            return np.load(f), np.load(f)

    def decompress(self, art, n):
        self.q.stages = {}
        return self.q.decompress(art[0], art[1], n)

    def stages(self):
        return dict(self.q.stages)


class _Faiss:
    """faiss ScalarQuantizer QT_<b>bit_tqmse behind a RandomRotationMatrix.

    faiss's TurboQuant-MSE type quantises unit vectors coordinate by coordinate with the
    Lloyd-Max codebook of the sphere, but it neither rotates nor normalises: fed raw vectors
    it is not TurboQuant.  So the pipeline here is the full algorithm built from faiss parts:
    rotate with faiss.RandomRotationMatrix (BLAS), keep each norm as float32, normalise,
    compute_codes; and decode, times the norm, reverse_transform.  Blocks of 64k rows,
    written into preallocated arrays through faiss's no-copy entry points.
    """

    BLOCK = 1 << 16

    def __init__(self, d, bits):
        import faiss
        import numpy as np

        self.faiss, self.np, self.d = faiss, np, d
        name = faiss_qtype(bits)
        self.sq = faiss.ScalarQuantizer(d, getattr(faiss.ScalarQuantizer, name))
        self.sq.train(np.zeros((1, d), np.float32))   # the tqmse codebook ignores the data
        self.rr = faiss.RandomRotationMatrix(d, d)
        self.rr.init(0)
        self._stages = {}

    def _tick(self, k, t):
        t1 = time.perf_counter()
        self._stages[k] = self._stages.get(k, 0.0) + t1 - t
        return t1

    def warm(self, x):
        art = self.compress(x)
        self.decompress(art, x.shape[0])

    def compress(self, x):
        np, sp = self.np, self.faiss.swig_ptr
        self._stages = {}
        n = x.shape[0]
        codes = np.empty((n, self.sq.code_size), np.uint8)
        norms = np.empty(n, np.float32)
        buf = np.empty((min(self.BLOCK, n), self.d), np.float32)
        for a in range(0, n, self.BLOCK):
            m = min(self.BLOCK, n - a)
            t = time.perf_counter()
            xr = buf[:m]
            self.rr.apply_noalloc(m, sp(x[a:a + m]), sp(xr))
            t = self._tick("rotate", t)
            nr = np.sqrt(np.einsum("ij,ij->i", xr, xr))
            norms[a:a + m] = nr
            xr *= np.divide(1.0, nr, out=np.zeros_like(nr), where=nr > 0)[:, None]
            t = self._tick("norm", t)
            self.sq.compute_codes_c(sp(xr), sp(codes[a:a + m]), m)
            self._tick("quantise", t)
        return codes, norms

    def size(self, art):
        return art[0].nbytes + art[1].nbytes

    save = _Dense.save
    load = _Dense.load

    def decompress(self, art, n):
        np, sp = self.np, self.faiss.swig_ptr
        self._stages = {}
        codes, norms = art
        out = np.empty((n, self.d), np.float32)
        buf = np.empty((min(self.BLOCK, n), self.d), np.float32)
        for a in range(0, n, self.BLOCK):
            m = min(self.BLOCK, n - a)
            t = time.perf_counter()
            y = buf[:m]
            self.sq.decode_c(sp(codes[a:a + m]), sp(y), m)
            t = self._tick("decode", t)
            y *= norms[a:a + m, None]
            t = self._tick("scale", t)
            self.rr.reverse_transform_c(m, sp(y), sp(out[a:a + m]))
            self._tick("rotate", t)
        return out

    def stages(self):
        return dict(self._stages)


IMPLS = {"tq": _TqLib, "dense": _Dense, "faiss": _Faiss}


def faiss_qtype(bits: int) -> str:
    """The faiss ScalarQuantizer type used for b bits (TurboQuant-MSE when faiss has it)."""
    import faiss

    for name in (f"QT_{bits}bit_tqmse", f"QT_{bits}bit"):
        if hasattr(faiss.ScalarQuantizer, name):
            return name
    raise RuntimeError(f"faiss has no {bits}-bit scalar quantizer")


def worker(spec: dict) -> None:
    """Warm up, then time spec["repeat"] calls of one operation; print one JSON line."""
    import numpy as np

    impl = IMPLS[spec["impl"]](spec["d"], spec["bits"])
    rng = np.random.default_rng(12345)
    impl.warm(rng.standard_normal((256, spec["d"])).astype(np.float32))   # compile / load
    n = spec["n"]
    times, best_stages = [], {}
    result = {}
    if spec["op"] == "compress":
        x = np.load(spec["input"])                                        # into memory
        rss_before = _vmrss()
        art = None
        for _ in range(spec["repeat"]):
            art = None
            t0 = time.perf_counter()
            art = impl.compress(x)
            times.append(time.perf_counter() - t0)
            if times[-1] == min(times):
                best_stages = impl.stages()
        impl.save(art, spec["artifact"])
        result["out_bytes"] = impl.size(art)
    else:
        art = impl.load(spec["artifact"])
        rss_before = _vmrss()
        y = None
        for _ in range(spec["repeat"]):
            y = None
            t0 = time.perf_counter()
            y = impl.decompress(art, n)
            times.append(time.perf_counter() - t0)
            if times[-1] == min(times):
                best_stages = impl.stages()
        k = min(n, CHECK_ROWS)
        x0 = np.load(spec["input"], mmap_mode="r")[:k]
        result["nmse"] = nmse(x0, np.asarray(y).reshape(-1, spec["d"])[:k])
    result.update(times=times, rss_before=rss_before, stages=best_stages)
    print(json.dumps(result))


