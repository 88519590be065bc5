"""``element-pose store gc``: remove the store files that no row references."""

from __future__ import annotations

import argparse
import json

from element_pose.cli.common import EXIT_FAILED, EXIT_OK, out
from element_pose.ops.store import DEFAULT_MIN_AGE_S

__all__ = ["cmd_store", "register_cli"]


def cmd_store(args: argparse.Namespace) -> int:
    """``element-pose store gc``: remove the store files that no row references."""
    from element_pose.ops.pipeline import load_pipeline
    from element_pose.ops.store import collect_garbage

    load_pipeline()  # connects and activates the schemas

    report = collect_garbage(min_age_s=args.min_age, dry_run=args.dry_run)
    if args.json:
        out(json.dumps(report.as_dict(), indent=2))
    else:
        verb, freed = (("would remove", "bytes would be freed") if args.dry_run
                       else ("removed", "bytes freed"))
        out(f"store gc: {report.stored} file(s) stored, {report.referenced} referenced, "
            f"{report.orphaned} orphaned; {verb} {report.deleted} ({report.bytes_freed} "
            f"{freed}), {report.kept_recent} kept as younger than --min-age or a live job, "
            f"in {report.seconds:.1f} s")
    return EXIT_FAILED if report.errors else EXIT_OK


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``store`` subcommand to the ``element-pose`` parser."""
    store = subparsers.add_parser(
        "store", help="maintain the object store of pose arrays (garbage collection)")
    actions = store.add_subparsers(dest="action", required=True, metavar="ACTION")
    gc = actions.add_parser(
        "gc", help="remove store files that no row references (safe from cron)",
        description="Remove the files of the pose store that no table row references: "
                    "left by killed workers or by deletes outside element-pose. Files "
                    "younger than --min-age, or than a job reserved by a live worker, "
                    "are kept.")
    gc.add_argument("--min-age", type=float, default=DEFAULT_MIN_AGE_S, metavar="S",
                    help=f"only files older than S seconds (default {DEFAULT_MIN_AGE_S:.0f})")
    gc.add_argument("--dry-run", action="store_true", help="report only; remove nothing")
    gc.add_argument("--json", action="store_true", help="machine-readable output")
    gc.set_defaults(func=cmd_store)
