"""The one convention of every facelivenet command line (every console script and module CLI): shared
flags, argument types, and options from arguments. The run -> print -> exit path is :mod:`.cli_runner`.

- ``--json`` prints exactly ONE JSON object on stdout; logs go to stderr (``-v``/``-vv`` more, ``-q`` errors
  only);
- exit codes from :mod:`.constants` (0 ok, 1 failure, 2 usage, 3 internal, 4 rejected, 5 target missed,
  130 interrupted);
- a failure is one line ``PROG: error: <reason>`` on stderr and, with ``--json``, ``{"error", "error_type"}``
  (or the command's partial result carrying ``"error"``) on stdout.

Shared flags have one meaning everywhere (only their defaults and the data they point at differ):

- ``--threads N``: the CPU threads the command's compute may use: the model backend's intra-op threads
  and torch's and OpenCV's pools. A benchmark that times several settings takes a comma list of them
  (each entry one such setting);
- ``--bundle`` a model bundle folder (default ``$FACELIVE_BUNDLE``, else the shipped one), ``--detector``
  a YuNet .onnx (default ``$FACELIVE_DETECTOR``, else the bundle's), ``--data`` a face data root
  (default ``$FACELIVE_DATA``).

Only CLI modules import this (it is where ``argparse.Namespace`` turns into options).
"""

from __future__ import annotations

import argparse
import math
import textwrap
from typing import Any, Sequence

from .constants import (BUNDLE_ENV, DATA_ENV, DEFAULT_CHALLENGE, DEFAULT_HOLD_FRAMES, DEFAULT_LOCKOUT_WINDOW_S,
                        DEFAULT_MAX_FAILURES, DEFAULT_MAX_PIXELS, DEFAULT_STEP_TIMEOUT_S, DEFAULT_THREADS,
                        DETECTOR_ENV, FORMAT_TABLE, FORMATS, INT8_VARIANTS, MAX_THREADS, PRECISIONS, PUBLIC_KEY_ENV)
from .errors import FaceLiveError


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


def subcommand(sub: argparse._SubParsersAction, name: str, help_: str, description: str,
               examples: Sequence[str]) -> argparse.ArgumentParser:
    """A subcommand's parser: its one-line help, its description (dedented) and its examples."""
    return sub.add_parser(name, help=help_, description=textwrap.dedent(description), epilog=epilog(*examples),
                          formatter_class=HelpFormatter)


Parser = argparse.ArgumentParser | argparse._ArgumentGroup


def add_json_flag(p: Parser, what: str = "") -> None:
    """--json: one JSON object on stdout (``what``: the object, e.g. "the summary")."""
    p.add_argument("--json", action="store_true",
                   help=f"print one JSON object{f' ({what})' if what else ''} on stdout (logs stay on stderr)")


def add_threads_option(p: Parser, default: int | str | None = DEFAULT_THREADS, *, default_text: str = "",
                       many: bool = False) -> None:
    """--threads: the CPU threads of the command's compute (module docstring). ``many``: a comma list of
    settings, each timed (kept as text; the command parses it); otherwise a count in [1, MAX_THREADS], or
    0 when ``default`` is 0 (all cores)."""
    shown = default_text or f"{default}"
    if many:
        p.add_argument("--threads", default=default, metavar="LIST",
                       help=f"CPU threads of the model's compute, a comma list of settings to time, e.g. 1,4 "
                            f"(default {shown})")
        return
    p.add_argument("--threads", type=count(0 if default == 0 else 1, MAX_THREADS), default=default, metavar="N",
                   help=f"CPU threads of the compute (model backend, torch, OpenCV), 1-{MAX_THREADS} (default {shown})")


def add_bundle_option(p: Parser, what: str = "model bundle folder", type=str) -> None:
    """--bundle BUNDLE (default $FACELIVE_BUNDLE, else the shipped bundle)."""
    p.add_argument("--bundle", metavar="BUNDLE", type=type,
                   help=f"{what} (default: ${BUNDLE_ENV}, else the shipped one)")


def add_detector_option(p: Parser, default_text: str = f"${DETECTOR_ENV}, else the bundle's", note: str = "",
                        type=str) -> None:
    """--detector PATH: a YuNet .onnx (``note``: what else the command does with it)."""
    p.add_argument("--detector", metavar="PATH", type=type,
                   help=f"YuNet .onnx{f' ({note})' if note else ''} (default: {default_text})")


def add_data_option(p: Parser, holding: str, type=str, note: str = "") -> None:
    """--data DIR: the face data root holding ``holding`` (default $FACELIVE_DATA)."""
    p.add_argument("--data", metavar="DIR", type=type,
                   help=f"face data root holding {holding} (default: ${DATA_ENV}){f'; {note}' if note else ''}")


def add_log_options(p: argparse.ArgumentParser) -> None:
    """-v / -vv (more logging on stderr) and -q (errors only)."""
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr (-vv: debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="log errors only")


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--bundle, --format, --precision, --threads, --detector, --public-key, --max-pixels (ARCHITECTURE.md,
    "Commands")."""
    g = p.add_argument_group("model", "file formats: " + "; ".join(
        f"{s.name} (.{s.extension}, {s.backend})" for s in FORMAT_TABLE.values()))
    add_bundle_option(g)
    g.add_argument("--format", choices=FORMATS, help="model file format (default: any; the runtime runs the fastest "
                   "file that passes its self-check on this device, see facelive inspect --device)")
    g.add_argument("--precision", choices=PRECISIONS, help="model precision (default: any, as for --format)")
    g.add_argument("--variant", choices=tuple(INT8_VARIANTS), help="int8 only: static (int8 activations, integer "
                   "kernels) or weight-only (int8 weights, float compute; the fallback) (default: any)")
    g.add_argument("--rerank", action="store_true", help="time the bundle's files on this device again instead of "
                   "reading the cached ranking (kept per bundle, CPU and thread count)")
    add_threads_option(g)
    add_detector_option(g)
    g.add_argument("--public-key", metavar="PEM", help="refuse the bundle unless its manifest is signed by this "
                   f"Ed25519 key (default: ${PUBLIC_KEY_ENV}; see facelive sign)")
    g.add_argument("--max-pixels", type=count(1, 1_000_000_000), default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"refuse images with more pixels than this (default {DEFAULT_MAX_PIXELS:,})")


def _session_rule_flags() -> tuple[tuple[str, str, str], ...]:
    from .expression_baseline import DEFAULT_MARGIN
    from .identity_evidence import DEFAULT_FLOOR_GAP

    return (
        ("--expression-margin", "LOGODDS",
         f"an expression counts when its log-odds rose this much over the face at rest (default {DEFAULT_MARGIN})"),
        ("--identity-floor", "COS", f"per-frame identity floor (default: the verification cosine - {DEFAULT_FLOOR_GAP})"),
        ("--continuity", "COS", "per-frame continuity with the previous frames (default: the verification cosine)"),
    )


SESSION_RULE_FLAGS = _session_rule_flags()  # flag, metavar, help: the session rules' thresholds


def add_challenge_options(p: argparse.ArgumentParser, *, order: bool = True, decision: bool = True,
                          lockout: bool = True, rules: bool = False) -> argparse._ArgumentGroup:
    """The challenge options of ``facelive auth``, ``facelive-demo`` and ``facelive-bench attacks``:
    --challenge, --length, --hold-frames, --step-timeout; with ``order`` --fixed-order and --seed; with
    ``decision`` --threshold and --expression-threshold; with ``lockout`` --max-failures and --lockout-window;
    with ``rules`` the session rules' --expression-margin, --identity-floor and --continuity."""
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
    for flag, metavar, text in (SESSION_RULE_FLAGS if rules else ()):
        g.add_argument(flag, type=finite_float, metavar=metavar, help=text)
    return g


RECORDED_NOTE = ("a live camera only: a recorded source (a folder, a video) cannot answer a live prompt, so judge "
                 "it with --positions off --timing off --fixed-order")


def add_plan_options(p: argparse.ArgumentParser, note: str = RECORDED_NOTE) -> None:
    """--positions, --timing and their parameters (step_plan.py)."""
    from .step_plan import HOLD_RANGE_S, MIN_REACTION_S, POSITION_TOLERANCE

    g = p.add_argument_group("positions and timing", note)
    g.add_argument("--positions", choices=("on", "off"), default="on",
                   help="a random target oval before each prompt (kept by the expression step): the face "
                        "must move into it (default on)")
    g.add_argument("--position-tolerance", type=positive_float, metavar="R",
                   help=f"the face box centre within R of the oval's radii of its centre "
                        f"(default {POSITION_TOLERANCE:g})")
    g.add_argument("--timing", choices=("on", "off"), default="on",
                   help="a random rest before each prompt and no expression faster than a reaction (default on)")
    g.add_argument("--hold-min", type=finite_float, metavar="S",
                   help=f"shortest random rest before a prompt (default {HOLD_RANGE_S[0]:g} s)")
    g.add_argument("--hold-max", type=finite_float, metavar="S",
                   help=f"longest random rest before a prompt (default {HOLD_RANGE_S[1]:g} s)")
    g.add_argument("--min-reaction", type=finite_float, metavar="S",
                   help=f"an expression sooner than this after its prompt is EARLY_RESPONSE "
                        f"(default {MIN_REACTION_S:g} s)")


def plan_rules(args: argparse.Namespace):
    """The (PositionRule | None, TimingRule | None) the --positions/--timing options describe."""
    from .step_plan import PositionRule, TimingRule

    def given(**values: Any) -> dict[str, Any]:
        return {k: v for k, v in values.items() if v is not None}

    positions = (PositionRule(**given(tolerance=getattr(args, "position_tolerance", None)))
                 if getattr(args, "positions", "on") == "on" else None)
    timing = (TimingRule(**given(hold_min_s=getattr(args, "hold_min", None), hold_max_s=getattr(args, "hold_max", None),
                                 min_reaction_s=getattr(args, "min_reaction", None)))
              if getattr(args, "timing", "on") == "on" else None)
    return positions, timing


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
        positions, timing = plan_rules(args)
        return SessionSettings(challenge=challenge_names(args.challenge), positions=positions, timing=timing,
                               **values)
    except (OptionsError, ValueError) as exc:
        raise CommandLineError(str(exc)) from exc


def runtime_options(args: argparse.Namespace, **overrides: Any):
    """The :class:`~.options.RuntimeOptions` the model options (and challenge options, when present) describe."""
    from .options import OptionsError, RuntimeOptions

    values: dict[str, Any] = dict(bundle=args.bundle, format=args.format, precision=args.precision, variant=args.variant,
                                  threads=args.threads, detector=args.detector, public_key=args.public_key,
                                  max_pixels=args.max_pixels, rerank=getattr(args, "rerank", False))
    if getattr(args, "db", None) is not None:
        values["db"] = args.db
    if hasattr(args, "challenge") and "session" not in overrides:
        values["session"] = session_settings(args)
    values.update(overrides)
    try:
        return RuntimeOptions(**values)
    except OptionsError as exc:  # a bad combination of flags is a command-line error, as it always was
        raise CommandLineError(str(exc)) from exc
