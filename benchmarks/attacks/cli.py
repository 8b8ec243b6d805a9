"""``facelive-bench attacks``: the liveness attack suite from the command line.

``main(argv)`` takes the arguments AFTER the ``attacks`` word and returns the
exit code: 0 when the suite ran (whatever the rates; ``--strict`` makes a
missed target exit 5), 1 with one ``facelive-bench attacks: error: ...`` line
on stderr when it could not run, 2 on usage errors. ``--json`` prints one JSON
object on stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from pathlib import Path
from typing import Sequence

from facelivenet.edge_runtime.api import open_pipeline
from facelivenet.edge_runtime.cli_common import (HelpFormatter, add_challenge_options, add_data_option, add_json_flag,
                                                 add_log_options, add_model_options, challenge_names, epilog,
                                                 add_plan_options, plan_rules, runtime_options)
from facelivenet.edge_runtime.cli_runner import run_command
from facelivenet.edge_runtime.constants import DATA_ENV, DEFAULT_FPS, EXIT_OK, EXIT_TARGET_MISSED
from facelivenet.edge_runtime.errors import FaceLiveError

from .calibration import CalibrationRates
from .data import resolve_jaffe_dir
from .frontier import frontier_points, run_frontier
from .identity import IDENTITIES
from .scenarios import ATTACK_TYPES, SESSION_MODELS
from .suite import FULL_SESSIONS, FULL_VARIANTS, QUICK_SESSIONS, QUICK_VARIANTS, SuiteConfig, run_suite

PROG = "facelive-bench attacks"

log = logging.getLogger("facelivenet.benchmarks.attacks")


def _rate_list(text: str) -> tuple[float, ...]:
    """``0.005`` or ``0.005,0.002``: one rate or several (argparse reports a bad one as a usage error)."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or a comma list of numbers: {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("no rate given")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``attacks`` subcommand."""
    p = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=HelpFormatter,
        description=textwrap.dedent(f"""\
            Simulated authentication sessions built from real JAFFE images, through
            the runtime's own detector, tracker, model and session rules: bona fide
            users performing a random challenge, and {len(ATTACK_TYPES)} attack types
            ({', '.join(ATTACK_TYPES)}). Reports APCER per attack type and BPCER
            (ISO/IEC 30107-3), reason codes, the challenge orders, and a DET plot
            over verification thresholds into --out with the resolved config.

            Thresholds, each chosen leave-one-subject-out on still pairs of the other
            subjects (never on the reported sessions): the identity aggregate at
            --far, the per-frame floor at --floor-far, the continuity at
            --continuity-far, the expression margin at --rest-rate. --identity dlib
            runs the same sessions with dlib's ResNet descriptors for identity (a
            diagnostic: rule errors vs model errors)."""),
        epilog=epilog("facelive-bench attacks --quick --json",
                      "facelive-bench attacks --data ../shared/data --seed 1 --out reports/attacks-seed1",
                      "facelive-bench attacks --far 0.005,0.002 --continuity-far 0.02,0.005 --out reports/frontier"),
    )
    add_data_option(p, "jaffe/ (or a JAFFE-shaped folder)")
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK_SESSIONS} sessions per type, {QUICK_VARIANTS} jitter variants (CI); "
                        f"the full run has {FULL_SESSIONS} and {FULL_VARIANTS}")
    p.add_argument("--seed", type=int, default=0, help="seed of every draw (default 0)")
    p.add_argument("--sessions", type=int, metavar="N", help="sessions per type (overrides --quick's)")
    p.add_argument("--variants", type=int, metavar="N", help="jitter variants per image (overrides --quick's)")
    p.add_argument("--types", metavar="LIST", help=f"attack types to run (default all: {','.join(ATTACK_TYPES)})")
    rates = CalibrationRates()
    p.add_argument("--far", type=_rate_list, default=(rates.far,),
                   help=f"target FAR of the identity aggregate threshold (default {rates.far:g}); a comma list (with "
                        "--continuity-far's) runs every combination: the rules' operating points, frontier.md/png")
    p.add_argument("--floor-far", type=float, default=rates.floor_far,
                   help=f"FAR of the per-frame identity floor (default {rates.floor_far:g})")
    p.add_argument("--continuity-far", type=_rate_list, default=(rates.continuity_far,),
                   help="FAR of the frame-to-frame continuity threshold, per cut to another person (default "
                        f"{rates.continuity_far:g}); a comma list as for --far")
    p.add_argument("--rest-rate", type=float, default=rates.rest_rate,
                   help=f"how often a face at rest may rise by the expression margin (default {rates.rest_rate:g})")
    p.add_argument("--identity", choices=tuple(IDENTITIES), default="model",
                   help="embedding for identity: the model's, or dlib's ResNet (diagnostic; needs the teacher extra)")
    p.add_argument("--session-model", choices=tuple(SESSION_MODELS), default="smooth",
                   help="genuine faces change smoothly (cross-fade + nod, default) or by one-frame cuts (the old model)")
    p.add_argument("--expression-threshold", type=float, default=0.3, metavar="P",
                   help="the old global expression floor: validated and reported, no longer decides (default 0.3)")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"simulated camera frame rate (default {DEFAULT_FPS:g})")
    p.add_argument("--out", metavar="DIR", help="report folder (default reports/attacks, reports/attacks-quick)")
    p.add_argument("--strict", action="store_true", help=f"exit {EXIT_TARGET_MISSED} when a target is missed")
    add_json_flag(p)
    add_log_options(p)
    add_challenge_options(p, order=False, decision=False, lockout=False)
    add_plan_options(p, "each step's target oval and the random rest before each prompt (step_plan.py); the "
                        "simulated people follow them")
    add_model_options(p)
    return p


def jaffe_and_types(args: argparse.Namespace, default_types: tuple[str, ...]) -> tuple[Path, tuple[str, ...]]:
    """The JAFFE folder (--data, else ``$FACELIVE_DATA``; FaceLiveError naming both when neither is set) and the
    session types of --types (``default_types`` when not given)."""
    data = args.data or os.environ.get(DATA_ENV)
    if not data:
        raise FaceLiveError(f"no data: pass --data DIR (a folder holding jaffe/) or set ${DATA_ENV}")
    types = tuple(t.strip() for t in args.types.split(",") if t.strip()) if args.types else default_types
    return resolve_jaffe_dir(data), types


def suite_config(args: argparse.Namespace) -> SuiteConfig:
    """The SuiteConfig the arguments describe; FaceLiveError / ValueError name a bad one."""
    data, types = jaffe_and_types(args, ATTACK_TYPES)
    positions, timing = plan_rules(args)
    return SuiteConfig(
        data=data,
        sessions_per_type=args.sessions if args.sessions is not None else (QUICK_SESSIONS if args.quick
                                                                           else FULL_SESSIONS),
        variants=args.variants if args.variants is not None else (QUICK_VARIANTS if args.quick else FULL_VARIANTS),
        seed=args.seed, target_far=args.far[0], floor_far=args.floor_far, continuity_far=args.continuity_far[0],
        rest_rate=args.rest_rate, identity=args.identity, session_model=args.session_model,
        expression_threshold=args.expression_threshold,
        expressions=challenge_names(args.challenge), length=args.length, fps=args.fps, types=types,
        quick=args.quick, hold_frames=args.hold_frames, step_timeout_s=args.step_timeout,
        positions=positions, timing=timing,
    )


class SuiteError(FaceLiveError):
    """An option value the suite cannot run with."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; returns the exit code (see the module docstring)."""
    return run_command(PROG, build_parser(), argv, _run)


def _run(args: argparse.Namespace):
    try:
        cfg = suite_config(args)
    except ValueError as exc:  # a bad option value: the user's to fix
        raise SuiteError(str(exc)) from exc
    out = Path(args.out or ("reports/attacks-quick" if args.quick else "reports/attacks"))
    if len(args.far) > 1 or len(args.continuity_far) > 1:
        try:  # every rate is checked before the first session runs
            points = frontier_points(cfg, args.far, args.continuity_far)
        except ValueError as exc:
            raise SuiteError(str(exc)) from exc
        frontier = run_frontier(points, open_pipeline(runtime_options(args)), out, progress=_progress(args))
        return EXIT_OK, frontier, Path(frontier["files"]["frontier.md"]).read_text().rstrip("\n")
    summary = run_suite(cfg, open_pipeline(runtime_options(args)), out, progress=_progress(args))
    text = Path(summary["files"]["table.txt"]).read_text().rstrip("\n")
    if args.strict and not all(summary["meets_target"].values()):
        missed = [k for k, ok in summary["meets_target"].items() if not ok]
        return EXIT_TARGET_MISSED, summary, text, f"targets missed: {', '.join(missed)}"
    return EXIT_OK, summary, text


def _progress(args: argparse.Namespace):
    """Every 10 % of the sessions, an INFO line."""
    def report(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            log.info("%d/%d sessions", done, total)
    return report


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
