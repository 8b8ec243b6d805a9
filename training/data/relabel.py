"""Clean noisy identity labels with a teacher's descriptors, before the labels train anything.

Two kinds of error are found (``clean_identities``):

- an image far from the rest of its identity: its cosine to the mean descriptor of the
  identity's *other* images is below ``outlier_cosine`` (for a two-image identity, the two
  images disagree and both are dropped: nothing tells which one is right);
- two identity numbers that are one person: the cosine of their mean descriptors (after the
  outliers are gone) is at least ``merge_cosine``; such identities are merged (transitively).

Images the teacher could not describe (zero rows) are dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Relabelling:
    """The cleaned labels (-1 = dropped) and what moved."""

    labels: np.ndarray  # new label per image, -1 where dropped; a merged identity takes its smallest member's label
    undescribed: int = 0
    outliers: list[int] = field(default_factory=list)  # image indices dropped as far from their identity
    merges: list[list[int]] = field(default_factory=list)  # groups of original labels merged into one person

    def summary(self) -> dict:
        kept = self.labels >= 0
        return {"images_in": int(len(self.labels)), "images_kept": int(kept.sum()),
                "undescribed_dropped": self.undescribed, "outliers_dropped": len(self.outliers),
                "merged_groups": len(self.merges), "identities_merged_away": sum(len(g) - 1 for g in self.merges),
                "identities_out": int(len(np.unique(self.labels[kept])))}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def clean_identities(vectors: np.ndarray, labels: np.ndarray, outlier_cosine: float,
                     merge_cosine: float) -> Relabelling:
    """Drop the images far from their identity, merge identities that are one person (see the module doc)."""
    vectors = np.asarray(vectors, np.float64)
    labels = np.asarray(labels, np.int64).copy()
    if vectors.ndim != 2 or len(vectors) != len(labels):
        raise ValueError(f"need (N, D) vectors and N labels, got {vectors.shape} and {labels.shape}")
    described = np.linalg.norm(vectors, axis=1) > 0
    unit = _unit(vectors)
    out = Relabelling(labels=np.where(described, labels, -1), undescribed=int((~described).sum()))
    for lab in np.unique(out.labels[out.labels >= 0]):
        members = np.flatnonzero(out.labels == lab)
        if len(members) < 2:
            continue
        total = unit[members].sum(0)
        for k in members:
            rest = _unit(total - unit[k])
            if float(unit[k] @ rest) < outlier_cosine:
                out.outliers.append(int(k))
    out.labels[out.outliers] = -1
    ids = np.unique(out.labels[out.labels >= 0])
    if len(ids) < 2:
        return out
    centroids = _unit(np.stack([unit[out.labels == lab].sum(0) for lab in ids]))
    sims = centroids @ centroids.T
    parent = list(range(len(ids)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(*np.nonzero(np.triu(sims >= merge_cosine, 1))):
        ra, rb = find(int(a)), find(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for k in range(len(ids)):
        groups.setdefault(find(k), []).append(k)
    for root, members in groups.items():
        if len(members) > 1:
            out.merges.append([int(ids[m]) for m in members])
            for m in members[1:]:
                out.labels[out.labels == ids[m]] = ids[root]
    return out
