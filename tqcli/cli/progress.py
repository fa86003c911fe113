"""The progress bar of the `tq` commands (rich, on stderr) and the first-use notice while
numba compiles."""

from __future__ import annotations

import sys

import click

from . import process


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
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TimeRemainingColumn,
            )

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
