"""Kivy's start-up settings, applied before Kivy is first imported.

- ``KIVY_NO_ARGS=1``: Kivy must not parse ``facelive-demo``'s arguments;
- ``KIVY_LOG_MODE=PYTHON``: Kivy logs through :mod:`logging` (stderr), stdout stays for ``--json``;
- headless: ``SDL_VIDEODRIVER=offscreen`` (real GL rendering, no window, no display
  needed), no log file, and ``KIVY_HOME`` in a temporary folder (nothing written
  to ``~/.kivy``). Values already set in the environment are kept.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

# Kivy probes optional providers and logs each one it cannot load as an error; on a desktop or CI machine
# without them (multitouch devices, X11 clipboard tools) these lines are noise, not faults of the app.
PROBE_NOISE = ("Input: MTDev", "Cutbuffer:", "xclip", "xsel", "Clipboard:", "Config: Older configuration",
               "Config: Upgrading configuration")


class _ProbeNoiseFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(PROBE_NOISE)


def quiet_kivy_logs(verbose: int) -> None:
    """Kivy's log lines show from ``-vv`` on; before that only its errors, less the provider-probe noise."""
    logger = logging.getLogger("kivy")
    logger.setLevel((logging.ERROR, logging.ERROR, logging.INFO, logging.DEBUG)[min(verbose, 3)])
    if verbose < 2 and not any(isinstance(f, _ProbeNoiseFilter) for f in logger.filters):
        logger.addFilter(_ProbeNoiseFilter())


def prepare_kivy(headless: bool, verbose: int = 0) -> str | None:
    """Set Kivy's environment; returns a temporary KIVY_HOME to remove at exit (or None)."""
    quiet_kivy_logs(verbose)  # before the import (config messages) and again after it (Kivy resets the level)
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    temp_home = None
    if headless:
        os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
        os.environ.setdefault("KIVY_NO_FILELOG", "1")
        if "KIVY_HOME" not in os.environ:
            temp_home = tempfile.mkdtemp(prefix="facelive-kivy-")
            os.environ["KIVY_HOME"] = temp_home
    return temp_home


def configure_window(size: tuple[int, int], headless: bool, verbose: int = 0) -> None:
    """Window size and frame rate; call after :func:`prepare_kivy`, before the window exists."""
    from kivy.config import Config

    quiet_kivy_logs(verbose)
    Config.set("graphics", "width", str(size[0]))
    Config.set("graphics", "height", str(size[1]))
    Config.set("graphics", "maxfps", "30")
    Config.set("graphics", "resizable", "0" if headless else "1")
    Config.set("kivy", "exit_on_escape", "1")
    Config.set("input", "mouse", "mouse,disable_multitouch")


def remove_temp_home(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)
