"""Torch-free runtime: the base layer every other part of facelivenet builds on.

It owns what is shared: expression labels, face detection and alignment,
preprocessing, the bundle manifest schema, the session rules and the shared
constants (:mod:`.constants`). Nothing here may import torch.

The public Python API (README.md, "Use it from Python")::

    from facelivenet.edge_runtime import Authenticator, Decision, RuntimeOptions, SessionSettings

is loaded on first use, so importing a small module (``labels``, ``constants``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from .labels import EXPRESSION_LABELS, NUM_EXPRESSIONS

# name -> module that defines it (imported on first access)
_PUBLIC = {
    "Authenticator": "api", "LiveSession": "api", "open_pipeline": "api", "NoUsableFaceError": "api",
    "RuntimeOptions": "options", "SessionSettings": "options", "OptionsError": "options",
    "Decision": "reasons", "Reason": "reasons",
    "EnrollmentResult": "enrollment", "EnrollmentError": "enrollment",
    "SessionResult": "session", "VerifyResult": "verification",
    "FaceLiveError": "errors",
}

__all__ = ["EXPRESSION_LABELS", "NUM_EXPRESSIONS", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
