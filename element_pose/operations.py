"""Operating the pipeline: which tables are populated, and the state of their jobs.

Works on whatever element-pose schemas are activated; imports no heavy packages.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "OPT_IN_TABLES",
    "RETRY_HINT",
    "job_status",
    "populated_tables",
    "retry_hint",
]

log = logging.getLogger(__name__)


def populated_tables() -> dict[str, Any]:
    """Auto-populated tables of the activated schemas, in dependency order."""
    from element_pose import analysis, model, multicam, train

    tables: dict[str, Any] = {}
    if model.schema.is_activated():
        tables["model.RecordingInfo"] = model.RecordingInfo
    if train.schema.is_activated():
        tables["train.ModelTraining"] = train.ModelTraining
    if model.schema.is_activated():
        tables["model.ModelEvaluation"] = model.ModelEvaluation
        tables["model.PoseEstimation"] = model.PoseEstimation
        tables["model.LabeledVideo"] = model.LabeledVideo
    if analysis.schema.is_activated():
        tables["analysis.FilteredPose"] = analysis.FilteredPose
        tables["analysis.PoseQC"] = analysis.PoseQC
        tables["analysis.FilteredPoseQC"] = analysis.FilteredPoseQC
    if multicam.schema.is_activated():
        tables["multicam.Calibration"] = multicam.Calibration
        tables["multicam.Triangulation"] = multicam.Triangulation
    for extra in _extra_tables():
        tables.update(extra())
    return tables


# Tables a plain worker (no ``--table``) leaves alone: they run for every row
# upstream, cost far more than the ingest they follow (PoseQC renders 4 figures
# per estimation) and are asked for explicitly (``worker --qc`` or ``--table``).
OPT_IN_TABLES = ("analysis.PoseQC", "analysis.FilteredPoseQC")

RETRY_HINT = ("fix the cause, then `element-pose jobs retry {table}` (optionally "
              "--restrict '{{...}}') so that the next worker or populate runs them again")


def retry_hint(table: str) -> str:
    """How to retry the failed jobs of ``table`` (for error messages and status)."""
    return RETRY_HINT.format(table=table)


_EXTRA_TABLE_PROVIDERS: list = []


def _extra_tables():
    return list(_EXTRA_TABLE_PROVIDERS)


def job_status(max_errors: int = 5) -> dict[str, dict[str, Any]]:
    """Done/remaining counts and reserved/error jobs (with messages) per table.

    Each table's entry lists at most ``max_errors`` error messages in ``errors``;
    ``more_errors`` counts the ones left out and ``retry`` says how to retry them.
    """
    report: dict[str, dict[str, Any]] = {}
    for name, table in populated_tables().items():
        remaining, total = table().progress()
        jobs = table().jobs
        n_errors = len(jobs.errors) if len(jobs) else 0
        errors = jobs.errors.to_dicts(limit=max_errors) if n_errors and max_errors > 0 else []
        key_names = [k for k in jobs.primary_key]
        report[name] = {
            "done": total - remaining,
            "remaining": remaining,
            "total": total,
            "reserved": len(jobs.reserved) if len(jobs) else 0,
            "error": n_errors,
            "errors": [
                {"key": {k: e[k] for k in key_names}, "message": e["error_message"]}
                for e in errors
            ],
            "more_errors": max(n_errors - len(errors), 0),
            "retry": retry_hint(name) if n_errors else "",
        }
    return report
