"""Start-up cost: what the command line imports, and the on-disk codebook cache."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from tqcli.codec import codebook

HEAVY = ("numba", "scipy", "numpy", "h5py", "rich", "zarr", "numcodecs")
PROBE = """
import sys
from tqcli.cli import main
try:
    main(%r, prog_name="tq")
except SystemExit:
    pass
print(sorted(m for m in sys.modules if m.split(".")[0] in %r or m.startswith("tqcli.")))
"""


def _modules(args: list[str], env=None, cwd=None) -> list[str]:
    """Every module of HEAVY and of tq that `tq ARGS` has imported by its end."""
    out = subprocess.run([sys.executable, "-c", PROBE % (args, HEAVY)], capture_output=True,
                         text=True, timeout=300, env=env, cwd=cwd)
    return eval(out.stdout.strip().splitlines()[-1])


def _imported(args: list[str], env=None, cwd=None) -> list[str]:
    return [m for m in _modules(args, env, cwd) if m in HEAVY]


def test_help_and_version_import_neither_numba_nor_scipy():
    for args in (["--help"], ["--version"], ["compress", "--help"], ["eval", "--help"],
                 ["decompress", "--help"], ["inspect", "--help"], ["search", "--help"]):
        assert _imported(args) == [], args


def test_a_command_imports_only_its_own_module():
    """`tq --help` loads no command; `tq inspect --help` loads inspect's and no other."""
    commands = ["compress", "decompress", "eval", "inspect", "search"]
    assert not [m for m in _modules(["--help"]) if m.split(".")[-1] in commands]
    loaded = [m for m in _modules(["inspect", "--help"]) if m.startswith("tqcli.cli.")]
    assert "tqcli.cli.inspect" in loaded
    assert not [m for m in loaded if m.split(".")[-1] in commands and m != "tqcli.cli.inspect"]


def test_the_lazy_help_is_the_help_of_the_loaded_commands():
    """The command list of `tq --help` comes from COMMANDS' copies of each command's first
    paragraph: the same text click makes from the command itself, at any width."""
    import click

    from tqcli.cli import COMMANDS, main

    for name, (load, text) in COMMANDS.items():
        cmd = load()
        assert cmd.name == name
        for limit in (5, 20, 45, 60, 94, 200):
            assert click.Command(name, help=text).get_short_help_str(limit) == \
                cmd.get_short_help_str(limit), (name, limit)
    lazy = subprocess.run([sys.executable, "-m", "tqcli", "--help"], capture_output=True,
                          text=True, timeout=120).stdout
    ctx = click.Context(main, info_name="tq", **main.context_settings)
    for name, (load, _) in COMMANDS.items():
        main.add_command(load(), name)  # the eager group: every command loaded
    try:
        assert lazy == main.get_help(ctx) + "\n"
    finally:
        for name in COMMANDS:
            main.commands.pop(name)
    assert "inspect     Show the header" in lazy


def test_inspect_imports_no_kernels_no_encoder_no_optional_packages(tmp_path):
    """inspect reads headers: no numba, scipy, h5py, rich or zarr, no kernels, no encoder
    (library.api, collections) -- for a single array, a collection, several files and
    --verify, and for a file it refuses."""
    import numpy as np

    import tqcli

    x = np.random.default_rng(1).standard_normal((40, 24)).astype(np.float32)
    (tmp_path / "one.tqz").write_bytes(tqcli.compress(x, bits=3))
    np.savez(tmp_path / "two.npz", a=x, b=x[:3, :5])
    tqcli.compress_collection_file(str(tmp_path / "two.npz"), str(tmp_path / "two.tqz"))
    (tmp_path / "bad.tqz").write_bytes(b"TQZ" + bytes(40))
    for args in (["inspect", "one.tqz"], ["inspect", "two.tqz"],
                 ["inspect", "one.tqz", "two.tqz", "--json"], ["inspect", "--verify", "one.tqz"],
                 ["inspect", "bad.tqz"]):
        mods = _modules(args, cwd=tmp_path)
        assert [m for m in mods if m in HEAVY] == ["numpy"], args
        for m in ("tqcli.kernels", "tqcli.library.api", "tqcli.library.collections",
                  "tqcli.fileio.verbs", "tqcli.fileio.plans", "tqcli.cli.compress"):
            assert m not in mods, (args, m)


def test_second_run_reads_codebooks_from_the_cache_without_solving(tmp_path):
    """numba itself imports the scipy package, but not scipy.special, which the solver needs."""
    env = dict(os.environ, TQ_CACHE_DIR=str(tmp_path / "cache"))
    code = ("import sys, numpy as np, tqcli; "
            "tqcli.compress(np.ones((3, 200), np.float32), bits=5); "
            "print('scipy.special' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=300).stdout.strip() for _ in range(2)]
    assert runs == ["True", "False"]
    assert os.listdir(tmp_path / "cache" / "codebooks") == ["lloyd-max-d200-b5.f64"]


def test_a_damaged_cache_entry_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("TQ_CACHE_DIR", str(tmp_path))
    d, bits = 123, 3
    fresh = codebook._solve_half(d, bits)
    path = codebook._cache_file(d, bits)
    os.makedirs(os.path.dirname(path))
    for junk in (b"", b"\x00" * 31, np.array([0.5, 0.1, 0.2, 0.3]).tobytes(),
                 np.array([np.nan, 0.1, 0.2, 0.3]).tobytes(), b"\xff" * 33):
        with open(path, "wb") as f:
            f.write(junk)
        assert codebook._read_cached(d, bits) is None
    codebook._write_cached(d, bits, fresh)
    assert codebook._read_cached(d, bits) == fresh


def test_a_command_loads_only_the_kernels_it_calls(tmp_path):
    """numba builds a kernel module's dispatchers as it imports it: compress (fixed coding)
    loads the encoder and not the decoder, decompress the decoder and not the encoder,
    neither the entropy coding's nor the search's kernels."""
    import numpy as np

    np.save(tmp_path / "x.npy", np.random.default_rng(2).standard_normal((64, 32), np.float32))
    others = {"tqcli.kernels.rans", "tqcli.kernels.symbols", "tqcli.kernels.scan_portable",
              "tqcli.kernels.scan_x86", "tqcli.kernels.scan"}
    for args, wanted, unwanted in (
            (["compress", "x.npy", "-q"], "tqcli.kernels.encode", "tqcli.kernels.decode"),
            (["decompress", "x.npy.tqz", "-o", "y.npy", "-q"], "tqcli.kernels.decode",
             "tqcli.kernels.encode")):
        mods = set(_modules(args, cwd=tmp_path))
        assert wanted in mods and unwanted not in mods and not mods & others, args
    assert np.load(tmp_path / "y.npy").shape == (64, 32)


def test_the_exit_skips_the_last_collections(tmp_path):
    """By the time the interpreter shuts down after a command (its own atexit handlers run
    first, last registered first), every object is frozen out of the garbage collector, so
    the shutdown does not walk them all again -- for --help, which ends while parsing, too;
    an error exit still prints its one line."""
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 1000))\n"
            "from tqcli.cli import main\n"
            "main(sys.argv[1:], prog_name='tq')\n")
    for args, status in ((["--help"], 0), (["inspect", "missing.tqz"], 1)):
        r = subprocess.run([sys.executable, "-c", code] + args, capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)
        assert r.returncode == status and r.stdout.splitlines()[-1] == "frozen True", args
    assert r.stderr == "tq: missing.tqz: no such file\n"
