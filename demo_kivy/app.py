"""``facelive-demo``: the entry point. Parses the command line, loads the model, then runs the Kivy app
with a window, or headless through a script (see :mod:`options` for the flags).

Errors before the app starts (a missing or tampered bundle, no camera, a bad
flag) are one line on stderr (and ``{"error", "error_type"}`` with ``--json``)
in headless mode; with a window, the home screen shows them with the fix.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from facelivenet.edge_runtime.cli_runner import one_line, run_command
from facelivenet.edge_runtime.constants import DEFAULT_DB, EXIT_FAILURE, EXIT_OK, EXIT_REJECTED
from facelivenet.edge_runtime.errors import FaceLiveError
from facelivenet.edge_runtime.reasons import Decision

from .engine import DemoEngine, ModelLoadError
from .engine_switch import make_engine
from .kivy_env import configure_window, prepare_kivy, remove_temp_home
from .options import PROG, build_parser, parse_script, parse_size, screenshot_prefix, settings_file, settings_from_args
from .server_setting import clear_text_warning
from .settings import DemoSettings
from .settings_file import StoredSettings, load_settings

log = logging.getLogger("facelivenet.demo_kivy")

DEFAULT_HEADLESS_USER = "demo"
HEADLESS_MAX_SECONDS = 300.0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facelive-demo`` console script; returns the exit code."""
    return run_command(PROG, build_parser(), argv, _run, around=_held)


@contextlib.contextmanager
def _held(args: argparse.Namespace) -> Iterator[None]:
    """The runner's ``around`` hook: what the run opens (the engine, Kivy's temporary home and, headless
    without --db, a temporary template database) goes on ``args.held`` and is closed whatever happens."""
    with contextlib.ExitStack() as held:
        args.held = held
        if not args.db:
            temp = held.enter_context(tempfile.TemporaryDirectory(prefix="facelive-demo-")) if args.headless else None
            args.db = str(Path(temp) / "facelive.db") if temp else DEFAULT_DB
        yield


def _run(args: argparse.Namespace):
    engine = args.held.enter_context(contextlib.closing(_engine(args, args.db)))
    size = parse_size(args.size)
    steps = parse_script(args.script) if args.headless else []
    prefix = screenshot_prefix(args.screenshot)
    args.held.callback(remove_temp_home, prepare_kivy(args.headless, args.verbose))
    configure_window(size, args.headless, args.verbose)
    if args.headless:
        return _run_headless(engine, steps, prefix, args.settings_file)
    return _run_window(engine, args.settings_file)


def _settings(args, db: str) -> DemoSettings:
    """The command line over the stored settings (``args.settings_file`` is where Settings saves). Headless, a
    bad settings file is an error; with a window, it is logged and the app starts without it."""
    args.settings_file = settings_file(args, db)
    stored = StoredSettings()
    if args.settings_file is not None:
        try:
            stored = load_settings(args.settings_file)
        except FaceLiveError as exc:
            if args.headless:
                raise
            log.error("%s", exc)
    settings = settings_from_args(args, db, stored)
    if warning := clear_text_warning(settings.server):
        log.warning("%s", warning)
    return settings


def _engine(args, db: str) -> DemoEngine:
    """Settings, model (or server) and (headless) sources. Headless, every problem is raised here, before any
    window; with a window, a model or server that cannot be used is shown on the home screen with its fix."""
    if args.headless and not args.user:
        args.user = DEFAULT_HEADLESS_USER
    settings = _settings(args, db)
    engine = make_engine(settings, lossless=args.headless)  # a server URL: its client, no model here
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


def _run_window(engine: DemoEngine, settings_path: Path | None) -> None:
    from .ui import DemoApp

    DemoApp(engine, settings_file=settings_path).run()  # on_stop closes the engine in use then


def _run_headless(engine: DemoEngine, steps: list[str], prefix: Path | None, settings_path: Path | None) -> tuple:
    from .headless import ScriptDriver
    from .ui import DemoApp

    driver = ScriptDriver(steps, engine.settings.user, prefix, HEADLESS_MAX_SECONDS)
    app = DemoApp(engine, auto_navigate=False, poll_hz=0, on_start_hook=driver.start, settings_file=settings_path)
    app.run()
    engine = app.engine  # the engine in use at the end
    payload: dict[str, Any] = dict(driver.auth or {})
    payload.update(enrollment=driver.enrollment, screenshots=driver.screenshots, model=engine.model_description,
                   source=" ".join(engine.settings.source),
                   enroll_source=" ".join(engine.settings.enroll_spec))
    if driver.error is not None:
        return EXIT_FAILURE, {"error": one_line(driver.error), "error_type": driver.error.kind, **payload}, ""
    if driver.auth is not None and driver.auth["decision"] != Decision.ACCEPT:
        return EXIT_REJECTED, payload, _summary(payload), f"rejected: {', '.join(driver.auth['reasons'])}"
    return EXIT_OK, payload, _summary(payload)


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
