"""Hostile .tqz containers: every corruption must end in a clean, one-line error.

The library must raise tqcli.FormatError (a TqError) -- never another exception and never
return data -- for every single-bit flip anywhere in a small container, for a truncation at
every length, for trailing bytes, and for header fields that claim absurd sizes (which must
fail fast, before anything big is allocated).  The command line must turn the same files
into `tq: FILE: reason` with exit status 1 and no output file, also when the container
arrives on stdin through a pipe (the streaming reader, which cannot check the size first).
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import time
import tracemalloc

import numpy as np
import pytest

import tqcli
from tqcli.format.header import FOOTER, INDEX_ENTRY, _FIXED
from tqcli.errors import FormatError, TqError

from fuzzkit import HEADER_FIELDS as FIELDS, TQ, patch_header, pipe_stream
N_ROWS, DIM, CHUNK = 40, 8, 8  # five chunks of eight rows


# ---------------------------------------------------------------------------- fixtures


def _data() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((N_ROWS, DIM)).astype(np.float32)


@pytest.fixture(scope="module", params=["mse", "prod"])
def blob(request) -> bytes:
    return tqcli.compress(_data(), bits=3, mode=request.param, chunk_rows=CHUNK)


@pytest.fixture(scope="module")
def mse_blob() -> bytes:
    return tqcli.compress(_data(), bits=3, chunk_rows=CHUNK)


def regions(blob: bytes) -> dict[str, tuple[int, int]]:
    """Byte ranges [start, end) of every part of a container, computed from its header."""
    h = tqcli.read_header(blob)
    r = {"magic": (0, 8), "version": (8, 10), "flags": (10, 12), "header_size": (12, 16)}
    off = 16
    for name, fmt in zip(FIELDS[4:], "BBBBBBBBIIQQ"):
        size = struct.calcsize("<" + fmt)
        r[name] = (off, off + size)
        off += size
    assert off == _FIXED.size
    r["shape"] = (off, off + 8 * len(h.shape))
    off += 8 * len(h.shape)
    r["codebook"] = (off, off + 4 * h.codebook_size)
    off += 4 * h.codebook_size
    r["header_crc"] = (off, off + 4)
    assert off + 4 == h.header_size
    for i in range(h.n_chunks):
        start = h.chunk_offset(i)
        n = h.payload_size(h.chunk_rows_of(i))
        r[f"chunk{i}_payload"] = (start, start + n)
        r[f"chunk{i}_crc"] = (start + n, start + n + 4)
    start = h.index_offset
    r["index"] = (start, start + INDEX_ENTRY.size * h.n_chunks)
    foot = r["index"][1]
    r["footer_index_offset"] = (foot, foot + 8)
    r["footer_chunk_count"] = (foot + 8, foot + 16)
    r["footer_crc"] = (foot + 16, foot + 20)
    r["footer_end_magic"] = (foot + 20, foot + 24)
    assert foot + FOOTER.size == len(blob) == h.file_size
    return r


def flip(blob: bytes, bit: int) -> bytes:
    b = bytearray(blob)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def stream(data: bytes):
    """The container as a non-seekable stream, as stdin from a pipe is."""
    return pipe_stream(data)


def library_failure(src) -> str | None:
    """None when decompress raised FormatError; otherwise what went wrong instead."""
    try:
        out = tqcli.decompress(src)
    except FormatError as e:
        assert isinstance(e, TqError) and "\n" not in str(e) and e.reason
        return None
    except Exception as e:  # noqa: BLE001 - anything else is the bug being looked for
        return f"{type(e).__name__}: {e}"
    return f"returned data of shape {getattr(out, 'shape', None)}"


def run(args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(TQ + [str(a) for a in args], capture_output=True, timeout=120, **kw)


def run_many(jobs, cwd) -> list[subprocess.CompletedProcess]:
    """Run independent tq commands a few at a time; jobs are (args, stdin bytes or None)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(lambda j: run(j[0], cwd=cwd, input=j[1]), jobs))


def assert_cli_error(r: subprocess.CompletedProcess, name: str, *words: str) -> str:
    err = r.stderr.decode()
    assert r.returncode == 1, (r.returncode, err)
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"tq: {name}: "), lines[0]
    for w in words:
        assert w in lines[0].lower(), (w, lines[0])
    return lines[0]


def leftovers(folder, keep) -> list[str]:
    return sorted(set(os.listdir(folder)) - set(keep))


# ---------------------------------------------------------------------------- sanity


def test_fixture_is_a_valid_multi_chunk_container(blob):
    h = tqcli.read_header(blob)
    assert h.n_chunks == 5 and h.n_vectors == N_ROWS and h.dim == DIM
    r = regions(blob)
    spans = sorted(r.values())
    assert spans[0][0] == 0 and spans[-1][1] == len(blob)
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a1 == b0  # the regions tile the file exactly
    y = tqcli.decompress(blob)
    assert y.shape == (N_ROWS, DIM)
    y2 = tqcli.decompress(stream(blob))
    np.testing.assert_array_equal(y, y2)


# ---------------------------------------------------------------------------- bit flips


@pytest.mark.parametrize("via", ["bytes", "stream"])
def test_every_single_bit_flip_is_detected(blob, via):
    bad = []
    for bit in range(len(blob) * 8):
        data = flip(blob, bit)
        why = library_failure(data if via == "bytes" else stream(data))
        if why is not None:
            bad.append((bit // 8, bit % 8, why))
    assert not bad, f"{len(bad)} undetected or badly reported flips, first: {bad[:5]}"


# the reader rules (FormatError.rule, spec section 13) that may refuse a flip in a region;
# flags bit 15 makes the header a collection's (spec 18), whose checksum then fails
EXPECTED_RULES = {
    "magic": {"magic"}, "version": {"version"}, "flags": {"flags", "coding", "header-crc"},
    "header_size": {"header-size", "header-crc", "truncated", "length"},
    "codebook": {"header-crc"}, "header_crc": {"header-crc"}, "index": {"index-crc"},
}
FOOTER_RULES = {"footer-magic", "index-crc", "footer-layout", "trailing", "truncated", "length"}


def test_one_flip_per_region_names_the_problem(mse_blob):
    for name, (start, end) in regions(mse_blob).items():
        for bit in (start * 8, end * 8 - 1):  # first and last bit of the region
            with pytest.raises(FormatError) as info:
                tqcli.decompress(flip(mse_blob, bit))
            e = info.value
            if name in EXPECTED_RULES:
                assert e.rule in EXPECTED_RULES[name], (name, e.rule, str(e))
            elif name.startswith("chunk") and name[5].isdigit():
                assert (e.rule, e.chunk) == ("chunk-crc", int(name[5])), (name, str(e))
            elif name.startswith("footer"):
                assert e.rule in FOOTER_RULES, (name, e.rule, str(e))
            else:  # a header field: caught by the header checksum
                assert e.rule == "header-crc", (name, e.rule, str(e))


CLI_SAMPLE = ("magic", "version", "flags", "header_size", "dim", "n_vectors", "codebook",
              "header_crc", "chunk0_payload", "chunk4_crc", "index", "footer_crc",
              "footer_end_magic")


def _sample_bits(blob: bytes) -> list[tuple[str, int]]:
    """One bit in the middle of a sample of regions (each CLI run costs a process start)."""
    out = []
    for name, (start, end) in regions(blob).items():
        if name in CLI_SAMPLE:
            mid = (start + end) // 2
            out.append((name, mid * 8 + (mid % 8)))
    assert len(out) == len(CLI_SAMPLE)
    return out


def test_cli_rejects_a_flip_in_every_region(mse_blob, tmp_path):
    sample = _sample_bits(mse_blob)
    for name, bit in sample:
        (tmp_path / f"bad_{name}.tqz").write_bytes(flip(mse_blob, bit))
    before = os.listdir(tmp_path)
    jobs = [(["decompress", f"bad_{name}.tqz", "-o", f"out_{name}.npy"], None)
            for name, _ in sample]
    for (name, bit), r in zip(sample, run_many(jobs, tmp_path)):
        assert_cli_error(r, f"bad_{name}.tqz")
        assert (tmp_path / f"bad_{name}.tqz").read_bytes() == flip(mse_blob, bit)  # untouched
    assert leftovers(tmp_path, before) == []


def test_cli_streaming_from_a_pipe_rejects_payload_flips(mse_blob, tmp_path):
    r = regions(mse_blob)
    jobs = []
    for name in ("chunk0_payload", "chunk4_payload", "index"):
        start, end = r[name]
        data = flip(mse_blob, ((start + end) // 2) * 8 + 3)
        jobs.append((["decompress", "-", "-o", f"out_{name}.npy"], data))
        # to stdout: the error still comes, as one line with a non-zero status
        jobs.append((["decompress", "-", "-c"], data))
        jobs.append((["decompress", "-", "-o", f"out_{name}.h5"], data))  # HDF5 output
    for res in run_many(jobs, tmp_path):
        assert_cli_error(res, "-")
    assert os.listdir(tmp_path) == []


def test_cli_streaming_from_a_redirected_file(mse_blob, tmp_path):
    start, end = regions(mse_blob)["chunk3_payload"]
    bad = tmp_path / "bad.tqz"
    bad.write_bytes(flip(mse_blob, start * 8 + 9))
    with open(bad, "rb") as f:
        res = subprocess.run(TQ + ["decompress", "-", "-o", "out.npy"], stdin=f,
                             capture_output=True, cwd=tmp_path, timeout=120)
    assert_cli_error(res, "-", "chunk 3")
    assert os.listdir(tmp_path) == ["bad.tqz"]


def test_inspect_verify_detects_payload_flips(mse_blob, tmp_path):
    start, end = regions(mse_blob)["chunk1_payload"]
    bad = tmp_path / "bad.tqz"
    bad.write_bytes(flip(mse_blob, (start + 2) * 8))
    r = run(["inspect", "--verify", "bad.tqz"], cwd=tmp_path)
    assert_cli_error(r, "bad.tqz", "chunk 1", "checksum")
    r = run(["inspect", "--verify", "--json", "bad.tqz"], cwd=tmp_path)
    assert_cli_error(r, "bad.tqz", "chunk 1")
    assert r.stdout == b""
    # the header alone is intact, so a plain inspect still reads it
    r = run(["inspect", "bad.tqz"], cwd=tmp_path)
    assert r.returncode == 0 and b"vectors" in r.stdout
    # and through a pipe, where inspect must read everything anyway
    r = run(["inspect", "--verify", "-"], input=bad.read_bytes(), cwd=tmp_path)
    assert_cli_error(r, "-", "chunk 1")


# ---------------------------------------------------------------------------- truncation


@pytest.mark.parametrize("via", ["bytes", "stream"])
def test_truncation_at_every_length(blob, via):
    bad = []
    for n in range(len(blob)):
        data = blob[:n]
        why = library_failure(data if via == "bytes" else stream(data))
        if why is not None:
            bad.append((n, why))
    assert not bad, bad[:5]


def test_truncation_cli_file_and_pipe(mse_blob, tmp_path):
    r = regions(mse_blob)
    lengths = (0, 30, r["chunk2_payload"][0] + 3, len(mse_blob) - 1)
    jobs = []
    for n in lengths:
        (tmp_path / f"t{n}.tqz").write_bytes(mse_blob[:n])
        jobs.append((["decompress", f"t{n}.tqz", "-o", f"out{n}.npy"], None))
        jobs.append((["decompress", "-", "-o", f"pipe{n}.npy"], mse_blob[:n]))
    results = run_many(jobs, tmp_path)
    for i, n in enumerate(lengths):
        line = assert_cli_error(results[2 * i], f"t{n}.tqz")
        assert ("empty" if n == 0 else "truncated") in line, line
        assert_cli_error(results[2 * i + 1], "-")
    assert sorted(os.listdir(tmp_path)) == sorted(f"t{n}.tqz" for n in lengths)


def test_trailing_garbage(mse_blob, tmp_path):
    for extra in (b"\0", b"garbage", mse_blob):
        data = mse_blob + extra
        for src in (data, stream(data)):
            with pytest.raises(FormatError) as e:
                tqcli.decompress(src)
            assert e.value.rule == "trailing"
    bad = tmp_path / "tail.tqz"
    bad.write_bytes(mse_blob + b"xyz")
    assert_cli_error(run(["decompress", "tail.tqz", "-o", "o.npy"], cwd=tmp_path),
                     "tail.tqz", "trailing")
    assert_cli_error(run(["decompress", "-", "-o", "o.npy"], input=mse_blob + b"xyz",
                         cwd=tmp_path), "-", "trailing")
    assert_cli_error(run(["inspect", "tail.tqz"], cwd=tmp_path), "tail.tqz", "trailing")
    assert sorted(os.listdir(tmp_path)) == ["tail.tqz"]


# ---------------------------------------------------------------------------- lying headers


patched = patch_header


U32, U64 = 2**32 - 1, 2**64 - 1
LYING = {
    "n_vectors_ff": dict(n_vectors=U64),
    "dim_ff": dict(dim=U32),
    "chunk_rows_ff": dict(chunk_rows=U32),
    "ndim_ff": dict(ndim=255),
    "shape_ff": dict(shape=(U64, U64)),
    "shape_and_count_consistent": dict(shape=(2**40, DIM), n_vectors=2**40),
    "huge_chunks_consistent": dict(shape=(2**13, 2**16), n_vectors=2**13, dim=2**16,
                                   chunk_rows=2**13),
    "max_chunk_rows": dict(chunk_rows=2**20),
}


def _lying_cases(blob):
    for name, fields in LYING.items():
        for fix_crc in (False, True):
            yield f"{name}{'_crc_fixed' if fix_crc else ''}", patched(blob, fix_crc, **fields)
    for fix_crc in (False, True):
        # the header size is checked before the checksum is even read
        b = bytearray(blob)
        b[12:16] = b"\xff\xff\xff\xff"
        yield f"header_size_ff{'_crc_fixed' if fix_crc else ''}", bytes(b)


@pytest.mark.parametrize("via", ["bytes", "stream"])
def test_lying_header_fields_fail_fast_without_allocating(mse_blob, via):
    problems = []
    for name, data in _lying_cases(mse_blob):
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            why = library_failure(data if via == "bytes" else stream(data))
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        took = time.perf_counter() - t0
        if why or peak > 100e6 or took > 1.0:
            problems.append((name, why, f"{peak / 1e6:.0f} MB", f"{took:.2f} s"))
    assert not problems, problems


def _run_measured(args, data: bytes, cwd) -> tuple[subprocess.CompletedProcess, int]:
    """Run tq with `data` on a stdin pipe; returns the result and the child's peak RSS (KiB)."""
    p = subprocess.Popen(TQ + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=cwd)
    try:
        p.stdin.write(data)
    except BrokenPipeError:
        pass
    p.stdin.close()
    out, err = p.stdout.read(), p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err), usage.ru_maxrss


def test_cli_lying_headers_on_a_pipe_fail_without_allocating(mse_blob, tmp_path):
    base, base_rss = _run_measured(["decompress", "-", "-o", "ok.npy"], mse_blob, tmp_path)
    assert base.returncode == 0, base.stderr
    os.remove(tmp_path / "ok.npy")
    for name in ("n_vectors_ff_crc_fixed", "shape_and_count_consistent_crc_fixed",
                 "huge_chunks_consistent_crc_fixed", "max_chunk_rows_crc_fixed"):
        data = dict(_lying_cases(mse_blob))[name]
        t0 = time.perf_counter()
        r, rss = _run_measured(["decompress", "-", "-o", "out.npy"], data, tmp_path)
        assert_cli_error(r, "-")
        assert time.perf_counter() - t0 < 30
        assert rss - base_rss < 100 * 1024, (name, rss, base_rss)
        assert os.listdir(tmp_path) == [], name


def test_unknown_version_and_flags(mse_blob, tmp_path):
    v2 = bytearray(mse_blob)
    v2[8:10] = struct.pack("<H", 2)
    with pytest.raises(FormatError, match="version 2") as e:
        tqcli.decompress(bytes(v2))
    assert e.value.rule == "version"
    with pytest.raises(FormatError) as e:
        tqcli.read_header(bytes(v2))
    assert e.value.rule == "version"
    fl = bytearray(mse_blob)
    fl[10:12] = struct.pack("<H", 0x0004)  # a payload coding this reader does not know
    with pytest.raises(FormatError, match="flags") as e:
        tqcli.decompress(bytes(fl))
    assert e.value.rule == "coding"
    high = bytearray(mse_blob)
    high[10:12] = struct.pack("<H", 0x0200)  # a flag bit no revision defines (bit 8: centred)
    with pytest.raises(FormatError) as e:
        tqcli.decompress(bytes(high))
    assert e.value.rule == "flags"
    (tmp_path / "v2.tqz").write_bytes(bytes(v2))
    (tmp_path / "fl.tqz").write_bytes(bytes(fl))
    assert_cli_error(run(["decompress", "v2.tqz"], cwd=tmp_path), "v2.tqz", "version 2")
    assert_cli_error(run(["inspect", "--json", "fl.tqz"], cwd=tmp_path), "fl.tqz", "flags")
    assert_cli_error(run(["decompress", "-", "-c"], input=bytes(v2), cwd=tmp_path), "-",
                     "version")
    assert sorted(os.listdir(tmp_path)) == ["fl.tqz", "v2.tqz"]


def test_not_a_container_at_all(tmp_path):
    for name, data in (("empty.tqz", b""), ("text.tqz", b"hello world\n" * 20),
                       ("npy.tqz", b"\x93NUMPY\x01\x00" + b"\0" * 100)):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(FormatError):
            tqcli.decompress(data)
        line = assert_cli_error(run(["decompress", name, "-o", "o.npy"], cwd=tmp_path), name)
        assert "tqz" in line or "truncated" in line
    assert not (tmp_path / "o.npy").exists()


# ---------------------------------------------------------------------- well-formed but hostile


def test_huge_shape_entry_behind_a_zero_is_refused():
    """A zero leading entry makes n = 0 whatever the others say; they are still bounded."""
    blob = tqcli.compress(np.zeros((0, 5, 8), np.float32), bits=2)
    bad = patched(blob, True, shape=(0, 2**60, 8))
    with pytest.raises(tqcli.FormatError) as e:
        tqcli.decompress(bad)
    assert e.value.rule == "shape"


def test_prod_mode_dimension_is_bounded_before_the_sketch_is_built():
    """prod mode needs a d x d sketch: a small file must not be able to ask for 16 GiB."""
    blob = tqcli.compress(np.ones((1, 8), np.float32), bits=2, mode="prod")
    bad = patched(blob, True, shape=(1, 65536), dim=65536)
    tracemalloc.start()
    try:
        with pytest.raises(tqcli.FormatError) as e:
            tqcli.decompress(bad)
        assert e.value.rule == "prod-dim"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 100e6
    with pytest.raises(tqcli.InputError, match="prod mode"):
        tqcli.compress(np.ones((1, 4097), np.float32), bits=2, mode="prod")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_stored_scale_with_valid_checksums_is_refused(value):
    """A crafted chunk whose CRCs are right but whose scale is NaN/inf is refused, not decoded."""

    from tqcli.codec.state import Codec

    from tqcli.format.header import make_header
    from tqcli.format.container import ContainerWriter

    x = np.random.default_rng(0).standard_normal((16, 32)).astype(np.float32)
    header = make_header(32, 3, shape=x.shape, chunk_rows=16)
    payload = bytearray(Codec(header).encode(x))
    ncode = header.section_sizes(16)[0]
    struct.pack_into("<f", payload, ncode + 4 * 5, value)  # scale of row 5
    buf = io.BytesIO()
    writer = ContainerWriter(buf, header)
    writer.write_chunk(bytes(payload))
    writer.finish()
    with pytest.raises(tqcli.FormatError) as e:
        tqcli.decompress(buf.getvalue())
    assert (e.value.rule, e.value.chunk) == ("scale-finite", 0)
