"""Scoring codes without decoding them (asymmetric distance computation): layout, query
tables, the top-k scan and the choice of instruction set.

For a query y (already centred and rotated) and a row of codebook indices v, the scan
approximates sum_t y[t] * c[v[t]] by integer table look-ups:

    layout_codes(packed, bits, rows, dim) -> ScanCodes    the codes in blocks of 32 rows
    prepare_queries(y, centroids)         -> QueryTables  uint8 tables, delta, offset, bound
    scan_topk(codes, tables, kk, scale=...) -> (ids, approx)   the kk best rows per query

Tables.  The codes of a row are grouped into positions: for bits 1, 2, 4 a position is one
4-bit nibble holding 4, 2 or 1 codes; for bits 3 one code (a nibble with 8 of its 16
values used); for bits 5..8 one code (a byte).  Position g of query i has the exact table
E[i, g, k] = sum over the codes u in the position of y[i, t_u] * c[k_u] (float64: each
product of two float32 is exact).  With lo[i, g] = min_k E, one step per query
delta[i] = max_g (max_k E - lo) / 255 and the uint8 table q = rint((E - lo) / delta),

    approx_unscaled(i, v) = delta[i] * S + offset[i],  S = sum_g q[i, g, v_g] (exact integer),
    offset[i] = sum_g lo[i, g],

and for EVERY code vector v, |approx_unscaled(i, v) - sum_t y[i, t] c[v_t]| <= bound[i]:
with err[g, k] = delta q + lo - E (the rounding actually made, at most delta / 2),
bound[i] = max(sum_g max_k err, sum_g max_k -err) plus a margin for the float64 rounding of
every step: 2**-50 (8 sum_g max_k |E| + 4 sum_g |lo| + 4 * 255 * positions * delta +
(positions + 2) * the larger sum), covering E's sums (at most 3 additions), the residues,
offset (Neumaier's compensated sum), delta * S + offset (S <= 255 per position) and the
sums over positions, each rounding at most 2**-53 relative.  Both sums are reached by a
code vector (each position taking its most positive, or most negative, error), so no
smaller bound holds for every v.  Each position's largest rounding among its entries is
near delta / 2, so the bound is about 0.4 to 0.45 * positions * delta (measured on unit
queries and tq's codebooks at d = 97..768), about 0.03 for a unit query at d = 768, b = 4.

Memory: codes of bits 1, 2, 4 take bits/8 bytes each (plus the padding of the last block
and of an odd number of positions); 3-bit codes take half a byte (a nibble each: 4/3 of the
packed size); 5..8-bit codes a byte each.

The scan's score of row j is scale[j] * approx_unscaled + qconst[i] * vweight[j] + vbias[j]
(scan_portable.py gives the exact float64 order), best first, ties to the smaller id.

Instruction sets (features(), TQ_SCAN_ISA): 'avx2' (vpshufb table look-ups on the nibble
layout, scan_x86.py) and 'portable' (plain numba loops, any CPU, any bits).  TQ_SCAN_ISA
names the path to use (falling back to 'portable' when the CPU lacks it); unset, the best
the CPU has.  Bits 5..8 always take the portable path.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from .scan_portable import BLOCK, EMPTY_ID, layout_kernel, scan_portable_kernel, tables_kernel

ISAS = ("avx2", "portable")  # fastest first
ISA_ENV = "TQ_SCAN_ISA"
_CPN = {1: 4, 2: 2, 3: 1, 4: 1}  # codes per nibble (nibble layouts)


# ---------------------------------------------------------------------- dispatch

@functools.lru_cache(maxsize=None)
def cpu_isas() -> tuple[str, ...]:
    """The scan paths this CPU can run, fastest first (read from LLVM's host features)."""
    try:
        from llvmlite import binding
        feats = binding.get_host_cpu_features()
        have_avx2 = bool(feats.get("avx2", False))
    except Exception:  # llvmlite cannot tell: assume nothing
        have_avx2 = False
    return ("avx2", "portable") if have_avx2 else ("portable",)


def features() -> dict:
    """{'cpu': paths the CPU can run, 'isa': the path scan_topk takes for 4-bit nibble
    codes, 'requested': TQ_SCAN_ISA or None}."""
    req = os.environ.get(ISA_ENV, "").strip().lower() or None
    return {"cpu": cpu_isas(), "isa": _chosen(req), "requested": req}


def _chosen(req: str | None) -> str:
    have = cpu_isas()
    if req is None:
        return have[0]
    if req not in ISAS:
        raise ValueError(f"{ISA_ENV}={req!r}: expected one of {', '.join(ISAS)}")
    return req if req in have else "portable"


def scan_isa(codes: "ScanCodes | None" = None, isa: str | None = None) -> str:
    """The path a scan of `codes` takes (isa: as TQ_SCAN_ISA, overriding it)."""
    chosen = _chosen(isa.lower() if isa else (os.environ.get(ISA_ENV, "").strip().lower() or None))
    if codes is not None and not codes.nibble:
        return "portable"
    return chosen


# ---------------------------------------------------------------------- layout

@dataclass(frozen=True)
class ScanCodes:
    """Codes in the scan's layout: `data` (nblocks, block_bytes) uint8, read-only, of
    `rows` rows (the last block padded with code 0), `positions` per row."""

    data: np.ndarray
    rows: int
    dim: int
    bits: int

    @property
    def nibble(self) -> bool:
        return self.bits <= 4

    @property
    def positions(self) -> int:
        return self.data.shape[1] // (16 if self.nibble else BLOCK)

    @property
    def nblocks(self) -> int:
        return self.data.shape[0]

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def blocks(self, b0: int, b1: int) -> "ScanCodes":
        """Blocks b0 .. b1 - 1 (rows b0 * 32 ..), sharing memory."""
        b0, b1 = max(0, b0), min(self.nblocks, b1)
        b1 = max(b0, b1)
        rows = max(0, min(self.rows, b1 * BLOCK) - b0 * BLOCK)
        return ScanCodes(self.data[b0:b1], rows, self.dim, self.bits)

    def indices(self) -> np.ndarray:
        """The codebook indices back, (rows, dim) uint8."""
        return _unlayout(self)

    def row_indices(self, rows: np.ndarray) -> np.ndarray:
        """The codebook indices of the rows `rows` (any order, repeats allowed), (rows.size,
        dim) uint8: equal to indices()[rows], read from those rows' bytes only (indices()
        unpacks every row of a block: 32 times the work when the rows are scattered)."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        if rows.size and (rows.min() < 0 or rows.max() >= self.rows):
            raise ValueError(f"rows must lie in [0, {self.rows})")
        b, lane = rows // BLOCK, rows % BLOCK
        npos = self.positions
        if not self.nibble:
            return self.data.reshape(self.nblocks, self.dim, BLOCK)[b, :, lane]
        byte = self.data.reshape(self.nblocks, npos, 16)[b, :, lane % 16]  # (rows, npos)
        high = (lane >= 16)[:, None]
        nib = np.where(high, byte >> np.uint8(4), byte & np.uint8(15))
        cpn, bits = _CPN[self.bits], self.bits
        mask = np.uint8((1 << bits) - 1)
        parts = [(nib >> np.uint8(u * bits)) & mask for u in range(cpn)]
        idx = np.stack(parts, axis=-1).reshape(rows.size, npos * cpn)
        return np.ascontiguousarray(idx[:, :self.dim])


def positions_of(bits: int, dim: int) -> int:
    if bits <= 4:
        g = -(-dim // _CPN[bits])
        return g + (g & 1)
    return dim


def _unpack(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """count LSB-first codes of `bits` bits (spec section 6) as uint8."""
    if bits == 8:
        return packed[:count].copy()
    planes = np.unpackbits(packed, count=count * bits, bitorder="little").reshape(count, bits)
    return np.packbits(planes, axis=1, bitorder="little").reshape(count)


def layout_indices(idx: np.ndarray, bits: int) -> ScanCodes:
    """ScanCodes of codebook indices idx (rows, dim), each < 2**bits."""
    rows, dim = idx.shape
    nb = -(-rows // BLOCK)
    npos = positions_of(bits, dim)
    if bits <= 4:
        cpn = _CPN[bits]
        full = np.zeros((nb * BLOCK, npos * cpn), np.uint8)
        full[:rows, :dim] = idx
        g = full.reshape(nb * BLOCK, npos, cpn)
        nib = np.zeros((nb * BLOCK, npos), np.uint8)
        for u in range(cpn):
            nib |= g[:, :, u] << np.uint8(u * bits)
        nib = nib.reshape(nb, BLOCK, npos)
        data = nib[:, :16, :] | (nib[:, 16:, :] << np.uint8(4))  # (nb, 16, npos)
        data = np.ascontiguousarray(data.transpose(0, 2, 1)).reshape(nb, npos * 16)
    else:
        full = np.zeros((nb * BLOCK, dim), np.uint8)
        full[:rows] = idx
        data = np.ascontiguousarray(full.reshape(nb, BLOCK, dim).transpose(0, 2, 1))
        data = data.reshape(nb, dim * BLOCK)
    data.setflags(write=False)
    return ScanCodes(data, rows, dim, bits)


def _unlayout(codes: ScanCodes) -> np.ndarray:
    nb, bits, npos = codes.nblocks, codes.bits, codes.positions
    if bits <= 4:
        cpn = _CPN[bits]
        d = codes.data.reshape(nb, npos, 16).transpose(0, 2, 1)
        nib = np.concatenate([d & np.uint8(15), d >> np.uint8(4)], axis=1)  # (nb, 32, npos)
        mask = np.uint8((1 << bits) - 1)
        parts = [(nib >> np.uint8(u * bits)) & mask for u in range(cpn)]
        idx = np.stack(parts, axis=-1).reshape(nb * BLOCK, npos * cpn)
    else:
        idx = codes.data.reshape(nb, codes.dim, BLOCK).transpose(0, 2, 1).reshape(-1, codes.dim)
    return np.ascontiguousarray(idx[:codes.rows, :codes.dim])


def layout_codes(packed: np.ndarray, bits: int, rows: int, dim: int) -> ScanCodes:
    """The scan's layout of `rows` x `dim` codes of `bits` (1..8) bits packed LSB first,
    row-major (ChunkCodes.codes of the 'packed' coding, spec section 6)."""
    if not 1 <= bits <= 8 or rows < 0 or dim < 1:
        raise ValueError(f"cannot lay out {rows} x {dim} codes of {bits} bits")
    packed = np.asarray(packed, np.uint8).reshape(-1)
    need = -(-rows * dim * bits // 8)
    if packed.size < need:
        raise ValueError(f"{packed.size} bytes do not hold {rows} x {dim} codes of {bits} bits")
    npos = positions_of(bits, dim)
    nb = -(-rows // BLOCK)
    data = np.zeros((nb, npos * (16 if bits <= 4 else BLOCK)), np.uint8)
    layout_kernel(packed, bits, rows, dim, _CPN.get(bits, 1), npos, data)
    data.setflags(write=False)
    return ScanCodes(data, rows, dim, bits)


def layout_codes_reference(packed: np.ndarray, bits: int, rows: int, dim: int) -> ScanCodes:
    """layout_codes in numpy (its twin; unpacks the whole stream first)."""
    packed = np.asarray(packed, np.uint8).reshape(-1)
    return layout_indices(_unpack(packed, bits, rows * dim).reshape(rows, dim), bits)


def concat_codes(parts) -> ScanCodes:
    """One ScanCodes of the rows of `parts` in order (same dim and bits).  Blocks are
    reused as they are when every part but the last fills whole blocks."""
    parts = list(parts)
    if not parts:
        raise ValueError("nothing to concatenate")
    dim, bits = parts[0].dim, parts[0].bits
    if any(p.dim != dim or p.bits != bits for p in parts):
        raise ValueError("codes of different dim or bits cannot be concatenated")
    rows = sum(p.rows for p in parts)
    if all(p.rows == p.nblocks * BLOCK for p in parts[:-1]):
        data = np.concatenate([p.data for p in parts], axis=0)
        data.setflags(write=False)
        return ScanCodes(data, rows, dim, bits)
    return layout_indices(np.concatenate([p.indices() for p in parts], axis=0), bits)


# ---------------------------------------------------------------------- query tables

@dataclass(frozen=True)
class QueryTables:
    """tables (m, positions, 16 or 2**bits) uint8; delta, offset, bound (m,) float64."""

    tables: np.ndarray
    delta: np.ndarray
    offset: np.ndarray
    bound: np.ndarray
    bits: int
    dim: int

    @property
    def m(self) -> int:
        return self.tables.shape[0]


def prepare_queries(y: np.ndarray, centroids: np.ndarray) -> QueryTables:
    """Tables of transformed queries y (m, dim) (float32; a 1-D y is one query) for codes
    of the codebook `centroids` (2**bits float32), by scan_portable.tables_kernel (its
    numpy twin: scan_ref.prepare_queries_reference).  Refuses non-finite input."""
    y = np.asarray(y, np.float32)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2 or y.shape[1] < 1:
        raise ValueError(f"queries must be (m, dim), got shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("queries must be finite")
    c = np.asarray(centroids, np.float32).reshape(-1)
    bits = int(c.size).bit_length() - 1
    if c.size != 1 << bits or not 1 <= bits <= 8:
        raise ValueError(f"{c.size} centroids: expected 2**bits for bits 1..8")
    if not np.isfinite(c).all():
        raise ValueError("centroids must be finite")
    m, dim = y.shape
    npos = positions_of(bits, dim)
    cpn = _CPN.get(bits, 1)
    nent = 16 if bits <= 4 else 1 << bits
    tables = np.empty((m, npos, nent), np.uint8)
    delta, offset, bound = np.empty(m), np.empty(m), np.empty(m)
    tables_kernel(np.ascontiguousarray(y, np.float64), c.astype(np.float64), bits, cpn, npos,
                  nent, tables, delta, offset, bound)
    return QueryTables(tables, delta, offset, bound, bits, dim)


# ---------------------------------------------------------------------- the scan

def _check(codes: ScanCodes, tables: QueryTables, kk: int, scale, qconst, vweight, vbias,
           allow):
    if codes.bits != tables.bits or codes.dim != tables.dim:
        raise ValueError(f"tables for bits={tables.bits} dim={tables.dim} do not fit codes "
                         f"of bits={codes.bits} dim={codes.dim}")
    if kk < 1:
        raise ValueError("kk must be at least 1")
    n, m = codes.rows, tables.m
    # the kernels index without checking: shapes that would read out of bounds are refused
    npos = positions_of(codes.bits, codes.dim)
    nent = 16 if codes.nibble else 1 << codes.bits
    if (codes.data.dtype != np.uint8 or codes.data.ndim != 2
            or codes.data.shape[1] != npos * (16 if codes.nibble else BLOCK)
            or not 0 <= n <= codes.nblocks * BLOCK or n <= (codes.nblocks - 1) * BLOCK):
        raise ValueError("codes do not have the scan's layout for their rows, dim and bits")
    if (tables.tables.dtype != np.uint8 or tables.tables.shape != (m, npos, nent)
            or np.shape(tables.delta) != (m,) or np.shape(tables.offset) != (m,)):
        raise ValueError("query tables do not have the shape of their bits and dim")

    def vec(a, size, what, dtype=np.float64):
        if a is None:
            return np.zeros(1, dtype), False
        a = np.ascontiguousarray(a, dtype).reshape(-1)
        if a.size != size:
            raise ValueError(f"{what} must have {size} entries, got {a.size}")
        return a, True

    scale, _ = vec(scale, n, "scale")
    qconst, use_q = vec(qconst, m, "qconst")
    vweight, use_w = vec(vweight, n, "vweight")
    if use_q != use_w:
        raise ValueError("qconst and vweight go together")
    vbias, use_b = vec(vbias, n, "vbias")
    allow, use_allow = vec(allow, n, "allow", np.bool_)
    return scale, qconst, vweight, use_q, vbias, use_b, allow, use_allow


def new_heaps(m: int, kk: int):
    return np.full((m, kk), -np.inf), np.full((m, kk), EMPTY_ID, np.int64)


def finish_heaps(hs: np.ndarray, hi: np.ndarray):
    """Heaps -> (ids, approx) best first, ties to the smaller id; empty slots id -1."""
    order = np.lexsort((hi, -hs), axis=1)
    ids = np.take_along_axis(hi, order, axis=1)
    approx = np.take_along_axis(hs, order, axis=1)
    approx = np.where(ids == EMPTY_ID, -np.inf, approx)
    ids = np.where(ids == EMPTY_ID, -1, ids)
    return ids, approx


def scan_topk(codes: ScanCodes, tables: QueryTables, kk: int, *, scale, qconst=None,
              vweight=None, vbias=None, allow=None, row_offset: int = 0, isa: str | None = None):
    """For each query the kk allowed rows with the largest score (module docstring): ids
    (m, kk) int64 (row + row_offset; -1 past the allowed rows) and approx (m, kk) float64,
    best first, ties to the smaller id.  GIL-free and read-only on codes and tables: safe to
    call from many threads.  isa: as TQ_SCAN_ISA, for this call."""
    scale, qconst, vweight, use_q, vbias, use_b, allow, use_allow = _check(
        codes, tables, kk, scale, qconst, vweight, vbias, allow)
    hs, hi = new_heaps(tables.m, kk)
    if codes.rows and tables.m:
        data = np.ascontiguousarray(codes.data)
        tabs = np.ascontiguousarray(tables.tables)
        delta = np.ascontiguousarray(tables.delta, np.float64)
        offset = np.ascontiguousarray(tables.offset, np.float64)
        path = scan_isa(codes, isa)
        if path == "avx2":
            from .scan_x86 import scan_avx2
            scan_avx2(data, codes.rows, tabs, delta, offset, scale, qconst, vweight, vbias,
                      use_q, use_b, allow, use_allow, np.int64(row_offset), hs, hi)
        else:
            scan_portable_kernel(data, codes.nibble, codes.rows, tabs, delta, offset, scale,
                                 qconst, vweight, vbias, use_q, use_b, allow, use_allow,
                                 np.int64(row_offset), hs, hi)
    return finish_heaps(hs, hi)
