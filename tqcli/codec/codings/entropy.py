"""`entropy` (coding code 1): cell indices on a uniform grid, rANS-coded with a static model.

The encoder normalises and rotates as the packed coding does, then quantises every
coordinate on the uniform grid of tqcli/codec/codings/entropy_model.py (step `step`, M cells, each
reconstructed at the law's conditional mean) and codes the indices with an interleaved
rANS coder whose integer frequencies the header stores (spec/tqz-v1.md section 19).

The header block after the shape (19.2), little-endian:
    u16 symbols M, u8 precision P, u8 lanes L, u32 segment_rows G,
    f64 step, f64 rate (the model's expected bits per coordinate; informative),
    f32[M] centroids (the codebook), u16[M] frequencies (each >= 1, summing to 2^P).

A chunk of r vectors is S = ceil(r / G) segments, each an independent rANS stream of the
indices of G vectors (fewer in the last): the payload is u32 stream lengths[S], the S
streams, then the r scales (19.4).  Chunk lengths depend on the data, so the index records
them and the reader bounds them before trusting them (19.5).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

from ... import limits
from .base import PayloadCoding
from .entropy_reference import EntropyReference

_BLOCK = struct.Struct("<HBBIdd")  # symbols, precision, lanes, segment rows, step, rate
RANS_LOW = 1 << 31                 # the coder's state interval is [2^31, 2^63)


@dataclass(frozen=True)
class EntropyModel:
    """What the header stores besides the codebook (spec 19.2)."""

    precision: int
    lanes: int
    segment_rows: int
    step: float
    rate: float
    frequencies: object = field(compare=False)  # uint16 (M,)

    @property
    def symbols(self) -> int:
        return len(self.frequencies)


class Entropy(EntropyReference, PayloadCoding):
    code = 1
    name = "entropy"
    summary = "uniform-grid cell indices, rANS-coded with the law's frequencies"
    fixed_size = False
    modes = ("mse",)
    mode_rule = "entropy-mode"
    cli_name = "entropy"
    label = "ent"
    legend = "--coding entropy at rate b (about the same bytes)"
    fractional_rates = True
    target_error = True
    rows_in_place = False  # a row range decodes its segments' streams
    min_rate, max_rate = 1.0, 8.0  # entropy_model.MIN_RATE, MAX_RATE (not imported at start-up)
    WARMUP_SYMBOLS = 1 << 16  # the largest chunk of 8 vectors precompile codes in plain Python

    def header_fields(self, dim: int, options, chunk_rows: int) -> dict:
        """The grid step from the target rate or error, its centroids and frequencies
        (spec 19)."""
        from . import entropy_model as em

        problem = limits.dim_problem(options.mode, dim)
        if problem:
            raise ValueError(problem)
        seg = em.segment_rows_for(dim, chunk_rows)
        if options.nmse is not None:
            model = em.model_for(dim, nmse=float(options.nmse))
        else:
            model = em.model_for(dim, rate=float(options.bits), overhead=em.rate_overhead(dim))
        entropy = EntropyModel(precision=em.PRECISION, lanes=em.LANES, segment_rows=seg,
                               step=model.step, rate=float(model.rate),
                               frequencies=model.frequencies)
        bits = min(limits.MAX_BITS, max(limits.MIN_BITS, math.ceil(model.rate - 1e-9)))
        return dict(bits=bits, codebook=model.centroids, model=entropy)

    def decoder_kernel(self, header) -> str:
        """The driver decode runs (decode: fused for tq's J = 8)."""
        return "decode_entropy_kernel" if header.model.lanes == 8 else "decode_symbols_kernel"

    def warmup_ok(self, header) -> bool:
        return 8 * header.dim <= self.WARMUP_SYMBOLS

    def warmup_payload(self, header, rows: int) -> bytes | None:
        """A valid stream of the middle cell, written by the plain-Python coder."""
        import numpy as np

        from .. import reference_rans

        if not self.warmup_ok(header):
            return None
        m = header.model
        middle = np.full(rows * header.dim, len(header.codebook) // 2, np.uint16)
        stream = reference_rans.encode(middle, m.frequencies, m.precision, m.lanes)
        return (np.asarray([len(stream)], "<u4").tobytes() + stream
                + bytes(rows * header.scale_size))

    def rate_text(self, header) -> str:
        return f"entropy-coded, {header.model.rate:.2f} bits"

    def member_report(self, header, payload_bytes: int) -> dict:
        """A member's rate (its header's `bits`, the largest index width, is not): the bits
        per coordinate achieved, the model's rate and the grid step."""
        return {"name": self.name, "achieved_bits": self.achieved_bits(header, payload_bytes),
                "model_bits": header.model.rate, "step": header.model.step}

    def inspect_report(self, header, payload_bytes: int) -> dict:
        """The bits per coordinate it achieved (payload bytes but the scales, over n d
        coordinates), the rate and the error the law predicts for its step, and the
        fixed-length coding at the neighbouring widths."""
        from .. import codebook
        from . import entropy_model as em

        m, d, z = header.model, header.dim, header.scale_size
        achieved = self.achieved_bits(header, payload_bytes)
        fixed = []
        for b in sorted({math.floor(achieved), math.ceil(achieved)}):
            if limits.MIN_BITS <= b <= limits.MAX_BITS:
                fixed.append({"bits": b, "bytes_per_vector": d * b / 8 + z,
                              "expected_nmse": codebook.expected_distortion(d, b)})
        return {"name": self.cli_name, "symbols": len(header.codebook), "step": m.step,
                "precision": m.precision, "lanes": m.lanes, "segment_rows": m.segment_rows,
                "model_bits": m.rate, "achieved_bits": achieved,
                "expected_nmse": em.law_theory(d, m.step)["optimum"], "fixed_length": fixed}

    def inspect_rows(self, r: dict) -> list[tuple[str, str]]:
        """The text rows of the inspect report `r` for its "coding" (inspect_report)."""
        c = r["coding"]
        fixed = "; ".join(f"{f['bits']} bits {f['bytes_per_vector']:.1f} B/vec nmse "
                          f"{f['expected_nmse']:.3e}" for f in c["fixed_length"])
        return [
            ("mode", f"{r['mode']}, entropy-coded, {c['achieved_bits']:.3f} bits/coordinate "
                     f"(the law predicts {c['model_bits']:.3f})"),
            ("grid", f"{c['symbols']} cells of step {c['step']:.4g}, frequencies of "
                     f"{c['precision']} bits, {c['lanes']} coder states, segments of "
                     f"{c['segment_rows']} rows"),
            ("expected nmse", f"{c['expected_nmse']:.3e} (law, this step)"),
            ("fixed-length", fixed or "-"),
        ]

    def eval_fields(self, header, payload_bytes: int, requested) -> dict:
        """bits: the rate asked for (or the one achieved); the theory of its grid."""
        from . import entropy_model as em

        achieved = self.achieved_bits(header, payload_bytes)
        out = {"bits": requested if requested is not None else round(achieved, 2),
               "achieved_bits": achieved, "model_bits": header.model.rate}
        out.update(em.law_theory(header.dim, header.model.step))
        return out

    def eval_heading(self, dim: int) -> str:
        return f"{self.label}: the law's error of its grid"

    def width_legend(self) -> str:
        return f"bits: N {self.label} = the entropy coding, N bits per coordinate achieved"

    def collection_note(self) -> str:
        return (f"bits: N {self.label} = the entropy coding, N bits per coordinate achieved; "
                f"its optimum is the law's error of its grid")

    # ------------------------------------------------------------------ header block

    def codebook_size(self, header) -> int:
        return len(header.codebook)

    def model_size(self, header) -> int:
        return _BLOCK.size + 6 * len(header.codebook)

    def max_model_size(self) -> int:
        from .entropy_model import MAX_SYMBOLS

        return _BLOCK.size + 6 * MAX_SYMBOLS

    def model_bytes(self, header) -> bytes:
        import numpy as np

        m = header.model
        return (_BLOCK.pack(m.symbols, m.precision, m.lanes, m.segment_rows, m.step, m.rate)
                + np.asarray(header.codebook, "<f4").tobytes()
                + np.asarray(m.frequencies, "<u2").tobytes())

    def model_size_in(self, raw: bytes, offset: int, end: int, fields: dict) -> int:
        from ...errors import FormatError

        if offset + _BLOCK.size > end:
            raise FormatError("header size does not match its fields", rule="header-size")
        (symbols,) = struct.unpack_from("<H", raw, offset)
        return _BLOCK.size + 6 * symbols

    def parse_model(self, raw: bytes, offset: int, fields: dict):
        import numpy as np

        from . import entropy_model as em
        from ...errors import FormatError
        from .packed import check_codebook

        def need(cond, reason, rule="entropy-model"):
            if not cond:
                raise FormatError(reason, rule=rule)

        m, p, lanes, seg, step, rate = _BLOCK.unpack_from(raw, offset)
        need(em.MIN_SYMBOLS <= m <= em.MAX_SYMBOLS,
             f"entropy model: {m} symbols (allowed {em.MIN_SYMBOLS}..{em.MAX_SYMBOLS})")
        need(em.MIN_PRECISION <= p <= em.MAX_PRECISION and m <= 1 << p,
             f"entropy model: precision {p} invalid for {m} symbols")
        need(em.MIN_LANES <= lanes <= em.MAX_LANES, f"entropy model: {lanes} lanes invalid")
        need(8 <= seg <= fields["chunk_rows"] and seg % 8 == 0,
             f"entropy model: segment rows {seg} invalid")
        need(math.isfinite(step) and step > 0 and math.isfinite(rate) and rate >= 0,
             "entropy model: step or rate not a positive finite number")
        at = offset + _BLOCK.size
        cb = np.frombuffer(raw, dtype="<f4", count=m, offset=at).astype(np.float32)
        check_codebook(cb)
        freqs = np.frombuffer(raw, dtype="<u2", count=m, offset=at + 4 * m).astype(np.uint16)
        need(bool(np.all(freqs >= 1)) and int(freqs.sum(dtype=np.int64)) == 1 << p,
             f"entropy model: frequencies are not all >= 1 with sum 2^{p}")
        model = EntropyModel(precision=p, lanes=lanes, segment_rows=seg, step=step, rate=rate,
                             frequencies=freqs)
        return cb, model

    def thresholds(self, header):
        """theta_j = (j - K + 1/2) step in binary64, j = 0..M-2, K = floor((M - 1) / 2)
        (spec 19.6; tq's grids have M = 2K + 1 cells, the middle one centred on 0)."""
        import numpy as np

        m = len(header.codebook)
        k = (m - 1) // 2
        return (np.arange(m - 1) - k + 0.5) * header.model.step

    # ------------------------------------------------------------------ sizes

    def segments(self, header, rows: int) -> list[int]:
        """The vectors of each segment of a chunk of `rows` vectors."""
        g = header.model.segment_rows
        return [min(g, rows - a) for a in range(0, rows, g)]

    def prefix_size(self, header, rows: int) -> int:
        return 4 * len(self.segments(header, rows))

    def _stream_bounds(self, header, seg_rows: int) -> tuple[int, int]:
        m = header.model
        words = limits.max_stream_words(seg_rows * header.dim, m.precision, m.lanes)
        return 8 * m.lanes, 4 * words

    def min_payload_size(self, header, rows: int) -> int:
        return sum(4 + self._stream_bounds(header, r)[0] for r in self.segments(header, rows)) \
            + rows * header.scale_size

    def max_payload_size(self, header, rows: int) -> int:
        return sum(4 + self._stream_bounds(header, r)[1] for r in self.segments(header, rows)) \
            + rows * header.scale_size

    def payload_size(self, header, rows: int) -> int:
        raise ValueError("an entropy-coded chunk's length is in its payload and the index")

    def stream_lengths(self, header, rows: int, prefix, chunk: int):
        """The checked stream lengths of a payload's prefix (FormatError if one is out of
        its bounds or not a whole number of words)."""
        import numpy as np

        from ...errors import FormatError

        segs = self.segments(header, rows)
        lengths = np.frombuffer(prefix, "<u4", count=len(segs)).astype(np.int64)
        m = header.model
        f_max = int(np.max(m.frequencies))
        where = f"chunk {chunk}: " if chunk >= 0 else ""
        for j, (r, n) in enumerate(zip(segs, lengths)):
            lo, hi = self._stream_bounds(header, r)
            if not lo <= n <= hi or n % 4:
                raise FormatError(f"{where}segment {j} claims {int(n)} bytes (allowed "
                                  f"{lo}..{hi}, a multiple of 4)", rule="entropy-stream",
                                  chunk=chunk)
            # what the coder can spend (19.3): fewer bytes than any stream of these
            # symbols takes under this model cannot decode; refused before decoding
            most = limits.most_symbols(int(n) // 4, m.precision, m.lanes, f_max)
            if r * header.dim > most:
                raise FormatError(f"{where}segment {j}: {int(n)} bytes cannot hold "
                                  f"{r * header.dim} symbols of this model (at most {most})",
                                  rule="entropy-stream", chunk=chunk)
        return segs, lengths

    def payload_size_from_prefix(self, header, rows: int, prefix, chunk: int) -> int:
        _, lengths = self.stream_lengths(header, rows, prefix, chunk)
        return len(prefix) + int(lengths.sum()) + rows * header.scale_size

    def decode_state_bytes(self, header, rows: int) -> int:
        """The symbols of a chunk (uint16 each) and the decoder's slot table (2^P uint16)."""
        return 2 * rows * header.dim + 2 * (1 << header.model.precision)

    def kernel_scratch_bytes(self, header) -> int:
        """One decoding task's two lane-interleaved float32 groups (8 lanes of d values)."""
        return 64 * header.dim

    def encode_scratch_bytes(self, header) -> int:
        """One encoding task's lanes (tqcli/kernels/symbols.py): binary64, three binary32
        and the uint16 cells, 8 lanes of d values each."""
        return 176 * header.dim + 256

    # ------------------------------------------------------------------ encode

    def encode_chunks(self, codec, x, first_row: int) -> list[list[memoryview]]:
        """Quantise and rANS-code rows x, one pass per segment for tq's J = 8
        (kernels.encode_entropy), two passes for other J (never written by tq)."""
        import numpy as np

        from ... import kernels

        h, m = codec.header, codec.header.model
        n, d = x.shape
        scales = np.empty(n, np.float64)
        thresholds, _, cents = codec.quantizer
        # each chunk's segments of G rows: (first row, end row), and where each chunk's begin
        chunks, segs = [], []
        for a in range(0, n, h.chunk_rows):
            k = min(h.chunk_rows, n - a)
            chunks.append((a, k, len(segs), len(self.segments(h, k))))
            segs += [(r, min(r + m.segment_rows, a + k)) for r in range(a, a + k, m.segment_rows)]
        if m.lanes == 8:
            enc = kernels.rans8_encode_tables(m.frequencies, m.precision)
            buf, starts, lengths = kernels.encode_entropy(
                x, np.asarray(segs, np.int64).reshape(-1, 2), codec.plan, thresholds, m.step,
                cents, codec.rule, enc, m.precision, scales)
        else:
            symbols = np.empty(n * d, np.uint16)
            kernels.encode_symbols(x, codec.plan, thresholds, m.step, cents, codec.rule,
                                   symbols, scales)
            bounds = np.asarray([0] + [b * d for _, b in segs], np.int64)
            buf, starts, lengths = kernels.rans_encode(symbols, bounds, m.frequencies,
                                                       m.precision, m.lanes)
        (stored,) = codec.store_floats([scales], first_row)
        out = []
        for a, k, s0, ns in chunks:
            lens = lengths[s0:s0 + ns].astype("<u4")
            parts = [memoryview(lens).cast("B")]
            parts += [memoryview(buf[starts[j]:starts[j] + lengths[j]]) for j in
                      range(s0, s0 + ns)]
            parts.append(memoryview(stored[a:a + k]).cast("B"))
            out.append(parts)
        return out

    # ------------------------------------------------------------------ decode

    def decode(self, codec, payload, rows: int, out):
        """The rANS stage fused with the decoder (kernels.decode_entropy) for tq's J = 8:
        each group's symbols stay in cache; other J decode in two passes."""
        import numpy as np

        from ... import kernels

        h, m = codec.header, codec.header.model
        if m.lanes != 8:
            return self.decode_codes(codec, self.chunk_codes(codec, payload, rows), out)
        buf = np.frombuffer(payload, dtype=np.uint8)
        starts, lengths, at = self._streams(h, buf, rows)
        scales = codec.load_floats(buf[at:at + rows * h.scale_size])
        out = out[:rows]
        kernels.decode_entropy(buf, starts, lengths, m.segment_rows, codec.rans_tables,
                               m.precision, scales, codec.plan, codec.centroids, out)
        return out

    def _streams(self, header, buf, rows: int):
        """(starts, lengths) of a chunk's streams, checked (stream_lengths), and the offset
        of its scales."""
        import numpy as np

        ns = len(self.segments(header, rows))
        segs, lengths = self.stream_lengths(header, rows, buf[:4 * ns], -1)
        starts = 4 * ns + np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return starts, lengths, 4 * ns + int(lengths.sum())

    # ------------------------------------------------------------------ codes

    def chunk_codes(self, codec, payload, rows: int):
        """The cell indices after the rANS stage, uint16 (rows, d), and the scales."""
        import numpy as np

        from ..codes import ChunkCodes

        h = codec.header
        symbols = np.empty(rows * h.dim, np.uint16)
        at = self.decode_streams(h, payload, rows, codec.rans_tables, symbols)
        buf = np.frombuffer(payload, dtype=np.uint8)
        scales = codec.load_floats(buf[at:at + rows * h.scale_size])
        return ChunkCodes("entropy", rows, h.dim, 0, symbols.reshape(rows, h.dim), scales)

    def decode_streams(self, header, payload, rows: int, tables, symbols) -> int:
        """The rANS stage of a chunk (spec 19.3): every segment's stream decoded into
        `symbols` (uint16, rows * d), FormatError (entropy-stream) for a stream the decoder
        refuses.  The one implementation of these checks: the decoder (chunk_codes) and the
        verifier (check_decodable) both run it, and decode's fused kernel runs the same
        checks in the same order.  tables: kernels.rans_tables of the model.  Returns the
        offset of the scales."""
        import numpy as np

        from ... import kernels

        m = header.model
        buf = np.frombuffer(payload, dtype=np.uint8)
        starts, lengths, at = self._streams(header, buf, rows)
        counts = np.asarray(self.segments(header, rows), np.int64) * header.dim
        kernels.rans_decode(buf, starts, lengths, counts, m.frequencies, m.precision,
                            m.lanes, symbols[:rows * header.dim], tables=tables)
        return at

    def check_decodable(self, header, payload, rows: int, scratch: dict) -> None:
        """What the decoder checks beyond check_payload, short of the floats: every
        segment's stream through the rANS decoder of 19.3 (coder states in range, every
        word read, every state back at its start), the symbols thrown away.  `scratch`
        keeps the slot table and the symbol buffer from one chunk to the next."""
        import numpy as np

        from ... import kernels

        m = header.model
        if "tables" not in scratch:
            scratch["tables"] = kernels.rans_tables(m.frequencies, m.precision)
        need = rows * header.dim
        if scratch.get("symbols") is None or scratch["symbols"].size < need:
            scratch["symbols"] = np.empty(need, np.uint16)
        self.decode_streams(header, payload, rows, scratch["tables"], scratch["symbols"])

    def encode_codes(self, codec, x, first_row: int = 0):
        import numpy as np

        from ... import kernels
        from ..codes import ChunkCodes

        h = codec.header
        n, d = x.shape
        symbols = np.empty(n * d, np.uint16)
        scales = np.empty(n, np.float64)
        thresholds, _, cents = codec.quantizer
        kernels.encode_symbols(x, codec.plan, thresholds, h.model.step, cents, codec.rule,
                               symbols, scales)
        (stored,) = codec.store_floats([scales], first_row)
        return ChunkCodes("entropy", n, d, 0, symbols.reshape(n, d),
                          stored.astype(codec.out_dtype))

    def decode_codes(self, codec, codes, out):
        import numpy as np

        from ... import kernels

        out = out[:codes.rows]
        symbols = np.ascontiguousarray(codes.codes, np.uint16).reshape(-1)
        kernels.decode_symbols(symbols, codes.scales, codec.plan, codec.centroids, out)
        return out

    def check_payload(self, header, payload, rows: int, chunk: int) -> None:
        """The stream lengths add up to the payload's length (19.4), and the stored
        scales are finite (13.4)."""
        import numpy as np

        from ...errors import FormatError

        ns = len(self.segments(header, rows))
        _, lengths = self.stream_lengths(header, rows, bytes(payload[:4 * ns]), chunk)
        at = 4 * ns + int(lengths.sum())
        if at + rows * header.scale_size != len(payload):
            raise FormatError(f"chunk {chunk}: stream lengths do not add up to the payload's "
                              f"{len(payload)} bytes", rule="entropy-stream", chunk=chunk)
        dt = np.dtype(header.scale_dtype).newbyteorder("<")
        vals = np.frombuffer(payload, dtype=dt, count=rows, offset=at)
        if not np.isfinite(vals).all():
            raise FormatError(f"chunk {chunk}: non-finite per-vector scale (corrupt or crafted "
                              f"file)", rule="scale-finite", chunk=chunk)


ENTROPY = Entropy()
