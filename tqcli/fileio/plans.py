"""The command's plans: plan_compress / open_compress_input / compress_planned and
plan_decompress / decompress_planned, between which the command line starts the engine
and its progress bar; finish applies --rm."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from .. import arrayio
from ..arrayio import inflation
from ..codec.options import EncodeOptions, options_of
from ..errors import TqError
from .names import compressed_output, decompressed_output, refuse_rm, remove_input
from .probe import Container, Input, Refused, probe_container, probe_input
from .verbs import (
    compress_collection_file,
    compress_file,
    decompress_collection_file,
    decompress_file,
)

# ---------------------------------------------------------------------- the command's plans


@dataclass(frozen=True)
class CompressPlan:
    input: Input
    output: str
    remove: bool = False


def plan_compress(spec: str, *, output: str | None = None, to_stdout: bool = False,
                  output_dir: str | None = None, dataset: str | None = None,
                  directory: bool = False, remove: bool = False,
                  input_dtype: str | None = None,
                  collection_options: bool = False) -> CompressPlan:
    """The input's kind, the output's name and the refusals of `tq compress SPEC`, in the
    order the command says them; nothing is read but what probe_input looks at."""
    inp = probe_input(spec, dataset, directory)
    out = compressed_output(inp, output, to_stdout, output_dir)
    if remove:
        refuse_rm(out, spec)
    if inp.problem:
        raise TqError(inp.problem, spec)
    if directory and remove:
        raise Refused("--rm is refused for a folder")
    if inp.collection:
        if input_dtype is not None:
            raise Refused("--input-dtype is for .npy input (a collection's members carry "
                          "their dtypes)")
        if remove and arrayio.is_hdf5_name(inp.path):
            raise TqError("--rm refused for HDF5 input (the file may hold other data)",
                          inp.path)
    elif collection_options:
        raise Refused("--bits-for, --lossless and --vector-size apply to collections "
                      "(HDF5, .safetensors, .npz input)")
    return CompressPlan(inp, out, remove)


@contextlib.contextmanager
def open_compress_input(plan: CompressPlan, input_dtype: str | None = None, *,
                        memory_limit: int | None = None, max_ratio: float | None = None):
    """The open arrayio source of a single array (None for a collection, which
    compress_planned reads), its --rm refused for zarr and HDF5 once it has opened."""
    if plan.input.collection:
        try:  # what the members inflate to, from their metadata, before the kernels load
            inflation.check_collection(plan.input.path, plan.input.source,
                                       plan.input.group, memory_limit, max_ratio)
        except TqError as e:
            raise e.with_source(plan.input.path)
        yield None
        return
    with arrayio.open_input(plan.input.spec, plan.input.dataset, input_dtype,
                            memory_limit=memory_limit, max_ratio=max_ratio) as source:
        if plan.remove and plan.input.kind == "zarr":
            raise TqError("--rm refused for zarr input (a store is a folder that may hold "
                          "other data)", source.name)
        if plan.remove and plan.input.source == "hdf5":
            raise TqError("--rm refused for HDF5 input (the file may hold other data)",
                          source.name)
        yield source


def compress_planned(plan: CompressPlan, source, options: EncodeOptions | None = None, *,
                     force: bool = False, progress=None, bits_for=(), lossless=(),
                     vector_size=None, strict: bool = False, warn=None,
                     memory_limit: int | None = None, max_ratio: float | None = None,
                     **keywords):
    """Compress as planned with `options` (an EncodeOptions or its fields as keywords; a
    collection: every member, with its width from bits_for); --rm deletes the input once
    the output is complete (finish).  Returns the header (one array) or the table of
    contents (a collection).  memory_limit: the encoder's budget (compress_to; None: none)."""
    options = options_of(options, **keywords)
    inp = plan.input
    if inp.collection:
        return compress_collection_file(inp.path, plan.output, group=inp.group, force=force,
                                        progress=progress, bits_for=bits_for,
                                        lossless=lossless, vector_size=vector_size,
                                        strict=strict, warn=warn,
                                        memory_limit=memory_limit, max_ratio=max_ratio,
                                        **options.to_kwargs())
    return compress_file(source, plan.output, options, force=force, progress=progress,
                         memory_limit=memory_limit)


@dataclass
class DecompressPlan:
    container: Container
    output: str        # one array's output name
    target: str | None  # what -o/-c said (a collection names its own output otherwise)
    remove: bool = False

    @property
    def collection(self) -> bool:
        return self.container.collection

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.container.close()


def plan_decompress(spec: str, *, output: str | None = None, to_stdout: bool = False,
                    output_dir: str | None = None, remove: bool = False,
                    members=(), one_array_options: bool = False) -> DecompressPlan:
    """The output's name, the refusals and the container's layout of `tq decompress SPEC`
    (a pipe is opened here: use the plan in a `with` block)."""
    out = decompressed_output(spec, output, to_stdout, output_dir)
    if remove:
        refuse_rm(out, spec)
    c = probe_container(spec)
    try:
        if c.collection and one_array_options:
            raise Refused("--select and --rows read one array; for a collection choose "
                          "members with --member")
        if not c.collection and members:
            raise TqError("--member given but the file holds one array, not a collection",
                          spec)
    except BaseException:
        c.close()
        raise
    return DecompressPlan(c, out, "-" if to_stdout else output, remove)


def check_container(plan: DecompressPlan, memory_limit: int | None = None,
                    max_ratio: float | None = None) -> None:
    """The checks a single array of known length allows before anything is decoded --
    header, index and footer, the memory it implies (spec 13.7) and its expansion (13.9)
    -- made before the command loads its kernels, so that a refused file costs no start-up
    (decompress_planned makes them again on the file it reads).  A collection's members
    and a pipe are checked as they are read."""
    c = plan.container
    if c.collection or not isinstance(c.src, str):
        return
    from ..library.tqfile import TqFile

    try:
        with TqFile(c.src, memory_limit, max_ratio):
            pass
    except TqError as e:
        raise e.with_source(c.spec)


def decompress_planned(plan: DecompressPlan, *, members=None, progress=None,
                       output_dir: str | None = None, memory_limit: int | None = None,
                       max_ratio: float | None = None,
                       dtype: str | None = None, force: bool = False, **one_array):
    """Decompress as planned: a collection (decompress_collection_file: {"output",
    "members"}) or one array (decompress_file, one_array its rows, select, dataset,
    zarr_codec: a Decompressed).  Errors name the input."""
    src = plan.container.src
    try:
        if plan.collection:
            return decompress_collection_file(src, plan.target, members=members, dtype=dtype,
                                              force=force, progress=progress,
                                              memory_limit=memory_limit,
                                              max_ratio=max_ratio,
                                              output_dir=output_dir)
        return decompress_file(src, plan.output, dtype=dtype, force=force, progress=progress,
                               memory_limit=memory_limit, max_ratio=max_ratio,
                               clip_rows=False, **one_array)
    except TqError as e:  # a refusal of the stream as it opened names no file yet
        raise e.with_source(plan.container.spec)


def finish(plan, output: str) -> None:
    """--rm after a complete write of `output`."""
    if plan.remove:
        spec = plan.input.path if isinstance(plan, CompressPlan) else plan.container.spec
        refuse_rm(output, spec)
        remove_input(spec)
