"""Logging for the command-line tools: one handler on the ``facelivenet`` logger, to stderr."""

from __future__ import annotations

import logging
import sys


class StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (which tests and embedding apps may swap)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_cli_logging(prog: str, verbose: int, quiet: bool) -> None:
    """-q: errors only; default warnings; -v info; -vv debug. Lines are prefixed with ``prog``."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    root = logging.getLogger("facelivenet")
    root.setLevel(level)
    if not any(isinstance(h, StderrHandler) for h in root.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter(f"{prog}: %(levelname)s: %(message)s"))
        root.addHandler(handler)
