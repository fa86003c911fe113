"""Every entry of every format table, through the same checks.

The tests here parametrise over tqcli.codec.rotations.ROTATIONS, tqcli.codec.codings.CODINGS and
tqcli.format.layouts.LAYOUTS, so a new rotation kind or payload coding is tested by adding its
table line: its kernels against its numpy reference bit for bit, its sizes against the bytes
it writes, round trips near the optimum, and a reader that refuses every code no entry
implements.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from conftest import nmse, unit_rows
from fuzzkit import patch_header

import tqcli
from tqcli.codec import codebook
from tqcli.codec.adaptive_model import fit_basis
from tqcli import kernels
from tqcli.format import layouts
from tqcli.codec.state import Codec
from tqcli.format.header import make_header
from tqcli.codec.codings import CODINGS
from tqcli.format.header import Header
from tqcli.codec.rotations import ROTATIONS

KINDS = [k.name for k in ROTATIONS]
CODES = [c.name for c in CODINGS]
DIMS = (2, 3, 8, 97, 130, 256)


# ---------------------------------------------------------------------------- rotation kinds


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", DIMS)
def test_plan_is_what_the_kernels_take(kind, d):
    entry = ROTATIONS.by_name(kind)
    assert ROTATIONS.by_code(entry.code) is entry
    plan = entry.plan(d, 11, 3)
    kernels.check_plan(plan.kernel_args, d)
    assert plan.blocks.shape[1] <= entry.max_blocks(d)
    assert plan.table_bytes <= entry.plan_bytes(d, 3)
    assert entry.plan(d, 11, 3) is plan  # built once
    again = entry.build(d, 11, 3)
    assert all(np.array_equal(a, b) for a, b in zip(plan.kernel_args, again.kernel_args))
    other = entry.build(d, 12, 3)
    if d > 2:
        assert not all(np.array_equal(a, b) for a, b in zip(plan.kernel_args[:2],
                                                            other.kernel_args[:2]))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", DIMS)
def test_rotation_kernel_matches_reference_and_is_orthogonal(kind, d):
    entry = ROTATIONS.by_name(kind)
    plan = entry.plan(d, 5, 2)
    x = np.random.default_rng(d).standard_normal((19, d)).astype(np.float32)
    for inverse in (False, True):
        got = entry.rotate(plan, x, inverse)
        want = entry.reference_rotate(plan, x, inverse)
        assert got.tobytes() == want.tobytes(), inverse
    m = plan.matrix()
    np.testing.assert_allclose(m @ m.T, np.eye(d), atol=1e-5)
    back = entry.rotate(plan, entry.rotate(plan, x), inverse=True)
    np.testing.assert_allclose(back, x, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bits", [2, 4])
def test_round_trip_through_each_kind_reaches_the_optimum(kind, bits):
    d = 200
    x = unit_rows(np.random.default_rng(bits), 4000, d)
    blob = tqcli.compress(x, bits=bits, rotation=kind, scale_rule="norm")
    assert tqcli.read_header(blob).rotation == kind
    ratio = nmse(x, tqcli.decompress(blob)) / codebook.expected_distortion(d, bits)
    assert 0.97 < ratio < 1.03, ratio


# ---------------------------------------------------------------------------- payload codings


CASES = {"packed": [("mse", 1, "float32"), ("mse", 3, "float16"), ("mse", 4, "float32"),
                    ("mse", 8, "float32"), ("prod", 1, "float32"), ("prod", 3, "float16")],
         # the entropy coding is mse-only, at any rate from 1 to 8
         "entropy": [("mse", 1, "float32"), ("mse", 2.5, "float16"), ("mse", 4, "float32"),
                     ("mse", 8, "float32"), ("mse", 5.3, "float64")],
         # the adaptive coding stores no scale: its header says float32
         "adaptive": [("mse", 1, "float32"), ("mse", 2.5, "float32"), ("mse", 4, "float32"),
                      ("mse", 8, "float32")]}
# a coding added to the table gets the generic cases of the modes it allows (and a fractional
# rate if it takes one) without a line here; a line here adds its own
GENERIC = [(1, "float32"), (3, "float16"), (4, "float32"), (8, "float64")]


def cases_of(name: str) -> list[tuple]:
    if name in CASES:
        return CASES[name]
    entry = CODINGS.by_name(name)
    out = [(m, b, dt) for m in entry.modes for b, dt in GENERIC]
    return out + ([(entry.modes[0], 2.5, "float32")] if entry.fractional_rates else [])


CODING_CASES = [(c,) + case for c in CODES for case in cases_of(c)]


@pytest.mark.parametrize("coding,mode,bits,scale_dtype", CODING_CASES)
def test_coding_matches_its_reference_and_its_sizes(coding, mode, bits, scale_dtype):
    entry = CODINGS.by_name(coding)
    assert CODINGS.by_code(entry.code) is entry
    d, rows = 45, 24
    x = np.random.default_rng(int(bits)).standard_normal((rows, d)).astype(np.float32)
    x[3] = 0
    # a coding fitted to the data is given the basis compress fits (adaptive_model)
    fit = {"adapt": fit_basis(x)} if entry.data_fitted else {}
    header = make_header(d, bits, mode=mode, coding=coding, scale_dtype=scale_dtype,
                         shape=x.shape, chunk_rows=rows, **fit)
    codec = Codec(header)
    payload = codec.encode(x)
    assert payload == entry.reference_encode(codec, x)
    if entry.fixed_size:
        assert len(payload) == entry.payload_size(header, rows) == sum(
            entry.section_sizes(header, rows))
    else:  # the length follows from the payload's first bytes, within the coding's bounds
        prefix = payload[:entry.prefix_size(header, rows)]
        assert entry.payload_size_from_prefix(header, rows, prefix, 0) == len(payload)
        assert entry.min_payload_size(header, rows) <= len(payload)
    assert entry.max_payload_size(header, rows) >= len(payload)
    got = codec.decode(payload, rows)
    if scale_dtype != "float64":  # the numpy reference decodes in binary32
        assert got.tobytes() == entry.reference_decode(codec, payload, rows).tobytes()
    blob = tqcli.compress(x, bits=bits, mode=mode, coding=coding, scale_dtype=scale_dtype,
                          chunk_rows=8, **fit)
    h = tqcli.read_header(blob)
    assert h.coding == coding
    with tqcli.open(blob) as f:
        assert f.file_size == len(blob)
    wide = "float64" if scale_dtype == "float64" else None  # decoded in binary64 (spec 12)
    np.testing.assert_array_equal(tqcli.decompress(blob, dtype=wide), got)


# ---------------------------------------------------------------------------- the reader


def _refusal(blob: bytes) -> str:
    with pytest.raises(tqcli.FormatError) as e:
        tqcli.decompress(blob)
    return e.value.rule


def test_reader_refuses_every_code_no_table_implements():
    blob = tqcli.compress(np.ones((16, 8), np.float32), bits=2, chunk_rows=8)
    for code in range(256):
        data = patch_header(blob, True, rotation=code)
        if code in ROTATIONS.codes:
            tqcli.decompress(data)  # an implemented kind reads (other values, same layout)
        else:
            assert _refusal(data) == "rotation", code
    for code in range(256):
        data = patch_header(blob, True, flags=code)
        if code == 0:
            assert Header.read_from(io.BytesIO(data).read).coding == "packed"
        elif code in CODINGS.codes:  # another coding's header block, which these bytes are not
            assert _refusal(data) in ("header-size", "entropy-model"), code
        else:
            assert _refusal(data) == "coding", code
    for bit in range(9, 15):  # bits 9-14 mean nothing yet
        assert _refusal(patch_header(blob, True, flags=1 << bit)) == "flags"
    # bit 15 alone makes it a collection header (spec 18), whose JSON these bytes are not
    assert _refusal(patch_header(blob, True, flags=1 << 15)) == "collection-header"
    assert _refusal(patch_header(blob, True, flags=(1 << 15) | 1)) == "flags"
    # bit 8 says a centre follows the codebook: the same header without one is too short
    assert _refusal(patch_header(blob, True, flags=0x0100)) == "header-size"


def test_unknown_names_are_refused_by_the_library():
    x = np.ones((8, 8), np.float32)
    for option in ({"rotation": "nope"}, {"coding": "nope"}):
        with pytest.raises(tqcli.InputError, match="nope"):
            tqcli.compress(x, **option)


def test_every_layout_claims_its_own_files_and_no_other():
    blob = tqcli.compress(np.ones((8, 8), np.float32), bits=2)
    for layout in layouts.LAYOUTS:
        assert layout.matches(blob[:layouts.PREFIX]) == (layout is layouts.ARRAY)
        assert not layout.matches(b"\x89PNG\r\n\x1a\n" + bytes(8))
    reader = layouts.open_reader(io.BytesIO(blob), len(blob))
    assert reader.header == tqcli.read_header(blob)
    wrong = blob[:8] + struct.pack("<H", 9) + blob[10:]
    with pytest.raises(tqcli.FormatError) as e:
        layouts.open_reader(io.BytesIO(wrong), len(wrong))
    assert e.value.rule == "version"
