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
    "read_job_queues",
    "reserved_jobs",
    "retry_hint",
]

log = logging.getLogger(__name__)


def populated_tables() -> dict[str, Any]:
    """Auto-populated tables of the activated schemas, in dependency order."""
    from element_pose.schemas import analysis, model, multicam, refine, train

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
    if refine.schema.is_activated():
        tables["refine.SelectedFrames"] = refine.SelectedFrames
        tables["refine.LabellingSet"] = refine.LabellingSet
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
    return read_job_queues(max_errors)[0]


def read_job_queues(max_errors: int = 5) -> tuple[dict[str, dict[str, Any]], list[dict]]:
    """:func:`job_status` and the reserved jobs of every table, reading each job table once.

    Each job table is built once and queried once for its counts by status; its
    error rows and reserved rows are fetched only when there are some.

    Args:
        max_errors: Error messages listed per table.

    Returns:
        ``(status, reserved)``: :func:`job_status`'s report, and one dict per reserved
        job with ``table``, ``key``, ``host``, ``pid``, ``connection_id`` and
        ``reserved_time``.
    """
    report: dict[str, dict[str, Any]] = {}
    reserved: list[dict] = []
    for name, cls in populated_tables().items():
        table = cls()
        remaining, total = table.progress()
        jobs = table.jobs
        counts = jobs.progress()  # one GROUP BY status query
        n_errors = counts["error"]
        errors = jobs.errors.to_dicts(limit=max_errors) if n_errors and max_errors > 0 else []
        key_names = list(jobs.primary_key)
        if counts["reserved"]:
            reserved += reserved_jobs(name, jobs)
        report[name] = {
            "done": total - remaining,
            "remaining": remaining,
            "total": total,
            "reserved": counts["reserved"],
            "error": n_errors,
            "errors": [
                {"key": {k: e[k] for k in key_names}, "message": e["error_message"]}
                for e in errors
            ],
            "more_errors": max(n_errors - len(errors), 0),
            "retry": retry_hint(name) if n_errors else "",
            "opt_in": name in OPT_IN_TABLES,  # no plain worker runs it: not "to do" forever
        }
    return report, reserved


def reserved_jobs(name: str, jobs: Any) -> list[dict]:
    """The reserved jobs of one job table (one query).

    Args:
        name: The table's name (``"model.PoseEstimation"``).
        jobs: Its job table (``Table.jobs``).

    Returns:
        One dict per job: ``table``, ``key``, ``host``, ``pid``, ``connection_id`` and
        ``reserved_time``.
    """
    key_names = list(jobs.primary_key)
    return [{"table": name, "key": {k: job[k] for k in key_names},
             **{k: job[k] for k in ("host", "pid", "connection_id", "reserved_time")}}
            for job in jobs.reserved.to_dicts()]
