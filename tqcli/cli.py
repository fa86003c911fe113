"""The `tq` command line: a thin click layer over tqcli.api.

Heavy modules are imported inside the commands so that `tq --help` and `tq --version`
start instantly.  Errors become one line `tq: FILE: reason` on stderr with exit status 1;
usage errors exit with 2, an interrupt with 130.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys

import click

from . import __version__
from .errors import TqError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(source: str | None, reason: str) -> None:
    reason = " ".join(str(reason).split())  # always exactly one line
    click.echo(f"tq: {source}: {reason}" if source else f"tq: {reason}", err=True)


def _exit(ctx, code: int) -> None:
    """Exit with `code`.  If HDF5 could not close an output file after a write error (a full
    disk), the interpreter's shutdown would make the HDF5 library touch that file again and
    crash (a segmentation fault after the error line): end the process directly instead,
    once the temporary output is gone and the error is printed."""
    arrayio = sys.modules.get("tqcli.arrayio")
    if arrayio is not None and arrayio.H5Sink.broken:
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except Exception:  # noqa: BLE001 - a closed pipe
                pass
        os._exit(code)
    ctx.exit(code)


class TqGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TqError as e:
            _fail(e.source, e.reason)
            _exit(ctx, 1)
        except KeyboardInterrupt:
            _fail(None, "interrupted")
            _exit(ctx, 130)
        except MemoryError:
            _fail(None, "out of memory")
            _exit(ctx, 1)
        except OSError as e:
            _fail(e.filename or None, e.strerror or str(e))
            _exit(ctx, 1)
        except (click.exceptions.ClickException, click.exceptions.Exit,
                click.exceptions.Abort):
            raise
        except Exception as e:  # a bug: still one line, unless TQ_TRACEBACK asks for more
            if os.environ.get("TQ_TRACEBACK"):
                raise
            first = (str(e).splitlines() or [""])[0]
            _fail(None, f"internal error: {type(e).__name__}: {first} "
                        f"(set TQ_TRACEBACK=1 for details)")
            _exit(ctx, 1)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def _install_signals() -> None:
    # a closed pipe downstream (`tq decompress x.tqz -c | head`) ends tq quietly
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, _on_sigterm)


@click.group(cls=TqGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="tq",
                      message="%(prog)s %(version)s")
def main():
    """tq: compress embedding matrices and KV-cache dumps with TurboQuant.

    \b
      tq compress embeddings.npy -b 3      # -> embeddings.npy.tqz
      tq decompress embeddings.npy.tqz     # -> embeddings.npy
      tq inspect embeddings.npy.tqz        # header, sizes, ratio
      tq eval embeddings.npy -b 2,3,4      # distortion against the theory
    """
    _install_signals()
    _quiet_idle_threads()
    _pause_gc()


_gc_paused = False
_gc_frozen = False


def _pause_gc() -> None:
    """numba's start-up builds a large object graph.  Collecting it again and again while it
    is built costs ~10% of a short command, and once more when the interpreter exits
    (~0.14 s).  So collection is off until the kernels are loaded (_threads) and then
    resumes with that graph frozen (gc.freeze, once per process) out of later collections;
    collection is back on when the command ends, also if it ends before _threads."""
    global _gc_paused
    if not gc.isenabled():
        return
    gc.disable()
    _gc_paused = True
    click.get_current_context().call_on_close(_resume_gc)


def _resume_gc(freeze: bool = False) -> None:
    global _gc_paused, _gc_frozen
    if not _gc_paused:
        return
    if freeze and not _gc_frozen:
        gc.freeze()
        _gc_frozen = True
    _gc_paused = False
    gc.enable()


def _quiet_idle_threads() -> None:
    """Keep idle helper threads off the CPUs the kernels need.

    tq never calls BLAS, yet numpy's OpenBLAS starts a thread per core that spins for a
    while; and the OpenMP workers behind numba's prange spin between kernel calls while
    this process reads, checks and writes chunks.  On a 2-core machine that took a fifth of
    the CPU time of a decompression.  Only this command-line process is affected, before
    numpy and numba load, and a value the user set is kept.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# ------------------------------------------------------------------------- helpers


def _progress_enabled(flag: bool | None, quiet: bool) -> bool:
    if quiet:
        return False
    if flag is None:
        return sys.stderr.isatty()
    return flag


class _Progress:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.bar = None
        if enabled and total > 0:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress,
                                       TimeRemainingColumn)

            self.bar = Progress("[progress.description]{task.description}", BarColumn(),
                                MofNCompleteColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task(label, total=total)

    def __enter__(self):
        if self.bar:
            self.bar.start()
        return self

    def __call__(self, done: int) -> None:
        if self.bar:
            self.bar.update(self.task, completed=done)

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()


class _Unimportable:
    """Within the block, `import name` fails for the given modules not yet imported (an
    ImportError their optional users handle); afterwards they import normally."""

    def __init__(self, *names: str):
        self.names = [n for n in names if n not in sys.modules]

    def __enter__(self):
        for n in self.names:
            sys.modules[n] = None

    def __exit__(self, *exc):
        for n in self.names:
            sys.modules.pop(n, None)


def _api():
    """tqcli.api, imported with numba behind it; numba imports scipy only to check its
    version (10 ms), which this command-line process skips."""
    with _Unimportable("scipy"):
        from . import api
    return api


def _threads(n: int | None) -> None:
    """Start the engine for this process: numba, the kernels, n worker threads.

    numba's first compiled call loads its NumPy support, which imports scipy.linalg only to
    find a BLAS for np.dot and np.linalg -- 0.2 s that tq, which uses neither, would pay on
    every command.  In this command-line process (never in a library user's) that import
    is made to fail while the registries load; scipy stays importable afterwards (the
    codebook solver uses scipy.special).
    """
    with _Unimportable("scipy", "scipy.linalg"):
        from . import kernels

        kernels.warm_up()
    from .api import set_threads

    set_threads(n)
    _resume_gc(freeze=True)


def _open_output(path: str, force: bool):
    from .files import AtomicOutput, StdoutOutput

    return StdoutOutput() if path == "-" else AtomicOutput(path, force)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


common_threads = click.option("-T", "--threads", type=click.IntRange(min=0), default=None,
                              help="Worker threads (default: all cores; output is identical).")


# ------------------------------------------------------------------------- compress


@main.command(context_settings=CONTEXT)
@click.argument("input", metavar="INPUT")
@click.option("-o", "--output", metavar="OUT", help="Output file ('-' for stdout). "
              "Default: INPUT.tqz, or stdout when INPUT is '-'.")
@click.option("-b", "--bits", type=click.IntRange(1, 8), default=4, show_default=True,
              help="Bits per coordinate.")
@click.option("--mode", type=click.Choice(["mse", "prod"]), default="mse", show_default=True,
              help="mse: least error; prod: unbiased inner products.")
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=0, show_default=True,
              help="Seed of the rotation (stored in the header).")
@click.option("--scale", "scale_rule", type=click.Choice(["ls", "norm", "ip"]), default=None,
              help="Per-vector scale: ls (least squares, mse default), norm, or ip "
                   "(unbiased inner products); prod mode always uses norm.")
@click.option("--scale-dtype", type=click.Choice(["auto", "float32", "float16", "float64"]),
              default="auto", show_default=True,
              help="Storage of the per-vector scale: auto is float32 (4 bytes), or float64 "
                   "when a norm is beyond float32's range.")
@click.option("--rounds", type=click.IntRange(1, 32), default=3, show_default=True,
              help="Rounds of the structured rotation (expert).")
@click.option("--chunk-rows", type=click.IntRange(8, 1 << 20), default=None,
              help="Vectors per chunk, a multiple of 8: the unit of random access "
                   "(default: about 4 MiB of float32 input).")
@click.option("--dataset", metavar="PATH",
              help="HDF5 dataset to read (or write INPUT as FILE.h5:/path).")
@click.option("-c", "--stdout", "to_stdout", is_flag=True, help="Write to stdout.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--rm", "remove", is_flag=True, help="Delete INPUT after a complete write.")
@click.option("-q", "--quiet", is_flag=True, help="No summary, no progress.")
@click.option("-v", "--verbose", is_flag=True, help="Print a summary line.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: only when stderr is a terminal).")
@common_threads
def compress(input, output, bits, mode, seed, scale_rule, scale_dtype, rounds, chunk_rows,
             dataset, to_stdout, force, remove, quiet, verbose, progress, threads):
    """Compress INPUT (.npy, .h5/.hdf5, or '-' for a .npy on stdin) into a .tqz file."""
    from . import arrayio

    if mode == "prod" and scale_rule not in (None, "norm"):
        raise click.BadParameter("prod mode uses the norm scale", param_hint="--scale")
    if chunk_rows is not None and chunk_rows % 8:
        raise click.BadParameter("must be a multiple of 8", param_hint="--chunk-rows")
    out = "-" if to_stdout else output
    if out is None:
        out = "-" if input == "-" else arrayio.split_h5_spec(input)[0] + ".tqz"
    if out == "-" and remove:
        raise click.UsageError("--rm needs an output file (it is ignored with stdout)")
    if input == "-" and remove:
        raise click.UsageError("--rm needs an input file (there is nothing to delete on stdin)")
    source = arrayio.open_input(input, dataset)
    name = source.name
    with source:
        compress_source = _api().compress_source  # the kernels load once the input is good

        _threads(threads)
        if out != "-" and source.name != "-" and _same_file(source.name, out):
            raise TqError("output would overwrite the input", out)
        if remove and isinstance(source, arrayio.H5Source):
            raise TqError("--rm refused for HDF5 input (the file may hold other data)", name)
        try:
            with _open_output(out, force) as sink, \
                    _Progress(_progress_enabled(progress, quiet), source.n_rows,
                              "compress") as bar:
                header = compress_source(source, sink.stream, bits=bits, mode=mode, seed=seed,
                                         scale_rule=scale_rule, scale_dtype=scale_dtype,
                                         rounds=rounds, chunk_rows=chunk_rows, progress=bar)
                sink.commit()
        except TqError as e:
            raise e.with_source(name)
    if remove:
        os.remove(name)
    if verbose or (not quiet and sys.stderr.isatty() and out != "-"):
        src_bytes = header.n_vectors * header.dim * source.dtype.itemsize
        click.echo(f"{name}: {header.n_vectors} x {header.dim} {header.source_dtype}, "
                   f"{_human(src_bytes)} -> {_human(header.file_size)} "
                   f"({src_bytes / max(header.file_size, 1):.2f}x) -> {out}", err=True)


# ------------------------------------------------------------------------- decompress


@main.command(context_settings=CONTEXT)
@click.argument("input", metavar="IN.tqz")
@click.option("-o", "--output", metavar="OUT", help="Output file: .npy, or HDF5 when it ends "
              "in .h5/.hdf5; '-' for a .npy on stdout. Default: IN without .tqz.")
@click.option("--dtype", type=click.Choice(["original", "float32", "float16", "float64"]),
              default="original", show_default=True, help="dtype of the decoded array.")
@click.option("--rows", metavar="A:B", help="Decode only vectors A:B (of the flattened "
              "(n, d) view; the result is 2-D).")
@click.option("--dataset", metavar="PATH", default="data", show_default=True,
              help="Dataset name for HDF5 output.")
@click.option("-c", "--stdout", "to_stdout", is_flag=True, help="Write to stdout.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--rm", "remove", is_flag=True, help="Delete IN.tqz after a complete write.")
@click.option("-q", "--quiet", is_flag=True, help="No summary, no progress.")
@click.option("-v", "--verbose", is_flag=True, help="Print a summary line.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: only when stderr is a terminal).")
@common_threads
def decompress(input, output, dtype, rows, dataset, to_stdout, force, remove, quiet, verbose,
               progress, threads):
    """Decompress IN.tqz ('-' for stdin) into a .npy or HDF5 file."""
    from . import arrayio
    api = _api()
    iter_decoded, open_container = api.iter_decoded, api.open_container
    output_dtype, parse_rows = api.output_dtype, api.parse_rows
    from .pipeline import BackgroundConsumer
    from .errors import FormatError

    out = "-" if to_stdout else output
    if out is None:
        if input == "-":
            out = "-"
        elif input.endswith(".tqz") and len(input) > 4:
            out = input[:-4]
        else:
            raise TqError("unknown suffix (expected .tqz); use -o OUT", input)
    if out == "-" and remove:
        raise click.UsageError("--rm needs an output file (it is ignored with stdout)")
    if input == "-" and remove:
        raise click.UsageError("--rm needs an input file (there is nothing to delete on stdin)")
    if input == "-" and sys.stdin.isatty():
        raise TqError("refusing to read binary data from a terminal", "-")
    _threads(threads)
    try:
        if input == "-":
            reader, stream = open_container(sys.stdin.buffer)
        else:
            if not os.path.exists(input):
                raise TqError("no such file")
            if os.path.isdir(input):
                raise TqError("is a directory")
            reader, stream = open_container(input)
    except (TqError, FormatError) as e:
        raise e.with_source(input)
    try:
        h = reader.header
        try:
            a, b = parse_rows(rows, h.n_vectors)
            dt = output_dtype(h, dtype)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--rows")
        shape = h.shape if rows is None else (b - a, h.dim)
        if out != "-" and input != "-" and _same_file(input, out):
            raise TqError("output would overwrite the input", out)
        h5 = out != "-" and arrayio.is_hdf5_name(out)
        with _open_output(out, force) as sink, \
                _Progress(_progress_enabled(progress, quiet), b - a, "decompress") as bar:
            if h5:
                sink.stream.close()
                writer = arrayio.H5Sink(sink.tmp, shape, dt, dataset, name=out)
            else:
                writer = arrayio.NpySink(sink.stream, shape, dt)
            try:
                # chunk k is written while chunk k+1 is decoded: three buffers in turn and
                # a queue of one keep the block being written out of the decoder's way
                with BackgroundConsumer(writer.write, depth=1) as background:
                    for block in iter_decoded(reader, a, b, progress=bar, buffers=3):
                        background.put(block)
            finally:
                writer.close()
            if h5:
                sink.stream = open(sink.tmp, "rb+")
            sink.commit()
    except TqError as e:
        raise e.with_source(input)
    finally:
        if stream is not None:
            stream.close()
    if remove:
        os.remove(input)
    if verbose:
        click.echo(f"{input}: {b - a} x {h.dim} -> {out} ({dt.name})", err=True)


# ------------------------------------------------------------------------- inspect


def header_report(h, file_size: int) -> dict:
    n, d = h.n_vectors, h.dim
    src_item = {"float16": 2, "float32": 4, "float64": 8}[h.source_dtype]
    return {
        "format": "tqz", "version": 1,
        "mode": h.mode, "bits": h.bits, "dim": d, "vectors": n, "shape": list(h.shape),
        "source_dtype": h.source_dtype, "seed": h.seed,
        "rotation": {"kind": h.rotation, "rounds": h.rounds},
        "scale": {"rule": h.scale_rule, "dtype": h.scale_dtype},
        "codebook": [float(c) for c in h.codebook],
        "chunk_rows": h.chunk_rows, "chunks": h.n_chunks,
        "file_bytes": file_size, "header_bytes": h.header_size,
        "payload_bytes": h.payload_bytes,
        "overhead_bytes": file_size - h.payload_bytes,
        "bytes_per_vector": file_size / n if n else None,
        "ratio_vs_float32": 4 * n * d / file_size,
        "ratio_vs_original": src_item * n * d / file_size,
    }


@main.command(context_settings=CONTEXT)
@click.argument("input", metavar="IN.tqz")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--verify", is_flag=True, help="Read every chunk and check its checksum.")
def inspect(input, as_json, verify):
    """Show the header, sizes and ratio of IN.tqz ('-' for stdin)."""
    open_container = _api().open_container

    if input == "-" and sys.stdin.isatty():
        raise TqError("refusing to read binary data from a terminal", "-")
    try:
        if input != "-" and not os.path.exists(input):
            raise TqError("no such file")
        reader, stream = open_container(sys.stdin.buffer if input == "-" else input)
        try:
            h = reader.header
            if verify or not reader.seekable:
                for i in range(h.n_chunks):
                    reader.read_chunk(i, verify=verify)
                reader.finish_stream()
        finally:
            if stream is not None:
                stream.close()
    except TqError as e:
        raise e.with_source(input)
    report = header_report(h, h.file_size)
    if verify:
        report["verified"] = True
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    width = 18
    rows = [
        ("format", "tqz version 1"),
        ("mode", f"{h.mode}, {h.bits} bits"),
        ("vectors", f"{h.n_vectors} x {h.dim} (shape {tuple(h.shape)}, {h.source_dtype})"),
        ("seed", str(h.seed)),
        ("rotation", f"{h.rotation}, {h.rounds} rounds"),
        ("scale", f"{h.scale_rule} ({h.scale_dtype})"),
        ("codebook", _codebook_text(h.codebook)),
        ("chunks", f"{h.n_chunks} of {h.chunk_rows} rows"),
        ("file size", f"{report['file_bytes']} bytes ({_human(report['file_bytes'])})"),
        ("payload", f"{report['payload_bytes']} bytes, overhead {report['overhead_bytes']}"),
        ("bytes/vector", f"{report['bytes_per_vector']:.2f}" if h.n_vectors else "-"),
        ("ratio", f"{report['ratio_vs_float32']:.2f}x vs float32, "
                  f"{report['ratio_vs_original']:.2f}x vs {h.source_dtype}"),
    ]
    if verify:
        rows.append(("checksums", f"all {h.n_chunks} chunks OK"))
    for k, v in rows:
        click.echo(f"{k:<{width}}{v}")


def _codebook_text(cb) -> str:
    vals = [f"{float(c):.6g}" for c in cb]
    if len(vals) > 8:
        vals = vals[:4] + ["..."] + vals[-4:]
    return f"{len(cb)} values [" + ", ".join(vals) + "]" if len(cb) else "none"


# ------------------------------------------------------------------------- eval


def _bit_list(ctx, param, value):
    try:
        bits = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter("expected a list like 2,3,4") from None
    if not bits or any(not 1 <= b <= 8 for b in bits):
        raise click.BadParameter("bits must be between 1 and 8")
    return bits


@main.command("eval", context_settings=CONTEXT)
@click.argument("input", metavar="INPUT")
@click.argument("container", metavar="[FILE.tqz]", required=False)
@click.option("-b", "--bits", default="2,3,4", show_default=True, callback=_bit_list,
              help="Bit widths to evaluate, comma separated.")
@click.option("--mode", type=click.Choice(["mse", "prod"]), default="mse", show_default=True)
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=0, show_default=True)
@click.option("--scale", "scale_rule", type=click.Choice(["ls", "norm", "ip"]), default=None)
@click.option("--queries", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Held-out query vectors for the inner-product and recall figures.")
@click.option("--dataset", metavar="PATH", help="HDF5 dataset to read.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@common_threads
def eval_cmd(input, container, bits, mode, seed, scale_rule, queries, dataset, as_json,
             threads):
    """Report distortion and search quality of tq on INPUT against the theory.

    With FILE.tqz, evaluate that container against its source INPUT instead.
    """
    import numpy as np

    from . import arrayio
    api = _api()
    compress, decompress, read_header = api.compress, api.decompress, api.read_header
    from .evaluation import evaluate

    _threads(threads)
    source = arrayio.open_input(input, dataset)
    with source:
        try:
            x = np.concatenate(list(source.blocks(1 << 16)) or
                               [np.zeros((0, source.dim))]).astype(np.float32)
        except TqError as e:
            raise e.with_source(source.name)
        itemsize = source.dtype.itemsize
    reports = []
    if container is not None:
        try:
            if not os.path.exists(container):
                raise TqError("no such file")
            h = read_header(container)
            if h.n_vectors != x.shape[0] or h.dim != x.shape[1]:
                raise TqError(f"holds {h.n_vectors} x {h.dim} vectors, INPUT has "
                              f"{x.shape[0]} x {x.shape[1]}")
            xh = decompress(container, rows=(0, h.n_vectors), dtype="float32")
        except TqError as e:
            raise e.with_source(container)
        reports.append(evaluate(x, xh, bits=h.bits, mode=h.mode,
                                file_bytes=os.path.getsize(container),
                                source_itemsize=itemsize, queries=queries))
    else:
        for b in bits:
            try:
                blob = compress(x, bits=b, mode=mode, seed=seed, scale_rule=scale_rule)
            except TqError as e:
                raise e.with_source(source.name)
            xh = decompress(blob, rows=(0, x.shape[0]), dtype="float32")
            reports.append(evaluate(x, xh, bits=b, mode=mode, file_bytes=len(blob),
                                    source_itemsize=itemsize, queries=queries))
    if as_json:
        click.echo(json.dumps({"input": input, "results": reports}, indent=2))
        return
    _print_eval(input, reports)


def _print_eval(name: str, reports: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    r0 = reports[0]
    table = Table(title=f"{name}: {r0['vectors']} vectors, d={r0['dim']}, mode {r0['mode']}")
    cols = [("bits", "{}"), ("nmse", "{:.5f}"), ("optimum", "{:.5f}"),
            ("nmse/opt", "{:.3f}"), ("4^-b", "{:.5f}"), ("cosine", "{:.4f}"),
            ("ip bias", "{:+.2e}"), ("ip rmse", "{:.2e}"), ("recall@1", "{:.3f}"),
            ("R@10@10", "{:.3f}"), ("B/vec", "{:.1f}"), ("ratio", "{:.2f}x")]
    keys = ["bits", "nmse", "optimum", "nmse_vs_optimum", "lower_bound", "mean_cosine",
            "ip_bias", "ip_rmse", "recall_at_1", "recall_10_at_10", "bytes_per_vector",
            "ratio_vs_float32"]
    for c, _ in cols:
        table.add_column(c, justify="right")
    for r in reports:
        table.add_row(*[fmt.format(r[k]) if k in r else "-" for (c, fmt), k in zip(cols, keys)])
    Console(width=160).print(table)
