"""``facelive-demo``: the entry point. Parses the command line, loads the model, then runs the Kivy app
with a window, or headless through a script (see :mod:`options` for the flags).

Errors before the app starts (a missing or tampered bundle, no camera, a bad
flag) are one line on stderr (and ``{"error", "error_type"}`` with ``--json``)
in headless mode; with a window, the home screen shows them with the fix.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facelivenet.edge_runtime.cli_logging import call_cleanly, parse_args_or_code, report_failure, setup_cli_logging
from facelivenet.edge_runtime.constants import DEFAULT_DB, EXIT_FAILURE, EXIT_OK, EXIT_REJECTED
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.reasons import Decision

from .engine import DemoEngine, ModelLoadError
from .kivy_env import configure_window, prepare_kivy, remove_temp_home
from .options import PROG, build_parser, parse_script, parse_size, screenshot_prefix, settings_from_args

log = logging.getLogger("facelivenet.demo_kivy")

DEFAULT_HEADLESS_USER = "demo"
HEADLESS_MAX_SECONDS = 300.0


def _fail(as_json: bool, message: str, kind: str, code: int = EXIT_FAILURE, extra: dict | None = None) -> int:
    """One line on stderr; with --json also one JSON object on stdout."""
    return report_failure(PROG, message, kind, code, as_json, extra)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facelive-demo`` console script; returns the exit code."""
    args = parse_args_or_code(build_parser(), argv)
    if isinstance(args, int):
        return args
    setup_cli_logging(PROG, args.verbose, args.quiet)
    temp_db_dir = tempfile.TemporaryDirectory(prefix="facelive-demo-") if args.headless and not args.db else None
    held: dict[str, Any] = {}  # what the run opened, closed here whatever happens
    try:
        db = args.db or (str(Path(temp_db_dir.name) / "facelive.db") if temp_db_dir else DEFAULT_DB)
        failed, code = call_cleanly(PROG, args.json, lambda: _run(args, db, held))
        return failed if failed is not None else code
    finally:
        if held.get("engine") is not None:
            held["engine"].close()
        remove_temp_home(held.get("temp_home"))
        if temp_db_dir is not None:
            temp_db_dir.cleanup()


def _run(args, db: str, held: dict[str, Any]) -> int:
    held["engine"] = engine = _engine(args, db)
    size = parse_size(args.size)
    steps = parse_script(args.script) if args.headless else []
    prefix = screenshot_prefix(args.screenshot)
    held["temp_home"] = prepare_kivy(args.headless, args.verbose)
    configure_window(size, args.headless, args.verbose)
    if args.headless:
        return _run_headless(engine, steps, prefix, args)
    return _run_window(engine)


def _engine(args, db: str) -> DemoEngine:
    """Settings, model and (headless) sources. Headless, every problem is raised here, before any window;
    with a window, a model that cannot load is shown on the home screen with its fix."""
    if args.headless and not args.user:
        args.user = DEFAULT_HEADLESS_USER
    settings = settings_from_args(args, db)
    engine = DemoEngine(settings, lossless=args.headless)
    try:
        engine.load_model()
    except ModelLoadError:
        if args.headless:
            engine.close()
            raise
        log.error("%s", engine.model_error)
    if args.headless:
        try:
            for spec in {settings.enroll_spec, settings.source}:
                engine.feed(spec).start()  # no camera, no such file: one line now
        except FaceLiveError:
            engine.close()
            raise
    return engine


def _run_window(engine: DemoEngine) -> int:
    from .ui import DemoApp

    DemoApp(engine).run()
    return EXIT_OK


def _run_headless(engine: DemoEngine, steps: list[str], prefix: Path | None, args) -> int:
    from .headless import ScriptDriver
    from .ui import DemoApp

    driver = ScriptDriver(steps, engine.settings.user, prefix, HEADLESS_MAX_SECONDS)
    DemoApp(engine, auto_navigate=False, poll_hz=0, on_start_hook=driver.start).run()
    payload: dict[str, Any] = dict(driver.auth or {})
    payload.update(enrollment=driver.enrollment, screenshots=driver.screenshots, model=engine.model_description,
                   source=" ".join(engine.settings.source),
                   enroll_source=" ".join(engine.settings.enroll_spec))
    if driver.error is not None:
        return _fail(args.json, str(driver.error), driver.error.kind, extra=payload)
    if args.json:
        print(json.dumps(payload))
    else:
        print(_summary(payload))
    if driver.auth is not None and driver.auth["decision"] != Decision.ACCEPT:
        print(f"{PROG}: rejected: {', '.join(driver.auth['reasons'])}", file=sys.stderr)
        return EXIT_REJECTED
    return EXIT_OK


def _summary(payload: dict[str, Any]) -> str:
    lines = []
    if payload.get("enrollment"):
        e = payload["enrollment"]
        lines.append(f"enrolled {e['user']!r} from {e['images_used']} frame(s)")
    if "decision" in payload:
        lines.append(f"{payload['decision'].upper()} {payload['user']!r}: challenge "
                     f"{' -> '.join('neutral -> ' + c for c in payload['challenge'])}")
        lines += [f"  reason {code}: {text}" for code, text in zip(payload["reasons"], payload["reason_text"])]
    lines += [f"screenshot {s['screen']}: {s['path']}" for s in payload["screenshots"]]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
