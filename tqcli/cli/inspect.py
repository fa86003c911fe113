"""tq inspect: the header, sizes and ratio of each IN.tqz (a table for several)."""

from __future__ import annotations

import json

import click

from .options import CONTEXT, _each, _input_list, common_max_ratio, common_memory


@click.command(context_settings=CONTEXT)
@click.argument("inputs", metavar="[IN.tqz]...", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (a list, "
              "each with its \"file\", for several files).")
@click.option("--verify", is_flag=True, help="Read every chunk and check its checksum.")
@common_memory
@common_max_ratio
def inspect(inputs, as_json, verify, memory_limit, max_ratio):
    """Show the header, sizes and ratio of IN.tqz ('-' or none: stdin); a table of one line
    per file for several."""
    from ..fileio import reading  # the readers only: no encoder, no kernels
    from ..library.report import collection_text, inspect_table, inspect_text

    inputs = _input_list(inputs, None, False, None, False, False)
    reports = []

    def flush():
        """The table of the single arrays read since the last collection: the output keeps
        the order of the arguments."""
        if reports:
            click.echo(inspect_table(reports))
            reports.clear()

    def one(input):
        result = reading.inspect(input, verify=verify, memory_limit=memory_limit,
                                 max_ratio=max_ratio)
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
