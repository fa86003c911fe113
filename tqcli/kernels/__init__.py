"""The numba kernels: fused encode (normalise, rotate, quantise, scale, pack) and decode.

Vectors are processed in groups of 8 held "in lockstep": a group is stored transposed, as a
(d, 8) array whose row i holds coordinate i of the 8 vectors.  Every step then works on 8
independent lanes at once, which the compiler turns into SIMD instructions without
reordering any floating-point operation: each lane still sees exactly the sequence of
roundings that spec/tqz-v1.md prescribes (sequential sums, butterflies in stage order, no
fastmath, no fused multiply-add where the spec has a multiplication and an addition; the
only FMAs, in lanes._div_lanes, compute a correctly rounded division).  8 rows of d codes
of b bits are also a whole number of bytes, so each group owns its bytes and the output
cannot depend on the thread count.

The package, by concern:
    lanes.py     LLVM vector intrinsics on 8 lanes (butterflies, row moves, transposes,
                 divisions, sums); no jitted code
    rotate.py    the rotation, interpreted from its plan (below)
    groups.py    the group/task scaffold and per-group code packing
    encode.py    the fused encoder;  decode.py  the decoders
    rans.py      the rANS coder of spec 19.3 for any J;  rans8.py  for J = 8 (tq's), its
                 8 states in registers;  symbols.py  the entropy coding's kernels, fused
                 with rans8.py's coder one segment per task
    gaussian.py  SplitMix64 and the polar method (the prod-mode sketch)
    scan.py      search on codes: the scan's layout, query tables, scan_topk and the
                 choice of instruction set (TQ_SCAN_ISA); scan_portable.py its numba
                 kernels and top-k step, scan_x86.py the AVX2 path, scan_ref.py the
                 numpy twins (scan.py is imported on its own: tqcli.kernels.scan)

The functions below are the interface: plain Python functions over the jitted kernels,
taking arrays the caller prepared once (a Codec holds its plan, thresholds and search
table), so nothing is recomputed per call.  tqcli/codec/reference.py holds a plain-numpy version
of every one; tests/test_kernels.py compares them bit for bit.

A rotation PLAN is a tuple (signs, perms, blocks, block_scales), R rounds of K blocks:
    signs         float32 (R, d)     +-1
    perms         int32   (R, d)     a permutation of 0..d-1 per round
    blocks        int64   (R, K, 2)  (offset, size) of each round's Hadamard blocks, applied
                                     in order k = 0..K-1 after the sign-permutation; size a
                                     power of two, 0 for an unused slot
    block_scales  float32 (R, K)     each block's normalising factor, the float32 nearest
                                     1/sqrt(size) (1 for size 1: such a block is the identity)
Forward round r: t <- signs[r] * t[perms[r]], then each block t[off:off+size] <- scale * H
t[off:off+size]; the inverse runs rounds R-1..0, blocks K-1..0, then t[perms[r]] <-
signs[r] * t.  tqcli/codec/rotations builds the plan of each rotation kind.

NUMBA'S CACHE AND EDITS ACROSS MODULES.  Every kernel is compiled with cache=True into
tqcli/kernels/__pycache__ (*.nbi, *.nbc).  numba checks only the source file of the
function it loads: a driver in encode.py is not recompiled when a helper or an
intrinsic it uses in lanes.py, groups.py or rotate.py changes, and the stale compiled code
keeps running.  After editing any module here, clear the cache (cache.py):
    python -m tqcli.kernels.cache
or point NUMBA_CACHE_DIR at a fresh directory for the session.
"""

from __future__ import annotations

import numpy as np

from .. import limits
from .groups import GROUPS_PER_TASK
from .lanes import LANES


def _submodule(name: str):
    if name == "decode":
        from . import decode as m
    elif name == "encode":
        from . import encode as m
    elif name == "gaussian":
        from . import gaussian as m
    elif name == "rans":
        from . import rans as m
    elif name == "rans8":
        from . import rans8 as m
    elif name == "rotate":
        from . import rotate as m
    elif name == "scan_portable":
        from . import scan_portable as m
    elif name == "scan_x86":
        from . import scan_x86 as m
    else:
        from . import symbols as m
    return m


class _Lazy:
    """A kernel module, imported when one of its attributes is first read (then it takes
    this placeholder's global name).  numba builds a module's dispatchers and intrinsics
    as it imports it, so a command loads only the kernels it calls: decompress no encoder,
    compress no decoder, neither the entropy coding's nor the search's."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        module = _submodule(self._name)
        globals()["_" + self._name] = module
        return getattr(module, attr)


_decode, _encode, _gaussian, _rans, _rans8, _rotate, _scan_portable, _scan_x86, _symbols = (
    _Lazy(n) for n in ("decode", "encode", "gaussian", "rans", "rans8", "rotate",
                       "scan_portable", "scan_x86", "symbols"))

__all__ = ["LANES", "GROUPS_PER_TASK", "check_plan", "encode_mse", "encode_prod",
           "decode_mse", "decode_prod", "encode_symbols", "decode_symbols", "decode_entropy", "encode_entropy",
           "rans_encode", "rans_decode", "rans_slot_table", "rans_tables",
           "rans8_encode_tables", "max_words", "rotate_rows", "gaussian_fill", "divide", "warm_up",
           "set_threads", "thread_count", "thread_limit", "on_first_compile", "is_cached",
           "COMPILE_SECONDS"]


# ---------------------------------------------------------------------- worker threads

from .workers import (_run_task_range, _run_tasks, local_threads, set_threads,  # noqa: E402,F401
                      thread_count, thread_limit)

__all__ += ["local_threads"]


# ---------------------------------------------------------------------- first use

# Seconds each driver takes to compile from an empty cache on the 2-core development VM
# (quiet, numba 0.6x): what the first-use notice announces.  Compiled once, the kernels
# load from numba's cache in milliseconds.
COMPILE_SECONDS = {"encode_mse_kernel": 5, "encode_prod_kernel": 5, "decode_mse_kernel": 4,
                   "decode_prod_kernel": 5, "rotate_rows_kernel": 3,
                   "encode_symbols_kernel": 5, "decode_symbols_kernel": 4,
                   "encode_kernel": 2, "decode_kernel": 2, "decode_entropy_kernel": 5,
                   "decode8_kernel": 2, "encode_entropy_kernel": 6, "encode8_kernel": 2,
                   # search (kernels/scan*.py); measured at 2-3x these on the VM under a
                   # load of 6-8: 11 s, 5 s, 2 s, 2 s
                   "scan_avx2": 5, "scan_portable_kernel": 3, "tables_kernel": 1,
                   "layout_kernel": 1}
_DRIVERS = {"encode_mse_kernel": _encode, "encode_prod_kernel": _encode,
            "decode_mse_kernel": _decode, "decode_prod_kernel": _decode,
            "rotate_rows_kernel": _rotate, "encode_symbols_kernel": _symbols,
            "decode_symbols_kernel": _symbols, "encode_kernel": _rans,
            "decode_entropy_kernel": _symbols, "decode8_kernel": _rans8,
            "encode_entropy_kernel": _symbols, "encode8_kernel": _rans8,
            "decode_kernel": _rans, "scan_avx2": _scan_x86,
            "scan_portable_kernel": _scan_portable, "tables_kernel": _scan_portable,
            "layout_kernel": _scan_portable}


def on_first_compile(callback):
    """Call callback(driver name, estimated seconds) once, when this process starts to
    compile one of the drivers because numba's cache does not hold it (loading a cached
    kernel does not count).  For a command line that wants to say why it is waiting.
    Returns a function that withdraws the request (harmless once it has fired)."""
    from numba.core import event

    drivers = {getattr(mod, name): name for name, mod in _DRIVERS.items()}

    class _FirstCompile(event.Listener):
        done = False

        def on_start(self, ev):
            name = drivers.get(ev.data.get("dispatcher"))
            if name is not None and not self.done:
                cancel()
                callback(name, COMPILE_SECONDS[name])

        def on_end(self, ev):
            pass

    listener = _FirstCompile()

    def cancel() -> None:
        if not listener.done:
            listener.done = True
            event.unregister("numba:compile", listener)

    event.register("numba:compile", listener)
    return cancel


def is_cached(name: str) -> bool:
    """Whether numba's cache holds a compiled version of the driver `name` for its current
    source (any argument types).  A hint for starting compilation early, never needed for
    correctness: True when the cache cannot be looked at."""
    try:
        return bool(getattr(_DRIVERS[name], name)._cache._cache_file._load_index())
    except Exception:  # numba's internals moved: behave as if cached (do nothing early)
        return True


def check_plan(plan, d: int) -> None:
    """Refuse a plan whose arrays would make the kernels read or write out of bounds.

    The kernels index by the plan without checking (they are the hot path); this is a few
    small numpy operations per call, on arrays of R * K entries.
    """
    signs, perms, blocks, block_scales = plan
    rounds = signs.shape[0]
    if (signs.dtype != np.float32 or perms.dtype != np.int32 or blocks.dtype != np.int64
            or block_scales.dtype != np.float32):
        raise TypeError("plan arrays must be float32, int32, int64, float32")
    if (signs.shape != (rounds, d) or perms.shape != (rounds, d) or blocks.ndim != 3
            or blocks.shape[0] != rounds or blocks.shape[1] < 1 or blocks.shape[2] != 2
            or block_scales.shape != blocks.shape[:2]):
        raise ValueError(f"plan shapes do not fit d = {d}")
    if perms.size and (perms.min() < 0 or perms.max() >= d):
        raise ValueError("plan permutation index out of range")
    off, size = blocks[..., 0], blocks[..., 1]
    if (off < 0).any() or (size < 0).any() or (off + size > d).any() or (size & (size - 1)).any():
        raise ValueError("plan block outside [0, d) or of a size not a power of two")


def encode_mse(x, plan, thr, table, cents, bits, rule, codes, scales) -> None:
    """Encode the rows of x (float32 or float64, n x d) into packed codes and scales.

    thr: the float32 thresholds (codebook.float32_thresholds), table: the same padded for
    the binary search (codebook.search_table), cents: float32 centroids, bits: code width,
    rule: 0 least squares, 1 norm, 2 inner product.  Writes every byte of `codes`
    (uint8, ceil(n d bits / 8)) and `scales` (float64, n; NaN for a row with a NaN or an
    infinity, 0 for a zero row).
    """
    check_plan(plan, x.shape[1])
    _run_tasks(_encode.encode_mse_kernel, x.shape[0], x, *plan, thr, table, cents, bits, rule,
               codes, scales)


def encode_prod(x, plan, thr, table, cents, bits, sketch_t, codes, qbits, scales, gammas) -> None:
    """prod mode: `bits`-bit mse codes of the direction (bits = b - 1, possibly 0) plus the
    signs of S r for its residual r into `qbits`; the norms into `scales` and the residual
    norms into `gammas`.  `sketch_t` is the sketch S transposed (C-contiguous)."""
    check_plan(plan, x.shape[1])
    _run_tasks(_encode.encode_prod_kernel, x.shape[0], x, *plan, thr, table, cents, bits,
               sketch_t, codes, qbits, scales, gammas)


def decode_mse(codes, scales, plan, cents, bits, out) -> None:
    """Decode packed codes and their scales (float32, or float64 for float64 output) into
    the rows of `out` (n x d, C-contiguous)."""
    check_plan(plan, out.shape[1])
    _run_tasks(_decode.decode_mse_kernel, out.shape[0], codes, scales, *plan, cents, bits, out)


def decode_prod(codes, qbits, scales, gammas, plan, cents, bits, sketch, out) -> None:
    """prod mode: u = c[idx] + sqrt(pi/2)/d * gamma * S^T q, rotated back and scaled, into
    the rows of `out`; `sketch` is S (row-major)."""
    check_plan(plan, out.shape[1])
    _run_tasks(_decode.decode_prod_kernel, out.shape[0], codes, qbits, scales, gammas, *plan,
               cents, bits, sketch, out)


def encode_symbols(x, plan, thr, step, cents, rule, symbols, scales) -> None:
    """Encode the rows of x (float32 or float64, n x d) into one uint16 cell index per
    coordinate (`symbols`, n * d, row-major) and the scales (float64, n), for the entropy
    coding.  thr: the float32 thresholds of a uniform grid of `step`,
    (j - K + 1/2) step for j = 0 .. M - 2 (codebook.float32_thresholds of the binary64
    ones), cents: the M float32 centroids (M <= 4096), rule as in encode_mse."""
    check_plan(plan, x.shape[1])
    if symbols.dtype != np.uint16 or symbols.size != x.shape[0] * x.shape[1]:
        raise ValueError("symbols must be uint16 of n * d entries")
    if thr.dtype != np.float32 or thr.size != cents.size - 1 or cents.size > 4096:
        raise ValueError("thresholds must be float32, one fewer than the centroids")
    offset = (cents.size - 1) // 2 + 0.5
    _run_tasks(_symbols.encode_symbols_kernel, x.shape[0], x, *plan, thr,
               np.float64(1.0 / step), np.float64(offset), cents, rule, symbols, scales)


def decode_symbols(symbols, scales, plan, cents, out) -> None:
    """Decode uint16 cell indices (n * d, row-major, each < cents.size) and their scales
    into the rows of `out` (n x d, C-contiguous), as decode_mse does with unpacked codes."""
    check_plan(plan, out.shape[1])
    if symbols.dtype != np.uint16 or symbols.size != out.shape[0] * out.shape[1]:
        raise ValueError("symbols must be uint16 of n * d entries")
    if symbols.size and int(symbols.max()) >= cents.size:
        raise ValueError("a symbol is outside the codebook")
    _run_tasks(_symbols.decode_symbols_kernel, out.shape[0], symbols, scales, *plan, cents,
               out)


def _cumulative(freqs) -> np.ndarray:
    f = np.asarray(freqs, np.int64)
    return np.concatenate([[0], np.cumsum(f)[:-1]]).astype(np.uint32)


def max_words(count: int, precision: int, lanes: int) -> int:
    """The most 32-bit words a segment of `count` symbols can take (spec 19.3)."""
    return limits.max_stream_words(count, precision, lanes)


def rans_slot_table(freqs, precision: int) -> np.ndarray:
    """The decoder's table: slot -> the symbol s with F_s <= slot < F_s + f_s (2^P uint16).
    freqs must be checked (each >= 1, summing to 2^precision)."""
    f = np.asarray(freqs, np.int64)
    if f.min() < 1 or int(f.sum()) != 1 << precision:
        raise ValueError("frequencies must be >= 1 and sum to 2^precision")
    return np.repeat(np.arange(f.size, dtype=np.uint16), f)


def _regions(counts, precision: int, lanes: int):
    """Each segment's region of the output, room for its longest stream (19.3), zeroed so
    that no stale byte can leak: (out, region ends)."""
    sizes = np.array([4 * limits.max_stream_words(int(c), precision, lanes) for c in counts],
                     np.int64)
    region_ends = np.cumsum(sizes)
    return np.zeros(int(region_ends[-1]) if sizes.size else 0, np.uint8), region_ends


def rans_encode(symbols, bounds, freqs, precision: int, lanes: int):
    """Code each segment symbols[bounds[k]:bounds[k+1]] (uint16) as one rANS stream of
    spec 19.3 (in parallel, one task per segment).  Returns (buf, starts, lengths): segment
    k's stream is buf[starts[k]:starts[k] + lengths[k]] (uint8; lengths in bytes)."""
    bounds = np.ascontiguousarray(bounds, np.int64)
    counts = np.diff(bounds)
    if symbols.dtype != np.uint16 or bounds[0] != 0 or bounds[-1] != symbols.size \
            or (counts < 0).any():
        raise ValueError("symbols must be uint16 and bounds cover them in order")
    if symbols.size and int(symbols.max()) >= len(freqs):
        raise ValueError("a symbol is outside the model")
    out, region_ends = _regions(counts, precision, lanes)
    first = np.empty(counts.size, np.int64)
    if lanes == 8:  # tq's J: the states in registers (rans8.py), the same bytes
        _run_task_range(_rans8.encode8_kernel, counts.size, symbols, bounds,
                        _rans8.encode_tables(freqs, precision), region_ends, out, first)
    else:
        _run_task_range(_rans.encode_kernel, counts.size, symbols, bounds,
                        np.asarray(freqs, np.uint32), *_rans.symbol_tables(freqs, precision),
                        np.int64(precision), np.int64(lanes), region_ends, out, first)
    return out, first, region_ends - first


def encode_entropy(x, seg_rows, plan, thr, step, cents, rule, enc, precision: int, scales):
    """encode_symbols and rans_encode in one pass (J = 8 lanes): seg_rows (k, 2) the row
    ranges of the segments of x (each starting on a multiple of 8 rows), enc =
    rans8.encode_tables(the model).  Returns (buf, starts, lengths) as rans_encode; the
    scales into `scales` (float64, n) as encode_symbols.  One task per segment; the same
    bytes as the two calls."""
    check_plan(plan, x.shape[1])
    seg_rows = np.ascontiguousarray(seg_rows, np.int64).reshape(-1, 2)
    r0, r1 = seg_rows[:, 0].copy(), seg_rows[:, 1].copy()
    n, d = x.shape
    if ((r0 % LANES).any() or (r1 < r0).any() or (r0 < 0).any() or (r1 > n).any()
            or thr.dtype != np.float32 or thr.size != cents.size - 1 or cents.size > 4096
            or enc.shape != (cents.size, 5) or scales.shape[0] < n):
        raise ValueError("encode_entropy: inconsistent arguments")
    out, region_ends = _regions((r1 - r0) * d, precision, 8)
    first = np.empty(r0.size, np.int64)
    offset = (cents.size - 1) // 2 + 0.5
    _run_task_range(_symbols.encode_entropy_kernel, r0.size, x, r0, r1, *plan, thr,
                    np.float64(1.0 / step), np.float64(offset), cents, rule, enc,
                    region_ends, out, first, scales)
    return out, first, region_ends - first


def _rans_problems() -> dict:
    return {_rans.SHORT_STREAM: "shorter than its coder states",
            _rans.BAD_STATE: "a coder state out of range",
            _rans.OVERRUN: "the stream ends before its symbols",
            _rans.UNREAD: "words left over after its symbols",
            _rans.FINAL_STATE: "the coder does not end in its initial state"}


def rans8_encode_tables(freqs, precision: int):
    """The J = 8 encoder's per-symbol constants (rans8.encode_tables), for encode_entropy."""
    return _rans8.encode_tables(freqs, precision)


def rans_tables(freqs, precision: int):
    """The decoder's tables (rans_slot_table, and rans8.decode_tables for J = 8): built once
    per model by a caller decoding many chunks."""
    return rans_slot_table(freqs, precision), _rans8.decode_tables(freqs, precision)


def _segment_layout(buf, starts, lengths, counts, table, precision):
    buf = np.frombuffer(buf, np.uint8) if not isinstance(buf, np.ndarray) else buf
    starts = np.ascontiguousarray(starts, np.int64)
    lengths = np.ascontiguousarray(lengths, np.int64)
    counts = np.ascontiguousarray(counts, np.int64)
    if ((lengths % 4).any() or (starts < 0).any() or (lengths < 0).any()
            or (starts + lengths > buf.size).any() or table.size != 1 << precision):
        raise ValueError("rans_decode: inconsistent arguments")
    return buf, starts, lengths, counts


def _raise_status(status) -> None:
    from ..errors import FormatError

    if status.any():
        k = int(np.argmax(status != 0))
        raise FormatError(f"segment {k}: corrupt entropy-coded stream "
                          f"({_rans_problems()[int(status[k])]})", rule="entropy-stream")


def rans_decode(buf, starts, lengths, counts, freqs, precision: int, lanes: int, out,
                slot_table=None, tables=None) -> None:
    """Decode segment k from buf[starts[k]:starts[k] + lengths[k]] (bytes, a multiple of 4)
    into the next counts[k] entries of `out` (uint16), in parallel.  slot_table:
    rans_slot_table(freqs, precision), or tables: rans_tables(freqs, precision), built here
    when not given (a caller decoding many chunks builds them once).  A stream the decoder
    of spec 19.3 refuses raises FormatError (rule entropy-stream) naming its segment."""
    if tables is None and lanes == 8:
        tables = rans_tables(freqs, precision)
    if tables is not None:
        slot_table = tables[0]
    table = rans_slot_table(freqs, precision) if slot_table is None else slot_table
    buf, starts, lengths, counts = _segment_layout(buf, starts, lengths, counts, table,
                                                   precision)
    if out.dtype != np.uint16 or int(counts.sum()) != out.size:
        raise ValueError("rans_decode: inconsistent arguments")
    out_starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    status = np.zeros(counts.size, np.int64)
    if lanes == 8:  # tq's J: the states in registers (rans8.py), the same symbols
        _run_task_range(_rans8.decode8_kernel, counts.size, buf, starts, lengths, counts,
                        out_starts, tables[1], table, np.int64(precision), out, status)
    else:
        _run_task_range(_rans.decode_kernel, counts.size, buf, starts, lengths, counts,
                        out_starts, table, np.asarray(freqs, np.uint32), _cumulative(freqs),
                        np.int64(precision), np.int64(lanes), out, status)
    _raise_status(status)


def decode_entropy(buf, starts, lengths, seg_rows: int, tables, precision: int, scales, plan,
                   cents, out) -> None:
    """The entropy coding's rANS stage and decoder fused (J = 8 lanes): the segments of
    seg_rows rows, segment k's stream at buf[starts[k]:starts[k] + lengths[k]], decoded
    with tables = rans_tables(the model) and the scales into the rows of `out` (n x d), one
    task per segment; the same values as rans_decode then decode_symbols.  FormatError
    (entropy-stream) as rans_decode for a stream it refuses (`out` is then garbage)."""
    check_plan(plan, out.shape[1])
    table, fb = tables
    n, d = out.shape
    counts = np.minimum(seg_rows, n - np.arange(0, n, seg_rows)) * d
    buf, starts, lengths, counts = _segment_layout(buf, starts, lengths, counts, table,
                                                   precision)
    if starts.size != counts.size or fb.size != table.size or scales.shape[0] < n \
            or len(cents) < int(table[-1]) + 1:
        raise ValueError("decode_entropy: inconsistent arguments")
    status = np.zeros(counts.size, np.int64)
    _run_task_range(_symbols.decode_entropy_kernel, counts.size, buf, starts, lengths,
                    np.int64(seg_rows), fb, table, np.int64(precision), scales, *plan, cents,
                    out, status)
    _raise_status(status)


def rotate_rows(x, plan, inverse: bool) -> None:
    """Rotate every row of float32 `x` (n x d) in place, forward or back (for tests: the
    rotation on its own, as encode and decode apply it)."""
    check_plan(plan, x.shape[1])
    _run_tasks(_rotate.rotate_rows_kernel, x.shape[0], x, *plan, inverse)


def gaussian_fill(key, out) -> None:
    """Fill float32 `out` with N(0, 1) draws by Marsaglia's polar method on SplitMix64(key).

    Outputs are consumed in pairs (x, y) -> u = (x >> 11) * 2**-52 - 1, likewise v; a pair
    with s = u^2 + v^2 outside (0, 1) is rejected; otherwise u*f and v*f with
    f = sqrt(-2 ln(s) / s) are appended in that order, each rounded to float32.
    """
    _gaussian.gaussian_fill_kernel(np.uint64(key), out)


def divide(a, b, out) -> None:
    """out[i] = float64(a[i]) / b, computed as the encoder divides float32 rows (a
    reciprocal and two FMA corrections; exposed so the tests can check it is the correctly
    rounded quotient)."""
    _encode.divide_kernel(a, np.float64(b), out)


def warm_up() -> None:
    """Load numba's machinery with one small cached call (done once per process)."""
    _gaussian.splitmix(np.uint64(0), np.uint64(1))
