"""Output names (compress X -> X.tqz; decompress X.tqz -> X, .npy or the collection's kind;
--output-dir), --rm (refused where it makes no sense; the input deleted only after a
complete write), and several inputs each on its own."""

from __future__ import annotations

import os
import stat

from .. import arrayio
from ..arrayio import containers, files
from ..errors import TqError
from .probe import OUTPUT_EXTENSIONS, Input, Refused

# ---------------------------------------------------------------------- names


def compressed_output(inp: Input, output: str | None = None, to_stdout: bool = False,
                      output_dir: str | None = None) -> str:
    """compress's output: '-' (-c, or stdin in), -o OUT, or INPUT.tqz (in output_dir)."""
    if to_stdout:
        return "-"
    if output is not None:
        return output
    if inp.kind == "stream":
        return "-"
    base = inp.spec.rstrip("/") or inp.spec
    if inp.kind == "zarr":
        if output_dir is None:  # INPUT.tqz would land inside the zarr store
            raise TqError("a zarr array is a folder: name the output with -o OUT.tqz "
                          "or --output-dir DIR", inp.spec)
        return files.compressed_name(base, output_dir)
    return files.compressed_name(arrayio.split_h5_spec(base)[0], output_dir)


def decompressed_output(spec: str, output: str | None = None, to_stdout: bool = False,
                        output_dir: str | None = None) -> str:
    """decompress's output of one array: '-', -o OUT, or IN without .tqz (.npy added when
    nothing is left of an extension); a collection's is collection_output_name."""
    if to_stdout:
        return "-"
    if output is not None:
        return output
    return "-" if spec == "-" else files.decompressed_name(spec, output_dir)


def collection_output_name(input: str, info: dict, output_dir: str | None = None) -> str:
    """decompress's default name: IN without .tqz, given the source's extension if what is
    left has another (or none): kv.h5.tqz -> kv.h5, kv.tqz -> kv.h5 for an HDF5 source."""
    if info.get("source") == "directory":  # dir.tqz -> dir
        return files.decompressed_name(input, output_dir).removesuffix(".npy")
    name = files.decompressed_name(input, output_dir)
    if containers.kind_of_name(name) is None:
        base = name[:-4] if name.endswith(".npy") else name
        name = base + OUTPUT_EXTENSIONS.get(info.get("source"), ".npz")
    return name


def make_output_dir(output_dir: str) -> None:
    """--output-dir: made if missing."""
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as e:
        raise TqError(f"cannot create the output folder ({e.strerror})", output_dir) from None


# ---------------------------------------------------------------------- --rm and several inputs


def refuse_rm(output: str, spec: str) -> None:
    if output == "-":
        raise Refused("--rm needs an output file (it is ignored with stdout)")
    if spec == "-":
        raise Refused("--rm needs an input file (there is nothing to delete on stdin)")


def remove_input(name: str) -> None:
    """--rm, once the output is complete: delete a regular input file; a FIFO or device is
    left alone, as by zstd."""
    if stat.S_ISREG(os.stat(name).st_mode):
        os.remove(name)


def each(inputs: list[str], one, failed) -> bool:
    """one(input) for every input, as zstd does with several files: a failure is told to
    failed(input, error) and the next file still runs; returns whether any failed.  A
    single input raises as it fails; an interrupt ends them all."""
    if len(inputs) == 1:
        one(inputs[0])
        return False
    bad = False
    for input in inputs:
        try:
            one(input)
        except (TqError, MemoryError, OSError) as e:
            failed(input, e)
            bad = True
    return bad
