"""The one convention of every facelivenet command line (``facelive``, ``facelive-demo``, ``facelive-bench``
and its subcommands): shared option groups, argument types, and the run -> print -> exit path.

- ``--json`` prints exactly ONE JSON object on stdout; logs go to stderr (``-v``/``-vv`` more, ``-q`` errors
  only);
- exit codes from :mod:`.constants` (0 ok, 1 failure, 2 usage, 3 internal, 4 rejected, 5 target missed,
  130 interrupted);
- a failure is one line ``PROG: error: <reason>`` on stderr and, with ``--json``, ``{"error", "error_type"}``
  (or the command's partial result carrying ``"error"``) on stdout.

A command handler returns ``(exit_code, payload, text)`` (optionally a fourth item: the one-line note for
stderr when the code is not 0); :func:`run_command` prints ``payload`` as JSON with ``--json``, ``text``
otherwise. Only CLI modules import this (it is where ``argparse.Namespace`` turns into options).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Callable, Sequence

from .cli_logging import call_cleanly, one_line, parse_args_or_code, setup_cli_logging
from .constants import (BUNDLE_ENV, DEFAULT_CHALLENGE, DEFAULT_HOLD_FRAMES, DEFAULT_LOCKOUT_WINDOW_S,
                        DEFAULT_MAX_FAILURES, DEFAULT_MAX_PIXELS, DEFAULT_STEP_TIMEOUT_S,
                        DEFAULT_THREADS, DETECTOR_ENV, EXIT_OK, EXIT_REJECTED, EXIT_TARGET_MISSED, FORMAT_TABLE, FORMATS,
                        INT8_VARIANTS,
                        MAX_THREADS, PRECISIONS, PUBLIC_KEY_ENV)
from .errors import FaceLiveError

HandlerResult = tuple  # (exit_code, payload dict, text[, stderr note])


class CommandLineError(FaceLiveError):
    """A command-line value the command cannot act on."""


# ------------------------------------------------------------------ argument types


def finite_float(text: str) -> float:
    """argparse type: a finite number (NaN and infinities are refused)."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def count(low: int, high: int):
    """argparse type: an integer in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}], got {value}")
        return value
    return parse


# ------------------------------------------------------------------ help and shared flags


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep the hand-written line breaks of descriptions and examples."""


def epilog(*examples: str) -> str:
    """``examples:`` and one indented line per example."""
    return "examples:\n" + "\n".join(f"  {e}" for e in examples)


def add_json_flag(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (logs stay on stderr)")


def add_log_options(p: argparse.ArgumentParser) -> None:
    """-v / -vv (more logging on stderr) and -q (errors only)."""
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr (-vv: debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="log errors only")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--bundle, --format, --precision, --threads, --detector, --public-key, --max-pixels (ARCHITECTURE.md,
    "Commands")."""
    g = p.add_argument_group("model", "file formats: " + "; ".join(
        f"{s.name} (.{s.extension}, {s.backend})" for s in FORMAT_TABLE.values()))
    g.add_argument("--bundle", metavar="BUNDLE", help=f"model bundle folder (default: ${BUNDLE_ENV}, else the shipped one)")
    g.add_argument("--format", choices=FORMATS, help="model file format (default: the bundle's default file, "
                   "the fastest one that passed every export gate; see facelive inspect)")
    g.add_argument("--precision", choices=PRECISIONS, help="model precision (default: the bundle's default file's)")
    g.add_argument("--variant", choices=tuple(INT8_VARIANTS), help="int8 only: static (int8 activations, integer "
                   "kernels) or weight-only (int8 weights, float compute; the fallback) (default: the bundle's choice)")
    g.add_argument("--threads", type=count(1, MAX_THREADS), default=DEFAULT_THREADS, metavar="N",
                   help=f"CPU threads, 1-{MAX_THREADS} (default {DEFAULT_THREADS})")
    g.add_argument("--detector", metavar="PATH", help=f"YuNet .onnx (default: ${DETECTOR_ENV}, else the bundle's)")
    g.add_argument("--public-key", metavar="PEM", help="refuse the bundle unless its manifest is signed by this "
                   f"Ed25519 key (default: ${PUBLIC_KEY_ENV}; see facelive sign)")
    g.add_argument("--max-pixels", type=count(1, 1_000_000_000), default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"refuse images with more pixels than this (default {DEFAULT_MAX_PIXELS:,})")


def add_challenge_options(p: argparse.ArgumentParser, *, order: bool = True, decision: bool = True,
                          lockout: bool = True) -> argparse._ArgumentGroup:
    """The challenge options of ``facelive auth``, ``facelive-demo`` and ``facelive-bench attacks``:
    --challenge, --length, --hold-frames, --step-timeout; with ``order`` --fixed-order and --seed; with
    ``decision`` --threshold and --expression-threshold; with ``lockout`` --max-failures and --lockout-window."""
    from .challenge import MAX_STEPS

    g = p.add_argument_group("challenge")
    g.add_argument("--challenge", default=",".join(DEFAULT_CHALLENGE), metavar="LIST",
                   help=f"challenge expressions (default {','.join(DEFAULT_CHALLENGE)})")
    g.add_argument("--length", type=count(0, MAX_STEPS), default=0, metavar="N",
                   help=f"expression steps, up to {MAX_STEPS} (default: one per expression)")
    if order:
        g.add_argument("--fixed-order", action="store_true", help="use --challenge in its order (tests only)")
        g.add_argument("--seed", type=count(0, 2**63 - 1), help="seed the challenge draw (tests only)")
    g.add_argument("--hold-frames", type=count(1, 1000), default=DEFAULT_HOLD_FRAMES, metavar="N",
                   help=f"frames an expression must hold (default {DEFAULT_HOLD_FRAMES})")
    g.add_argument("--step-timeout", type=positive_float, default=DEFAULT_STEP_TIMEOUT_S, metavar="S",
                   help=f"seconds per step (default {DEFAULT_STEP_TIMEOUT_S:g})")
    if decision:
        g.add_argument("--threshold", type=finite_float, metavar="COS",
                       help="verification cosine (default: the bundle's)")
        g.add_argument("--expression-threshold", type=finite_float, metavar="P",
                       help="the old global expression floor (default: the bundle's); reported, no longer decides")
    if lockout:
        g.add_argument("--max-failures", type=count(1, 1_000_000), default=DEFAULT_MAX_FAILURES, metavar="N",
                       help=f"failures that lock the user out (default {DEFAULT_MAX_FAILURES})")
        g.add_argument("--lockout-window", type=positive_float, default=DEFAULT_LOCKOUT_WINDOW_S, metavar="S",
                       help=f"lock-out window in seconds (default {DEFAULT_LOCKOUT_WINDOW_S:g})")
    return g


def challenge_names(text: str) -> tuple[str, ...]:
    """``--challenge happy, surprise`` -> ("happy", "surprise"); CommandLineError naming a bad name."""
    from .challenge import parse_expressions

    try:
        return tuple(parse_expressions([c.strip() for c in text.split(",") if c.strip()]))
    except ValueError as exc:
        raise CommandLineError(f"--challenge: {exc}") from exc


# ------------------------------------------------------------------ options from arguments


def session_settings(args: argparse.Namespace):
    """The :class:`~.options.SessionSettings` the challenge options describe (absent ones keep defaults)."""
    from .options import OptionsError, SessionSettings

    names = {"length": "length", "fixed_order": "fixed_order", "seed": "seed", "hold_frames": "hold_frames",
             "step_timeout": "step_timeout_s", "threshold": "threshold",
             "expression_threshold": "expression_threshold", "expression_margin": "expression_margin",
             "identity_floor": "identity_floor", "continuity": "continuity", "max_failures": "max_failures",
             "lockout_window": "lockout_window_s"}
    values = {field: getattr(args, flag) for flag, field in names.items() if getattr(args, flag, None) is not None}
    try:
        return SessionSettings(challenge=challenge_names(args.challenge), **values)
    except OptionsError as exc:
        raise CommandLineError(str(exc)) from exc


def runtime_options(args: argparse.Namespace, **overrides: Any):
    """The :class:`~.options.RuntimeOptions` the model options (and challenge options, when present) describe."""
    from .options import RuntimeOptions

    values: dict[str, Any] = dict(bundle=args.bundle, format=args.format, precision=args.precision, variant=args.variant,
                                  threads=args.threads, detector=args.detector, public_key=args.public_key,
                                  max_pixels=args.max_pixels)
    if getattr(args, "db", None) is not None:
        values["db"] = args.db
    if hasattr(args, "challenge") and "session" not in overrides:
        values["session"] = session_settings(args)
    values.update(overrides)
    return RuntimeOptions(**values)


# ------------------------------------------------------------------ run, print, exit


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
    return code


def run_command(prog: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None,
                handler: Callable[[argparse.Namespace], HandlerResult] | None = None,
                prepare: Callable[[argparse.Namespace], None] | None = None) -> int:
    """Parse ``argv``, set up logging, run ``handler(args)`` (else ``args.handler``) on the shared failure
    path and print its result; returns the exit code."""
    args = parse_args_or_code(parser, argv)
    if isinstance(args, int):
        return args
    setup_cli_logging(prog, args.verbose, args.quiet)
    if prepare is not None:
        prepare(args)
    run = handler or args.handler
    failed, result = call_cleanly(prog, args.json, lambda: run(args))
    if failed is not None:
        return failed
    return emit(prog, args.json, result)
