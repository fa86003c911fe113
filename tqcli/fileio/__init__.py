"""Per-file policy, as zstd's fileio.c: everything the `tq` command decides about a file.

One package, five modules: probe (what an input is), names (output names, --rm, several
inputs), verbs (the library's files-by-name verbs), reading (its read-only ones: inspect,
open_named), plans (the command's steps); and search, `tq search`'s inputs.

The library below (api, members, tqfile, arrayio) works on arrays, sources and streams; the
command line above (tqcli.cli) fills options and prints.  Here, once each:

  * what an input is (probe_input for compress: one array, a zarr store, a collection --
    HDF5 tree, .safetensors, .npz, folder -- or a stream; probe_container for decompress:
    one array or a collection, by the layouts' own test of the first 16 bytes);
  * the names of outputs (compressed_output, decompressed_output, collection_output_name,
    --output-dir), and never an output over its input (refuse_same_file);
  * '-' for stdin, never a terminal (stdin, from files.binary_stdin);
  * --rm: refused where it makes no sense (stdout, stdin, a folder, HDF5, zarr), and the
    input deleted only after a complete write (remove_input);
  * several inputs each on its own (each);
  * the files-by-name verbs of the library: compress_file, decompress_file,
    compress_collection_file, decompress_collection_file (tqcli.compress_file, ...).

Plans for the command line: plan_compress / open_compress_input / compress_planned and
plan_decompress / decompress_planned, between which the command starts the engine and
its progress bar.  A refusal of options that make no sense together for an input is a
Refused (kind "usage"), which the command line reports as a usage error.
"""

from __future__ import annotations

# The names below load their module on first use, so that a command imports only the policy
# it uses (`tq inspect` reads through reading.py without the encoder and the writers).
_NAMES = {
    "names": {"collection_output_name", "compressed_output", "decompressed_output", "each",
              "make_output_dir", "refuse_rm", "remove_input"},
    "plans": {"CompressPlan", "DecompressPlan", "check_container", "compress_planned",
              "decompress_planned", "finish", "open_compress_input", "plan_compress",
              "plan_decompress"},
    "probe": {"OUTPUT_EXTENSIONS", "Container", "Input", "Refused", "SniffedStream",
              "hdf5_group", "is_path", "probe_container", "probe_input", "refuse_same_file",
              "same_file", "stdin"},
    "verbs": {"compress_collection_file", "compress_file", "decompress_collection_file",
              "decompress_file"},
    "reading": {"inspect", "open_named"},
}


def _module(name: str):
    if name == "names":
        from . import names as m
    elif name == "plans":
        from . import plans as m
    elif name == "probe":
        from . import probe as m
    elif name == "verbs":
        from . import verbs as m
    else:
        from . import reading as m
    return m


def __getattr__(name):
    for module, names in _NAMES.items():
        if name in names:
            return getattr(_module(module), name)
    raise AttributeError(f"module 'tqcli.fileio' has no attribute {name!r}")


__all__ = sorted(set().union(*_NAMES.values()))


def __dir__():
    return sorted(set(globals()) | set(__all__))
