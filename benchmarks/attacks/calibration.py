"""Enrollment of every subject and the verification thresholds, chosen without the reported sessions.

Enrollment runs the runtime's own :func:`enroll_frames` on each subject's
enrollment images (placed on the canvas without jitter) into a real
:class:`TemplateStore`; the templates are read back from the store.

The bundle's threshold is calibrated on LFW and does not transfer to JAFFE,
so the suite calibrates its own, leave-one-subject-out: the threshold used in
the sessions enrolled as subject S is the one reaching the target FAR
(:func:`metrics.tar_at_far`) on still-image pairs of the OTHER subjects only:
(template of U, unjittered image of V) for U, V != S; genuine when U == V
(U's enrollment images excluded), impostor otherwise. No session frame and no
image of S takes part in choosing S's threshold.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from facelivenet.edge_runtime import metrics
from facelivenet.edge_runtime.enrollment import enroll_frames
from facelivenet.edge_runtime.face_pipeline import FacePipeline
from facelivenet.edge_runtime.sources import Frame
from facelivenet.edge_runtime.store import TemplateStore

from .data import Subject
from .render import BASE, FrameSpec, Renderer

log = logging.getLogger(__name__)


def still_frame(renderer: Renderer, path: str) -> np.ndarray:
    """``path`` placed on the canvas where sessions put faces, without jitter."""
    return renderer.render(FrameSpec((BASE.layer(path),)))


def enroll_subjects(pipeline: FacePipeline, renderer: Renderer, store: TemplateStore,
                    subjects: Sequence[Subject]) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Enroll every subject; returns the templates read back from the store and the rejected images."""
    templates, rejected = {}, []
    for s in subjects:
        frames = [Frame(k, float(k), still_frame(renderer, p), p) for k, p in enumerate(s.enroll)]
        result = enroll_frames(pipeline, store, s.name, frames)
        rejected += [{"subject": s.name, **r} for r in result.rejected]
        templates[s.name] = store.template(s.name, pipeline.model.fingerprint).template
    return templates, rejected


def still_embeddings(pipeline: FacePipeline, renderer: Renderer,
                     subjects: Sequence[Subject]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Embedding of every image that passes detection and the quality gates; the others are listed."""
    out, failed = {}, []
    for s in subjects:
        for path in s.all_images:
            a = pipeline.analyze(still_frame(renderer, path), track=False)
            if a.analysed:
                out[path] = a.embedding
            else:
                failed.append(f"{path}: {','.join(a.reasons)}")
    return out, failed


def loso_thresholds(subjects: Sequence[Subject], templates: dict[str, np.ndarray],
                    embeddings: dict[str, np.ndarray], far: float) -> dict[str, dict]:
    """Per subject S: the threshold at ``far`` on the pairs of the other subjects (module docstring)."""
    out = {}
    for s in subjects:
        others = [u for u in subjects if u.name != s.name]
        scores, labels = [], []
        for u in others:
            enrolled = set(u.enroll)
            for v in others:
                paths = [p for p in v.all_images if p in embeddings and not (v is u and p in enrolled)]
                if paths:
                    scores.extend(np.stack([embeddings[p] for p in paths]) @ templates[u.name])
                    labels.extend([v is u] * len(paths))
        r = metrics.tar_at_far(scores, labels, far)
        out[s.name] = {"threshold": r.threshold, "far": r.far, "tar": r.tar,
                       "genuine_pairs": r.n_genuine, "impostor_pairs": r.n_impostor}
        log.info("subject %s: threshold %.4f (TAR %.3f at FAR %.4f on %d/%d pairs of the others)", s.name,
                 r.threshold, r.tar, r.far, r.n_genuine, r.n_impostor)
    return out
