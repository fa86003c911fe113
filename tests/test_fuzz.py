"""Fuzzing the .tqz reader: a seeded mutation corpus kept in the repository
(tests/corpus/, about 600 hostile files) and hypothesis-generated inputs.

Every hostile container must end, in the library, in tqcli.FormatError (never another
exception, never data) and, on the command line, in exit status 1 with exactly one stderr
line `tq: FILE: reason`, no traceback, nothing on stdout and no output or temporary file
left behind -- within 1 s and 100 MB of extra memory per case.  The counters in
tests/fuzzkit.py add up what was tried; conftest.py prints them at the end of the run.

test_corrupt.py already flips every bit and truncates at every length of one container in
the library; this file widens that to structured mutations whose checksums were recomputed
(so that only the range and layout checks can catch them), runs every one of them through
the real command line (file, pipe, `inspect --verify`), and lets hypothesis search further.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import tqcli
from fuzzkit import (COUNTS, TQ, CliPool, check_cli_failure, check_library_failure,
                     patch_header, pipe_stream, verify_disagrees)

CORPUS = Path(__file__).parent / "corpus"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
MUTANTS = MANIFEST["mutants"]
BASES = {name: (CORPUS / b["file"]).read_bytes() for name, b in MANIFEST["bases"].items()}

# The corpus bases were written by tq 1.0 (hadamard2, no centre).  The forms tq 1.1 added --
# the tiled rotation (the default) and a centred header -- are fuzzed from this container
# too: 21 float32 rows of d = 40 (tiles 32 + 8), centred, 3 chunks.
NEW_FORMS = tqcli.compress((np.random.default_rng(5).standard_normal((21, 40)) + 2.0)
                           .astype(np.float32), bits=3, center=True, chunk_rows=8)

# The entropy coding (tq 1.3, spec 19): chunks of data-dependent length that the index
# records, two segments per chunk, three chunks.
ENTROPY_FORM = tqcli.compress(np.random.default_rng(6).standard_normal((20, 24))
                              .astype(np.float32), bits=2.5, coding="entropy", chunk_rows=8)

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _make_corpus_module():
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def pool():
    p = CliPool(2)
    yield p
    p.close()


def _rule_problem(rec, exc) -> list[str]:
    """The error must name one of the reader rules the manifest lists for the mutant."""
    if not rec["rules"] or exc.rule in rec["rules"]:
        return []
    return [f"rule {exc.rule!r} ({exc}) is not one of {rec['rules']}"]


# ---------------------------------------------------------------------------- the corpus


def test_corpus_is_intact_reproducible_and_covers_every_family():
    mod = _make_corpus_module()
    total = 0
    for rec in MUTANTS:
        data = (CORPUS / rec["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == rec["sha256"], rec["file"]
        total += len(data)
    assert total + sum(map(len, BASES.values())) < 1 << 20  # the whole corpus < 1 MB
    assert sorted(os.listdir(CORPUS / "mutants")) == sorted(Path(r["file"]).name
                                                            for r in MUTANTS)
    # the generator, run again on the committed bases, writes exactly the committed corpus
    manifest, files = mod.build(mod.load_bases(str(CORPUS)))
    assert json.loads(json.dumps(manifest)) == MANIFEST
    assert all((CORPUS / rel).read_bytes() == data for rel, data in files.items())

    # every family the issue names is there
    assert len(MUTANTS) >= 300
    kinds = {r["mutation"] for r in MUTANTS}
    assert {"flip", "truncate", "ff_run", "ff_run_crc_fixed", "index_layout", "version",
            "flags", "trailing", "header_field", "codebook", "insert", "delete",
            "dup_chunk", "swap_chunks", "scale_nonfinite", "footer_layout"} <= kinds
    flipped = " ".join(r["detail"] for r in MUTANTS if r["mutation"] == "flip")
    for region in ("(magic)", "(version)", "(flags)", "(header_size)", "(dim)", "(shape)",
                   "(codebook)", "(header_crc)", "_payload)", "_crc)", "(index)",
                   "(footer_index_offset)", "(footer_chunk_count)", "(footer_crc)",
                   "(footer_end_magic)"):
        assert region in flipped, region
    layout = " ".join(r["detail"] for r in MUTANTS if r["mutation"] == "index_layout")
    for what in ("overlaps", "out of order", "reverse order", "gap", "past the end"):
        assert what in layout, what
    # each base is a valid container that decodes
    for name, blob in BASES.items():
        b = MANIFEST["bases"][name]
        y = tqcli.decompress(blob)
        assert list(y.shape) == b["shape"] and y.dtype == np.dtype(b["dtype"])
        assert np.isfinite(y).all() and tqcli.read_header(blob).n_chunks >= 3


def test_corpus_through_the_library():
    """Every mutant as bytes, as a path and as a pipe: FormatError with the expected reason."""
    bad = []
    for rec in MUTANTS:
        path = CORPUS / rec["file"]
        data = path.read_bytes()
        for via, make in (("bytes", lambda: data), ("path", lambda: str(path)),
                          ("pipe", lambda: pipe_stream(data))):
            problems, exc = check_library_failure(lambda: tqcli.decompress(make()),
                                                  f"{rec['file']} via {via}")
            if exc is not None:
                problems += _rule_problem(rec, exc)
            if problems:
                bad.append((rec["file"], rec["detail"], via, problems))
    assert not bad, f"{len(bad)} failures, first: {bad[:5]}"


def _library_error(make) -> str:
    """The one-line reason tqcli.decompress(make()) gives for a refused container."""
    with pytest.raises(tqcli.FormatError) as e:
        tqcli.decompress(make())
    return " ".join(str(e.value).split())


def _cli_case(pool: CliPool, rec, root: Path) -> list:
    """One mutant through `tq decompress FILE`, `tq inspect --verify FILE` and
    `tq decompress -` (a pipe), in a folder that holds nothing but the mutant."""
    src = CORPUS / rec["file"]
    name = src.name
    folder = root / name[:-4]
    folder.mkdir()
    try:
        shutil.copyfile(src, folder / name)
        data = src.read_bytes()
        runs = [
            (["decompress", name, "-o", "out.npy"], name, None, False),
            (["inspect", "--verify", name], name, None, False),
            (["decompress", "-", "-o", "out.npy"], "-", data, True),
        ]
        # the command line prints exactly the library's refusal of the same file, read the
        # same way (a path, or a pipe), whose rule the library tests check
        expected = {pipe: f"tq: {who}: {_library_error(make)}" for pipe, who, make in (
            (False, name, lambda: str(folder / name)), (True, "-", lambda: pipe_stream(data)))}
        bad = []
        for args, who, stdin, pipe in runs:
            r = pool.run(args, folder, stdin=stdin, pipe=pipe)
            what = f"{rec['file']}: tq {' '.join(args)}"
            problems = check_cli_failure(r, who, folder, [name], what, pool.base_rss)
            if r.lines and r.lines[0] != expected[pipe]:
                problems.append(f"{r.lines[0]!r} differs from the library's {expected[pipe]!r}")
            if (folder / name).read_bytes() != data:
                problems.append("the input was modified")
            if problems:
                bad.append((what, rec["detail"], problems))
        return bad
    finally:
        shutil.rmtree(folder)


def test_corpus_through_the_command_line(pool, tmp_path):
    results = pool.map(lambda p, rec: _cli_case(p, rec, tmp_path), MUTANTS)
    bad = [b for r in results for b in r]
    assert not bad, f"{len(bad)} failures, first: {bad[:5]}"


SAMPLE_FAMILIES = ("flip", "truncate", "ff_run_crc_fixed", "index_layout", "version",
                   "trailing", "scale_nonfinite", "not_tqz")


def test_forked_runs_match_real_processes(pool, tmp_path):
    """The forked CLI runs above print exactly what a real `python -m tqcli` prints."""
    sample = [next(r for r in MUTANTS if r["mutation"] == fam) for fam in SAMPLE_FAMILIES]
    for rec in sample:
        shutil.copyfile(CORPUS / rec["file"], tmp_path / Path(rec["file"]).name)
    jobs = [["decompress", Path(rec["file"]).name, "-o", "out.npy"] for rec in sample]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as ex:
        real = list(ex.map(lambda a: subprocess.run(TQ + a, cwd=tmp_path, capture_output=True,
                                                    stdin=subprocess.DEVNULL, timeout=120),
                           jobs))
    names = sorted(os.listdir(tmp_path))
    for rec, args, r in zip(sample, jobs, real):
        forked = pool.run(args, tmp_path)
        assert (r.returncode, r.stdout, r.stderr) == (forked.returncode, forked.stdout,
                                                      forked.stderr), rec["file"]
        assert r.returncode == 1 and len(r.stderr.splitlines()) == 1
        assert b"Traceback" not in r.stderr
    assert sorted(os.listdir(tmp_path)) == names  # no out.npy, no temporary file


# ---------------------------------------------------------------------------- hypothesis


@st.composite
def junk(draw):
    """Byte strings from anywhere: random, after the magic, after a valid 16-byte start,
    after a valid header, or after a valid prefix of any length."""
    blob = draw(st.sampled_from(sorted(BASES.values())))
    h = tqcli.read_header(blob)
    prefix = draw(st.sampled_from([b"", blob[:8], blob[:16], blob[:h.header_size],
                                   blob[:draw(st.integers(0, len(blob)))]]))
    data = prefix + draw(st.binary(max_size=1200))
    assume(data not in BASES.values())
    return data


@settings(FUZZ, max_examples=500)
@given(data=junk())
def test_hypothesis_arbitrary_bytes_are_refused(data):
    for via, src in (("bytes", lambda: data), ("pipe", lambda: pipe_stream(data))):
        problems, _ = check_library_failure(lambda: tqcli.decompress(src()), f"junk via {via}")
        assert not problems, (via, data[:64], problems)


OPS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("ff"), st.integers(0, 1 << 20), st.integers(1, 24)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=32)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 64)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("dup"), st.integers(0, 1 << 20), st.integers(1, 200)),
)


def mutate(blob: bytes, ops) -> bytes:
    b = bytearray(blob)
    for op in ops:
        n = max(len(b), 1)
        if op[0] == "flip" and b:
            b[op[1] % n] ^= 1 << op[2]
        elif op[0] == "set" and b:
            b[op[1] % n] = op[2]
        elif op[0] == "ff":
            p = op[1] % n
            b[p:p + op[2]] = b"\xff" * len(b[p:p + op[2]])
        elif op[0] == "insert":
            p = op[1] % (len(b) + 1)
            b[p:p] = op[2]
        elif op[0] == "delete":
            p = op[1] % n
            del b[p:p + op[2]]
        elif op[0] == "truncate":
            del b[op[1] % n:]
        elif op[0] == "append":
            b += op[1]
        elif op[0] == "dup":
            p = op[1] % n
            b[p:p] = b[p:p + op[2]]
    return bytes(b)


@settings(FUZZ, max_examples=500)
@given(blob=st.sampled_from(sorted(BASES.values()) + [NEW_FORMS, ENTROPY_FORM]),
       ops=st.lists(OPS, min_size=1, max_size=4))
def test_hypothesis_mutated_containers_are_refused(blob, ops):
    COUNTS.family = "entropy" if blob is ENTROPY_FORM else "packed"
    data = mutate(blob, ops)
    assume(data != blob)
    for via, src in (("bytes", lambda: data), ("pipe", lambda: pipe_stream(data))):
        problems, exc = check_library_failure(lambda: tqcli.decompress(src()),
                                              f"mutation {ops} via {via}")
        assert not problems, (via, ops, problems)
        if via == "bytes":  # the verifier refuses it too, by the same rule (spec 13.5)
            assert not verify_disagrees(data, exc), (ops, verify_disagrees(data, exc))


@pytest.fixture(scope="module")
def hyp_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("hyp-cli")


@settings(FUZZ, max_examples=100)
@given(blob=st.sampled_from(sorted(BASES.values()) + [ENTROPY_FORM]),
       ops=st.lists(OPS, min_size=1, max_size=3), pipe=st.booleans())
def test_hypothesis_mutated_containers_on_the_command_line(pool, hyp_folder, blob, ops, pipe):
    COUNTS.family = "entropy" if blob is ENTROPY_FORM else "packed"
    data = mutate(blob, ops)
    assume(data != blob)
    (hyp_folder / "m.tqz").write_bytes(data)
    try:
        if pipe:
            r = pool.run(["decompress", "-", "-o", "out.npy"], hyp_folder, stdin=data, pipe=True)
        else:
            r = pool.run(["decompress", "m.tqz", "-o", "out.npy"], hyp_folder)
        problems = check_cli_failure(r, "-" if pipe else "m.tqz", hyp_folder, ["m.tqz"],
                                     f"cli mutation {ops}", pool.base_rss)
        assert not problems, (ops, problems)
    finally:
        for name in os.listdir(hyp_folder):
            os.remove(hyp_folder / name)


def test_new_forms_every_truncation_and_bit_flip_is_refused():
    """Every proper prefix of the tiled, centred container, and a bit flip in every byte
    (bit pos mod 8), as bytes and on a pipe (the library; the command line runs the same
    reader)."""
    h = tqcli.read_header(NEW_FORMS)
    assert h.rotation == "tiled" and h.centered
    cases = [("prefix", NEW_FORMS[:k]) for k in range(len(NEW_FORMS))]
    for pos in range(len(NEW_FORMS)):
        b = bytearray(NEW_FORMS)
        b[pos] ^= 1 << (pos % 8)
        cases.append((f"flip of byte {pos}", bytes(b)))
    for what, data in cases:
        for via, src in (("bytes", lambda: data), ("pipe", lambda: pipe_stream(data))):
            problems, _ = check_library_failure(lambda: tqcli.decompress(src()),
                                                f"{what} via {via}")
            assert not problems, (what, via, problems)


def test_entropy_form_every_truncation_extension_and_bit_flip_is_refused():
    """The same for an entropy-coded container, plus one byte added at every position:
    variable lengths are read from the payload and the index, never trusted."""
    h = tqcli.read_header(ENTROPY_FORM)
    assert h.coding == "entropy" and h.n_chunks == 3
    blob = ENTROPY_FORM
    cases = [("prefix", blob[:k]) for k in range(len(blob))]
    for pos in range(len(blob)):
        b = bytearray(blob)
        b[pos] ^= 1 << (pos % 8)
        cases.append((f"flip of byte {pos}", bytes(b)))
        cases.append((f"byte inserted at {pos}", blob[:pos] + b"\0" + blob[pos:]))
    for what, data in cases:
        for via, src in (("bytes", lambda: data), ("pipe", lambda: pipe_stream(data))):
            problems, _ = check_library_failure(lambda: tqcli.decompress(src()),
                                                f"{what} via {via}")
            assert not problems, (what, via, problems)


def _entropy_layout(blob: bytes):
    """[(offset, length)] of the chunks of an entropy-coded container, from its index."""
    import struct

    from tqcli.format.header import FOOTER, INDEX_ENTRY

    k = struct.unpack_from("<Q", blob, len(blob) - FOOTER.size + 8)[0]
    start = len(blob) - FOOTER.size - INDEX_ENTRY.size * k
    return [INDEX_ENTRY.unpack_from(blob, start + INDEX_ENTRY.size * i)[:2] for i in range(k)]


def _recrc(blob: bytearray) -> bytes:
    """Chunk CRCs, the index's copies of them and the index CRC recomputed."""
    import struct

    from tqcli.format.header import CRC, FOOTER, INDEX_ENTRY, crc32

    layout = _entropy_layout(bytes(blob))
    start = len(blob) - FOOTER.size - INDEX_ENTRY.size * len(layout)
    for i, (off, n) in enumerate(layout):
        c = crc32(bytes(blob[off:off + n]))
        CRC.pack_into(blob, off + n, c)
        struct.pack_into("<I", blob, start + INDEX_ENTRY.size * i + 12, c)
    tail = bytes(blob[start:len(blob) - 8])
    struct.pack_into("<I", blob, len(blob) - 8, crc32(tail))
    return bytes(blob)


def test_entropy_streams_damaged_under_recomputed_checksums_are_refused():
    """Every byte of every rANS stream changed (twice: +1 and a bit flip), every stream
    length changed by +-4 and +-1, with all checksums recomputed: only the decoder's own
    checks of spec 19.3/19.4 can catch them, and they must, without hanging (each case
    within the 1 s budget) and with the rule entropy-stream (or index-layout / length
    where a length no longer fits the index)."""
    blob = ENTROPY_FORM
    h = tqcli.read_header(blob)
    layout = _entropy_layout(blob)
    rules = {"entropy-stream", "index-layout", "length", "trailing", "footer-layout",
             "chunk-crc"}
    count = 0
    for i, (off, n) in enumerate(layout):
        rows = h.chunk_rows_of(i)
        segs = -(-rows // h.model.segment_rows)
        lens = np.frombuffer(blob, "<u4", count=segs, offset=off)
        streams = range(off + 4 * segs, off + 4 * segs + int(lens.sum()))
        cases = []
        for pos in streams:
            for how in ("+1", "flip"):
                b = bytearray(blob)
                b[pos] = (b[pos] + 1) % 256 if how == "+1" else b[pos] ^ 0x80
                cases.append((f"chunk {i} stream byte {pos} {how}", _recrc(b)))
        for g in range(segs):
            for delta in (4, -4, 1, -1):
                b = bytearray(blob)
                v = int(lens[g]) + delta
                b[off + 4 * g:off + 4 * g + 4] = v.to_bytes(4, "little")
                cases.append((f"chunk {i} length {g} {delta:+d}", _recrc(b)))
        for what, data in cases:
            for via, src in (("bytes", lambda: data), ("pipe", lambda: pipe_stream(data))):
                problems, exc = check_library_failure(lambda: tqcli.decompress(src()),
                                                      f"{what} via {via}")
                assert not problems, (what, via, problems)
                assert exc.rule in rules, (what, exc.rule, str(exc))
                if via == "bytes":  # inspect --verify refused these as OK before
                    assert not verify_disagrees(data, exc), (what, verify_disagrees(data, exc))
                count += 1
    assert count > 400


# ---------------------------------------------------------------------------- truncation


def test_truncation_at_every_byte_boundary_on_the_command_line(pool, tmp_path):
    """Every proper prefix of the smallest base, as a file and on a pipe (inspect --verify
    reads everything a decoder reads, checksums included)."""
    blob = BASES["mse1h"]
    assert len(blob) < 300

    def one(p: CliPool, n: int) -> list:
        folder = tmp_path / f"t{n}"
        folder.mkdir()
        (folder / "t.tqz").write_bytes(blob[:n])
        bad = []
        for args, who, stdin in ((["inspect", "--verify", "t.tqz"], "t.tqz", None),
                                 (["inspect", "--verify", "-"], "-", blob[:n])):
            r = p.run(args, folder, stdin=stdin, pipe=stdin is not None)
            problems = check_cli_failure(r, who, folder, ["t.tqz"], f"truncated to {n}",
                                         p.base_rss)
            if r.lines and not any(w in r.lines[0] for w in ("truncated", "empty")):
                problems.append(r.lines[0])
            if problems:
                bad.append((n, args, problems))
        return bad

    bad = [b for r in pool.map(one, range(len(blob))) for b in r]
    assert not bad, bad[:5]


# ---------------------------------------------------------------------------- costly claims


def test_header_claims_cost_nothing_before_data_arrives(pool, tmp_path):
    """The limits let a header ask for d = 2^20 and 32 rotation rounds (about 400 MB of
    rotation tables and seconds of set-up).  That cost is only due once a chunk has proved
    the header honest: a container with no vectors, or a stream that ends before its first
    chunk, must be dealt with in well under 1 s and 100 MB."""
    empty = tqcli.compress(np.zeros((0, 8), np.float32), bits=1)
    big = dict(dim=1 << 20, rounds=32, chunk_rows=8)
    valid_empty = patch_header(empty, True, shape=(0, 1 << 20), n_vectors=0, **big)
    assert tqcli.read_header(valid_empty).n_vectors == 0
    one_row = patch_header(empty, True, shape=(1, 1 << 20), n_vectors=1, **big)  # no chunk follows
    problems, _ = check_library_failure(lambda: tqcli.decompress(pipe_stream(one_row)),
                                        "d=2^20 T=32 header, no chunk, pipe")
    assert not problems, problems
    # the valid empty container decodes to an empty array, cheaply
    import time
    import tracemalloc

    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        y = tqcli.decompress(valid_empty)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    took = time.perf_counter() - t0
    COUNTS.tried += 1
    if took >= 1 or peak >= 100 * 2**20:
        COUNTS.note("over_budget", f"empty d=2^20 T=32 container: {took:.2f} s, "
                                   f"{peak / 2**20:.0f} MB")
    assert y.shape == (0, 1 << 20)
    assert took < 1 and peak < 100 * 2**20, (took, peak / 2**20)
    # and on the command line, from a pipe
    r = pool.run(["decompress", "-", "-o", "out.npy"], tmp_path, stdin=one_row, pipe=True)
    assert not check_cli_failure(r, "-", tmp_path, [], "d=2^20 T=32 header on a pipe",
                                 pool.base_rss)


# ---------------------------------------------------------------------------- collections
# (spec section 18; the crafted cases and the every-byte checks are in test_collections.py)

COLLECTION = None


def _collection_base() -> bytes:
    global COLLECTION
    if COLLECTION is None:
        import io

        from tqcli.library.collections import compress_collection

        rng = np.random.default_rng(18)
        buf = io.BytesIO()
        compress_collection({"layers/0/key": rng.standard_normal((16, 8)).astype(np.float32),
                             "ids": np.arange(6, dtype=np.int64), "m": np.ones(3, bool)},
                            buf, bits=3, chunk_rows=8, info={"metadata": {"a": "b"}})
        COLLECTION = buf.getvalue()
    return COLLECTION


def _read_collection(src):
    from tqcli.library.collection_file import open_collection

    with open_collection(src) as c:
        return [a for _, a in c.items()]


@settings(FUZZ, max_examples=300)
@given(ops=st.lists(OPS, min_size=1, max_size=4))
def test_hypothesis_mutated_collections_are_refused(ops):
    blob = _collection_base()
    data = mutate(blob, ops)
    assume(data != blob)
    for via, src in (("bytes", lambda: data), ("pipe", lambda: pipe_stream(data))):
        problems, _ = check_library_failure(lambda: _read_collection(src()),
                                            f"collection mutation {ops} via {via}",
                                            expected=tqcli.TqError)
        assert not problems, (via, ops, problems)


def test_hostile_collections_on_the_command_line(pool, tmp_path):
    """The crafted collections of test_collections through `tq decompress` (to each kind
    of container, and from a pipe) and `tq inspect --verify`: one line, exit 1, no output
    left, the input untouched, no name outside the folder."""
    from test_collections import hostile_cases

    cases = [(what, data) for what, data, rules in hostile_cases() if None not in rules]
    bad = []
    for i, (what, data) in enumerate(cases):
        folder = tmp_path / f"c{i}"
        folder.mkdir()
        (folder / "h.tqz").write_bytes(data)
        out = ("out.npz", "out.h5", "out.safetensors")[i % 3]
        for args, who, stdin in ((["decompress", "h.tqz", "-o", out], "h.tqz", None),
                                 (["inspect", "--verify", "h.tqz"], "h.tqz", None),
                                 (["decompress", "-", "-o", out], "-", data)):
            r = pool.run(args, folder, stdin=stdin, pipe=stdin is not None)
            problems = check_cli_failure(r, who, folder, ["h.tqz"], f"{what}: {args}",
                                         pool.base_rss)
            if (folder / "h.tqz").read_bytes() != data:
                problems.append("the input was modified")
            if problems:
                bad.append((what, args, problems))
        shutil.rmtree(folder)
        for stray in os.listdir(tmp_path):  # a crafted name written beside the folder
            COUNTS.note("outside", f"{what}: {stray}")
    assert sorted(os.listdir(tmp_path)) == []
    assert not bad, f"{len(bad)} failures, first: {bad[:5]}"
    print(f"\n[collections] {len(cases)} hostile collections x 3 commands: all refused")


# ---------------------------------------------------------------------------- search


def _search_all(src) -> None:
    """Search every row of a container (streamed), as `tq search` does."""
    with tqcli.open(src) as f:
        q = np.full((2, f.header.dim), 0.5)
        f.search(q, 3)


def _index_all(src) -> None:
    index = tqcli.load_index(src)
    index.search(np.full((2, index.dim), 0.5), 3)


def test_corpus_through_search():
    """Every mutant through the streamed search (bytes and a pipe) and load_index: the
    same FormatError, with an expected reader rule, as decompress gives."""
    bad = []
    for rec in MUTANTS:
        data = (CORPUS / rec["file"]).read_bytes()
        for via, call in (("search bytes", lambda: _search_all(data)),
                          ("search pipe", lambda: _search_all(pipe_stream(data))),
                          ("load_index", lambda: _index_all(data))):
            problems, exc = check_library_failure(call, f"{rec['file']} via {via}")
            if exc is not None:
                problems += _rule_problem(rec, exc)
            if problems:
                bad.append((rec["file"], rec["detail"], via, problems))
    assert not bad, f"{len(bad)} failures, first: {bad[:5]}"


def test_sampled_corpus_through_tq_search(pool, tmp_path):
    """A mutant of each sampled family through `tq search MUTANT q.npy -o hits.npz`:
    exit 1, one line naming the mutant (the library's refusal), no hits file left."""
    picked = {}
    for rec in MUTANTS:
        picked.setdefault(rec["mutation"], rec)

    def one(p, rec):
        folder = tmp_path / rec["file"].replace("/", "_")[:-4]
        folder.mkdir()
        name = Path(rec["file"]).name
        shutil.copyfile(CORPUS / rec["file"], folder / name)
        dim = tqcli.read_header(BASES[rec["base"]]).dim if rec["base"] in BASES else 16
        np.save(folder / "q.npy", np.full((2, dim), 0.5, np.float32))
        r = p.run(["search", name, "q.npy", "-o", "hits.npz"], folder)
        return check_cli_failure(r, name, folder, [name, "q.npy"],
                                 f"tq search {rec['file']}", p.base_rss)

    results = pool.map(one, [picked[f] for f in SAMPLE_FAMILIES if f in picked])
    bad = [b for b in results if b]
    assert len(picked) >= 5 and not bad, bad
