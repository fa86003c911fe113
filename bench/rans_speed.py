"""rANS throughput: tq's numba coder (1 and 2 threads: kernels.rans_encode/rans_decode, which
take rans8.py's kernels for L = 8), the array-state kernels of rans.py beside them (what
any other L runs, and what L = 8 ran before rans8.py), and, if importable, constriction's
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


def array_state_kernels(kernels, sym, cuts, f, P, L, buf, st, ln, out):
    """Seconds to encode and decode with rans.py's kernels (any L), the same bytes."""
    import numpy as np
    from tqcli import limits
    from tqcli.kernels import rans

    counts = np.diff(cuts)
    sizes = np.array([4 * limits.max_stream_words(int(c), P, L) for c in counts], np.int64)
    ends = np.cumsum(sizes)
    first = np.empty(counts.size, np.int64)
    f32 = np.asarray(f, np.uint32)

    def enc():
        o = np.zeros(int(ends[-1]), np.uint8)
        kernels._run_task_range(rans.encode_kernel, counts.size, sym, cuts, f32,
                                *rans.symbol_tables(f, P), np.int64(P), np.int64(L), ends, o,
                                first)
        return o

    te, o = best(enc)
    assert all(np.array_equal(o[first[k]:ends[k]], buf[st[k]:st[k] + ln[k]])
               for k in range(counts.size))
    status = np.zeros(counts.size, np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    td, _ = best(lambda: kernels._run_task_range(
        rans.decode_kernel, counts.size, buf, st, ln, counts, starts,
        kernels.rans_slot_table(f, P), f32, kernels._cumulative(f), np.int64(P), np.int64(L),
        out, status))
    assert np.array_equal(out, sym) and not status.any()
    return te, td


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
            te, td = array_state_kernels(kernels, sym, cuts, f, P, L, buf, st, ln, out)
            rows.append((f"  rans.py array states, {threads}", n / te / 1e6, n / td / 1e6,
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
