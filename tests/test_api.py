"""The library's streaming and file API: tqcli.open, row selections, verify, compress_to,
compress_file / decompress_file, the float64 restart, and compress's explicit keywords."""

from __future__ import annotations

import io

import numpy as np
import pytest

import tqcli
from tqcli import arrayio
from tqcli.cli import parse_rows


def gaussian(n, d, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


@pytest.fixture(scope="module")
def x():
    return gaussian(203, 24, seed=1)


@pytest.fixture(scope="module")
def blob(x):
    return tqcli.compress(x, bits=3, chunk_rows=16)


# ------------------------------------------------------------------ tqcli.open


def test_open_is_a_context_manager_that_closes_its_file(tmp_path, blob, x):
    p = tmp_path / "a.tqz"
    p.write_bytes(blob)
    with tqcli.open(p) as f:
        own = f._own
        assert f.header.n_vectors == 203 and f.header.dim == 24
        assert f.seekable and f.n_chunks == 13
        first = f.chunk(0)
        assert first.shape == (16, 24) and first.dtype == np.float32
        last = f.chunk(12)
        assert last.shape == (203 - 12 * 16, 24)
        full = f.read()
        assert np.array_equal(full[:16], first) and np.array_equal(full[192:], last)
        assert not own.closed
    assert own.closed
    # also when the block ends with an error
    with pytest.raises(RuntimeError):
        with tqcli.open(str(p)) as f:
            own = f._own
            raise RuntimeError("boom")
    assert own.closed
    with pytest.raises(IndexError):
        with tqcli.open(blob) as f:
            f.chunk(13)


def test_open_leaves_a_callers_stream_open(blob):
    stream = io.BytesIO(blob)
    with tqcli.open(stream) as f:
        assert f.seekable
        f.read()
    assert not stream.closed


def test_a_bad_file_is_closed_when_open_fails(tmp_path, monkeypatch):
    p = tmp_path / "bad.tqz"
    p.write_bytes(b"not a container at all, not at all, not at all, no")
    opened = []
    real_open = io.open

    def spy(*a, **k):
        f = real_open(*a, **k)
        opened.append(f)
        return f

    monkeypatch.setattr("tqcli.format.layouts.io.open", spy)  # where TqFile opens a path
    with pytest.raises(tqcli.FormatError):
        tqcli.open(p)
    assert opened and all(f.closed for f in opened)


def test_row_selections_as_slice_tuple_and_negative(blob, x):
    full = tqcli.decompress(blob)
    n = x.shape[0]
    with tqcli.open(blob) as f:
        for rows, ref in ((slice(10, 50), full[10:50]), ((10, 50), full[10:50]),
                          (slice(-7, None), full[n - 7:]), ((-7, None), full[-7:]),
                          (slice(None, -200), full[:3]), ((-30, -10), full[-30:-10]),
                          ((50, 10), full[50:50]), (slice(95, 400), full[95:]),
                          (slice(None), full)):
            got = f.read(rows)
            assert got.shape == ref.shape and np.array_equal(got, ref), rows
            blocks = [b.copy() for b in f.iter_blocks(rows)]
            joined = np.concatenate(blocks) if blocks else np.empty((0, 24), np.float32)
            assert np.array_equal(joined, ref), rows
        assert f.read(dtype="float16").dtype == np.float16
        for bad in (slice(0, 10, 2), (1, 2, 3)):
            with pytest.raises(ValueError):
                f.read(bad)
        for bad in ("10:50", 5, (0.5, 3)):
            with pytest.raises(TypeError):
                f.read(bad)


def test_iter_blocks_on_a_stream_checks_the_end_and_reports_progress(blob):
    class Pipe(io.RawIOBase):  # a stream that cannot seek
        def __init__(self, data):
            self.data = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self.data.readinto(b)

    seen = []
    with tqcli.open(io.BufferedReader(Pipe(blob))) as f:
        assert not f.seekable
        part = np.concatenate([b.copy() for b in f.iter_blocks(
            (20, 40), progress=lambda done, total: seen.append((done, total)))])
    assert np.array_equal(part, tqcli.decompress(blob, rows=(20, 40)))
    assert seen[0] == (0, 20) and seen[-1] == (20, 20)
    # a pipe with a damaged footer fails even though the wanted rows came early
    bad = bytearray(blob)
    bad[-1] ^= 0xFF
    with pytest.raises(tqcli.FormatError):
        with tqcli.open(io.BufferedReader(Pipe(bytes(bad)))) as f:
            list(f.iter_blocks((0, 8)))


def test_verify_catches_a_flipped_payload_byte(blob):
    h = tqcli.read_header(blob)
    with tqcli.open(blob) as f:
        f.verify()
    bad = bytearray(blob)
    bad[h.header_size + 5] ^= 0x10  # inside chunk 0's codes: header and index stay intact
    with tqcli.open(bytes(bad)) as f:
        assert f.header.n_vectors == h.n_vectors  # opening reads only header and index
        with pytest.raises(tqcli.FormatError) as e:
            f.verify()
    assert e.value.rule is not None and "checksum" in str(e.value)
    report = tqcli.inspect(blob, verify=True)
    assert report["verified"] is True and report["chunks"] == 13
    with pytest.raises(tqcli.FormatError):
        tqcli.inspect(bytes(bad), verify=True)
    assert "verified" not in tqcli.inspect(bytes(bad))


# ------------------------------------------------------------------ files and streams


@pytest.mark.parametrize("suffix", ["npy", "h5"])
def test_compress_file_and_decompress_file_round_trip(tmp_path, suffix):
    x = gaussian(300, 40, seed=2).reshape(3, 100, 40)
    src = tmp_path / "x.npy"
    np.save(src, x)
    header = tqcli.compress_file(str(src), str(tmp_path / "x.tqz"), bits=4, chunk_rows=64)
    blob = (tmp_path / "x.tqz").read_bytes()
    assert blob == tqcli.compress(x, bits=4, chunk_rows=64)
    assert header.file_size == len(blob) and header.shape == (3, 100, 40)
    ref = tqcli.decompress(blob)

    out = tmp_path / f"y.{suffix}"
    done = tqcli.decompress_file(tmp_path / "x.tqz", out)
    assert (done.start, done.stop, done.dtype) == (0, 300, np.float32)
    if suffix == "npy":
        y = np.load(out)
    else:
        import h5py

        with h5py.File(out, "r") as f:
            y = f["data"][...]
    assert y.shape == x.shape and np.array_equal(y, ref)

    part = tmp_path / f"p.{suffix}"
    tqcli.decompress_file(str(tmp_path / "x.tqz"), str(part), rows=slice(-50, None),
                          dtype="float64", dataset="emb")
    if suffix == "npy":
        y = np.load(part)
    else:
        import h5py

        with h5py.File(part, "r") as f:
            y = f["emb"][...]
    assert y.dtype == np.float64 and np.array_equal(y, ref.reshape(-1, 40)[-50:])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["x.npy", "x.tqz", f"y.{suffix}", f"p.{suffix}"])  # no temporary file left

    # an existing output needs force; the input is never the output
    with pytest.raises(tqcli.TqError, match="already exists"):
        tqcli.decompress_file(tmp_path / "x.tqz", out)
    tqcli.decompress_file(tmp_path / "x.tqz", out, force=True)
    with pytest.raises(tqcli.TqError, match="overwrite the input"):
        tqcli.compress_file(src, src, force=True)
    with pytest.raises(tqcli.TqError, match="overwrite the input"):
        tqcli.decompress_file(tmp_path / "x.tqz", tmp_path / "x.tqz", force=True)


def test_files_to_and_from_streams(tmp_path):
    x = gaussian(90, 33, seed=3)
    np.save(tmp_path / "x.npy", x)
    packed = io.BytesIO()
    header = tqcli.compress_file(tmp_path / "x.npy", packed, bits=2)
    assert packed.getvalue() == tqcli.compress(x, bits=2) and header.n_vectors == 90
    # compress_to from an array and from an arrayio source give the same bytes
    direct, streamed = io.BytesIO(), io.BytesIO()
    tqcli.compress_to(x, direct, bits=2)
    with arrayio.open_input(str(tmp_path / "x.npy")) as source:
        tqcli.compress_to(source, streamed, bits=2)
    assert direct.getvalue() == streamed.getvalue() == packed.getvalue()

    decoded = io.BytesIO()
    done = tqcli.decompress_file(io.BytesIO(packed.getvalue()), decoded, rows=(5, 25))
    assert (done.start, done.stop) == (5, 25)
    y = np.load(io.BytesIO(decoded.getvalue()))
    assert np.array_equal(y, tqcli.decompress(packed.getvalue())[5:25])
    # a stream in, an HDF5 file out
    tqcli.decompress_file(io.BytesIO(packed.getvalue()), tmp_path / "z.h5")
    import h5py

    with h5py.File(tmp_path / "z.h5", "r") as f:
        assert np.array_equal(f["data"][...], tqcli.decompress(packed.getvalue()))


def test_float64_restart_keeps_every_other_option():
    """A norm beyond float32's range makes "auto" start again with float64 scales; the
    result must be exactly what an explicit float64 compress with the same options gives."""
    x = gaussian(200, 64, seed=4, dtype=np.float64)
    x[37] *= 1e300
    options = dict(bits=3, mode="mse", seed=12345, rounds=5, scale_rule="ip", chunk_rows=24)
    auto = tqcli.compress(x, scale_dtype="auto", **options)
    explicit = tqcli.compress(x, scale_dtype="float64", **options)
    assert auto == explicit
    h = tqcli.read_header(auto)
    assert (h.scale_dtype, h.scale_rule, h.seed, h.rounds, h.chunk_rows, h.bits) == \
        ("float64", "ip", 12345, 5, 24, 3)
    # and each option matters, so a restart that dropped one would differ
    for key, other in (("scale_rule", "norm"), ("seed", 0), ("rounds", 3), ("chunk_rows", 8)):
        changed = tqcli.compress(x, scale_dtype="float64", **{**options, key: other})
        assert changed != auto, key
    prod = dict(bits=4, mode="prod", seed=7, rounds=2, chunk_rows=16)
    assert tqcli.compress(x, **prod) == tqcli.compress(x, scale_dtype="float64", **prod)


def test_compress_takes_explicit_keywords_only():
    x = gaussian(8, 16)
    with pytest.raises(TypeError):
        tqcli.compress(x, bits=2, chunkrows=8)  # a misspelt option is an error
    with pytest.raises(TypeError):
        tqcli.compress(x, 2)  # bits is a keyword
    with pytest.raises(TypeError):
        tqcli.compress_to(x, io.BytesIO(), bits=2, sede=1)


def test_top_package_exports_the_streaming_api():
    for name in ("open", "TqFile", "compress", "compress_to", "compress_file", "decompress",
                 "decompress_file", "read_header", "inspect", "set_threads", "Header",
                 "TqError", "FormatError", "InputError"):
        assert getattr(tqcli, name) is not None, name
    assert not hasattr(tqcli, "open_container")


def test_cli_rows_text_parses_into_a_slice():
    assert parse_rows(None) is None
    assert parse_rows("10:50") == slice(10, 50)
    assert parse_rows(":") == slice(None, None)
    assert parse_rows("-7:") == slice(-7, None)
    assert parse_rows(":-200") == slice(None, -200)
    for bad in ("1:2:3", "a:b", "5"):
        with pytest.raises(ValueError):
            parse_rows(bad)
