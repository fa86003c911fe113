"""rANS throughput: tq's numba coder (1 and 2 threads) and, if importable, constriction's
AnsCoder with a Categorical model of the same probabilities.  Gaussian model, P = 16,
L = 8, 64K-symbol segments; each measurement run twice, the minimum kept.

    PYTHONPATH=. python bench/rans_speed.py [M] [total symbols]
"""

from __future__ import annotations

import sys
import time

import numpy as np


def gaussian_model(M, P):
    x = np.linspace(-3, 3, M)
    p = np.exp(-x * x / 2)
    f = np.maximum(1, np.floor(p / p.sum() * ((1 << P) - M))).astype(np.int64)
    f[M // 2] += (1 << P) - f.sum()
    return f


def best(fn, reps=2):
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        r = fn()
        t.append(time.perf_counter() - t0)
    return min(t), r


def main():
    M = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 23
    P, L, SEG = 16, 8, 1 << 16
    f = gaussian_model(M, P)
    rng = np.random.default_rng(0)
    sym = rng.choice(M, n, p=f / f.sum()).astype(np.uint16)
    cuts = np.arange(0, n + SEG, SEG).clip(max=n)
    rows = []
    try:
        from tqcli import kernels
        table = kernels.rans_slot_table(f, P)
        kernels.rans_encode(sym[:SEG], cuts[:2], f, P, L)  # compile / load
        for threads in (1, 2):
            kernels.set_threads(threads)
            te, (buf, st, ln) = best(lambda: kernels.rans_encode(sym, cuts, f, P, L))
            out = np.empty(n, np.uint16)
            td, _ = best(lambda: kernels.rans_decode(buf, st, ln, np.diff(cuts), f, P, L, out,
                                                     table))
            assert np.array_equal(out, sym)
            rows.append((f"tq numba, {threads} thread(s)", n / te / 1e6, n / td / 1e6,
                         int(ln.sum())))
    except ImportError:
        print("(tqcli/numba not importable here: numba coder skipped)")
    try:
        import constriction
    except ImportError:
        constriction = None
    if constriction is not None:
        model = constriction.stream.model.Categorical(f / f.sum(), perfect=False)
        s32 = sym.astype(np.int32)

        def enc():
            out = []
            for a, b in zip(cuts[:-1], cuts[1:]):
                c = constriction.stream.stack.AnsCoder()
                c.encode_reverse(s32[a:b], model)
                out.append(c.get_compressed())
            return out

        te, comp = best(enc)

        def dec():
            res = []
            for (a, b), data in zip(zip(cuts[:-1], cuts[1:]), comp):
                c = constriction.stream.stack.AnsCoder(data)
                res.append(c.decode(model, int(b - a)))
            return np.concatenate(res)

        td, back = best(dec)
        assert np.array_equal(back, s32)
        rows.append(("constriction 0.5 AnsCoder", n / te / 1e6, n / td / 1e6,
                     int(sum(c.nbytes for c in comp))))
    p = f / f.sum()
    ideal = -(np.log2(p[sym])).sum() / 8
    print(f"M = {M}, n = {n}, P = {P}, L = {L}, segments of {SEG}; entropy bound {ideal:.0f} B")
    print(f"{'coder':32s} {'enc Msym/s':>11s} {'dec Msym/s':>11s} {'bytes':>11s}")
    for name, e, d, size in rows:
        print(f"{name:32s} {e:11.1f} {d:11.1f} {size:11d}")


if __name__ == "__main__":
    main()
