"""Hostile adaptive-coded containers (spec 21): every truncation, bit flip and inserted byte
of a small file, every byte of every class stream changed and every stream length moved with
the checksums recomputed (so that only the decoder's own checks of 19.3 / 21.4 can catch
them), and bytes of the coding's header block changed with the header CRC recomputed.
Each case must be refused with a FormatError, within the fuzz budget (1 s, 100 MB), and
inspect --verify must agree.  Counted in the summary's "adaptive" family."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from fuzzkit import check_library_failure, pipe_stream, verify_disagrees
from test_fuzz import _entropy_layout, _recrc

import tqcli


def _form(scaled=None) -> bytes:
    from tqcli.codec.adaptive_model import fit_basis

    rng = np.random.default_rng(8)
    x = (rng.standard_normal((40, 12)) * np.exp(-0.3 * np.arange(12))).astype(np.float32)
    if scaled:  # rows of unequal norms, a float16 scale each after the streams (21.4)
        x *= np.exp(rng.uniform(-2, 2, (40, 1))).astype(np.float32)
    adapt = fit_basis(x, scaled=scaled) if scaled else True
    return tqcli.compress(x, bits=3, adapt=adapt, chunk_rows=16)


ADAPTIVE_FORM = _form()
SCALED_FORM = _form(scaled=True)


def _refuse_all(cases, rules=None, verify=True):
    count = 0
    for what, data in cases:
        for via, src in (("bytes", lambda: data), ("pipe", lambda: pipe_stream(data))):
            problems, exc = check_library_failure(lambda: tqcli.decompress(src()),
                                                  f"{what} via {via}")
            assert not problems, (what, via, problems)
            if rules is not None:
                assert exc.rule in rules, (what, exc.rule, str(exc))
            if verify and via == "bytes":
                assert not verify_disagrees(data, exc), (what, verify_disagrees(data, exc))
            count += 1
    return count


@pytest.mark.parametrize("scales", [0, 1])
def test_adaptive_form_every_truncation_extension_and_bit_flip_is_refused(scales):
    blob = SCALED_FORM if scales else ADAPTIVE_FORM
    h = tqcli.read_header(blob)
    assert h.coding == "adaptive" and h.n_chunks == 3 and h.model.scales == scales
    cases = [("prefix", blob[:k]) for k in range(0, len(blob), 3)]
    for pos in range(len(blob)):
        b = bytearray(blob)
        b[pos] ^= 1 << (pos % 8)
        cases.append((f"flip of byte {pos}", bytes(b)))
        if pos % 5 == 0:
            cases.append((f"byte inserted at {pos}", blob[:pos] + b"\0" + blob[pos:]))
    assert _refuse_all(cases, verify=False) > 1000


def test_adaptive_streams_damaged_under_recomputed_checksums_are_refused():
    blob = ADAPTIVE_FORM
    h = tqcli.read_header(blob)
    c = h.model.n_classes
    rules = {"adaptive-stream", "index-layout", "length", "trailing", "footer-layout",
             "chunk-crc"}
    cases = []
    for i, (off, n) in enumerate(_entropy_layout(blob)):
        lens = np.frombuffer(blob, "<u4", count=c, offset=off)
        for pos in range(off + 4 * c, off + 4 * c + int(lens.sum()), 2):
            b = bytearray(blob)
            b[pos] ^= 0x80
            cases.append((f"chunk {i} stream byte {pos}", _recrc(b)))
        for g in range(c):
            for delta in (4, -4, 1):
                b = bytearray(blob)
                b[off + 4 * g:off + 4 * g + 4] = (int(lens[g]) + delta).to_bytes(4, "little")
                cases.append((f"chunk {i} length {g} {delta:+d}", _recrc(b)))
    assert _refuse_all(cases, rules) > 200


def test_adaptive_header_block_changed_under_a_recomputed_crc_is_refused_or_decodes():
    """Every byte of the coding's block but the basis values changed (+1) with the header
    CRC recomputed: refused by a rule, or (a codebook value, an informative field, a
    frequency moved between symbols) a valid file that decodes to finite values."""
    from tqcli.format.header import crc32

    blob = ADAPTIVE_FORM
    h = tqcli.read_header(blob)
    start = 48 + 8 * len(h.shape)
    m = h.model
    end = start + 32 + 2 * m.n_classes + 6 * sum(len(b) for b in m.codebooks) + m.k
    refused = decoded = 0
    for pos in range(start, end):
        b = bytearray(blob)
        b[pos] = (b[pos] + 1) % 256
        size = h.header_size
        struct.pack_into("<I", b, size - 4, crc32(bytes(b[:size - 4])))
        try:
            y = tqcli.decompress(bytes(b))
        except tqcli.FormatError:
            refused += 1
        else:  # any other exception fails the test
            decoded += 1
            assert np.isfinite(y).all() and y.shape == (40, 12), pos
    assert refused > 50
