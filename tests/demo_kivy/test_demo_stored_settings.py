"""The server URL and API key kept between runs (settings_file.py, server_setting.py): validated, stored
owner-only and read back, the key shown only masked, the command line over what is stored, and a stored URL
starting the app with the server deciding (engine_switch.py), as --server does.

Most tests are Kivy-free and start no server (an unreachable URL is enough to see which engine runs); one
reaches a real server in this process (tests/server/live_server.py), one drives the settings screen in a
fresh process (settings_probe.py)."""

from __future__ import annotations

import json
import logging
import socket
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from facelivenet.demo_kivy.engine import DemoEngine, ModelLoadError
from facelivenet.demo_kivy.engine_switch import make_engine, switch_engine
from facelivenet.demo_kivy.options import build_parser, settings_file, settings_from_args
from facelivenet.demo_kivy.server_engine import ServerEngine
from facelivenet.demo_kivy.server_setting import clear_text_warning, mask_key, normalise_url
from facelivenet.demo_kivy.settings import DemoSettings, SettingsError
from facelivenet.demo_kivy.settings_file import (SETTINGS_NAME, StoredSettings, load_settings, remember_server,
                                                 save_settings)

from .conftest import demo_env, needs_kivy

KEY = "flk_0a1b2c3d_s3cretPart0fTheKeyXYZ9"
PROBE = Path(__file__).with_name("settings_probe.py")


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch):
    monkeypatch.delenv("FACELIVE_API_KEY", raising=False)


@pytest.fixture
def closed_url() -> str:
    """An http URL on this machine where nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def args(*argv: str):
    return build_parser().parse_args(list(argv))


# ------------------------------------------------------------------ the file


def test_settings_round_trip_owner_only(tmp_path):
    path = tmp_path / SETTINGS_NAME
    assert load_settings(path) == StoredSettings()  # nothing stored yet: this device decides
    save_settings(path, StoredSettings("https://auth.example.org", KEY))
    assert load_settings(path) == StoredSettings("https://auth.example.org", KEY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the key is in the file: its owner only"
    save_settings(path, StoredSettings())  # the URL cleared: the key is not kept either
    assert load_settings(path) == StoredSettings() and KEY not in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == [SETTINGS_NAME], "no temporary file left behind"
    assert KEY not in repr(StoredSettings("https://h", KEY)) and KEY not in repr(DemoSettings(server="https://h",
                                                                                             api_key=KEY))


@pytest.mark.parametrize("content, words", [
    ("{not json", "is not valid"),
    ('{"version": 2}', '"version": 1'),
    ('{"version": 1, "server": {"url": "ftp://h", "api_key": "k"}}', "http:// or https://"),
    ('{"version": 1, "server": {"url": "https://h"}}', "has no API key"),
    ('{"version": 1, "server": "https://h"}', "is not valid"),
])
def test_a_bad_settings_file_is_named_and_its_key_never_quoted(tmp_path, content, words):
    path = tmp_path / SETTINGS_NAME
    path.write_text(content.replace('"k"', json.dumps(KEY)))
    with pytest.raises(SettingsError, match=words) as err:
        load_settings(path)
    assert str(path) in str(err.value) and KEY not in str(err.value)


def test_saving_where_it_cannot_names_the_file(tmp_path):
    with pytest.raises(SettingsError, match="cannot save the settings to"):
        save_settings(tmp_path / "missing" / SETTINGS_NAME, StoredSettings("https://h", KEY))


def test_only_a_changed_server_or_key_is_stored(tmp_path, caplog):
    path = tmp_path / SETTINGS_NAME
    device, server = DemoSettings(), DemoSettings(server="https://h", api_key=KEY)
    with caplog.at_level(logging.DEBUG):
        assert not remember_server(path, device, device.replace(threshold=0.9)) and not path.exists()
        assert not remember_server(None, device, server)
        assert remember_server(path, device, server) and load_settings(path) == StoredSettings("https://h", KEY)
        assert remember_server(path, server, server.replace(api_key=KEY + "2"))
        assert load_settings(path).api_key == KEY + "2"
    assert KEY not in caplog.text, "the key is never logged"


# ---------------------------------------------------------- validation, masking


@pytest.mark.parametrize("url, words", [
    ("ftp://auth.example.org", "must start with http:// or https://"),
    ("auth.example.org:8000", "must start with http:// or https://"),
    ("http://", "has no host"),
    ("https:///v1", "has no host"),
    ("http://auth.example.org:99999", "bad port"),
    ("https://me:pw@auth.example.org", "user name or password"),
    ("https://auth.example.org/?key=1", "query or fragment"),
])
def test_a_bad_server_url_is_named(url, words):
    with pytest.raises(SettingsError, match=words):
        DemoSettings().replace(server=url, api_key=KEY)


def test_a_server_needs_a_key_and_an_empty_url_means_this_device():
    with pytest.raises(SettingsError, match="needs an API key"):
        DemoSettings().replace(server="https://auth.example.org")
    assert normalise_url("  https://auth.example.org/ ") == "https://auth.example.org"
    assert normalise_url("   ") is None and normalise_url(None) is None
    assert DemoSettings().replace(server="https://auth.example.org:8443/api", api_key=KEY).server.endswith("/api")


def test_the_key_shows_only_its_last_four_characters():
    assert mask_key(KEY) == "********XYZ9"
    assert KEY[:-4] not in mask_key(KEY) and len(mask_key(KEY)) == len(mask_key(KEY + "longer"))
    assert mask_key("flk_1234") == "********", "a short key: the mask only"
    assert mask_key("") == ""


@pytest.mark.parametrize("url, warned", [
    ("http://192.168.1.20:8000", True),
    ("http://auth.example.org", True),
    ("https://auth.example.org", False),
    ("http://127.0.0.1:8000", False),
    ("http://localhost:8000", False),
    ("http://[::1]:8000", False),
    (None, False),
])
def test_plain_http_to_another_machine_is_warned_about(url, warned):
    warning = clear_text_warning(url)
    assert bool(warning) is warned, warning
    if warned:
        assert "in clear" in warning and "https://" in warning and "docs/server/deployment.md" in warning


# ------------------------------------------------------- command line over stored


def test_the_command_line_takes_precedence_over_the_stored_server(monkeypatch):
    stored = StoredSettings("https://stored.example.org", KEY)
    s = settings_from_args(args(), "x.db", stored)
    assert (s.server, s.api_key) == ("https://stored.example.org", KEY)
    s = settings_from_args(args("--api-key", "flk_cli"), "x.db", stored)  # --api-key alone: only the key
    assert (s.server, s.api_key) == ("https://stored.example.org", "flk_cli")
    monkeypatch.setenv("FACELIVE_API_KEY", "flk_env")  # the environment's key goes with --server only
    assert settings_from_args(args(), "x.db", stored).api_key == KEY
    s = settings_from_args(args("--server", "http://127.0.0.1:9000"), "x.db", stored)  # replaces URL and key
    assert (s.server, s.api_key) == ("http://127.0.0.1:9000", "flk_env")
    s = settings_from_args(args("--server", ""), "x.db", stored)  # --server '': this device
    assert (s.server, s.api_key) == (None, "")
    assert settings_from_args(args(), "x.db").server is None  # nothing stored, no flag: this device
    with pytest.raises(SettingsError, match="http:// or https://"):
        settings_from_args(args("--server", "ftp://h", "--api-key", "k"), "x.db")


def test_where_the_settings_are_kept(tmp_path):
    db = str(tmp_path / "users.db")
    assert settings_file(args(), db) == tmp_path / SETTINGS_NAME  # beside the database (on a phone: private)
    assert settings_file(args("--headless"), db) is None  # headless runs read none unless told
    assert settings_file(args("--headless", "--settings", "s.json"), db) == Path("s.json")
    assert settings_file(args("--settings", ""), db) is None
    assert "--settings FILE" in build_parser().format_help() and "precedence" in build_parser().format_help()


# ---------------------------------------------------------------- which engine


def test_a_stored_url_starts_the_app_with_the_server_deciding(tmp_path, closed_url):
    """What app.main does with a window: the stored URL selects the server engine, as --server does; a server
    that cannot be reached is the home screen's problem, not a crash."""
    from facelivenet.demo_kivy.app import _engine

    save_settings(tmp_path / SETTINGS_NAME, StoredSettings(closed_url, KEY))
    a = args("--db", str(tmp_path / "users.db"))
    engine = _engine(a, a.db)
    try:
        assert isinstance(engine, ServerEngine) and a.settings_file == tmp_path / SETTINGS_NAME
        assert not engine.ready and engine.model_error.startswith(f"cannot use the server at {closed_url}")
        assert KEY not in engine.model_error
    finally:
        engine.close()
    assert type(make_engine(DemoSettings())) is DemoEngine


def test_a_bad_settings_file_fails_headless_and_is_logged_with_a_window(tmp_path, caplog):
    from facelivenet.demo_kivy.app import _settings

    (tmp_path / SETTINGS_NAME).write_text("{not json")
    headless = args("--headless", "--settings", str(tmp_path / SETTINGS_NAME))
    with pytest.raises(SettingsError, match="is not valid"):
        _settings(headless, str(tmp_path / "users.db"))
    with caplog.at_level(logging.ERROR):
        assert _settings(args(), str(tmp_path / "users.db")).server is None
    assert "is not valid" in caplog.text


def test_switching_keeps_what_works(closed_url):
    """Settings naming a server that cannot be reached: refused when this device's model works (kept), taken
    when nothing worked before (the new engine says why)."""
    working = DemoEngine(DemoSettings())
    working.auth = SimpleNamespace(close=lambda: None)  # stands for a loaded model
    to_server = DemoSettings(server=closed_url, api_key=KEY)
    with pytest.raises(ModelLoadError, match="cannot use the server"):
        switch_engine(working, to_server)
    assert working.settings.server is None
    broken = DemoEngine(DemoSettings())
    swapped = switch_engine(broken, to_server)
    assert isinstance(swapped, ServerEngine) and not swapped.ready and swapped.settings is to_server
    swapped.close()


def test_a_stored_url_reaches_a_real_server(tmp_path):
    from tests.server.live_server import recorded, running_server

    with running_server(tmp_path / "server.db", session=recorded()) as server:
        save_settings(tmp_path / SETTINGS_NAME, StoredSettings(server.url, server.app_key))
        from facelivenet.demo_kivy.app import _engine

        a = args("--db", str(tmp_path / "users.db"))
        engine = _engine(a, a.db)
        try:
            assert isinstance(engine, ServerEngine) and engine.ready, engine.model_error
            assert engine.model_description.startswith(f"server {server.url} decides")
            assert engine.users() == []  # an app key lists nobody
        finally:
            engine.close()


# ------------------------------------------------------------ the settings screen


@needs_kivy
def test_the_settings_screen_validates_masks_warns_and_stores(tmp_path, closed_url):
    path = tmp_path / SETTINGS_NAME
    proc = subprocess.run([sys.executable, str(PROBE), str(path), str(tmp_path / "users.db"), closed_url, KEY],
                          capture_output=True, text=True, timeout=120, env=demo_env(tmp_path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert KEY not in proc.stderr and KEY not in proc.stdout, "the key is never logged or printed"
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["empty_hint"].startswith("flk_")
    assert seen["bad_scheme"].startswith("server URL must start with http:// or https://")
    assert "in clear" in seen["clear_text_warning"] and seen["loopback_warning"] == ""
    # nothing worked before (no model): the server setting is taken and stored even though it is unreachable
    assert seen["unreachable"].startswith(f"cannot use the server at {closed_url}")
    assert seen["engine"] == "ServerEngine"
    assert seen["stored"] == {"server": closed_url, "key_matches": True}
    assert (seen["url_field"], seen["key_field"], seen["key_hint"]) == (closed_url, "", "********XYZ9 (type to replace)")
    assert seen["key_on_screen"] is False
    assert seen["after_clearing"] == {"engine": "DemoEngine", "server": None, "key_kept": False}
    assert load_settings(path) == StoredSettings()  # cleared on screen: cleared in the file
