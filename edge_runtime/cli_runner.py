"""The one run -> print -> exit path of every facelivenet command line (console scripts and module CLIs).

:func:`run_command` parses the arguments, sets up logging, runs the command's handler on the shared
failure path and prints its result:

- a handler returns ``(exit_code, payload, text)`` (optionally a fourth item: a one-line note for stderr,
  the error or rejection when the code is not 0, else a warning), or ``None`` when it has nothing to print;
- ``--json`` prints ``payload`` as ONE JSON object on stdout, else ``text``;
- a failure is one line ``PROG: error: <reason>`` on stderr and, with ``--json``, ``{"error", "error_type"}``
  on stdout: a FaceLiveError or an OSError (a path the file system refuses) exits 1, an interrupt 130,
  anything else 3 (the traceback at debug level, shown with ``-vv``).

Two hooks cover what some commands need around their handler: ``prepare(args)`` runs once logging is set
up (quiet a chatty library), and ``around(args)`` is a context manager the handler runs inside, on the
failure path (``facelive-export`` points stdout at stderr; ``facelive-demo`` closes what the run opened).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from typing import Any, Callable, ContextManager, Iterator, Sequence

from .cli_logging import setup_cli_logging
from .constants import EXIT_FAILURE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_REJECTED, EXIT_TARGET_MISSED, EXIT_USAGE

HandlerResult = tuple  # (exit_code, payload dict, text[, stderr note])
Handler = Callable[[argparse.Namespace], "HandlerResult | None"]


def one_line(message: object) -> str:
    """A message folded onto one line (never empty)."""
    return " ".join(str(message).split()) or "unknown error"


def report_failure(prog: str, message: object, kind: str, code: int, as_json: bool, extra: dict | None = None) -> int:
    """One line ``prog: error: ...`` on stderr; with ``as_json`` also ``{"error", "error_type"}`` on stdout."""
    text = one_line(message)
    if as_json:
        print(json.dumps({"error": text, "error_type": kind, **(extra or {})}))
    print(f"{prog}: error: {text}", file=sys.stderr)
    return code


def parse_args_or_code(parser: argparse.ArgumentParser, argv: Sequence[str] | None):
    """``parser.parse_args(argv)``, or the exit code when argparse exits (--help, --version, usage errors)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def call_cleanly(prog: str, as_json: bool, fn: Callable[[], Any], interrupted: str = "interrupted",
                 user_errors: tuple[type[Exception], ...] = ()):
    """Run ``fn()``; returns ``(None, result)``, or ``(exit_code, None)`` after reporting a failure in one line.

    A FaceLiveError, an OSError or one of the command's ``user_errors`` (e.g. facelive-train's ValueError for
    a bad config key) is the user's to fix (exit 1, its message); anything else is ours (exit 3)."""
    from .errors import FaceLiveError

    try:
        return None, fn()
    except (FaceLiveError, OSError, *user_errors) as exc:  # an error may report as its family (error_type)
        return report_failure(prog, exc, getattr(exc, "error_type", type(exc).__name__), EXIT_FAILURE, as_json), None
    except KeyboardInterrupt:
        return report_failure(prog, interrupted, "KeyboardInterrupt", EXIT_INTERRUPTED, as_json), None
    except Exception as exc:  # noqa: BLE001 - one line for users, the traceback with -vv
        logging.getLogger("facelivenet").debug("internal error", exc_info=True)
        return report_failure(prog, f"internal error: {type(exc).__name__}: {exc} (run with -vv for the traceback)",
                              "InternalError", EXIT_INTERNAL, as_json), None


def emit(prog: str, as_json: bool, result: HandlerResult) -> int:
    """Print a handler's result (JSON or text) and, for a non-zero code, its one line on stderr."""
    code, payload, text, *rest = result
    note = rest[0] if rest else None
    if as_json:
        print(json.dumps(payload, sort_keys=False))
    elif text:
        print(text)
    if code in (EXIT_REJECTED, EXIT_TARGET_MISSED):
        print(f"{prog}: {one_line(note or payload.get('message', 'rejected'))}", file=sys.stderr)
    elif code != EXIT_OK:
        print(f"{prog}: error: {one_line(note or payload.get('error', 'failed'))}", file=sys.stderr)
    elif note:
        print(f"{prog}: warning: {one_line(note)}", file=sys.stderr)
    return code


def run_command(prog: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None,
                handler: Handler | None = None, *, prepare: Callable[[argparse.Namespace], None] | None = None,
                around: Callable[[argparse.Namespace], ContextManager[Any]] | None = None,
                user_errors: tuple[type[Exception], ...] = (), interrupted: str = "interrupted") -> int:
    """Parse ``argv``, set up logging, run ``handler(args)`` (else ``args.handler``) inside ``around(args)`` on
    the shared failure path and print its result; returns the exit code."""
    args = parse_args_or_code(parser, argv)
    if isinstance(args, int):
        return args
    setup_cli_logging(prog, args.verbose, args.quiet)
    if prepare is not None:
        prepare(args)
    run = handler or args.handler

    def call():
        with around(args) if around is not None else contextlib.nullcontext():
            return run(args)

    failed, result = call_cleanly(prog, args.json, call, interrupted, user_errors)
    if failed is not None:
        return failed
    return EXIT_OK if result is None else emit(prog, args.json, result)


@contextlib.contextmanager
def stdout_to_stderr(_args: argparse.Namespace | None = None) -> Iterator[None]:
    """Point fd 1 (and sys.stdout) at stderr, restored afterwards: converters and runtimes print from C++,
    and stdout is for the one JSON object. Usable as ``run_command``'s ``around`` hook."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real fd (embedded use): Python-level redirect only
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)
