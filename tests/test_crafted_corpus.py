"""The crafted files of tests/corpus/crafted/ (tests/corpus/make_crafted.py): each refused
by the rule its record names, in the library and on the command line (`tq decompress` of a
file and of a pipe and `tq inspect --verify` for a .tqz, `tq compress` for an input): one
line naming the file, exit 1, nothing left, the input untouched, within 1 s and 100 MB.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

import tqcli
from fuzzkit import COUNTS, CliPool, check_cli_failure, check_library_failure, pipe_stream

CORPUS = Path(__file__).parent / "corpus"
MANIFEST = json.loads((CORPUS / "crafted.json").read_text())
CASES = MANIFEST["cases"]


@pytest.fixture(scope="module")
def pool():
    p = CliPool(2)
    yield p
    p.close()


def _family(rec) -> str:
    if rec["command"] == "compress":
        return "inputs"
    return "adaptive" if rec["rules"][0].startswith("adaptive") else "entropy"


def test_the_generator_writes_exactly_the_committed_files():
    spec = importlib.util.spec_from_file_location("make_crafted", CORPUS / "make_crafted.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    manifest, files = mod.build()
    assert manifest == MANIFEST
    assert all((CORPUS / "crafted" / name).read_bytes() == data for name, data in files.items())
    assert sorted(p.name for p in (CORPUS / "crafted").iterdir()) == sorted(
        list(files) + [MANIFEST["base"]])
    assert {r["rules"][0] for r in CASES} == {"ratio", "entropy-stream", "adaptive-model",
                                              "adaptive-basis", "adaptive-mode",
                                              "adaptive-stream"}
    # the base decodes: every refusal is the damage, not the base
    assert tqcli.decompress((CORPUS / "crafted" / MANIFEST["base"]).read_bytes()).shape == (20, 24)


def test_every_crafted_file_in_the_library(tmp_path):
    from tqcli.fileio import verbs

    bad = []
    for rec in CASES:
        path = CORPUS / "crafted" / rec["file"]
        COUNTS.family = _family(rec)
        if rec["command"] == "compress":
            calls = [("compress", lambda: verbs.compress_collection_file(
                str(path), str(tmp_path / "out.tqz")))]
            expected = tqcli.TqError
        else:
            data = path.read_bytes()
            calls = [("bytes", lambda: tqcli.decompress(data)),
                     ("pipe", lambda: tqcli.decompress(pipe_stream(data))),
                     ("verify", lambda: verbs.inspect(data, verify=True))]
            expected = tqcli.FormatError
        for via, call in calls:
            problems, exc = check_library_failure(call, f"{rec['file']} {via}", expected)
            rule = getattr(exc, "rule", None) or getattr(exc, "kind", None)
            if exc is not None and rule not in rec["rules"]:
                problems.append(f"rule {rule!r} ({exc}) not in {rec['rules']}")
            if problems:
                bad.append((rec["file"], via, problems))
    assert not bad, bad[:5]


def _cli_case(pool, rec, root: Path) -> list:
    src = CORPUS / "crafted" / rec["file"]
    name = src.name
    folder = root / name.rsplit(".", 1)[0]
    folder.mkdir()
    shutil.copyfile(src, folder / name)
    data = src.read_bytes()
    if rec["command"] == "compress":
        runs = [(["compress", name], name, None)]
    else:
        runs = [(["decompress", name, "-o", "out.npy"], name, None),
                (["inspect", "--verify", name], name, None),
                (["decompress", "-", "-o", "out.npy"], "-", data)]
    bad = []
    for args, who, stdin in runs:
        r = pool.run(args, folder, stdin=stdin, pipe=stdin is not None)
        problems = check_cli_failure(r, who, folder, [name], f"{name}: {args}", pool.base_rss)
        if rec["rules"] == ["ratio"] and r.lines and "--max-ratio" not in r.lines[0]:
            problems.append(f"the flag is not named: {r.lines[0]}")
        if (folder / name).read_bytes() != data:
            problems.append("the input was modified")
        if problems:
            bad.append((name, args, problems))
    shutil.rmtree(folder)
    return bad


def test_every_crafted_file_on_the_command_line(pool, tmp_path):
    COUNTS.family = "entropy"  # the .npz is one case of 26: counted with them
    results = pool.map(lambda p, rec: _cli_case(p, rec, tmp_path), CASES)
    bad = [b for r in results for b in r]
    assert not bad, bad[:5]
