"""Workers on a Slurm cluster: job arrays through plain ``sbatch``, and who holds which job.

``element-pose submit`` pipes a batch script to ``sbatch`` (nothing is written
to disk; the job inherits the submitting environment, secrets included, with
``--export=ALL``).  Each array task runs ``python -m element_pose.cli.submit run``
(:func:`start_array_task`, then the worker):

1. connects and activates the pipeline (the user's configuration file applies);
2. records itself in ``<prefix>cluster.SlurmWorker`` (host, pid and database
   session with ``SLURM_JOB_ID``, ``SLURM_ARRAY_JOB_ID`` and ``SLURM_ARRAY_TASK_ID``),
   so that ``element-pose status`` can say which Slurm job holds a reservation;
3. releases the reservations of workers whose database session is gone (a
   preempted, cancelled or timed-out job: its transaction was rolled back, so no
   partial rows remain; the key goes back to the queue);
4. runs ``element-pose worker`` with the given options in the same process.

Cancelled jobs get SIGTERM first: the worker finishes its current key if it can
before Slurm's ``KillWait`` ends, else it is killed and step 3 of a later job
releases its key.  A Slurm epilog is therefore not needed.

GPU tables (:data:`GPU_TABLES`) get ``--gres`` (``--gres`` option or the
``slurm_gres`` setting, e.g. ``gpu:1``) and the GPU partition when one is set.
"""

from __future__ import annotations

import datetime
import logging
import os
import platform
import random
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "GPU_TABLES",
    "SlurmError",
    "SubmitOptions",
    "batch_script",
    "record_worker",
    "reservations",
    "start_array_task",
    "submit",
]

log = logging.getLogger(__name__)

#: tables whose make runs a network: their workers ask for a GPU
GPU_TABLES = frozenset({"train.ModelTraining", "model.ModelEvaluation", "model.PoseEstimation",
                        "model.LabeledVideo"})


class SlurmError(RuntimeError):
    """``sbatch`` is missing or refused the job."""


@dataclass
class SubmitOptions:
    """What to submit: one array of ``workers`` workers on ``tables``.

    Args:
        tables: Table names for the workers (``None``: all tables).
        workers: Array size.
        partition, gpu_partition, time, mem, cpus, gres: Slurm resources; ``gres``
            and ``gpu_partition`` apply only to arrays that include a GPU table.
        job_name: Slurm job name.
        log_dir: Folder for the job logs (``%A_%a.log``).
        worker_args: Extra ``element-pose worker`` arguments.
        dependency: ``--dependency`` of the array (e.g. ``afterany:123``).
        extra: More ``sbatch`` options, passed as they are.
    """

    tables: list[str] | None = None
    workers: int = 1
    partition: str | None = None
    gpu_partition: str | None = None
    time: str | None = None
    mem: str | None = None
    cpus: int | None = None
    gres: str | None = None
    job_name: str = "element-pose"
    log_dir: Path | None = None
    worker_args: list[str] = field(default_factory=list)
    dependency: str | None = None
    extra: list[str] = field(default_factory=list)

    @classmethod
    def from_settings(cls, **given: Any) -> SubmitOptions:
        """Options given here, else the ``slurm_*`` settings (environment, config file)."""
        env = os.environ.get
        defaults = {"partition": env("ELEMENT_POSE_SLURM_PARTITION"),
                    "gpu_partition": env("ELEMENT_POSE_SLURM_GPU_PARTITION"),
                    "time": env("ELEMENT_POSE_SLURM_TIME"),
                    "mem": env("ELEMENT_POSE_SLURM_MEM"),
                    "gres": env("ELEMENT_POSE_SLURM_GRES")}
        values = {**defaults, **{k: v for k, v in given.items() if v is not None}}
        return cls(**values)

    def uses_gpu(self) -> bool:
        """Whether the array runs a GPU table (every table when none is named)."""
        return bool(set(self.tables or GPU_TABLES) & GPU_TABLES)


def batch_script(options: SubmitOptions) -> str:
    """The ``sbatch`` script of one array (no secrets: they travel in the environment)."""
    if options.workers < 1:
        raise ValueError("workers must be at least 1")
    gpu = options.uses_gpu()
    log_dir = (options.log_dir or Path.cwd() / "slurm-logs").resolve()
    lines = ["#!/bin/bash", f"#SBATCH --job-name={options.job_name}",
             f"#SBATCH --array=0-{options.workers - 1}",
             f"#SBATCH --output={log_dir}/%x-%A_%a.log", "#SBATCH --export=ALL"]
    partition = (options.gpu_partition if gpu and options.gpu_partition
                 else options.partition)
    for flag, value in (("partition", partition), ("time", options.time),
                        ("mem", options.mem), ("cpus-per-task", options.cpus),
                        ("gres", options.gres if gpu else None),
                        ("dependency", options.dependency)):
        if value:
            lines.append(f"#SBATCH --{flag}={value}")
    lines += [f"#SBATCH {item}" for item in options.extra]
    command = [sys.executable, "-m", "element_pose.cli.submit", "run"]
    for table in options.tables or []:
        command += ["--table", table]
    command += options.worker_args
    lines += ["set -e", f"cd {shlex.quote(str(Path.cwd()))}",
              "exec " + " ".join(shlex.quote(part) for part in command), ""]
    return "\n".join(lines)


def submit(options: SubmitOptions, per_table: bool = False) -> list[str]:
    """Submit the array(s); return the Slurm job ids.

    With ``per_table``, one array per table, each starting after the one before
    it ends (``--dependency=afterany``), so upstream keys exist when it starts.

    Raises:
        SlurmError: when ``sbatch`` is missing or refuses the script.
    """
    if per_table and options.tables and len(options.tables) > 1:
        ids: list[str] = []
        for table in options.tables:
            one = SubmitOptions(**{**options.__dict__, "tables": [table],
                                   "job_name": f"{options.job_name}-{table}",
                                   "dependency": f"afterany:{ids[-1]}" if ids else
                                   options.dependency})
            ids += submit(one)
        return ids
    log_dir = (options.log_dir or Path.cwd() / "slurm-logs").resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    script = batch_script(options)
    try:
        result = subprocess.run(["sbatch", "--parsable"], input=script, capture_output=True,
                                text=True, timeout=120)
    except FileNotFoundError as exc:
        raise SlurmError("sbatch not found: is this a Slurm login node?") from exc
    if result.returncode != 0:
        raise SlurmError(f"sbatch refused the job: {result.stderr.strip()}")
    job_id = result.stdout.strip().split(";")[0]
    log.info("submitted array %s: %d worker(s) on %s (logs in %s)", job_id, options.workers,
             ", ".join(options.tables or ["all tables"]), log_dir)
    return [job_id]


# ------------------------------------------------------- who holds which job
_TABLE: dict[str, Any] = {}

SLURM_WORKER_DEFINITION = """
# A worker process started by Slurm: joins job reservations to Slurm job ids
host: varchar(255)               # as in the job tables (platform.node())
pid: int32
connection_id: int64             # database session id, as in the job tables
---
slurm_job_id: varchar(32)        # SLURM_JOB_ID
array_job_id = '': varchar(32)   # SLURM_ARRAY_JOB_ID
array_task_id = -1: int32        # SLURM_ARRAY_TASK_ID
started: datetime
"""


def worker_table():
    """The ``<prefix>cluster.SlurmWorker`` table (activated on first use)."""
    if "table" not in _TABLE:
        from element_pose.db.config import connect, import_datajoint, schema_prefix

        dj = import_datajoint()
        schema = dj.Schema(f"{schema_prefix()}cluster", connection=connect())

        class SlurmWorker(dj.Manual):
            definition = SLURM_WORKER_DEFINITION

        for attempt in range(5):  # array tasks may race to create it (PostgreSQL)
            try:
                _TABLE["table"] = schema(SlurmWorker)
                break
            except dj.DataJointError:
                if attempt == 4:
                    raise
                time.sleep(0.2 + random.random())
        _TABLE["schema"] = schema
    return _TABLE["table"]


def prepare(tables: list[str] | None, restriction: str | None = None) -> None:
    """Create the worker table and the job queues once, before the array starts."""
    from element_pose.ops import worker
    from element_pose.ops.pipeline import load_pipeline

    load_pipeline()  # connects and activates

    worker_table()
    worker.prepare_job_queues(tables, restriction)


def cluster_schema():
    """The activated ``<prefix>cluster`` schema, or ``None`` when not used in this process."""
    return _TABLE.get("schema")


def record_worker() -> dict | None:
    """Record this process as a Slurm worker (no-op outside a Slurm job)."""
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return None
    from element_pose.db.config import connect

    row = {"host": platform.node(), "pid": os.getpid(),
           "connection_id": int(connect().connection_id), "slurm_job_id": job,
           "array_job_id": os.environ.get("SLURM_ARRAY_JOB_ID", ""),
           "array_task_id": int(os.environ.get("SLURM_ARRAY_TASK_ID", -1)),
           "started": datetime.datetime.now().replace(microsecond=0)}
    table = worker_table()
    # a reused pid and session id (a long-lived server) replaces the old record
    (table & {k: row[k] for k in ("host", "pid", "connection_id")}).delete_quick()
    table.insert1(row)
    return row


def reservations(reserved: Sequence[dict] | None = None) -> list[dict]:
    """Reserved jobs of every table, with the Slurm job that holds each (when known).

    Args:
        reserved: The reserved jobs as :func:`element_pose.ops.jobs.read_job_queues`
            returns them (``element-pose status`` reads them once for both); read here
            when ``None``.

    Returns:
        One dict per reserved job: ``table``, ``key``, ``host``, ``pid``, ``slurm_job``
        (``""`` when no Slurm worker holds it) and ``reserved_time``.
    """
    from element_pose.db.config import connect, import_datajoint, schema_prefix

    if reserved is None:
        from element_pose.ops.jobs import populated_tables, reserved_jobs

        reserved = [job for name, table in populated_tables().items()
                    for job in reserved_jobs(name, table().jobs)]
    dj = import_datajoint()
    workers = []
    # read only: `status` creates nothing where no Slurm worker ever ran
    try:
        if "table" in _TABLE or f"{schema_prefix()}cluster" in dj.list_schemas(
                connection=connect()):
            workers = worker_table().to_dicts()
    except dj.DataJointError as exc:  # a schema without the table, or dropped since
        log.debug("no Slurm worker table to read: %s", exc)
        _TABLE.clear()
    by_session = {(w["host"], int(w["pid"]), int(w["connection_id"])): w for w in workers}
    rows = []
    for job in reserved:
        worker = by_session.get((job["host"], int(job["pid"]), int(job["connection_id"])))
        slurm = ""
        if worker:
            slurm = (f"{worker['array_job_id']}_{worker['array_task_id']}"
                     if worker["array_job_id"] else worker["slurm_job_id"])
        rows.append({"table": job["table"], "key": job["key"], "host": job["host"],
                     "pid": job["pid"], "slurm_job": slurm,
                     "reserved_time": job["reserved_time"]})
    return rows


def _release_dead(tables: list[str] | None) -> int:
    """Release the reservations of workers whose database session is gone."""
    from element_pose.db.config import connect
    from element_pose.ops import worker

    # creates the lazy job tables, retrying when workers of an array race to do it; no
    # refresh: the worker refreshes each queue when it comes to it
    worker.prepare_job_queues(tables, refresh=False)
    if worker.live_connection_ids(connect()) is None:
        log.warning("cannot list database sessions: not releasing stale reservations at "
                    "start (run `element-pose jobs release-stale --older-than S`)")
        return 0
    released = worker.release_stale_jobs(0, tables, check_connections=True)
    return sum(released.values())


def start_array_task(tables: Sequence[str] | None = None) -> int:
    """Start one array task: connect, record it, release the dead workers' reservations.

    Args:
        tables: The tables the task's worker will work on (``None``: all).

    Returns:
        The number of reservations released.
    """
    from element_pose.ops.pipeline import load_pipeline

    load_pipeline()  # connects and activates
    record_worker()
    released = _release_dead(list(tables) if tables else None)
    if released:
        log.warning("released %d reservation(s) of dead workers", released)
    return released
