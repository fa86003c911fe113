"""What a payload coding is: how a chunk's codes and per-vector floats become bytes.

The codec (tqcli/codec.py) normalises, rotates and quantises; a coding decides the bytes of
each chunk payload and reads them back.  A coding whose payload length is a function of the
header and the chunk's row count (`fixed_size`) lets a reader compute every offset and the
exact file length from the header alone (spec/tqz-v1.md section 5), which is what the
reader checks of section 13.2 rely on; a coding whose lengths depend on the data records
them in the chunk index instead, and bounds them by `max_payload_size`.
"""

from __future__ import annotations


class PayloadCoding:
    """One entry of the coding table (tqcli/codings/__init__.py).

    A subclass sets `code` (the header's coding code), `name` and `summary`, and implements
    the size functions and encode/decode over a Codec's state.
    """

    code: int
    name: str
    summary: str
    fixed_size: bool = True

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

    def __repr__(self) -> str:
        return f"<payload coding {self.name} ({self.code})>"
