"""The export's task gates: labelled faces loaded once, the torch model's outputs on them once, then one
record per gated file (:func:`.task_gates.task_deltas`)."""

from __future__ import annotations

import logging
from typing import Any

from facelivenet.edge_runtime.constants import DATA_ENV

from .task_gates import (Outputs, TaskData, TaskGateConfig, load_task_data, model_outputs, not_measured,
                         reported_images, task_deltas, used_images)

log = logging.getLogger(__name__)


class TaskRuns:
    """``gate(runner, layout)`` -> the ``task_gates`` record of a file, for one export."""

    def __init__(self, opts: Any, source: Any, progress: Any, precisions: Any = ()):
        from .pipeline import default_task_data

        self.opts = opts
        self.source = source
        self.progress = progress
        root = opts.task_data if opts.task_data is not None else default_task_data()
        self.reason = ("task gates switched off (--no-task-gates)" if not opts.task_gates
                       else "no file of a task-gated precision" if not precisions
                       else None if root is not None else f"no labelled data (--task-data or ${DATA_ENV})")
        self.cfg = (TaskGateConfig(root, fer_faces=opts.task_fer_faces, two_sided=opts.task_two_sided, seed=opts.seed)
                    if root is not None else None)
        self._data: TaskData | None = None
        self._ref: Outputs | None = None

    @property
    def wanted(self) -> bool:
        """True when there is labelled data to load (:meth:`load` does it, in its own progress step)."""
        return self.reason is None

    def load(self) -> None:
        """Align the labelled faces (cached) and run the torch model on them."""
        from .wrappers import torch_reference

        data_cfg = self.source.config.data
        align = (getattr(data_cfg, "expression_align", "center_crop"), getattr(data_cfg, "expression_upscale", 0))
        self._data = load_task_data(self.cfg, self.source.preprocess, self.source.blob.get("trained_on") or {},
                                    self.opts.detector, self.opts.cache_dir, align)
        if not self._data.any:
            self.reason = "; ".join(self._data.notes) or "no labelled set found"
            return
        self._ref = model_outputs(lambda x: torch_reference(self.source.model, x), "NCHW", self.source.preprocess,
                                  self._data, all_lfw=True)
        lfw = self._data.lfw
        sizes = ([f"LFW {len(reported_images(lfw))} faces of folds {', '.join(map(str, lfw.report))} "
                  f"({len(used_images(lfw))} with the threshold pairs)"] if lfw is not None else []) + [
            f"{name} {len(s.crops)} faces" for name, s in (("FER2013", self._data.fer), ("JAFFE", self._data.jaffe))
            if s is not None]
        self.progress.note("task gates on " + ", ".join(sizes))

    def gate(self, runner: Any, layout: str) -> dict[str, Any]:
        """The task-delta record of the file ``runner`` runs (its input ``layout``)."""
        if self.reason is None and self._data is None:
            self.reason = "labelled faces not loaded"
        if self.reason is not None:
            return not_measured(self.reason)
        return task_deltas(self.cfg, self._data, self._ref, model_outputs(runner, layout, self.source.preprocess,
                                                                          self._data))
