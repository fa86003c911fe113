"""The limits, enumerations and option rules of tq and of the .tqz format, written once.

This module imports nothing heavy (no numpy), so the command line builds its options from
it at start-up; the header writer, the reader checks (spec/tqz-v1.md section 13) and the
library use the same names.  Each rule is a function returning the reason a combination is
refused, or None, so that every caller words it the same way.
"""

from __future__ import annotations

# ------------------------------------------------------------------ enumerations (header codes)

MODES = ("mse", "prod")                           # header `mode`: index = code
SCALE_RULES = ("ls", "norm", "ip")                # header `scale_rule`: index = code
SCALE_DTYPES = ("float32", "float16", "float64")  # header `scale_dtype`: index = code
SCALE_DTYPE_SIZES = {"float32": 4, "float16": 2, "float64": 8}
# header `source_dtype`; 4 (bfloat16) since revision 1.2: encoded from its exact float32 values
SOURCE_DTYPES = {1: "float16", 2: "float32", 3: "float64", 4: "bfloat16"}
SOURCE_DTYPE_SIZES = {"float16": 2, "float32": 4, "float64": 8, "bfloat16": 2}


def stored_itemsize(dtype: str) -> int:
    """Bytes of one value of a stored dtype name (a collection's raw members, safetensors)."""
    return 1 if dtype in ("bool", "int8", "uint8") else \
        2 if dtype in ("int16", "uint16", "float16", "bfloat16") else \
        4 if dtype in ("int32", "uint32", "float32") else 8
SCALE_DTYPE_CHOICES = ("auto",) + SCALE_DTYPES    # "auto": float32, float64 when a norm needs it
OUTPUT_DTYPES = ("original", "float32", "float16", "float64")
ZARR_CODECS = ("plain", "tq")  # decompress -o OUT.zarr: zarr's default codecs, or tq.turboquant

# ------------------------------------------------------------------ limits

MIN_BITS, MAX_BITS = 1, 8
MIN_DIM, MAX_DIM = 2, 1 << 20
MAX_PROD_DIM = 1 << 12          # prod mode's d x d sketch: 64 MiB of float32 at most
MIN_ROUNDS, MAX_ROUNDS = 1, 32
MIN_NDIM, MAX_NDIM = 1, 32
CHUNK_ROWS_MULTIPLE = 8         # chunks start on whole bytes of every code stream
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 8, 1 << 20
MAX_VECTORS = 1 << 48
MAX_CHUNK_BYTES = 1 << 31       # payload of one full chunk
MAX_SEED = (1 << 64) - 1
MAX_CODEBOOK = 1 << MAX_BITS
# A reader's budget for the decoding state one header implies (spec 13.7), before it builds
# any: every file tq writes with default options needs at most ~100 MiB (prod mode at
# d = 4096: its 64 MiB sketch; mse at d = 2^20: 24 MiB of tables and a 32-64 MiB chunk),
# while the largest legal headers ask for 256 MiB of rotation tables (d = 2^20, 32 rounds)
# from a file of 131 KB.  --memory / memory_limit= raise or lower it.
DEFAULT_MEMORY_LIMIT = 256 << 20
# The expansion limit (spec 13.9): a file may declare at most this many decoded bytes (in its
# source dtype) per byte it holds, per chunk (its payload and CRC) and per file.  The packed
# coding spends at least 1 bit per coordinate (at most 64 x, float64 from 1-bit codes);
# tq's entropy coding at its rates 1-8 spends at least 0.3695 bits on any coordinate (the
# cheapest symbol of the rate-1 model, 50,727 of 2^16) -- at most 173 x, all-zero float64
# rows -- so the default refuses no file tq writes at a rate.  Error targets (--nmse) near
# 1 and crafted models go much further (the format allows 2.9 million x).  --max-ratio /
# max_ratio= raise it for files one trusts.
DEFAULT_MAX_RATIO = 256

DEFAULT_BITS = 4
DEFAULT_MODE = "mse"
DEFAULT_SEED = 0
DEFAULT_ROUNDS = 3
DEFAULT_SCALE_DTYPE = "auto"
TARGET_CHUNK_INPUT_BYTES = 1 << 22  # about 4 MiB of float32 input per chunk (encoder's choice)


# ------------------------------------------------------------------ derived values and rules


def thread_limit() -> int:
    """The most worker threads the kernels use: NUMBA_NUM_THREADS if set, else the cores
    this process may run on (here, not in tqcli.kernels, so that the memory a header
    implies is known without importing numba)."""
    import os

    env = os.environ.get("NUMBA_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def code_bits(mode: str, bits: int) -> int:
    """Bits of the mse codebook index per coordinate: b in mse mode, b - 1 in prod mode."""
    return bits if mode == "mse" else bits - 1


def floats_per_vector(mode: str) -> int:
    """Per-vector floats of a chunk: the scale, and in prod mode the residual norm."""
    return 1 if mode == "mse" else 2


def default_scale_rule(mode: str) -> str:
    return "ls" if mode == "mse" else "norm"


def scale_rule_problem(mode: str, rule: str) -> str | None:
    if mode == "prod" and rule != "norm":
        return "prod mode requires the norm scale rule (its estimate is unbiased only then)"
    return None


def chunk_rows_problem(rows: int) -> str | None:
    if not MIN_CHUNK_ROWS <= rows <= MAX_CHUNK_ROWS or rows % CHUNK_ROWS_MULTIPLE:
        return (f"chunk rows {rows} invalid (a multiple of {CHUNK_ROWS_MULTIPLE} from "
                f"{MIN_CHUNK_ROWS} to {MAX_CHUNK_ROWS})")
    return None


def dim_problem(mode: str, dim: int) -> str | None:
    if not MIN_DIM <= dim <= MAX_DIM:
        return f"dimension {dim} out of range {MIN_DIM}..{MAX_DIM}"
    if mode == "prod" and dim > MAX_PROD_DIM:
        return f"prod mode supports dimensions up to {MAX_PROD_DIM}, not {dim}"
    return None


def default_chunk_rows(dim: int) -> int:
    """Largest power of two <= 4 MiB / (4 d), clamped to 8 .. 65536 (encoder's choice)."""
    rows = max(1, TARGET_CHUNK_INPUT_BYTES // (4 * dim))
    return min(1 << 16, max(MIN_CHUNK_ROWS, 1 << (rows.bit_length() - 1)))


_SIZE_UNITS = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}


def parse_size(text: str) -> int:
    """A byte count as zstd's --memory spells it: digits, then optionally K, M, G or T
    (powers of 1024, as in zstd: 512M = 512MB = 512MiB), then optionally "i" and "B".

    Raises ValueError naming the text for anything else.
    """
    t = text.strip()
    digits = len(t) - len(t.lstrip("0123456789"))
    number, unit = t[:digits], t[digits:].upper()
    if unit.endswith("B"):
        unit = unit[:-1]
    if unit.endswith("I") and len(unit) == 2:
        unit = unit[:-1]
    if not number or unit not in _SIZE_UNITS:
        raise ValueError(f"expected a size such as 512M or 2GiB, got {text!r}")
    return int(number) << _SIZE_UNITS[unit]


def parse_ratio(text) -> float:
    """A --max-ratio value: a number > 0 ("inf": no limit).  ValueError otherwise."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not a number") from None
    if not v > 0:
        raise ValueError(f"the ratio must be a number above 0, got {text!r}")
    return v


def format_size(n: int) -> str:
    """n bytes as the largest binary unit that keeps one decimal (for messages)."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}".replace(".0 ", " ")
    return f"{n} bytes"


def max_stream_words(count: int, precision: int, lanes: int) -> int:
    """The most u32 words a segment of `count` symbols can take (spec 19.3).

    The stream is the L final states (2 words each) plus the words emitted while encoding.
    A state starts at 2^31 and ends in [2^31, 2^63); coding a symbol of frequency f >= 1
    maps x to less than x 2^P / f + 2^P, which adds less than P + 1 bits to log2 x (x is
    at least 2^(31 - P) f when it is coded), and every emitted word takes away at least
    32 - 2^-14 bits.  Over the count_j symbols of state j that is fewer than
    count_j (P + 2) / 32 + 1 words; summed over the L states, with the final states, at
    most 2 L + ceil(count (P + 2) / 32) + L, rounded up here to 4 L + ceil(...).
    """
    return 4 * lanes + (count * (precision + 2) + 31) // 32


def min_symbol_bits(precision: int, f_max: int) -> float:
    """A lower bound on the bits of state one decoded symbol consumes (spec 19.3), for a
    model whose largest frequency is f_max < 2^P: a step takes x to f (x div 2^P) + slot
    - F_s, at most x - a (2^P - f_max) with a = x div 2^P >= 2^(31 - P) >= 2^15 (x >= 2^31
    when a symbol is decoded, P <= 16), so x shrinks by a factor of at least
    1 - (1 - f_max/2^P) 2^15/(2^15 + 1)."""
    import math

    eps = (1 - f_max / (1 << precision)) * (1 << 15) / ((1 << 15) + 1)
    return -math.log2(1 - eps)


def most_symbols(words: int, precision: int, lanes: int, f_max: int) -> int:
    """The most symbols a stream of `words` u32 words can decode to (spec 19.3), by what the
    coder can spend: each lane starts below 2^63 and ends at 2^31 (32 bits), every further
    word adds at most 32 + 2^-14 bits (it is appended to a state of at least 2^15), and a
    symbol consumes at least min_symbol_bits.  A segment that declares more symbols than
    this cannot decode: the reader refuses it from its length, before decoding
    (entropy-stream).  Rounded generously (the bound is far from tight)."""
    spare = 32 * lanes + (32 + 2 ** -14) * max(0, words - 2 * lanes)
    return int(spare / min_symbol_bits(precision, f_max) * (1 + 1e-9)) + lanes
