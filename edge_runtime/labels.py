"""Canonical expression labels: one order, everywhere (model outputs, data, UI)."""

from __future__ import annotations

EXPRESSION_LABELS: tuple[str, ...] = (
    "neutral",
    "anger",
    "disgust",
    "fear",
    "happy",
    "sadness",
    "surprise",
)
NUM_EXPRESSIONS = len(EXPRESSION_LABELS)

# Names used by the public data sets, mapped onto the canonical labels.
_ALIASES = {
    "neutral": "neutral", "ne": "neutral",
    "anger": "anger", "angry": "anger", "an": "anger",
    "disgust": "disgust", "di": "disgust",
    "fear": "fear", "fe": "fear",
    "happy": "happy", "happiness": "happy", "ha": "happy",
    "sadness": "sadness", "sad": "sadness", "sa": "sadness",
    "surprise": "surprise", "su": "surprise",
}


def canonical_label(name: str) -> str | None:
    """Map a data set's expression name (``angry``, ``HA``...) to the canonical label.

    Returns None for names outside the seven canonical labels (e.g. CK+ ``contempt``).
    """
    return _ALIASES.get(name.strip().lower())


def label_index(name: str) -> int:
    """Index of a canonical (or alias) label in :data:`EXPRESSION_LABELS`."""
    label = canonical_label(name)
    if label is None:
        raise ValueError(f"unknown expression {name!r}; known: {', '.join(EXPRESSION_LABELS)}")
    return EXPRESSION_LABELS.index(label)
