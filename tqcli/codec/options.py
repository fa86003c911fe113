"""The encoder's options: one frozen object from the command line and the api to the kernels.

    opts = EncodeOptions(bits=3, center=True)             # checked and resolved here
    tqcli.compress(x, **opts.to_kwargs())                 # or compress_to(x, out, opts)
    EncodeOptions.from_config(codec.get_config())         # the zarr / numcodecs codecs

Every rule about a combination of options is written here once, and a refused value
raises OptionError naming the option (`.option`: a field name; CLI_FLAGS gives the
command line's flag for it).  Defaults come from tqcli/limits.py and the tables
(rotations.DEFAULT, codings.DEFAULT); a value is stored resolved (the coding's table name,
the scale rule of the mode, an integer bits when the coding has integer widths), so that
two spellings of one setting compare equal.  A format choice is never named here: the
coding table says which codings take a fractional rate or a target error and the modes
they allow.

This module imports no numpy at load (the command line builds its options at start-up).
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass

from . import codings, rotations
from .. import limits
from ..errors import InputError


class OptionError(InputError, ValueError):
    """An encoder option the encoder refuses; `option` is the field that holds it (one of
    EncodeOptions' fields, or None for a keyword that is not one)."""

    def __init__(self, option: str | None, reason: str):
        super().__init__(reason)
        self.option = option


# the command line's flag for each option (tqcli/cli/ maps OptionError.option to it)
CLI_FLAGS = {"bits": "'-b' / '--bits'", "mode": "--mode", "seed": "--seed",
             "rounds": "--rounds", "scale_rule": "--scale", "scale_dtype": "--scale-dtype",
             "chunk_rows": "--chunk-rows", "rotation": "--rotation", "center": "--center",
             "coding": "--coding", "nmse": "--nmse", "adapt": "--adapt"}

# the keys of a codec configuration (zarr.json, a numcodecs config), in their order;
# nmse is written only when it is set
CONFIG_KEYS = ("bits", "mode", "seed", "rounds", "scale_rule", "scale_dtype", "rotation",
               "coding", "center", "chunk_rows")


@dataclass(frozen=True, eq=False)
class EncodeOptions:
    """The twelve options of tq's encoder, checked and resolved.

    bits: bits per coordinate, an integer 1-8, or any rate 1-8 for a coding with
    fractional rates; mode "mse" or "prod"; seed of the rotation; rounds of the rotation;
    scale_rule "ls", "norm" or "ip" (None: ls for mse, norm for prod); scale_dtype "auto",
    "float32", "float16" or "float64"; chunk_rows (None: the encoder's choice); rotation
    and coding: names of the rotation and coding tables (a coding also by its
    command-line name or alias); center False, True (the mean of the first block) or a
    vector; nmse: a target error instead of bits, for a coding that takes one; adapt
    False, True (the adaptive coding with a basis fitted to the data), "auto" (the encoder
    fits a basis and takes the adaptive coding only where it is predicted to pay, else
    the options as given: codec.adapt_decision) or a fitted Basis
    (tqcli.codec.adaptive_model; files then share it), which selects the adaptive coding
    and makes the centre the basis's mean.
    """

    bits: int | float | None = limits.DEFAULT_BITS
    mode: str = limits.DEFAULT_MODE
    seed: int = limits.DEFAULT_SEED
    rounds: int = limits.DEFAULT_ROUNDS
    scale_rule: str | None = None
    scale_dtype: str = limits.DEFAULT_SCALE_DTYPE
    chunk_rows: int | None = None
    rotation: str = rotations.DEFAULT
    coding: str = codings.DEFAULT
    center: object = False
    nmse: float | None = None
    adapt: object = False

    def __post_init__(self):
        def set_(name, value):  # frozen: the resolved values are set once, here
            object.__setattr__(self, name, value)

        coding = _choice_of(self.coding, "coding", codings.CODINGS)
        set_("adapt", _adapt(self.adapt))
        if self.adapt == "auto" and coding.data_fitted:
            set_("adapt", True)
        if self.adapt == "auto":  # decided by the encoder after fitting (codec.adapt_decision)
            pass
        elif self.adapt is not False or coding.data_fitted:
            coding = _adapt_coding(coding)
            if self.adapt is False:
                set_("adapt", True)
        set_("coding", coding.name)
        _choice(self.mode, "mode", limits.MODES)
        if self.mode not in coding.modes:
            raise OptionError("adapt" if self.adapt is not False else "coding",
                              f"the {coding.cli_name} coding is defined for "
                              f"{' / '.join(coding.modes)} mode only")
        if self.nmse is not None:
            if not coding.target_error:
                other = _first(lambda c: c.target_error)
                raise OptionError("nmse", f"a target error (nmse) needs the {other} coding "
                                          f"(coding={other!r}; on the command line "
                                          f"--coding {other})")
            v = self.nmse
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
                raise OptionError("nmse", f"nmse must be a number between 0 and 1, got {v!r}")
            set_("bits", None)
        else:
            set_("bits", _bits(self.bits, coding))
        set_("seed", _integer(self.seed, "seed", 0, limits.MAX_SEED))
        set_("rounds", _integer(self.rounds, "rounds", limits.MIN_ROUNDS, limits.MAX_ROUNDS))
        if self.scale_rule is None:
            set_("scale_rule", limits.default_scale_rule(self.mode))
        _choice(self.scale_rule, "scale_rule", limits.SCALE_RULES)
        problem = limits.scale_rule_problem(self.mode, self.scale_rule)
        if problem:
            raise OptionError("scale_rule", problem)
        _choice(self.scale_dtype, "scale_dtype", limits.SCALE_DTYPE_CHOICES)
        set_("rotation", _choice_of(self.rotation or rotations.DEFAULT, "rotation",
                                    rotations.ROTATIONS).name)
        if self.chunk_rows is not None:
            rows = _integer(self.chunk_rows, "chunk_rows", limits.MIN_CHUNK_ROWS,
                            limits.MAX_CHUNK_ROWS)
            problem = limits.chunk_rows_problem(rows)
            if problem:
                raise OptionError("chunk_rows", problem)
            set_("chunk_rows", rows)
        set_("center", _center(self.center))
        if self.adapt is not False and self.adapt != "auto":
            if not isinstance(self.center, bool):
                raise OptionError("center", "the adaptive coding's centre is its basis's mean; "
                                            "give no centre vector")
            if self.scale_dtype not in ("auto", "float32"):
                raise OptionError("scale_dtype", "the adaptive coding stores no scale "
                                                 "(its decoded values are float32)")
            set_("center", True if self.adapt is True else self.adapt.mean)

    # ------------------------------------------------------------------ views

    @property
    def payload_coding(self):
        """The coding table's entry."""
        return codings.CODINGS.by_name(self.coding)

    @property
    def centered(self) -> bool:
        return self.center is not False

    def replace(self, **changes) -> "EncodeOptions":
        """A copy with `changes`, checked again (bits go back to the default when nmse is
        cleared and no bits are given)."""
        if changes.get("nmse", self.nmse) is None and self.bits is None \
                and "bits" not in changes:
            changes["bits"] = limits.DEFAULT_BITS
        return dataclasses.replace(self, **changes)

    def to_kwargs(self) -> dict:
        """The options as keywords of tqcli.compress (every field)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    # ------------------------------------------------------------------ codec configurations

    def to_config(self) -> dict:
        """The codec configuration (JSON values): CONFIG_KEYS, nmse and adapt when set.  A
        centre given as a vector has no configuration (OptionError)."""
        if not isinstance(self.center, bool):
            raise OptionError("center", "a codec configuration stores center as true or "
                                        "false, not a vector")
        config = {k: getattr(self, k) for k in CONFIG_KEYS}
        if self.nmse is not None:
            config["nmse"] = self.nmse
        if self.adapt is not False:  # written only when set: older configurations unchanged
            # a Basis object is not JSON: the configuration says true (chunks are adaptive);
            # the codecs keep the object beside it (integrations, basis=)
            config["adapt"] = "auto" if self.adapt == "auto" else True
        return config

    @classmethod
    def from_config(cls, config: dict) -> "EncodeOptions":
        """The options of a codec configuration; None or a missing key is the default.
        OptionError (option None) for a key that is not an option."""
        known = CONFIG_KEYS + ("nmse", "adapt")
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise OptionError(None, f"unknown configuration key(s) {', '.join(unknown)} "
                                    f"(known: {', '.join(known)})")
        center = config.get("center")
        if center is not None and not isinstance(center, bool):
            raise OptionError("center", f"center must be true or false, got {center!r}")
        given = {k: v for k, v in config.items() if v is not None}
        return cls(**given)

    @classmethod
    def from_cli(cls, *, bits=None, nmse=None, **options) -> "EncodeOptions":
        """The options of `tq compress`'s flags: bits None means the default unless nmse
        is given, and both given contradict each other (OptionError naming nmse)."""
        if nmse is not None and bits is not None:
            raise OptionError("nmse", "-b and --nmse contradict each other: give one")
        if bits is None and nmse is None:
            bits = limits.DEFAULT_BITS
        return cls(bits=bits, nmse=nmse, **options)

    @classmethod
    def keywords(cls) -> tuple[str, ...]:
        """The option names (the keywords of compress, compress_to and compress_file)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    # ------------------------------------------------------------------ comparison

    def _key(self) -> tuple:
        c = self.center
        if not isinstance(c, bool):
            c = (c.shape, c.dtype.str, c.tobytes())
        a = self.adapt if isinstance(self.adapt, (bool, str)) else self.adapt.key()
        return tuple(getattr(self, k) for k in self.keywords()
                     if k not in ("center", "adapt")) + (c, a)

    def __eq__(self, other):
        if not isinstance(other, EncodeOptions):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(self._key())


def options_of(options: EncodeOptions | None, **keywords) -> EncodeOptions:
    """`options`, or the EncodeOptions of `keywords` (TypeError for one that is not an
    option); both at once is a TypeError."""
    if options is None:
        return EncodeOptions(**keywords)
    if not isinstance(options, EncodeOptions):
        raise TypeError(f"options must be an EncodeOptions, not {type(options).__name__}")
    if keywords:
        raise TypeError(f"give an EncodeOptions or keywords, not both "
                        f"({', '.join(sorted(keywords))})")
    return options


# ---------------------------------------------------------------------- the rules


def _first(test) -> str:
    return next(c.cli_name for c in codings.CODINGS if test(c))


def _choice(value, option: str, names) -> None:
    if value not in names:
        raise OptionError(option, f"{option} must be one of {', '.join(names)}, got {value!r}")


def _choice_of(value, option: str, table):
    try:
        return table.resolve(value) if hasattr(table, "resolve") else table.by_name(value)
    except (ValueError, TypeError):
        names = getattr(table, "cli_names", table.names)
        raise OptionError(option, f"{option} must be one of {', '.join(names)}, "
                                  f"got {value!r}") from None


def _integer(value, option: str, lo: int, hi: int) -> int:
    try:
        v = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        v = None
    if v is None or not lo <= v <= hi:
        raise OptionError(option, f"{option} must be an integer from {lo} to {hi}, "
                                  f"got {value!r}")
    return int(v)


def _bits(value, coding):
    """bits for `coding`: an integer when it is one, a rate in its range when the coding
    takes fractional rates."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, float) and not isinstance(value, bool):
        if not coding.fractional_rates:
            other = _first(lambda c: c.fractional_rates)
            raise OptionError("bits", f"bits must be an integer from {limits.MIN_BITS} to "
                                      f"{limits.MAX_BITS} with the {coding.cli_name} coding, "
                                      f"got {value!r}: a fractional rate ({value:g} bits) "
                                      f"needs the {other} coding (coding={other!r}; on the "
                                      f"command line --coding {other})")
        if not coding.min_rate <= value <= coding.max_rate:
            raise OptionError("bits", f"bits must be a rate from {coding.min_rate:g} to "
                                      f"{coding.max_rate:g} with the {coding.cli_name} "
                                      f"coding, got {value!r}")
        return value
    return _integer(value, "bits", limits.MIN_BITS, limits.MAX_BITS)


def _adapt(value):
    """False, True, "auto" or a fitted Basis (tqcli.codec.adaptive_model.Basis)."""
    if value is None or value is False or value is True:
        return bool(value)
    if isinstance(value, str) and value in ("auto", "on", "off"):
        return {"auto": "auto", "on": True, "off": False}[value]
    if type(value).__name__ == "Basis" and hasattr(value, "components"):
        return value
    raise OptionError("adapt", f"adapt must be true, false, 'auto' or a fitted basis "
                               f"(tqcli.fit_basis), got {value!r}"[:200])


def _adapt_coding(coding):
    """The coding of adapt=True: the table's data-fitted entry (OptionError if `coding`,
    given, is another one that is not the default)."""
    fitted = next(c for c in codings.CODINGS if c.data_fitted)
    if coding is not fitted and coding.name != codings.DEFAULT:
        raise OptionError("coding", f"adapt selects the {fitted.cli_name} coding, not "
                                    f"{coding.cli_name}")
    return fitted


def _center(value):
    """False, True, or a read-only copy of the vector given (its shape and values are
    checked against the data's when the header is made: format.header.make_header)."""
    if value is None or value is False or value is True:
        return bool(value)
    import numpy as np

    if isinstance(value, np.bool_):
        return bool(value)
    c = np.array(value)
    c.setflags(write=False)
    return c


def option_keywords(fn):
    """Give `fn(..., **keywords)` the signature that lists EncodeOptions' fields as
    keyword-only parameters with their defaults (help(), inspect and IDEs see the
    documented keywords; the list is written once, as the dataclass)."""
    import inspect

    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    taken = {p.name for p in params}
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                 annotation=f.type)
               for f in dataclasses.fields(EncodeOptions) if f.name not in taken]
    fn.__signature__ = sig.replace(parameters=params)
    return fn
