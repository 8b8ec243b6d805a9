"""The HTTP service of ``facelive serve``: :func:`create_app` builds the FastAPI app of protocol v1.

- Every route is under ``/v1``; the OpenAPI document is at ``/openapi.json``, Swagger UI at ``/docs``.
- Every error is ``{"error": {"code", "message", "status"}}`` with a stable code (:mod:`.errors`): the
  server's own refusals, FastAPI's validation errors, unknown routes and methods, a database that is down
  (503 ``store_unavailable``), and anything unexpected (500 ``internal_error``: logged, never a trace to the
  client). A bad request changes nothing and the server keeps serving.
- Bodies are capped before they are read past the limit (:class:`~.asgi.BodyLimit`): the declared
  Content-Length first, then the stream, stopping at the limit + 1 byte (413).
- The frame route, the one a client calls ten times a second, is answered in front of FastAPI's stack
  (:class:`~.frame_endpoint.ServerApp`) by :class:`~.frame_endpoint.FrameEndpoint`, with the same errors
  (FastAPI's own route of that path is its OpenAPI description, and serves it under a mount prefix).
- Per worker process: one pipeline (not thread-safe: one frame at a time under a lock; JPEG decoding and the
  database work run outside it), ``request_threads`` threads working requests, each with its own store
  connection, the frames' rate limit, and a thread failing expired sessions closed every ``sweep_interval_s``
  (and forgetting the refilled buckets of the rate limits kept in the database: session starts and admin
  calls, shared by every worker and instance; :mod:`.shared_ratelimit`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from typing import Any, Callable, Iterator

import numpy as np
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..edge_runtime.api import open_pipeline
from ..edge_runtime.enrollment import EnrollmentError, enroll_frames
from ..edge_runtime.errors import ImageReadError, ImageTooLargeError
from ..edge_runtime.face_pipeline import FacePipeline
from ..edge_runtime.imageio import decode_image
from ..edge_runtime import reasons
from ..edge_runtime.sources import Frame
from ..edge_runtime.store import ModelMismatchError, StoreError, UnknownUserError, validate_user_id
from . import schemas
from .asgi import BodyLimit
from .config import CONFIG_ENV, ServerConfig
from .errors import CODES, ApiError, answer_for, error_body
from .frame_endpoint import FrameEndpoint, FrameRequest, ServerApp
from .frames import check_jpeg_bytes, feed_served_frame
from .keys import bearer_key, check_key
from .ratelimit import Rate, RateLimiter, RateLimits
from .shared_ratelimit import StoreRateLimiter
from .sessions import Worker, admin_view, client_status, deliver_result, start_session, step_view
from .session_state import loads as load_state
from .store import KeyRecord, ServerStore, StoreUnavailableError, redact_url

log = logging.getLogger("facelivenet.server")

API = "v1"
SMALL_BODY = 64 * 1024  # JSON bodies and bodiless calls
FRAME_PATH = "/frames"
JPEG_TYPES = ("image/jpeg", "image/jpg", "application/octet-stream", "")

ERRORS = {status: {"model": schemas.ErrorOut, "description": ", ".join(c for c, s in CODES.items() if s == status)}
          for status in sorted(set(CODES.values()))}


# ------------------------------------------------------------------ the store pool


class StorePool:
    """One store connection per thread (an SQLite connection belongs to the thread that opened it; the thread
    pool reuses its threads, so there are as many connections as threads that served requests). A
    connection that lost its database is dropped: the thread's next call opens a fresh one."""

    def __init__(self, factory: Callable[[], ServerStore]) -> None:
        self.factory = factory
        self._local = threading.local()
        self._all: list[ServerStore] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def store(self) -> Iterator[ServerStore]:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = self.factory()
            with self._lock:
                self._all.append(store)
        try:
            yield store
        except StoreUnavailableError:
            self._local.store = None
            with self._lock:
                if store in self._all:
                    self._all.remove(store)
            with contextlib.suppress(Exception):
                store.close()
            raise

    def close(self) -> None:
        """Close every thread's connection (at shutdown, when no request runs)."""
        with self._lock:
            stores, self._all = self._all, []
        for store in stores:
            with contextlib.suppress(Exception):
                store.close()


# ------------------------------------------------------------------ errors


def _error_response(code: str, message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, status), status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()[:5]]
        return _error_response("invalid_request", "; ".join(parts) or "invalid request", 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        return _error_response(code, str(exc.detail), exc.status_code, getattr(exc, "headers", None))

    async def answer(_request: Request, exc: Exception) -> JSONResponse:
        return _error_response(*answer_for(exc))

    # each class its own handler (FastAPI picks the nearest in the MRO); one mapping behind them all
    for kind in (ApiError, UnknownUserError, ModelMismatchError, StoreUnavailableError, StoreError, Exception):
        app.add_exception_handler(kind, answer)


# ------------------------------------------------------------------ the app


def create_app(config: ServerConfig, store_factory: Callable[[], ServerStore] | None = None,
               pipeline: FacePipeline | None = None, clock: Callable[[], float] = time.time,
               test_draw_seed: int | None = None) -> FastAPI:
    """The server's app: ``config``'s bundle (opened here, hash-verified and signature-checked, unless
    ``pipeline`` is given), its database (``store_factory`` opens one connection; default ``config.open_store``).
    ``clock``: the server's wall clock (unix seconds; tests drive it). ``test_draw_seed``: tests only, every
    session's challenge and plan drawn from one generator with this seed (``facelive serve`` never sets it)."""
    worker = Worker(config, pipeline if pipeline is not None else open_pipeline(config.runtime_options()),
                    draw_rng=None if test_draw_seed is None else np.random.default_rng(test_draw_seed))
    worker.session_config  # the thresholds resolve (or fail) now, not at the first session
    pool = StorePool(store_factory or config.open_store)
    # session starts and admin calls: one budget across every worker and instance (in the store); frames: per
    # process (a database write per frame would cost the frame path's throughput; see shared_ratelimit)
    shared = StoreRateLimiter({"sessions": Rate.per_minute(config.rate_sessions_per_min),
                               "admin": Rate.per_minute(config.rate_admin_per_min)}, pool.store, clock)
    limiter = RateLimits(shared, RateLimiter({"frames": Rate.per_second(config.rate_frames_per_s)}))
    public = config.to_dict()
    public["db"] = redact_url(str(config.db))
    log.info("server config %s; model %s", json.dumps(public, sort_keys=True), worker.pipeline.model.description)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        import anyio.to_thread

        # the thread pool runs the routes; each thread keeps a database connection: bound them
        anyio.to_thread.current_default_thread_limiter().total_tokens = config.request_threads
        stop = threading.Event()
        sweeper = threading.Thread(target=_sweep_loop, args=(pool, config, stop, clock, shared), name="facelive-sweep",
                                   daemon=True)
        sweeper.start()
        try:
            yield
        finally:
            stop.set()
            sweeper.join(timeout=5)
            pool.close()

    app = ServerApp(title="facelivenet verification server", version=API, lifespan=lifespan,
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None,
                  description="Challenge drawn and decision made on the server: enrol users, start a session, "
                              "stream JPEG frames bound to a rolling one-time nonce, read the decision once.")
    app.state.worker, app.state.pool, app.state.limiter, app.state.config = worker, pool, limiter, config
    _install_error_handlers(app)

    def limit_for(method: str, path: str) -> tuple[int, str]:
        if method == "POST" and path.startswith(f"/{API}/sessions/") and path.endswith(FRAME_PATH):
            return config.max_frame_bytes, "frame_too_large"
        if method == "PUT" and path.startswith(f"/{API}/users/"):
            return config.max_enroll_bytes, "body_too_large"
        return SMALL_BODY, "body_too_large"

    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer flk_<key id>_<secret>")

    def authorize_as(store: ServerStore, authorization: str | None, client_host: str, scope: str,
                     budget: str) -> KeyRecord:
        key = check_key(store, bearer_key(authorization), scope)
        limiter.take(budget, f"key:{key.key_id}", f"addr:{client_host}")
        return key

    def authorize(store: ServerStore, request: Request, scope: str, budget: str) -> KeyRecord:
        return authorize_as(store, request.headers.get("authorization"), request.client.host if request.client
                            else "?", scope, budget)

    def handle_frame(req: FrameRequest) -> dict[str, Any]:
        """One frame: the key (app scope, the frames' budget), the body's type, then the session's rules."""
        with pool.store() as store:
            key = authorize_as(store, req.authorization, req.client_host, "app", "frames")
            content_type = (req.content_type or "").split(";")[0].strip().lower()
            if content_type not in JPEG_TYPES:
                raise ApiError("not_a_jpeg", f"the frame must be sent as image/jpeg, not {content_type[:60]!r}")
            check_jpeg_bytes(req.body)
            return feed_served_frame(worker, store, req.session_id, key, req.seq, req.t, req.nonce, req.body, clock())

    app.add_middleware(BodyLimit, limit_for=limit_for)
    app.frame_endpoint = FrameEndpoint(handle_frame, config.max_frame_bytes)

    def admin_call(request: Request, fn: Callable[[ServerStore], Any]) -> Any:
        with pool.store() as store:
            authorize(store, request, "admin", "admin")
            return fn(store)

    # -------------------------------------------------------------- health

    @app.get(f"/{API}/health", response_model=schemas.HealthOut, responses={503: ERRORS[503]}, tags=["service"])
    def health() -> dict[str, Any]:
        """Is the server up and its database reachable? (no key needed)"""
        with pool.store() as store:
            store.ping()
            kind = store.kind
        return {"status": "ok", "store": kind, "model": worker.fingerprint[:16], "api": API}

    # -------------------------------------------------------------- sessions

    @app.post(f"/{API}/sessions", status_code=201, response_model=schemas.SessionOut, tags=["sessions"],
              responses={s: ERRORS[s] for s in (401, 403, 404, 409, 422, 429, 503)}, dependencies=[Depends(bearer)])
    def post_session(request: Request, body: schemas.SessionIn) -> dict[str, Any]:
        """Start a session for ``user``: the server draws the challenge, the places and the timing."""
        user = _user_id(body.user)
        now = clock()
        with pool.store() as store:
            key = authorize(store, request, "app", "sessions")
            store.expire_sessions(now, config.max_frame_gap_s)  # a vanished client's session counts for the lock-out
            row, nonce = start_session(worker, store, user, key.key_id, now)
        session, _ = load_state(row.state)
        pending = row.status == reasons.Decision.PENDING
        return {"session_id": row.session_id, "nonce": nonce if pending else None, "expires_at": row.expires_at,
                "expires_in_s": round(row.expires_at - now, 3), "status": client_status(row.status),
                "steps": len(session.step_labels), "step": step_view(session),
                "limits": {"max_frame_bytes": config.max_frame_bytes, "max_frames": config.max_frames,
                           "max_frame_gap_s": config.max_frame_gap_s, "max_clock_skew_s": config.max_clock_skew_s}}

    @app.post(f"/{API}/sessions/{{session_id}}/frames", response_model=schemas.FrameOut, tags=["sessions"],
              responses={s: ERRORS[s] for s in (401, 403, 404, 409, 410, 413, 415, 422, 429, 503)},
              dependencies=[Depends(bearer)],
              openapi_extra={"requestBody": {"required": True, "description": "one JPEG frame",
                                             "content": {"image/jpeg": {"schema": {"type": "string",
                                                                                   "format": "binary"}}}}})
    async def post_frame(request: Request, session_id: str,
                         seq: int = Query(ge=0, description="frames sent before this one"),
                         t: float = Query(description="capture time, seconds on the client's monotonic clock"),
                         nonce: str = Query(min_length=1, max_length=128, description="from the previous answer")):
        """Send one frame (the body: JPEG bytes) taken at ``t``; the answer says the step now and the next nonce."""
        # FrameEndpoint answers this path first with the same handler; FastAPI serves it when the app is
        # mounted under a prefix (the endpoint matches the bare path only)
        body = await request.body()  # capped by BodyLimit
        req = FrameRequest(session_id, seq, t, nonce, body, request.headers.get("authorization"),
                           request.headers.get("content-type"), request.client.host if request.client else "?")
        return await run_in_threadpool(handle_frame, req)

    @app.post(f"/{API}/sessions/{{session_id}}/result", response_model=schemas.ResultOut, tags=["sessions"],
              responses={s: ERRORS[s] for s in (401, 403, 404, 409, 429, 503)}, dependencies=[Depends(bearer)])
    def post_result(request: Request, session_id: str) -> dict[str, Any]:
        """The decision, once (a pending session ends here, rejected as abandoned)."""
        with pool.store() as store:
            key = authorize(store, request, "app", "frames")  # a result is one call per session: the frames' budget
            row = store.session(session_id)
            if row is None:
                raise ApiError("unknown_session", f"no session {session_id!r}")
            if row.key_id != key.key_id:
                raise ApiError("session_not_yours", "this session was opened with another API key")
            return deliver_result(store, row, clock(), config.max_frame_gap_s)

    # -------------------------------------------------------------- users (admin)

    @app.put(f"/{API}/users/{{user}}", response_model=schemas.EnrollOut, tags=["users"],
             responses={s: ERRORS[s] for s in (401, 403, 413, 415, 422, 429, 503)}, dependencies=[Depends(bearer)],
             openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                 "type": "object", "required": ["images"], "properties": {"images": {
                     "type": "array", "items": {"type": "string", "format": "binary"},
                     "description": "JPEG or PNG face images"}}}}}}})
    async def put_user(request: Request, user: str) -> dict[str, Any]:
        """Enroll (or re-enroll) ``user`` from one or more ``images`` parts, quality-gated as facelive enroll."""
        await run_in_threadpool(admin_call, request, lambda store: None)
        user = _user_id(user)
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise ApiError("unsupported_media_type", "send the images as multipart/form-data parts named 'images'")
        form = await request.form(max_files=config.max_enroll_images, max_fields=16)
        images = [await part.read() for part in form.getlist("images") if hasattr(part, "read")]
        await form.close()
        if not images:
            raise ApiError("invalid_request", "no 'images' file parts in the form")
        return await run_in_threadpool(_enroll, user, images)

    def _enroll(user: str, images: list[bytes]) -> dict[str, Any]:
        frames = []
        for i, data in enumerate(images):
            try:
                frames.append(Frame(i, float(i), decode_image(data, f"image {i}"), f"image {i}"))
            except ImageReadError as exc:
                frames.append(Frame(i, float(i), None, f"image {i}", error=str(exc),
                                    reason=reasons.IMAGE_TOO_LARGE if isinstance(exc, ImageTooLargeError)
                                    else reasons.UNREADABLE))
        with pool.store() as store, worker.lock:
            try:
                result = enroll_frames(worker.pipeline, _TemplateWriter(store), user, frames)
            except EnrollmentError as exc:
                raise ApiError("enrollment_failed", str(exc)) from exc
        index = {f.name: f.index for f in frames}
        return {"user": result.user, "images_used": result.images_used, "model": result.model_fingerprint,
                "images_rejected": [{"index": index[r["path"]], "reasons": [r["reason"]]} for r in result.rejected]}

    @app.get(f"/{API}/users", response_model=schemas.UsersOut, tags=["users"], dependencies=[Depends(bearer)],
             responses={s: ERRORS[s] for s in (401, 403, 429, 503)})
    def get_users(request: Request) -> dict[str, Any]:
        """The enrolled users (every model's templates)."""
        users = admin_call(request, lambda store: store.users())
        return {"users": [{"user": u.user_id, "model_fingerprint": u.model_fingerprint, "images": u.images,
                           "created": u.created} for u in users]}

    @app.delete(f"/{API}/users/{{user}}", response_model=schemas.DeletedOut, tags=["users"],
                dependencies=[Depends(bearer)], responses={s: ERRORS[s] for s in (401, 403, 404, 429, 503)})
    def delete_user(request: Request, user: str) -> dict[str, Any]:
        """Delete the user's templates and attempt history."""
        user = _user_id(user)
        return {"user": user, "templates": admin_call(request, lambda store: store.delete_user(user))}

    # -------------------------------------------------------------- admin reads

    @app.get(f"/{API}/admin/sessions/{{session_id}}", response_model=schemas.AdminSessionOut, tags=["admin"],
             dependencies=[Depends(bearer)], responses={s: ERRORS[s] for s in (401, 403, 404, 429, 503)})
    def admin_session(request: Request, session_id: str) -> dict[str, Any]:
        """Everything about a session: challenge, plan, settings, result with scores and thresholds."""
        row = admin_call(request, lambda store: store.session(session_id))
        if row is None:
            raise ApiError("unknown_session", f"no session {session_id!r}")
        return admin_view(row)

    @app.get(f"/{API}/admin/attempts", response_model=schemas.AttemptsOut, tags=["admin"],
             dependencies=[Depends(bearer)], responses={s: ERRORS[s] for s in (401, 403, 429, 503)})
    def admin_attempts(request: Request, user: str | None = None,
                       limit: int = Query(100, ge=1, le=10_000)) -> dict[str, Any]:
        """The recorded attempts (newest first), of one user or all."""
        return {"attempts": admin_call(request, lambda store: store.attempts(user, limit))}

    @app.get(f"/{API}/admin/config", tags=["admin"], dependencies=[Depends(bearer)],
             responses={s: ERRORS[s] for s in (401, 403, 429, 503)})
    def admin_config(request: Request) -> dict[str, Any]:
        """The server's resolved config (the database URL without its password) and model."""
        admin_call(request, lambda store: None)
        return {**public, "model": worker.pipeline.model.description, "model_fingerprint": worker.fingerprint}

    return app


class _TemplateWriter:
    """enroll_frames' store: it only puts the template (in the server's store)."""

    def __init__(self, store: ServerStore) -> None:
        self.put = store.put_template


def _user_id(user: str) -> str:
    try:
        return validate_user_id(user)
    except StoreError as exc:
        raise ApiError("invalid_request", str(exc)) from exc


def _sweep_loop(pool: StorePool, config: ServerConfig, stop: threading.Event, clock: Callable[[], float],
                shared: StoreRateLimiter) -> None:
    """Fail expired sessions closed every ``sweep_interval_s`` until ``stop`` (each exactly once, whichever
    worker's sweep finds it), and forget the shared rate limits' refilled buckets (the table stays small)."""
    while True:
        try:
            with pool.store() as store:
                expired = store.expire_sessions(clock(), config.max_frame_gap_s)
                shared.forget_full(store)
            if expired:
                log.info("expired %d session(s): %s", len(expired), ", ".join(expired))
        except Exception as exc:  # noqa: BLE001 - the sweep must outlive a database outage
            log.warning("expiry sweep failed: %s", exc)
        if stop.wait(config.sweep_interval_s):
            return


def app_from_env() -> FastAPI:
    """The app of one ``facelive serve`` worker process: its config from ``$FACELIVE_SERVER_CONFIG`` (JSON)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise RuntimeError(f"${CONFIG_ENV} is not set: start the server with facelive serve")
    return create_app(ServerConfig.from_dict(json.loads(text)))
