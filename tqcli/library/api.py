"""The library: compress and decompress arrays, streams and files; inspect a container.

Three levels, each built on the one below:
  * whole arrays in memory: compress(array) -> bytes, decompress(src) -> array;
  * streams, one chunk in memory at a time: compress_to(source, out), and
    `with tqcli.open(src) as f:` (tqfile.TqFile) for the header, chunks and row ranges;
  * files by name, as the `tq` command uses them: compress_file, decompress_file,
    inspect -- atomic outputs, '-' for stdin/stdout, errors that name the file.

Row selections are None, a slice (step 1) or a (start, stop) pair, as in Python slicing.
Progress callbacks are called as progress(rows done, rows in all), first with 0.
"""

from __future__ import annotations

import io
import itertools
import math
import os
from typing import NamedTuple

import numpy as np

from .. import arrayio
from ..codec import adaptive_model, codings, rotations, stages
from ..codec.state import Codec
from ..format import memory
from ..format.header import make_header
from ..codec.codings import CODINGS
from ..format.container import ContainerWriter
from ..format.header import Header
from ..errors import FormatError, InputError, ScaleRangeError, TqError
from ..codec.options import EncodeOptions, OptionError, option_keywords, options_of
from ..arrayio.pipeline import BackgroundConsumer
from . import adapt_fit
from .tqfile import CollectionError, TqFile, output_dtype, plan_read, resolve_rows  # noqa: F401

ROTATION = rotations.DEFAULT  # the rotation kind new files get
CODING = codings.DEFAULT      # the payload coding new files get
BATCH_INPUT_BYTES = memory.BATCH_INPUT_BYTES  # float32 input per kernel call (16 MiB)


# ---------------------------------------------------------------------- compress


@option_keywords
def compress_to(source, out, options: EncodeOptions | None = None, *, progress=None,
                memory_limit: int | None = None, **keywords) -> Header:
    """Compress every row of `source` (an array, or an arrayio.ArraySource) into a container
    written to the binary stream `out`; returns its header.

    The encoder's options are an EncodeOptions (tqcli.codec.options) or its fields as keywords:
    bits=4, mode="mse", seed=0, rounds=3, scale_rule=None, scale_dtype="auto",
    chunk_rows=None, rotation, coding, center=False, nmse=None (an unknown keyword is a
    TypeError, a refused value an OptionError naming the option).

    scale_dtype "auto" stores float32 scales, and switches to float64 -- starting again
    from the first row, with every other option unchanged -- when a vector's scale is
    outside the f32 rule of spec 11.5 (above a quarter of float32's range, or rounding
    to 0); that needs a source that can be read again and an output that can seek, otherwise the error says
    which option to use.

    center: False (none), True (subtract the mean of the first chunk's vectors, stored in
    the header and added back on decoding: less error when the vectors share an offset), or
    the d values of a centre to use.

    coding: packed (alias fixed, the default: b-bit fields, fast random access) or
    entropy (entropy-coded indices on a uniform grid: about a third less error at the
    same size); with the entropy coding, `bits` is any rate from 1 to 8 bits per
    coordinate (2.5, say), or None with `nmse`, the expected error to meet (0.01 = 1% of
    the energy).  tqcli.codec.codings.CODINGS says which coding takes what.

    memory_limit: bytes the encoder may hold at its peak (tqcli/format/memory.py
    encode_need; None: no limit, the command line's --memory gives 256 MiB); a header
    that needs more is refused (InputError, kind "memory") before anything is written.
    """
    options = options_of(options, **keywords)
    if not isinstance(source, arrayio.ArraySource):
        source = arrayio.from_array(source)
    # one set of options for both attempts, so that the restart cannot lose one
    if options.scale_dtype != "auto":
        return _compress_once(source, out, options, options.scale_dtype, progress,
                              memory_limit)
    start = _tell(out)
    try:
        return _compress_once(source, out, options, "float32", progress, memory_limit)
    except ScaleRangeError:
        if start is None or not source.rereadable:
            raise
    out.seek(start)
    out.truncate()
    return _compress_once(source, out, options, "float64", progress, memory_limit)


def _tell(out) -> int | None:
    try:
        return out.tell() if out.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


def _compress_once(source, out, options: EncodeOptions, scale_dtype: str,
                   progress, memory_limit=None) -> Header:
    fields = dict(scale_dtype=scale_dtype, source_dtype=source.dtype.newbyteorder("=").name,
                  shape=source.shape)
    # the adaptive coding's basis is in the header, and its model depends on it: fitted
    # before the header is made (a file: a sample over all of it; a pipe: its first batch),
    # and adapt="auto" decided from it (library/adapt_fit.py)
    options, blocks, first, _ = adapt_fit.resolve(source, options,
                                                  lambda rows: _blocks(source, rows),
                                                  memory_limit)
    if options.payload_coding.data_fitted:  # auto took it: its scale field says float32
        fields["scale_dtype"] = "float32"
    header = _new_header(source.dim, options, fields)
    memory.check_encode(header, source.dtype.itemsize, memory_limit,
                        getattr(source, "chunk_bytes", 0))
    # several chunks go through the kernels at once (fewer calls, fewer thread launches);
    # each is checksummed and written while the next batch is encoded
    from .. import kernels

    pipes = memory.encode_pipelines(header, kernels.thread_count())
    if blocks is None:
        blocks = _blocks(source, header.chunk_rows * memory.pipe_batch_chunks(
            header, kernels.thread_count()))
    else:  # a pipe read for the adaptive fit: its first batch is the whole batch, so
        pipes = 1  # one pipeline holds what the encoder's count allows for all of them
    batch = memory.batch_chunks(header)
    if any(s.wanted(options) for s in stages.STAGES):
        # the header holds the fitted stages' parameters, so they are known before the
        # first chunk is written: fitted once, from the first chunk's vectors (also on a
        # pipe), by the one function eval uses too
        first = next(blocks, None) if first is None else first
        rows = (first[:header.chunk_rows] if first is not None
                else np.zeros((0, header.dim), np.float32))
        fields["fitted"] = stages.fit_stages(options, rows)
        header = _new_header(source.dim, options, fields)
        blocks = itertools.chain([] if first is None else [first], blocks)
    codec = Codec(header)
    writer = ContainerWriter(out, header)
    row = 0
    if progress is not None:
        progress(0, source.n_rows)
    if pipes > 1:
        fresh = source.fresh_blocks or arrayio.bf16.is_bf16(source.dtype)
        _encode_in_turns(codec, blocks, fresh, writer, pipes, progress, source.n_rows)
        # blocks were read ahead of the encoding: a change while the last were encoded
        # is refused as one between two reads is
        source.check_unchanged()
        writer.finish()
        return header
    with BackgroundConsumer(writer.write_chunk, depth=2 * batch) as background:
        for block in blocks:
            for payload in codec.encode_chunks(block, row):
                background.put(payload)
            row += block.shape[0]
            del block  # not held while the source reads the next one
            if progress is not None:
                progress(row, source.n_rows)
    writer.finish()
    return header


def _blocks(source, rows: int):
    blocks = source.blocks(rows)
    if arrayio.bf16.is_bf16(source.dtype):  # exact float32 values: no new kernel
        blocks = (arrayio.bf16.to_f32(b) for b in blocks)
    return blocks


def _encode_in_turns(codec, blocks, fresh: bool, writer, pipes: int, progress,
                     total: int) -> None:
    """Encode the blocks with `pipes` threads, each reading a block of its own, encoding
    it (its kernels on thread_count() // pipes threads) and writing its chunks in turn
    (tqcli.arrayio.pipeline.run_ordered): reading, encoding and writing overlap, and the
    bytes are those of one block at a time.  A block of a source that may fill the same
    buffer again (not `fresh`) is copied into the thread's own buffer first."""
    from .. import kernels
    from ..arrayio.pipeline import run_ordered

    share = max(1, kernels.thread_count() // pipes)
    at = [0]

    def take(state):
        block = next(blocks, None)
        if block is None:
            return None
        if not fresh:  # the source may refill this buffer while the block is encoded
            own = state.get("input")
            if own is None or own.shape[0] < block.shape[0] or own.dtype != block.dtype:
                own = state["input"] = np.empty_like(block)  # the first block is the largest
            np.copyto(own[:block.shape[0]], block)
            block = own[:block.shape[0]]
        row = at[0]
        at[0] += block.shape[0]
        return block, row

    def work(item, state):
        block, row = item
        with kernels.local_threads(share):
            return codec.encode_chunks(block, row), row + block.shape[0]

    def emit(result):
        payloads, done = result
        for payload in payloads:
            writer.write_chunk(payload)
        if progress is not None:
            progress(done, total)

    run_ordered(take, work, emit, pipes)


def _new_header(dim: int, options: EncodeOptions, fields: dict) -> Header:
    try:
        header = make_header(dim, options, **fields)
        header.validate()
    except OptionError:
        raise
    except (ValueError, FormatError) as e:
        raise InputError(str(e)) from None
    return header


@option_keywords
def compress(array, options: EncodeOptions | None = None, **keywords) -> bytes:
    """Compress a float16/32/64 array (last axis = vectors) and return the .tqz bytes.

    Options: an EncodeOptions, or its fields as keywords (as for compress_to):
    bits (4), mode "mse" (least error) or "prod" (unbiased inner products), seed (0),
    rounds (3), scale_rule "ls", "norm" or "ip" (default: ls for mse, norm for prod),
    scale_dtype "auto" (float32, or float64 when a norm needs it), "float32", "float16" or
    "float64"; chunk_rows a multiple of 8 (default: about 4 MiB of float32 input per
    chunk); rotation and coding name entries of the rotation and payload-coding tables
    (tqcli.codec.rotations, tqcli.codec.codings); center as in compress_to (False, True for the mean
    of the first chunk, or a vector); nmse: with the entropy coding, a target error
    instead of bits (compress_to).
    """
    buf = io.BytesIO()
    compress_to(array, buf, options_of(options, **keywords))
    return buf.getvalue()


# ---------------------------------------------------------------------- decompress


def decompress(src, rows=None, dtype: str | None = None,
               memory_limit: int | None = None, select=None,
               max_ratio: float | None = None) -> np.ndarray:
    """Decode a container (bytes, path or stream) into an array of its original shape.

    rows (None, a slice, or (start, stop)) selects vectors of the flattened (n, d) view
    and returns a 2-D array; select picks part of the original shape as numpy basic
    indexing over its leading axes would (a tuple of ints and slices, or text such as
    "3,0" or "2:4"; out-of-range is a ValueError; tqcli.arrayio.selection), reading only the
    chunks that hold it.  dtype is None/"original", "float32", "float16" or "float64".
    memory_limit: bytes of decoding state the header may ask for (spec 13.7; None: 256 MiB).
    max_ratio: decoded bytes the file may declare per byte it holds, per chunk and per file
    (spec 13.9; None: 256; math.inf: no limit), for a file one trusts.
    """
    with TqFile(src, memory_limit, max_ratio) as f:
        return f.read(rows, dtype, select=select)


def read_header(src) -> Header:
    """The header of a container given as bytes, a path, or a binary stream (read whatever
    its decoding would cost: nothing is decoded)."""
    with TqFile(src, memory_limit=math.inf, max_ratio=math.inf) as f:
        return f.header


class Decompressed(NamedTuple):
    """What decompress_file wrote: rows start:stop of `header`'s vectors (stop - start of
    them, for a selection of several runs), as `dtype`, an array of `shape`."""

    header: Header
    start: int
    stop: int
    dtype: np.dtype
    shape: tuple = ()


# ---------------------------------------------------------------------- inspect


# ---------------------------------------------------------------------- evaluate


def evaluate_file(input, container=None, *, bits=(2, 3, 4), mode: str = "mse",
                  seed: int = 0, scale_rule: str | None = None, queries: int = 1000,
                  dataset: str | None = None, center: bool = False,
                  memory_limit: int | None = None, sample: int | None = None,
                  codings=(CODINGS.default.cli_name,), progress=None,
                  max_ratio: float | None = None, adapt: bool = False) -> list[dict]:
    """Distortion and search quality (tqcli.library.evaluation) of tq on the array in `input`.

    Without `container`, one report per bit width of a fresh compression -- two with
    `center`, without and with mean-centring, to show what it gains; with `container`,
    one report of that container against its source `input` (memory_limit and max_ratio
    as for decompress).  Each report says whether the vectors were centred ("centered").

    The source is read once, block by block, whatever its size: nmse, cosine and the
    inner-product bias cover every vector; recall and the inner-product rmse a sample of
    `sample` rows (default: evaluation.default_sample) with `queries` of them held out
    (at most half; the reports say how many were used).  An input without vectors is
    refused.  codings: names of the coding table (tqcli.codec.codings.CODINGS.cli_names: fixed
    and/or entropy, mse mode): each b is evaluated with each, a coding with fractional
    rates (entropy) at rate b, so at about the bytes of fixed-length b bits.
    progress(rows done, rows) as for compress_to.  adapt: also the adaptive coding at each
    b (mse mode; the basis fitted as compress fits it), each report holding "adapt_auto",
    what adapt="auto" decides there and why (library/adapt_fit.py).
    """
    from . import evaluation

    with arrayio.open_input(input, dataset) as source:
        try:
            n, d = source.n_rows, source.dim
            if n == 0:
                raise InputError("holds no vectors to evaluate", kind="empty")
            if container is not None:
                return [_evaluate_container(source, container, queries, sample,
                                            memory_limit, progress, max_ratio)]
            requested = [(b, k, c) for b in bits for k in codings
                         if CODINGS.resolve(k).fractional_rates or float(b).is_integer()
                         for c in ((False, True) if center else (False,))]
            settings = [EncodeOptions(bits=b, mode=mode, seed=seed, scale_rule=scale_rule,
                                      center=c, coding=k) for b, k, c in requested]
            requested = [b for b, _, _ in requested]
            decisions = [None] * len(settings)
            if adapt:
                extra, made = adapt_fit.eval_settings(source, bits,
                                                      lambda rows: _blocks(source, rows), seed)
                settings, requested = settings + extra, requested + list(bits)
                decisions += made
            size = evaluation.default_sample(n, d, len(settings)) if sample is None \
                else sample
            _check_eval_memory(n, d, len(settings), size, source.dtype, memory_limit)
            try:
                reports = _evaluate_fresh(source, settings, requested, size, queries,
                                          progress, "float32")
            except ScaleRangeError:
                if not source.rereadable:
                    raise
                reports = _evaluate_fresh(source, settings, requested, size, queries,
                                          progress, "float64")
            for r, dec, b in zip(reports, decisions, requested):
                if dec is not None:  # the rate asked for (the fixed coding's bytes at b)
                    r["bits"] = b
                    r["adapt_auto"] = {"takes": dec.adapt, "reason": dec.reason}
            return reports
        except TqError as e:
            raise e.with_source(source.name)


def _evaluate_fresh(source, settings, requested, sample, queries, progress,
                    scale_dtype) -> list[dict]:
    from . import evaluation

    encodings = evaluation.FreshEncodings(source, settings, scale_dtype)
    ev = evaluation.Evaluator(source.n_rows, source.dim, len(settings), sample, queries,
                              source.dtype)
    _feed(ev, encodings, progress)
    return [evaluation.finish_report(r, h, evaluation.file_bytes_of(h, p), h.centered,
                                     requested=b)
            for r, h, p, b in zip(ev.results(), encodings.headers, encodings.payload_bytes,
                                  requested)]


def _evaluate_container(source, container, queries, sample, memory_limit,
                        progress, max_ratio=None) -> dict:
    from . import evaluation

    n, d = source.n_rows, source.dim
    try:
        if not os.path.exists(container):
            raise TqError("no such file")
        with TqFile(container, memory_limit, max_ratio) as f:
            h = f.header
            if h.n_vectors != n or h.dim != d:
                raise TqError(f"holds {h.n_vectors} x {h.dim} vectors, INPUT has {n} x {d}")
            size = evaluation.default_sample(n, d, 1) if sample is None else sample
            _check_eval_memory(n, d, 1, size, source.dtype, memory_limit, h.decode_memory)
            ev = evaluation.Evaluator(n, d, 1, size, queries, source.dtype)

            def pairs():
                decoded = f.iter_blocks()
                for block in source.blocks(h.chunk_rows):
                    yield block, [next(decoded)]
                next(decoded, None)  # a stream is read to its end (index, footer)

            _feed(ev, pairs(), progress)
    except TqError as e:
        raise e.with_source(container)
    (r,) = ev.results()
    return evaluation.finish_report(r, h, os.path.getsize(container), h.centered)


def _check_eval_memory(n: int, d: int, settings: int, sample: int, dtype,
                       limit: int | None, decoding: int = 0) -> None:
    """Refuse (InputError, kind "memory") an evaluation whose running state would pass the
    budget (None: limits.DEFAULT_MEMORY_LIMIT), before any of it is allocated: per width,
    the bias sums (BIAS_GROUPS x d binary64) and the sample's decoded rows; the sample's
    source rows; a block of rows in binary64 (source, error, decoded); and the decoding."""
    from . import evaluation
    from .. import limits

    limit = limits.DEFAULT_MEMORY_LIMIT if limit is None else limit
    rows = min(n, sample)
    block = min(n, limits.default_chunk_rows(d)) * d * 8 * 4
    need = (settings * (evaluation.BIAS_GROUPS * d * 8 + rows * d * 4)
            + rows * d * np.dtype(dtype).itemsize + block + decoding)
    if need > limit:
        raise InputError(f"evaluating vectors of {d} values needs {limits.format_size(need)}"
                         f" (running sums of {settings} setting{'s' * (settings != 1)} and a "
                         f"sample of {rows} rows), above the memory limit of "
                         f"{limits.format_size(limit)} (raise it with --memory)", kind="memory")


def _feed(ev, pairs, progress) -> None:
    if progress is not None:
        progress(0, ev.n)
    for block, decoded in pairs:
        ev.add(block, decoded)
        if progress is not None:
            progress(ev.done, ev.n)


# ---------------------------------------------------------------------- helpers


def set_threads(n: int | None) -> int:
    """Use n worker threads in the kernels (default: all cores); output does not change."""
    from .. import kernels

    return kernels.set_threads(n)


def on_first_compile(callback):
    """Call callback(kernel name, estimated seconds) once, if and when this process starts
    compiling a kernel that numba's cache does not hold yet (first use after installing
    or upgrading tq); for a front end that wants to say why it is waiting.  Returns a
    function that withdraws the request."""
    from .. import kernels

    return kernels.on_first_compile(callback)


# the in-memory and stream verbs; files by name (compress_file, decompress_file, inspect,
# the collection files) are tqcli.fileio's, collections tqcli.library.collections'
__all__ = ["compress", "compress_to", "decompress", "read_header", "evaluate_file",
           "set_threads", "on_first_compile", "TqFile", "Header", "TqError", "Decompressed"]
