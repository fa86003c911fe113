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
* an .npz whose member deflates about 1000:1 (kind ratio, for `tq compress`).
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
    manifest, files = [], {}
    for i, (what, data, rules, ext) in enumerate(cases):
        slug = re.sub(r"[^a-z0-9]+", "_", what.lower()).strip("_")[:40]
        name = f"{i:03d}-{slug}.{ext}"
        files[name] = data
        manifest.append({"file": name, "detail": what, "rules": rules,
                         "command": "compress" if ext == "npz" else "decompress"})
    return {"base": os.path.basename(BASE), "cases": manifest}, files


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
