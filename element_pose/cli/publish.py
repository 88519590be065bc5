"""``element-pose validate FOLDER``: check NWB files before publishing them.

Runs nwbinspector and ``dandi validate`` on a folder written by ``element-pose export``
(or a dandiset folder) and prints what they find (the logic is
:func:`element_pose.export.dandi.check_folder`). Exit 0 when nothing is an error, 1 when
something is, 2 when the folder does not exist. Needs no database.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

__all__ = ["cmd_validate", "register_cli"]

log = logging.getLogger("element_pose.cli")


def cmd_validate(args: argparse.Namespace) -> int:
    """Print the findings of nwbinspector and ``dandi validate`` on a folder."""
    import dataclasses

    from element_pose.export.dandi import check_folder

    try:
        findings = check_folder(args.folder, min_severity=args.min_severity)
    except FileNotFoundError as exc:
        log.error("%s", exc)
        return 2
    errors = [f for f in findings if f.severity == "ERROR"]
    if args.json:
        sys.stdout.write(json.dumps([dataclasses.asdict(f) for f in findings], indent=2) + "\n")
    else:
        for finding in findings:
            sys.stdout.write(f"{finding}\n")
        sys.stdout.write(f"{len(errors)} error(s), {len(findings) - len(errors)} other "
                         f"finding(s) in {args.folder}\n")
    return 1 if errors else 0


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``validate`` to the ``element-pose`` parser."""
    validate = subparsers.add_parser(
        "validate", help="check an export folder with nwbinspector and dandi validate",
        description="Runs nwbinspector and `dandi validate` on the NWB files of a folder "
                    "written by `element-pose export` (no dandiset.yaml needed) or a "
                    "dandiset folder; exits 1 when any finding is an error.")
    validate.add_argument("folder", help="the export (or dandiset) folder")
    validate.add_argument("--min-severity", choices=["ERROR", "WARNING", "HINT"],
                          default="WARNING", help="lowest severity shown (default WARNING)")
    validate.add_argument("--json", action="store_true", help="machine-readable output")
    validate.set_defaults(func=cmd_validate)
