"""``element-pose submit``: Slurm job arrays of workers; and the array task's own entry.

Each array task runs ``python -m element_pose.cli.submit run [worker options]``:
:func:`element_pose.ops.slurm.start_array_task` (connect, record the task, release
the reservations of dead workers), then ``element-pose worker`` in the same process.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from element_pose.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, non_negative, positive_int
from element_pose.ops.worker import DEFAULT_POLL_INTERVAL, ORDERS

__all__ = ["cmd_submit", "register_cli", "run_array_task"]

log = logging.getLogger(__name__)


def cmd_submit(args: argparse.Namespace) -> int:
    """``element-pose submit``: submit Slurm arrays of workers."""
    from element_pose.ops.slurm import SlurmError, SubmitOptions, batch_script, prepare, submit

    worker_args = ["--poll-interval", str(args.poll_interval), "--order", args.order]
    if args.once:
        worker_args.append("--once")
    if args.restrict:
        worker_args += ["--restrict", args.restrict]
    if args.max_jobs is not None:
        worker_args += ["--max-jobs", str(args.max_jobs)]
    options = SubmitOptions.from_settings(
        tables=args.table, workers=args.workers, partition=args.partition,
        gpu_partition=args.gpu_partition, time=args.time, mem=args.mem, cpus=args.cpus,
        gres=args.gres, log_dir=Path(args.log_dir) if args.log_dir else None,
        worker_args=worker_args, extra=args.sbatch_option or [])
    if args.dry_run:
        sys.stdout.write(batch_script(options))
        return EXIT_OK
    try:
        prepare(args.table, args.restrict)
        ids = submit(options, per_table=args.per_table)
    except SlurmError as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    for job_id in ids:
        sys.stdout.write(f"{job_id}\n")
    return EXIT_OK


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``submit`` to the ``element-pose`` parser."""
    p = subparsers.add_parser(
        "submit", help="submit Slurm job arrays of workers (sbatch)",
        description="Submit an array of `element-pose worker` jobs. Defaults for the "
                    "resources come from the slurm_* settings (`element-pose config`).")
    p.add_argument("--table", action="append", metavar="SCHEMA.TABLE",
                   help="table for the workers (repeatable; default all)")
    p.add_argument("--workers", type=positive_int, default=1, help="array size (default 1)")
    p.add_argument("--per-table", action="store_true",
                   help="one array per --table, each after the previous one ends")
    p.add_argument("--partition")
    p.add_argument("--gpu-partition", help="partition for arrays with a GPU table")
    p.add_argument("--time", help="time limit, e.g. 04:00:00")
    p.add_argument("--mem", help="memory per worker, e.g. 8G")
    p.add_argument("--cpus", type=positive_int, help="CPUs per worker")
    p.add_argument("--gres", help="generic resources of GPU tables, e.g. gpu:1")
    p.add_argument("--log-dir", help="folder of the job logs (default ./slurm-logs)")
    p.add_argument("--once", action="store_true",
                   help="workers exit when their queue is empty")
    p.add_argument("--poll-interval", type=non_negative, default=DEFAULT_POLL_INTERVAL)
    p.add_argument("--max-jobs", type=positive_int, help="jobs per worker before it exits")
    p.add_argument("--order", choices=ORDERS, default="random",
                   help="job order within a priority (default random: fewer collisions)")
    p.add_argument("--restrict", help="restriction of the keys (JSON object)")
    p.add_argument("--sbatch-option", action="append", metavar="OPT",
                   help="another sbatch option, e.g. --sbatch-option=--qos=long")
    p.add_argument("--dry-run", action="store_true", help="print the script, submit nothing")
    p.set_defaults(func=cmd_submit)


def run_array_task(worker_argv: Sequence[str]) -> int:
    """The array task: start it (record, release the dead's reservations), run the worker.

    Args:
        worker_argv: Options of ``element-pose worker``.

    Returns:
        The worker's exit code.
    """
    from element_pose.cli.app import main
    from element_pose.ops.signals import block_stop_signals
    from element_pose.ops.slurm import start_array_task
    from element_pose.settings import apply

    block_stop_signals()  # first: a SIGTERM during start-up waits for a safe point
    apply()
    tables = [worker_argv[i + 1] for i, arg in enumerate(worker_argv[:-1]) if arg == "--table"]
    start_array_task(tables or None)
    return main(["worker", *worker_argv])


def _main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "run":
        sys.stderr.write("usage: python -m element_pose.cli.submit run [worker options]\n")
        return EXIT_USAGE
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_array_task(argv[1:])


if __name__ == "__main__":
    sys.exit(_main())
