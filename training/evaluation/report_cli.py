"""The shared runner for the evaluation's report module CLIs (teacher_eval, teacher_term): the report is one
JSON object that records the command line, written to ``--out`` (indented) or else printed."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from facelivenet.edge_runtime.cli_common import add_json_flag, add_log_options
from facelivenet.edge_runtime.cli_runner import run_command
from facelivenet.edge_runtime.constants import EXIT_OK


def run_report(prog: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None,
               build: Callable[[argparse.Namespace], dict[str, Any]]) -> int:
    """Add --json and -v/-q to ``parser`` (which has --out), then run ``build(args)`` on the one runner; returns
    the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    add_json_flag(parser)
    add_log_options(parser)

    def run(args: argparse.Namespace) -> tuple:
        report = {"command": f"{prog} " + " ".join(argv), **build(args)}
        text = json.dumps(report, indent=1)
        if args.out:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
        return EXIT_OK, report, "" if args.out else text

    return run_command(prog, parser, argv, run)
