"""`inspect --verify` makes every check the decoder makes except the finiteness of the
decoded values (spec 13.5): every refused case of the fuzz corpus, the crafted collections,
every truncation, flip and inserted byte of an entropy-coded file, and its rANS streams
damaged under recomputed checksums (a coder state out of range, a changed lane count, a
cut or extra stream word) go through both `tqcli.decompress` and the verifier (the library
call `tq inspect --verify` makes), which must agree: both refuse, by the same rule -- or
both accept, where the only difference allowed is the decoder's `decoded-finite`.

The audit that asked for this found the verifier reporting OK for entropy-coded files the
decoder refused: the verifier had its own, shorter list of checks.  Now both run the same
code (Coding.check_payload, then Coding.check_decodable / the decoder's rANS stage).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import tqcli
from tqcli.fileio import verbs
from tqcli.format.header import CRC, FOOTER, INDEX_ENTRY, crc32

from fuzzkit import COUNTS

CORPUS = Path(__file__).parent / "corpus"


def _outcome(call):
    """(rule, text) of the FormatError / TqError call() raises, or (None, None)."""
    try:
        call()
    except tqcli.FormatError as e:
        return e.rule, str(e)
    except tqcli.TqError as e:
        return type(e).__name__, str(e)
    return None, None


def _decode_all(data: bytes):
    """What `tq decompress` decodes: the array, or every member of a collection."""
    from tqcli.library.collection_file import open_collection
    from tqcli.library.tqfile import CollectionError

    try:
        return tqcli.decompress(data)
    except CollectionError:
        with open_collection(data) as c:
            return [a for _, a in c.items()]


def _agree(data: bytes, what: str) -> list:
    """Both readers on data (bytes): the problems found, empty when they agree."""
    COUNTS.tried += 1
    dec = _outcome(lambda: _decode_all(data))
    ver = _outcome(lambda: verbs.inspect(data, verify=True))
    if dec[0] == ver[0] or (dec[0] == "decoded-finite" and ver[0] is None):
        return []
    if ver[0] is None:
        COUNTS.note("undetected", f"inspect --verify accepts {what}: decompress says {dec}")
    return [(what, "decompress", dec, "verify", ver)]


# ---------------------------------------------------------------------------- rebuilding


def _layout(blob: bytes):
    k = struct.unpack_from("<Q", blob, len(blob) - FOOTER.size + 8)[0]
    start = len(blob) - FOOTER.size - INDEX_ENTRY.size * k
    return [INDEX_ENTRY.unpack_from(blob, start + INDEX_ENTRY.size * i)[:2] for i in range(k)]


def rebuild(blob: bytes, payloads, header: bytes | None = None) -> bytes:
    """An entropy-coded container with these chunk payloads (and header), every offset,
    length and checksum recomputed: only the decoder's own checks can refuse it."""
    h = tqcli.read_header(blob)
    head = bytearray(header if header is not None else blob[:h.header_size])
    head[-4:] = CRC.pack(crc32(bytes(head[:-4])))
    out = bytearray(head)
    index = bytearray()
    for p in payloads:
        c = crc32(bytes(p))
        index += INDEX_ENTRY.pack(len(out), len(p), c)
        out += p + CRC.pack(c)
    foot = struct.pack("<QQ", len(out), len(payloads))
    out += index + foot + CRC.pack(crc32(bytes(index) + foot)) + b"TQZE"
    return bytes(out)


def payloads_of(blob: bytes) -> list[bytearray]:
    return [bytearray(blob[o:o + n]) for o, n in _layout(blob)]


def streams_of(blob: bytes, i: int, payload) -> list[tuple[int, int]]:
    """[(start, length)] of the rANS streams of chunk i's payload (its own offsets)."""
    h = tqcli.read_header(blob)
    segs = -(-h.chunk_rows_of(i) // h.model.segment_rows)
    at, out = 4 * segs, []
    for n in np.frombuffer(bytes(payload[:4 * segs]), "<u4"):
        out.append((at, int(n)))
        at += int(n)
    return out


def entropy_stream_cases(blob: bytes) -> list[tuple[str, bytes]]:
    """The damages the audit named, each with every checksum right."""
    h = tqcli.read_header(blob)
    ps = payloads_of(blob)
    cases = []

    def with_payload(i, p):
        q = [bytearray(x) for x in ps]
        q[i] = p
        return rebuild(blob, q)

    first = ps[0]
    s0, n0 = streams_of(blob, 0, first)[0]
    lens = [n0]
    # a coder state out of range: above 2^63, and below 2^31
    for j in range(h.model.lanes):
        for hi, lo, what in ((0x80000000, 0, "state >= 2^63"), (0, 5, "state < 2^31")):
            p = bytearray(first)
            struct.pack_into("<II", p, s0 + 8 * j, lo, hi)
            cases.append((f"lane {j} {what}", with_payload(0, p)))
    # a stream word cut (the last one) and one added (zero, and a copy of the last)
    for extra in (None, b"\0\0\0\0", bytes(first[s0 + lens[0] - 4:s0 + lens[0]])):
        p = bytearray(first)
        if extra is None:
            del p[s0 + lens[0] - 4:s0 + lens[0]]
            struct.pack_into("<I", p, 0, lens[0] - 4)
            what = "last word of stream 0 cut"
        else:
            p[s0 + lens[0]:s0 + lens[0]] = extra
            struct.pack_into("<I", p, 0, lens[0] + 4)
            what = f"word {extra.hex()} added to stream 0"
        cases.append((what, with_payload(0, p)))
    # the header's lane count changed (every other field and checksum right)
    lanes_at = 48 + 8 * len(h.shape) + 3
    for lanes in {1, max(1, h.model.lanes // 2), h.model.lanes + 1, 32} - {h.model.lanes}:
        head = bytearray(blob[:h.header_size])
        head[lanes_at] = lanes
        cases.append((f"lanes {h.model.lanes} -> {lanes}", rebuild(blob, ps, bytes(head))))
    return cases


ENTROPY = tqcli.compress(np.random.default_rng(6).standard_normal((20, 24))
                         .astype(np.float32), bits=2.5, coding="entropy", chunk_rows=8)


def test_the_entropy_damages_the_audit_named_are_refused_by_both():
    """Before: decompress refused each (entropy-stream), inspect --verify said OK."""
    cases = entropy_stream_cases(ENTROPY)
    assert len(cases) >= 20
    bad = []
    for what, data in cases:
        assert data != ENTROPY
        rule, _ = _outcome(lambda: tqcli.decompress(data))
        assert rule in ("entropy-stream", "index-layout"), (what, rule)  # 32 lanes: too short
        bad += _agree(data, what)
    assert not bad, bad[:5]
    # the rebuilt container itself is valid: rebuild() changes nothing else
    assert rebuild(ENTROPY, payloads_of(ENTROPY)) == ENTROPY


def test_every_corpus_mutant_is_refused_alike():
    import json

    manifest = json.loads((CORPUS / "manifest.json").read_text())
    bad = []
    for rec in manifest["mutants"]:
        bad += _agree((CORPUS / rec["file"]).read_bytes(), rec["file"])
    assert not bad, f"{len(bad)} disagreements, first: {bad[:5]}"
    assert len(manifest["mutants"]) >= 300


def test_every_crafted_collection_is_refused_alike():
    from test_collections import hostile_cases

    bad = []
    n = 0
    for what, data, rules in hostile_cases():
        bad += _agree(data, what)
        n += 1
    assert not bad, f"{len(bad)} disagreements, first: {bad[:5]}"
    assert n >= 40


@pytest.mark.parametrize("part", ["prefix", "flip", "insert"])
def test_every_truncation_flip_and_inserted_byte_of_an_entropy_file_alike(part):
    blob = ENTROPY
    bad = []
    for pos in range(len(blob)):
        if part == "prefix":
            data = blob[:pos]
        elif part == "flip":
            b = bytearray(blob)
            b[pos] ^= 1 << (pos % 8)
            data = bytes(b)
        else:
            data = blob[:pos] + b"\0" + blob[pos:]
        bad += _agree(data, f"{part} at {pos}")
    assert not bad, f"{len(bad)} disagreements, first: {bad[:5]}"


def test_every_entropy_stream_byte_changed_under_recomputed_checksums_alike():
    """Every byte of every rANS stream +1, checksums recomputed (test_fuzz's family)."""
    bad = []
    ps = payloads_of(ENTROPY)
    for i, p in enumerate(ps):
        for a, n in streams_of(ENTROPY, i, p):
            for pos in range(a, a + n):
                q = [bytearray(x) for x in ps]
                q[i][pos] = (q[i][pos] + 1) % 256
                bad += _agree(rebuild(ENTROPY, q), f"chunk {i} byte {pos} +1")
    assert not bad, f"{len(bad)} disagreements, first: {bad[:5]}"


def test_an_entropy_file_refused_only_for_its_decoded_values_passes_verify():
    """The one check verify leaves out (13.5): a codebook of huge but finite values and
    huge scales, whose decoded values overflow; decompress refuses it (decoded-finite),
    verify accepts it."""
    blob = tqcli.compress(np.random.default_rng(6).standard_normal((20, 24))
                          .astype(np.float32), bits=2.5, coding="entropy", chunk_rows=8,
                          scale_dtype="float32")
    h = tqcli.read_header(blob)
    ps = payloads_of(blob)
    at = len(ps[0]) - h.chunk_rows * h.scale_size
    struct.pack_into("<8f", ps[0], at, *[3.4e38] * 8)
    head = bytearray(blob[:h.header_size])
    m = len(h.codebook)
    struct.pack_into(f"<{m}f", head, 48 + 8 * len(h.shape) + 24,
                     *np.linspace(-3e38, 3e38, m).astype(np.float32))
    data = rebuild(blob, ps, bytes(head))
    assert _outcome(lambda: tqcli.decompress(data))[0] == "decoded-finite"
    assert verbs.inspect(data, verify=True)["verified"] is True
    assert _agree(data, "decoded-finite only") == []
