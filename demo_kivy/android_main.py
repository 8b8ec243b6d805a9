"""Entry point of the Android build (``android_stage`` writes a ``main.py`` that calls :func:`run`).

On a phone there is no command line: the demo starts with the LiteRT backend
(``--format tflite --precision fp32``), camera 0, and the template database in
the app's private storage (``$ANDROID_PRIVATE``, set by python-for-android).
The settings file beside it (``facelive-demo.json``) keeps the server URL and
API key typed on the settings screen; with a URL there, the server decides.
fp32 is the default because the legacy ``tflite_runtime`` interpreter (the one
python-for-android packages) runs some int8 models wrong; the runtime only
accepts it after a parity self-check (see ANDROID.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path


def android_argv(environ: Mapping[str, str]) -> list[str]:
    """The demo's flags on a phone (command-line flags given on a desktop test run come after them)."""
    private = Path(environ.get("ANDROID_PRIVATE") or ".")
    return ["--format", "tflite", "--precision", "fp32", "--db", str(private / "facelive.db")]


def request_camera() -> None:
    """Ask for the camera permission at run time (Android 6+); nothing happens off Android."""
    try:
        from android.permissions import Permission, request_permissions  # python-for-android only
    except ImportError:
        return
    request_permissions([Permission.CAMERA])


def run() -> None:
    """Start the demo with the Android defaults."""
    from .app import main

    request_camera()
    sys.exit(main(android_argv(os.environ) + sys.argv[1:]))
