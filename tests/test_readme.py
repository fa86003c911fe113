"""Every code block and command sequence of README.md (and samples/README.md) runs.

The blocks are read from the README files themselves, not copied here: each ```python block
and each indented (or ```-fenced) command block runs in a fresh scratch folder holding a
copy of samples/ and the inputs the text assumes (FIXTURES: name -> how it is made), in
order, each command asserted to exit 0.  `tq` and `python` resolve to this checkout (shims
in a folder put first on PATH: sys.executable -m tqcli, with the checkout on PYTHONPATH).

A block in which lines start with `$ ` is a session: those lines are the commands and the
lines under them what README shows them printing; every shown line (other than `...`) must
be a line of the real output, whitespace aside.

Commands that cannot run here (a remote host, the network, minutes of work, the install
itself) are listed in NOT_RUNNABLE with the reason; the test checks that this list is
exactly what README holds, so a new unrunnable command cannot slip in silently, and a block
that is not commands at all (a diagram) is listed in NOT_COMMANDS.  Commands shown inline in
prose (`tq eval ../shared/data/minilm_kv.h5 -b V ...`, with placeholders) are not run.

The library's wording of an existing output (item 7 of issue 26, which made README's Python
block fail) is checked here too: the library names its keyword, the command line its flag.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import tqcli

ROOT = Path(__file__).resolve().parents[1]
READMES = ("README.md", "samples/README.md")


# ---------------------------------------------------------------------- what README assumes


def _make_embeddings(folder: Path) -> None:
    # 2000 rows: `--rows 1000:2000` must be inside the file (ranges are checked, not clamped)
    x = np.random.default_rng(1).standard_normal((2000, 384))
    np.save(folder / "embeddings.npy", (x / np.linalg.norm(x, axis=1, keepdims=True))
            .astype(np.float32))


def _make_big(folder: Path) -> None:
    x = np.random.default_rng(2).standard_normal((12000, 64)).astype(np.float32)
    np.save(folder / "big.npy", x)


def _make_kv(folder: Path) -> None:
    # a (layers, key/value, heads, tokens, head_dim) dump with the 4+ layers `--select 3,0` needs
    x = np.random.default_rng(3).standard_normal((6, 2, 4, 64, 32)).astype(np.float32)
    np.save(folder / "kv.npy", x)


def _make_zarr(folder: Path) -> None:
    import zarr

    g = zarr.open_group(str(folder / "data.zarr"), mode="w")
    a = g.create_array("emb", shape=(1000, 64), chunks=(256, 64), dtype="float32")
    a[:] = np.random.default_rng(4).standard_normal((1000, 64)).astype(np.float32)


def _make_x_tqz(folder: Path) -> None:
    x = np.random.default_rng(5).standard_normal((100, 16)).astype(np.float32)
    (folder / "x.tqz").write_bytes(tqcli.compress(x))


# name -> (how it is made, the maker).  Made only in a folder whose block mentions the name.
FIXTURES = {
    "embeddings.npy": ("2000 random unit vectors, d = 384, float32", _make_embeddings),
    "big.npy": ("12 000 x 64 Gaussian float32 rows (README's 'larger than memory' file, small)",
                _make_big),
    "kv.npy": ("a (6, 2, 4, 64, 32) float32 KV dump of Gaussian values", _make_kv),
    "kv.h5": ("a copy of samples/kv_small.h5 (an HDF5 KV collection with layers/0/key)",
              lambda f: shutil.copy(ROOT / "samples" / "kv_small.h5", f / "kv.h5")),
    "data.zarr": ("a zarr v3 group holding one array, emb: 1000 x 64 float32", _make_zarr),
    "x.tqz": ("what the `<(curl ...)` line before it would have written: a small .tqz",
              _make_x_tqz),
    "consume.py": ("a consumer of a .npy on stdin (reads it whole and loads it)",
                   lambda f: (f / "consume.py").write_text(
                       "import io, sys\nimport numpy as np\n"
                       "np.load(io.BytesIO(sys.stdin.buffer.read()))\n")),
}

# Commands README shows that the test does not run, with the reason.  Matched exactly
# (after a `$ ` prompt is removed; an `&&` chain is split into its commands).
NOT_RUNNABLE = {
    "python -m venv .venv": "the install: covered by .ci/run (a fresh venv, pip install)",
    ". .venv/bin/activate": "the install: covered by .ci/run",
    'pip install ".[test,plot,zarr,kv]"': "the install: covered by .ci/run",
    "pytest -q -rs": "the test suite itself: what .ci/run runs",
    "cat kv.npy | tq compress -b 4 | ssh host 'tq decompress - -o kv.npy'":
        "needs a remote host (ssh host)",
    "tq compress <(curl -s https://host/x.npy) -o x.tqz": "needs the network (curl https://)",
    "python examples/dask_compress.py --rows 200000 --dim 768 --out /tmp/emb.zarr":
        "614 MB through a 2-worker Dask cluster, minutes on the 2-core VM, and writes outside "
        "the scratch folder; the example's code runs in "
        "tests/test_zarr.py::test_example_on_an_existing_cluster",
    "python bench/bench.py": "the benchmark: 5-8 minutes",
}
# what makes a command unrunnable here: any README command that matches must be listed above
UNRUNNABLE = re.compile(r"\bssh\b|\bcurl\b|https?://|\bpip install\b|\bvenv\b|activate\b|"
                        r"\bpytest\b|bench/bench\.py|examples/dask_compress\.py")

# Indented blocks that are not commands, by their first line.
NOT_COMMANDS = {
    "cli/            click and printing only, one module per command (compress, decompress,":
        "the Architecture diagram",
}


# ---------------------------------------------------------------------- reading README


@dataclass
class Command:
    line: int            # 1-based line in the README
    text: str
    shown: list[str] = field(default_factory=list)  # output README shows for it


@dataclass
class Block:
    readme: str
    line: int            # first line of the block
    kind: str            # "python" or "shell"
    text: str
    commands: list[Command] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.readme}:{self.line}"


def read_blocks(readme: str) -> list[Block]:
    """The ``` fenced blocks and the indented code blocks of a Markdown file."""
    lines = (ROOT / readme).read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if m:
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            kind = "python" if m.group(1) == "python" else "shell"
            blocks.append(Block(readme, i + 2, kind, "\n".join(lines[i + 1:j])))
            i = j + 1
            continue
        # an indented code block starts after a blank line (not inside a paragraph)
        if lines[i].startswith("    ") and lines[i].strip() and (i == 0 or not lines[i - 1].strip()):
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            while not lines[j - 1].strip():
                j -= 1
            blocks.append(Block(readme, i + 1, "shell",
                                "\n".join(x[4:] for x in lines[i:j])))
            i = j
            continue
        i += 1
    for b in blocks:
        if b.kind == "shell":
            b.commands = parse_commands(b)
    return blocks


def parse_commands(block: Block) -> list[Command]:
    """A block's commands: with `$ ` prompts, the prompted lines (the others are output);
    else every line that is not blank or a comment; `&&` chains split into commands."""
    raw = block.text.splitlines()
    prompted = any(x.startswith("$ ") for x in raw)
    commands: list[Command] = []
    for k, text in enumerate(raw):
        n = block.line + k
        if prompted:
            if text.startswith("$ "):
                commands.append(Command(n, text[2:].strip()))
            elif text.strip() and commands:
                commands[-1].shown.append(text)
            continue
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        for part in text.split(" && "):
            commands.append(Command(n, part.strip()))
    return commands


def _uncommented(command: str) -> str:
    """The command without a trailing `# comment` (a # after a blank, outside quotes, as the
    shell reads it)."""
    quote = None
    for pos, ch in enumerate(command):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (pos == 0 or command[pos - 1].isspace()):
            return command[:pos].rstrip()
    return command.rstrip()


ALL_BLOCKS = [b for readme in READMES for b in read_blocks(readme)]
COMMAND_BLOCKS = [b for b in ALL_BLOCKS
                  if b.kind == "python" or b.text.splitlines()[0] not in NOT_COMMANDS]


def _runnable(block: Block) -> list[Command]:
    return [c for c in block.commands if _uncommented(c.text) not in NOT_RUNNABLE]


# ---------------------------------------------------------------------- running


def scratch(tmp_path: Path, text: str) -> tuple[Path, dict]:
    """A folder with a copy of samples/ and the fixtures `text` mentions, and the
    environment in which `tq` and `python` are this checkout's."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "samples", work / "samples")
    for name, (_, make) in FIXTURES.items():
        if re.search(r"(?<![\w/.])" + re.escape(name) + r"(?![\w])", text):
            make(work)
    shims = tmp_path / "bin"
    shims.mkdir()
    for name, body in (("tq", f'exec "{sys.executable}" -m tqcli "$@"'),
                       ("python", f'exec "{sys.executable}" "$@"')):
        p = shims / name
        p.write_text(f"#!/bin/sh\n{body}\n")
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    env = dict(os.environ, PATH=f"{shims}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                        os.environ.get("PYTHONPATH")])))
    return work, env


def _squash(line: str) -> str:
    return " ".join(line.split())


@pytest.mark.parametrize("block", COMMAND_BLOCKS, ids=lambda b: b.id)
def test_readme_block_runs(block, tmp_path):
    work, env = scratch(tmp_path, block.text)
    where = f"{block.readme} line"
    if block.kind == "python":
        (work / "readme_block.py").write_text(block.text + "\n")
        r = subprocess.run([sys.executable, "readme_block.py"], cwd=work, env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{where} {block.line}: python block failed:\n{r.stderr}"
        return
    commands = _runnable(block)
    assert commands or all(_uncommented(c.text) in NOT_RUNNABLE for c in block.commands)
    for c in commands:
        r = subprocess.run(["bash", "-c", c.text], cwd=work, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, \
            f"{where} {c.line}: `{c.text}` exited {r.returncode}:\n{r.stderr}"
        out = {_squash(x) for x in r.stdout.splitlines()}
        for shown in c.shown:
            if shown.strip() != "...":
                assert _squash(shown) in out, \
                    f"{where} {c.line}: `{c.text}` does not print {shown!r}:\n{r.stdout}"


# ---------------------------------------------------------------------- the lists are README's


def test_not_runnable_list_is_exactly_what_readme_holds():
    shown = [_uncommented(c.text) for b in ALL_BLOCKS for c in b.commands]
    listed_missing = sorted(set(NOT_RUNNABLE) - set(shown))
    assert not listed_missing, f"NOT_RUNNABLE lists commands README no longer has: {listed_missing}"
    unlisted = sorted({c for c in shown if UNRUNNABLE.search(c)} - set(NOT_RUNNABLE))
    assert not unlisted, f"README commands that cannot run here and are not listed: {unlisted}"


def test_every_block_is_run_or_listed():
    firsts = {b.text.splitlines()[0] for b in ALL_BLOCKS if b.kind == "shell"}
    assert set(NOT_COMMANDS) <= firsts, "NOT_COMMANDS lists a block README no longer has"
    kinds = [b.kind for b in ALL_BLOCKS if b.readme == "README.md"]
    # README's three Python blocks (the API, search, zarr and Dask) and its command blocks
    assert kinds.count("python") == 3 and kinds.count("shell") >= 8, kinds
    for b in COMMAND_BLOCKS:
        assert b.kind == "python" or b.commands, b.id


def test_fixture_map_covers_what_the_blocks_read():
    """Every fixture is read by some README block: the map holds nothing stale.  (An input
    a block needs and nothing makes fails that block's run.)"""
    text = "\n".join(b.text for b in COMMAND_BLOCKS)
    for name in FIXTURES:
        assert name in text, f"fixture {name} is used by no README block"


# ---------------------------------------------------------------------- item 7's wording


def test_an_existing_output_is_worded_for_the_library_and_for_the_command_line(tmp_path):
    x = np.random.default_rng(0).standard_normal((50, 16)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    tqcli.compress_file(tmp_path / "a.npy", tmp_path / "a.tqz")
    with pytest.raises(tqcli.TqError) as e:
        tqcli.compress_file(tmp_path / "a.npy", tmp_path / "a.tqz")
    assert e.value.kind == "exists" and e.value.reason == "already exists; pass force=True to overwrite"
    with pytest.raises(tqcli.TqError, match="force=True"):
        tqcli.decompress_file(tmp_path / "a.tqz", tmp_path / "a.npy")
    tqcli.compress_file(tmp_path / "a.npy", tmp_path / "a.tqz", force=True)
    r = subprocess.run([sys.executable, "-m", "tqcli", "compress", "a.npy", "-o", "a.tqz"],
                       cwd=tmp_path,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 1
    assert r.stderr == "tq: a.tqz: already exists; use -f to overwrite\n"
