"""``POST /v1/sessions/{session_id}/frames`` served as plain ASGI, in front of FastAPI (:class:`ServerApp`).

A frame is the one request a client sends ten times a second, so its path skips what the other routes use:
FastAPI's routing, dependency solving (query parameters, the bearer dependency) and response validation. Under
yappi the dependency solving alone took 1.16 ms per frame (benchmarks/results/serve/profile_frame.txt); with
this path and the worker's state cache the server's own cost per frame fell from 2.07 to 1.57 ms, measured
sequentially (benchmarks/results/serve/README.md, "The frame's fast path"). The FastAPI route of the same path in :mod:`.app` stays the OpenAPI description (and
serves the route when the app is mounted under a prefix); :class:`ServerApp` answers every request to the bare
path with :class:`FrameEndpoint` first.

What it keeps from the full stack: the body cap (read no further than the limit + 1 byte, 413), the query's
validation (422 ``invalid_request`` naming the parameter), the same error bodies and codes, and the same
handler (:func:`.frames.feed_served_frame` behind the key check and the rate limit), run on the thread pool.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from .asgi import Receive, Send, read_body, send_error, send_json
from .errors import ApiError, answer_for

FRAME_ROUTE = re.compile(r"/v1/sessions/([^/]+)/frames")
MAX_NONCE = 128

@dataclass(frozen=True)
class FrameRequest:
    """One frame request, parsed: what the handler needs and nothing of the ASGI scope."""

    session_id: str
    seq: int
    t: float
    nonce: str
    body: bytes
    authorization: str | None
    content_type: str | None  # the header as sent
    client_host: str


def parse_frame_query(query_string: bytes) -> tuple[int, float, str]:
    """(seq, t, nonce) of the frame route's query; ApiError invalid_request naming the first bad parameter."""
    try:
        params = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
    except ValueError as exc:
        raise ApiError("invalid_request", f"query: {exc}") from exc
    missing = [name for name in ("seq", "t", "nonce") if name not in params]
    if missing:
        raise ApiError("invalid_request", "; ".join(f"query.{name}: Field required" for name in missing))
    seq_text, t_text, nonce = params["seq"], params["t"], params["nonce"]
    if not re.fullmatch(r"[0-9]{1,12}", seq_text.strip()):
        raise ApiError("invalid_request", f"query.seq: must be an integer >= 0 (the frames sent before this one), "
                                          f"got {seq_text[:40]!r}")
    try:
        t = float(t_text)
    except ValueError:
        raise ApiError("invalid_request", f"query.t: must be a number of seconds, got {t_text[:40]!r}") from None
    if not math.isfinite(t) or "_" in t_text:
        raise ApiError("invalid_request", f"query.t: must be a finite number of seconds, got {t_text[:40]!r}")
    if not 1 <= len(nonce) <= MAX_NONCE:
        raise ApiError("invalid_request", f"query.nonce: must be 1-{MAX_NONCE} characters, got {len(nonce)}")
    return int(seq_text), t, nonce


class FrameEndpoint:
    """The frame route's ASGI answerer: ``handle(FrameRequest)`` (run on the thread pool) behind the body cap
    (``max_bytes``) and the query's validation, every error as the full stack would answer it."""

    def __init__(self, handle: Callable[[FrameRequest], dict[str, Any]], max_bytes: int) -> None:
        self.handle, self.max_bytes = handle, max_bytes

    @staticmethod
    def route(scope) -> str | None:
        """The session id when ``scope`` is a request to the frame route (the bare path), else None."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        match = FRAME_ROUTE.fullmatch(scope["path"])
        return match.group(1) if match else None

    async def __call__(self, scope, receive: Receive, send: Send, session_id: str) -> None:
        headers = dict(scope.get("headers") or ())
        body = await read_body(receive, send, headers, self.max_bytes, "frame_too_large")
        if body is None:
            return
        try:
            seq, t, nonce = parse_frame_query(scope.get("query_string", b""))
            client = scope.get("client")
            request = FrameRequest(
                session_id=session_id, seq=seq, t=t, nonce=nonce, body=body,
                authorization=_header(headers, b"authorization"),
                content_type=_header(headers, b"content-type"),
                client_host=client[0] if client else "?")
            payload = await run_in_threadpool(self.handle, request)
        except Exception as exc:  # noqa: BLE001 - answered as the app's handlers answer it (errors.answer_for)
            code, message, status, headers = answer_for(exc)
            await send_error(send, code, message, status, headers)
            return
        await send_json(send, 200, payload)


class ServerApp(FastAPI):
    """FastAPI with the frame route answered first, by :attr:`frame_endpoint`, before FastAPI's own
    middleware, routing and dependency solving; every other request (and the lifespan) as FastAPI does."""

    frame_endpoint: FrameEndpoint | None = None

    async def __call__(self, scope, receive: Receive, send: Send) -> None:
        session_id = self.frame_endpoint.route(scope) if self.frame_endpoint is not None else None
        if session_id is None:
            await super().__call__(scope, receive, send)
        else:
            await self.frame_endpoint(scope, receive, send, session_id)


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")
