"""Words on the screen: the instruction for each challenge step and guidance from reason codes.

Reason codes come from :mod:`facelivenet.edge_runtime.reasons` and are said with
its :func:`describe`; only the instructions (what to do now) are the demo's own.
"""

from __future__ import annotations

from facelivenet.edge_runtime import reasons

INSTRUCTIONS = {
    "neutral": "Neutral face",
    "happy": "Smile!",
    "surprise": "Look surprised!",
    "anger": "Look angry!",
    "disgust": "Look disgusted!",
    "fear": "Look afraid!",
    "sadness": "Look sad!",
}


def instruction(expected: str | None) -> str:
    """The big instruction for a challenge step ('' when there is none)."""
    if expected is None:
        return ""
    return INSTRUCTIONS.get(expected, expected.capitalize())


def guidance(reason_codes: list[str]) -> str:
    """One line telling the person what to fix, from a frame's reason codes ('' when nothing is wrong)."""
    if not reason_codes:
        return ""
    code = reason_codes[0]
    if code == reasons.NO_FACE:
        return "No face found: look at the camera"
    if code == reasons.MULTIPLE_FACES:
        return "Only one face, please: more than one face is in view"
    text = reasons.describe(code)
    return text[:1].upper() + text[1:]


def move_hint(box, frame_hw: tuple[int, int], target, mirror: bool = False, tolerance: float = 0.3) -> str:
    """Where to move so that the face box sits in the target oval, in the words of the (mirrored) preview
    ('' when it is there, or there is no target or face)."""
    if target is None or box is None:
        return ""
    h, w = frame_hw
    dx = (float(box[0]) + float(box[2]) / 2) / w - target.cx
    dy = (float(box[1]) + float(box[3]) / 2) / h - target.cy
    if mirror:
        dx = -dx
    words = []
    if abs(dx) > tolerance * target.rx:
        words.append("left" if dx > 0 else "right")
    if abs(dy) > tolerance * target.ry:
        words.append("up" if dy > 0 else "down")
    return f"Move {' and '.join(words)} into the oval" if words else ""


# a verification server's coarse reasons (server/outcomes.py) in the words of the runtime reason behind them
SERVER_REASON_TEXT = {
    "not_verified": "the face or the expressions could not be verified",
    "timeout": reasons.describe(reasons.CHALLENGE_TIMEOUT),
    "no_face": reasons.describe(reasons.NO_FACE),
    "locked_out": reasons.describe(reasons.LOCKED_OUT),
    "expired": reasons.describe(reasons.SESSION_EXPIRED),
    "bad_frame": reasons.describe(reasons.BAD_FRAME),
    "abandoned": reasons.describe(reasons.ABANDONED),
    "unknown_user": reasons.describe(reasons.UNKNOWN_USER),
    "model_mismatch": reasons.describe(reasons.MODEL_MISMATCH),
}


def reason_lines(reason_codes: list[str]) -> list[str]:
    """Each reason code of a result (the runtime's, or a server's coarse one), in plain words (for the result
    screen and the JSON)."""
    return [SERVER_REASON_TEXT.get(code) or reasons.describe(code) for code in reason_codes]
