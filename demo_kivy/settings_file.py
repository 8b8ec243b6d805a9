"""The settings the app keeps between runs (Kivy-free): the server URL and API key saved on the settings
screen, in one small JSON file.

Where: ``--settings FILE``; by default ``facelive-demo.json`` beside the
template database (on a phone, in the app's private storage, as the database
is). Headless runs read one only when ``--settings`` names it. The file holds
the key in clear, so it is written readable by its owner only (mode 0600) and
replaced whole (a crash leaves the old file or the new one, never half of one).
Nothing here logs the key.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .server_setting import normalise_url, url_problem
from .settings import DemoSettings, SettingsError

log = logging.getLogger(__name__)

SETTINGS_NAME = "facelive-demo.json"
VERSION = 1
FILE_MODE = 0o600


@dataclass(frozen=True)
class StoredSettings:
    """What the file keeps: the server that decides (None: this device) and its API key."""

    server: str | None = None
    api_key: str = field(default="", repr=False)

    @classmethod
    def of(cls, settings: DemoSettings) -> StoredSettings:
        """The part of ``settings`` that is stored (no key without a server)."""
        return cls(settings.server, settings.api_key if settings.server else "")


def default_settings_file(db: str | Path) -> Path:
    """The settings file beside the template database ``db``."""
    return Path(db).parent / SETTINGS_NAME


def load_settings(path: str | Path) -> StoredSettings:
    """The stored settings at ``path`` (none stored when the file does not exist); SettingsError naming the file
    when it cannot be read or does not hold valid settings."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return StoredSettings()
    except OSError as exc:
        raise SettingsError(f"cannot read the settings file {path}: {exc.strerror or exc}") from exc
    try:
        return _parse(json.loads(text))
    except (ValueError, TypeError, AttributeError) as exc:
        raise SettingsError(f"the settings file {path} is not valid ({exc}); fix it, or delete it and save the "
                            "settings again") from None


def _parse(data) -> StoredSettings:
    """StoredSettings from the file's JSON; ValueError or TypeError saying what is wrong (never the key)."""
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise ValueError(f"expected a JSON object with \"version\": {VERSION}")
    server = data.get("server") or {}
    url, key = normalise_url(server.get("url")), server.get("api_key") or ""
    if not isinstance(key, str):
        raise TypeError("the API key is not a string")
    if url is None:
        return StoredSettings()
    if problem := url_problem(url):
        raise ValueError(problem)
    if not key:
        raise ValueError(f"the server {url} has no API key")
    return StoredSettings(url, key)


def save_settings(path: str | Path, stored: StoredSettings) -> None:
    """Write ``stored`` to ``path`` (owner-only, replaced whole); SettingsError when it cannot be written."""
    path = Path(path)
    server = {"url": stored.server, "api_key": stored.api_key} if stored.server else None
    text = json.dumps({"version": VERSION, "server": server}, indent=2) + "\n"
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created with mode 0600
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise SettingsError(f"cannot save the settings to {path}: {exc.strerror or exc}") from exc
    log.info("saved the settings to %s: %s", path,
             f"server {stored.server}" if stored.server else "this device decides")


def remember_server(path: Path | None, before: DemoSettings, after: DemoSettings) -> bool:
    """Store the server URL and key of ``after`` at ``path`` when they differ from ``before`` (nothing is
    stored without a path); whether it wrote."""
    if path is None or StoredSettings.of(before) == StoredSettings.of(after):
        return False
    save_settings(path, StoredSettings.of(after))
    return True
