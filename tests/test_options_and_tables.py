"""One options object, format choices named in their tables, fitted stages as table entries
(issue 21 items 3, 4, 5).

* EncodeOptions refuses every bad value with an OptionError naming the option, and round
  trips through a codec configuration;
* no module of tqcli outside codings/ names the entropy coding (the grep rule);
* a toy fitted stage registered here is written to the header and read back, and applied
  by the codec, through the same path as the centre, without touching container.py.
"""

from __future__ import annotations

import dataclasses
import io
import pathlib
import re

import numpy as np
import pytest

import tqcli
from tqcli import limits
from tqcli.codec import stages
from tqcli.codec.state import Codec
from tqcli.format.header import make_header
from tqcli.codec.codings import CODINGS
from tqcli.format.header import Header
from tqcli.errors import FormatError, InputError
from tqcli.codec.options import CLI_FLAGS, CONFIG_KEYS, EncodeOptions, OptionError

# ---------------------------------------------------------------------------- options

BAD = [
    ("bits", dict(bits=9)),
    ("bits", dict(bits=0)),
    ("bits", dict(bits=2.5)),                       # fractional with the fixed coding
    ("bits", dict(bits=9.5, coding="entropy")),
    ("bits", dict(bits="4")),
    ("mode", dict(mode="fast")),
    ("seed", dict(seed=-1)),
    ("seed", dict(seed=1 << 64)),
    ("rounds", dict(rounds=0)),
    ("rounds", dict(rounds=limits.MAX_ROUNDS + 1)),
    ("scale_rule", dict(scale_rule="max")),
    ("scale_rule", dict(mode="prod", scale_rule="ls")),
    ("scale_dtype", dict(scale_dtype="int8")),
    ("chunk_rows", dict(chunk_rows=12)),
    ("chunk_rows", dict(chunk_rows=4)),
    ("rotation", dict(rotation="fft")),
    ("coding", dict(coding="zstd")),
    ("coding", dict(coding="entropy", mode="prod")),
    ("nmse", dict(nmse=0.01)),                      # a target error with the fixed coding
    ("nmse", dict(nmse=1.5, coding="entropy")),
    ("nmse", dict(nmse=True, coding="entropy")),
]


@pytest.mark.parametrize("option,kw", BAD, ids=[f"{o}-{i}" for i, (o, _) in enumerate(BAD)])
def test_each_bad_value_names_its_option(option, kw):
    with pytest.raises(OptionError) as e:
        EncodeOptions(**kw)
    assert e.value.option == option
    assert option in CLI_FLAGS  # the command line has a flag to name
    # a ValueError and an InputError: usage error for the CLI, TqError for the library
    assert isinstance(e.value, ValueError) and isinstance(e.value, InputError)
    # the api verbs raise the same error
    with pytest.raises(OptionError) as e2:
        tqcli.compress(np.ones((8, 16), np.float32), **kw)
    assert e2.value.option == option


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError):
        EncodeOptions(bitz=4)
    with pytest.raises(TypeError):
        tqcli.compress(np.ones((8, 16), np.float32), bitz=4)
    with pytest.raises(TypeError):
        tqcli.compress(np.ones((8, 16), np.float32), EncodeOptions(), bits=3)


def test_defaults_come_from_limits_and_tables():
    o = EncodeOptions()
    assert (o.bits, o.mode, o.seed, o.rounds, o.scale_dtype) == (
        limits.DEFAULT_BITS, limits.DEFAULT_MODE, limits.DEFAULT_SEED, limits.DEFAULT_ROUNDS,
        limits.DEFAULT_SCALE_DTYPE)
    assert o.coding == CODINGS.default.name and o.scale_rule == "ls"
    assert EncodeOptions(mode="prod").scale_rule == "norm"
    assert len(dataclasses.fields(EncodeOptions)) == 12


def test_spellings_of_one_setting_compare_equal_and_replace_rechecks():
    assert EncodeOptions(coding="fixed", bits=4.0) == EncodeOptions(coding="packed", bits=4)
    assert EncodeOptions(scale_rule="ls") == EncodeOptions()
    o = EncodeOptions(bits=2.5, coding="entropy")
    assert o.replace(bits=3).bits == 3
    with pytest.raises(OptionError) as e:
        o.replace(coding="fixed")  # 2.5 bits no longer allowed
    assert e.value.option == "bits"
    t = EncodeOptions(nmse=0.01, coding="entropy")
    assert t.bits is None and t.replace(nmse=None).bits == limits.DEFAULT_BITS
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.bits = 3


@pytest.mark.parametrize("config", [
    {},
    {"bits": 2.5, "coding": "entropy", "center": True, "chunk_rows": 64, "seed": 9},
    {"bits": 3, "mode": "prod", "rounds": 1, "scale_dtype": "float16",
     "rotation": "hadamard2"},
    {"nmse": 0.02, "coding": "entropy"},
])
def test_config_round_trip(config):
    o = EncodeOptions.from_config(config)
    c = o.to_config()
    assert list(c)[:len(CONFIG_KEYS)] == list(CONFIG_KEYS)
    assert EncodeOptions.from_config(c) == o
    assert EncodeOptions.from_config(c).to_config() == c
    assert ("nmse" in c) == ("nmse" in config)


def test_config_refuses_unknown_keys_and_vector_centres():
    with pytest.raises(OptionError, match="unknown configuration key"):
        EncodeOptions.from_config({"bitz": 4})
    with pytest.raises(OptionError) as e:
        EncodeOptions(center=np.zeros(8)).to_config()
    assert e.value.option == "center"


def test_from_cli():
    assert EncodeOptions.from_cli(coding="fixed").bits == limits.DEFAULT_BITS
    assert EncodeOptions.from_cli(nmse=0.01, coding="entropy").bits is None
    with pytest.raises(OptionError) as e:
        EncodeOptions.from_cli(bits=3, nmse=0.01, coding="entropy")
    assert e.value.option == "nmse"


def test_options_object_and_keywords_write_the_same_bytes():
    x = np.random.default_rng(1).standard_normal((100, 32)).astype(np.float32) + 1
    kw = dict(bits=2.5, coding="entropy", center=True, seed=5)
    assert tqcli.compress(x, EncodeOptions(**kw)) == tqcli.compress(x, **kw)
    buf = io.BytesIO()
    tqcli.compress_to(x, buf, EncodeOptions(**kw))
    assert buf.getvalue() == tqcli.compress(x, **kw)


# ---------------------------------------------------------------------------- the coding table


def test_coding_table_names_and_capabilities():
    assert CODINGS.cli_names == ("fixed", "entropy", "adaptive")
    assert CODINGS.resolve("fixed") is CODINGS.resolve("packed") is CODINGS.default
    ent = CODINGS.resolve("entropy")
    assert ent.fractional_rates and ent.target_error and not ent.rows_in_place
    assert ent.modes == ("mse",)
    assert not CODINGS.default.fractional_rates and CODINGS.default.rows_in_place
    adp = CODINGS.resolve("adaptive")
    assert adp.data_fitted and adp.target_error and not adp.rows_in_place
    assert [c.name for c in CODINGS if c.data_fitted] == ["adaptive"]
    with pytest.raises(ValueError, match="fixed, entropy, adaptive"):
        CODINGS.resolve("zstd")


TQCLI = pathlib.Path(tqcli.__file__).parent


def test_no_module_outside_codings_names_the_entropy_coding():
    found = []
    for path in sorted(TQCLI.rglob("*.py")):
        rel = path.relative_to(TQCLI)
        if rel.parts[:2] == ("codec", "codings"):  # the codings' own modules
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"""["']entropy["']""", line):
                found.append(f"{rel}:{i}: {line.strip()}")
    assert not found, "\n".join(found)


# ---------------------------------------------------------------------------- fitted stages


class CoordinateScale(stages.FittedStage):
    """A toy stage: divide each coordinate by its largest magnitude in the first block
    (d float32 values in its header block, flag bit 9)."""

    name = "coordinate_scale"
    flag = 0x0200
    attr = None  # stored in Header.fitted

    def wanted(self, options):
        return True

    def fit(self, options, first_rows):
        m = np.abs(first_rows).max(axis=0) if len(first_rows) else np.ones(first_rows.shape[1])
        return np.where(m > 0, m, 1).astype(np.float32)

    def block_size(self, dim):
        return 4 * dim

    def max_block_size(self):
        return 4 * limits.MAX_DIM

    def header_block(self, params, dim):
        return np.asarray(params, "<f4").tobytes()

    def parse(self, raw, offset, dim):
        v = np.frombuffer(raw, "<f4", count=dim, offset=offset).astype(np.float32)
        if not np.all(np.isfinite(v) & (v > 0)):
            raise FormatError("coordinate scales must be positive", rule="coordinate-scale")
        return v

    def forward(self, params):
        s = params.astype(np.float64)
        return lambda x: x.astype(np.float64) / s

    def inverse(self, params, out_dtype):
        s = params.astype(out_dtype)

        def undo(out):
            out *= s
        return undo


def test_the_centre_is_the_one_stage_and_owns_flag_bit_8():
    assert [s.name for s in stages.STAGES] == ["center"]
    assert stages.CENTER.flag == 0x0100


def test_a_toy_stage_is_written_read_and_applied_through_the_table():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((64, 16)) * np.linspace(0.1, 100, 16)).astype(np.float32)
    plain = tqcli.compress(x, bits=4, center=True)
    toy = CoordinateScale()
    with stages.STAGES.registered(toy):
        blob = tqcli.compress(x, bits=4, center=True)
        h = tqcli.read_header(blob)
        flags = int.from_bytes(blob[10:12], "little")
        assert flags & 0x0300 == 0x0300            # both stages announced
        assert h.header_size == tqcli.read_header(plain).header_size + 4 * 16
        np.testing.assert_array_equal(h.fitted["coordinate_scale"],
                                      toy.fit(None, x - h.center))
        y = tqcli.decompress(blob)
        err = np.abs(y - x).max(axis=0) / np.abs(x).max(axis=0)
        assert err.max() < 0.5
        # a header rebuilt from the parsed one writes the same bytes
        assert Header.read_from(io.BytesIO(blob).read).to_bytes() == h.to_bytes()
    # without the stage in the table its flag bit is unknown to a reader
    with pytest.raises(FormatError, match="flags"):
        tqcli.read_header(blob)
    assert tqcli.compress(x, bits=4, center=True) == plain


def test_centre_is_fitted_once_by_the_shared_function():
    x = np.random.default_rng(2).standard_normal((40, 8)).astype(np.float32) + 3
    fitted = stages.fit_stages(EncodeOptions(center=True), x)
    np.testing.assert_array_equal(fitted["center"], stages.mean_center(x))
    h = make_header(8, EncodeOptions(center=True), shape=x.shape, fitted=fitted)
    assert h.centered and Codec(h).decode(Codec(h).encode(x), 40).shape == (40, 8)
    given = np.arange(8, dtype=np.float32)
    assert stages.fit_stages(EncodeOptions(center=given), x)["center"] is not None
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match="row 3"):
        stages.fit_stages(EncodeOptions(center=True), bad)
