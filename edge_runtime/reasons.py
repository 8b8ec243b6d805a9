"""Reason codes (why a frame, an enrollment image or a session was refused) and decisions.

They are stable strings (they appear in JSON, logs, the demo's result screen),
a :class:`Reason` ``StrEnum``;
:data:`REASON_TEXT` says each in plain words for people.
"""

from __future__ import annotations

from .strenum import StrEnum


class Reason(StrEnum):
    """Why a frame, an enrollment image or a session was refused; each compares equal to its string."""

    # Frame / session outcomes
    NO_FACE = "NO_FACE"
    MULTIPLE_FACES = "MULTIPLE_FACES"
    TRACK_LOST = "TRACK_LOST"
    IDENTITY_MISMATCH = "IDENTITY_MISMATCH"
    WRONG_EXPRESSION = "WRONG_EXPRESSION"
    CHALLENGE_TIMEOUT = "CHALLENGE_TIMEOUT"
    EARLY_RESPONSE = "EARLY_RESPONSE"
    SOURCE_ENDED = "SOURCE_ENDED"
    LOCKED_OUT = "LOCKED_OUT"
    BAD_FRAME = "BAD_FRAME"
    UNKNOWN_USER = "UNKNOWN_USER"
    MODEL_MISMATCH = "MODEL_MISMATCH"
    # Server sessions (facelive serve)
    SESSION_EXPIRED = "SESSION_EXPIRED"
    ABANDONED = "ABANDONED"
    TOO_MANY_FRAMES = "TOO_MANY_FRAMES"
    # Quality gates
    FACE_TOO_SMALL = "FACE_TOO_SMALL"
    BLURRY = "BLURRY"
    POSE = "POSE"
    TOO_DARK = "TOO_DARK"
    TOO_BRIGHT = "TOO_BRIGHT"
    UNREADABLE = "UNREADABLE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"


class Decision(StrEnum):
    """A session's outcome; ``PENDING`` until it decides. Compares equal to "accept" / "reject" / "pending"."""

    PENDING = "pending"
    ACCEPT = "accept"
    REJECT = "reject"


# the codes as module names too (reasons.NO_FACE is Reason.NO_FACE)
NO_FACE = Reason.NO_FACE
MULTIPLE_FACES = Reason.MULTIPLE_FACES
TRACK_LOST = Reason.TRACK_LOST
IDENTITY_MISMATCH = Reason.IDENTITY_MISMATCH
WRONG_EXPRESSION = Reason.WRONG_EXPRESSION
CHALLENGE_TIMEOUT = Reason.CHALLENGE_TIMEOUT
EARLY_RESPONSE = Reason.EARLY_RESPONSE
SOURCE_ENDED = Reason.SOURCE_ENDED
LOCKED_OUT = Reason.LOCKED_OUT
BAD_FRAME = Reason.BAD_FRAME
UNKNOWN_USER = Reason.UNKNOWN_USER
MODEL_MISMATCH = Reason.MODEL_MISMATCH
SESSION_EXPIRED = Reason.SESSION_EXPIRED
ABANDONED = Reason.ABANDONED
TOO_MANY_FRAMES = Reason.TOO_MANY_FRAMES
FACE_TOO_SMALL = Reason.FACE_TOO_SMALL
BLURRY = Reason.BLURRY
POSE = Reason.POSE
TOO_DARK = Reason.TOO_DARK
TOO_BRIGHT = Reason.TOO_BRIGHT
UNREADABLE = Reason.UNREADABLE
IMAGE_TOO_LARGE = Reason.IMAGE_TOO_LARGE

REASON_TEXT = {
    NO_FACE: "no face was found",
    MULTIPLE_FACES: "more than one face was in view",
    TRACK_LOST: "the face jumped or changed between frames",
    IDENTITY_MISMATCH: "the face does not match the enrolled person",
    WRONG_EXPRESSION: "a different expression than the one asked was shown",
    CHALLENGE_TIMEOUT: "the asked expression was not shown in time",
    EARLY_RESPONSE: "an expression came before its prompt or faster than a person can react",
    SOURCE_ENDED: "the video ended before the challenge was complete",
    LOCKED_OUT: "too many failed attempts; try again later",
    BAD_FRAME: "a frame could not be read",
    UNKNOWN_USER: "this user is not enrolled",
    MODEL_MISMATCH: "the user was enrolled with a different model; enroll again",
    SESSION_EXPIRED: "the session expired: it ran past its time or no frame came for too long",
    ABANDONED: "the session was ended before the challenge was complete",
    TOO_MANY_FRAMES: "the session sent more frames than allowed",
    FACE_TOO_SMALL: "move closer: the face is too small",
    BLURRY: "hold still: the image is blurry",
    POSE: "look straight at the camera",
    TOO_DARK: "more light: the face is too dark",
    TOO_BRIGHT: "less light: the face is overexposed",
    UNREADABLE: "the image could not be read",
    IMAGE_TOO_LARGE: "the image is larger than the pixel limit",
}


def describe(reason: str) -> str:
    """Plain words for a reason code (the code itself when unknown)."""
    return REASON_TEXT.get(reason, reason)
