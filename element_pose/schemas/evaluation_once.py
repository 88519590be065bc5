"""Evaluate a snapshot once, whatever name its model is registered under.

A trained task's model can be registered twice: by
:meth:`element_pose.schemas.train.ModelTraining.register_model`, and by
:meth:`element_pose.schemas.model.Model.insert_new_model` on the task's own project
(or two ``insert_new_model`` calls on one project and snapshot).  Both rows queue a
:class:`~element_pose.schemas.model.ModelEvaluation`; evaluating the same snapshot
file twice gives the same numbers and costs minutes.  Before evaluating,
:func:`evaluated_twin` looks for a model already evaluated with the same model files
(its source path) and the same snapshot file, both as the engine resolves them; when
there is one, :class:`ReusedEvaluation` copies its evaluation under the new name.

The tables are passed in (this module imports no schema module).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

__all__ = ["ReusedEvaluation", "evaluated_twin"]

log = logging.getLogger(__name__)


def _identity(engine: Any, description: Any) -> tuple[Path, Path] | None:
    """(model files, snapshot file) of a model, resolved; ``None`` when unreadable."""
    try:
        return (Path(description.source).resolve(),
                Path(engine.snapshot_file(description)).resolve())
    except Exception as exc:  # a moved project or a missing snapshot: no twin
        log.debug("no snapshot file for %s: %s", description.source, exc)
        return None


def evaluated_twin(evaluation: Any, models: Any, key: dict, engine_name: str,
                   description: Any) -> str | None:
    """Name of another, already evaluated model with the same files and snapshot file.

    Args:
        evaluation: The evaluation table (``ModelEvaluation``).
        models: The model table (``Model``, with ``description(key)``).
        key: The model to evaluate (``{"model_name": ...}``).
        engine_name: Its engine.
        description: Its :class:`~element_pose.engines.base.ModelDescription`.
    """
    from element_pose.engines import get_engine

    engine = get_engine(engine_name)
    if not hasattr(engine, "snapshot_file"):
        return None
    target = _identity(engine, description)
    if target is None:
        return None
    evaluated = models & evaluation.proj() & {"engine": engine_name}
    for name in sorted(str(n) for n in evaluated.to_arrays("model_name")):
        if name == key["model_name"]:
            continue
        if _identity(engine, models.description({"model_name": name})) == target:
            return name
    return None


@dataclasses.dataclass(frozen=True)
class ReusedEvaluation:
    """The evaluation of ``twin`` (same model files and snapshot), to copy."""

    twin: str

    def insert(self, evaluation: Any, key: dict, body_parts: Any) -> None:
        """Insert the twin's evaluation (per body part errors and element-pose's
        scores too) under ``key``."""
        row = (evaluation & {"model_name": self.twin}).fetch1()
        evaluation.insert1({**row, **key})
        parts = (evaluation.BodyPartError & {"model_name": self.twin}).to_dicts()
        evaluation.BodyPartError.insert(
            {**p, **key} for p in parts if p["body_part"] in set(body_parts))
        evaluation.Accuracy.insert(
            {**a, **key} for a in (evaluation.Accuracy & {"model_name": self.twin}).to_dicts())
        evaluation.BodyPartAccuracy.insert(
            {**a, **key}
            for a in (evaluation.BodyPartAccuracy & {"model_name": self.twin}).to_dicts()
            if a["body_part"] in set(body_parts))
        log.info("model %s: snapshot %s already evaluated as model %s; evaluation reused",
                 key["model_name"], row.get("evaluated_snapshot"), self.twin)
