"""``element-pose submit``: Slurm job arrays of workers; and the array task's own entry.

Each array task runs ``python -m element_pose.cli.submit run [worker options]``: reads
the secrets from the credentials file written at submit time
(:func:`element_pose.ops.slurm.load_credentials`), waits for the database
(``--wait-for-db``), :func:`element_pose.ops.slurm.start_array_task` (connect, record
the task, release the reservations of dead workers), then ``element-pose worker`` in
the same process.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from element_pose.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, non_negative, positive_int
from element_pose.ops.worker import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WAIT_FOR_DB,
    ORDERS,
    DatabaseUnavailable,
    wait_for_database,
)

__all__ = ["cmd_submit", "register_cli", "run_array_task"]

log = logging.getLogger(__name__)


def cmd_submit(args: argparse.Namespace) -> int:
    """``element-pose submit``: submit Slurm arrays of workers."""
    from element_pose.ops.s3 import BucketMissing
    from element_pose.ops.slurm import SlurmError, prepare, submit

    options = _options(args)
    if args.dry_run:
        return _dry_run(options, args.restrict)
    try:
        prepare(args.table, args.restrict)
        ids = submit(options, per_table=args.per_table, restriction=args.restrict)
    except (SlurmError, BucketMissing) as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    for job_id in ids:
        sys.stdout.write(f"{job_id}\n")
    return EXIT_OK


def _options(args: argparse.Namespace):
    from element_pose.ops.slurm import SubmitOptions

    worker_args = ["--poll-interval", str(args.poll_interval), "--order", args.order]
    if args.once:
        worker_args.append("--once")
    if args.restrict:
        worker_args += ["--restrict", args.restrict]
    if args.max_jobs is not None:
        worker_args += ["--max-jobs", str(args.max_jobs)]
    return SubmitOptions.from_settings(
        tables=args.table, workers=args.workers, partition=args.partition,
        gpu_partition=args.gpu_partition, time=args.time, mem=args.mem, cpus=args.cpus,
        gres=args.gres, log_dir=Path(args.log_dir) if args.log_dir else None,
        worker_args=worker_args, extra=args.sbatch_option or [])


def _dry_run(options, restriction: str | None) -> int:
    """Print the batch script, with what was chosen and why (its ``# element-pose:`` lines)."""
    from element_pose.ops.slurm import batch_script, decide_resources

    try:
        from element_pose.ops.pipeline import load_pipeline

        load_pipeline()  # to read the pending work; a dry run also works without a database
    except Exception as exc:
        log.warning("no database (%s): the GPU is chosen by the tables alone", exc)
    sys.stdout.write(batch_script(decide_resources(options, restriction)))
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
    p.add_argument("--gres", help="generic resources of arrays whose pending work needs a GPU "
                                  "(default gpu:1; none when the cluster has no GPU)")
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
    p.add_argument("--dry-run", action="store_true",
                   help="print the script (with the resources chosen and why), submit nothing")
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
    from element_pose.ops.slurm import SlurmError, load_credentials, start_array_task

    block_stop_signals()  # first: a SIGTERM during start-up waits for a safe point
    try:
        load_credentials()  # the secrets that sbatch was not given
    except SlurmError as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    tables = _option_values(worker_argv, "--table")
    waits = _option_values(worker_argv, "--wait-for-db")
    try:
        wait_for_database(float(waits[-1]) if waits else DEFAULT_WAIT_FOR_DB)
    except DatabaseUnavailable as exc:
        log.error("%s", exc)
        return EXIT_FAILED
    start_array_task(tables or None)
    return main(["worker", *worker_argv])


def _option_values(argv: Sequence[str], option: str) -> list[str]:
    """The values of a repeatable ``--option VALUE`` (or ``--option=VALUE``) in ``argv``."""
    values = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == option]
    return values + [arg.split("=", 1)[1] for arg in argv if arg.startswith(option + "=")]


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
