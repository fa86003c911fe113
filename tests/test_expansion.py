"""The expansion limit (spec 13.9): a file may declare at most --max-ratio (default 256)
decoded bytes per byte it holds, per chunk and per file; above it tq refuses before
writing anything, names the flag, and a larger --max-ratio / max_ratio= decodes the file
(it is valid).  The crafted files come from tests/bombs.py, a few KB of work each.
"""

from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest

import tqcli
from bombs import entropy_bomb
from fuzzkit import check_cli_failure, check_library_failure, pipe_stream
from tqcli import limits


@pytest.fixture(scope="module")
def bomb():
    """0.7 MB declaring 625 GiB of float64 (the issue's case)."""
    return entropy_bomb()


def test_the_625_gib_file_is_valid_and_declares_what_the_issue_says(bomb):
    h = tqcli.read_header(bomb)
    assert h.n_vectors * h.dim * 8 == 625 << 30
    assert len(bomb) < 1 << 20
    # the same construction, small: a valid file whose rows are all zero
    small = entropy_bomb(chunks=3, dim=4096)
    y = tqcli.decompress(small, max_ratio=math.inf)
    assert y.shape == (24, 4096) and y.dtype == np.float64 and not y.any()


def test_the_625_gib_file_is_refused_everywhere_within_1_s_and_100_mb(pool, tmp_path, bomb):
    (tmp_path / "b.tqz").write_bytes(bomb)
    bad = []
    for args, who, stdin in ((["decompress", "b.tqz", "-o", "out.npy"], "b.tqz", None),
                             (["decompress", "b.tqz", "-o", "out.h5"], "b.tqz", None),
                             (["inspect", "b.tqz"], "b.tqz", None),
                             (["inspect", "--verify", "b.tqz"], "b.tqz", None),
                             (["decompress", "-", "-o", "out.npy"], "-", bomb),
                             (["inspect", "-"], "-", bomb)):
        r = pool.run(args, tmp_path, stdin=stdin, pipe=stdin is not None)
        problems = check_cli_failure(r, who, tmp_path, ["b.tqz"], f"bomb: {args}",
                                     pool.base_rss)
        if not r.lines or "--max-ratio" not in r.lines[0] or "256 x" not in r.lines[0]:
            problems.append(f"the flag is not named: {r.lines}")
        if problems:
            bad.append((args, problems))
    assert not bad, bad
    for via, src in (("bytes", lambda: bomb), ("pipe", lambda: pipe_stream(bomb))):
        problems, exc = check_library_failure(lambda: tqcli.decompress(src()), f"bomb {via}")
        assert not problems and exc.rule == "ratio" and "max_ratio=" in str(exc), (via, exc)
    with pytest.raises(tqcli.FormatError) as e:
        tqcli.open(bomb)
    assert e.value.rule == "ratio" and "625 GiB" in str(e.value)


def test_a_larger_limit_decodes_the_file(tq):
    small = entropy_bomb(chunks=3, dim=4096)  # 768 KiB from 160 bytes: about 4,900 x
    ratio = 24 * 4096 * 8 / len(small)
    assert ratio > limits.DEFAULT_MAX_RATIO
    with open("s.tqz", "wb") as f:
        f.write(small)
    code, _, err = tq("decompress", "s.tqz", "-o", "s.npy")
    assert code == 1 and "--max-ratio" in err[0] and not os.path.exists("s.npy")
    code, _, err = tq("decompress", "s.tqz", "-o", "s.npy", "--max-ratio", "10000")
    assert code == 0, err
    assert not np.load("s.npy").any()
    code, out, err = tq("inspect", "s.tqz", "--max-ratio", "inf")
    assert code == 0, err
    code, _, err = tq("inspect", "s.tqz", "--max-ratio", "0")
    assert code == 2 and "--max-ratio" in " ".join(err)


def _ratios(blob):
    """(file ratio, the largest chunk ratio) of a packed container."""
    h = tqcli.read_header(blob)
    per = limits.SOURCE_DTYPE_SIZES[h.source_dtype] * h.dim
    chunk = max(per * h.chunk_rows_of(i) / (h.payload_size(h.chunk_rows_of(i)) + 4)
                for i in range(h.n_chunks))
    return per * h.n_vectors / len(blob), chunk


def test_the_limit_is_per_file_and_per_chunk_at_its_boundary():
    """1-bit float64 rows: about 60 x.  A limit equal to the larger (chunk) ratio passes;
    one between the file's ratio and a chunk's refuses the chunk; one below the file's
    ratio refuses the file."""
    x = np.random.default_rng(1).standard_normal((40, 512))
    blob = tqcli.compress(x, bits=1, chunk_rows=8, scale_dtype="float16")
    whole, chunk = _ratios(blob)
    assert 50 < whole < chunk < 64
    tqcli.decompress(blob, max_ratio=chunk)  # exactly at the limit: accepted
    for via in (lambda: blob, lambda: pipe_stream(blob)):
        with pytest.raises(tqcli.FormatError) as e:
            tqcli.decompress(via(), max_ratio=(whole + chunk) / 2)
        assert e.value.rule == "ratio" and str(e.value).startswith("chunk ")
    with pytest.raises(tqcli.FormatError) as e:
        tqcli.decompress(blob, max_ratio=whole * (1 - 1e-9))
    assert e.value.rule == "ratio" and not str(e.value).startswith("chunk ")


@pytest.mark.parametrize("coding,bits", [("packed", 1), ("entropy", 1.0)])
def test_the_default_accepts_the_most_compressed_files_tq_writes(coding, bits):
    """All-zero float64 rows at the lowest rate each coding takes: the cheapest file tq
    writes at a rate target (the entropy coding: 0.37 bits per coordinate, ~173 x)."""
    x = np.zeros((1024, 256))  # zero rows: every index the middle cell, the cheapest symbol
    x[0] = np.random.default_rng(0).standard_normal(256)
    blob = tqcli.compress(x, bits=bits, coding=coding, chunk_rows=512, scale_dtype="float16")
    whole = x.size * 8 / len(blob)
    assert whole > (140 if coding == "entropy" else 50), whole
    assert tqcli.decompress(blob).shape == x.shape
    assert tqcli.decompress(pipe_stream(blob)).shape == x.shape


def test_a_collection_member_is_held_to_the_limit(tmp_path):
    """A tqz member over the limit is refused by name; raw members cost their size."""
    from tqcli.library.collections import compress_collection

    buf = io.BytesIO()
    compress_collection({"a": np.random.default_rng(2).standard_normal((16, 64))
                         .astype(np.float32)}, buf, bits=1, chunk_rows=8)
    blob = buf.getvalue()
    from tqcli.library.collection_file import open_collection

    with open_collection(blob) as c:
        assert c.read("a").shape == (16, 64)
    with pytest.raises(tqcli.FormatError) as e:
        with open_collection(blob, max_ratio=2) as c:
            c.read("a")
    assert e.value.rule == "ratio" and "member 'a'" in str(e.value)
    with pytest.raises(tqcli.FormatError) as e:
        with open_collection(pipe_stream(blob), max_ratio=2) as c:
            list(c.items())
    assert e.value.rule == "ratio"


def test_eval_holds_a_container_to_the_limit_and_takes_the_flag(tq):
    small = entropy_bomb(chunks=3, dim=4096)
    with open("s.tqz", "wb") as f:
        f.write(small)
    np.save("z.npy", np.zeros((24, 4096)))
    code, _, err = tq("eval", "z.npy", "s.tqz", "--queries", "0")
    assert code == 1 and "--max-ratio" in err[0], err
    code, out, err = tq("eval", "z.npy", "s.tqz", "--queries", "0", "--max-ratio", "inf")
    assert code == 0, err


def test_a_segment_too_short_for_its_symbols_is_refused_from_its_length():
    """The entropy coding's own limit (spec 19.3, 13.9): a stream of Y words holds at most
    limits.most_symbols(Y) symbols of its model.  A rate-8 segment cut to the shortest
    length 19.4 allows (8 J bytes) declares 1024 symbols it cannot hold: refused from the
    length, before decoding -- a plain `tq inspect -`, which decodes nothing, said OK."""
    from test_verify_parity import payloads_of, rebuild, streams_of
    from tqcli.fileio import verbs

    blob = tqcli.compress(np.random.default_rng(4).standard_normal((16, 64))
                          .astype(np.float32), bits=8.0, coding="entropy", chunk_rows=16)
    h = tqcli.read_header(blob)
    p = payloads_of(blob)[0]
    (s0, n0), = streams_of(blob, 0, p)
    cut = 8 * h.model.lanes
    short = bytearray(cut.to_bytes(4, "little")) + p[s0:s0 + cut] + p[s0 + n0:]
    data = rebuild(blob, [short])
    f_max = int(h.model.frequencies.max())
    assert limits.most_symbols(cut // 4, h.model.precision, h.model.lanes, f_max) < 16 * 64
    for via in (lambda: data, lambda: pipe_stream(data)):
        with pytest.raises(tqcli.FormatError) as e:
            tqcli.decompress(via())
        assert e.value.rule == "entropy-stream"
    with pytest.raises(tqcli.FormatError) as e:
        verbs.inspect(pipe_stream(data))
    assert e.value.rule == "entropy-stream" and "cannot hold 1024 symbols" in str(e.value)
    # at the other end, the bound admits the most a model can give: the 625 GiB file's
    # 8 Mi symbols in 8 words (its model spends 2.2e-5 bits on its common symbol)
    assert limits.most_symbols(8, 16, 1, (1 << 16) - 1) >= 8 << 20
