"""Fitted stages: transforms whose parameters come from the data, each a table entry.

A fitted stage is fitted once, by the encoder, from the first block of vectors (the
first chunk's rows); its parameters go into the header as a block of their own, announced
by a bit of the header's `flags` that the stage owns, and the codec applies it before
encoding (`forward`) and undoes it after decoding (`inverse`).  The container reads and
writes every stage's block through this table (tqcli/format/header.py), in table order
after the coding's block, so that adding a stage is one entry here, its spec section and
tests: neither the container nor the codec names a stage.  (`STAGES.registered` adds one
for the length of a `with` block, for tests.)  What asks for a stage is an EncodeOptions
field today (the centre's `center`): a new stage adds its field there too.

The centre (spec sections 3.1 flag bit 8, 11, 12 and 14) is the one entry today; its
block is the d float32 values after the codebook, exactly as the spec says.

This module imports no numpy at load.
"""

from __future__ import annotations

import contextlib

from ..errors import FormatError, InputError
from .tables import Table


class FittedStage:
    """One entry of STAGES.  A subclass sets `name`, `flag` (its bit of the header's flags,
    also its code in the table) and `attr` (the Header field that holds its parameters;
    None: Header.fitted[name]), and implements the methods below."""

    name: str
    flag: int
    attr: str | None = None
    summary: str = ""

    @property
    def code(self) -> int:  # the table's key
        return self.flag

    # ------------------------------------------------------------------ encoder side

    def wanted(self, options) -> bool:
        """Whether an EncodeOptions asks for this stage."""
        raise NotImplementedError

    def fit(self, options, first_rows):
        """The parameters for data whose first block (the first chunk's vectors, float)
        is `first_rows` (an (r, d) array, r may be 0)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ header block

    def block_size(self, dim: int) -> int:
        """Bytes of its header block for vectors of `dim` values."""
        raise NotImplementedError

    def max_block_size(self) -> int:
        """The largest block any header can have (the reader's header-size bound)."""
        raise NotImplementedError

    def header_block(self, params, dim: int) -> bytes:
        raise NotImplementedError

    def parse(self, raw: bytes, offset: int, dim: int):
        """The parameters of the block at raw[offset:] (whose size has been checked);
        FormatError (a rule of spec 13) for an invalid value."""
        raise NotImplementedError

    def check(self, params, dim: int) -> None:
        """FormatError if in-memory parameters do not fit vectors of `dim` values."""

    # ------------------------------------------------------------------ codec

    def forward(self, params):
        """A function rows -> rows the encoder applies before quantising."""
        raise NotImplementedError

    def inverse(self, params, out_dtype):
        """A function out -> None undoing forward in place on decoded rows (out_dtype)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ header access

    def params_of(self, header):
        if self.attr is not None:
            return getattr(header, self.attr)
        return header.fitted.get(self.name)

    def __repr__(self) -> str:
        return f"<fitted stage {self.name} (flag 0x{self.flag:04x})>"


class Center(FittedStage):
    """Subtract a centre vector (spec 11, 12, 14): the mean of the first chunk's vectors
    (options center=True) or one given (a vector); d float32 values in the header."""

    name = "center"
    flag = 0x0100  # bit 8
    attr = "center"
    summary = "centre vector subtracted before encoding, added back after decoding"

    def wanted(self, options) -> bool:
        return options.centered

    def fit(self, options, first_rows):
        import numpy as np

        if options.center is not True:  # a vector given: used as it is
            return options.center
        bad = ~np.isfinite(first_rows).all(axis=1)
        if bad.any():  # the mean of such rows is not a centre
            raise InputError(f"row {int(np.argmax(bad))}: contains NaN or infinite values",
                             kind="non-finite")
        return mean_center(first_rows)

    def block_size(self, dim: int) -> int:
        return 4 * dim

    def max_block_size(self) -> int:
        from .. import limits

        return 4 * limits.MAX_DIM

    def header_block(self, params, dim: int) -> bytes:
        import numpy as np

        return np.asarray(params, dtype="<f4").tobytes()

    def parse(self, raw: bytes, offset: int, dim: int):
        import numpy as np

        center = np.frombuffer(raw, dtype="<f4", count=dim, offset=offset).astype(np.float32)
        if not np.all(np.isfinite(center)):
            raise FormatError("centre vector holds non-finite values", rule="center")
        return center

    def check(self, params, dim: int) -> None:
        import numpy as np

        if np.shape(params) != (dim,):
            raise FormatError(f"centre must hold {dim} values", rule="center")

    def forward(self, params):
        import numpy as np

        c = params.astype(np.float64)  # subtracted in binary64 (spec 11)
        return lambda x: x.astype(np.float64) - c

    def inverse(self, params, out_dtype):
        c = params.astype(out_dtype)  # added back in the decoded values' format (spec 12)

        def add(out):
            out += c
        return add


def mean_center(rows):
    """tq's centre (spec section 14): the mean of `rows` -- the vectors of the first chunk --
    summed in binary64 in row order, divided by their count, rounded to float32; zeros when
    there are no rows.  Any vector is a valid centre; this one makes the encoded vectors
    small when the data has a common offset."""
    import numpy as np

    acc = np.zeros(rows.shape[1], np.float64)
    for row in rows:  # once per file, over one chunk: a fixed order on every machine
        acc += row
    if rows.shape[0]:
        acc /= rows.shape[0]
    with np.errstate(over="ignore", invalid="ignore"):
        return acc.astype(np.float32)


class StageTable(Table):
    """The fitted stages, by flag bit and by name, in the order their blocks are stored."""

    @property
    def flags(self) -> int:
        """Every flag bit a stage owns."""
        out = 0
        for s in self:
            out |= s.flag
        return out

    def present(self, header) -> list:
        """(stage, params) of the stages a header holds, in table order."""
        return [(s, p) for s in self if (p := s.params_of(header)) is not None]

    def flagged(self, flags: int) -> list:
        return [s for s in self if flags & s.flag]

    @contextlib.contextmanager
    def registered(self, stage: FittedStage):
        """`stage` in the table for the duration (tests; a new stage is a line below)."""
        if stage.flag in self._by_code or stage.name in self._by_name:
            raise ValueError(f"{self.what} {stage.name!r} / {stage.flag} is defined twice")
        self._by_code[stage.flag] = stage
        self._by_name[stage.name] = stage
        try:
            yield stage
        finally:
            del self._by_code[stage.flag], self._by_name[stage.name]


CENTER = Center()

STAGES = StageTable("fitted stage", "flags", [
    CENTER,
])


def fit_stages(options, first_rows) -> dict:
    """name -> parameters of every stage `options` asks for, fitted from the first block
    (the one place the encoder and eval fit them): each stage, in table order, on the
    rows as the stages before it leave them, as the codec will apply them."""
    wanted = [s for s in STAGES if s.wanted(options)]
    fitted = {}
    for i, s in enumerate(wanted):
        fitted[s.name] = params = s.fit(options, first_rows)
        if i + 1 < len(wanted):
            first_rows = s.forward(params)(first_rows)
    return fitted


def header_fields(fitted: dict) -> dict:
    """Header keywords holding fitted parameters: a stage's own field, or `fitted`."""
    out, extra = {}, {}
    for name, params in fitted.items():
        s = STAGES.by_name(name)
        if s.attr is not None:
            out[s.attr] = params
        else:
            extra[name] = params
    if extra:
        out["fitted"] = extra
    return out
