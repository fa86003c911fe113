#!/usr/bin/env python3
"""Write the crafted files of issue 23 into tests/corpus/crafted/, with crafted.json naming
each file, the command that must refuse it, what it does, and the rules one of which must
refuse it (FormatError.rule of spec section 13.6, or for an input InputError.kind).

    python tests/corpus/make_crafted.py          # rewrite the folder
    python tests/corpus/make_crafted.py --check  # compare, exit 1 on drift

* valid entropy-coded files that declare far more than they hold (rule ratio, spec 13.9),
  from tests/bombs.py;
* entropy-coded streams damaged under recomputed checksums, which `inspect --verify` used
  to pass while decompress refused them (a coder state out of range, a changed lane count,
  a stream word cut or added; rule entropy-stream), derived from the committed
  base-entropy.tqz (so the corpus does not depend on tq's encoder);
* an .npz whose member deflates about 1000:1 (kind ratio, for `tq compress`);
* adaptive-coded files (spec 21) with a header block or a class stream damaged under
  recomputed checksums (rules adaptive-model, adaptive-basis, adaptive-mode,
  adaptive-stream), derived from the committed test vector spec/vectors/adaptive_b2_d48.tqz.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "crafted")
BASE = os.path.join(OUT, "base-entropy.tqz")
ADAPTIVE_BASE = os.path.join(HERE, os.pardir, os.pardir, "spec", "vectors",
                             "adaptive_b2_d48.tqz")
sys.path.insert(0, os.path.dirname(HERE))


def build() -> tuple[dict, dict]:
    from bombs import entropy_bomb, zip_bomb_npz
    from test_verify_parity import entropy_stream_cases

    cases = [("ratio: 7 KB declaring 6.25 GiB of float64 (100 chunks of 8 zero rows of "
              "d = 2^20)", entropy_bomb(chunks=100), ["ratio"], "tqz"),
             ("ratio: one chunk of 8 zero rows of d = 4096, 256 KiB from 80 bytes",
              entropy_bomb(chunks=1, dim=4096), ["ratio"], "tqz")]
    with open(BASE, "rb") as f:
        base = f.read()
    for what, data in entropy_stream_cases(base):
        cases.append((f"entropy-stream: {what}", data, ["entropy-stream", "index-layout"],
                      "tqz"))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "z.npz")
        zip_bomb_npz(path, gib=1 / 256)
        with open(path, "rb") as f:
            cases.append(("ratio: an .npz member of 4 MiB of zeros deflated to 4 KB",
                          f.read(), ["ratio"], "npz"))
    with open(ADAPTIVE_BASE, "rb") as f:
        for what, data, rules in adaptive_cases(f.read()):
            cases.append((what, data, rules, "tqz"))
    manifest, files = [], {}
    for i, (what, data, rules, ext) in enumerate(cases):
        slug = re.sub(r"[^a-z0-9]+", "_", what.lower()).strip("_")[:40]
        name = f"{i:03d}-{slug}.{ext}"
        files[name] = data
        manifest.append({"file": name, "detail": what, "rules": rules,
                         "command": "compress" if ext == "npz" else "decompress"})
    return {"base": os.path.basename(BASE), "cases": manifest}, files


def adaptive_cases(blob: bytes) -> list:
    """(what, bytes, rules) of damaged adaptive-coded files, every checksum recomputed."""
    import struct

    import numpy as np
    from test_verify_parity import payloads_of, rebuild

    import tqcli

    h = tqcli.read_header(blob)
    m = h.model
    ps = payloads_of(blob)
    head = blob[:h.header_size]
    at = 48 + 8 * len(h.shape)  # the coding's block
    sym = 2 * m.n_classes
    cls_at = at + 32 + sym + 6 * sum(len(c) for c in m.codebooks)
    freq_at = at + 32 + sym + 4 * sum(len(c) for c in m.codebooks)
    out = []

    def with_head(what, pos, value, rules):
        b = bytearray(head)
        b[pos:pos + len(value)] = value
        out.append((what, rebuild(blob, ps, bytes(b)), rules))

    with_head("adaptive-model: every component in class 0, the others unused", cls_at,
              bytes(m.k), ["adaptive-model"])
    f0 = int(np.frombuffer(blob, "<u2", count=1, offset=freq_at)[0])
    with_head("adaptive-model: class 0's frequencies sum to 2^P + 1", freq_at,
              struct.pack("<H", f0 + 1), ["adaptive-model"])
    with_head("adaptive-basis: an int8 row scale of +inf", cls_at + m.k,
              struct.pack("<f", float("inf")), ["adaptive-basis"])
    with_head("adaptive-mode: prod mode (norm scale rule)", 16, bytes([1, h.bits, 1]),
              ["adaptive-mode"])
    # class streams: 4 bytes moved from stream 0 to stream 1 (the lengths still add up),
    # and a coder state above 2^63
    first = bytearray(ps[0])
    lens = list(struct.unpack_from(f"<{m.n_classes}I", first, 0))
    moved = bytearray(first)
    struct.pack_into("<II", moved, 0, lens[0] - 4, lens[1] + 4)
    q = [bytearray(p) for p in ps]
    q[0] = moved
    out.append(("adaptive-stream: 4 bytes moved from class stream 0 to 1", rebuild(blob, q),
                ["adaptive-stream"]))
    state = bytearray(first)
    struct.pack_into("<II", state, 4 * m.n_classes, 0, 0x80000000)
    q = [bytearray(p) for p in ps]
    q[0] = state
    out.append(("adaptive-stream: class 0's lane 0 state above 2^63", rebuild(blob, q),
                ["adaptive-stream"]))
    return out


def main() -> int:
    manifest, files = build()
    if "--check" in sys.argv:
        with open(os.path.join(HERE, "crafted.json")) as f:
            same = json.load(f) == manifest
        for name, data in files.items():
            p = os.path.join(OUT, name)
            same = same and os.path.exists(p) and open(p, "rb").read() == data
        print("crafted corpus " + ("matches" if same else "DIFFERS"))
        return 0 if same else 1
    for name in os.listdir(OUT):
        if name != os.path.basename(BASE):
            os.remove(os.path.join(OUT, name))
    for name, data in files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    with open(os.path.join(HERE, "crafted.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"wrote {len(files)} files to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
