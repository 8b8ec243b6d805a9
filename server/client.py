"""A Python client for the verification server (protocol v1; docs/server/protocol.md), on the standard
library only: ``http.client`` with one kept-alive connection, JSON, multipart bodies built here.

    with Client("http://127.0.0.1:8000", api_key) as server:
        server.enroll("alice", ["alice1.jpg", "alice2.jpg"])        # an admin key
        session = server.start_session("alice")                     # an app key
        for frame, t in camera:                                     # BGR arrays (or JPEG bytes), capture times
            reply = session.send(frame, t)                          # reply.expected, reply.target, reply.deadline_t
            if reply.status != "pending":
                break
        print(session.result().decision)

Every 4xx/5xx answer raises a :class:`ServerError` of its family (:class:`RateLimited` carries
``retry_after``); a server that cannot be reached raises :class:`ServerConnectionError` naming the URL.
A client (and its sessions) is used by one thread at a time. Frames given as arrays are encoded to JPEG
with OpenCV (imported only then).
"""

from __future__ import annotations

import http.client
import json
import logging
import mimetypes
import secrets
import ssl
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from facelivenet.edge_runtime.errors import FaceLiveError

log = logging.getLogger(__name__)

API = "/v1"
JPEG_QUALITY = 90
PASSED_AS_IS = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}  # what the server decodes
STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


# ---------------------------------------------------------------------------------------------- errors


class ServerConnectionError(FaceLiveError):
    """The server could not be reached (refused, timed out, TLS failed); the message names the URL."""


class ServerError(FaceLiveError):
    """The server answered a 4xx/5xx: ``status``, the stable ``code`` and its ``message``."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


class Unauthorized(ServerError):
    """401: no API key, or a wrong one (``missing_key``, ``bad_key``)."""


class Forbidden(ServerError):
    """403: the key's scope does not allow the call (``forbidden``), or the session was opened by another key."""


class NotFound(ServerError):
    """404: ``unknown_user``, ``unknown_session``."""


class Conflict(ServerError):
    """409: the request does not fit the session's state (``bad_nonce``, ``frame_out_of_order``,
    ``session_decided``, ``result_already_delivered``, ``model_mismatch``, ...)."""


class SessionExpired(ServerError):
    """410: the session expired (its time ran out or frames stopped); the server recorded it as rejected."""


class InvalidRequest(ServerError):
    """400/405/413/415/422: the request itself is unusable (``frame_too_large``, ``not_a_jpeg``, ``bad_frame``,
    ``enrollment_failed``, ...)."""


class RateLimited(ServerError):
    """429: ``rate_limited`` (try again after ``retry_after`` seconds) or ``too_many_frames`` (the session
    was rejected)."""


class ServerUnavailable(ServerError):
    """5xx: ``store_unavailable`` (the database is down) or another server failure."""


ERROR_FAMILIES: dict[int, type[ServerError]] = {
    400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: InvalidRequest, 409: Conflict,
    410: SessionExpired, 413: InvalidRequest, 415: InvalidRequest, 422: InvalidRequest, 429: RateLimited,
}


def server_error(status: int, body: bytes, retry_after: str | None = None) -> ServerError:
    """The typed error of one 4xx/5xx answer (a body that is not the server's JSON error is quoted)."""
    try:
        error = json.loads(body)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = f"http_{status}", body[:200].decode("utf-8", "replace").strip() or http.client.responses.get(
            status, "error")
    try:
        wait = float(retry_after) if retry_after is not None else None
    except ValueError:
        wait = None
    family = ERROR_FAMILIES.get(status, ServerUnavailable if status >= 500 else ServerError)
    return family(status, code, message, wait)


# ------------------------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Oval:
    """A target oval in normalised frame coordinates (centre cx, cy; radii rx, ry as fractions of the frame's
    width and height): where the face must be during a step."""

    cx: float
    cy: float
    rx: float
    ry: float

    @classmethod
    def of(cls, d: dict[str, float] | None) -> Oval | None:
        return None if d is None else cls(float(d["cx"]), float(d["cy"]), float(d["rx"]), float(d["ry"]))


@dataclass(frozen=True)
class Step:
    """The current challenge step: what to show, where, and until when (``deadline_t``, in the client's own
    time units; None until the first frame fixed the origin)."""

    index: int
    expected: str
    target: Oval | None
    timeout_s: float
    deadline_t: float | None

    @classmethod
    def of(cls, d: dict[str, Any] | None) -> Step | None:
        if d is None:
            return None
        return cls(int(d["index"]), str(d["expected"]), Oval.of(d.get("target")), float(d["timeout_s"]),
                   None if d.get("deadline_t") is None else float(d["deadline_t"]))


@dataclass(frozen=True)
class Face:
    """The face the server found in a frame: its box (x, y, w, h as fractions of the frame) and whether it sits
    in the step's target (None: no target)."""

    box: tuple[float, float, float, float]
    in_target: bool | None

    @classmethod
    def of(cls, d: dict[str, Any] | None) -> Face | None:
        if d is None or d.get("box") is None:
            return None
        x, y, w, h = (float(v) for v in d["box"])
        return cls((x, y, w, h), d.get("in_target"))

    def pixels(self, frame_hw: tuple[int, int]) -> tuple[float, float, float, float]:
        """The box in pixels of a frame of ``frame_hw`` (height, width)."""
        h, w = frame_hw
        x, y, bw, bh = self.box
        return x * w, y * h, bw * w, bh * h


@dataclass(frozen=True)
class FrameReply:
    """The server's answer to one frame: the session's status ("pending", "accept", "reject" or "decided",
    as the server words it), the frames it has taken, the current step (None once decided) and the face."""

    status: str
    frames: int
    step: Step | None
    face: Face | None
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    @property
    def expected(self) -> str | None:
        return None if self.step is None else self.step.expected

    @property
    def target(self) -> Oval | None:
        return None if self.step is None else self.step.target

    @property
    def deadline_t(self) -> float | None:
        return None if self.step is None else self.step.deadline_t


@dataclass(frozen=True)
class Outcome:
    """The decision, delivered once: ``accept`` or ``reject`` with a coarse ``reason`` (None on accept)."""

    session_id: str
    user: str
    decision: str
    reason: str | None

    @property
    def accepted(self) -> bool:
        return self.decision == "accept"


@dataclass(frozen=True)
class Enrolled:
    """An enrollment: the images the server used and those it rejected (``{"index", "reasons"}`` each)."""

    user: str
    images_used: int
    images_rejected: list[dict[str, Any]]
    model: str


# ------------------------------------------------------------------------------------------- encoding


def jpeg_bytes(frame: Any, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes as they are, or a BGR (or grey) uint8 array encoded with OpenCV."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return bytes(frame)
    import cv2  # only for arrays: a client that sends JPEG bytes needs no OpenCV
    import numpy as np

    image = np.asarray(frame)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"a frame must be JPEG bytes or a uint8 BGR array, got {image.dtype} of shape {image.shape}")
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"OpenCV could not encode a frame of shape {image.shape} as JPEG")
    return data.tobytes()


def image_part(image: Any) -> tuple[bytes, str, str]:
    """(bytes, file name, content type) of one enrollment image: a JPEG/PNG file as it is, another image file
    (TIFF, BMP, ...) or an array as JPEG."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        kind = PASSED_AS_IS.get(path.suffix.lower())
        if kind is not None:
            try:
                return path.read_bytes(), path.name, kind
            except OSError as exc:
                raise FaceLiveError(f"cannot read image {path}: {exc}") from exc
        from facelivenet.edge_runtime.imageio import read_image

        return jpeg_bytes(read_image(path)), path.with_suffix(".jpg").name, "image/jpeg"
    return jpeg_bytes(image), "frame.jpg", "image/jpeg"


def multipart(field_name: str, parts: Iterable[tuple[bytes, str, str]]) -> tuple[bytes, str]:
    """A multipart/form-data body with one file part per (bytes, file name, content type); returns (body, the
    Content-Type header)."""
    boundary = f"facelive-{secrets.token_hex(16)}"
    chunks = []
    for data, name, kind in parts:
        safe = name.replace('"', "_").replace("\r", "_").replace("\n", "_")
        chunks += [f"--{boundary}\r\n".encode(),
                   f'Content-Disposition: form-data; name="{field_name}"; filename="{safe}"\r\n'.encode(),
                   f"Content-Type: {kind or mimetypes.guess_type(safe)[0] or 'application/octet-stream'}\r\n\r\n"
                   .encode(), data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


# --------------------------------------------------------------------------------------------- client


class Client:
    """One server at ``url`` (``http://`` or ``https://``, optionally with a path prefix when a proxy serves the
    API under one) with one API key. ``ssl_context`` verifies an https server (default: the system's CAs).
    ``trace``, when given, is called with each exchange (method, path, status, the JSON request and answer;
    an image body as its size and type, the key never), for logs and transcripts."""

    def __init__(self, url: str, api_key: str, timeout_s: float = 10.0,
                 ssl_context: ssl.SSLContext | None = None, trace: Callable[[dict[str, Any]], None] | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FaceLiveError(f"server URL must look like http://host:port or https://host, got {url!r}")
        if timeout_s <= 0:
            raise FaceLiveError(f"timeout_s must be > 0, got {timeout_s}")
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self._ssl = ssl_context
        self._trace = trace
        self._conn: http.client.HTTPConnection | None = None

    # --------------------------------------------------------------- transport

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout_s,
                                                         context=self._ssl or ssl.create_default_context())
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)
        return self._conn

    def close(self) -> None:
        """Close the kept-alive connection (the next call opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
                query: dict[str, Any] | None = None, auth: bool = True) -> Any:
        """One call: the parsed JSON answer (None for an empty one); ServerError for a 4xx/5xx."""
        target = self._prefix + API + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if content_type is not None:
            headers["Content-Type"] = content_type
        status, reply, retry_after = self._exchange(method, target, body, headers)
        if self._trace is not None:
            self._trace({"method": method, "path": target, "status": status, "request": _shown(body, content_type),
                         "response": _shown(reply, "application/json")})
        if status >= 400:
            raise server_error(status, reply, retry_after)
        if not reply:
            return None
        try:
            return json.loads(reply)
        except ValueError as exc:
            raise ServerError(status, "bad_reply", f"{method} {target} answered {status} with a body that is not "
                                                   f"JSON: {reply[:120]!r}") from exc

    def _exchange(self, method: str, target: str, body: bytes | None,
                  headers: dict[str, str]) -> tuple[int, bytes, str | None]:
        reused = self._conn is not None
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, target, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except STALE_CONNECTION as exc:
                self.close()
                if reused and attempt == 0:  # the server closed an idle kept-alive connection: once more, fresh
                    log.debug("reconnecting to %s after %s", self.url, type(exc).__name__)
                    continue
                raise ServerConnectionError(f"cannot reach the server at {self.url}: {exc or type(exc).__name__}") \
                    from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise ServerConnectionError(f"cannot reach the server at {self.url}: {exc or type(exc).__name__}") \
                    from exc
            if response.will_close:
                self.close()
            return response.status, data, response.getheader("Retry-After")
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, method: str, path: str, payload: Any, **kw) -> Any:
        return self.request(method, path, json.dumps(payload).encode(), "application/json", **kw)

    # -------------------------------------------------------------------- calls

    def health(self) -> dict[str, Any]:
        """``GET /v1/health`` (no key needed): status, store kind, model fingerprint, API version."""
        return self.request("GET", "/health", auth=False)

    def enroll(self, user: str, images: Iterable[Any]) -> Enrolled:
        """Enroll (or re-enroll) ``user`` from images: paths (JPEG/PNG sent as they are, other formats as JPEG),
        BGR arrays or JPEG bytes. An admin key; InvalidRequest ``enrollment_failed`` when none passes."""
        parts = [image_part(image) for image in images]
        if not parts:
            raise FaceLiveError("enroll needs at least one image")
        body, kind = multipart("images", parts)
        d = self.request("PUT", f"/users/{_quote(user)}", body, kind)
        return Enrolled(d["user"], int(d["images_used"]), list(d.get("images_rejected", [])), d.get("model", ""))

    def users(self) -> list[dict[str, Any]]:
        """The enrolled users (an admin key)."""
        d = self.request("GET", "/users")
        return list(d["users"] if isinstance(d, dict) else d)

    def delete_user(self, user: str) -> dict[str, Any]:
        """Delete ``user``'s template (an admin key); NotFound ``unknown_user`` when there is none."""
        return self.request("DELETE", f"/users/{_quote(user)}")

    def start_session(self, user: str) -> ServerSession:
        """Open an authentication session for ``user``: the server draws the challenge and its first step."""
        return ServerSession(self, self._json("POST", "/sessions", {"user": user}))

    def admin_session(self, session_id: str) -> dict[str, Any]:
        """Everything about one session, scores and thresholds included (an admin key)."""
        return self.request("GET", f"/admin/sessions/{_quote(session_id)}")

    def attempts(self, user: str | None = None) -> list[dict[str, Any]]:
        """The recorded attempts, newest first (an admin key), of one user or of all."""
        d = self.request("GET", "/admin/attempts", query={"user": user} if user is not None else None)
        return list(d["attempts"] if isinstance(d, dict) else d)


def _shown(body: bytes | None, content_type: str | None) -> Any:
    """A body as a trace shows it: JSON parsed, anything else as its size and type."""
    if not body:
        return None
    if content_type == "application/json":
        try:
            return json.loads(body)
        except ValueError:
            pass
    return f"<{len(body)} bytes {(content_type or 'unknown').split(';')[0]}>"


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


class ServerSession:
    """One authentication session on the server. :meth:`send` keeps the frame count (``seq``) and the rolling
    nonce itself; a refused frame leaves both as they were."""

    def __init__(self, client: Client, opened: dict[str, Any]) -> None:
        self.client = client
        self.opened = opened
        self.session_id: str = opened["session_id"]
        self.expires_at: float = float(opened["expires_at"])
        self.steps: int = int(opened["steps"])
        self.limits: dict[str, Any] = dict(opened.get("limits") or {})
        self.status: str = opened["status"]
        self.step: Step | None = Step.of(opened.get("step"))
        self.nonce: str | None = opened.get("nonce")
        self.seq = 0
        self.outcome: Outcome | None = None

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    def send(self, frame: Any, t: float) -> FrameReply:
        """Send one frame (a BGR array or JPEG bytes) captured at ``t`` seconds of the client's monotonic clock;
        the server's answer. ServerError when it refuses the frame (the session is as it was). After a
        ServerConnectionError the server may or may not have taken the frame: end the session with
        :meth:`result` (a pending one is rejected) and start another."""
        data = jpeg_bytes(frame)
        query = {"seq": self.seq, "t": repr(float(t)), "nonce": self.nonce or ""}
        d = self.client.request("POST", f"/sessions/{_quote(self.session_id)}/frames", data, "image/jpeg",
                                query=query)
        reply = FrameReply(str(d["status"]), int(d.get("frames", self.seq + 1)), Step.of(d.get("step")),
                           Face.of(d.get("face")), d)
        self.seq += 1
        self.nonce, self.status, self.step = d.get("nonce"), reply.status, reply.step
        return reply

    def result(self) -> Outcome:
        """End the session and get its decision (once; a pending session ends as rejected, ``abandoned``)."""
        d = self.client.request("POST", f"/sessions/{_quote(self.session_id)}/result")
        self.outcome = Outcome(d["session_id"], d["user"], d["decision"], d.get("reason"))
        self.status = self.outcome.decision
        return self.outcome
