"""The resolved settings of one benchmark run (saved as ``config.json`` next to the report)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import BenchError
from .latency import DEFAULT_RUNS, DEFAULT_WARMUP, QUICK_RUNS, QUICK_WARMUP

MAX_THREADS = 256


class TimedRuns:
    """``timed_runs`` / ``warmup_runs`` of a config dataclass with ``runs``, ``warmup`` and ``quick`` fields."""

    runs: int | None
    warmup: int | None
    quick: bool

    @property
    def timed_runs(self) -> int:
        return self.runs if self.runs is not None else (QUICK_RUNS if self.quick else DEFAULT_RUNS)

    @property
    def warmup_runs(self) -> int:
        return self.warmup if self.warmup is not None else (QUICK_WARMUP if self.quick else DEFAULT_WARMUP)


def timed_config_dict(cfg: Any) -> dict[str, Any]:
    """A run config as JSON-ready values: paths as strings, threads as a list, the resolved run counts."""
    d = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    d["threads"] = list(cfg.threads)
    d["runs"], d["warmup"] = cfg.timed_runs, cfg.warmup_runs
    return d


@dataclass(frozen=True)
class BenchConfig(TimedRuns):
    """What ``facelive-bench`` measures and how."""

    bundle: Path
    checkpoint: Path | None = None  # None: the shipped default model
    data: Path | None = None
    detector: str | None = None
    threads: tuple[int, ...] = (1,)
    quick: bool = False
    runs: int | None = None  # None: 200, or 30 with quick
    warmup: int | None = None  # None: 20, or 5 with quick
    out: Path | None = None
    cache_dir: Path | None = None
    seed: int = 0
    isolate: bool = True  # each timed row in its own process (own RSS, threads, load time)
    peers: bool = True
    peer_names: tuple[str, ...] | None = None  # None: every peer of peers.PEERS
    dlib: bool = True
    accuracy: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = timed_config_dict(self)
        d["peer_names"] = None if self.peer_names is None else list(self.peer_names)
        return d


def parse_threads(text: str) -> tuple[int, ...]:
    """``"1,2"`` -> (1, 2), sorted and unique; BenchError naming the bad item."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise BenchError("--threads needs at least one thread count, e.g. --threads 1,2")
    out = set()
    for item in items:
        if not item.isdigit() or not 1 <= int(item) <= MAX_THREADS:
            raise BenchError(f"--threads: {item!r} is not a thread count from 1 to {MAX_THREADS}")
        out.add(int(item))
    return tuple(sorted(out))


def parse_peers(text: str, valid: tuple[str, ...]) -> tuple[str, ...]:
    """``"mobilefacenet,facenet_irv1"`` -> the names in registry order; BenchError naming the valid ones."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    unknown = [t for t in items if t not in valid]
    if not items or unknown:
        raise BenchError(f"--peers: unknown peer {', '.join(unknown) or '(none given)'}; valid: {', '.join(valid)}")
    return tuple(v for v in valid if v in items)
