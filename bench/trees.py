"""The tq source trees a run measures: the one this benchmark imports, and a --baseline.

A default run measures one tq: whatever `import tqcli` finds in the benchmark's own
environment (an editable install, or a checkout first on PYTHONPATH), run through the `tq`
console script.  With `--baseline TREE` a second one joins it: another checkout of tq (a
`git worktree` of an older commit, say), measured by the same console script and the same
worker code with TREE first on PYTHONPATH.  Both trees are only driven through the stable
public surface (the `tq` command and its flags, tqcli.compress / tqcli.decompress), so an
old commit and a refactored one can be compared in one run.

numba caches compiled kernels next to each tree's sources (`__pycache__`), keyed by the
source path; NUMBA_CACHE_DIR is removed from the children's environment in a comparison so
that each tree keeps that default behaviour and neither reads a cache the other wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

# Run in a child with the tree's environment: which tqcli it imports, and whether the
# console script's entry point (tqcli.cli:main) is there.
PROBE = ("import json, os, tqcli, tqcli.cli as cli; print(json.dumps({"
         "'file': os.path.abspath(tqcli.__file__), "
         "'version': getattr(tqcli, '__version__', '?'), "
         "'has_main': callable(getattr(cli, 'main', None))}))")


class Tree:
    """One tq to measure.

    key     "new" or "baseline": the "tree" field of its result rows in a comparison
    env     the environment of every child that runs this tree (None: inherit, as a
            default run always did)
    suffix  added to temporary output names, so that the two trees' outputs stay apart
    info    where its tqcli comes from: path, version, git describe and commit
    """

    def __init__(self, key: str, env: dict | None, suffix: str, compared: bool):
        self.key, self.env, self.suffix = key, env, suffix
        self.compared = compared
        self.info: dict = {}

    @property
    def tag(self) -> dict:
        """The fields this tree adds to each of its result rows ({} in a default run)."""
        return {"tree": self.key} if self.compared else {}

    @property
    def short(self) -> str:
        """How the report and the progress log name it: its git describe, else its key."""
        return self.info.get("git") or self.key


def _git(root: str, *args: str) -> str:
    try:
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def describe(tree: Tree) -> dict:
    """Ask a child with the tree's environment which tqcli it imports, and read its git.

    The child runs in "/" so that `python -c` (which puts the working folder first on
    sys.path) cannot pick up a tqcli from wherever the benchmark was started.
    """
    env = os.environ if tree.env is None else tree.env
    res = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd="/",
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        sys.exit(f"bench: the {tree.key} tree does not import: "
                 f"{(res.stderr.strip().splitlines() or ['?'])[-1]}")
    info = json.loads(res.stdout.strip().splitlines()[-1])
    if not info["has_main"]:
        sys.exit(f"bench: the {tree.key} tree's tqcli.cli has no main(): the tq console "
                 "script cannot run it")
    root = os.path.dirname(os.path.dirname(info["file"]))
    return {"root": root, "tqcli": info["file"], "version": info["version"],
            "git": _git(root, "describe", "--always", "--dirty"),
            "commit": _git(root, "rev-parse", "HEAD")}


def trees_for(baseline: str | None) -> list[Tree]:
    """[new] for a default run; [new, baseline] with --baseline TREE, each described."""
    if baseline is None:
        return [Tree("new", None, "", compared=False)]
    root = os.path.realpath(baseline)
    if not os.path.isfile(os.path.join(root, "tqcli", "__init__.py")):
        sys.exit(f"bench: --baseline {baseline}: no tqcli/__init__.py there (give the top "
                 "of a tq checkout, e.g. one made with `git worktree add`)")
    common = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    path = common.get("PYTHONPATH")
    old_env = dict(common, PYTHONPATH=root + (os.pathsep + path if path else ""))
    trees = [Tree("new", common, "", compared=True),
             Tree("baseline", old_env, "-baseline", compared=True)]
    for t in trees:
        t.info = describe(t)
    if os.path.realpath(trees[1].info["root"]) != root:
        sys.exit(f"bench: --baseline {baseline}: its children imported tqcli from "
                 f"{trees[1].info['tqcli']}, not from that tree")
    if os.path.realpath(trees[0].info["root"]) == root:
        print(f"bench: warning: the new tree and the baseline are the same checkout ({root})",
              file=sys.stderr)
    return trees
