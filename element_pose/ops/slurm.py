"""Workers on a Slurm cluster: job arrays through plain ``sbatch``, and who holds which job.

``element-pose submit`` pipes a batch script to ``sbatch``.  Each array task runs
``python -m element_pose.cli.submit run`` (:func:`start_array_task`, then the worker):

1. waits for the database (``--wait-for-db``), connects and activates the pipeline
   (the user's configuration file applies);
2. records itself in ``<prefix>cluster.SlurmWorker`` (host, pid and database
   session with ``SLURM_JOB_ID``, ``SLURM_ARRAY_JOB_ID`` and ``SLURM_ARRAY_TASK_ID``),
   so that ``element-pose status`` can say which Slurm job holds a reservation and
   anyone can ask Slurm whether that job still runs;
3. releases the reservations of dead workers (:mod:`element_pose.ops.holders`: a
   cancelled, preempted or timed-out job; its transaction was rolled back, so no
   partial rows remain; the key goes back to the queue);
4. runs ``element-pose worker`` with the given options in the same process.

Cancelled jobs get SIGTERM first: the worker finishes its current key if it can
before Slurm's ``KillWait`` ends, else it is killed and step 3 of a later job (or
``element-pose jobs release-stale``) releases its key.  A Slurm epilog is not needed.

Secrets.  ``sbatch`` runs with the secrets (:func:`is_secret`: ``DJ_PASS``, the S3
secret keys, tokens, passwords) taken out of its environment, so ``--export=ALL``
copies none of them into Slurm's job state.  They travel in a credentials file
(:func:`write_credentials`, mode 0600 in ``~/.element-pose/credentials`` or
``ELEMENT_POSE_CREDENTIALS_DIR``) that the array task reads
(:func:`load_credentials`); a small job that runs after the arrays (``afterany``)
removes it.

Resources.  A GPU (``--gres``, ``gpu:1`` unless the ``slurm_gres`` setting says
otherwise, and the GPU partition) is asked for only when the array's pending work
needs one (:func:`work_needs_gpu`: training, evaluation, labelled videos, and
trigger-mode pose estimation; load-mode estimation needs none) and the cluster has
one (``sinfo -o %G``).  ``--mem`` is left out when no node has that much memory
(``sinfo -o %m``; a node without a memory setting has 1 MB).  What was chosen and
why is logged and printed by ``--dry-run``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from element_pose.ops.holders import SLURM_WORKER_DEFINITION, cluster_schema, worker_table

__all__ = [
    "CREDENTIALS_DIR_ENV",
    "CREDENTIALS_FILE_ENV",
    "DEFAULT_GPU_GRES",
    "GPU_TABLES",
    "SLURM_WORKER_DEFINITION",
    "SlurmError",
    "SubmitOptions",
    "batch_script",
    "cluster_schema",
    "decide_resources",
    "is_secret",
    "load_credentials",
    "prepare",
    "record_worker",
    "reservations",
    "start_array_task",
    "submit",
    "work_needs_gpu",
    "worker_table",
    "write_credentials",
]

log = logging.getLogger(__name__)

#: tables whose make may run a network: their workers may ask for a GPU
GPU_TABLES = frozenset({"train.ModelTraining", "model.ModelEvaluation", "model.PoseEstimation",
                        "model.LabeledVideo"})
DEFAULT_GPU_GRES = "gpu:1"
CREDENTIALS_DIR_ENV = "ELEMENT_POSE_CREDENTIALS_DIR"
CREDENTIALS_FILE_ENV = "ELEMENT_POSE_CREDENTIALS_FILE"
#: names of environment variables that hold secrets (besides any name matching _SECRET)
SECRET_NAMES = frozenset({"DJ_PASS", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                          "ELEMENT_POSE_S3_SECRET_KEY", "DANDI_API_KEY"})
_SECRET = re.compile(r"PASS(WORD|WD)?$|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL",
                     re.IGNORECASE)


class SlurmError(RuntimeError):
    """``sbatch`` is missing or refused the job."""


@dataclass
class SubmitOptions:
    """What to submit: one array of ``workers`` workers on ``tables``.

    Args:
        tables: Table names for the workers (``None``: all tables).
        workers: Array size.
        partition, gpu_partition, time, mem, cpus, gres: Slurm resources; ``gres``
            and ``gpu_partition`` apply only to arrays that use a GPU.
        job_name: Slurm job name.
        log_dir: Folder for the job logs (``%A_%a.log``).
        worker_args: Extra ``element-pose worker`` arguments.
        dependency: ``--dependency`` of the array (e.g. ``afterany:123``).
        extra: More ``sbatch`` options, passed as they are.
        gpu: Whether the array asks for a GPU (``None``: by its tables,
            :data:`GPU_TABLES`); set by :func:`decide_resources`.
        notes: What :func:`decide_resources` chose and why (comments of the script).
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
    gpu: bool | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_settings(cls, **given: Any) -> SubmitOptions:
        """Options given here, else the ``slurm_*`` settings (environment, config file)."""
        from element_pose.db.config import current_settings

        settings = current_settings()
        defaults = {"partition": settings.slurm_partition,
                    "gpu_partition": settings.slurm_gpu_partition,
                    "time": settings.slurm_time, "mem": settings.slurm_mem,
                    "gres": settings.slurm_gres}
        values = {**defaults, **{k: v for k, v in given.items() if v is not None}}
        return cls(**values)

    def uses_gpu(self) -> bool:
        """Whether the array asks for a GPU (without a decision: it runs a GPU table)."""
        if self.gpu is not None:
            return self.gpu
        return bool(set(self.tables or GPU_TABLES) & GPU_TABLES)


def batch_script(options: SubmitOptions, credentials: Path | None = None) -> str:
    """The ``sbatch`` script of one array.

    No secret is in it: ``credentials`` is the path of the file that holds them.
    """
    if options.workers < 1:
        raise ValueError("workers must be at least 1")
    gpu = options.uses_gpu()
    log_dir = (options.log_dir or Path.cwd() / "slurm-logs").resolve()
    lines = ["#!/bin/bash", *(f"# element-pose: {note}" for note in options.notes),
             f"#SBATCH --job-name={options.job_name}",
             f"#SBATCH --array=0-{options.workers - 1}",
             f"#SBATCH --output={log_dir}/%x-%A_%a.log",
             "#SBATCH --export=ALL"]  # of sbatch's environment: the secrets taken out
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
    lines += ["set -e", f"cd {shlex.quote(str(Path.cwd()))}"]
    if credentials is not None:
        lines.append(f"export {CREDENTIALS_FILE_ENV}={shlex.quote(str(credentials))}")
    lines += ["exec " + " ".join(shlex.quote(part) for part in command), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ resources
def _sinfo(field_format: str, partition: str | None) -> list[str] | None:
    """One ``sinfo`` column per node line (``None`` when ``sinfo`` cannot be asked)."""
    if shutil.which("sinfo") is None:
        return None
    command = ["sinfo", "-h", "-N", "-o", field_format]
    if partition:
        command += ["-p", partition]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        log.debug("sinfo: %s", result.stderr.strip())
        return None
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def cluster_has_gpu(partition: str | None = None) -> bool | None:
    """Whether a node (of ``partition``) has a GPU (``sinfo -o %G``); ``None``: unknown."""
    lines = _sinfo("%G", partition)
    if lines is None:
        return None
    return any("gpu" in line.lower() for line in lines)


def _megabytes(mem: str) -> float | None:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", mem, re.IGNORECASE)
    if not match:
        return None
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 ** 2}[match[2].upper()]
    return float(match[1]) * scale


def _node_memory_mb(partition: str | None) -> float | None:
    """The most memory of any node (``sinfo -o %m``, MB), ``None`` when unknown."""
    lines = _sinfo("%m", partition)
    values = [float(v.rstrip("+")) for v in lines or [] if v.rstrip("+").isdigit()]
    return max(values) if values else None


def work_needs_gpu(tables: Sequence[str] | None,
                   restriction: Any = None) -> tuple[bool, str]:
    """Whether the keys left to compute in ``tables`` need a GPU, and why.

    Training, evaluation and labelled videos always do; pose estimation only for
    trigger-mode tasks (load mode reads existing outputs).  Needs the pipeline.
    """
    from element_pose.ops.jobs import populated_tables

    available = populated_tables()
    names = [n for n in available if n in GPU_TABLES and (
        not tables or any(n == t or n.rsplit(".", 1)[-1] == t for t in tables))]
    for name in names:
        left = _left_to_compute(name, available[name], restriction)
        if left:
            kind = "trigger-mode tasks" if name == "model.PoseEstimation" else "keys"
            return True, f"{name} has {left} {kind} to compute"
    if names:
        return False, f"no GPU work pending in {', '.join(names)} (load-mode tasks need none)"
    return False, "no GPU table in the array"


def _left_to_compute(name: str, table, restriction: Any) -> int:
    """Keys of a GPU table still to compute that need the GPU."""
    if name == "model.PoseEstimation":
        from element_pose.schemas.model import PoseEstimationTask

        query = (PoseEstimationTask - table) & "task_mode = 'trigger'"
    else:
        query = table.key_source - table
    if restriction is not None:
        try:
            query = query & restriction
        except Exception as exc:  # the restriction names what this table lacks
            log.debug("%s: restriction not applied to the GPU check (%s)", name, exc)
    return len(query)


def decide_resources(options: SubmitOptions, restriction: Any = None) -> SubmitOptions:
    """Decide the GPU and memory requests of an array; log and record why.

    A GPU is asked for when the array's pending work needs one (:func:`work_needs_gpu`;
    the tables alone when the database cannot be read) and the cluster has one
    (``sinfo``; assumed when it cannot be asked).  ``--mem`` is dropped when no node has
    that much memory.  An explicit ``gpu`` on ``options`` is kept.

    Returns:
        A copy of ``options`` with ``gpu``, ``gres``, ``mem`` and ``notes`` set.
    """
    if isinstance(restriction, str) and restriction.strip().startswith("{"):
        restriction = json.loads(restriction)
    notes: list[str] = []
    gpu = options.gpu
    if gpu is None:
        try:
            gpu, why = work_needs_gpu(options.tables, restriction)
        except Exception as exc:  # no database (a dry run): the tables decide
            gpu, why = options.uses_gpu(), f"by the tables (pending work not read: {exc})"
        has = cluster_has_gpu(options.gpu_partition) if gpu else None
        if gpu and has is False:
            gpu, why = False, f"{why}, but the cluster has no GPU (sinfo -o %G): on CPU"
        notes.append(f"{'GPU' if gpu else 'no GPU'}: {why}")
    gres = (options.gres or DEFAULT_GPU_GRES) if gpu else None
    if gres:
        notes.append(f"--gres={gres}")
    mem = _fitting_mem(options.mem, options.gpu_partition if gpu else options.partition,
                       notes)
    decided = dataclasses.replace(options, gpu=gpu, gres=gres, mem=mem,
                                  notes=[*options.notes, *notes])
    for note in notes:
        log.info("%s: %s", options.job_name, note)
    return decided


def _fitting_mem(mem: str | None, partition: str | None, notes: list[str]) -> str | None:
    """``mem`` unless no node has that much (then ``None``, with a note)."""
    if not mem:
        return None
    wanted, most = _megabytes(mem), _node_memory_mb(partition)
    if wanted is not None and most is not None and wanted > most:
        notes.append(f"no --mem: {mem} asked, but no node has more than {most:.0f} MB "
                     "(sinfo -o %m; set RealMemory in slurm.conf)")
        return None
    return mem


# ------------------------------------------------------------------ secrets
def is_secret(name: str) -> bool:
    """Whether an environment variable holds a secret (kept out of Slurm's job state)."""
    if name in (CREDENTIALS_DIR_ENV, CREDENTIALS_FILE_ENV):  # where secrets are, not them
        return False
    return name in SECRET_NAMES or bool(_SECRET.search(name))


def write_credentials(environ: Mapping[str, str] | None = None) -> Path | None:
    """Write the secrets of ``environ`` to a new file only the user can read (0600).

    Returns:
        The file, or ``None`` when there is no secret to pass.
    """
    environ = os.environ if environ is None else environ
    secrets = {k: v for k, v in environ.items() if is_secret(k) and v}
    if not secrets:
        return None
    folder = Path(os.environ.get(CREDENTIALS_DIR_ENV)
                  or Path.home() / ".element-pose" / "credentials").expanduser()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    path = folder / f"slurm-{uuid.uuid4().hex}.json"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(secrets, handle)
    log.info("secrets for the jobs (%s) in %s (mode 0600)", ", ".join(sorted(secrets)), path)
    return path


def load_credentials(path: str | os.PathLike | None = None) -> list[str]:
    """Put the secrets of a credentials file into this process's environment.

    Args:
        path: The file (default ``ELEMENT_POSE_CREDENTIALS_FILE``; none: nothing to do).

    Returns:
        The names of the variables set.

    Raises:
        SlurmError: the file is missing or readable by others.
    """
    path = path or os.environ.get(CREDENTIALS_FILE_ENV)
    if not path:
        return []
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o777
        secrets = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SlurmError(f"cannot read the credentials file {path}: {exc} (it is removed "
                         "when the arrays it was written for end; submit again)") from exc
    if mode & 0o077:
        raise SlurmError(f"the credentials file {path} is readable by others "
                         f"(mode {mode:o}): refusing it")
    os.environ.update({str(k): str(v) for k, v in secrets.items()})
    log.info("read %s from %s", ", ".join(sorted(secrets)), path)
    return sorted(secrets)


def _public_environment() -> dict[str, str]:
    """sbatch's environment: every variable but the secrets (an empty one is no secret)."""
    return {k: v for k, v in os.environ.items() if not (is_secret(k) and v)}


# ------------------------------------------------------------------- submit
def submit(options: SubmitOptions, per_table: bool = False,
           restriction: Any = None) -> list[str]:
    """Decide the resources, submit the array(s); return the Slurm job ids.

    With ``per_table``, one array per table, each starting after the one before
    it ends (``--dependency=afterany``), so upstream keys exist when it starts.
    The secrets go to a credentials file (:func:`write_credentials`), removed by a
    small job that runs once every array has ended.

    Raises:
        SlurmError: when ``sbatch`` is missing or refuses the script.
    """
    credentials = write_credentials()
    try:
        ids = _submit_arrays(options, per_table, restriction, credentials)
    except BaseException:
        if credentials is not None:
            credentials.unlink(missing_ok=True)
        raise
    if credentials is not None:
        _remove_after(ids, credentials, options)
    return ids


def _submit_arrays(options: SubmitOptions, per_table: bool, restriction: Any,
                   credentials: Path | None) -> list[str]:
    if per_table and options.tables and len(options.tables) > 1:
        ids: list[str] = []
        for table in options.tables:
            one = dataclasses.replace(options, tables=[table],
                                      job_name=f"{options.job_name}-{table}",
                                      dependency=f"afterany:{ids[-1]}" if ids else
                                      options.dependency)
            ids += _submit_arrays(one, False, restriction, credentials)
        return ids
    log_dir = (options.log_dir or Path.cwd() / "slurm-logs").resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    options = decide_resources(options, restriction)
    job_id = _sbatch(["--parsable"], batch_script(options, credentials))
    log.info("submitted array %s: %d worker(s) on %s (logs in %s)", job_id, options.workers,
             ", ".join(options.tables or ["all tables"]), log_dir)
    return [job_id]


def _sbatch(arguments: list[str], script: str | None = None) -> str:
    """Run ``sbatch`` (without the secrets in its environment); return the job id."""
    try:
        result = subprocess.run(["sbatch", *arguments], input=script, capture_output=True,
                                text=True, timeout=120, env=_public_environment())
    except FileNotFoundError as exc:
        raise SlurmError("sbatch not found: is this a Slurm login node?") from exc
    if result.returncode != 0:
        raise SlurmError(f"sbatch refused the job: {result.stderr.strip()}")
    return result.stdout.strip().split(";")[0]


def _remove_after(ids: list[str], credentials: Path, options: SubmitOptions) -> None:
    """A small job that removes the credentials file once every array has ended."""
    arguments = ["--parsable", f"--dependency=afterany:{':'.join(ids)}",
                 f"--job-name={options.job_name}-cleanup", "--output=/dev/null",
                 "--time=00:05:00", "--ntasks=1",
                 f"--wrap=rm -f {shlex.quote(str(credentials))}"]
    if options.partition:
        arguments.append(f"--partition={options.partition}")
    try:
        job = _sbatch(arguments)
    except SlurmError as exc:
        log.warning("%s: remove %s yourself once the jobs have ended", exc, credentials)
        return
    log.info("job %s removes %s once the arrays have ended", job, credentials)


# ------------------------------------------------------- who holds which job
def prepare(tables: list[str] | None, restriction: str | None = None) -> None:
    """Create the worker table, the job queues and the S3 bucket once, before the array starts.

    Raises:
        element_pose.ops.s3.BucketMissing: the pose store's bucket is missing and
            may not be created.
    """
    from element_pose.ops import worker
    from element_pose.ops.pipeline import load_pipeline
    from element_pose.ops.s3 import ensure_bucket

    load_pipeline()  # connects and activates

    ensure_bucket()
    worker_table()
    worker.prepare_job_queues(tables, restriction)


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
    from element_pose.ops.holders import slurm_worker_rows

    if reserved is None:
        from element_pose.ops.jobs import populated_tables, reserved_jobs

        reserved = [job for name, table in populated_tables().items()
                    for job in reserved_jobs(name, table().jobs)]
    # read only: `status` creates nothing where no Slurm worker ever ran
    by_session = {(w["host"], int(w["pid"]), int(w["connection_id"])): w
                  for w in slurm_worker_rows()}
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
    """Release the reservations of dead workers (by liveness, never by age)."""
    from element_pose.ops import worker

    # creates the lazy job tables, retrying when workers of an array race to do it; no
    # refresh: the worker refreshes each queue when it comes to it
    worker.prepare_job_queues(tables, refresh=False)
    released = worker.release_stale_jobs(None, tables)
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
