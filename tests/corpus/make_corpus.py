#!/usr/bin/env python3
"""Regenerate the seeded mutation corpus of hostile .tqz files (see README.md here).

    python tests/corpus/make_corpus.py            # rewrite mutants/ and manifest.json
    python tests/corpus/make_corpus.py --check    # regenerate in memory, compare, exit 1 on drift
    python tests/corpus/make_corpus.py --new-bases   # also re-encode base/*.tqz with tq

The mutants are derived from the committed base containers (base/*.tqz) by a fixed list of
mutation families driven by random.Random(SEED), so the corpus does not change when tq's
encoder changes; only --new-bases re-encodes the bases (with tqcli.compress, from inputs
drawn with fixed seeds).  Every mutant is checked here, before it is written, to be
rejected by the library with tqcli.FormatError both as bytes and as a non-seekable stream,
for one of the reader rules (spec/tqz-v1.md section 13) its `rules` list names.

Mutations that a checksum cannot catch by design are not in the corpus: re-checksumming a
changed payload, or swapping two chunks together with their index entries, makes a
different VALID container (CRC-32 detects accidents, it does not authenticate; see the
SECURITY section of README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20240604
MAX_CORPUS_BYTES = 1 << 20

MAGIC = b"\x89TQZ\r\n\x1a\n"
FIXED = struct.Struct("<8sHHIBBBBBBBBIIQQ")   # the 48-byte fixed header (spec 3.1)
FIELDS = ("magic version flags header_size mode bits scale_rule scale_dtype source_dtype "
          "rotation rounds ndim dim chunk_rows n_vectors seed").split()
FIELD_FMT = dict(zip(FIELDS, ["8s", "H", "H", "I"] + ["B"] * 8 + ["I", "I", "Q", "Q"]))
ENTRY = struct.Struct("<QII")
FOOTER = struct.Struct("<QQI4s")

# name -> (input shape, dtype, data seed, zero rows, tqcli.compress options)
BASES = {
    "mse3": ((40, 16), "float32", 1, [5],
             dict(bits=3, mode="mse", seed=0, scale_rule="ls", scale_dtype="float32",
                  chunk_rows=8)),
    "prod2": ((3, 10, 12), "float16", 2, [],
              dict(bits=2, mode="prod", seed=2**64 - 1, scale_rule="norm",
                   scale_dtype="float32", chunk_rows=8)),
    "mse1h": ((20, 7), "float64", 3, [0],
              dict(bits=1, mode="mse", seed=7, scale_rule="ip", scale_dtype="float16",
                   chunk_rows=8)),
}


def crc32(data) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


# ---------------------------------------------------------------------------- layout


class Layout:
    """Every region of a valid container, computed from its header bytes alone (spec 5)."""

    def __init__(self, blob: bytes):
        v = dict(zip(FIELDS, FIXED.unpack_from(blob)))
        self.blob = blob
        self.v = v
        self.ndim, self.dim, self.rows = v["ndim"], v["dim"], v["chunk_rows"]
        self.n = v["n_vectors"]
        q = v["bits"] if v["mode"] == 0 else v["bits"] - 1
        self.k_cb = 1 << q if q > 0 else 0
        z = 4 if v["scale_dtype"] == 0 else 2
        f = 1 if v["mode"] == 0 else 2
        self.scale_size = z

        def payload(r):
            codes = -(-r * self.dim * q // 8)
            signs = -(-r * self.dim // 8) if v["mode"] == 1 else 0
            return codes + signs + f * r * z, codes + signs

        self.payload = payload
        self.header_size = v["header_size"]
        self.chunks = []  # (offset, payload length, codes+signs length, rows)
        off = self.header_size
        for i in range(-(-self.n // self.rows)):
            r = min(self.rows, self.n - i * self.rows)
            p, cs = payload(r)
            self.chunks.append((off, p, cs, r))
            off += p + 4
        self.index_offset = off
        self.footer_offset = off + ENTRY.size * len(self.chunks)
        assert self.footer_offset + FOOTER.size == len(blob), "not a valid base container"

    def regions(self) -> dict[str, tuple[int, int]]:
        r, off = {}, 0
        for name in FIELDS:
            size = struct.calcsize("<" + FIELD_FMT[name])
            r[name] = (off, off + size)
            off += size
        r["shape"] = (off, off + 8 * self.ndim)
        off += 8 * self.ndim
        if self.k_cb:
            r["codebook"] = (off, off + 4 * self.k_cb)
        off += 4 * self.k_cb
        r["header_crc"] = (off, off + 4)
        for i, (o, p, _, _) in enumerate(self.chunks):
            r[f"chunk{i}_payload"] = (o, o + p)
            r[f"chunk{i}_crc"] = (o + p, o + p + 4)
        r["index"] = (self.index_offset, self.footer_offset)
        f = self.footer_offset
        r.update(footer_index_offset=(f, f + 8), footer_chunk_count=(f + 8, f + 16),
                 footer_crc=(f + 16, f + 20), footer_end_magic=(f + 20, f + 24))
        return r

    # helpers that rebuild checksums, so that only a later check can catch a change
    def fix_header_crc(self, b: bytearray) -> None:
        h = self.header_size
        struct.pack_into("<I", b, h - 4, crc32(bytes(b[:h - 4])))

    def fix_index_crc(self, b: bytearray) -> None:
        f = len(b) - FOOTER.size
        index = bytes(b[self.index_offset:f])
        struct.pack_into("<I", b, f + 16, crc32(index + bytes(b[f:f + 16])))


# ---------------------------------------------------------------------------- mutations


HEADER_FIELD_WORDS = {
    "magic": ["magic"], "version": ["version"], "flags": ["flags", "coding", "header-crc"],
    "header_size": ["header-size", "header-crc", "truncated", "length"],
}
TRUNC_WORDS = ["truncated", "length", "magic"]


def mutants_of(name: str, blob: bytes, rng: random.Random):
    """Yield (mutation, detail, bytes, rules) for one base container."""
    L = Layout(blob)
    regions = L.regions()
    n = len(blob)

    def flip(pos, bit):
        b = bytearray(blob)
        b[pos] ^= 1 << bit
        return bytes(b)

    def region_words(region):
        if region in HEADER_FIELD_WORDS:
            return HEADER_FIELD_WORDS[region]
        if region.startswith("chunk") and region[5].isdigit():
            return ["chunk-crc"]
        if region == "footer_end_magic":
            return ["footer-magic"]
        if region == "index" or region.startswith("footer"):
            return ["index-crc"]
        return ["header-crc"]  # any other header byte: the header CRC

    # 1. one flipped bit in every region (two in the larger ones), and byte overwrites
    for region, (a, z) in regions.items():
        for _ in range(2 if z - a >= 8 else 1):
            pos, bit = rng.randrange(a, z), rng.randrange(8)
            yield "flip", f"bit {bit} of byte {pos} ({region})", flip(pos, bit), \
                region_words(region)
    for _ in range(8):
        pos = rng.randrange(n)
        region = next(r for r, (a, z) in regions.items() if a <= pos < z)
        b = bytearray(blob)
        b[pos] = (b[pos] + rng.randrange(1, 256)) % 256
        yield "set_byte", f"byte {pos} ({region}) = 0x{b[pos]:02x}", bytes(b), \
            region_words(region)

    # 2. runs of 0xFF over lengths and counts: raw (a checksum catches them) and with the
    #    covering checksum recomputed (the range and layout checks must catch them)
    ff_header = {"header_size": ["header-size"], "ndim": ["rank"], "dim": ["dim"],
                 "chunk_rows": ["chunk-rows"], "n_vectors": ["vector-count"],
                 "rounds": ["rounds"], "shape": ["shape"]}
    for field, words in ff_header.items():
        a, z = regions[field]
        b = bytearray(blob)
        b[a:z] = b"\xff" * (z - a)
        yield "ff_run", f"{field} = all 0xFF", bytes(b), \
            ["header-size"] if field == "header_size" else ["header-crc"]
        if field != "header_size":
            L.fix_header_crc(b)
            yield "ff_run_crc_fixed", f"{field} = all 0xFF, header CRC recomputed", \
                bytes(b), words
    a, z = regions["index"]
    for what, (lo, hi) in {"entry 0 offset": (a, a + 8), "entry 0 length": (a + 8, a + 12),
                           f"entry {len(L.chunks) - 1} offset": (z - 16, z - 8),
                           "footer index_offset": regions["footer_index_offset"],
                           "footer chunk_count": regions["footer_chunk_count"]}.items():
        b = bytearray(blob)
        b[lo:hi] = b"\xff" * (hi - lo)
        yield "ff_run", f"{what} = all 0xFF", bytes(b), ["index-crc"]
        L.fix_index_crc(b)
        yield "ff_run_crc_fixed", f"{what} = all 0xFF, index CRC recomputed", bytes(b), \
            ["index-layout", "footer-layout"]
    for _ in range(3):
        pos, run = rng.randrange(n), rng.randrange(2, 40)
        b = bytearray(blob)
        b[pos:pos + run] = b"\xff" * len(b[pos:pos + run])
        if bytes(b) != blob:
            yield "ff_run", f"{len(b[pos:pos + run])} bytes at {pos} = 0xFF", bytes(b), []

    # 3. truncations at region boundaries (+-1) and inside every region
    cuts = {0, 1, 7, 8, 15, 16, FIXED.size, n - 1}
    for region, (a, z) in regions.items():
        if region in ("shape", "codebook", "header_crc", "index") or \
                region.startswith(("chunk0", "chunk1", "footer")):
            cuts.update({a, a + 1, rng.randrange(a, z)})
        elif region.startswith("chunk") and region[5].isdigit():
            cuts.add(rng.randrange(a, z))
    for cut in sorted(c for c in cuts if 0 <= c < n):
        yield "truncate", f"first {cut} of {n} bytes", blob[:cut], TRUNC_WORDS

    # 4. insertions and deletions
    for _ in range(5):
        pos, size = rng.randrange(n + 1), rng.randrange(1, 17)
        data = bytes(rng.randrange(256) for _ in range(size))
        yield "insert", f"{size} random bytes at {pos}", blob[:pos] + data + blob[pos:], []
    for _ in range(5):
        pos = rng.randrange(n)
        size = min(rng.randrange(1, 17), n - pos)
        yield "delete", f"bytes {pos}..{pos + size - 1}", blob[:pos] + blob[pos + size:], []

    # 5. whole chunks duplicated, dropped, swapped (their index entries left alone)
    chunk = [(o, o + p + 4) for o, p, _, _ in L.chunks]
    (a0, z0), (a1, z1), (al, zl) = chunk[0], chunk[1], chunk[-1]
    yield "dup_chunk", "chunk 0 twice", blob[:z0] + blob[a0:z0] + blob[z0:], []
    yield "dup_chunk", f"last chunk ({len(chunk) - 1}) twice", blob[:zl] + blob[al:zl] + \
        blob[zl:], []
    yield "drop_chunk", "chunk 1 removed", blob[:a1] + blob[z1:], []
    yield "swap_chunks", "chunks 0 and 1 swapped (index CRCs left alone)", \
        blob[:a0] + blob[a1:z1] + blob[a0:z0] + blob[z1:], ["chunk-index-crc"]
    yield "swap_chunks", f"chunks 0 and {len(chunk) - 1} swapped", \
        blob[:a0] + blob[al:zl] + blob[z0:al] + blob[a0:z0] + blob[zl:], []

    # 6. index entries rewritten to overlap, go out of order, leave gaps or point past the
    #    end, with the index CRC recomputed: only the layout check can catch these
    entries = [list(ENTRY.unpack_from(blob, L.index_offset + 16 * i))
               for i in range(len(L.chunks))]

    def with_index(es, detail, words=("index-layout", "footer-layout")):
        b = bytearray(blob)
        for i, e in enumerate(es):
            ENTRY.pack_into(b, L.index_offset + 16 * i, *e)
        L.fix_index_crc(b)
        assert bytes(b) != blob
        return "index_layout", detail + ", index CRC recomputed", bytes(b), list(words)

    es = [e[:] for e in entries]
    es[1][0] = es[0][0] + 4
    yield with_index(es, "entry 1 overlaps chunk 0 (offset + 4)")
    es = [e[:] for e in entries]
    es[2][0] = es[1][0]
    yield with_index(es, "entries 1 and 2 share an offset")
    es = [e[:] for e in entries]
    es[0], es[1] = es[1], es[0]
    yield with_index(es, "entries 0 and 1 swapped (offsets out of order)")
    yield with_index(entries[::-1], "all entries in reverse order")
    es = [e[:] for e in entries]
    es[1][0] += 1
    yield with_index(es, "entry 1 offset + 1 (gap)")
    es = [e[:] for e in entries]
    es[-1][0] = n + 1000
    yield with_index(es, "last entry points past the end of the file")
    es = [e[:] for e in entries]
    es[0][1] += 1
    yield with_index(es, "entry 0 length + 1 (overlaps chunk 1)")
    es = [e[:] for e in entries]
    es[0][1] = 0
    yield with_index(es, "entry 0 length 0")
    es = [e[:] for e in entries]
    es[1][2] ^= 0x00010000
    yield with_index(es, "entry 1 records another CRC than chunk 1's", ["chunk-index-crc"])
    es = [e[:] for e in entries]
    es[0][2], es[1][2] = es[1][2], es[0][2]
    yield with_index(es, "entries 0 and 1 exchange their CRCs", ["chunk-index-crc"])
    for what, value in (("+16", L.index_offset + 16), ("-16", L.index_offset - 16),
                        ("0", 0)):
        b = bytearray(blob)
        struct.pack_into("<Q", b, L.footer_offset, value)
        L.fix_index_crc(b)
        yield "footer_layout", f"footer index_offset {what}, index CRC recomputed", \
            bytes(b), ["footer-layout"]
    for value in (len(L.chunks) + 1, len(L.chunks) - 1, 0):
        b = bytearray(blob)
        struct.pack_into("<Q", b, L.footer_offset + 8, value)
        L.fix_index_crc(b)
        yield "footer_layout", f"footer chunk_count {value}, index CRC recomputed", \
            bytes(b), ["footer-layout"]

    # 7. unknown versions and flags, with and without the header CRC recomputed
    for version in (0, 2, 0xFFFF):
        b = bytearray(blob)
        struct.pack_into("<H", b, 8, version)
        yield "version", f"version {version}", bytes(b), ["version"]
        L.fix_header_crc(b)
        yield "version", f"version {version}, header CRC recomputed", bytes(b), \
            ["version"]
    for bit in (0, 1, 7, 8, 15):
        b = bytearray(blob)
        struct.pack_into("<H", b, 10, 1 << bit)
        L.fix_header_crc(b)
        # bit 8 says a centre follows the codebook (tq 1.1), which these headers lack;
        # bit 15 alone makes it a collection header (spec 18), whose JSON these bytes are not
        # bit 0 is coding 1, the entropy coding (tq 1.3), whose header block these bytes
        # are not either; bit 1 is coding 2, the adaptive coding (tq 1.4), likewise
        rules = ["header-size"] if bit == 8 else ["collection-header"] if bit == 15 \
            else ["header-size", "entropy-model", "entropy-mode"] if bit == 0 \
            else ["header-size", "adaptive-model", "adaptive-mode", "adaptive-dim"] \
            if bit == 1 else ["flags", "coding"]
        yield "flags", f"flag bit {bit} set, header CRC recomputed", bytes(b), rules

    # 8. every header field set to a value a reader must refuse, header CRC recomputed
    v = L.v
    bad_fields = [("mode", 2, ["mode"]), ("mode", 255, ["mode"]), ("bits", 0, ["bits"]),
                  ("bits", 9, ["bits"]), ("scale_rule", 3, ["scale-rule"]),
                  ("scale_dtype", 7, ["scale-dtype"]), ("scale_dtype", 255, ["scale-dtype"]),
                  ("source_dtype", 0, ["source-dtype"]), ("source_dtype", 5, ["source-dtype"]),
                  ("rotation", 0, ["rotation"]), ("rotation", 3, ["rotation"]),
                  ("rounds", 0, ["rounds"]), ("rounds", 33, ["rounds"]),
                  ("ndim", 0, ["rank"]), ("ndim", 33, ["rank"]),
                  ("ndim", v["ndim"] + 1, ["shape", "header-size", "rank"]),
                  ("dim", 0, ["dim"]), ("dim", 1, ["dim"]),
                  ("dim", (1 << 20) + 1, ["dim"]), ("dim", v["dim"] + 1, ["shape"]),
                  ("chunk_rows", 0, ["chunk-rows"]), ("chunk_rows", 12, ["chunk-rows"]),
                  ("chunk_rows", (1 << 20) + 8, ["chunk-rows"]),
                  ("n_vectors", v["n_vectors"] + 1, ["shape"]),
                  ("n_vectors", 1 << 60, ["vector-count"])]
    if v["mode"] == 1:
        bad_fields.append(("scale_rule", 0, ["prod-rule"]))
        bad_fields.append(("dim", 8192, ["prod-dim", "shape"]))
    if v["mode"] == 0:
        # a scale dtype code this reader does not know: refused, or (should a later reader
        # define it) a file whose length no longer matches
        bad_fields.append(("scale_dtype", 2, []))
    for field, value, words in bad_fields:
        b = bytearray(blob)
        a, _ = regions[field]
        struct.pack_into("<" + FIELD_FMT[field], b, a, value)
        L.fix_header_crc(b)
        yield "header_field", f"{field} = {value}, header CRC recomputed", bytes(b), words
    a, _ = regions["shape"]
    for what, value in (("shape[0] + 1", None), ("shape[0] = 2^60", 1 << 60)):
        b = bytearray(blob)
        s0 = struct.unpack_from("<Q", b, a)[0]
        struct.pack_into("<Q", b, a, s0 + 1 if value is None else value)
        L.fix_header_crc(b)
        yield "header_field", f"{what}, header CRC recomputed", bytes(b), ["shape"]
    if L.k_cb >= 2:
        a, _ = regions["codebook"]
        for what, patch in (("codebook[0] = NaN", struct.pack("<f", float("nan"))),
                            ("codebook[0] = -inf", struct.pack("<f", float("-inf"))),
                            ("codebook[0] = codebook[1]", blob[a + 4:a + 8]),
                            ("codebook[0] = +1", struct.pack("<f", 1.0))):
            b = bytearray(blob)
            b[a:a + 4] = patch
            L.fix_header_crc(b)
            yield "codebook", f"{what}, header CRC recomputed", bytes(b), ["codebook"]

    # 9. non-finite stored scales behind correct checksums everywhere
    nan = b"\x00\x7e" if L.scale_size == 2 else struct.pack("<f", float("nan"))
    inf = b"\x00\x7c" if L.scale_size == 2 else struct.pack("<f", float("inf"))
    for i, value, label in ((0, nan, "NaN"), (len(L.chunks) - 1, inf, "+inf")):
        o, p, cs, r = L.chunks[i]
        b = bytearray(blob)
        b[o + cs:o + cs + L.scale_size] = value
        crc = crc32(bytes(b[o:o + p]))
        struct.pack_into("<I", b, o + p, crc)
        struct.pack_into("<I", b, L.index_offset + 16 * i + 12, crc)
        L.fix_index_crc(b)
        yield "scale_nonfinite", f"chunk {i} row 0 scale = {label}, all CRCs recomputed", \
            bytes(b), ["scale-finite"]

    # 10. trailing garbage
    for what, extra in (("one zero byte", b"\0"), ("16 random bytes",
                                                   bytes(rng.randrange(256) for _ in range(16))),
                        ("a second footer", blob[-FOOTER.size:]), ("the whole file again", blob),
                        ("'TQZE'", b"TQZE")):
        yield "trailing", what, blob + extra, ["trailing"]


def not_containers():
    """Inputs that are not .tqz files at all (shared by every base)."""
    yield "not_tqz", "empty file", b"", ["magic"]
    yield "not_tqz", "magic only", MAGIC, ["truncated", "length"]
    yield "not_tqz", "a PNG signature", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, ["magic"]
    yield "not_tqz", "a gzip header", b"\x1f\x8b\x08\x00" + b"\0" * 40, ["magic"]
    yield "not_tqz", "a .npy file", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'" + b" " * 40, \
        ["magic"]
    yield "not_tqz", "lower-case magic", b"\x89tqz\r\n\x1a\n" + b"\0" * 60, ["magic"]
    yield "not_tqz", "1 KiB of 0xFF", b"\xff" * 1024, ["magic"]
    yield "not_tqz", "magic + 0xFF up to 1 KiB", MAGIC + b"\xff" * 1016, ["version"]


# ---------------------------------------------------------------------------- checking


def library_verdict(data: bytes):
    """(kind, rule, message) of decoding data with tqcli as bytes and as a non-seekable
    stream."""
    import tqcli

    class Pipe(io.RawIOBase):
        def __init__(self, d):
            self.d = io.BytesIO(d)

        def readable(self):
            return True

        def readinto(self, b):
            return self.d.readinto(b)

    out = []
    for src in (data, io.BufferedReader(Pipe(data))):
        try:
            tqcli.decompress(src)
        except tqcli.FormatError as e:
            out.append(("FormatError", e.rule, str(e)))
        except Exception as e:  # noqa: BLE001
            out.append((type(e).__name__, None, str(e)))
        else:
            out.append(("decoded", None, ""))
    return out


def make_bases() -> dict[str, bytes]:
    import numpy as np

    import tqcli

    out = {}
    for name, (shape, dtype, seed, zeros, options) in BASES.items():
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(shape).reshape(-1, shape[-1])
        x *= np.exp(rng.uniform(-2, 2, (x.shape[0], 1)))
        x[zeros] = 0
        out[name] = tqcli.compress(x.reshape(shape).astype(dtype), **options)
    return out


def build(bases: dict[str, bytes]) -> tuple[dict, dict[str, bytes]]:
    """The manifest and {relative path: bytes} of every mutant."""
    rng = random.Random(SEED)
    files, records = {}, []
    seen = set()

    def add(base, mutation, detail, data, rules):
        if data in seen or data in bases.values():
            return
        seen.add(data)
        rel = f"mutants/{base}-{len(records):03d}-{mutation}.tqz"
        files[rel] = data
        records.append({"file": rel, "base": base, "mutation": mutation, "detail": detail,
                        "rules": rules, "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest()})

    for name, blob in bases.items():
        for mutation, detail, data, rules in mutants_of(name, blob, rng):
            add(name, mutation, detail, data, rules)
    for mutation, detail, data, rules in not_containers():
        add("none", mutation, detail, data, rules)
    manifest = {
        "about": "Hostile .tqz files for tests/test_fuzz.py; every one must be refused "
                 "with tqcli.FormatError / `tq: FILE: reason`, exit 1.  `rules`: the "
                 "error's rule (FormatError.rule, spec section 13) is one of these; "
                 "[] = any rule.",
        "generator": "tests/corpus/make_corpus.py", "seed": SEED,
        "bases": {name: {"file": f"base/{name}.tqz",
                         "sha256": hashlib.sha256(blob).hexdigest(),
                         "shape": list(BASES[name][0]), "dtype": BASES[name][1],
                         "options": BASES[name][4]}
                  for name, blob in bases.items()},
        "families": sorted({r["mutation"] for r in records}),
        "count": len(records),
        "mutants": records,
    }
    return manifest, files


def verify(manifest: dict, files: dict[str, bytes]) -> list[str]:
    problems = []
    for rec in manifest["mutants"]:
        for (kind, rule, msg), via in zip(library_verdict(files[rec["file"]]),
                                          ("bytes", "stream")):
            if kind != "FormatError":
                problems.append(f"{rec['file']} ({via}): {kind} {msg}")
            elif rec["rules"] and rule not in rec["rules"]:
                problems.append(f"{rec['file']} ({via}): rule {rule} ({msg!r}) is not one of "
                                f"{rec['rules']}")
    return problems


def dump_manifest(manifest: dict) -> str:
    """JSON with one line per mutant (diffs stay readable)."""
    head = {k: v for k, v in manifest.items() if k != "mutants"}
    text = json.dumps(head, indent=1)[:-2]
    rows = ",\n  ".join(json.dumps(r) for r in manifest["mutants"])
    return text + ',\n "mutants": [\n  ' + rows + "\n ]\n}\n"


def load_bases(folder: str = HERE) -> dict[str, bytes]:
    out = {}
    for name in BASES:
        with open(os.path.join(folder, "base", f"{name}.tqz"), "rb") as f:
            out[name] = f.read()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="compare a fresh generation with the committed corpus")
    ap.add_argument("--new-bases", action="store_true",
                    help="re-encode base/*.tqz with the installed tq first")
    args = ap.parse_args(argv)
    bases = make_bases() if args.new_bases else load_bases()
    manifest, files = build(bases)
    problems = verify(manifest, files)
    total = sum(len(b) for b in files.values()) + sum(len(b) for b in bases.values())
    if total > MAX_CORPUS_BYTES:
        problems.append(f"corpus is {total} bytes, over {MAX_CORPUS_BYTES}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    if args.check:
        with open(os.path.join(HERE, "manifest.json")) as f:
            committed = json.load(f)
        drift = committed != json.loads(json.dumps(manifest))
        for rel, data in files.items():
            path = os.path.join(HERE, rel)
            if not os.path.exists(path) or open(path, "rb").read() != data:
                drift = True
        print("corpus matches the generator" if not drift else "corpus differs", file=sys.stderr)
        return 1 if drift else 0
    os.makedirs(os.path.join(HERE, "base"), exist_ok=True)
    for name, blob in bases.items():
        with open(os.path.join(HERE, "base", f"{name}.tqz"), "wb") as f:
            f.write(blob)
    mdir = os.path.join(HERE, "mutants")
    os.makedirs(mdir, exist_ok=True)
    for old in os.listdir(mdir):
        os.remove(os.path.join(mdir, old))
    for rel, data in files.items():
        with open(os.path.join(HERE, rel), "wb") as f:
            f.write(data)
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        f.write(dump_manifest(manifest))
    print(f"{len(files)} mutants of {len(bases)} bases, {total} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
