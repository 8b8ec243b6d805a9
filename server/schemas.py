"""The request and response bodies of protocol v1 (pydantic; the OpenAPI document is built from them)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="stable error code (server/errors.py CODES)")
    message: str = Field(description="for people; may change")
    status: int


class ErrorOut(BaseModel):
    error: ErrorDetail


class HealthOut(BaseModel):
    status: Literal["ok"]
    store: str = Field(description="sqlite | postgresql")
    model: str = Field(description="the bundle's model fingerprint (first 16 characters)")
    api: Literal["v1"]


class TargetOut(BaseModel):
    cx: float
    cy: float
    rx: float
    ry: float


class StepOut(BaseModel):
    index: int
    expected: str = Field(description="the expression to show now (neutral before each challenge expression)")
    target: Optional[TargetOut] = Field(description="the oval the face must be in (fractions of the frame); "
                                                    "null with positions off")
    timeout_s: float
    deadline_t: Optional[float] = Field(description="when the step times out, in the client's t units; null "
                                                    "before the first frame")


class LimitsOut(BaseModel):
    max_frame_bytes: int
    max_frames: int
    max_frame_gap_s: float
    max_clock_skew_s: float


class SessionIn(BaseModel):
    user: str = Field(min_length=1, max_length=128)


class SessionOut(BaseModel):
    session_id: str
    nonce: Optional[str] = Field(description="send it with the first frame (null when already decided)")
    expires_at: float = Field(description="unix seconds")
    expires_in_s: float
    status: Literal["pending", "decided"]
    steps: int
    step: Optional[StepOut]
    limits: LimitsOut


class FaceOut(BaseModel):
    box: list[float] = Field(description="x, y, w, h as fractions of the frame's width and height")
    in_target: Optional[bool]


class FrameOut(BaseModel):
    status: Literal["pending", "decided"]
    nonce: Optional[str] = Field(description="send it with the next frame; null once decided")
    frames: int
    step: Optional[StepOut]
    face: Optional[FaceOut]


class ResultOut(BaseModel):
    session_id: str
    user: str
    decision: Literal["accept", "reject"]
    reason: Optional[str] = Field(description="null for accept; else not_verified, timeout, no_face, locked_out, "
                                              "expired, bad_frame or abandoned")


class RejectedImage(BaseModel):
    index: int
    reasons: list[str]


class EnrollOut(BaseModel):
    user: str
    images_used: int
    images_rejected: list[RejectedImage]
    model: str


class UserOut(BaseModel):
    user: str
    model_fingerprint: str
    images: int
    created: float


class UsersOut(BaseModel):
    users: list[UserOut]


class DeletedOut(BaseModel):
    user: str
    templates: int


class AttemptOut(BaseModel):
    user_id: str
    ts: float
    success: bool
    reasons: list[str]


class AttemptsOut(BaseModel):
    attempts: list[AttemptOut]


class AdminSessionOut(BaseModel):
    """The row, the challenge and plan, the settings and (once decided) the result with scores and thresholds."""

    model_config = {"extra": "allow"}
    session_id: str
    user: str
    key_id: str
    status: str
    reasons: list[str]
    frames: int
    challenge: list[str]
    plan: dict[str, Any]
    settings: dict[str, Any]
    result: Optional[dict[str, Any]] = None
    thresholds: Optional[dict[str, Any]] = None
