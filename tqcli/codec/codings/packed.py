"""`packed` (coding code 0): fixed-width codes, bit-packed, then the per-vector floats.

A chunk of r vectors is: the q-bit codebook indices of all r*d coordinates as one LSB-first
bit stream, in prod mode the r*d sign bits likewise, then the r scales and in prod mode the
r residual norms in the scale dtype (spec/tqz-v1.md sections 4 and 6).  Every length is a
function of the header, so a reader knows the whole layout before reading a chunk.

The encode and decode kernels fuse normalisation, rotation, quantisation and packing
(tqcli/kernels); tqcli/codec/reference.py has the plain-numpy version of each.
"""

from __future__ import annotations

from .base import PayloadCoding


class Packed(PayloadCoding):
    code = 0
    name = "packed"
    summary = "fixed-width bit-packed codes, then the per-vector floats"
    fixed_size = True
    cli_name = "fixed"
    label = "fix"
    legend = "fixed-length b-bit codes"

    def header_fields(self, dim: int, options, chunk_rows: int) -> dict:
        """b bits (an integer) and the Lloyd-Max codebook of its code bits."""
        import numpy as np

        from .. import codebook
        from ... import limits

        bits = options.bits
        if isinstance(bits, bool) or not isinstance(bits, int) \
                or not limits.MIN_BITS <= bits <= limits.MAX_BITS:
            raise ValueError(f"bits must be an integer from {limits.MIN_BITS} to "
                             f"{limits.MAX_BITS}, got {bits!r}")
        q = limits.code_bits(options.mode, bits)
        cb = codebook.codebook(dim, q) if q > 0 else np.zeros(0, np.float32)
        return dict(bits=bits, codebook=cb)

    def decoder_kernel(self, header) -> str:
        return "decode_prod_kernel" if header.mode == "prod" else "decode_mse_kernel"

    def max_model_size(self) -> int:
        from ... import limits

        return 4 * limits.MAX_CODEBOOK

    def model_bytes(self, header) -> bytes:
        import numpy as np

        return np.asarray(header.codebook, dtype="<f4").tobytes()

    def parse_model(self, raw: bytes, offset: int, fields: dict):
        """The 2^q float32 codebook values (spec 3.2)."""
        import numpy as np

        k = 1 << fields["q"] if fields["q"] > 0 else 0
        cb = np.frombuffer(raw, dtype="<f4", count=k, offset=offset).astype(np.float32)
        check_codebook(cb)
        return cb, None

    def thresholds(self, header):
        from .. import codebook

        return codebook.boundaries(header.codebook)

    def section_sizes(self, header, rows: int) -> tuple[int, int, int]:
        """(codes, sign bits, per-vector floats) byte counts of a chunk of `rows` vectors."""
        codes = -(-rows * header.dim * header.code_bits // 8)
        signs = -(-rows * header.dim // 8) if header.mode == "prod" else 0
        return codes, signs, rows * header.scale_size * header.floats_per_vector

    # ------------------------------------------------------------------ encode

    def encode_chunks(self, codec, x, first_row: int) -> list[list[memoryview]]:
        """Encode rows of x in one kernel call; chunks hold a multiple of 8 rows, so every
        chunk starts on a byte of the code and sign streams and the payloads are exactly
        those chunk-by-chunk encoding gives."""
        h = codec.header
        codes, signs, floats = self._encode_arrays(codec, x, first_row)
        n, d, cr = x.shape[0], h.dim, h.chunk_rows
        out = []
        for a in range(0, n, cr):
            k = min(cr, n - a)
            c0 = a * d * h.code_bits // 8
            s0 = a * d // 8 if signs.size else 0
            ncode, nsign, _ = self.section_sizes(h, k)
            parts = [codes[c0:c0 + ncode], signs[s0:s0 + nsign]] + [f[a:a + k] for f in floats]
            out.append([memoryview(p).cast("B") for p in parts if p.size])
        return out

    def _encode_arrays(self, codec, x, first_row: int):
        """The code stream, the sign stream (empty in mse mode) and the per-vector floats
        (scales, and gammas in prod mode) of all rows of x, checked."""
        import numpy as np

        from ... import kernels

        h = codec.header
        n = x.shape[0]
        ncode, nsign, _ = self.section_sizes(h, n)
        codes = np.empty(ncode, np.uint8)  # the kernels write every byte
        qbits = np.empty(nsign, np.uint8)
        scales = np.empty(n, np.float64)
        if h.mode == "mse":
            kernels.encode_mse(x, codec.plan, *codec.quantizer, h.code_bits, codec.rule,
                               codes, scales)
            floats = [scales]
        else:
            gammas = np.empty(n, np.float64)
            kernels.encode_prod(x, codec.plan, *codec.quantizer, h.code_bits, codec.sketch_t,
                                codes, qbits, scales, gammas)
            floats = [scales, gammas]
        return codes, qbits, codec.store_floats(floats, first_row)

    # ------------------------------------------------------------------ decode

    def decode(self, codec, payload, rows: int, out):
        return self.decode_codes(codec, self.chunk_codes(codec, payload, rows), out)

    # ------------------------------------------------------------------ codes

    def chunk_codes(self, codec, payload, rows: int):
        """The code and sign streams as views of the payload, the scales (and prod mode's
        gammas) as the decoder computes with them."""
        import numpy as np

        from ..codes import ChunkCodes

        h = codec.header
        ncode, nsign, nfloat = self.section_sizes(h, rows)
        buf = np.frombuffer(payload, dtype=np.uint8)
        per = nfloat // h.floats_per_vector
        scales = codec.load_floats(buf[ncode + nsign:ncode + nsign + per])
        if h.mode == "mse":
            return ChunkCodes("packed", rows, h.dim, h.code_bits, buf[:ncode], scales)
        gammas = buf[ncode + nsign + per:].view(codec.scale_dtype).astype(np.float64)
        return ChunkCodes("packed", rows, h.dim, h.code_bits, buf[:ncode], scales,
                          buf[ncode:ncode + nsign], gammas)

    def encode_codes(self, codec, x, first_row: int = 0):
        import numpy as np

        from ..codes import ChunkCodes

        h = codec.header
        codes, qbits, floats = self._encode_arrays(codec, x, first_row)
        scales = floats[0].astype(codec.out_dtype)  # as load_floats gives the stored ones
        if h.mode == "mse":
            return ChunkCodes("packed", x.shape[0], h.dim, h.code_bits, codes, scales)
        return ChunkCodes("packed", x.shape[0], h.dim, h.code_bits, codes, scales, qbits,
                          floats[1].astype(np.float64))

    def decode_codes(self, codec, codes, out):
        from ... import kernels

        h = codec.header
        out = out[:codes.rows]
        if h.mode == "mse":
            kernels.decode_mse(codes.codes, codes.scales, codec.plan, codec.centroids,
                               h.code_bits, out)
        else:
            kernels.decode_prod(codes.codes, codes.signs, codes.scales, codes.gammas,
                                codec.plan, codec.centroids, h.code_bits, codec.sketch, out)
        return out

    # ------------------------------------------------------------------ numpy reference

    def reference_encode(self, codec, x) -> bytes:
        """The payload of rows x (at most one chunk) by tqcli/codec/reference.py, operation for
        operation what the kernels do; for the tests to compare with bit for bit."""
        import numpy as np

        from .. import codebook, reference

        h = codec.header
        bounds = codebook.boundaries(codec.centroids) if codec.centroids.size else np.zeros(0)
        if h.mode == "mse":
            codes, scales = reference.encode_mse(x, codec.plan, bounds, codec.centroids,
                                                 h.code_bits, codec.rule)
            parts = [codes, scales.astype(codec.scale_dtype)]
        else:
            codes, qbits, scales, gammas = reference.encode_prod(
                x, codec.plan, bounds, codec.centroids, h.code_bits, codec.sketch)
            parts = [codes, qbits, scales.astype(codec.scale_dtype),
                     gammas.astype(codec.scale_dtype)]
        return b"".join(p.tobytes() for p in parts)

    def reference_decode(self, codec, payload, rows: int):
        """The payload decoded by tqcli/codec/reference.py (binary32 arithmetic: float32 and
        float16 scales)."""
        import numpy as np

        from .. import reference

        h = codec.header
        if h.scale_dtype == "float64":
            raise NotImplementedError("the numpy reference decodes in binary32 only")
        ncode, nsign, nfloat = self.section_sizes(h, rows)
        buf = np.frombuffer(payload, dtype=np.uint8)
        per = nfloat // h.floats_per_vector
        scales = buf[ncode + nsign:ncode + nsign + per].view(codec.scale_dtype).astype(np.float32)
        if h.mode == "mse":
            return reference.decode_mse(buf[:ncode], scales, codec.plan, codec.centroids,
                                        h.code_bits, rows)
        gammas = buf[ncode + nsign + per:].view(codec.scale_dtype).astype(np.float64)
        return reference.decode_prod(buf[:ncode], buf[ncode:ncode + nsign], scales, gammas,
                                     codec.plan, codec.centroids, h.code_bits, codec.sketch, rows)

    def decoded_bound(self, codec, payload, rows: int) -> float:
        """mse mode: a decoded value is s (R^T c)_i, and R^T (block_scale H blocks, signs,
        permutations; orthonormal up to float32 rounding) keeps the Euclidean norm of the
        centroid vector c, at most sqrt(d) max|c|, so |value| <= max|s| sqrt(d) max|c|;
        inside a butterfly before its block's scale the values stay below d max|c|.
        Twice those (rounding) is the bound, inf when the butterflies could overflow
        binary32 or in prod mode (its correction is not bounded here)."""
        import math

        import numpy as np

        h = codec.header
        if h.mode != "mse" or not codec.centroids.size:
            return math.inf
        top = float(np.abs(codec.centroids).max())
        if 2.0 * h.dim * top > float(np.finfo(np.float32).max) / 4:
            return math.inf
        ncode, nsign, _ = self.section_sizes(h, rows)
        scales = np.frombuffer(payload, dtype=codec.scale_dtype, count=rows,
                               offset=ncode + nsign)
        return float(np.abs(scales).max(initial=0)) * 2.0 * math.sqrt(h.dim) * top

    def check_payload(self, header, payload, rows: int, chunk: int) -> None:
        """Refuse a chunk whose stored scales or gammas are not finite (spec 13.4): a
        conforming encoder never writes one, so only a corrupt or crafted file has it."""
        import numpy as np

        from ...errors import FormatError

        codes, signs, floats = self.section_sizes(header, rows)
        dt = np.dtype(header.scale_dtype).newbyteorder("<")
        vals = np.frombuffer(payload, dtype=dt, count=floats // dt.itemsize, offset=codes + signs)
        if not np.isfinite(vals).all():
            raise FormatError(f"chunk {chunk}: non-finite per-vector scale (corrupt or crafted "
                              f"file)", rule="scale-finite", chunk=chunk)


def check_codebook(cb) -> None:
    """Refuse a codebook with a non-finite value or not strictly increasing (spec 3.2)."""
    import numpy as np

    from ...errors import FormatError

    if not np.all(np.isfinite(cb)):
        raise FormatError("codebook holds non-finite values", rule="codebook")
    if not np.all(np.diff(cb) > 0):
        raise FormatError("codebook is not strictly increasing", rule="codebook")


PACKED = Packed()
