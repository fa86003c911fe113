"""What every `tq` command shares: the one-line error and usage plumbing (TqGroup), the
common options and their parsers (--rows, eval's -b list, --memory, ...), the rules of
several inputs (_input_list, _each) and the engine started once for them all."""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import click

from .. import limits
from ..errors import TqError
from . import process

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


def encode_options(**flags):
    """The EncodeOptions of the command's flags (tqcli.codec.options: every rule of the encoder's
    options is there, once), or a usage error (exit status 2) naming the flag."""
    from ..codec.options import CLI_FLAGS, EncodeOptions, OptionError

    try:
        return EncodeOptions.from_cli(**flags)
    except OptionError as e:
        if flags.get("bits") is not None and flags.get("nmse") is not None:
            raise click.UsageError(e.reason) from None  # two flags, neither is wrong alone
        raise click.BadParameter(e.reason, param_hint=CLI_FLAGS.get(e.option)) from None


def coding_choices(extra: tuple = ()) -> tuple[str, ...]:
    """--coding's choices: the coding table's command-line names."""
    from ..codec.codings import CODINGS

    return CODINGS.cli_names + extra


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
        process.load_fileio().make_output_dir(output_dir)
    return list(inputs)


def _warner(source: str):
    """A library warning as one stderr line: `tq: SOURCE: warning: text`."""
    def warn(text: str) -> None:
        _fail(source, f"warning: {text}")
    return warn


def _each(inputs: list[str], one) -> None:
    """one(input) for every input (fileio.each): a failure is one line and the next file
    still runs; exit status 1 if any failed."""
    def failed(input, e):
        if isinstance(e, TqError):
            _fail(e.source or input, _reason(e))
        elif isinstance(e, MemoryError):
            _fail(input, "out of memory")
        else:
            _fail(e.filename or input, e.strerror or str(e))

    from ..fileio.names import each  # not the whole of fileio: inspect needs no encoder

    if each(inputs, one, failed):
        _exit(click.get_current_context(), 1)


@contextlib.contextmanager
def usage_errors():
    """fileio's refusals of options that make no sense for an input (kind "usage") as
    click's usage errors: one line, exit status 2."""
    try:
        yield
    except TqError as e:
        if e.kind != "usage":
            raise
        raise click.UsageError(e.reason) from None


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


def _memory_option(ctx, param, value):
    try:
        return None if value is None else limits.parse_size(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--memory") from None


common_memory = click.option(
    "--memory", "memory_limit", metavar="LIMIT", callback=_memory_option, default=None,
    help=f"Refuse a file whose decoding needs more than LIMIT of tables and buffers, e.g. "
         f"512M or 2GiB (default: {limits.format_size(limits.DEFAULT_MEMORY_LIMIT)}).")


def _encode_memory_option(ctx, param, value):
    try:
        return limits.DEFAULT_MEMORY_LIMIT if value is None else limits.parse_size(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--memory") from None


common_encode_memory = click.option(
    "--memory", "memory_limit", metavar="LIMIT", callback=_encode_memory_option, default=None,
    help=f"Refuse to compress when the encoder would hold more than LIMIT of buffers and "
         f"tables (an input's zarr or HDF5 chunk decoded at once included), e.g. 512M or "
         f"2GiB (default: {limits.format_size(limits.DEFAULT_MEMORY_LIMIT)}).")


def _ratio_option(ctx, param, value):
    try:
        return None if value is None else limits.parse_ratio(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--max-ratio") from None


common_max_ratio = click.option(
    "--max-ratio", "max_ratio", metavar="N", callback=_ratio_option, default=None,
    help=f"Refuse a file that declares more than N times its size decoded, per chunk or in "
         f"all (default: {limits.DEFAULT_MAX_RATIO}; inf: no limit); raise it for a file "
         f"you trust.")


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


def _select_option(ctx, param, value):
    from ..arrayio.selection import parse_select

    try:
        return None if value is None else parse_select(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--select") from None
common_stdout = click.option("-c", "--stdout", "to_stdout", is_flag=True,
                             help="Write to stdout.")
common_force = click.option("-f", "--force", is_flag=True,
                            help="Overwrite an existing output file.")
common_progress = click.option("--progress/--no-progress", default=None,
                               help="Progress bar (default: only when stderr is a terminal).")


def common_rm(what: str):
    """--rm, deleting `what` (INPUT, IN.tqz) after a complete write."""
    return click.option("--rm", "remove", is_flag=True,
                        help=f"Delete {what} after a complete write.")


def common_quiet_verbose(fn):
    """-q and -v, as compress and decompress take them."""
    fn = click.option("-v", "--verbose", is_flag=True, help="Print a summary line.")(fn)
    return click.option("-q", "--quiet", is_flag=True, help="No summary, no progress.")(fn)


ADAPT_VALUES = ("on", "auto", "off")


def common_adapt(help_text: str):
    """--adapt [on|auto|off]: given alone it means "on".  click reads the word after a
    bare --adapt as its value, so `tq compress --adapt x.npy` would take x.npy for it:
    adapt_and_inputs gives such a word back to the inputs."""
    return click.option("--adapt", is_flag=False, flag_value="on", default="off",
                        metavar="[auto|on|off]", help=help_text)


def adapt_and_inputs(adapt: str, inputs: tuple) -> tuple[str, tuple]:
    """(the --adapt value, the inputs with a word --adapt took by mistake put back first)."""
    if adapt in ADAPT_VALUES:
        return adapt, inputs
    return "on", (adapt,) + tuple(inputs)
