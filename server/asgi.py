"""Plain ASGI pieces of the server: read a body under a cap, answer JSON, and :class:`BodyLimit`, the
middleware that caps every route's body (the frame route caps its own: :mod:`.frame_endpoint`)."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from .errors import CODES, error_body

Send = Callable[[dict], Awaitable[None]]
Receive = Callable[[], Awaitable[dict]]


async def read_body(receive: Receive, send: Send, headers: dict[bytes, bytes], limit: int,
                    code: str) -> bytes | None:
    """The whole body, or None when it was answered instead: 413 ``code`` past ``limit`` bytes (the declared
    Content-Length first, then the stream, read no further than the limit + 1 byte), 400 for a Content-Length
    that is not a number; None too when the client went away."""
    declared = headers.get(b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            await send_error(send, "invalid_request", f"Content-Length {declared[:40]!r} is not a number", 400,
                             close=True)
            return None
        if size > limit:
            await send_error(send, code, f"the body is {size} bytes; the limit here is {limit}", close=True)
            return None
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # the client went away
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            await send_error(send, code, f"the body is over the limit of {limit} bytes", close=True)
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_json(send: Send, status: int, payload: Any, headers: dict[str, str] | None = None,
                    close: bool = False) -> None:
    """One JSON response (numpy scalars written as floats)."""
    data = json.dumps(payload, separators=(",", ":"), default=float).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


async def send_error(send: Send, code: str, message: str, status: int | None = None,
                     headers: dict[str, str] | None = None, close: bool = False) -> None:
    status = status or CODES[code]
    await send_json(send, status, error_body(code, message, status), headers, close)


class BodyLimit:
    """ASGI middleware: refuse a body over its route's limit (``limit_for(method, path)`` -> (bytes, error
    code)) with 413 before reading past the limit; the app then reads the body as usual."""

    def __init__(self, app, limit_for: Callable[[str, str], tuple[int, str]]) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, code = self.limit_for(scope["method"], scope["path"])
        body = await read_body(receive, send, dict(scope.get("headers") or ()), limit, code)
        if body is None:
            return
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
