"""The `tq` command line: click glue over tqcli.api.

Each command turns its flags into one library call (api.compress_file, decompress_file,
inspect, evaluate_file) and prints what it returns.  Options and their rules come from
tqcli.limits; process tuning is tqcli.process; report text is tqcli.report.  Heavy modules
are imported inside the commands so that `tq --help` and `tq --version` start instantly.
Errors become one line `tq: FILE: reason` on stderr with exit status 1; usage errors exit
with 2, an interrupt with 130, SIGTERM with 143.  compress, decompress and inspect take
several files, each handled on its own as zstd does (_each).
"""

from __future__ import annotations

import json
import os
import signal
import sys

import click

from . import __version__, limits, process
from .rotations import DEFAULT as DEFAULT_ROTATION, ROTATIONS
from .errors import TqError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(source: str | None, reason: str) -> None:
    reason = " ".join(str(reason).split())  # always exactly one line
    click.echo(f"tq: {source}: {reason}" if source else f"tq: {reason}", err=True)


# A library error's words name the library's keywords (force=True); for these kinds the
# command line says the same with its own options.
CLI_REASONS = {"exists": "already exists; use -f to overwrite"}


def _reason(e: TqError) -> str:
    return CLI_REASONS.get(e.kind, e.reason)


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


class OneLineUsageError(click.UsageError):
    """A usage error as one stderr line, as every other error: `tq: usage: what is wrong
    (see 'tq COMMAND --help')`, exit status 2 (click's own form is three lines)."""

    def show(self, file=None) -> None:
        where, ctx = [], self.ctx
        while ctx is not None and ctx.parent is not None:  # the root is `tq`, however run
            where.insert(0, ctx.info_name)
            ctx = ctx.parent
        where = " ".join(["tq"] + where)
        _fail("usage", f"{self.format_message()} (see '{where} --help')")


def _one_line(e: click.UsageError) -> click.UsageError:
    if isinstance(e, (OneLineUsageError, click.exceptions.NoArgsIsHelpError)):
        return e  # bare `tq`: the help itself
    one = OneLineUsageError(e.format_message(), e.ctx)
    one.exit_code = e.exit_code
    return one


class TqGroup(click.Group):
    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as e:
            raise _one_line(e) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as e:  # a command's options, or one of its own rules
            raise _one_line(e) from None
        except TqError as e:
            _fail(e.source, _reason(e))
            _exit(ctx, 1)
        except Terminated:
            _fail(None, "terminated")
            _exit(ctx, 143)
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


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds like Ctrl-C (outputs discarded), exits 128 + 15 as shells expect."""


def _on_sigterm(signum, frame):
    raise Terminated


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
    process.quiet_idle_threads()
    if process.pause_gc():  # back on when the command ends, whichever way it ends
        click.get_current_context().call_on_close(process.resume_gc)


# ------------------------------------------------------------------------- helpers


def _progress_enabled(flag: bool | None, quiet: bool) -> bool:
    if quiet:
        return False
    if flag is None:
        return sys.stderr.isatty()
    return flag


class _Progress:
    """A rich progress bar on stderr, or nothing; the library calls it as (done, total)."""

    def __init__(self, enabled: bool, label: str):
        self.enabled, self.label = enabled, label
        self.bar = None
        self.withdraw = None

    def __enter__(self):
        if self.enabled:
            self.withdraw = process.load_library().on_first_compile(self.compiling)
        return self

    def compiling(self, kernel: str, seconds: int) -> None:
        """The first-use notice: one line instead of a bar frozen at 0 while numba compiles."""
        text = f"tq: compiling kernels for first use, once, ~{seconds} s"
        if self.bar is not None:
            self.bar.console.print(text, markup=False, highlight=False)
        else:
            click.echo(text, err=True)

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if not self.enabled or total <= 0:
                return
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress,
                                       TimeRemainingColumn)

            # enabled while stderr is not a terminal means --progress forced it: draw the
            # bar anyway (as zstd --progress does), escape codes and all
            forced = True if not sys.stderr.isatty() else None
            self.bar = Progress("[progress.description]{task.description}", BarColumn(),
                                MofNCompleteColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True, force_terminal=forced),
                                transient=True)
            self.task = self.bar.add_task(self.label, total=total)
            self.bar.start()
        self.bar.update(self.task, completed=done)

    def __exit__(self, *exc):
        if self.withdraw is not None:
            self.withdraw()
        if self.bar:
            self.bar.stop()


def parse_rows(text: str | None) -> slice | None:
    """--rows 'A:B' (either end optional, negatives from the end) -> slice(A, B)."""
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) != 2:
        raise ValueError(f"rows must look like A:B, got {text!r}")
    try:
        a = int(parts[0]) if parts[0].strip() else None
        b = int(parts[1]) if parts[1].strip() else None
    except ValueError:
        raise ValueError(f"rows must look like A:B with integers, got {text!r}") from None
    return slice(a, b)


def _rows_option(ctx, param, value):
    try:
        return parse_rows(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--rows") from None


def parse_bit_list(text: str) -> list:
    """-b of eval: '2,3,4', '1-4' or mixtures like '1-3,8' -> sorted distinct widths;
    single rates may be fractional ('2.5,3.3': the entropy coding's)."""
    bits: set = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "." in part and "-" not in part:
            try:
                v = float(part)
            except ValueError:
                raise ValueError(f"expected widths like 2,3,4 or 1-4, got {text!r}") from None
            bits.add(int(v) if v.is_integer() else v)
            continue
        lo, sep, hi = part.partition("-")
        try:
            a, b = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise ValueError(f"expected widths like 2,3,4 or 1-4, got {text!r}") from None
        if a > b:
            raise ValueError(f"empty range {part!r} (write the smaller width first)")
        bits.update(range(a, b + 1))
    if not bits or any(not limits.MIN_BITS <= b <= limits.MAX_BITS for b in bits):
        raise ValueError(f"bits must be between {limits.MIN_BITS} and {limits.MAX_BITS}")
    return sorted(bits)


def _bit_list(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_bit_list(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _check_encoder_options(mode: str, scale_rule: str | None, chunk_rows: int | None) -> None:
    """The option rules of limits, as usage errors (exit status 2) naming the flag."""
    problem = limits.scale_rule_problem(mode, scale_rule or limits.default_scale_rule(mode))
    if problem:
        raise click.BadParameter(problem, param_hint="--scale")
    problem = None if chunk_rows is None else limits.chunk_rows_problem(chunk_rows)
    if problem:
        raise click.BadParameter(problem, param_hint="--chunk-rows")


CODING_CHOICES = ("fixed", "entropy")  # fixed is the coding table's `packed`


def _check_coding_options(bits, coding: str, nmse, mode: str):
    """(bits, coding table name) from -b, --coding and --nmse, or a usage error naming the
    flag: a fractional -b and --nmse need --coding entropy, which needs mse mode."""
    if coding == "entropy" and mode != "mse":
        raise click.BadParameter("the entropy coding is defined for mse mode only",
                                 param_hint="--coding")
    if nmse is not None:
        if coding != "entropy":
            raise click.BadParameter("a target error needs --coding entropy",
                                     param_hint="--nmse")
        if bits is not None:
            raise click.UsageError("-b and --nmse contradict each other: give one")
        return None, "entropy"
    if bits is None:
        bits = limits.DEFAULT_BITS
    if coding != "entropy":
        if not float(bits).is_integer():
            raise click.BadParameter(f"a fractional rate ({bits:g}) needs --coding entropy",
                                     param_hint="'-b' / '--bits'")
        return int(bits), "packed"
    return (int(bits) if float(bits).is_integer() else float(bits)), "entropy"


def _input_list(inputs, output, to_stdout, output_dir, keep, remove) -> list[str]:
    """The files a command works on, and the usage rules of several (zstd's): none means
    stdin ('-') unless stdin is a terminal; -o and -c name one output; '-' at most once."""
    if keep and remove:
        raise click.UsageError("-k/--keep and --rm contradict each other")
    if not inputs:
        if sys.stdin.isatty():
            raise click.UsageError("no input file given (and stdin is a terminal); "
                                   "see tq COMMAND -h")
        inputs = ("-",)
    if len(inputs) > 1 and output is not None:
        raise click.UsageError("-o names one output, but several inputs are given; "
                               "use --output-dir DIR")
    if len(inputs) > 1 and to_stdout:
        raise click.UsageError("-c writes one output, but several inputs are given")
    if output_dir is not None and (output is not None or to_stdout):
        raise click.UsageError("--output-dir cannot be combined with -o or -c")
    if list(inputs).count("-") > 1:
        raise click.UsageError("stdin ('-') can be read only once")
    if output_dir is not None:
        try:
            os.makedirs(output_dir, exist_ok=True)
        except OSError as e:
            raise TqError(f"cannot create the output folder ({e.strerror})", output_dir) \
                from None
    return list(inputs)


def _warner(source: str):
    """A library warning as one stderr line: `tq: SOURCE: warning: text`."""
    def warn(text: str) -> None:
        _fail(source, f"warning: {text}")
    return warn


def _each(inputs: list[str], one) -> None:
    """one(input) for every input, as zstd does with several files: a failure is reported
    (one line) and the next file still runs; exit status 1 if any failed.  A single input
    fails as every command does (TqGroup); an interrupt ends them all."""
    if len(inputs) == 1:
        one(inputs[0])
        return
    failed = False
    for input in inputs:
        try:
            one(input)
        except TqError as e:
            _fail(e.source or input, _reason(e))
            failed = True
        except MemoryError:
            _fail(input, "out of memory")
            failed = True
        except OSError as e:
            _fail(e.filename or input, e.strerror or str(e))
            failed = True
    if failed:
        _exit(click.get_current_context(), 1)


class _Engine:
    """The library and its kernels, started once for all of a command's files, and only
    when a first input has proved good."""

    def __init__(self, threads: int | None):
        self.threads, self.api = threads, None

    def start(self):
        if self.api is None:
            self.api = process.load_library()
            process.start_engine(self.threads)
        return self.api


def _remove_input(name: str) -> None:
    """--rm: delete a regular input file; a FIFO or device is left alone, as by zstd."""
    import stat

    if stat.S_ISREG(os.stat(name).st_mode):
        os.remove(name)


def _refuse_rm(out: str, input: str) -> None:
    if out == "-":
        raise click.UsageError("--rm needs an output file (it is ignored with stdout)")
    if input == "-":
        raise click.UsageError("--rm needs an input file (there is nothing to delete on stdin)")


def _memory_option(ctx, param, value):
    try:
        return None if value is None else limits.parse_size(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--memory") from None


common_memory = click.option(
    "--memory", "memory_limit", metavar="LIMIT", callback=_memory_option, default=None,
    help=f"Refuse a file whose decoding needs more than LIMIT of tables and buffers, e.g. "
         f"512M or 2GiB (default: {limits.format_size(limits.DEFAULT_MEMORY_LIMIT)}).")
common_threads = click.option("-T", "--threads", type=click.IntRange(min=0), default=None,
                              help="Worker threads; 0 or none given: all cores (the output "
                                   "is identical).")
common_output_dir = click.option("--output-dir", metavar="DIR", default=None,
                                 help="Write each output into DIR (made if missing), named "
                                      "as by default.")
common_keep = click.option("-k", "--keep", is_flag=True,
                           help="Keep the input (the default; --rm deletes it).")
common_mode = click.option("--mode", type=click.Choice(limits.MODES),
                           default=limits.DEFAULT_MODE, show_default=True,
                           help="mse: least error; prod: unbiased inner products.")
common_seed = click.option("--seed", type=click.IntRange(0, limits.MAX_SEED),
                           default=limits.DEFAULT_SEED, show_default=True,
                           help="Seed of the rotation (stored in the header).")


# ------------------------------------------------------------------------- compress


@main.command(context_settings=CONTEXT)
@click.argument("inputs", metavar="[INPUT]...", nargs=-1)
@click.option("-o", "--output", metavar="OUT", help="Output file ('-' for stdout), for one "
              "INPUT. Default: INPUT.tqz, or stdout when INPUT is '-'.")
@common_output_dir
@click.option("-b", "--bits", type=click.FloatRange(limits.MIN_BITS, limits.MAX_BITS),
              default=None, metavar="B", help=f"Bits per coordinate [default: {limits.DEFAULT_BITS}]; "
              "with --coding entropy any rate from 1 to 8, e.g. 2.5.")
@click.option("--coding", type=click.Choice(CODING_CHOICES), default="fixed",
              show_default=True, help="fixed: b-bit codes (fastest, in-place random access); "
              "entropy: entropy-coded indices, about a third less error at the same size.")
@click.option("--nmse", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=None, metavar="X", help="With --coding entropy, instead of -b: the "
              "rate whose expected error is X (0.01 = 1% of the energy).")
@common_mode
@common_seed
@click.option("--scale", "scale_rule", type=click.Choice(limits.SCALE_RULES), default=None,
              help="Per-vector scale: ls (least squares, mse default), norm, or ip "
                   "(unbiased inner products); prod mode always uses norm.")
@click.option("--scale-dtype", type=click.Choice(limits.SCALE_DTYPE_CHOICES),
              default=limits.DEFAULT_SCALE_DTYPE, show_default=True,
              help="Storage of the per-vector scale: auto is float32 (4 bytes), or float64 "
                   "when a norm is beyond float32's range.")
@click.option("--rounds", type=click.IntRange(limits.MIN_ROUNDS, limits.MAX_ROUNDS),
              default=limits.DEFAULT_ROUNDS, show_default=True,
              help="Rounds of the structured rotation (expert).")
@click.option("--rotation", type=click.Choice(ROTATIONS.names), default=DEFAULT_ROTATION,
              show_default=True, help="Rotation kind (expert; hadamard2 is tq 1.0's).")
@click.option("--center", is_flag=True, help="Subtract the mean of the first chunk's vectors "
              "(stored in the header, added back on decoding): less error for data with a "
              "common offset.")
@click.option("--chunk-rows", type=click.IntRange(limits.MIN_CHUNK_ROWS, limits.MAX_CHUNK_ROWS),
              default=None, help="Vectors per chunk, a multiple of 8: the unit of random "
                                 "access (default: about 4 MiB of float32 input).")
@click.option("--dataset", metavar="PATH",
              help="HDF5 dataset to read (or write INPUT as FILE.h5:/path).")
@click.option("--bits-for", "bits_for", metavar="PATTERN=B", multiple=True,
              help="Collections: B bits for members whose name matches the shell pattern "
                   "(repeatable; the last match wins), e.g. '*key*=8'.")
@click.option("--lossless", metavar="PATTERN", multiple=True,
              help="Collections: store members matching PATTERN losslessly (repeatable).")
@click.option("--vector-size", type=click.IntRange(limits.MIN_DIM, limits.MAX_DIM),
              default=None, metavar="D", help="Collections: cut the last axis into vectors "
              "of D values (e.g. the head dimension of [tokens, heads * head_dim]).")
@click.option("--strict", is_flag=True, help="Collections: refuse (exit 1, nothing written) "
              "when a --bits-for or --lossless pattern matches no member, instead of a "
              "warning.")
@click.option("--directory", "directory", is_flag=True,
              help="INPUT is a folder: its .npy files (recursively) become one collection, "
                   "named by their paths; decompress gives the folder back.")
@click.option("--input-dtype", type=click.Choice(["bfloat16"]), default=None,
              help="Read a .npy's 2-byte items as bfloat16 (ml_dtypes saves it as '<V2').")
@click.option("-c", "--stdout", "to_stdout", is_flag=True, help="Write to stdout.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output file.")
@common_keep
@click.option("--rm", "remove", is_flag=True, help="Delete INPUT after a complete write.")
@click.option("-q", "--quiet", is_flag=True, help="No summary, no progress.")
@click.option("-v", "--verbose", is_flag=True, help="Print a summary line.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: only when stderr is a terminal).")
@common_threads
def compress(inputs, output, output_dir, bits, coding, nmse, mode, seed, scale_rule,
             scale_dtype, rounds, rotation, center, chunk_rows, dataset, bits_for, lossless,
             vector_size, strict, directory, input_dtype, to_stdout, force, keep, remove,
             quiet, verbose, progress, threads):
    """Compress each INPUT (.npy, .h5/.hdf5, .safetensors, .npz, a zarr array folder STORE
    or STORE/ARRAY, or '-' for a .npy on stdin; none: stdin) into a .tqz file.  An HDF5
    file (or group), a .safetensors file and an .npz become one collection of named
    members; FILE.h5:/dataset one array."""
    from . import arrayio, files

    _check_encoder_options(mode, scale_rule, chunk_rows)
    bits, coding = _check_coding_options(bits, coding, nmse, mode)
    from .members import parse_bits_for

    try:
        parse_bits_for(bits_for)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--bits-for") from None
    inputs = _input_list(inputs, output, to_stdout, output_dir, keep, remove)
    engine = _Engine(threads)

    def one(input):
        out = "-" if to_stdout else output
        if out is None and input != "-" and arrayio.is_zarr_store(input):
            if output_dir is None:  # INPUT.tqz would land inside the zarr store
                raise TqError("a zarr array is a folder: name the output with -o OUT.tqz "
                              "or --output-dir DIR", input)
            input_name = input.rstrip("/") or input
            out = files.compressed_name(input_name, output_dir)
        if out is None:
            out = "-" if input == "-" else files.compressed_name(
                arrayio.split_h5_spec(input.rstrip("/") or input)[0], output_dir)
        if remove:
            _refuse_rm(out, input)
        from . import members

        if directory and not os.path.isdir(input):
            raise TqError("--directory: not a folder", input)
        if directory and remove:
            raise click.UsageError("--rm is refused for a folder")
        coll = (input, None) if directory else members.collection_input(input, dataset)
        if coll is not None:
            if input_dtype is not None:
                raise click.UsageError("--input-dtype is for .npy input (a collection's "
                                       "members carry their dtypes)")
            if remove and arrayio.is_hdf5_name(coll[0]):
                raise TqError("--rm refused for HDF5 input (the file may hold other data)",
                              coll[0])
            api = engine.start()
            with _Progress(_progress_enabled(progress, quiet), "compress members") as bar:
                toc = api.compress_collection_file(
                    coll[0], out, group=coll[1], force=force, progress=bar, bits=bits,
                    bits_for=bits_for, lossless=lossless, vector_size=vector_size,
                    mode=mode, seed=seed, rounds=rounds, rotation=rotation, center=center,
                    scale_rule=scale_rule, scale_dtype=scale_dtype, chunk_rows=chunk_rows,
                    coding=coding, nmse=nmse, strict=strict, warn=_warner(coll[0]))
            if remove:
                _remove_input(coll[0])
            if verbose or (not quiet and sys.stderr.isatty() and out != "-"):
                from .report import collection_summary

                written = os.path.getsize(out) if out != "-" and os.path.isfile(out) else None
                click.echo(collection_summary(coll[0], toc, out, written), err=True)
            return
        if bits_for or lossless or vector_size:
            raise click.UsageError("--bits-for, --lossless and --vector-size apply to "
                                   "collections (HDF5, .safetensors, .npz input)")
        with arrayio.open_input(input, dataset, input_dtype) as source:
            api = engine.start()  # the kernels load once the input is good
            if remove and isinstance(source, arrayio.ZarrSource):
                raise TqError("--rm refused for zarr input (a store is a folder that may hold "
                              "other data)", source.name)
            if remove and isinstance(source, arrayio.H5Source):
                raise TqError("--rm refused for HDF5 input (the file may hold other data)",
                              source.name)
            with _Progress(_progress_enabled(progress, quiet), "compress") as bar:
                header = api.compress_file(source, out, force=force, progress=bar, bits=bits,
                                           mode=mode, seed=seed, rounds=rounds,
                                           rotation=rotation, center=center,
                                           scale_rule=scale_rule, scale_dtype=scale_dtype,
                                           chunk_rows=chunk_rows, coding=coding, nmse=nmse)
        if remove:
            _remove_input(source.name)
        if verbose or (not quiet and sys.stderr.isatty() and out != "-"):
            from .report import compress_summary

            written = os.path.getsize(out) if out != "-" and os.path.isfile(out) else None
            click.echo(compress_summary(source.name, header, out, written), err=True)

    _each(inputs, one)


# ------------------------------------------------------------------------- decompress


def _select_option(ctx, param, value):
    from .selection import parse_select

    try:
        return None if value is None else parse_select(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--select") from None


@main.command(context_settings=CONTEXT)
@click.argument("inputs", metavar="[IN.tqz]...", nargs=-1)
@click.option("-o", "--output", metavar="OUT", help="Output file, for one IN.tqz: .npy, "
              "HDF5 when it ends in .h5/.hdf5, a zarr store when it ends in .zarr; '-' for a "
              ".npy on stdout. Default: IN without .tqz (plus .npy when that has no "
              "extension).")
@common_output_dir
@click.option("--dtype", type=click.Choice(limits.OUTPUT_DTYPES), default="original",
              show_default=True, help="dtype of the decoded array.")
@click.option("--select", metavar="SEL", callback=_select_option, help="Decode only x[SEL] "
              "of the original shape, numpy basic indexing over the leading axes: 3,0 or 2:4 "
              "or ::2,-1 (reads only the chunks that hold it; out of range is an error).")
@click.option("--rows", metavar="A:B", callback=_rows_option, help="Decode only vectors A:B "
              "(of the flattened (n, d) view; the result is 2-D; out of range is an error).")
@click.option("--dataset", metavar="PATH", default="data", show_default=True,
              help="Dataset name for HDF5 output.")
@click.option("--member", "member", metavar="NAME", multiple=True,
              help="Collections: decode only this member (repeatable); one member may be "
                   "written as .npy or to stdout.")
@click.option("--zarr-codec", type=click.Choice(limits.ZARR_CODECS), default="plain",
              show_default=True, help="For an OUT ending in .zarr (a zarr v3 store, the zarr "
              "extra): plain = zarr's default codecs, the decoded values exactly; tq = the "
              "tq.turboquant codec with IN.tqz's settings, about as small as IN.tqz.")
@click.option("-c", "--stdout", "to_stdout", is_flag=True, help="Write to stdout.")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing output file.")
@common_keep
@click.option("--rm", "remove", is_flag=True, help="Delete IN.tqz after a complete write.")
@click.option("-q", "--quiet", is_flag=True, help="No summary, no progress.")
@click.option("-v", "--verbose", is_flag=True, help="Print a summary line.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: only when stderr is a terminal).")
@common_memory
@common_threads
def decompress(inputs, output, output_dir, dtype, select, rows, dataset, member, zarr_codec,
               to_stdout, force, keep, remove, quiet, verbose, progress, memory_limit,
               threads):
    """Decompress each IN.tqz ('-' or none: stdin) into a .npy or HDF5 file, or a zarr
    store (OUT.zarr); a collection into the kind of file it came from."""
    from . import files

    if select is not None and rows is not None:
        raise click.UsageError("--select and --rows are two ways to choose; give one")
    if zarr_codec != "plain" and not (output or "").rstrip("/").lower().endswith(".zarr"):
        raise click.UsageError("--zarr-codec is for a zarr output: -o OUT.zarr")
    inputs = _input_list(inputs, output, to_stdout, output_dir, keep, remove)
    engine = _Engine(threads)

    def one(input):
        out = "-" if to_stdout else output
        if out is None:
            out = "-" if input == "-" else files.decompressed_name(input, output_dir)
        if remove:
            _refuse_rm(out, input)
        if input == "-" and sys.stdin.isatty():  # before the engine starts: refuse at once
            raise TqError("refusing to read binary data from a terminal", "-")
        from . import members

        coll, src = members.sniff(input)
        try:
            if coll:
                _decompress_collection(src, input, "-" if to_stdout else output, engine,
                                       member, select, rows, dtype, force, memory_limit,
                                       output_dir, remove, verbose,
                                       _progress_enabled(progress, quiet))
                return
            if member:
                raise TqError("--member given but the file holds one array, not a "
                              "collection", input)
            api = engine.start()
            with _Progress(_progress_enabled(progress, quiet), "decompress") as bar:
                done = api.decompress_file(src, out, rows=rows, select=select, dtype=dtype,
                                           dataset=dataset, force=force, progress=bar,
                                           memory_limit=memory_limit, clip_rows=False,
                                           zarr_codec=zarr_codec)
        except TqError as e:  # a refusal of the stream as it opened names no file yet
            raise e.with_source(input)
        finally:
            if not isinstance(src, str):
                src.close()
        if remove:
            _remove_input(input)
        if verbose:
            click.echo(f"{input}: {' x '.join(map(str, done.shape))} {done.dtype.name} "
                       f"-> {out}", err=True)

    _each(inputs, one)


def _decompress_collection(src, input, target, engine, member, select, rows, dtype, force,
                           memory_limit, output_dir, remove, verbose, show_progress) -> None:
    """One collection: the same kind of file back (or what -o names), or one --member."""
    if select is not None or rows is not None:
        raise click.UsageError("--select and --rows read one array; for a collection "
                               "choose members with --member")
    api = engine.start()
    with _Progress(show_progress, "decompress members") as bar:
        done = api.decompress_collection_file(src, target, members=list(member) or None,
                                              dtype=dtype, force=force, progress=bar,
                                              memory_limit=memory_limit,
                                              output_dir=output_dir)
    if remove:
        if done["output"] == "-":
            _refuse_rm("-", input)
        _remove_input(input)
    if verbose:
        from .report import plural

        click.echo(f"{input}: {plural(len(done['members']), 'member')} -> {done['output']}",
                   err=True)


# ------------------------------------------------------------------------- inspect


@main.command(context_settings=CONTEXT)
@click.argument("inputs", metavar="[IN.tqz]...", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (a list, "
              "each with its \"file\", for several files).")
@click.option("--verify", is_flag=True, help="Read every chunk and check its checksum.")
@common_memory
def inspect(inputs, as_json, verify, memory_limit):
    """Show the header, sizes and ratio of IN.tqz ('-' or none: stdin); a table of one line
    per file for several."""
    from .report import collection_text, inspect_table, inspect_text

    inputs = _input_list(inputs, None, False, None, False, False)
    reports = []

    def flush():
        """The table of the single arrays read since the last collection: the output keeps
        the order of the arguments."""
        if reports:
            click.echo(inspect_table(reports))
            reports.clear()

    def one(input):
        result = process.load_library().inspect(input, verify=verify,
                                                memory_limit=memory_limit)
        if len(inputs) == 1:
            click.echo(json.dumps(result, indent=2) if as_json else
                       collection_text(result) if result.get("layout") == "collection" else
                       inspect_text(result))
        elif result.get("layout") == "collection" and not as_json:
            flush()
            click.echo(f"{input}:\n" + collection_text(result))
        else:
            reports.append(dict(result, file=input))

    try:
        _each(inputs, one)
    finally:  # what was read is printed, also when a file failed
        if as_json and reports:
            click.echo(json.dumps(reports, indent=2))
        elif reports:
            flush()


# ------------------------------------------------------------------------- eval


EVAL_DEFAULT_BITS = "2,3,4"
EVAL_TARGET_BITS = "1-8"  # with a target and no -b: every width, to find the smallest


@main.command("eval", context_settings=CONTEXT)
@click.argument("input", metavar="INPUT")
@click.argument("container", metavar="[FILE.tqz]", required=False)
@click.option("-b", "--bits", default=None, callback=_bit_list, metavar="LIST",
              help=f"Bit widths to evaluate: 2,3,4, 1-4 or 1-3,8 (default {EVAL_DEFAULT_BITS}; "
                   f"{EVAL_TARGET_BITS} with a target).")
@click.option("--mode", type=click.Choice(limits.MODES), default=limits.DEFAULT_MODE,
              show_default=True)
@click.option("--coding", type=click.Choice(CODING_CHOICES + ("both",)), default=None,
              help="Codings to evaluate at each -b, the entropy coding at rate b (about the "
                   "same bytes) [default: both in mse mode, fixed in prod mode].")
@click.option("--seed", type=click.IntRange(0, limits.MAX_SEED), default=limits.DEFAULT_SEED,
              show_default=True)
@click.option("--scale", "scale_rule", type=click.Choice(limits.SCALE_RULES), default=None)
@click.option("--queries", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Query vectors held out of the sample for the search figures (at most "
                   "half the sample).")
@click.option("--sample", type=click.IntRange(min=1), default=None, metavar="N",
              help="Vectors for the search figures (recall, ip rmse); default 10000, fewer "
                   "for wide vectors. nmse and ip bias always cover every vector.")
@click.option("--target-nmse", type=click.FloatRange(0, 1, min_open=True), default=None,
              metavar="X", help="Print the smallest setting whose measured nmse is <= X.")
@click.option("--target-recall", type=click.FloatRange(0, 1, min_open=True), default=None,
              metavar="R", help="Print the smallest setting whose measured recall@1 is >= R.")
@click.option("--center", is_flag=True,
              help="Also evaluate with mean-centring (compress --center), row beside row.")
@click.option("--dataset", metavar="PATH", help="HDF5 dataset to read.")
@click.option("--bits-for", "bits_for", metavar="PATTERN=B", multiple=True,
              help="Collections: bits per member, as for compress.")
@click.option("--lossless", metavar="PATTERN", multiple=True,
              help="Collections: members stored losslessly, as for compress.")
@click.option("--vector-size", type=click.IntRange(limits.MIN_DIM, limits.MAX_DIM),
              default=None, metavar="D", help="Collections: vectors of D values, as for "
              "compress.")
@click.option("--kv-axis", type=click.IntRange(min=0), default=None, metavar="AXIS",
              help="A single-array KV dump: AXIS (of length 2) holds keys and values; "
                   "report the attention error per layer (the axes before AXIS).")
@click.option("--plot", metavar="FILE.png", help="Also draw error and recall against bytes "
              "per vector, with the theory (needs the plot extra: matplotlib).")
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing --plot file.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar (default: only when stderr is a terminal).")
@common_memory
@common_threads
def eval_cmd(input, container, bits, mode, coding, seed, scale_rule, queries, sample,
             target_nmse,
             target_recall, center, dataset, bits_for, lossless, vector_size, kv_axis, plot,
             force, as_json, progress, memory_limit, threads):
    """Report distortion and search quality of tq on INPUT against the theory, and the
    smallest setting that meets a goal.

    With FILE.tqz, evaluate that container against its source INPUT instead (it has its
    own settings: -b, --mode, --seed, --scale, --center and targets are refused).
    """
    ctx = click.get_current_context()
    if container is not None:
        given = [f"--{p.replace('_rule', '').replace('_', '-')}" if p != "bits" else "-b"
                 for p in ("bits", "mode", "coding", "seed", "scale_rule", "center",
                           "target_nmse", "target_recall")
                 if ctx.get_parameter_source(p) != click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"{', '.join(given)} cannot be used with FILE.tqz: the "
                                   f"container has its own settings")
    from . import evaluation, members

    problem = evaluation.input_problem(input, container)
    if problem:
        raise TqError(problem, input)
    coll = members.collection_input(input, dataset)
    if coll is not None:  # per member, in total, and attention for key/value pairs
        _eval_collection(coll, container, bits, mode, seed, scale_rule, center, bits_for,
                         lossless, vector_size, as_json, memory_limit, threads)
        return
    if bits_for or lossless or vector_size:
        raise click.UsageError("--bits-for, --lossless and --vector-size apply to "
                               "collections (HDF5, .safetensors, .npz input)")
    if kv_axis is not None:
        _eval_kv_array(input, container, kv_axis, bits, mode, seed, scale_rule, center,
                       dataset, as_json, memory_limit, threads)
        return
    targeted = target_nmse is not None or target_recall is not None
    widths_given = bits is not None
    if bits is None:
        bits = parse_bit_list(EVAL_TARGET_BITS if targeted else EVAL_DEFAULT_BITS)
    _check_encoder_options(mode, scale_rule, None)
    if coding in ("entropy", "both") and mode != "mse":
        raise click.BadParameter("the entropy coding is defined for mse mode only",
                                 param_hint="--coding")
    codings = {"both": ("fixed", "entropy"), None: ("fixed", "entropy") if mode == "mse"
               else ("fixed",)}.get(coding, (coding,))
    if any(not float(b).is_integer() for b in bits) and "entropy" not in codings:
        raise click.BadParameter("a fractional rate needs --coding entropy",
                                 param_hint="'-b' / '--bits'")
    if plot is not None:
        from . import plot as plotting

        plotting.require()
        if os.path.exists(plot) and not force:
            raise TqError("already exists; use -f to overwrite", plot)
    if target_recall is not None and queries == 0:
        raise click.UsageError("--target-recall needs queries (--queries > 0)")
    if not widths_given and "entropy" in codings and container is None:
        bits = _with_target_rate(input, dataset, bits, target_nmse, target_recall)
    api = process.load_library()
    process.start_engine(threads)
    with _Progress(_progress_enabled(progress, False), "eval") as bar:
        reports = api.evaluate_file(input, container, bits=bits, mode=mode, seed=seed,
                                    scale_rule=scale_rule, queries=queries, dataset=dataset,
                                    center=center, memory_limit=memory_limit, sample=sample,
                                    codings=codings, progress=bar)
    from . import evaluation, report

    rec = None if container is not None else evaluation.recommend(
        reports, target_nmse=target_nmse, target_recall=target_recall)
    if plot is not None:
        _write_plot(plot, force, input, reports)
    if as_json:
        out = {"input": input, "results": reports}
        if rec is not None:
            out["recommendation"] = rec
        click.echo(json.dumps(out, indent=2))
        return
    from rich.console import Console

    console = Console(width=100, highlight=False, soft_wrap=False)
    console.print(report.eval_heading(input if container is None else container, reports),
                  markup=False)
    console.print(report.eval_table(input, reports))
    console.print(report.eval_legend(reports), markup=False)
    if rec is not None:
        console.print(report.recommendation_text(rec, reports, input), markup=False)


def _with_target_rate(input, dataset, bits, target_nmse, target_recall) -> list:
    """Without -b, eval also measures the entropy coding at the rate whose expected error
    meets the nmse goal (evaluation.entropy_rate_for_nmse), so that its suggestion can be
    the smallest file meeting it whichever the coding.  A pipe cannot be opened twice to
    learn d first: there, only the widths."""
    from . import arrayio, evaluation

    if input == "-" or (target_nmse is None and target_recall is not None):
        return bits
    try:
        with arrayio.open_input(input, dataset) as src:
            d = src.dim
    except TqError:
        return bits  # evaluate_file says what is wrong with the input
    rate = evaluation.entropy_rate_for_nmse(
        d, evaluation.DEFAULT_TARGET_NMSE if target_nmse is None else target_nmse)
    return bits if rate is None or rate in bits else sorted(bits + [rate])


def _eval_collection(coll, container, bits, mode, seed, scale_rule, center, bits_for,
                     lossless, vector_size, as_json, memory_limit, threads) -> None:
    from . import collection_eval

    if bits is not None and len(bits) != 1:
        raise click.UsageError("a collection is evaluated at one -b (and --bits-for)")
    if container is not None and (bits_for or lossless or vector_size):
        raise click.UsageError("--bits-for, --lossless and --vector-size cannot be used with "
                               "FILE.tqz: the container has its own settings")
    process.load_library()
    process.start_engine(threads)
    try:
        r = collection_eval.evaluate_collection(
            coll[0], container, group=coll[1], bits=bits[0] if bits else limits.DEFAULT_BITS,
            bits_for=bits_for, lossless=lossless, vector_size=vector_size, mode=mode,
            seed=seed, scale_rule=scale_rule, center=center, memory_limit=memory_limit,
            **({} if container is not None else {"warn": _warner(coll[0])}))
    except TqError as e:
        raise e.with_source(container or coll[0])
    click.echo(json.dumps(r, indent=2) if as_json else collection_eval.report_text(r))


def _eval_kv_array(input, container, axis, bits, mode, seed, scale_rule, center, dataset,
                   as_json, memory_limit, threads) -> None:
    import numpy as np

    from . import arrayio, collection_eval

    if bits is not None and len(bits) != 1:
        raise click.UsageError("--kv-axis evaluates one -b")
    api = process.load_library()
    process.start_engine(threads)
    with arrayio.open_input(input, dataset) as src:
        try:
            x = np.concatenate(list(src.blocks(1 << 16))).reshape(src.shape)
        except TqError as e:
            raise e.with_source(src.name)
    b = bits[0] if bits else limits.DEFAULT_BITS
    try:
        y = api.decompress(container, memory_limit=memory_limit) if container else \
            api.decompress(api.compress(x, bits=b, mode=mode, seed=seed, scale_rule=scale_rule,
                                        center=center))
        if y.shape != x.shape:
            raise TqError(f"holds shape {y.shape}, INPUT has {x.shape}")
        r = collection_eval.evaluate_kv_array(x, y, axis, input, None if container else b)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--kv-axis") from None
    except TqError as e:
        raise e.with_source(container or input)
    click.echo(json.dumps(r, indent=2) if as_json else collection_eval.report_text(r))


def _write_plot(path: str, force: bool, input: str, reports: list[dict]) -> None:
    from . import evaluation, files
    from . import plot as plotting

    r0 = reports[0]
    curve = evaluation.theory_curve(r0["dim"], r0["vectors"], r0["mode"])
    try:
        with files.open_output(path, force) as sink:
            plotting.eval_plot(sink.stream, f"{input}: {r0['vectors']} x {r0['dim']}, "
                               f"mode {r0['mode']}", reports, curve)
            sink.commit()
    except TqError as e:
        raise e.with_source(path)
