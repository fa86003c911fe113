"""The package's layers: imports go down only, and no module imports itself back.

Every import of every module under tqcli/ counts, at module level or inside a function (an
import inside a function hides a cycle from Python, not from this test); `if TYPE_CHECKING`
blocks are not used in the package and would count too.  The layers, lowest first: a module
may import its own layer and the layers below it, never one above.

    base          errors, limits, prng, version: numpy-free rules and the spec's generator
    arrayio       arrays in and out (.npy, HDF5, zarr, safetensors, npz, folders), atomic
                  output files, selections, the write-behind pipeline; knows no codec,
                  format or library
    kernels       numba kernels by concern (lanes, rotate, encode, decode, rans, symbols)
    codec         rotations, payload codings, codebooks, the encoder's options, fitted
                  stages, the quantiser state and the plain-numpy twins of the kernels
    format        the bytes of the spec: header, container, collection, layouts
    library       TqFile, collections, the api verbs, evaluation, reports
    integrations  chunkcodec and the zarr v3 / numcodecs codecs, over the library
    fileio        per-file policy: output names, --rm, stdin, same-file, routing
    cli           click and printing, one module per command
    top           tqcli/__init__.py (lazy public names) and __main__
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tqcli"

LAYERS = [
    ("base", ("tqcli.errors", "tqcli.limits", "tqcli.prng", "tqcli.version")),
    ("arrayio", ("tqcli.arrayio",)),
    ("kernels", ("tqcli.kernels",)),
    ("codec", ("tqcli.codec",)),
    ("format", ("tqcli.format",)),
    ("library", ("tqcli.library",)),
    ("integrations", ("tqcli.integrations",)),
    ("fileio", ("tqcli.fileio",)),
    ("cli", ("tqcli.cli",)),
    ("top", ("tqcli", "tqcli.__main__")),
]


def layer_of(module: str) -> int:
    best, rank = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > rank:
                best, rank = i, len(p)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best


def module_name(path: Path) -> tuple[str, bool]:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    return ".".join(parts), is_pkg


def modules() -> dict[str, Path]:
    return {module_name(p)[0]: p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) of every tqcli module `path` imports, wherever the import stands.
    `from X import name` counts X.name when that is a module, else X."""
    name, is_pkg = module_name(path)
    here = name if is_pkg else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "tqcli"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here
                for _ in range(node.level - 1):
                    base = base.rsplit(".", 1)[0]
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if target.split(".")[0] != "tqcli":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((node.lineno, sub if sub in known else target))
    return out


def graph() -> dict[str, list[tuple[int, str]]]:
    mods = modules()
    known = set(mods)
    return {m: [(ln, t) for ln, t in imports_of(p, known) if t != m] for m, p in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_every_module_has_a_layer():
    for m in modules():
        layer_of(m)


def test_imports_go_down_only():
    wrong = []
    for m, targets in graph().items():
        for line, t in targets:
            if t == "tqcli" and m != "tqcli":
                wrong.append(f"{m}:{line} imports the top-level package (import the module)")
            elif layer_of(t) > layer_of(m):
                wrong.append(f"{m}:{line} ({LAYERS[layer_of(m)][0]}) imports {t} "
                             f"({LAYERS[layer_of(t)][0]})")
    assert wrong == [], "\n".join(wrong)


def test_no_import_cycles():
    # a package's __init__ re-exporting its modules is not a cycle of design; the modules
    # importing each other (or their package's __init__ importing back) is
    edges = {m: {t for _, t in ts} for m, ts in graph().items()}
    found = cycles(edges)
    assert found == [], found


def test_the_checker_sees_what_it_should(tmp_path):
    """The walker finds imports inside functions and relative ones, and the cycle finder
    finds a cycle: without this the two tests above could pass by seeing nothing."""
    g = graph()
    assert any(t.startswith("tqcli.kernels") for _, t in g["tqcli.codec.codings.packed"])
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("tqcli.cli.compress") > layer_of("tqcli.library.api")


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_500_lines(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= 500, f"{path.name}: {n} lines"


def test_no_import_by_name_goes_around_the_walk():
    """importlib.import_module and __import__ would import a module this walk cannot see;
    the package uses neither (a plug-in is found by its entry point instead)."""
    used = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            if name in ("import_module", "__import__"):
                used.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert used == [], used
