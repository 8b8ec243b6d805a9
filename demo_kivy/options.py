"""``facelive-demo``'s command line (Kivy-free): the model options of ``facelive``, the challenge flags of
``facelive auth``, the sources, and the headless automation flags."""

from __future__ import annotations

import argparse
import os
import textwrap
from pathlib import Path

from facelivenet.edge_runtime.cli_common import (HelpFormatter, add_challenge_options, add_json_flag, add_log_options,
                                                 add_model_options, add_plan_options, epilog, positive_float,
                                                 runtime_options)
from facelivenet.edge_runtime.constants import DEFAULT_DB, DEFAULT_FPS
from facelivenet.edge_runtime.errors import FaceLiveError

from .server_setting import normalise_url
from .settings import DemoSettings, SettingsError
from .settings_file import SETTINGS_NAME, StoredSettings, default_settings_file

PROG = "facelive-demo"
SCRIPT_STEPS = ("enroll", "auth", "settings")
DEFAULT_SIZE = (480, 860)

DESCRIPTION = """\
    FaceLiveNet demo app: enroll a face, then authenticate with a random
    expression challenge (neutral before each asked expression), on a camera,
    a video file or a folder of frames.

    --server URL --api-key KEY runs the same screens with a verification
    server (facelive serve) deciding: it draws the challenge and the target
    ovals, judges the frames this app sends and keeps the templates; the app
    needs no model then (enrollment needs an admin key). The settings screen
    can store a server URL and API key instead (in --settings FILE); the app
    then starts in server mode. Flags take precedence over stored settings:
    --server URL (--server '' for this device) replaces the stored URL and
    key, --api-key alone only the key.

    --headless --script enroll,auth drives the same screens without a window
    (SDL offscreen) and prints one JSON object with --json: the authentication
    result (decision, reasons, challenge, steps), the enrollment and the
    screenshot paths (--screenshot PREFIX: PREFIX_home.png, PREFIX_enroll.png,
    PREFIX_auth.png, PREFIX_result.png). Enrollment reads --enroll-source, or
    else the first frames of --source: it takes --enroll-frames usable frames,
    one every --enroll-interval seconds of the source's time, and
    authentication goes on with the frames that follow. Headless runs analyse
    every frame (nothing is dropped) and, without --db, use a temporary
    template database. Exit code: 0 accepted (or enrolled), 4 rejected,
    1 an error (one line on stderr), 2 usage."""

EXAMPLES = (
    "facelive-demo                                   # camera 0",
    "facelive-demo --source clip.mp4 --db users.db",
    "facelive-demo --headless --source frames/ --user alice --script enroll,auth --screenshot shots/run --json",
    "facelive-demo --headless --enroll-source enroll/ --source attack/ --fixed-order --json",
    "FACELIVE_API_KEY=flk_... facelive-demo --server http://127.0.0.1:8000",
)
API_KEY_ENV = "FACELIVE_API_KEY"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``facelive-demo``."""
    p = argparse.ArgumentParser(prog=PROG, description=textwrap.dedent(DESCRIPTION), epilog=epilog(*EXAMPLES),
                                formatter_class=HelpFormatter)
    src = p.add_argument_group("frames")
    src.add_argument("--source", nargs="+", metavar="SRC", default=None,
                     help="camera index, video file, folder of frames or frame files (default: camera 0)")
    src.add_argument("--enroll-source", nargs="+", metavar="SRC",
                     help="frames for enrollment (default: the first frames of --source)")
    src.add_argument("--fps", type=positive_float, default=DEFAULT_FPS,
                     help=f"frame rate of a folder or list of frames (default {DEFAULT_FPS:g})")
    mirror = src.add_mutually_exclusive_group()
    mirror.add_argument("--mirror", dest="mirror", action="store_true", default=None,
                        help="mirror the preview (default: only for a camera)")
    mirror.add_argument("--no-mirror", dest="mirror", action="store_false", help="never mirror the preview")
    users = p.add_argument_group("users")
    users.add_argument("--db", help=f"template database (default ./{DEFAULT_DB}; headless: a temporary one)")
    users.add_argument("--user", default=None, help="user id to enroll / authenticate (headless default: demo)")
    users.add_argument("--enroll-frames", type=int, default=5, metavar="N", help="frames to capture (default 5)")
    users.add_argument("--enroll-interval", type=float, default=0.2, metavar="S",
                       help="seconds of source time between captures (default 0.2)")
    server = p.add_argument_group("server mode")
    server.add_argument("--server", metavar="URL",
                        help="a verification server (facelive serve) decides instead of the model on this device "
                             "(http:// or https://; '' : this device); overrides the stored server and key")
    server.add_argument("--api-key", metavar="KEY",
                        help=f"the server's API key (default ${API_KEY_ENV} with --server, else the stored key); "
                             "enrollment and the user list need an admin key")
    server.add_argument("--settings", metavar="FILE",
                        help=f"where Settings stores the server URL and API key (default: {SETTINGS_NAME} beside "
                             "--db; headless: none unless given; '' : none); flags override what it holds")
    add_challenge_options(p, rules=True)
    add_plan_options(p, "each step's target oval (drawn on the preview) and the random rest before each prompt; "
                        "a recorded --source cannot follow them: it is judged with --positions off --timing off "
                        "--fixed-order")
    add_model_options(p)
    auto = p.add_argument_group("automation")
    auto.add_argument("--headless", action="store_true", help="no window: run --script and exit")
    auto.add_argument("--script", default="enroll,auth", metavar="STEPS",
                      help=f"headless steps, comma-separated from {', '.join(SCRIPT_STEPS)} (default enroll,auth)")
    auto.add_argument("--screenshot", metavar="PNG", help="save one screenshot per screen visited: PNG_<screen>.png")
    add_json_flag(auto)
    auto.add_argument("--size", default=f"{DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}", metavar="WxH",
                      help=f"window size (default {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]})")
    add_log_options(p)
    return p


def parse_script(text: str) -> list[str]:
    """Headless steps; SettingsError naming an unknown one."""
    steps = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in steps if s not in SCRIPT_STEPS]
    if bad or not steps:
        what = f"unknown step {bad[0]!r}" if bad else "no steps given"
        raise SettingsError(f"--script: {what}; choose from {', '.join(SCRIPT_STEPS)}")
    return steps


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (W, H); SettingsError otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SettingsError(f"--size must look like 480x860, got {text!r}") from None
    if not (160 <= w <= 4096 and 160 <= h <= 4096):
        raise SettingsError(f"--size must be between 160 and 4096 pixels a side, got {text!r}")
    return w, h


def screenshot_prefix(text: str | None) -> Path | None:
    """``shots/run.png`` or ``shots/run`` -> ``shots/run`` (files become ``shots/run_<screen>.png``)."""
    if not text:
        return None
    path = Path(text)
    if path.suffix.lower() == ".png":
        path = path.with_suffix("")
    if not path.parent.is_dir():
        raise SettingsError(f"--screenshot: folder {path.parent} does not exist")
    return path


def settings_file(args: argparse.Namespace, db: str) -> Path | None:
    """The stored settings' file: --settings ('' : none), else beside the database (headless: none)."""
    if args.settings is not None:
        return Path(args.settings) if args.settings else None
    return None if args.headless else default_settings_file(db)


def server_choice(args: argparse.Namespace, stored: StoredSettings) -> tuple[str | None, str]:
    """The server URL and API key: --server (its key from --api-key or $FACELIVE_API_KEY) replaces the stored
    ones; else the stored server with --api-key when given, else its stored key. (None, '') for this device."""
    if args.server is not None:
        url = normalise_url(args.server)
        return url, (args.api_key or os.environ.get(API_KEY_ENV, "")) if url else ""
    if stored.server:
        return stored.server, args.api_key or stored.api_key
    return None, ""


def settings_from_args(args: argparse.Namespace, db: str, stored: StoredSettings = StoredSettings()) -> DemoSettings:
    """The app's settings from the parsed command line (validated): the runtime's options as every runtime
    command builds them, and the app's own; the server from the flags, else from ``stored``."""
    try:
        runtime = runtime_options(args, db=db)
    except FaceLiveError as exc:
        raise SettingsError(str(exc)) from exc
    server, api_key = server_choice(args, stored)
    return DemoSettings(
        runtime=runtime, enroll_frames=args.enroll_frames, enroll_interval_s=args.enroll_interval,
        source=tuple(args.source or ("0",)), enroll_source=tuple(args.enroll_source) if args.enroll_source else None,
        fps=args.fps, mirror=args.mirror, user=args.user or "", server=server, api_key=api_key)
