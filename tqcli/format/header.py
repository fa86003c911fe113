"""The header of a .tqz container (spec sections 3-13): its fields, its bytes, the reader
rules a header must pass before anything it declares is trusted, and the header a new file
gets (make_header: the codebook or model the encoder will use and store)."""


from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from .. import limits
from ..codec.codings import CODINGS
from ..errors import FormatError
from ..codec.rotations import DEFAULT as DEFAULT_ROTATION, ROTATIONS
from ..codec.stages import CENTER, STAGES, header_fields
from ..codec.stages import header_fields as stage_fields
from ..codec.options import EncodeOptions

MAGIC = b"\x89TQZ\r\n\x1a\n"
END_MAGIC = b"TQZE"
VERSION = 1
CODING_MASK = 0x00FF    # bits 0-7 of `flags`: the payload coding
CENTERED_FLAG = CENTER.flag  # bit 8: a centre vector follows the codebook (tqcli/codec/stages.py)
# bits 8-15: one per fitted stage (its block follows the coding's, in table order); a bit
# no stage owns must be zero

_FIXED = struct.Struct("<8sHHIBBBBBBBBIIQQ")  # 48 bytes, see spec section "Header"
INDEX_ENTRY = struct.Struct("<QII")            # offset, payload length, CRC-32
FOOTER = struct.Struct("<QQI4s")               # index offset, chunk count, CRC, end magic
CRC = struct.Struct("<I")
MIN_HEADER = _FIXED.size + 8 + 4
def max_header_size(coding, flags: int = 0) -> int:
    """The largest header of a coding (13.1 step 4: 1332 bytes for packed, 24908 for
    entropy) with the fitted stages `flags` announces (plus 4 d for a centre)."""
    return (_FIXED.size + 8 * limits.MAX_NDIM + coding.max_model_size() + 4
            + sum(s.max_block_size() for s in STAGES.flagged(flags)))


def crc32(data, start: int = 0) -> int:
    """CRC-32 of data; `start` continues a checksum over earlier bytes."""
    return zlib.crc32(data, start) & 0xFFFFFFFF


@dataclass(frozen=True)
class Header:
    dim: int
    bits: int
    mode: str = limits.DEFAULT_MODE
    seed: int = limits.DEFAULT_SEED
    rounds: int = limits.DEFAULT_ROUNDS
    rotation: str = DEFAULT_ROTATION
    scale_rule: str = "ls"
    scale_dtype: str = "float32"
    source_dtype: str = "float32"
    shape: tuple[int, ...] = ()
    chunk_rows: int = 1024
    codebook: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), compare=False)
    coding: str = "packed"
    # the vector subtracted before encoding and added back after decoding (float32, d), or
    # None: spec sections 3.1 (flags bit 8), 11 and 12
    center: np.ndarray | None = field(default=None, compare=False)
    # what the payload coding stores beyond the codebook (the entropy coding's model,
    # tqcli/codec/codings/entropy.py), or None
    model: object = field(default=None, compare=False)
    # parameters of fitted stages without a field of their own (tqcli/codec/stages.py), by name
    fitted: dict = field(default_factory=dict, compare=False)

    # ------------------------------------------------------------------ table entries
    @property
    def rotation_kind(self):
        return ROTATIONS.by_name(self.rotation)

    @property
    def payload_coding(self):
        return CODINGS.by_name(self.coding)

    # ------------------------------------------------------------------ derived sizes
    @property
    def n_vectors(self) -> int:
        n = 1
        for s in self.shape[:-1]:
            n *= s
        return n

    @property
    def code_bits(self) -> int:
        """Bits of the mse index per coordinate (b, or b - 1 in prod mode)."""
        return limits.code_bits(self.mode, self.bits)

    @property
    def codebook_size(self) -> int:
        return self.payload_coding.codebook_size(self)

    @property
    def scale_size(self) -> int:
        return limits.SCALE_DTYPE_SIZES[self.scale_dtype]

    @property
    def floats_per_vector(self) -> int:
        return limits.floats_per_vector(self.mode)

    @property
    def centered(self) -> bool:
        return self.center is not None

    @property
    def header_size(self) -> int:
        return (_FIXED.size + 8 * len(self.shape) + self.payload_coding.model_size(self)
                + sum(s.block_size(self.dim) for s, _ in STAGES.present(self)) + 4)

    @property
    def n_chunks(self) -> int:
        return -(-self.n_vectors // self.chunk_rows)

    def chunk_rows_of(self, i: int) -> int:
        return min(self.chunk_rows, self.n_vectors - i * self.chunk_rows)

    def section_sizes(self, rows: int) -> tuple[int, ...]:
        """Byte counts of the sections of a chunk of `rows` vectors (the coding's layout)."""
        return self.payload_coding.section_sizes(self, rows)

    def payload_size(self, rows: int) -> int:
        return self.payload_coding.payload_size(self, rows)

    @property
    def fixed_layout(self) -> bool:
        """Whether every offset follows from the header (a fixed-size payload coding);
        otherwise the index records them (spec 19)."""
        return self.payload_coding.fixed_size

    def max_payload_size(self, rows: int) -> int:
        return self.payload_coding.max_payload_size(self, rows)

    def chunk_offset(self, i: int) -> int:
        self._need_fixed()
        full = self.payload_size(self.chunk_rows) + CRC.size
        return self.header_size + i * full

    def _need_fixed(self) -> None:
        if not self.fixed_layout:
            raise ValueError(f"the {self.coding} coding's layout is in the index, not the header")

    @property
    def index_offset(self) -> int:
        self._need_fixed()
        k = self.n_chunks
        if k == 0:
            return self.header_size
        return self.chunk_offset(k - 1) + self.payload_size(self.chunk_rows_of(k - 1)) + CRC.size

    @property
    def file_size(self) -> int:
        return self.index_offset + INDEX_ENTRY.size * self.n_chunks + FOOTER.size

    @property
    def payload_bytes(self) -> int:
        """Bytes of codes and per-vector floats, without header, checksums, index, footer
        (fixed-size codings; for the others, the index has the lengths)."""
        self._need_fixed()
        k = self.n_chunks
        if k == 0:
            return 0
        return (k - 1) * self.payload_size(self.chunk_rows) + self.payload_size(
            self.chunk_rows_of(k - 1))

    @property
    def decode_memory(self) -> int:
        """Bytes tq's decoder holds at its peak for this header (spec 13.7,
        tqcli/format/memory.py): the rotation's tables and their building, prod mode's
        d x d sketch, the largest chunk's payload, its decoded rows in every buffer they
        pass through, and the kernels' scratch.  0 when the file holds no vector."""
        from . import memory

        return memory.decode_need(self)

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        fixed = _FIXED.pack(
            MAGIC, VERSION,
            CODINGS.by_name(self.coding).code | self.stage_flags,
            self.header_size,
            limits.MODES.index(self.mode), self.bits, limits.SCALE_RULES.index(self.scale_rule),
            limits.SCALE_DTYPES.index(self.scale_dtype), _code(limits.SOURCE_DTYPES,
                                                                self.source_dtype),
            ROTATIONS.by_name(self.rotation).code, self.rounds, len(self.shape),
            self.dim, self.chunk_rows, self.n_vectors, self.seed)
        body = fixed + struct.pack(f"<{len(self.shape)}Q", *self.shape)
        body += CODINGS.by_name(self.coding).model_bytes(self)
        for stage, params in STAGES.present(self):
            body += stage.header_block(params, self.dim)
        return body + CRC.pack(crc32(body))

    @property
    def stage_flags(self) -> int:
        """The flag bits of the fitted stages this header holds."""
        out = 0
        for stage, _ in STAGES.present(self):
            out |= stage.flag
        return out

    @classmethod
    def read_from(cls, read) -> "Header":
        """Parse a header using read(n) -> bytes; every field is checked before use, in
        the order of spec section 13.1."""
        start = read(16)
        if start[:8] != MAGIC[:len(start)] or not start:
            raise FormatError("not a .tqz file (" + ("bad magic bytes)" if start else "empty)"),
                              rule="magic")
        if len(start) < 16:
            raise FormatError("truncated file (ends inside the header)", rule="truncated")
        version, flags, size = struct.unpack("<HHI", start[8:16])
        if version != VERSION:
            raise FormatError(f"unsupported .tqz version {version} "
                              f"(this tq reads version {VERSION})", rule="version")
        if flags & ~(CODING_MASK | STAGES.flags):
            raise FormatError(f"unknown header flags 0x{flags:04x}", rule="flags")
        if flags & CODING_MASK not in CODINGS.codes:
            raise FormatError(f"unknown payload coding {flags & CODING_MASK} (header flags "
                              f"0x{flags:04x})", rule="coding")
        if not MIN_HEADER <= size <= max_header_size(CODINGS.by_code(flags & CODING_MASK),
                                                     flags):
            raise FormatError(f"header size {size} out of range", rule="header-size")
        raw = start + _read_exact(read, size - 16, "header")
        (stored,) = CRC.unpack(raw[-4:])
        if crc32(raw[:-4]) != stored:
            raise FormatError("header checksum mismatch (corrupt header)", rule="header-crc")
        return cls._parse(raw)

    @classmethod
    def _parse(cls, raw: bytes) -> "Header":
        (_, _, flags, size, mode, bits, rule, sdt, src, rot, rounds, ndim,
         dim, chunk_rows, n, seed) = _FIXED.unpack_from(raw)
        coding = CODINGS.by_code(flags & CODING_MASK)
        _require(mode < len(limits.MODES), "mode", f"unknown mode {mode}")
        _require(limits.MIN_BITS <= bits <= limits.MAX_BITS, "bits",
                 f"bits {bits} out of range {limits.MIN_BITS}..{limits.MAX_BITS}")
        _require(rule < len(limits.SCALE_RULES), "scale-rule", f"unknown scale rule {rule}")
        _require(sdt < len(limits.SCALE_DTYPES), "scale-dtype", f"unknown scale dtype {sdt}")
        _require(src in limits.SOURCE_DTYPES, "source-dtype", f"unknown source dtype {src}")
        kind = ROTATIONS.by_code(rot)
        _require(limits.MIN_ROUNDS <= rounds <= limits.MAX_ROUNDS, "rounds",
                 f"rotation rounds {rounds} out of range")
        _require(limits.MIN_NDIM <= ndim <= limits.MAX_NDIM, "rank",
                 f"rank {ndim} out of range {limits.MIN_NDIM}..{limits.MAX_NDIM}")
        mode_s = limits.MODES[mode]
        _require(limits.MIN_DIM <= dim <= limits.MAX_DIM, "dim",
                 f"dimension {dim} out of range {limits.MIN_DIM}..{limits.MAX_DIM}")
        _require(limits.chunk_rows_problem(chunk_rows) is None, "chunk-rows",
                 f"chunk rows {chunk_rows} invalid")
        _require(n <= limits.MAX_VECTORS, "vector-count", f"vector count {n} out of range")
        problem = limits.scale_rule_problem(mode_s, limits.SCALE_RULES[rule])
        _require(problem is None, "prod-rule", "prod mode requires the norm scale rule")
        _require(limits.dim_problem(mode_s, dim) is None, "prod-dim",
                 f"prod mode supports dimensions up to {limits.MAX_PROD_DIM}, not {dim}")
        _require(mode_s in coding.modes, coding.mode_rule,
                 f"the {coding.name} coding is defined for {' and '.join(coding.modes)} mode "
                 f"only, not {mode_s}")
        # the header size against ndim and the coding's block before either is read, so
        # that the shape and the codebook lie inside the bytes the CRC covered (13.1 step 7)
        fields = dict(mode=mode_s, bits=bits, dim=dim, chunk_rows=chunk_rows,
                      q=limits.code_bits(mode_s, bits), scale_dtype=limits.SCALE_DTYPES[sdt])
        stages = STAGES.flagged(flags)
        model_at = _FIXED.size + 8 * ndim
        tail = sum(s.block_size(dim) for s in stages) + 4
        _require(model_at + tail <= size, "header-size",
                 f"header size {size} does not match its fields")
        block = coding.model_size_in(raw, model_at, size - tail, fields)
        expect = model_at + block + tail
        _require(size == expect, "header-size",
                 f"header size {size} does not match its fields ({expect})")
        shape = struct.unpack_from(f"<{ndim}Q", raw, _FIXED.size)
        _require(shape[-1] == dim, "shape", f"shape {shape} does not end in dimension {dim}")
        _require(all(s <= limits.MAX_VECTORS for s in shape), "shape",
                 f"shape {shape} out of range")
        count = 1
        for s in shape[:-1]:  # Python integers: exact, a product cannot wrap (13.1 step 8)
            count *= s
        _require(count == n, "shape", f"shape {shape} does not hold {n} vectors")
        _require(ndim >= 2 or n == 1, "shape", "a rank-1 array holds exactly one vector")
        cb, model = coding.parse_model(raw, model_at, fields)
        fitted, at = {}, model_at + block
        for stage in stages:  # each fitted stage's block, in table order
            fitted[stage.name] = stage.parse(raw, at, dim)
            at += stage.block_size(dim)
        hdr = cls(dim=dim, bits=bits, mode=mode_s, seed=seed, rounds=rounds,
                  rotation=kind.name, coding=coding.name, scale_rule=limits.SCALE_RULES[rule],
                  scale_dtype=limits.SCALE_DTYPES[sdt], source_dtype=limits.SOURCE_DTYPES[src],
                  shape=tuple(int(s) for s in shape), chunk_rows=chunk_rows, codebook=cb,
                  model=model, **header_fields(fitted))
        _require(hdr.payload_coding.max_payload_size(hdr, chunk_rows) <= limits.MAX_CHUNK_BYTES,
                 "chunk-size", "chunk too large")
        return hdr

    def validate(self) -> None:
        """Check a header built in memory against the same limits a reader applies."""
        _require(limits.MIN_NDIM <= len(self.shape) <= limits.MAX_NDIM, "rank",
                 f"rank {len(self.shape)} out of range {limits.MIN_NDIM}..{limits.MAX_NDIM}")
        _require(limits.MIN_DIM <= self.dim <= limits.MAX_DIM, "dim",
                 f"dimension {self.dim} out of range {limits.MIN_DIM}..{limits.MAX_DIM}")
        _require(limits.chunk_rows_problem(self.chunk_rows) is None, "chunk-rows",
                 f"chunk rows {self.chunk_rows} invalid")
        _require(all(0 <= s < 1 << 64 for s in self.shape), "shape",
                 f"shape {self.shape} out of range")
        _require(self.n_vectors <= limits.MAX_VECTORS, "vector-count",
                 f"vector count {self.n_vectors} out of range")
        _require(0 <= self.seed <= limits.MAX_SEED, "seed", f"seed {self.seed} out of range")
        _require(len(self.codebook) == self.codebook_size, "codebook",
                 f"codebook has {len(self.codebook)} values, {self.codebook_size} expected")
        for stage, params in STAGES.present(self):
            stage.check(params, self.dim)
        try:
            raw = self.to_bytes()
        except (struct.error, ValueError) as e:
            raise FormatError(f"header fields out of range ({e})", rule="field") from None
        self._parse(raw)


def _code(table: dict, name: str) -> int:
    for k, v in table.items():
        if v == name:
            return k
    raise ValueError(f"unknown value {name!r}")


def _require(cond: bool, rule: str, reason: str) -> None:
    if not cond:
        raise FormatError(reason, rule=rule)


def check_memory(header: Header, limit: int | None = None) -> None:
    """Refuse a header whose decoding state (Header.decode_memory) exceeds `limit` bytes
    (None: limits.DEFAULT_MEMORY_LIMIT), before any of it is built (spec 13.7)."""
    limit = limits.DEFAULT_MEMORY_LIMIT if limit is None else limit
    need = header.decode_memory
    if need > limit:
        raise FormatError(f"decoding needs {limits.format_size(need)} of tables and buffers, "
                          f"above the memory limit of {limits.format_size(limit)} (raise it "
                          f"with --memory or memory_limit=)", rule="memory")


READ_PIECE = 1 << 24


def _read_exact(read, n: int, what: str) -> bytes:
    """Exactly n bytes via read(); large reads go piecewise, so that a header claiming a
    huge chunk costs memory only for bytes that really arrive (a stream has no known size)."""
    data = read(min(n, READ_PIECE))
    if len(data) < n and data:  # a huge claim, or a raw stream that returns short reads
        parts, got = [data], len(data)
        while got < n:
            part = read(min(READ_PIECE, n - got))
            if not part:
                break
            parts.append(part)
            got += len(part)
        data = b"".join(parts)
    if len(data) != n:
        raise FormatError(f"truncated file (ends inside the {what})", rule="truncated")
    return data


# ---------------------------------------------------------------------- writing


# ---------------------------------------------------------------------- new files


def make_header(dim: int, options=None, *, scale_dtype: str | None = None,
                source_dtype: str = "float32", shape: tuple[int, ...] | None = None,
                center=None, fitted: dict | None = None, **option_keywords) -> Header:
    """A header for new data under `options` (an EncodeOptions, or a bits value with the
    other options as keywords: make_header(64, 4, mode="prod")); computes the codebook
    the encoder will use and store -- the coding decides its header fields
    (PayloadCoding.header_fields: the entropy coding's grid from a rate or an nmse).

    scale_dtype: the stored one (None: the options', "auto" meaning float32).  `center` is
    None (no centring) or the d values subtracted from every vector before encoding, stored
    as float32 in the header (stages.CENTER fits the usual one); None takes a vector
    given as the options' center.  `fitted`: name -> parameters of fitted stages
    (stages.fit_stages), the centre among them.

    Raises ValueError (an OptionError for an option) for a combination the format does
    not allow.
    """
    if options is None or not isinstance(options, EncodeOptions):
        if options is not None:
            option_keywords["bits"] = options
        options = EncodeOptions(**option_keywords)
    elif option_keywords:
        raise TypeError("give an EncodeOptions or option keywords, not both")
    if scale_dtype is None:
        scale_dtype = options.scale_dtype
    if scale_dtype == "auto":
        scale_dtype = "float32"
    fitted = dict(fitted or {})
    if center is not None:
        fitted[CENTER.name] = center
    elif options.centered and options.center is not True:
        fitted.setdefault(CENTER.name, options.center)
    if CENTER.name in fitted:
        fitted[CENTER.name] = _center_values(fitted[CENTER.name], dim)
    chunk_rows = options.chunk_rows or limits.default_chunk_rows(dim)
    coding = options.payload_coding
    if coding.data_fitted:  # a model fitted to the data also depends on the vector count
        n = 1
        for s in (shape if shape is not None else (0, dim))[:-1]:
            n *= s
        fields = coding.header_fields(dim, options, chunk_rows, n_vectors=n)
    else:
        fields = coding.header_fields(dim, options, chunk_rows)
    return Header(dim=dim, mode=options.mode, seed=options.seed, rounds=options.rounds,
                  rotation=options.rotation, coding=options.coding,
                  scale_rule=options.scale_rule, scale_dtype=scale_dtype,
                  source_dtype=source_dtype,
                  shape=tuple(shape) if shape is not None else (0, dim),
                  chunk_rows=chunk_rows, **fields, **stage_fields(fitted))


def _center_values(center, dim: int) -> np.ndarray:
    c = np.asarray(center)
    if c.shape != (dim,) or c.dtype.kind not in "fiu":
        raise ValueError(f"centre must be {dim} numbers, got shape {c.shape} ({c.dtype})")
    with np.errstate(over="ignore", invalid="ignore"):
        c32 = c.astype(np.float32)
    if not np.all(np.isfinite(c32)):
        raise ValueError("centre holds values that are not finite in float32")
    return c32
