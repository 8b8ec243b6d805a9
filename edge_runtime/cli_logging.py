"""Logging for the command-line tools: one handler on the ``facelivenet`` logger, to stderr."""

from __future__ import annotations

import logging
import sys

# the exit codes shared by every console script (constants.py says what each means)
from .constants import EXIT_FAILURE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE  # noqa: F401


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




def one_line(message: object) -> str:
    """A message folded onto one line (never empty)."""
    return " ".join(str(message).split()) or "unknown error"


def report_failure(prog: str, message: object, kind: str, code: int, as_json: bool, extra: dict | None = None) -> int:
    """One line ``prog: error: ...`` on stderr; with ``as_json`` also ``{"error", "error_type"}`` on stdout."""
    import json

    text = one_line(message)
    if as_json:
        print(json.dumps({"error": text, "error_type": kind, **(extra or {})}))
    print(f"{prog}: error: {text}", file=sys.stderr)
    return code


def parse_args_or_code(parser, argv):
    """``parser.parse_args(argv)``, or the exit code when argparse exits (--help, --version, usage errors)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def call_cleanly(prog: str, as_json: bool, fn, interrupted: str = "interrupted",
                 user_errors: tuple[type[Exception], ...] = ()):
    """Run ``fn()``; returns ``(None, result)``, or ``(exit_code, None)`` after reporting a failure in one line.

    A FaceLiveError (or one of the command's ``user_errors``, e.g. facelive-train's ValueError for a bad
    config key) is the user's problem (exit 1, its message); anything else is ours (exit 3, the traceback
    in the log at debug level, shown with -vv).
    """
    from .errors import FaceLiveError

    try:
        return None, fn()
    except (FaceLiveError, *user_errors) as exc:
        return report_failure(prog, exc, type(exc).__name__, EXIT_FAILURE, as_json), None
    except KeyboardInterrupt:
        return report_failure(prog, interrupted, "KeyboardInterrupt", EXIT_INTERRUPTED, as_json), None
    except OSError as exc:  # a path the file system refuses (too long, no permission...): the user's to fix
        return report_failure(prog, exc, type(exc).__name__, EXIT_FAILURE, as_json), None
    except Exception as exc:  # noqa: BLE001 - one line for users, the traceback with -vv
        logging.getLogger("facelivenet").debug("internal error", exc_info=True)
        return report_failure(prog, f"internal error: {type(exc).__name__}: {exc} (run with -vv for the traceback)",
                              "InternalError", EXIT_INTERNAL, as_json), None
