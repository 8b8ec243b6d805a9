"""What a client is told about a decision: the runtime's reason codes folded into a few coarse ones.

The full codes (and the scores and thresholds behind them) stay in the server's log and its admin read: an
app-scope client learns only whether it passed and, roughly, why not, so a probing client cannot tune an
attack on the evidence.
"""

from __future__ import annotations

from typing import Sequence

from ..edge_runtime import reasons

NOT_VERIFIED = "not_verified"

COARSE: dict[str, str] = {  # runtime reason -> client reason (one table)
    reasons.IDENTITY_MISMATCH: NOT_VERIFIED,
    reasons.MODEL_MISMATCH: NOT_VERIFIED,
    reasons.WRONG_EXPRESSION: NOT_VERIFIED,
    reasons.EARLY_RESPONSE: NOT_VERIFIED,
    reasons.TRACK_LOST: NOT_VERIFIED,
    reasons.MULTIPLE_FACES: NOT_VERIFIED,
    reasons.CHALLENGE_TIMEOUT: "timeout",
    reasons.NO_FACE: "no_face",
    reasons.LOCKED_OUT: "locked_out",
    reasons.SESSION_EXPIRED: "expired",
    reasons.BAD_FRAME: "bad_frame",
    reasons.SOURCE_ENDED: "abandoned",
    reasons.ABANDONED: "abandoned",
    reasons.TOO_MANY_FRAMES: "abandoned",
}
CLIENT_REASONS = tuple(sorted(set(COARSE.values())))


def client_reason(decision: str, codes: Sequence[str]) -> str | None:
    """The coarse reason of a decided session (None for an accept; ``not_verified`` for a code not in the
    table: an unknown reason never says more than that)."""
    if decision == "accept":
        return None
    return COARSE.get(codes[0], NOT_VERIFIED) if codes else NOT_VERIFIED
