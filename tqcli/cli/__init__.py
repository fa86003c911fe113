"""The `tq` command line: click and printing over tqcli.fileio and the library.

Each command (one module each) turns its flags into an EncodeOptions or plain keywords,
makes one call into tqcli.fileio (compress, decompress, inspect) or the library (eval),
and prints what it returns.  Option rules are tqcli.codec.options' and tqcli.limits';
process tuning is cli/process.py; report text is tqcli.library.report.  Heavy modules
are imported inside the commands so that `tq --help` and `tq --version` start instantly.
Errors become one line `tq: FILE: reason` on stderr with exit status 1; usage errors exit
with 2, an interrupt with 130, SIGTERM with 143.  compress, decompress and inspect take
several files, each handled on its own as zstd does (_each).
"""

from __future__ import annotations

import click

from ..version import __version__
from . import process
from .options import CONTEXT, TqGroup, _install_signals, parse_bit_list, parse_rows  # noqa: F401


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
      tq search embeddings.npy.tqz q.npy   # the nearest vectors of each query
    """
    _install_signals()
    process.quiet_idle_threads()
    if process.pause_gc():  # back on when the command ends, whichever way it ends
        click.get_current_context().call_on_close(process.resume_gc)


from .compress import compress  # noqa: E402
from .decompress import decompress  # noqa: E402
from .eval import eval_cmd  # noqa: E402
from .inspect import inspect  # noqa: E402
from .search import search  # noqa: E402

for _command in (compress, decompress, inspect, eval_cmd, search):
    main.add_command(_command)

__all__ = ["main", "parse_rows", "parse_bit_list"]
