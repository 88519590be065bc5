"""Command line of the configuration file and of Slurm submission.

``element-pose config`` shows the effective settings (secrets masked) and where
each comes from (``env``, ``file`` or ``default``); ``element-pose
config set NAME VALUE`` / ``unset NAME`` edit the user's settings file, checking
each value with the settings model (:mod:`element_pose.settings`), the same one
that Python imports, workers and notebooks read.  ``element-pose
submit`` submits Slurm job arrays of workers (:mod:`element_pose.ops.slurm`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

__all__ = ["cmd_config", "register_cli", "remember_demo_settings"]

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def remember_demo_settings() -> None:
    """Store the settings the demo ran with in the user's configuration file.

    Every setting that the environment sets is written, except secrets, which
    never are; the next command in a fresh shell then finds the same roots,
    database and schemas.
    """
    from element_pose.settings import environment_values, remember

    path = remember(environment_values())
    log.info("demo settings saved in %s (shown by `element-pose config`)", path)


def _set(args: argparse.Namespace) -> None:
    from element_pose import settings

    if args.name == "root_dirs" and len(args.value) > 1:
        value: object = args.value
    elif len(args.value) == 1:
        value = args.value[0]
    else:
        raise settings.UserConfigError(f"{args.name} takes one value")
    path = settings.remember({args.name: value})
    _out(f"{args.name} saved in {path}")


def _show(args: argparse.Namespace) -> None:
    from element_pose import settings

    path = settings.config_path()
    rows = settings.effective()
    if args.json:
        _out(json.dumps({"file": str(path), "settings": rows}, indent=2))
        return
    _out(f"configuration file: {path}" + ("" if path.is_file() else " (none yet)"))
    for row in rows:
        _out(f"{row['setting']:>20} = {row['value'] or '(unset)'}"
             f"   [{row['source']}: {row['env']}]")


def cmd_config(args: argparse.Namespace) -> int:
    """``element-pose config [show|path|set|unset]``."""
    from element_pose import settings

    try:
        if args.action == "path":
            _out(str(settings.config_path()))
        elif args.action == "set":
            _set(args)
        elif args.action == "unset":
            path = settings.unset(args.names)
            _out(f"removed {', '.join(args.names)} from {path}")
        else:
            _show(args)
    except settings.UserConfigError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    return EXIT_OK


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``config`` to the ``element-pose`` parser."""
    config = subparsers.add_parser(
        "config", help="show or edit the settings file (roots, database, S3, Slurm)",
        description="One set of settings for the command line, Python imports, workers "
                    "and notebooks: defaults < a JSON file (ELEMENT_POSE_CONFIG, else "
                    "<ELEMENT_POSE_HOME>/config.json, else ~/.config/element-pose/"
                    "config.json) < environment variables; secrets come from the "
                    "environment only.")
    actions = config.add_subparsers(dest="action", metavar="ACTION")
    show = actions.add_parser("show", help="effective settings and their source (default)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    actions.add_parser("path", help="print the configuration file's path")
    set_ = actions.add_parser("set", help="store a setting, e.g. `config set root_dirs /data`")
    set_.add_argument("name")
    set_.add_argument("value", nargs="+")
    unset = actions.add_parser("unset", help="remove settings from the file")
    unset.add_argument("names", nargs="+")
    config.set_defaults(func=cmd_config, action="show", json=False)
