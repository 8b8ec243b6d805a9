"""``facelive serve`` and ``facelive keys add/list/revoke``: the verification server's command line.

Registered in :mod:`facelivenet.edge_runtime.cli`; this module needs only the standard library and the
runtime, so ``facelive`` works without the server extra: FastAPI, uvicorn and psycopg are imported when a
command runs, and their absence is one line naming ``pip install "facelivenet[server]"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from ..edge_runtime.cli_common import (CommandLineError, add_bundle_option, add_challenge_options, add_json_flag,
                                       add_plan_options, add_threads_option, count, positive_float, session_settings,
                                       subcommand)
from ..edge_runtime.constants import DEFAULT_DB, EXIT_OK, PUBLIC_KEY_ENV
from ..edge_runtime.options import SessionSettings
from .config import CONFIG_ENV, ConfigError, ServerConfig, load_yaml, session_from_dict

log = logging.getLogger("facelivenet.server.cli")

EXTRA = 'pip install "facelivenet[server]"'
SERVER_MODULES = ("fastapi", "uvicorn", "pydantic", "python_multipart")
DB_HELP = f"an SQLite file (created if absent; the same file as facelive enroll --db) or a postgresql:// URL (default {DEFAULT_DB})"

# flag dest -> ServerConfig field, for the limits (None: not given, the YAML's or the default holds)
LIMIT_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("session_ttl", "session_ttl_s", positive_float, "seconds a session may take in all (default 90)"),
    ("max_frame_gap", "max_frame_gap_s", positive_float, "a session with no frame for this long fails closed (default 1.5)"),
    ("max_clock_skew", "max_clock_skew_s", positive_float,
     "frames whose time runs ahead of or behind the server's by more are refused (default 1.0)"),
    ("max_frame_bytes", "max_frame_bytes", count(1, 2**31), "largest JPEG frame in bytes (default 2 MiB)"),
    ("max_frame_pixels", "max_frame_pixels", count(1, 10**9), "largest frame in pixels (default 2,000,000)"),
    ("max_frames", "max_frames", count(1, 10**7), "frames per session (default 600)"),
    ("max_enroll_bytes", "max_enroll_bytes", count(1, 2**31), "largest enrollment request in bytes (default 20 MiB)"),
    ("rate_sessions_per_min", "rate_sessions_per_min", positive_float,
     "session starts per minute, per key and per client address, across every worker and instance (default 20)"),
    ("rate_frames_per_s", "rate_frames_per_s", positive_float,
     "frames per second, per key and per client address, in each worker process (default 50)"),
    ("rate_admin_per_min", "rate_admin_per_min", positive_float,
     "admin calls per minute, per key and per client address, across every worker and instance (default 120)"),
    ("sweep_interval", "sweep_interval_s", positive_float, "seconds between expiry sweeps (default 2)"),
    ("request_threads", "request_threads", count(1, 1000),
     "requests each worker works at once, each with its own database connection (default 16)"),
    ("db_timeout", "db_timeout_s", positive_float,
     "PostgreSQL: seconds a statement may run or wait on a lock before it is cancelled and the request "
     "answered 503 store_unavailable (default 10)"),
)


def require_server_extra(modules: tuple[str, ...] = SERVER_MODULES) -> None:
    """CommandLineError naming the extra when a server dependency is missing."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise CommandLineError(f"the server needs its extra: {EXTRA} ({name} is missing: {exc})") from exc


def _open_store(db: str):
    if str(db).startswith(("postgresql://", "postgres://")):
        require_server_extra(("psycopg",))
    from .store import open_store

    return open_store(db)


# ------------------------------------------------------------------ serve


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "serve", "run the verification server (HTTP, protocol v1): the challenge and decision "
                   "on the server", f"""\
            Serve protocol v1 (/v1/..., OpenAPI at /openapi.json, Swagger UI at
            /docs): enrol users (admin key), start sessions with a challenge,
            places and timing drawn here, judge the JPEG frames a client sends
            (bound to a rolling one-time nonce) with the runtime's session rules,
            and hand the decision to the client once. Each worker process opens
            the bundle once (hash-verified; signature-checked with --public-key).
            Keys: facelive keys add. Settings: the flags, or --config YAML (the
            ServerConfig fields; session: a mapping of the session settings);
            a flag given overrides the file. Rate limits: session starts and
            admin calls are counted in the database, across every worker and
            instance; frames per worker process (N workers allow up to N times
            the frame budget). TLS: put a reverse proxy
            in front (the server speaks plain HTTP; bind it to 127.0.0.1).
            Needs: {EXTRA}.""",
        [f"facelive keys add ops --scope admin --db {DEFAULT_DB}",
         f"facelive serve --db {DEFAULT_DB} --port 8000",
         "facelive serve --db postgresql://facelive@db/facelive --workers 2 --host 0.0.0.0",
         "facelive serve --config server.yaml --check --json   # the resolved settings, then exit"])
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=count(0, 65535), help="port (default 8000)")
    p.add_argument("--db", help=DB_HELP)
    p.add_argument("--workers", type=count(1, 256), help="worker processes, each with its own pipeline (default 1)")
    p.add_argument("--config", metavar="YAML", type=Path, help="server settings file (flags given override it)")
    p.add_argument("--access-log", action="store_true", help="log one line per HTTP request (off by default: a "
                   "frame's URL carries its one-time nonce, and the line costs CPU on every frame; the server logs "
                   "each decision either way)")
    p.add_argument("--check", action="store_true", help="resolve the settings, open the bundle and the database, "
                   "print the settings and exit without serving")
    g = p.add_argument_group("model")
    add_bundle_option(g)
    g.add_argument("--public-key", metavar="PEM", help="refuse the bundle unless its manifest is signed by this "
                   f"Ed25519 key (default: ${PUBLIC_KEY_ENV})")
    add_threads_option(g, default=None, default_text="1 per worker")
    lim = p.add_argument_group("limits")
    for dest, _field, kind, text in LIMIT_FLAGS:
        lim.add_argument("--" + dest.replace("_", "-"), dest=dest, type=kind, help=text,
                         metavar="S" if _field.endswith("_s") else "N")
    add_challenge_options(p, order=False, rules=True)
    add_plan_options(p, note="a target oval per step and a random rest before each prompt (both on by default)")
    add_json_flag(p, "the resolved settings (with --check)")
    p.set_defaults(handler=cmd_serve)


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The settings of --config (if any) with the flags given on top."""
    values: dict[str, Any] = load_yaml(args.config) if args.config is not None else {}
    for name in ("host", "port", "db", "workers", "bundle", "public_key", "threads"):
        if getattr(args, name, None) is not None:
            values[name] = str(getattr(args, name)) if name == "bundle" else getattr(args, name)
    for dest, field, _kind, _text in LIMIT_FLAGS:
        if getattr(args, dest, None) is not None:
            values[field] = getattr(args, dest)
    try:
        base = session_from_dict(values.get("session") or {})
        flags, default = session_settings(args), SessionSettings()
        given = {f.name: getattr(flags, f.name) for f in dataclasses.fields(SessionSettings)
                 if getattr(flags, f.name) != getattr(default, f.name)}  # a flag left at its default keeps the file's
        values["session"] = dataclasses.replace(base, **given)
        return ServerConfig.from_dict(values)
    except ConfigError as exc:
        raise CommandLineError(f"{args.config or 'server settings'}: {exc}") from exc


def cmd_serve(args: argparse.Namespace):
    config = server_config(args)
    if not args.quiet and not args.verbose:  # a server's log is its record: settings, decisions with their evidence
        logging.getLogger("facelivenet.server").setLevel(logging.INFO)
    require_server_extra()
    from ..edge_runtime.api import open_pipeline

    pipeline = open_pipeline(config.runtime_options())  # the bundle is verified before any worker starts
    store = _open_store(config.db)  # the schema is migrated once, before the workers race for it
    store.close()
    summary = {**config.to_dict(), "model": pipeline.model.description, "model_fingerprint": pipeline.model.fingerprint}
    from .store import redact_url

    summary["db"] = redact_url(str(config.db))
    if args.check:
        return EXIT_OK, summary, json.dumps(summary, indent=2)
    import os

    import uvicorn

    uvicorn_level = "warning" if args.quiet else "info"
    log.info("serving protocol v1 on http://%s:%d with %d worker(s), database %s", config.host, config.port,
             config.workers, summary["db"])
    if config.workers == 1:
        from .app import create_app

        uvicorn.run(create_app(config, pipeline=pipeline), host=config.host, port=config.port, log_level=uvicorn_level,
                    access_log=args.access_log)
    else:
        os.environ[CONFIG_ENV] = config.to_json()
        uvicorn.run("facelivenet.server.app:app_from_env", factory=True, host=config.host, port=config.port,
                    workers=config.workers, log_level=uvicorn_level, access_log=args.access_log)
    return None


# ------------------------------------------------------------------ keys


def add_keys(sub: argparse._SubParsersAction) -> None:
    p = subcommand(sub, "keys", "make, list and revoke the server's API keys", """\
            API keys for facelive serve: flk_<key id>_<secret>. The database
            keeps only the secret's sha256: the key is printed once, when it is
            made. Scopes: app (sessions) and admin (users and admin reads, and
            the app calls too). A revoked key is refused at once.""",
        [f"facelive keys add kiosk --scope app --db {DEFAULT_DB} --json",
         f"facelive keys list --db {DEFAULT_DB}", f"facelive keys revoke 0a1b2c3d --db {DEFAULT_DB}"])
    keys = p.add_subparsers(dest="keys_command", metavar="ACTION", title="actions")
    keys.required = True
    add = subcommand(keys, "add", "make a key and print it (once)", "Make a key NAME with a scope; prints it once.",
                     [f"facelive keys add kiosk --scope app --db {DEFAULT_DB}"])
    add.add_argument("name", metavar="NAME", help="what the key is for (1-128 printable characters)")
    add.add_argument("--scope", choices=("app", "admin"), required=True, help="app: sessions; admin: users, "
                     "admin reads and app calls")
    lst = subcommand(keys, "list", "list the keys (never their secrets)", "List every key: id, name, scope, "
                     "created, revoked.", [f"facelive keys list --db {DEFAULT_DB} --json"])
    rev = subcommand(keys, "revoke", "revoke a key", "Revoke the key KEYID (its requests are refused from now on).",
                     [f"facelive keys revoke 0a1b2c3d --db {DEFAULT_DB}"])
    rev.add_argument("key_id", metavar="KEYID", help="the key id (the 8 hex digits after flk_)")
    for q, handler in ((add, _cmd_keys_add), (lst, _cmd_keys_list), (rev, _cmd_keys_revoke)):
        q.add_argument("--db", default=DEFAULT_DB, help=DB_HELP)
        add_json_flag(q)
        q.set_defaults(handler=handler)


def _key_dict(rec) -> dict[str, Any]:
    return {"key_id": rec.key_id, "name": rec.name, "scope": rec.scope, "revoked": rec.revoked,
            "created": dt.datetime.fromtimestamp(rec.created, dt.timezone.utc).isoformat(timespec="seconds")}


def _cmd_keys_add(args: argparse.Namespace):
    from .keys import new_key

    try:
        key, rec = new_key(args.name, args.scope)
    except ValueError as exc:
        raise CommandLineError(str(exc)) from exc
    store = _open_store(args.db)
    try:
        store.add_key(rec)
    finally:
        store.close()
    payload = {"key": key, **_key_dict(rec)}
    return EXIT_OK, payload, (f"{key}\n(shown once: keep it secret; {rec.scope} key {rec.key_id} '{rec.name}' "
                              f"in {args.db})")


def _cmd_keys_list(args: argparse.Namespace):
    store = _open_store(args.db)
    try:
        rows = [_key_dict(rec) for rec in store.keys()]
    finally:
        store.close()
    text = "\n".join(f"{r['key_id']}  {r['scope']:<5}  {r['created']}  {'REVOKED ' if r['revoked'] else ''}{r['name']}"
                     for r in rows) or "no keys"
    return EXIT_OK, {"keys": rows}, text


def _cmd_keys_revoke(args: argparse.Namespace):
    store = _open_store(args.db)
    try:
        known = store.key(args.key_id) is not None
        revoked = store.revoke_key(args.key_id) if known else False
    finally:
        store.close()
    if not known:
        raise CommandLineError(f"no key {args.key_id!r} in {args.db} (facelive keys list shows them)")
    return EXIT_OK, {"key_id": args.key_id, "revoked": True, "was_active": revoked}, f"revoked key {args.key_id}"
