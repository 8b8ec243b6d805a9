"""Drive the settings screen's server fields in the real app (SDL offscreen, no model loaded) and print what
the screen showed as one JSON line. Used by test_demo_stored_settings.py in a fresh process:
python settings_probe.py SETTINGS_FILE DB URL KEY (a missing bundle: no model ever loads, so no test
waits on one)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from facelivenet.demo_kivy.kivy_env import configure_window, prepare_kivy

prepare_kivy(headless=True)
configure_window((480, 860), headless=True)

from kivy.uix.label import Label  # noqa: E402
from kivy.uix.textinput import TextInput  # noqa: E402

from facelivenet.demo_kivy.engine import DemoEngine  # noqa: E402
from facelivenet.demo_kivy.settings import DemoSettings  # noqa: E402
from facelivenet.demo_kivy.settings_file import load_settings  # noqa: E402
from facelivenet.demo_kivy.ui import DemoApp  # noqa: E402
from probe_clock import stepping_hook  # noqa: E402


def shown_words(root) -> list[str]:
    """Every text the widget tree can show: labels, hints, and what text fields show (a password field: its
    mask)."""
    words = []
    for widget in root.walk():
        if isinstance(widget, TextInput):
            words.append(widget.hint_text)
            words.append("*" * len(widget.text) if widget.password else widget.text)
        elif isinstance(widget, Label):
            words.append(widget.text)
    return words


def script(app, url: str, key: str, seen: dict):
    app.show_settings()
    screen = app.screen("settings")
    yield
    seen["empty_hint"] = screen.api_key.hint_text
    screen.server_url.text = "ftp://example.org"
    screen.apply()
    seen["bad_scheme"] = screen.ids.error.text
    screen.server_url.text = "http://192.168.1.20:8000"
    seen["clear_text_warning"] = screen.ids.server_warning.text
    screen.api_key.text = key
    screen.server_url.text = url  # loopback http: no warning; nothing listens there
    seen["loopback_warning"] = screen.ids.server_warning.text
    screen.apply()
    seen["unreachable"] = screen.ids.error.text
    seen["engine"] = type(app.engine).__name__
    stored = load_settings(app.settings_file)
    seen["stored"] = {"server": stored.server, "key_matches": stored.api_key == key}
    app.show_settings()  # the form again, as a person opening it later sees it
    yield
    seen["url_field"] = screen.server_url.text
    seen["key_field"] = screen.api_key.text
    seen["key_hint"] = screen.api_key.hint_text
    seen["key_on_screen"] = any(key in w for w in shown_words(app.sm))
    screen.server_url.text = ""  # back to deciding on this device
    screen.apply()
    seen["after_clearing"] = {"engine": type(app.engine).__name__, "server": app.engine.settings.server,
                              "key_kept": bool(app.engine.settings.api_key)}


def main(settings_file: str, db: str, url: str, key: str) -> None:
    missing_bundle = str(Path(db).with_name("no_bundle"))
    engine = DemoEngine(DemoSettings().replace(db=db, bundle=missing_bundle))  # no model: as a phone that refuses it
    seen: dict = {}

    hook = stepping_hook(lambda app: script(app, url, key, seen))
    DemoApp(engine, auto_navigate=False, poll_hz=0, on_start_hook=hook, settings_file=settings_file).run()
    print(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:5])
