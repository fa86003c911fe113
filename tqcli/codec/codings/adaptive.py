"""`adaptive` (coding code 2, spec section 21): a fitted basis, one step for every
component, each class of components rANS-coded with a model stored in the header.

The encoder subtracts the centre (the fitted stage of spec 11, flag bit 8: the basis's
mean), projects every vector on the k stored basis rows (binary64 sums, tqcli/kernels/
adaptive.py), quantises each value to round(y / step) clamped to its class's cells, and codes
the cells of each class as one rANS stream per chunk (the coder of spec 19.3, unchanged).
No rotation: the header's rotation, seed, rounds and scale rule are written as tq's
defaults and not used.  With scales (block byte 5 = 1) the encoder codes each centred row's
direction at the fitted norm and stores a float16 least-squares scale per row (21.3).  The
decoder looks up each cell's stored value in its class's codebook and multiplies by the
stored basis (and the row's scale); nothing is recomputed.

The header block after the shape (21.2), little-endian:
    u16 k, u16 classes C, u8 basis dtype (0 float16, 1 float32, 2 int8), u8 precision P,
    u8 lanes L, u8 scales (0 none, 1 float16), f64 step, f64 rate, f64 nmse (informative:
    the encoder's step and predictions),
    u16[C] symbols M_c, f32[sum M_c] the codebooks (class by class),
    u16[sum M_c] the frequencies (class by class, each >= 1, summing to 2^P per class),
    u8[k] the class of each component, then the basis: k rows, row j the direction of
    component j: d float16 or float32 values, or (int8) a float32 scale s_j and d int8 q,
    each value RN32(s_j q).

A chunk of r vectors: u32 stream lengths[C], then C streams; stream c holds the cells of
the components of class c, row by row, each row's in increasing component order (r k_c
symbols), coded with class c's frequencies, then (scales 1) r float16 scales (21.4).

The model (basis, step, classes) comes from tqcli/codec/adaptive_model.py (plan): the
encoder's options carry the fitted Basis (EncodeOptions.adapt).
"""

from __future__ import annotations

import math
import struct

from ... import limits
from .base import PayloadCoding

_BLOCK = struct.Struct("<HHBBBBddd")  # k, classes, dtype, precision, lanes, scales, 3 f64
MAX_SYMBOLS = 4096
MIN_PRECISION, MAX_PRECISION = 8, 16
MIN_LANES, MAX_LANES = 1, 32


def _need(cond, reason, rule="adaptive-model"):
    if not cond:
        from ...errors import FormatError

        raise FormatError(reason, rule=rule)


class Adaptive(PayloadCoding):
    code = 2
    name = "adaptive"
    summary = "a fitted basis; components on one uniform step, rANS-coded by class"
    fixed_size = False
    modes = ("mse",)
    mode_rule = "adaptive-mode"
    cli_name = "adaptive"
    label = "adp"
    legend = "--adapt at the bytes of the fixed coding at b"
    fractional_rates = True
    target_error = True
    rows_in_place = False
    min_rate, max_rate = 1.0, 8.0
    data_fitted = True  # header_fields needs the vector count (make_header passes it)

    def header_fields(self, dim: int, options, chunk_rows: int, n_vectors: int = 0) -> dict:
        """The model plan() gives the options' fitted Basis for n_vectors vectors."""
        import numpy as np

        from .. import adaptive_model as am

        problem = am.dim_problem(dim)
        if problem:
            raise ValueError(problem)
        basis = options.adapt
        if not isinstance(basis, am.Basis):  # a header made without data (make_header)
            basis = am.identity_basis(dim)
        if basis.dim != dim:
            raise ValueError(f"the basis is fitted to vectors of {basis.dim} values, not {dim}")
        model = am.plan(basis, n_vectors, chunk_rows, bits=options.bits, nmse=options.nmse)
        bytes_ = (am.header_block_size(model.k, dim, model.basis_dtype,
                                       [len(c) for c in model.codebooks])
                  + max(n_vectors, 1) * model.rate / 8)
        bits = min(limits.MAX_BITS, max(limits.MIN_BITS,
                                        math.ceil(8 * bytes_ / (max(n_vectors, 1) * dim))))
        return dict(bits=bits, codebook=np.zeros(0, np.float32), model=model)

    def decoder_kernel(self, header) -> str:
        return "reconstruct_kernel"

    def warmup_ok(self, header) -> bool:
        return False

    def warmup_payload(self, header, rows: int):
        return None

    def achieved_bits(self, header, payload_bytes: int) -> float:
        n, d = header.n_vectors, header.dim
        return payload_bytes * 8 / (n * d) if n else 0.0

    def rate_text(self, header) -> str:
        m = header.model
        return f"adaptive, {m.k} of {header.dim} components"

    def basis_bytes(self, header) -> int:
        m = header.model
        from ..adaptive_model import basis_row_bytes

        return m.k * basis_row_bytes(header.dim, m.basis_dtype)

    def inspect_report(self, header, payload_bytes: int) -> dict:
        m = header.model
        n = header.n_vectors
        total = header.header_size + payload_bytes
        return {"name": self.cli_name, "components": m.k, "dim": header.dim,
                "basis_dtype": m.basis_dtype, "basis_bytes": self.basis_bytes(header),
                "basis_share": self.basis_bytes(header) / total if total else 0.0,
                "classes": m.n_classes, "step": m.step, "precision": m.precision,
                "scales": m.scales,
                "lanes": m.lanes, "model_bits": m.rate, "expected_nmse": m.nmse,
                "achieved_bits": self.achieved_bits(header, payload_bytes),
                "bytes_per_vector": total / n if n else 0.0}

    def inspect_rows(self, r: dict) -> list[tuple[str, str]]:
        c = r["coding"]
        return [
            ("mode", f"{r['mode']}, adaptive: {c['achieved_bits']:.3f} bits/coordinate in "
                     f"the streams, {c['bytes_per_vector']:.1f} B/vec with the header"),
            ("basis", f"{c['components']} of {c['dim']} components, {c['basis_dtype']}, "
                      f"{c['basis_bytes']} bytes ({100 * c['basis_share']:.1f}% of the file)"),
            ("grid", f"step {c['step']:.4g}, {c['classes']} classes, frequencies of "
                     f"precision {c['precision']}, {c['lanes']} lanes; predicted nmse "
                     f"{c['expected_nmse']:.3e}{'; a float16 scale per vector' * c['scales']}"),
        ]

    def eval_fields(self, header, payload_bytes: int, requested) -> dict:
        """bits: the rate asked for, or the fixed coding's rate at these bytes; optimum:
        the model's predicted error; lower_bound: 4^-bits (the fixed coding's bound)."""
        n, d = max(header.n_vectors, 1), header.dim
        equiv = ((header.header_size + payload_bytes) / n - 4) * 8 / d
        bits = requested if requested is not None else round(equiv, 2)
        return {"bits": bits, "achieved_bits": self.achieved_bits(header, payload_bytes),
                "model_bits": header.model.rate / d, "optimum": header.model.nmse,
                "lower_bound": 4.0 ** -equiv}

    def eval_heading(self, dim: int) -> str:
        return f"{self.label}: optimum = the error its model predicts"

    def member_report(self, header, payload_bytes: int) -> dict:
        return {"name": self.name, "achieved_bits": self.achieved_bits(header, payload_bytes),
                "components": header.model.k, "step": header.model.step}

    def codebook_size(self, header) -> int:
        return 0

    def model_size(self, header) -> int:
        from ..adaptive_model import header_block_size

        m = header.model
        return header_block_size(m.k, header.dim, m.basis_dtype,
                                 [len(c) for c in m.codebooks])

    def max_model_size(self) -> int:
        from ..adaptive_model import MAX_ADAPTIVE_DIM, MAX_CLASSES

        d = MAX_ADAPTIVE_DIM  # k <= d rows of at most 4 d bytes (float32)
        return _BLOCK.size + 2 * MAX_CLASSES + 6 * MAX_CLASSES * MAX_SYMBOLS + d + 4 * d * d

    def model_bytes(self, header) -> bytes:
        import numpy as np

        m = header.model
        from ..adaptive_model import BASIS_DTYPES

        parts = [_BLOCK.pack(m.k, m.n_classes, BASIS_DTYPES.index(m.basis_dtype),
                             m.precision, m.lanes, m.scales, m.step, m.rate, m.nmse),
                 np.asarray([len(c) for c in m.codebooks], "<u2").tobytes()]
        parts += [np.asarray(c, "<f4").tobytes() for c in m.codebooks]
        parts += [np.asarray(f, "<u2").tobytes() for f in m.frequencies]
        parts.append(np.asarray(m.classes, np.uint8).tobytes())
        if m.basis_dtype == "int8":
            rows = np.empty((m.k, 4 + header.dim), np.uint8)
            rows[:, :4] = np.asarray(m.basis_scales, "<f4").view(np.uint8).reshape(m.k, 4)
            rows[:, 4:] = m.basis_codes().view(np.uint8)
            parts.append(rows.tobytes())
        else:
            parts.append(m.basis.astype("<f2" if m.basis_dtype == "float16" else "<f4")
                         .tobytes())
        return b"".join(parts)

    def model_size_in(self, raw: bytes, offset: int, end: int, fields: dict) -> int:
        if offset + _BLOCK.size > end:
            _need(False, "header size does not match its fields", "header-size")
        k, c, dt = struct.unpack_from("<HHB", raw, offset)
        if offset + _BLOCK.size + 2 * c > end:
            _need(False, "header size does not match its fields", "header-size")
        import numpy as np

        sym = np.frombuffer(raw, "<u2", count=c, offset=offset + _BLOCK.size).astype(np.int64)
        d = fields["dim"]
        return (_BLOCK.size + 2 * c + 6 * int(sym.sum()) + k
                + k * {0: 2 * d, 1: 4 * d}.get(dt, d + 4))

    def parse_model(self, raw: bytes, offset: int, fields: dict):
        import numpy as np

        from ..adaptive_model import MAX_ADAPTIVE_DIM, MAX_CLASSES, AdaptiveModel

        d = fields["dim"]
        k, c, dt, p, lanes, scales_, step, rate, nmse = _BLOCK.unpack_from(raw, offset)
        _need(d <= MAX_ADAPTIVE_DIM, f"adaptive coding: dimension {d} above "
                                     f"{MAX_ADAPTIVE_DIM}", "adaptive-dim")
        _need(1 <= k <= d, f"adaptive coding: {k} components for dimension {d}")
        _need(1 <= c <= min(MAX_CLASSES, k), f"adaptive coding: {c} classes invalid")
        _need(dt in (0, 1, 2), f"adaptive coding: unknown basis dtype {dt}")
        _need(MIN_PRECISION <= p <= MAX_PRECISION, f"adaptive coding: precision {p} invalid")
        _need(MIN_LANES <= lanes <= MAX_LANES, f"adaptive coding: {lanes} lanes invalid")
        _need(scales_ in (0, 1), f"adaptive coding: unknown scales code {scales_}")
        _need(all(math.isfinite(v) for v in (step, rate, nmse)) and step > 0 and rate >= 0
              and nmse >= 0, "adaptive coding: step, rate or nmse not finite and positive")
        _need(fields.get("scale_dtype", "float32") == "float32",
              "adaptive coding: the scale dtype field must say float32")
        at = offset + _BLOCK.size
        sym = np.frombuffer(raw, "<u2", count=c, offset=at).astype(np.int64)
        _need(bool(np.all((sym >= 2) & (sym <= min(MAX_SYMBOLS, 1 << p)))),
              "adaptive coding: a class's symbol count is out of range")
        at += 2 * c
        total = int(sym.sum())
        cbs = np.frombuffer(raw, "<f4", count=total, offset=at).astype(np.float32)
        _need(bool(np.all(np.isfinite(cbs))), "adaptive coding: non-finite codebook value")
        at += 4 * total
        fr = np.frombuffer(raw, "<u2", count=total, offset=at).astype(np.uint16)
        at += 2 * total
        cuts = np.concatenate([[0], np.cumsum(sym)])
        codebooks = tuple(cbs[cuts[i]:cuts[i + 1]] for i in range(c))
        freqs = tuple(fr[cuts[i]:cuts[i + 1]] for i in range(c))
        for f in freqs:
            _need(bool(np.all(f >= 1)) and int(f.sum(dtype=np.int64)) == 1 << p,
                  f"adaptive coding: frequencies are not all >= 1 with sum 2^{p}")
        classes = np.frombuffer(raw, np.uint8, count=k, offset=at).copy()
        at += k
        _need(bool(np.all(classes < c)) and np.unique(classes).size == c,
              "adaptive coding: component classes out of range or a class unused")
        scales = None
        if dt == 2:
            rows = np.frombuffer(raw, np.uint8, count=k * (d + 4), offset=at).reshape(k, d + 4)
            scales = rows[:, :4].copy().view("<f4").reshape(k).astype(np.float32)
            basis = np.empty((k, d), np.float32)
            many = max(1, (1 << 20) // d)  # rows at a time: small binary64 temporaries
            with np.errstate(over="ignore", invalid="ignore"):
                for a in range(0, k, many):
                    q = rows[a:a + many, 4:].view(np.int8).astype(np.float64)
                    basis[a:a + many] = q * scales[a:a + many].astype(np.float64)[:, None]
            _need(bool(np.all(np.isfinite(scales))), "adaptive coding: non-finite basis "
                                                     "scale", "adaptive-basis")
        else:
            bdt = "<f2" if dt == 0 else "<f4"
            basis = np.frombuffer(raw, bdt, count=k * d, offset=at).astype(np.float32)
        _need(bool(np.all(np.isfinite(basis))), "adaptive coding: non-finite basis value",
              "adaptive-basis")
        model = AdaptiveModel(basis=basis.reshape(k, d),
                              basis_dtype=("float16", "float32", "int8")[dt],
                              precision=p, lanes=lanes, step=step, rate=rate, nmse=nmse,
                              classes=classes, codebooks=codebooks, frequencies=freqs,
                              basis_scales=scales, scales=scales_)
        return np.zeros(0, np.float32), model

    def thresholds(self, header):
        import numpy as np

        return np.zeros(0)

    def _counts(self, header, rows: int) -> list[int]:
        """Symbols of each class's stream in a chunk of `rows` vectors."""
        import numpy as np

        m = header.model
        return [rows * int(v) for v in np.bincount(m.classes, minlength=m.n_classes)]

    def prefix_size(self, header, rows: int) -> int:
        return 4 * header.model.n_classes

    def _bounds(self, header, count: int) -> tuple[int, int]:
        m = header.model
        return 8 * m.lanes, 4 * limits.max_stream_words(count, m.precision, m.lanes)

    def min_payload_size(self, header, rows: int) -> int:
        return sum(4 + self._bounds(header, n)[0] for n in self._counts(header, rows)) + \
            2 * rows * header.model.scales

    def max_payload_size(self, header, rows: int) -> int:
        return sum(4 + self._bounds(header, n)[1] for n in self._counts(header, rows)) + \
            2 * rows * header.model.scales

    def payload_size(self, header, rows: int) -> int:
        raise ValueError("an adaptive chunk's length is in its payload and the index")

    def stream_lengths(self, header, rows: int, prefix, chunk: int):
        import numpy as np

        from ...errors import FormatError

        m = header.model
        counts = self._counts(header, rows)
        lengths = np.frombuffer(prefix, "<u4", count=len(counts)).astype(np.int64)
        where = f"chunk {chunk}: " if chunk >= 0 else ""
        for j, (cnt, n) in enumerate(zip(counts, lengths)):
            lo, hi = self._bounds(header, cnt)
            most = limits.most_symbols(int(n) // 4, m.precision, m.lanes,
                                       int(np.max(m.frequencies[j])))
            if not lo <= n <= hi or n % 4 or cnt > most:
                raise FormatError(f"{where}stream {j} claims {int(n)} bytes for {cnt} symbols "
                                  f"(allowed {lo}..{hi}, a multiple of 4, room for them)",
                                  rule="adaptive-stream", chunk=chunk)
        return counts, lengths

    def payload_size_from_prefix(self, header, rows: int, prefix, chunk: int) -> int:
        _, lengths = self.stream_lengths(header, rows, prefix, chunk)
        return len(prefix) + int(lengths.sum()) + 2 * rows * header.model.scales

    def decode_state_bytes(self, header, rows: int) -> int:
        """The cells of a chunk (uint16, twice: by class and by row), the slot tables
        (2^P uint16 a class), the basis in binary32 and its transpose (the encoder's), its
        stored bytes, the codebooks and frequencies."""
        m = header.model
        return (4 * rows * m.k + 8 * rows + 2 * m.n_classes * (1 << m.precision)
                + 8 * m.k * header.dim + self.basis_bytes(header)
                + 6 * sum(len(c) for c in m.codebooks))

    def kernel_scratch_bytes(self, header) -> int:
        return 8 * header.dim + 64

    def encode_scratch_bytes(self, header) -> int:
        return 8 * header.model.k + 256

    def _state(self, codec):
        """What encoding and decoding a header need, built once per Codec."""
        st = codec.__dict__.get("_adaptive")
        if st is None:
            import numpy as np

            from ... import kernels

            m = codec.header.model
            comps = [np.flatnonzero(m.classes == c) for c in range(m.n_classes)]
            sym = np.array([len(c) for c in m.codebooks], np.int64)
            st = {"comps": comps, "halves": (sym - 1) // 2,
                  "offsets": np.concatenate([[0], np.cumsum(sym)[:-1]]).astype(np.int64),
                  "codebook": np.concatenate(m.codebooks).astype(np.float32),
                  "classes": m.classes.astype(np.int64),
                  "basis": np.ascontiguousarray(m.basis, np.float32),
                  "slots": [kernels.rans_slot_table(f, m.precision) for f in m.frequencies]}
            codec.__dict__["_adaptive"] = st
        return st

    def cells(self, codec, x, first_row: int = 0):
        """The cells (uint16 (n, k)) of rows x, centred as Codec.to_format leaves them;
        InputError naming the first row with a NaN or an infinity."""
        import numpy as np

        from ... import kernels
        from ...errors import InputError
        from ...kernels import adaptive as ka

        st = self._state(codec)
        x = np.ascontiguousarray(x, np.float64)
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise InputError(f"row {first_row + int(np.argmax(bad))}: contains NaN or "
                             f"infinite values", kind="non-finite")
        if "basis_t" not in st:
            st["basis_t"] = np.ascontiguousarray(st["basis"].T)
        n = x.shape[0]
        index = np.empty((n, codec.header.model.k), np.uint16)
        kernels._run_task_range(ka.project_kernel, -(-n // ka.TASK_ROWS), x, st["basis_t"],
                                float(codec.header.model.step), st["halves"], st["classes"],
                                index)
        return index

    def encode_chunks(self, codec, x, first_row: int) -> list[list[memoryview]]:
        import numpy as np

        from ... import kernels

        h, m = codec.header, codec.header.model
        st = self._state(codec)
        x = np.ascontiguousarray(x, np.float64)
        if m.scales:
            from ..adaptive_scales import directions, ls_scales

            index = self.cells(codec, directions(x, m.rho), first_row)
            u = np.empty(x.shape, np.float32)
            self._reconstruct(st, index, np.ones(x.shape[0]), u)
            tail = ls_scales(x, u)
        else:
            index = self.cells(codec, x, first_row)
        n = index.shape[0]
        starts = list(range(0, n, h.chunk_rows))
        streams = []
        for c, comps in enumerate(st["comps"]):
            sym = np.ascontiguousarray(index[:, comps]).reshape(-1)
            bounds = np.asarray([a * comps.size for a in starts] + [n * comps.size], np.int64)
            streams.append(kernels.rans_encode(sym, bounds, m.frequencies[c], m.precision,
                                               m.lanes))
        out = []
        for i in range(len(starts)):
            lens = np.asarray([int(s[2][i]) for s in streams], "<u4")
            parts = [memoryview(lens).cast("B")]
            parts += [memoryview(buf[a[i]:a[i] + ln[i]]) for buf, a, ln in streams]
            if m.scales:
                parts.append(memoryview(tail[starts[i]:starts[i] + h.chunk_rows]).cast("B"))
            out.append(parts)
        return out

    def decode_cells(self, header, payload, rows: int, slots):
        """The rANS stage of a chunk: every class's stream decoded (FormatError,
        adaptive-stream, for a stream the decoder of 19.3 refuses), as uint16 (rows, k)."""
        import numpy as np

        from ... import kernels
        from ...errors import FormatError

        m = header.model
        buf = np.frombuffer(payload, dtype=np.uint8)
        nc = m.n_classes
        counts, lengths = self.stream_lengths(header, rows, buf[:4 * nc], -1)
        index = np.empty((rows, m.k), np.uint16)
        at = 4 * nc
        for c in range(nc):
            comps = np.flatnonzero(m.classes == c)
            sym = np.empty(counts[c], np.uint16)
            try:
                kernels.rans_decode(buf, np.asarray([at], np.int64), lengths[c:c + 1],
                                    np.asarray([counts[c]], np.int64), m.frequencies[c],
                                    m.precision, m.lanes, sym, slot_table=slots[c])
            except FormatError as e:
                raise FormatError(f"class {c}'s {e}", rule="adaptive-stream") from None
            index[:, comps] = sym.reshape(rows, comps.size)
            at += int(lengths[c])
        return index

    def decode(self, codec, payload, rows: int, out):
        import numpy as np

        st = self._state(codec)
        index = self.decode_cells(codec.header, payload, rows, st["slots"])
        out = out[:rows]  # binary32: the header's scale dtype is float32 (21)
        from ..adaptive_scales import read

        scale = read(payload, rows) if codec.header.model.scales else np.ones(rows)
        self._reconstruct(st, index, scale, out)
        return out

    def _reconstruct(self, st, index, scale, out):
        from ... import kernels
        from ...kernels import adaptive as ka

        kernels._run_task_range(ka.reconstruct_kernel, -(-index.shape[0] // ka.TASK_ROWS),
                                index, st["codebook"], st["offsets"], st["classes"],
                                st["basis"], scale, out)

    def check_payload(self, header, payload, rows: int, chunk: int) -> None:
        from ...errors import FormatError

        nc = header.model.n_classes
        _, lengths = self.stream_lengths(header, rows, bytes(payload[:4 * nc]), chunk)
        if 4 * nc + int(lengths.sum()) + 2 * rows * header.model.scales != len(payload):
            raise FormatError(f"chunk {chunk}: stream lengths do not add up to the payload's "
                              f"{len(payload)} bytes", rule="adaptive-stream", chunk=chunk)

    def check_decodable(self, header, payload, rows: int, scratch: dict) -> None:
        from ... import kernels

        m = header.model
        if "slots" not in scratch:
            scratch["slots"] = [kernels.rans_slot_table(f, m.precision) for f in m.frequencies]
        self.decode_cells(header, payload, rows, scratch["slots"])
        if m.scales:
            from ..adaptive_scales import read
            read(payload, rows)

    def reference_encode(self, codec, x) -> bytes:
        """The payload of rows x (one chunk at most; the centre is subtracted as the codec
        does) in plain numpy and Python."""
        from .. import reference_adaptive

        return reference_adaptive.encode_payload(codec.to_format(x), codec.header.model)

    def reference_decode(self, codec, payload, rows: int):
        from .. import reference_adaptive

        out = reference_adaptive.decode_payload(payload, rows, codec.header.model)
        return codec.from_format(out)  # the centre added back in binary32 (spec 12)


ADAPTIVE = Adaptive()
