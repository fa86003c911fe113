"""tq's release, in one place (pyproject.toml reads it; the command line prints it)."""

__version__ = "1.4.0"
