"""The ``element-pose worker`` and ``jobs`` commands (see :mod:`element_pose.ops.worker`).

Parses arguments and calls the worker library; imports only the standard library
and :mod:`element_pose.ops.worker` at import time, so ``element-pose --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading

from element_pose.cli.common import non_negative, positive_int
from element_pose.core.redact import redact_url
from element_pose.ops.signals import STOP_SIGNALS, block_stop_signals
from element_pose.ops.worker import (
    DEFAULT_POLL_INTERVAL,
    DEVICE_ENV,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ORDERS,
    WorkerUsageError,
    clear_errors,
    release_stale_jobs,
    retry_errors,
    run_worker,
    set_device,
)

__all__ = ["cmd_jobs", "cmd_worker", "register_cli"]

log = logging.getLogger("element_pose.ops.worker")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _activate() -> None:
    from element_pose.ops.pipeline import load_pipeline

    load_pipeline()  # connects and activates the schemas


def _stop_requests() -> threading.Event:
    """Handle SIGTERM/SIGINT for the rest of the process: they set the returned event.

    :func:`run_worker` installs its own handler while it runs and puts this one
    back when it returns, so a stop signal that arrives while the worker starts
    or is already exiting asks it to stop (or is ignored) instead of killing it
    with the signal's default action (exit -15).
    """
    event = threading.Event()

    def handler(signum, frame) -> None:
        if not event.is_set():
            log.info("%s received: the worker is stopping", signal.Signals(signum).name)
        event.set()

    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, handler)
    return event


def cmd_worker(args: argparse.Namespace) -> int:
    """``element-pose worker``: run populate jobs."""
    logging.getLogger("element_pose.ops.worker").setLevel(
        min(logging.getLogger("element_pose.ops.worker").getEffectiveLevel(), logging.INFO))
    block_stop_signals()  # before imports start threads; let in between jobs
    stop = _stop_requests()  # a stop signal before or after run_worker never kills it
    try:
        set_device(args.device)  # before anything can import torch
        _activate()
        report = run_worker(
            args.table, max_jobs=args.max_jobs, priority=args.priority, order=args.order,
            poll_interval=args.poll_interval, once=args.once, stale_after=args.release_stale,
            restriction=args.restrict, stop_event=stop, qc=args.qc)
    except (WorkerUsageError, json.JSONDecodeError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    _out(f"worker: {sum(report.completed.values())} completed, "
         f"{sum(report.failed.values())} failed ({report.stop_reason})")
    for failure in report.failures:
        _out(f"  failed {failure.table} {failure.key}: {failure.message}")
    if report.failures:
        from element_pose.ops.jobs import retry_hint

        for table in sorted({f.table for f in report.failures}):
            _out(f"  to retry {table}: {retry_hint(table)}")
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_jobs(args: argparse.Namespace) -> int:
    """``element-pose jobs release-stale|clear-errors|retry``."""
    gc = gc_error = None
    try:
        _activate()
        if args.action == "release-stale":
            counts = release_stale_jobs(args.older_than, args.table,
                                        check_connections=not args.no_connection_check)
            verb = "released"
            if not args.no_gc:  # the files a killed worker wrote before its commit
                from element_pose.ops.store import collect_garbage

                try:  # the release is done: report it even if the store cannot be walked
                    gc = collect_garbage(min_age_s=args.older_than)
                except Exception as exc:
                    gc_error = f"store gc failed: {type(exc).__name__}: {exc}"
        elif args.action == "retry":
            counts = retry_errors(args.table, args.restrict)
            verb = "queued again"
        else:
            counts = clear_errors(args.table, args.restrict)
            verb = "cleared"
    except (WorkerUsageError, json.JSONDecodeError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    for name, count in counts.items():
        _out(f"{name}: {verb} {count}")
    _out(f"{verb} {sum(counts.values())} job(s)")
    if gc is not None:
        _out(f"store gc: removed {gc.deleted} orphaned file(s) of {gc.orphaned} "
             f"({gc.kept_recent} kept as too recent)")
    if gc_error:
        log.error("%s (run `element-pose store gc` once the store is reachable)",
                  redact_url(gc_error))
        return EXIT_FAILED
    return EXIT_OK


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``worker`` and ``jobs`` subcommands to the ``element-pose`` parser."""
    table_help = "table to work on, e.g. model.PoseEstimation (repeatable; default: all)"
    restrict_help = ("only keys matching this restriction: a JSON object such as "
                     "'{\"subject\": \"m1\"}' or a DataJoint restriction string")

    worker = subparsers.add_parser(
        "worker", help="run populate jobs from the job queues (many workers may share a DB)",
        description="Run populate jobs until stopped. SIGTERM/SIGINT finish the current job "
                    "and exit. Exit code 1 when a job failed.")
    worker.add_argument("--table", action="append", metavar="SCHEMA.TABLE", help=table_help)
    worker.add_argument("--max-jobs", type=positive_int, metavar="N",
                        help="stop after N jobs")
    worker.add_argument("--priority", type=int, metavar="P",
                        help="only jobs of priority <= P (lower is more urgent)")
    worker.add_argument("--order", choices=ORDERS, default="original",
                        help="job order within a priority (default: original)")
    worker.add_argument("--once", action="store_true",
                        help="exit when no job is pending instead of waiting for more")
    worker.add_argument("--device", metavar="DEV",
                        help="cpu, cuda, auto, a GPU index (0, 0,1) or cuda:N; sets "
                             f"CUDA_VISIBLE_DEVICES and {DEVICE_ENV}")
    worker.add_argument("--poll-interval", type=non_negative, default=DEFAULT_POLL_INTERVAL,
                        metavar="S", help="seconds between checks when idle "
                                          f"(default {DEFAULT_POLL_INTERVAL:.0f})")
    worker.add_argument("--release-stale", type=non_negative, metavar="SECONDS",
                        help="release reservations of dead workers older than SECONDS, "
                             "at start and before every pass")
    worker.add_argument("--restrict", metavar="RESTRICTION", help=restrict_help)
    worker.add_argument("--qc", action="store_true",
                        help="also render QC figures (analysis.PoseQC, FilteredPoseQC); "
                             "without --table they are left out")
    worker.set_defaults(func=cmd_worker)

    jobs = subparsers.add_parser("jobs", help="manage the job queues: release stale "
                                              "reservations, clear errors")
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    release = actions.add_parser(
        "release-stale", help="put jobs reserved by dead workers back in the queue")
    release.add_argument("--older-than", type=non_negative, required=True, metavar="S",
                         help="minimum age of the reservation in seconds")
    release.add_argument("--table", action="append", metavar="SCHEMA.TABLE", help=table_help)
    release.add_argument("--no-connection-check", action="store_true",
                         help="release by age alone, even if the reserving DB session is alive")
    release.add_argument("--no-gc", action="store_true",
                         help="do not remove orphaned store files (by default, files older "
                              "than --older-than that no row references are removed)")
    release.set_defaults(func=cmd_jobs)
    clear = actions.add_parser("clear-errors",
                               help="delete error rows so that those jobs are retried")
    clear.add_argument("--table", action="append", metavar="SCHEMA.TABLE", help=table_help)
    clear.add_argument("--restrict", metavar="RESTRICTION", help=restrict_help)
    clear.set_defaults(func=cmd_jobs)
    retry = actions.add_parser(
        "retry", help="clear a table's error jobs (only those) and queue them again",
        description="After fixing the cause of failed jobs: delete their error rows and "
                    "put them back in the queue, so the next worker or populate runs them.")
    retry.add_argument("table", nargs="+", metavar="SCHEMA.TABLE",
                       help="table(s) whose failed jobs to retry, e.g. model.PoseEstimation")
    retry.add_argument("--restrict", metavar="RESTRICTION", help=restrict_help)
    retry.set_defaults(func=cmd_jobs)
