"""The server's errors: :class:`ApiError` and the table of stable codes every client can rely on.

Every error the server answers is one JSON body ``{"error": {"code", "message", "status"}}``; ``code`` is one
of :data:`CODES` (stable across versions of protocol v1), ``message`` is for people and may change.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("facelivenet.server")

# code -> HTTP status (one table; docs and tests read it)
CODES: dict[str, int] = {
    "invalid_request": 422,  # a parameter or body field is missing or malformed
    "missing_key": 401,
    "bad_key": 401,
    "forbidden": 403,  # the key's scope does not allow the call
    "session_not_yours": 403,  # another key opened the session
    "not_found": 404,  # no such route
    "unknown_user": 404,
    "unknown_session": 404,
    "method_not_allowed": 405,
    "bad_nonce": 409,  # not the session's current one-time nonce (reused, made up, or a lost race)
    "frame_out_of_order": 409,  # seq is not the number of frames received so far
    "frame_time_not_increasing": 409,
    "frame_late": 409,  # the client's elapsed time is behind the server's by more than the clock skew
    "frame_early": 409,  # ... ahead of it
    "session_decided": 409,
    "model_mismatch": 409,  # the user was enrolled with another model
    "result_already_delivered": 409,
    "session_expired": 410,
    "body_too_large": 413,
    "frame_too_large": 413,
    "not_a_jpeg": 415,
    "unsupported_media_type": 415,
    "bad_frame": 422,  # decodes but cannot be used (e.g. more pixels than the limit)
    "enrollment_failed": 422,  # no image passed the quality gates
    "too_many_frames": 429,  # the session reached its frame limit (it is rejected)
    "rate_limited": 429,  # with Retry-After
    "internal_error": 500,
    "store_unavailable": 503,
}


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message", "status"}}`` (status from :data:`CODES`)."""

    def __init__(self, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        if code not in CODES:
            raise ValueError(f"unknown error code {code!r}")
        super().__init__(message)
        self.code, self.message, self.status = code, message, CODES[code]
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.status)


def error_body(code: str, message: str, status: int) -> dict[str, Any]:
    """The one JSON shape of every error."""
    return {"error": {"code": code, "message": message, "status": status}}


def answer_for(exc: Exception) -> tuple[str, str, int, dict[str, str]]:
    """(code, message, status, headers) that answer ``exc`` raised while serving a request: an ApiError as
    itself, the store's errors by kind (logged), anything else as 500 internal_error (logged, never a trace to
    the client). FastAPI's handlers and the frame endpoint both answer through this."""
    from .store import ModelMismatchError, StoreError, StoreUnavailableError, UnknownUserError

    if isinstance(exc, ApiError):
        return exc.code, exc.message, exc.status, exc.headers
    if isinstance(exc, UnknownUserError):
        return "unknown_user", "this user is not enrolled", CODES["unknown_user"], {}
    if isinstance(exc, ModelMismatchError):
        return ("model_mismatch", "the user was enrolled with another model: enroll again", CODES["model_mismatch"],
                {})
    if isinstance(exc, StoreUnavailableError):
        log.warning("store unavailable: %s", exc)
        return "store_unavailable", "the database is unavailable; retry later", 503, {"Retry-After": "2"}
    if isinstance(exc, StoreError):
        log.error("store error: %s", exc)
        return "internal_error", "the database refused the operation (logged)", 500, {}
    log.error("internal error", exc_info=exc)
    return "internal_error", "internal error (logged)", 500, {}
