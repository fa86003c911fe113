"""The `tq` command line: click and printing over tqcli.fileio and the library.

Each command (one module each) turns its flags into an EncodeOptions or plain keywords,
makes one call into tqcli.fileio (compress, decompress, inspect) or the library (eval),
and prints what it returns.  Option rules are tqcli.codec.options' and tqcli.limits';
process tuning is cli/process.py; report text is tqcli.library.report.  Heavy modules
are imported inside the commands, and each command's module only when it runs (LazyGroup),
so that `tq --help` and `tq --version` start instantly and a command pays for its own
imports only.
Errors become one line `tq: FILE: reason` on stderr with exit status 1; usage errors exit
with 2, an interrupt with 130, SIGTERM with 143.  compress, decompress and inspect take
several files, each handled on its own as zstd does (_each).
"""

from __future__ import annotations

import click

from ..version import __version__
from . import process
from .options import CONTEXT, TqGroup, _install_signals, parse_bit_list, parse_rows  # noqa: F401


def _compress():
    from .compress import compress
    return compress


def _decompress():
    from .decompress import decompress
    return decompress


def _eval():
    from .eval import eval_cmd
    return eval_cmd


def _inspect():
    from .inspect import inspect
    return inspect


def _search():
    from .search import search
    return search


# Each command's module is imported only when that command runs (or its --help is asked),
# so that a command pays for its own imports only.  `tq --help` lists the commands from the
# first paragraph of each one's help, copied here (tests/test_startup.py checks the copies).
COMMANDS = {
    "compress": (_compress, "Compress each INPUT (.npy, .h5/.hdf5, .safetensors, .npz, a zarr "
                            "array folder STORE or STORE/ARRAY, or '-' for a .npy on stdin; "
                            "none: stdin) into a .tqz file."),
    "decompress": (_decompress, "Decompress each IN.tqz ('-' or none: stdin) into a .npy or "
                                "HDF5 file, or a zarr store (OUT.zarr); a collection into "
                                "the kind of file it came from."),
    "eval": (_eval, "Report distortion and search quality of tq on INPUT against the theory, "
                    "and the smallest setting that meets a goal."),
    "inspect": (_inspect, "Show the header, sizes and ratio of IN.tqz ('-' or none: stdin); a "
                          "table of one line per file for several."),
    "search": (_search, "Search DB.tqz for the vectors nearest each query in QUERIES (.npy, "
                        "one query per row or a 1-D query; FILE.h5:/path; '-' for a .npy on "
                        "stdin)."),
}


class LazyGroup(TqGroup):
    """TqGroup whose commands (COMMANDS) are imported on first use."""

    def main(self, *args, **kwargs):
        process.freeze_at_exit()  # also for --help and --version, which end while parsing
        return super().main(*args, **kwargs)

    def list_commands(self, ctx):
        return sorted(set(self.commands) | set(COMMANDS))

    def get_command(self, ctx, name):
        if name not in self.commands and name in COMMANDS:
            self.add_command(COMMANDS[name][0](), name)
        return self.commands.get(name)

    def format_commands(self, ctx, formatter):
        """click's list of commands, each command's short help made from COMMANDS' text
        (by click, as it makes it from a loaded command's help) without importing it."""
        rows = [(name, self.commands[name] if name in self.commands
                 else click.Command(name, help=COMMANDS[name][1]))
                for name in self.list_commands(ctx)]
        rows = [(name, cmd) for name, cmd in rows if not cmd.hidden]
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, cmd.get_short_help_str(limit))
                                    for name, cmd in rows])


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="tq",
                      message="%(prog)s %(version)s")
def main():
    """tq: compress embedding matrices and KV-cache dumps with TurboQuant.

    \b
      tq compress embeddings.npy -b 3      # -> embeddings.npy.tqz
      tq decompress embeddings.npy.tqz     # -> embeddings.npy
      tq inspect embeddings.npy.tqz        # header, sizes, ratio
      tq eval embeddings.npy -b 2,3,4      # distortion against the theory
      tq search embeddings.npy.tqz q.npy   # the nearest vectors of each query
    """
    _install_signals()
    process.quiet_idle_threads()
    if process.pause_gc():  # back on when the command ends, whichever way it ends
        click.get_current_context().call_on_close(process.resume_gc)


__all__ = ["main", "parse_rows", "parse_bit_list", "COMMANDS"]
