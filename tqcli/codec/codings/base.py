"""What a payload coding is: how a chunk's codes and per-vector floats become bytes.

The codec (tqcli/codec/state.py) normalises, rotates and quantises; a coding decides the bytes of
each chunk payload and reads them back.  A coding whose payload length is a function of the
header and the chunk's row count (`fixed_size`) lets a reader compute every offset and the
exact file length from the header alone (spec/tqz-v1.md section 5), which is what the
reader checks of section 13.2 rely on; a coding whose lengths depend on the data records
them in the chunk index instead, and bounds them by `max_payload_size`.
"""

from __future__ import annotations


class PayloadCoding:
    """One entry of the coding table (tqcli/codec/codings/__init__.py).

    A subclass sets `code` (the header's coding code), `name` and `summary`, and implements
    the size functions and encode/decode over a Codec's state.
    """

    code: int
    name: str
    summary: str
    fixed_size: bool = True
    modes: tuple[str, ...] = ("mse", "prod")  # the modes it is defined for
    mode_rule: str = "mode"                    # the reader rule refusing another mode

    # ------------------------------------------------------------------ what it offers
    # The command line, the options object (tqcli/codec/options.py), the reports and the
    # precompiler read these instead of naming a coding.

    cli_name: str = ""                # --coding's name for it (and the reports' "coding")
    aliases: tuple[str, ...] = ()     # further names accepted for it
    label: str = ""                   # eval's narrow "code" column
    legend: str = ""                  # what the label means, for eval's legend line
    fractional_rates: bool = False    # bits may be any rate from min_rate to max_rate
    target_error: bool = False        # takes a target error (nmse) instead of bits
    rows_in_place: bool = True        # a row range is read from the payload in place
    min_rate: float = 1
    max_rate: float = 8
    data_fitted: bool = False         # header_fields also takes n_vectors (a fitted model)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name this entry answers to: table name, command-line name, aliases."""
        return tuple(dict.fromkeys((self.name, self.cli_name or self.name) + self.aliases))

    def header_fields(self, dim: int, options, chunk_rows: int) -> dict:
        """The header fields this coding decides for new data under `options` (an
        EncodeOptions): bits, codebook and, for a coding that has one, model.
        ValueError for a combination it cannot encode."""
        raise NotImplementedError

    def decoder_kernel(self, header) -> str:
        """The name of the kernel that decodes its chunks (precompile warms it up)."""
        raise NotImplementedError

    def warmup_ok(self, header) -> bool:
        """Whether warmup_payload is quick enough for the precompiler to ask for."""
        return True

    def warmup_payload(self, header, rows: int) -> bytes | None:
        """A valid payload of `rows` vectors made without any encoder kernel, for the
        precompiler's child to decode; None when making one would take too long."""
        return bytes(header.payload_size(rows))

    def achieved_bits(self, header, payload_bytes: int) -> float:
        """Bits per coordinate the payload spent on codes (all but the scales)."""
        n, d = header.n_vectors, header.dim
        return (payload_bytes - n * header.scale_size) * 8 / (n * d) if n else 0.0

    def rate_text(self, header) -> str:
        """Its width in `tq compress -v`'s line: "4 bits"."""
        return f"{header.bits} bits"

    def inspect_report(self, header, payload_bytes: int) -> dict | None:
        """What `tq inspect` says of it under "coding" (None: nothing beyond the header)."""
        return None

    def inspect_rows(self, r: dict) -> list[tuple[str, str]]:
        """Text rows replacing inspect's "mode" row for the report `r`, whose "coding"
        inspect_report gave (only asked when that was not None)."""
        return []

    def eval_fields(self, header, payload_bytes: int, requested) -> dict | None:
        """eval's figures for a file of this coding (bits, theory); None: the fixed-width
        theory of tqcli.library.evaluation applies."""
        return None

    def eval_heading(self, dim: int) -> str | None:
        """What eval's heading says of this coding's optimum (None: nothing)."""
        return None

    def member_report(self, header, payload_bytes: int) -> dict | None:
        """The "coding" object of a collection member of this coding in inspect's JSON
        (None: the header's bits say it all)."""
        return None

    def width_text(self, coding_report: dict) -> str:
        """Its width in inspect's tables, from the "coding" object of its report (the
        codings that report one: the entropy coding's rate achieved)."""
        return f"{coding_report['achieved_bits']:.2f} {self.label}"

    def width_legend(self) -> str | None:
        """The line under a table that shows width_text, saying what it means."""
        return None

    def collection_note(self) -> str | None:
        """The line a collection's eval report adds when a member uses this coding."""
        return None

    # ------------------------------------------------------------------ header block
    # The bytes between the shape and the centre (spec 3.1): the packed coding's codebook,
    # or the entropy coding's model.  A reader parses them with parse_model.

    def codebook_size(self, header) -> int:
        """Entries of the header's codebook."""
        q = header.code_bits
        return 1 << q if q > 0 else 0

    def model_size(self, header) -> int:
        """Bytes of the header block this coding stores after the shape."""
        return 4 * self.codebook_size(header)

    def max_model_size(self) -> int:
        """The largest such block any header of this coding can have."""
        raise NotImplementedError

    def model_bytes(self, header) -> bytes:
        """The header block (little-endian)."""
        raise NotImplementedError

    def model_size_in(self, raw: bytes, offset: int, end: int, fields: dict) -> int:
        """The size of the block at raw[offset:] as its header says, reading nothing at or
        beyond `end` (FormatError, rule header-size, if it would have to).  `fields`
        holds the fixed header fields already checked (mode, bits, dim, chunk_rows)."""
        return 4 * (1 << fields["q"] if fields["q"] > 0 else 0)

    def parse_model(self, raw: bytes, offset: int, fields: dict):
        """(codebook, model) of the block at raw[offset:], whose size has been checked
        against the header size; FormatError if a value is invalid."""
        raise NotImplementedError

    def thresholds(self, header):
        """The encoder's binary64 thresholds (spec 10.2 for packed, 19 for entropy)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ payload sizes

    def prefix_size(self, header, rows: int) -> int:
        """Bytes at the start of a variable-size payload from which its length follows."""
        return 0

    def payload_size_from_prefix(self, header, rows: int, prefix, chunk: int) -> int:
        """The length of a variable-size payload of `rows` vectors from its first
        prefix_size bytes, checked against the coding's bounds (FormatError if out)."""
        return self.payload_size(header, rows)

    def decode_state_bytes(self, header, rows: int) -> int:
        """Bytes of decoding state beyond payload and rows (spec 13.7): 0 for packed."""
        return 0

    def kernel_scratch_bytes(self, header) -> int:
        """Bytes one decoding task of the kernels allocates for itself (spec 13.7): the
        packed coding's two lane-interleaved float32 groups (8 lanes of d values) and the
        unpacked codes of 8 rows; prod mode adds the correction, the signs and their bytes."""
        d = header.dim
        return 144 * d + 32 if header.mode == "prod" else 72 * d

    def encode_scratch_bytes(self, header) -> int:
        """Bytes one encoding task of the kernels allocates (tqcli/kernels/encode.py
        _encode_scratch: 8 lanes of d values in binary64, three in binary32, the codes in
        bytes and 32-bit counts, the packed codes; prod mode adds its projection)."""
        d = header.dim
        return (240 if header.mode == "prod" else 208) * d + 256

    def min_payload_size(self, header, rows: int) -> int:
        """Smallest payload a chunk of `rows` vectors can have."""
        return self.payload_size(header, rows)

    def section_sizes(self, header, rows: int) -> tuple[int, ...]:
        """Byte counts of the payload's sections for a chunk of `rows` vectors."""
        raise NotImplementedError

    def payload_size(self, header, rows: int) -> int:
        """Exact payload length of a chunk of `rows` vectors (fixed-size codings)."""
        return sum(self.section_sizes(header, rows))

    def max_payload_size(self, header, rows: int) -> int:
        """Largest payload a chunk of `rows` vectors can have (what a reader may allocate)."""
        return self.payload_size(header, rows)

    def encode_chunks(self, codec, x, first_row: int) -> list[list[memoryview]]:
        """Rows of x, starting at a chunk boundary, as one payload per chunk (each a list of
        byte views whose concatenation is the payload)."""
        raise NotImplementedError

    def decode(self, codec, payload, rows: int, out):
        """A checked chunk payload of `rows` vectors decoded into out[:rows] (returned)."""
        raise NotImplementedError

    def reference_encode(self, codec, x) -> bytes:
        """The payload of rows x (at most one chunk) computed in plain numpy, for tests to
        compare with encode_chunks bit for bit."""
        raise NotImplementedError

    def reference_decode(self, codec, payload, rows: int):
        """A payload decoded in plain numpy, for tests to compare with decode bit for bit."""
        raise NotImplementedError

    def check_payload(self, header, payload, rows: int, chunk: int) -> None:
        """Reader checks on a payload whose CRC matched (FormatError if one fails)."""

    def decoded_bound(self, codec, payload, rows: int) -> float:
        """An upper bound of |value| of every decoded value of a checked payload (before
        a centre is added) that holds whatever the bits are, or inf when the coding
        knows none: below the output type's range, Codec.decode skips its scan for
        infinities (spec 13.4), which no value can then be."""
        import math

        return math.inf

    def check_decodable(self, header, payload, rows: int, scratch: dict) -> None:
        """The checks the decoder makes on a checked payload while decoding it, except the
        finiteness of the decoded values (spec 13.5): what a verifier adds to check_payload
        (FormatError if one fails).  The packed coding has none: any bit pattern of a
        payload of the right length decodes."""

    def __repr__(self) -> str:
        return f"<payload coding {self.name} ({self.code})>"

    # ------------------------------------------------------------------ codes (search)
    # A chunk's quantised form without decoding it to floats (tqcli/codec/codes.py documents
    # the arrays and what they decode to); tqcli/library/blocks.py builds on these.

    def chunk_codes(self, codec, payload, rows: int):
        """A checked payload's codes and scales as tqcli.codec.codes.ChunkCodes (views of the
        payload where the coding stores them as they are)."""
        raise NotImplementedError

    def encode_codes(self, codec, x, first_row: int = 0):
        """Rows of x (centred already, as Codec.encode_chunks passes them) as the
        ChunkCodes a chunk of them would hold, with the same kernels; refuses what
        encode_chunks refuses."""
        raise NotImplementedError

    def decode_codes(self, codec, codes, out):
        """ChunkCodes decoded into out[:codes.rows] (returned), as decode does with a
        payload (no centre added: Codec.decode's business)."""
        raise NotImplementedError
