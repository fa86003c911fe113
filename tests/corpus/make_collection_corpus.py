#!/usr/bin/env python3
"""Write the hostile collections of tests/test_collections.py (hostile_cases) into
tests/corpus/collections/, with collections.json naming each file, what it does and the
rules of spec section 18.6 (or 13.6) one of which must refuse it.

    python tests/corpus/make_collection_corpus.py          # rewrite the folder
    python tests/corpus/make_collection_corpus.py --check  # compare, exit 1 on drift

The files are for other implementations; tq's own tests build the same bytes in memory.
"""

from __future__ import annotations

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "collections")
sys.path.insert(0, os.path.dirname(HERE))


def build() -> tuple[dict, dict]:
    from test_collections import hostile_cases

    manifest, files = [], {}
    for i, (what, data, rules) in enumerate(hostile_cases()):
        slug = re.sub(r"[^a-z0-9]+", "_", what.lower()).strip("_")[:40]
        name = f"{i:03d}-{slug}.tqz"
        files[name] = data
        manifest.append({"file": name, "detail": what, "valid": None in rules,
                         "rules": sorted(r for r in rules if r is not None)})
    return {"cases": manifest}, files


def main() -> int:
    manifest, files = build()
    if "--check" in sys.argv:
        with open(os.path.join(HERE, "collections.json")) as f:
            same = json.load(f) == manifest
        same = same and all(open(os.path.join(OUT, n), "rb").read() == d
                            for n, d in files.items())
        same = same and sorted(os.listdir(OUT)) == sorted(files)
        print("collection corpus " + ("matches" if same else "DRIFTED"))
        return 0 if same else 1
    os.makedirs(OUT, exist_ok=True)
    for n in os.listdir(OUT):
        os.remove(os.path.join(OUT, n))
    for n, d in files.items():
        with open(os.path.join(OUT, n), "wb") as f:
            f.write(d)
    with open(os.path.join(HERE, "collections.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"{len(files)} collections, {sum(map(len, files.values()))} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
