"""Populate workers: run the pipeline's computed tables from a job queue, on any number of hosts.

A worker loops over the auto-populated tables of the activated schemas
(:func:`element_pose.ops.jobs.populated_tables`, in dependency order) and runs
one job at a time with DataJoint's distributed populate
(``populate(key, reserve_jobs=True, suppress_errors=True, max_calls=1)``): each
job is reserved in the table's job queue (``Table.jobs``) before ``make()`` runs,
so any number of workers on any number of machines can share one database
without doing a job twice.  A failing job is recorded as ``error`` (with its
traceback) and is not retried until its error row is cleared
(:func:`retry_errors`, ``element-pose jobs retry TABLE``, which also queues it
again; or :func:`clear_errors`, ``element-pose jobs clear-errors``).

Tables.  Without ``tables`` a worker runs every auto-populated table except the
opt-in QC figures (:data:`element_pose.ops.jobs.OPT_IN_TABLES`; ``qc=True`` or
``--qc`` adds them).  It keeps one instance per table for its whole life, so
DataJoint builds each job table (and loads the dependency graph for it) once per
worker instead of for every job.

Stopping.  SIGTERM or SIGINT (``docker stop``, Ctrl-C) asks the worker to stop:
the job in progress runs to completion, then the worker exits cleanly.  During a
job both signals are held back (so neither DataJoint's own SIGTERM handler nor a
``KeyboardInterrupt`` can abort it half-way); to abort a job at once, kill the
worker (SIGKILL): no partial rows (``make_insert`` is one transaction), and its job
stays ``reserved`` until a worker starts or :func:`release_stale_jobs` (``element-pose
jobs release-stale``, which also collects the store files it left) runs.

Devices.  ``device`` (``element-pose worker --device``) chooses the accelerator
before anything imports torch: ``"cpu"`` hides every GPU; ``"0"``, ``"cuda:1"`` or
``"0,1"`` set ``CUDA_VISIBLE_DEVICES`` to those GPUs (seen by torch as ``cuda:0``,
...); ``"cuda"``/``"auto"`` leave the visible GPUs as they are.  The choice is also
exported as ``ELEMENT_POSE_DEVICE`` (``cpu``, ``cuda`` or ``auto``), the torch
device that the pose-estimation engine uses when a task's parameters name none.

This module imports only the standard library at import time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

from element_pose.core.util import DEVICE_ENV
from element_pose.ops.holders import (
    live_connection_ids,
    release_dead_holders,
    release_reservations,
)
from element_pose.ops.reconnect import (
    DEFAULT_WAIT_FOR_DB,
    DatabaseUnavailable,
    after_lost_connection,
    connection_lost,
    refresh_session_id,
    session_token,
    wait_for_database,
)
from element_pose.ops.signals import StopSignals as _StopSignals
from element_pose.ops.signals import block_stop_signals
from element_pose.ops.signals import keep_our_handlers as _keep_our_handlers

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_WAIT_FOR_DB",
    "DEVICE_ENV",
    "ORDERS",
    "DatabaseUnavailable",
    "JobFailure",
    "WorkerReport",
    "WorkerUsageError",
    "block_stop_signals",
    "clear_errors",
    "live_connection_ids",
    "prepare_job_queues",
    "release_stale_jobs",
    "retry_errors",
    "run_worker",
    "select_tables",
    "set_device",
    "wait_for_database",
]

log = logging.getLogger(__name__)

ORDERS = ("original", "reverse", "random")
DEFAULT_POLL_INTERVAL = 30.0
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_CANDIDATES = 20  # pending keys looked at per step


class WorkerUsageError(ValueError):
    """Bad worker arguments: an unknown table, order or device."""




@dataclasses.dataclass(frozen=True)
class JobFailure:
    """One job that raised in ``make()`` (it is now ``error`` in the table's job queue)."""

    table: str
    key: dict[str, Any]
    message: str


@dataclasses.dataclass
class WorkerReport:
    """What one :func:`run_worker` call did."""

    completed: dict[str, int] = dataclasses.field(default_factory=dict)
    failed: dict[str, int] = dataclasses.field(default_factory=dict)
    failures: list[JobFailure] = dataclasses.field(default_factory=list)
    released: int = 0
    passes: int = 0
    stop_reason: str = ""  # "idle" (once), "max_jobs", "signal", "stop_event"
    duration_s: float = 0.0

    @property
    def jobs(self) -> int:
        """Jobs attempted (completed + failed)."""
        return sum(self.completed.values()) + sum(self.failed.values())

    @property
    def ok(self) -> bool:
        """True when no job failed."""
        return not self.failures


# ------------------------------------------------------------------ tables
def select_tables(tables: Sequence[str] | None = None, *,
                  include_opt_in: bool = True) -> dict[str, Any]:
    """The populated tables to work on, in dependency order.

    Args:
        tables: Names like ``"model.PoseEstimation"`` (or a bare class name when it
            is unique); ``None`` or empty for every auto-populated table.
        include_opt_in: With no ``tables``, also the opt-in tables
            (:data:`element_pose.ops.jobs.OPT_IN_TABLES`, the QC figures).

    Raises:
        WorkerUsageError: a name matches no table (the message lists the known ones).
    """
    from element_pose.ops.jobs import OPT_IN_TABLES, populated_tables

    available = populated_tables()
    if not tables:
        return {n: t for n, t in available.items()
                if include_opt_in or n not in OPT_IN_TABLES}
    wanted: set[str] = set()
    for name in tables:
        matches = [n for n in available if n == name or n.rsplit(".", 1)[-1] == name]
        if len(matches) != 1:
            raise WorkerUsageError(
                f"unknown table {name!r}; populated tables: {', '.join(available) or '(none)'}")
        wanted.add(matches[0])
    return {n: t for n, t in available.items() if n in wanted}


# ----------------------------------------------------------------- devices
def set_device(device: str | None) -> str | None:
    """Select the accelerator for this process, see :func:`element_pose.core.util.set_device`.

    Raises:
        WorkerUsageError: an unrecognised device.
    """
    from element_pose.core.util import DeviceError
    from element_pose.core.util import set_device as _set_device

    try:
        return _set_device(device)
    except DeviceError as exc:
        raise WorkerUsageError(str(exc)) from exc


# ------------------------------------------------------------- job queues
def _as_restriction(restriction: Any) -> Any:
    if isinstance(restriction, str) and restriction.strip().startswith("{"):
        return json.loads(restriction)
    return restriction


def release_stale_jobs(
    older_than_s: float | None = None,
    tables: Sequence[str] | None = None,
    *,
    check_connections: bool = True,
) -> dict[str, int]:
    """Put the jobs reserved by dead workers back in the queue.

    A dead worker (SIGKILL, a lost machine, a cancelled Slurm job) leaves its job
    ``reserved``; this makes such jobs ``pending`` again, keeping their priority.
    Its transaction was rolled back by the server: no rows to clean up.

    Whether a holder is alive is asked of whoever knows (its Slurm job, its process on
    this host, else its database session: :class:`element_pose.ops.holders.HolderCheck`).

    Args:
        older_than_s: ``None``: liveness alone decides.  A number of seconds:
            reservations younger than this are kept, and holders that cannot be
            asked are released when their reservation is older (database server time).
        tables: Table names as in :func:`select_tables` (default: all).
        check_connections: ``False``: no liveness check, the age alone decides
            (``older_than_s`` needed), even for a live worker's long job.

    Returns:
        Number of jobs released per table (tables with none are omitted).
    """
    if older_than_s is not None and older_than_s < 0:
        raise WorkerUsageError("older_than_s must be >= 0")
    if not check_connections and older_than_s is None:
        raise WorkerUsageError("without the liveness check, give a minimum age (older_than_s)")
    return release_reservations(select_tables(tables), older_than_s, check_connections)


def clear_errors(tables: Sequence[str] | None = None, restriction: Any = None) -> dict[str, int]:
    """Delete the ``error`` rows of the job queues so that those jobs are retried.

    Args:
        tables: Table names as in :func:`select_tables` (default: all).
        restriction: Optional restriction of the keys (a dict, a JSON object string or
            a DataJoint restriction string).

    Returns:
        Number of error rows deleted per table (tables with none are omitted).
    """
    restriction = _as_restriction(restriction)
    cleared: dict[str, int] = {}
    for name, table in select_tables(tables).items():
        errors = table.jobs.errors
        if restriction is not None:
            errors = errors.restrict(table.key_source & restriction, semantic_check=False)
        count = errors.delete_quick(get_count=True)
        if count:
            cleared[name] = count
            log.info("%s: cleared %d error job(s); they will be retried", name, count)
    return cleared


def retry_errors(tables: Sequence[str], restriction: Any = None) -> dict[str, int]:
    """Clear the error jobs of ``tables`` (only those) and queue them again at once.

    Args:
        tables: Table names as in :func:`select_tables` (at least one).
        restriction: Optional restriction of the keys, as for :func:`clear_errors`.

    Returns:
        Number of failed jobs queued again per table (tables with none are omitted).

    Raises:
        WorkerUsageError: no table given, or an unknown one.
    """
    if not tables:
        raise WorkerUsageError("name the table(s) whose failed jobs to retry")
    cleared = clear_errors(tables, restriction)
    if cleared:
        prepare_job_queues(list(cleared), restriction)
    return cleared


def prepare_job_queues(tables: Sequence[str] | None = None, restriction: Any = None,
                       attempts: int = 5, *, refresh: bool = True) -> None:
    """Create and refresh the job queues (do this once before starting many workers).

    On PostgreSQL, two workers creating the same lazy job table at the same
    instant can crash one of them; this retries a few times.  With ``refresh``
    false, the queues are only created where missing (no keys are added).
    """
    _prepare(select_tables(tables), _as_restriction(restriction), attempts, refresh)


def _prepare(selected: dict[str, Any], restriction: Any, attempts: int = 5,
             refresh: bool = True) -> None:
    for name, table in selected.items():
        for attempt in range(attempts):
            try:
                if refresh:
                    _refresh(table, restriction)
                elif not table.jobs.is_declared:  # a failed try leaves it undeclared
                    table.jobs.declare()
                break
            except Exception as exc:
                if attempt == attempts - 1:
                    raise
                log.debug("%s: preparing the job queue failed (%s); retrying", name, exc)
                time.sleep(0.2 + random.random())


def _refresh(table, restriction) -> None:
    args = () if restriction is None else (restriction,)
    # delay=-1: new jobs are schedulable at once (DataJoint's own populate does the same)
    table.jobs.refresh(*args, delay=-1)


def _candidates(table, restriction, priority: int | None, order: str,
                skip: set[tuple]) -> list[dict]:
    """Pending keys to try next, most urgent first, in ``order`` within a priority."""
    jobs = table.jobs
    query = jobs.pending & "scheduled_time <= CURRENT_TIMESTAMP(3)"
    if restriction is not None:
        query = query.restrict(table.key_source & restriction, semantic_check=False)
    if priority is not None:
        query = query & f"priority <= {int(priority)}"
    pk = jobs.primary_key
    direction = "DESC" if order == "reverse" else "ASC"
    limit = len(skip) + (_CANDIDATES * 10 if order == "random" else _CANDIDATES)
    rows = query.proj("priority", "scheduled_time").to_dicts(
        order_by=["priority ASC", f"scheduled_time {direction}",
                  *(f"{k} {direction}" for k in pk)],
        limit=limit)
    rows = [r for r in rows if _frozen({k: r[k] for k in pk}) not in skip]
    if order == "random":
        random.shuffle(rows)
        rows.sort(key=lambda r: r["priority"])  # stable: random within a priority
    return [{k: r[k] for k in pk} for r in rows[:_CANDIDATES]]


def _frozen(key: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in key.items()))


# ------------------------------------------------------------------ worker
def run_worker(
    tables: Sequence[str] | None = None,
    *,
    max_jobs: int | None = None,
    priority: int | None = None,
    order: str = "original",
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    once: bool = False,
    device: str | None = None,
    stale_after: float | None = None,
    restriction: Any = None,
    stop_event: threading.Event | None = None,
    qc: bool = False,
) -> WorkerReport:
    """Run populate jobs until stopped (or, with ``once``, until none is left).

    Needs activated schemas (``from workflow import pipeline``) and, to handle
    SIGTERM/SIGINT, the main thread (DataJoint's distributed populate needs it too).

    Args:
        tables: Table names (``"model.PoseEstimation"``); default all, in dependency order.
        max_jobs: Stop after this many jobs (completed or failed).
        priority: Only run jobs whose priority is at most this (lower is more urgent;
            new jobs get ``dj.config["jobs.default_priority"]``, 5 by default).
        order: Order of the jobs within a priority: ``"original"`` (oldest first),
            ``"reverse"`` (newest first) or ``"random"`` (fewer collisions between
            many workers).
        poll_interval: Seconds to wait when there is nothing to do.
        once: Exit when no job is pending instead of waiting for more.
        device: Accelerator for this worker, see :func:`set_device`.
        stale_after: When set, release reservations older than this many seconds of
            dead workers (:func:`release_stale_jobs`) before every pass.
        restriction: Only jobs matching this restriction (a dict such as
            ``{"subject": "m1"}``, a JSON object string, or a DataJoint restriction
            string), applied to every table's key source.
        stop_event: Stop (after the current job) when this event is set.
        qc: Without ``tables``, also run the opt-in QC tables (figures per estimation).

    Returns:
        What was done.

    Raises:
        WorkerUsageError: bad arguments.
    """
    _check_options(order, max_jobs, poll_interval, stale_after)
    set_device(device)
    restriction = _as_restriction(restriction)
    selected = _selected_tables(tables, qc, restriction)
    started = time.monotonic()
    flag = threading.Event()
    signals = _StopSignals(flag)
    run = _Run(selected, restriction, priority, order, max_jobs, poll_interval, once,
               stale_after, signals, flag, stop_event)
    log.info("worker %s@%s starting on %s", os.getpid(), _hostname(), ", ".join(selected))
    with signals:
        _prepare(selected, restriction, refresh=False)  # each pass refreshes its queues
        run.report.released += release_dead_holders(selected)
        run.loop()
    report = run.report
    report.duration_s = time.monotonic() - started
    log.info("worker %s stopping (%s%s): %d completed, %d failed in %.1f s", os.getpid(),
             report.stop_reason, f" {signals.signal_name}" if signals.signal_name else "",
             sum(report.completed.values()), sum(report.failed.values()), report.duration_s)
    return report


def _check_options(order: str, max_jobs: int | None, poll_interval: float,
                   stale_after: float | None) -> None:
    """Refuse bad worker options before anything starts."""
    if order not in ORDERS:
        raise WorkerUsageError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    if max_jobs is not None and max_jobs < 1:
        raise WorkerUsageError("max_jobs must be at least 1")
    if poll_interval < 0:
        raise WorkerUsageError("poll_interval must be >= 0")
    if stale_after is not None and stale_after < 0:
        raise WorkerUsageError("stale_after must be >= 0")


def _selected_tables(tables: Sequence[str] | None, qc: bool, restriction: Any) -> dict[str, Any]:
    """One instance per table for the worker's life, restricted where the key allows.

    DataJoint caches its job table (and so the dependency graph loaded to build it) per
    instance, not per class.
    """
    selected = {name: table() for name, table in
                select_tables(tables, include_opt_in=qc).items()}
    if not selected:
        raise WorkerUsageError("no populated tables: are the schemas activated?")
    if restriction is not None:
        selected = _restrictable(selected, restriction, explicit=bool(tables))
    return selected


@dataclasses.dataclass
class _Run:
    """One worker's passes over its queues until it is stopped, idle (once) or done."""

    selected: dict[str, Any]
    restriction: Any
    priority: int | None
    order: str
    max_jobs: int | None
    poll_interval: float
    once: bool
    stale_after: float | None
    signals: Any
    flag: threading.Event
    stop_event: threading.Event | None
    report: WorkerReport = dataclasses.field(default_factory=WorkerReport)

    def stopping(self) -> bool:
        """Whether a signal or the caller's event asks the worker to stop."""
        self.signals.checkpoint()
        return self.flag.is_set() or (self.stop_event is not None and self.stop_event.is_set())

    def limit_reached(self) -> bool:
        """Whether ``max_jobs`` jobs were run."""
        return self.max_jobs is not None and self.report.jobs >= self.max_jobs

    def loop(self) -> None:
        """Pass over the queues until stopped; record why the worker stopped."""
        idle_logged = False
        while not self.stopping() and not self.limit_reached():
            self.report.passes += 1
            done = self._pass()
            if done is None:  # the pass failed and was logged; wait and try again
                continue
            if done:
                idle_logged = False
                continue
            if self.once:
                self.report.stop_reason = "idle"
                break
            if not idle_logged:
                log.info("nothing to do; checking every %.0f s", self.poll_interval)
                idle_logged = True
            _sleep(self.poll_interval, self.stopping)  # lets signals in every 0.25 s
        if not self.report.stop_reason:
            self.report.stop_reason = self._stop_reason()

    def _pass(self) -> int | None:
        """One pass: jobs done, or ``None`` when it failed (retried after a back-off)."""
        from element_pose.db.headings import retry_on_stale_lineage

        try:
            return retry_on_stale_lineage(self._run_pass)
        except Exception as exc:
            if self.once:
                raise
            backoff = max(self.poll_interval, 5.0)
            log.error("worker pass failed (%s: %s); retrying in %.0f s",
                      type(exc).__name__, exc, backoff)
            log.debug("traceback", exc_info=True)
            _sleep(backoff, self.stopping)
            return None

    def _run_pass(self) -> int:
        """One pass (headings read before their lineage existed are read again, once)."""
        if self.stale_after is not None:
            released = release_reservations(self.selected, self.stale_after)
            self.report.released += sum(released.values())
        return _one_pass(self.selected, self.restriction, self.priority, self.order,
                         self.report, self.stopping, self.limit_reached)

    def _stop_reason(self) -> str:
        if self.flag.is_set():
            return "signal"
        if self.stop_event is not None and self.stop_event.is_set():
            return "stop_event"
        return "max_jobs"


def _restrictable(selected: dict[str, Any], restriction: Any, explicit: bool) -> dict[str, Any]:
    """The tables that ``restriction`` applies to; the others are left out (with a log line).

    A restriction such as ``{"subject": "m1"}`` or ``"subject = 'm1'"`` means "only
    this subject's jobs": a table without a ``subject`` (``ModelEvaluation``) has none,
    instead of all of them (a dict) or an error (a string).

    Raises:
        WorkerUsageError: a table named explicitly cannot take the restriction.
    """
    from datajoint.errors import DataJointError

    kept: dict[str, Any] = {}
    for name, table in selected.items():
        source = table.key_source
        if isinstance(restriction, dict):
            ok = bool(set(restriction) & set(source.heading.names))
            reason = f"has none of {', '.join(sorted(restriction))}"
        else:
            try:
                source & restriction  # checks the attributes it names
                ok, reason = True, ""
            except DataJointError as exc:
                ok, reason = False, str(exc)
        if ok:
            kept[name] = table
        elif explicit:
            raise WorkerUsageError(f"--restrict does not apply to {name}: {reason}")
        else:
            log.info("%s left out: the restriction does not apply to it (%s)", name, reason)
    return kept


def _one_pass(selected, restriction, priority, order, report, stopping, limit_reached) -> int:
    """Run jobs of every table in turn until none is pending; return how many ran."""
    done = 0
    for name, table in selected.items():
        if stopping() or limit_reached():
            break
        _refresh(table, restriction)
        skip: set[tuple] = set()
        while not stopping() and not limit_reached():
            keys = _candidates(table, restriction, priority, order, skip)
            if not keys:
                break
            for key in keys:
                ran = _run_job(name, table, key, report)
                if ran:
                    done += 1
                    break
                # taken by another worker, or no longer in the key source: not again
                skip.add(_frozen(key))
    return done


def _run_job(name: str, table, key: dict, report: WorkerReport) -> bool:
    """Reserve and make one key; False when another worker had it or it is not to do."""
    from element_pose.ops.jobs import retry_hint

    start, session = time.monotonic(), session_token(table.connection)
    try:
        with _keep_our_handlers(threading.current_thread() is threading.main_thread()):
            result = table.populate(key, reserve_jobs=True, suppress_errors=True, max_calls=1,
                                    refresh=False)
    except Exception as exc:  # make() errors are suppressed: this is the job bookkeeping
        if not connection_lost(table.connection, exc):
            raise
        result = after_lost_connection(name, table, key, exc)
    refresh_session_id(table.connection, session)
    seconds = time.monotonic() - start
    if result["success_count"]:
        report.completed[name] = report.completed.get(name, 0) + 1
        log.info("%s %s: done in %.1f s (%d done so far)", name, key, seconds,
                 sum(report.completed.values()))
        return True
    if result["error_list"]:
        error_key, message = result["error_list"][0]
        report.failed[name] = report.failed.get(name, 0) + 1
        report.failures.append(JobFailure(name, dict(error_key), str(message)))
        log.error("%s %s: failed after %.1f s: %s (%s)", name, key, seconds, message,
                  retry_hint(name))
        return True
    return False


def _sleep(seconds: float, stopping) -> None:
    deadline = time.monotonic() + seconds
    while not stopping():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.25))


def _hostname() -> str:
    import platform

    return platform.node()
