"""The server's settings: :class:`ServerConfig` (frozen, validated), from flags, a YAML file, or the JSON a
``facelive serve`` hands to its worker processes.

Everything a served session is judged with lives here: the bundle (one per server), the session settings
(:class:`~facelivenet.edge_runtime.options.SessionSettings`: challenge set, timings, thresholds, lock-out,
positions and timing), and the server's own limits. The resolved config is logged at start and served on
``GET /v1/admin/config``.

Rate limits are token buckets per key and per client address. Session starts and admin calls are kept in
the database, one budget across every worker and instance (:mod:`.shared_ratelimit`); frames are kept in
each worker process, so with ``--workers N`` a key (or an address) gets N times the frame budget at most.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..edge_runtime.constants import DEFAULT_DB, DEFAULT_MAX_PIXELS, MAX_THREADS
from ..edge_runtime.errors import FaceLiveError
from ..edge_runtime.options import OptionsError, RuntimeOptions, SessionSettings
from ..edge_runtime.step_plan import PlanError, PositionRule, TimingRule
from .store import DEFAULT_DB_TIMEOUT_S, open_store

CONFIG_ENV = "FACELIVE_SERVER_CONFIG"  # the resolved config (JSON) a worker process starts from
MIB = 1024 * 1024


class ConfigError(FaceLiveError, ValueError):
    """A server setting that cannot be used; the message names it."""


@dataclass(frozen=True)
class ServerConfig:
    """Where the server listens, what it runs, and its limits (defaults: issue 26's contract)."""

    host: str = "127.0.0.1"
    port: int = 8000
    db: str = DEFAULT_DB  # an SQLite file path or a postgresql:// URL
    workers: int = 1  # processes, each with its own pipeline
    bundle: str | None = None  # None: $FACELIVE_BUNDLE, else the shipped bundle
    public_key: str | None = None  # None: $FACELIVE_BUNDLE_PUBLIC_KEY (a signed manifest is then required)
    threads: int = 1  # per worker: the model's and OpenCV's threads
    session: SessionSettings = field(default_factory=SessionSettings)
    session_ttl_s: float = 90.0  # a session must decide within this many seconds of its start
    max_frame_gap_s: float = 1.5  # ... and get a frame at least this often
    max_clock_skew_s: float = 1.0  # client elapsed time vs server elapsed time, either way
    max_frame_bytes: int = 2 * MIB
    max_frame_pixels: int = 2_000_000  # a frame with more pixels is refused (422 bad_frame)
    max_frames: int = 600  # per session; the next one rejects it (429 too_many_frames)
    max_enroll_bytes: int = 20 * MIB  # one enrollment request, every image together
    max_enroll_images: int = 50  # image parts in one enrollment request
    max_image_pixels: int = DEFAULT_MAX_PIXELS  # one enrollment image
    rate_sessions_per_min: float = 20.0  # session starts, per key and per client address (shared: in the database)
    rate_frames_per_s: float = 50.0  # frames and results, per key and per client address (per worker process)
    rate_admin_per_min: float = 120.0  # admin calls (users, admin reads), per key and per address (shared)
    sweep_interval_s: float = 2.0  # how often each worker fails expired sessions closed (and forgets full buckets)
    request_threads: int = 16  # per worker: requests worked at once (each holds a database connection)
    # PostgreSQL: a statement running (or waiting on a lock) longer is cancelled (503)
    db_timeout_s: float = DEFAULT_DB_TIMEOUT_S

    def __post_init__(self) -> None:
        positive = ("session_ttl_s", "max_frame_gap_s", "max_clock_skew_s", "max_frame_bytes", "max_frame_pixels",
                    "max_frames", "max_enroll_bytes", "max_enroll_images", "max_image_pixels", "rate_sessions_per_min",
                    "rate_frames_per_s", "rate_admin_per_min", "sweep_interval_s", "request_threads", "db_timeout_s")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a number > 0, got {value!r}")
        checks = [
            (isinstance(self.port, int) and 0 <= self.port <= 65535, f"port must be in 0-65535, got {self.port!r}"),
            (isinstance(self.workers, int) and 1 <= self.workers <= 256, f"workers must be in 1-256, got {self.workers!r}"),
            (isinstance(self.threads, int) and 1 <= self.threads <= MAX_THREADS,
             f"threads must be in 1-{MAX_THREADS}, got {self.threads!r}"),
            (bool(str(self.db)), "db: an SQLite file path or a postgresql:// URL is needed"),
            (isinstance(self.session, SessionSettings), "session must be a SessionSettings"),
            (not self.session.fixed_order and self.session.seed is None,
             "session: fixed_order and seed are for tests and evaluation; a server draws every challenge unseen"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def open_store(self):
        """One connection to this server's database (:func:`~.store.open_store` with the statement timeout)."""
        return open_store(self.db, timeout_s=self.db_timeout_s)

    def runtime_options(self) -> RuntimeOptions:
        """The options each worker opens its pipeline with (hash-verified, signature-checked bundle)."""
        try:
            return RuntimeOptions(bundle=self.bundle, public_key=self.public_key, threads=self.threads,
                                  max_pixels=self.max_image_pixels, db=self.db, session=self.session)
        except OptionsError as exc:
            raise ConfigError(str(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; :meth:`from_dict` reads it back (the worker processes' handover, the admin read)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["session"] = session_to_dict(self.session)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ServerConfig:
        """A config from a mapping of field names (the session as :func:`session_to_dict` writes it);
        ConfigError naming an unknown or bad key."""
        values = _fields_of(cls, d, "server")
        if "session" in values and not isinstance(values["session"], SessionSettings):
            values["session"] = session_from_dict(values["session"] or {})
        for name in ("bundle", "public_key", "db"):
            if isinstance(values.get(name), Path):
                values[name] = str(values[name])
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _fields_of(cls, d: Any, what: str) -> dict[str, Any]:
    """``d`` as a dict of ``cls``'s field names; ConfigError naming an unknown one."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{what} settings must be a mapping, got {type(d).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown {what} setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return dict(d)


def session_to_dict(s: SessionSettings) -> dict[str, Any]:
    """A SessionSettings as JSON (positions and timing as their rules' dicts, or null when off)."""
    d = {f.name: getattr(s, f.name) for f in dataclasses.fields(s)}
    d["challenge"] = list(s.challenge)
    d["positions"] = None if s.positions is None else s.positions.to_dict()
    d["timing"] = None if s.timing is None else s.timing.to_dict()
    return d


def _rule(cls, value: Any, name: str):
    if value is None or value is False or value == "off":
        return None
    if value is True or value == "on":
        return cls()
    if isinstance(value, Mapping):
        try:
            return cls(**value)
        except TypeError as exc:
            raise ConfigError(f"session.{name}: {exc}") from exc
    raise ConfigError(f"session.{name} must be on, off or a mapping of its parameters, got {value!r}")


def session_from_dict(d: Mapping[str, Any]) -> SessionSettings:
    """SessionSettings from a mapping of its field names (``positions`` / ``timing``: on, off or a mapping of
    the rule's parameters; ``challenge``: a list or a comma string)."""
    values = _fields_of(SessionSettings, d, "session")
    try:
        if "positions" in values:
            values["positions"] = _rule(PositionRule, values["positions"], "positions")
        if "timing" in values:
            values["timing"] = _rule(TimingRule, values["timing"], "timing")
        if isinstance(values.get("challenge"), str):
            values["challenge"] = tuple(c.strip() for c in values["challenge"].split(",") if c.strip())
        elif "challenge" in values:
            values["challenge"] = tuple(values["challenge"])
        return SessionSettings(**values)
    except (OptionsError, PlanError, TypeError) as exc:
        raise ConfigError(f"session: {exc}") from exc


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file of server settings (the :class:`ServerConfig` field names; ``session:`` a mapping)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the server config {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a server config is a mapping of settings, got {type(data).__name__}")
    return data
