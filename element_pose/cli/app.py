"""The ``element-pose`` command line: parse arguments, call the library, report.

Exit codes: 0 success, 1 the work failed (errors are reported), 2 bad usage or
configuration.  ``--help`` never touches the database.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence

from element_pose.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    key_restriction,
    out,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CommandError",
    "build_parser",
    "cmd_dandi_sync",
    "cmd_db",
    "cmd_demo",
    "cmd_export",
    "cmd_status",
    "main",
]

log = logging.getLogger("element_pose.cli")



# ----------------------------------------------------------------- commands
def cmd_db(args: argparse.Namespace) -> int:
    """Start, stop or report the embedded PostgreSQL server; migrate the tables."""
    from element_pose.db import embedded

    if args.action == "migrate":
        from element_pose.ops.migrate import migrate

        for line in migrate().lines():
            out(line)
    elif args.action == "start":
        info = embedded.start()
        out(f"embedded PostgreSQL running: socket {info.socket_dir} port {info.port} "
             f"(data {info.pgdata})")
    elif args.action == "stop":
        stopped = embedded.stop()
        out("stopped" if stopped else "not running")
    else:
        info = embedded.status()
        if info is None:
            out(f"not running (data directory {embedded.pgdata_dir()})")
            return EXIT_FAILED
        out(f"running: pid {info.pid}, socket {info.socket_dir}, port {info.port}, "
             f"data {info.pgdata}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the pipeline on generated sample data and print the per body part summary."""
    from pathlib import Path

    from element_pose.ops.demo import run_demo

    summary = run_demo(mode=args.mode, root=Path(args.root) if args.root else None,
                       n_frames=args.frames, fresh=args.fresh)
    from element_pose.cli.config import remember_demo_settings

    remember_demo_settings()  # so that the README's next command finds the demo's data
    for note in summary.attrs.get("reused", []):
        out(f"{note}; pass --fresh to make it again")
    out(summary.to_string(index=False))
    acc = summary.attrs.get("accuracy")
    if acc:
        out(f"accuracy against the generator's known positions (all body parts): median "
             f"{acc['median_px']:.2f} px, {acc['within_2px']:.1f}% within 2 px, "
             f"{acc['within_5px']:.1f}% within 5 px")
    return EXIT_OK


def _print_queues(report: dict) -> None:
    """The job table of ``element-pose status``: one line per table, then its notes."""
    out(f"\n{'table':<28}{'done':>7}{'to do':>7}{'reserved':>10}{'error':>7}")
    for table, row in report.items():
        out(f"{table:<28}{row['done']:>7}{row['remaining']:>7}{row['reserved']:>10}"
            f"{row['error']:>7}")
        if row.get("opt_in") and row["remaining"]:
            out(f"    opt-in: workers run it only with `worker --qc` or `--table {table}`")
        for error in row["errors"]:
            out(f"    error {error['key']}: {error['message']}")
        if row.get("more_errors"):
            out(f"    ... and {row['more_errors']} more error(s) (show them with "
                f"--errors {row['error']})")
        if row.get("retry"):
            out(f"    to retry: {row['retry']}")


def cmd_status(args: argparse.Namespace) -> int:
    """Report database location and pending/reserved/error jobs per computed table."""
    from element_pose.db import config
    from element_pose.ops.jobs import read_job_queues
    from element_pose.ops.pipeline import load_pipeline

    load_pipeline()  # connects and activates

    if not args.json:
        for name, value in config.describe().items():
            out(f"{name:>14}: {value}")
    report, reserved = read_job_queues(max_errors=args.errors)  # each job table read once
    if args.json:
        out(json.dumps(report, indent=2, default=str))
        return EXIT_OK
    _print_queues(report)
    from element_pose.ops.slurm import reservations

    for held in reservations(reserved):  # which worker (and Slurm job) holds each one
        out(f"reserved {held['table']} {held['key']} by {held['host']} pid {held['pid']}"
            + (f" slurm job {held['slurm_job']}" if held["slurm_job"] else ""))
    from element_pose.ops.dandi_sync import invalid_assets

    for asset in invalid_assets():
        out(f"  dandi {asset['dandiset_id']} {asset['asset_path']}: "
            f"{asset['archive_status'] or asset['status']}: " + "; ".join(asset["messages"]))
    return EXIT_FAILED if any(r["error"] for r in report.values()) and args.fail_on_error \
        else EXIT_OK


def _estimations(args: argparse.Namespace) -> dict:
    """The ``--key`` restriction of pose estimations and a ``--filter`` that exists.

    Raises:
        CommandError: (exit 2) an unknown attribute, a value of the wrong type or a
            filter parameter set that does not exist; nothing is done then.
    """
    from element_pose.schemas import analysis, model

    restriction = key_restriction(args.key, model.PoseEstimation, "pose estimation")
    if args.filter is not None:
        found = analysis.FilterParamSet & {"filter_paramset_idx": args.filter}
        if not found:
            known = sorted(int(i) for i in analysis.FilterParamSet.to_arrays(
                "filter_paramset_idx"))
            raise CommandError(f"--filter {args.filter}: no such filter parameter set "
                               f"(analysis.FilterParamSet has {known or 'none'})", EXIT_USAGE)
    return restriction


def cmd_export(args: argparse.Namespace) -> int:
    """Write NWB files for the selected pose estimations."""
    from element_pose.ops.pipeline import load_pipeline
    from element_pose.schemas import publish

    load_pipeline()  # connects and activates
    restriction = _estimations(args)
    try:
        files = publish.export_nwb(
            restriction, args.output, filter_paramset_idx=args.filter,
            include_training=args.training, overwrite=args.overwrite, videos=args.videos)
    except FileExistsError as exc:
        raise CommandError(f"{str(exc).split(';')[0]}; add --overwrite to replace it"
                           ) from None
    for item in files:
        out(str(item.path))
    return EXIT_OK


def cmd_dandi_sync(args: argparse.Namespace) -> int:
    """Export and upload everything new to a dandiset (cron-safe)."""
    from element_pose.ops import dandi_sync
    from element_pose.ops.pipeline import load_pipeline

    load_pipeline()  # connects and activates
    query = _estimations(args)
    if not args.keep_superseded:  # a re-run with a newer iteration's model replaces it
        from element_pose.ops.iteration import current_estimations

        query = current_estimations(query)
    try:
        report = dandi_sync.sync(args.dandiset, args.dandiset_dir or args.dandiset,
                                 instance=args.instance, query=query,
                                 filter_paramset_idx=args.filter,
                                 include_training=args.training)
    except dandi_sync.SyncBusyError as exc:
        log.warning("%s; nothing to do", exc)
        return EXIT_OK
    out(dandi_sync.report_json(report))
    for path, reason in report.failed.items():
        log.error("not uploaded: %s: %s", path, reason)
    for path, messages in report.invalid.items():
        log.error("Invalid on the archive: %s: %s", path, "; ".join(messages))
    return EXIT_OK if report.ok else EXIT_FAILED


# ------------------------------------------------------------------ parsing
def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the CLI)."""
    parser = argparse.ArgumentParser(
        prog="element-pose",
        description="element-pose: pose estimation pipeline (DataJoint + DeepLabCut 3).",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v: debug; the default shows progress at info)")
    parser.add_argument("--pipeline", metavar="MODULE",
                        help="pipeline module that activates the element (default: "
                             "ELEMENT_POSE_PIPELINE, the settings file, workflow.pipeline)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    db = sub.add_parser("db", help="start, stop or report the embedded PostgreSQL server; "
                        "migrate: bring the tables of an earlier release to the current shapes")
    db.add_argument("action", choices=["start", "stop", "status", "migrate"])
    db.set_defaults(func=cmd_db)

    demo = sub.add_parser("demo", help="run the pipeline on generated sample data")
    demo.add_argument("--mode", choices=["load", "full"], default="full",
                      help="load: ingest DeepLabCut outputs; full: train, evaluate, infer "
                           "(default)")
    demo.add_argument("--root", help="demo data folder (default: ELEMENT_POSE_ROOT_DIRS or "
                                     "<ELEMENT_POSE_HOME>/demo)")
    demo.add_argument("--frames", type=int, default=300, help="frames of the session video")
    demo.add_argument("--fresh", action="store_true",
                      help="delete the demo's earlier results (database rows, generated data) "
                           "and make everything again; without it a second run reuses them "
                           "and says so")
    demo.set_defaults(func=cmd_demo)

    status = sub.add_parser("status", help="database and job status per table")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--fail-on-error", action="store_true",
                        help="exit 1 when any job is in error")
    status.add_argument("--errors", type=int, default=5, metavar="N",
                        help="error messages listed per table (default 5)")
    status.set_defaults(func=cmd_status)

    key_help = "restrict to NAME=VALUE (repeatable), e.g. --key subject=m1"
    export = sub.add_parser("export", help="write NWB files (ndx-pose) for pose estimations")
    export.add_argument("output", help="output folder (files in DANDI layout below it)")
    export.add_argument("--key", action="append", help=key_help)
    export.add_argument("--filter", type=int, help="export filtered poses of this filter id")
    export.add_argument("--training", action="store_true", help="include labelled frames")
    export.add_argument("--overwrite", action="store_true", help="replace existing files")
    export.add_argument("--videos", choices=["hardlink", "copy", "symlink", "none"],
                        default="hardlink",
                        help="how the videos go beside the files (default hardlink, a copy "
                             "across file systems; none links the originals)")
    export.set_defaults(func=cmd_export)

    sync = sub.add_parser(
        "dandi-sync", help="export and upload what is new to a dandiset (safe from cron)")
    sync.add_argument("--dandiset", required=True, help="dandiset id, e.g. 000123")
    sync.add_argument("--dandiset-dir", help="local dandiset folder (default: ./<id>)")
    sync.add_argument("--instance", default="dandi",
                      help="dandi, dandi-sandbox, ... or an API URL (key from "
                           "<INSTANCE>_API_KEY or DANDI_API_KEY)")
    sync.add_argument("--key", action="append", help=key_help)
    sync.add_argument("--filter", type=int, help="publish filtered poses of this filter id")
    sync.add_argument("--training", action="store_true",
                      help="add each file's model's labelled frames (ndx-pose PoseTraining)")
    sync.add_argument("--keep-superseded", action="store_true",
                      help="also publish estimations that a re-run with a later "
                           "iteration's model replaced (default: only the newest)")
    sync.set_defaults(func=cmd_dandi_sync)

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


#: Modules whose ``register_cli(subparsers)`` adds their commands (imported lazily).
_COMMAND_MODULES = ("element_pose.cli.worker", "element_pose.cli.store", "element_pose.cli.lab",
                    "element_pose.cli.params", "element_pose.cli.config",
                    "element_pose.cli.submit", "element_pose.cli.publish",
                    "element_pose.cli.weights", "element_pose.cli.refine",
                    "element_pose.cli.iteration")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``element-pose``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose + 1, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from element_pose.settings import UserConfigError, load

    try:
        load()  # the settings file is readable and holds no secrets
    except UserConfigError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    if args.pipeline:  # also seen by the worker processes this command starts
        from element_pose.ops.pipeline import PIPELINE_ENV

        os.environ[PIPELINE_ENV] = args.pipeline
    try:
        return args.func(args)
    except CommandError as exc:
        log.error("%s", exc)
        return exc.code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as exc:
        from element_pose.db.config import ConfigError

        log.error("%s: %s", type(exc).__name__, exc)
        log.debug("traceback", exc_info=True)
        return EXIT_USAGE if isinstance(exc, ConfigError | UserConfigError) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
