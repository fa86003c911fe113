"""The scan's portable numba kernels and the top-k step every scan kernel shares.

The layouts (tqcli/kernels/scan.py builds them) hold blocks of BLOCK = 32 rows:

    nibble  (bits 1..4): a row's codes grouped into 4-bit "nibbles" (4, 2, 1, 1 codes for
            bits 1, 2, 3, 4), G nibbles per row, G even; block byte g * 16 + r holds
            nibble g of row r (low half) and of row r + 16 (high half), r < 16
    byte    (bits 5..8): block byte g * 32 + r is code g of row r

and the query tables are uint8, one 16-entry (nibble) or 2**bits-entry (byte) table per
nibble or coordinate.  A block's integer sums S[r] = sum_g table[g][code] are exact in
uint32; the score of row j is then, in float64 and in this order,

    a = delta * S;  a = a + offset;  s = scale[j] * a;  s = s + qconst * vweight[j];
    s = s + vbias[j]

(the last two only when given), the same operations as the numpy twin in scan_ref.py.

Top-k: a query keeps its kk best (score, id) in a binary min-heap whose root is the worst
kept entry; (s, j) is better than (s', j') when s > s', or s == s' and j < j'.  Empty
slots hold (-inf, EMPTY_ID) so that any row, even one scoring -inf, displaces them; a NaN
score never enters.  The kk best under that total order do not depend on the order rows
are offered, so splitting rows into calls (or blocks into threads) cannot change a result.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BLOCK = 32  # rows per block
EMPTY_ID = np.int64(1) << np.int64(62)  # an empty heap slot (reported as id -1)


@njit(cache=True, inline="always")
def _better(s, j, s2, j2):
    return s > s2 or (s == s2 and j < j2)


@njit(cache=True)
def heap_offer(hs, hi, s, j):
    """Offer (s, j) to the heap (hs, hi) of one query (root at 0 = the worst kept)."""
    if not _better(s, j, hs[0], hi[0]):
        return
    kk = hs.shape[0]
    p = 0
    while True:
        c = 2 * p + 1
        if c >= kk:
            break
        if c + 1 < kk and _better(hs[c], hi[c], hs[c + 1], hi[c + 1]):
            c += 1  # the worse child
        if _better(s, j, hs[c], hi[c]):
            hs[p] = hs[c]
            hi[p] = hi[c]
            p = c
        else:
            break
    hs[p] = s
    hi[p] = j


@njit(cache=True)
def block_extremes(rows, scale, vweight, vbias, use_q, use_b):
    """Per block: (largest scale, smallest scale, largest and smallest vweight, largest
    vbias), and whether block_topk may reject the block on them: every value not NaN and
    every scale >= 0."""
    nb = (rows + BLOCK - 1) // BLOCK
    ext = np.zeros((nb, 5))
    ok = np.ones(nb, np.bool_)
    for b in range(nb):
        r0 = b * BLOCK
        r1 = min(rows, r0 + BLOCK)
        sc = scale[r0:r1]
        smax = sc.max()
        smin = sc.min()
        good = not (np.isnan(smax) or np.isnan(smin) or smin < 0)
        ext[b, 0] = smax
        ext[b, 1] = smin
        if use_q:
            vw = vweight[r0:r1]
            ext[b, 2] = vw.max()
            ext[b, 3] = vw.min()
            good = good and not (np.isnan(ext[b, 2]) or np.isnan(ext[b, 3]))
        if use_b:
            ext[b, 4] = vbias[r0:r1].max()
            good = good and not np.isnan(ext[b, 4])
        ok[b] = good
    return ext, ok


@njit(cache=True)
def block_topk(sums, nq, q0, b, rows, delta, offset, scale, qconst, vweight, vbias,
               use_q, use_b, allow, use_allow, row_offset, hs, hi, buf, ext, ok):
    """Offer rows of block b to the heaps of queries q0 .. q0 + nq - 1, given their integer
    sums (sums[q * 32 + r], q < nq).  hs, hi: (m, kk) heaps; buf: 32 float64 of scratch;
    ext, ok: block_extremes.

    A block whose upper bound is below the heap's worst entry is skipped: with S the
    largest sum, a = delta * S + offset bounds every row's a (float rounding is monotone),
    so scale * a <= (largest scale if a >= 0 else smallest scale) * a when every scale is
    >= 0, and the extra terms are bounded by their extremes the same way.  Otherwise the
    block's scores are computed in branch-free loops (SIMD) and only the rows at least as
    good as the heap's worst entry are offered."""
    r0 = b * BLOCK
    nr = min(BLOCK, rows - r0)
    sc = scale[r0:r0 + nr]
    for q in range(nq):
        i = q0 + q
        d = delta[i]
        o = offset[i]
        sq = sums[q * BLOCK:q * BLOCK + nr]
        if ok[b]:
            a = d * np.float64(sq.max())
            a = a + o
            ub = ext[b, 0] * a if a >= 0 else ext[b, 1] * a
            if use_q:
                qc = qconst[i]
                ub = ub + qc * (ext[b, 2] if qc >= 0 else ext[b, 3])
            if use_b:
                ub = ub + ext[b, 4]
            if ub < hs[i, 0]:
                continue
        for r in range(nr):
            a = d * np.float64(sq[r])
            a = a + o
            buf[r] = sc[r] * a
        if use_q:
            qc = qconst[i]
            vw = vweight[r0:r0 + nr]
            for r in range(nr):
                buf[r] = buf[r] + qc * vw[r]
        if use_b:
            vb = vbias[r0:r0 + nr]
            for r in range(nr):
                buf[r] = buf[r] + vb[r]
        hsi = hs[i]
        hii = hi[i]
        worst = hsi[0]
        for r in range(nr):
            if buf[r] >= worst:
                if use_allow and not allow[r0 + r]:
                    continue
                heap_offer(hsi, hii, buf[r], np.int64(r0 + r + row_offset))
                worst = hsi[0]


@njit(cache=True)
def _nib_block_sums(data, b, tables, q0, nq, sums):
    """Integer sums of block b of a nibble layout for queries q0 .. q0 + nq - 1."""
    blk = data[b]
    npos = tables.shape[1]
    for q in range(nq):
        t = tables[q0 + q]
        acc = np.zeros(BLOCK, np.uint32)
        for g in range(npos):
            tg = t[g]
            base = g * 16
            for r in range(16):
                v = blk[base + r]
                acc[r] += tg[v & 15]
                acc[r + 16] += tg[v >> 4]
        for r in range(BLOCK):
            sums[q * BLOCK + r] = acc[r]


@njit(cache=True)
def _byte_block_sums(data, b, tables, q0, nq, sums):
    """Integer sums of block b of a byte layout for queries q0 .. q0 + nq - 1."""
    blk = data[b]
    npos = tables.shape[1]
    for q in range(nq):
        t = tables[q0 + q]
        acc = np.zeros(BLOCK, np.uint32)
        for g in range(npos):
            tg = t[g]
            base = g * BLOCK
            for r in range(BLOCK):
                acc[r] += tg[blk[base + r]]
        for r in range(BLOCK):
            sums[q * BLOCK + r] = acc[r]


@njit(cache=True, nogil=True)
def scan_portable_kernel(data, nibble, rows, tables, delta, offset, scale, qconst, vweight,
                         vbias, use_q, use_b, allow, use_allow, row_offset, hs, hi):
    """Every block of `data` against every query, into the heaps (hs, hi)."""
    m = tables.shape[0]
    sums = np.empty(BLOCK, np.uint32)
    buf = np.empty(BLOCK)
    ext, ok = block_extremes(rows, scale, vweight, vbias, use_q, use_b)
    for b in range(data.shape[0]):
        if use_allow:
            r0 = b * BLOCK
            if not allow[r0:min(rows, r0 + BLOCK)].any():
                continue
        for i in range(m):
            if nibble:
                _nib_block_sums(data, b, tables, i, 1, sums)
            else:
                _byte_block_sums(data, b, tables, i, 1, sums)
            block_topk(sums, 1, i, b, rows, delta, offset, scale, qconst, vweight, vbias,
                       use_q, use_b, allow, use_allow, row_offset, hs, hi, buf, ext, ok)


# ---------------------------------------------------------------------- query tables


@njit(cache=True, inline="always")
def _entry(y, c, bits, cpn, dim, g, k):
    """E[g, k]: sum over the codes u of position g of y[t_u] * c[code u of k], in order."""
    mask = (1 << bits) - 1
    t = g * cpn
    yt = y[t] if t < dim else 0.0
    e = yt * c[k & mask]
    for u in range(1, cpn):
        t = g * cpn + u
        yt = y[t] if t < dim else 0.0
        e = e + yt * c[(k >> (u * bits)) & mask]
    return e


@njit(cache=True, nogil=True)
def tables_kernel(y, c, bits, cpn, npos, nent, tables, delta, offset, bound):
    """Per query (row of y, float64): uint8 tables, delta, offset and bound as the numpy
    twin (scan_ref.prepare_queries_reference) computes them, operation for operation:
    every sum over positions in position order, offset by Neumaier's compensated sum."""
    m, dim = y.shape
    e = np.empty((npos, nent))
    lo = np.empty(npos)
    for i in range(m):
        yi = y[i]
        span = 0.0
        for g in range(npos):
            mn = np.inf
            mx = -np.inf
            for k in range(nent):
                v = _entry(yi, c, bits, cpn, dim, g, k)
                e[g, k] = v
                mn = min(mn, v)
                mx = max(mx, v)
            lo[g] = mn
            span = max(span, mx - mn)
        d = span / 255.0 if span > 0 else 1.0
        over = 0.0
        under = 0.0
        s = 0.0
        comp = 0.0
        big_e = 0.0
        big_lo = 0.0
        for g in range(npos):
            l = lo[g]
            emax = 0.0
            eplus = 0.0
            eminus = 0.0
            for k in range(nent):
                v = e[g, k]
                q = np.rint((v - l) / d)
                q = min(max(q, 0.0), 255.0)
                tables[i, g, k] = np.uint8(q)
                err = d * q + l - v
                eplus = max(eplus, err)
                eminus = max(eminus, -err)
                emax = max(emax, abs(v))
            over = over + eplus
            under = under + eminus
            big_e = big_e + emax
            big_lo = big_lo + abs(l)
            t = s + l
            if abs(s) >= abs(l):
                comp = comp + ((s - t) + l)
            else:
                comp = comp + ((l - t) + s)
            s = t
        delta[i] = d
        offset[i] = s + comp
        dm = d if span > 0 else 0.0  # S = 0 when every entry is 0
        worst = max(over, under)
        margin = (8.0 * big_e + 4.0 * big_lo + 4.0 * 255.0 * npos * dm
                  + (npos + 2) * worst) * 2.0 ** -50
        bound[i] = worst + margin


# ---------------------------------------------------------------------- layout


@njit(cache=True, nogil=True)
def layout_kernel(packed, bits, rows, dim, cpn, npos, out):
    """The scan's layout (module docstring) of `rows` x `dim` codes packed LSB first
    (spec section 6) into `out` (nblocks, bytes per block), which must be zeroed: each row
    read once, no unpacked copy of the whole stream."""
    mask = (1 << bits) - 1
    nibble = bits <= 4
    if bits == 4:  # the common case: codes are the stream's nibbles
        for j in range(rows):
            ob = out[j // BLOCK]
            r = j % BLOCK
            hi = r >= 16
            rr = r - 16 if hi else r
            t0 = np.int64(j) * dim
            for g in range(dim):
                t = t0 + g
                v = (packed[t >> 1] >> ((t & 1) * 4)) & 15
                if hi:
                    ob[g * 16 + rr] |= np.uint8(v << 4)
                else:
                    ob[g * 16 + rr] |= np.uint8(v)
        return
    for j in range(rows):
        b = j // BLOCK
        r = j % BLOCK
        ob = out[b]
        base = np.int64(j) * dim * bits
        for g in range(npos):
            v = 0
            for u in range(cpn):
                t = g * cpn + u
                if t < dim:
                    bit = base + t * bits
                    byte = bit >> 3
                    sh = bit & 7
                    w = np.int64(packed[byte])
                    if sh + bits > 8:
                        w |= np.int64(packed[byte + 1]) << 8
                    v |= ((w >> sh) & mask) << (u * bits)
            if nibble:
                if r < 16:
                    ob[g * 16 + r] |= np.uint8(v)
                else:
                    ob[g * 16 + r - 16] |= np.uint8(v << 4)
            else:
                ob[g * BLOCK + r] = np.uint8(v)
