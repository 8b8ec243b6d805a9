"""Progress bars on stderr for long loops (tqdm when installed, silent otherwise)."""

from __future__ import annotations

from typing import Iterable


def progress(items: Iterable, enabled: bool, desc: str, unit: str = "batch", total: int | None = None) -> Iterable:
    """``tqdm`` over ``items`` when enabled and installed, else the items themselves."""
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit=unit, total=total, leave=False, mininterval=1.0)
