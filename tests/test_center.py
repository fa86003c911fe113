"""Mean-centring (--center, center=True): a centre stored once in the header (flags bit 8,
spec 3.4), subtracted in binary64 before encoding and added back after decoding."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tqcli
from cliutil import assert_error, npy_bytes, ok, run
from conftest import gaussian, nmse
from fuzzkit import patch_header
from tqcli.format.header import _FIXED, CRC, crc32


def offset_rows(n: int = 600, d: int = 96, offset: float = 3.0, seed: int = 0) -> np.ndarray:
    return (gaussian(n, d, seed=seed) + offset * np.linspace(0.5, 1.5, d)).astype(np.float32)


def test_centre_is_the_first_chunks_mean_and_cuts_the_error():
    x = offset_rows()
    plain = tqcli.compress(x, bits=3, chunk_rows=256)
    centred = tqcli.compress(x, bits=3, chunk_rows=256, center=True)
    h = tqcli.read_header(centred)
    assert h.centered and not tqcli.read_header(plain).centered
    assert h.center.dtype == np.float32 and h.center.shape == (96,)
    # spec 14, computed here rather than by stages.mean_center (the function under test): the
    # first chunk's values summed in binary64 in vector order, divided by the count, to f32
    sums = [0.0] * 96
    for row in x[:256]:
        for i, v in enumerate(row.tolist()):
            sums[i] += v
    want = np.array([s / 256 for s in sums], np.float64).astype(np.float32)
    assert h.center.tobytes() == want.tobytes()
    np.testing.assert_allclose(h.center, x[:256].astype(np.float64).mean(axis=0), rtol=1e-6)
    assert len(centred) == len(plain) + 4 * 96  # the centre is the only extra byte
    e_plain, e_centred = nmse(x, tqcli.decompress(plain)), nmse(x, tqcli.decompress(centred))
    # the offset holds most of the energy: the centred error is a small fraction
    assert e_centred < 0.2 * e_plain, (e_plain, e_centred)


def test_rows_equal_to_the_centre_decode_to_it_exactly():
    c = np.linspace(-2.0, 2.0, 40).astype(np.float32)
    x = np.vstack([c, c + 1.0, c]).astype(np.float32)
    y = tqcli.decompress(tqcli.compress(x, center=c))
    assert np.array_equal(y[0], c) and np.array_equal(y[2], c)
    assert nmse(x[1:2] - c, y[1:2] - c) < 0.02


@pytest.mark.parametrize("dtype,mode,scale_dtype", [
    ("float16", "mse", "auto"), ("float64", "mse", "float64"), ("float32", "prod", "auto"),
    ("float64", "prod", "float32")])
def test_centred_round_trips_for_every_source_dtype_and_mode(dtype, mode, scale_dtype):
    x = offset_rows(200, 64, offset=-5.0).astype(dtype)
    blob = tqcli.compress(x, bits=4, mode=mode, center=True, scale_dtype=scale_dtype)
    y = tqcli.decompress(blob)
    assert y.dtype == x.dtype and y.shape == x.shape
    plain = tqcli.decompress(tqcli.compress(x, bits=4, mode=mode, scale_dtype=scale_dtype))
    assert nmse(x, y) < 0.5 * nmse(x, plain)


def test_partial_reads_of_a_centred_file_match_the_whole():
    x = offset_rows(100, 24)
    blob = tqcli.compress(x, center=True, chunk_rows=16)
    whole = tqcli.decompress(blob)
    with tqcli.open(blob) as f:
        assert np.array_equal(f.read(slice(37, 70)), whole[37:70])
        assert np.array_equal(f.chunk(3), whole[48:64])


def test_empty_input_gets_a_zero_centre():
    blob = tqcli.compress(np.zeros((0, 16), np.float32), center=True)
    h = tqcli.read_header(blob)
    assert h.centered and not h.center.any() and tqcli.decompress(blob).shape == (0, 16)


def test_bad_centres_are_refused():
    x = offset_rows(8, 16)
    for centre, words in ((np.zeros(15), "16 numbers"), (np.full(16, np.nan), "not finite"),
                          (np.full(16, 1e39), "not finite"), (np.array(["a"] * 16), "numbers")):
        with pytest.raises(tqcli.TqError, match=words):
            tqcli.compress(x, center=centre)
    bad = x.copy()
    bad[5, 3] = np.nan
    with pytest.raises(tqcli.TqError, match="row 5: contains NaN"):
        tqcli.compress(bad, center=True)


def test_reader_refuses_a_non_finite_centre_under_a_valid_crc():
    blob = bytearray(tqcli.compress(offset_rows(8, 16), bits=2, center=True))
    h = tqcli.read_header(bytes(blob))
    at = _FIXED.size + 8 * len(h.shape) + 4 * h.codebook_size + 4 * 7  # centre value 7
    blob[at:at + 4] = np.float32(np.inf).tobytes()
    blob[h.header_size - 4:h.header_size] = CRC.pack(crc32(bytes(blob[:h.header_size - 4])))
    with pytest.raises(tqcli.FormatError) as e:
        tqcli.decompress(bytes(blob))
    assert e.value.rule == "center"
    # the flag off with the centre's bytes still there: the size no longer fits the fields
    plain = patch_header(tqcli.compress(offset_rows(8, 16), bits=2, center=True), True, flags=0)
    with pytest.raises(tqcli.FormatError) as e:
        tqcli.decompress(plain)
    assert e.value.rule == "header-size"


def test_cli_center_from_a_file_and_from_a_pipe_are_the_same_bytes(tmp_path):
    x = offset_rows(3000, 48)
    src = tmp_path / "x.npy"
    src.write_bytes(npy_bytes(x))
    ok(run(["compress", src, "--center", "-b", "3", "-o", tmp_path / "a.tqz"], tmp_path))
    piped = ok(run(["compress", "-", "--center", "-b", "3"], tmp_path, input=src.read_bytes()))
    assert (tmp_path / "a.tqz").read_bytes() == piped.stdout
    report = json.loads(ok(run(["inspect", tmp_path / "a.tqz", "--json"], tmp_path)).stdout)
    assert report["centered"] is True
    text = ok(run(["inspect", tmp_path / "a.tqz"], tmp_path)).stdout.decode()
    assert "mean vector of 48 float32 values" in text
    ok(run(["decompress", tmp_path / "a.tqz", "-o", tmp_path / "back.npy"], tmp_path))
    assert nmse(x, np.load(tmp_path / "back.npy")) < 0.01


def test_cli_center_refuses_nan_in_the_first_chunk(tmp_path):
    x = offset_rows(20, 8)
    x[2, 0] = np.nan
    (tmp_path / "x.npy").write_bytes(npy_bytes(x))
    assert_error(run(["compress", "x.npy", "--center"], tmp_path), "x.npy", "row 2", "NaN")
    assert not (tmp_path / "x.npy.tqz").exists()


def test_eval_center_shows_both_rows(tmp_path):
    (tmp_path / "x.npy").write_bytes(npy_bytes(offset_rows(400, 32)))
    out = ok(run(["eval", "x.npy", "-b", "2,3", "--center", "--json", "--queries", "50",
                  "--coding", "fixed"], tmp_path)).stdout
    rows = json.loads(out)["results"]
    assert [(r["bits"], r["centered"]) for r in rows] == [(2, False), (2, True), (3, False),
                                                          (3, True)]
    for plain, centred in (rows[0:2], rows[2:4]):
        assert centred["nmse"] < 0.5 * plain["nmse"]
    table = ok(run(["eval", "x.npy", "-b", "2", "--center", "--queries", "50"],
                   tmp_path)).stdout.decode()
    assert "centre" in table and "mean" in table


def test_sentence_embeddings_gain_what_their_mean_holds(minilm_sentences):
    """The mean of the shared MiniLM embeddings holds ~9% of their energy; centring takes
    about that off the error at every width (measured: -8.9% to -9.1%)."""
    x = minilm_sentences
    mean_share = float((x.mean(axis=0) ** 2).sum() / (x * x).sum(axis=1).mean())
    assert 0.07 < mean_share < 0.11
    for bits in (2, 3, 4):
        plain = nmse(x, tqcli.decompress(tqcli.compress(x, bits=bits)))
        centred = nmse(x, tqcli.decompress(tqcli.compress(x, bits=bits, center=True)))
        assert centred < (1.0 - 0.8 * mean_share) * plain, (bits, plain, centred)
