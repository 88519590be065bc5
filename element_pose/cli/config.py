"""Command line of the configuration file and of Slurm submission.

``element-pose config`` shows the effective settings (secrets masked) and where
each comes from; ``element-pose config set NAME VALUE`` / ``unset NAME`` edit the
user's configuration file (:mod:`element_pose.settings`).  ``element-pose
submit`` submits Slurm job arrays of workers (:mod:`element_pose.ops.slurm`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

__all__ = ["cmd_config", "register_cli", "remember_demo_settings"]

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def remember_demo_settings() -> None:
    """Store the settings the demo ran with in the user's configuration file.

    Every setting that is in effect (from the environment) is written, except
    secrets, which never are; the next command in a fresh shell then finds the
    same roots, database and schemas.
    """
    from element_pose.settings import SETTINGS, remember

    settings = {name: os.environ[env] for name, (env, _) in SETTINGS.items()
                if os.environ.get(env)}
    path = remember(settings)
    log.info("demo settings saved in %s (shown by `element-pose config`)", path)


def cmd_config(args: argparse.Namespace) -> int:
    """``element-pose config [show|path|set|unset]``."""
    from element_pose import settings as userconfig

    try:
        if args.action == "path":
            _out(str(userconfig.config_path()))
        elif args.action == "set":
            value: object = args.value
            if args.name == "root_dirs" and len(args.value) > 1:
                value = args.value
            elif len(args.value) == 1:
                value = args.value[0]
            else:
                raise userconfig.UserConfigError(f"{args.name} takes one value")
            path = userconfig.remember({args.name: value})
            _out(f"{args.name} saved in {path}")
        elif args.action == "unset":
            path = userconfig.unset(args.names)
            _out(f"removed {', '.join(args.names)} from {path}")
        else:
            rows = userconfig.effective()
            if args.json:
                _out(json.dumps({"file": str(userconfig.config_path()), "settings": rows},
                                indent=2))
                return EXIT_OK
            _out(f"configuration file: {userconfig.config_path()}"
                 + ("" if userconfig.config_path().is_file() else " (none yet)"))
            for row in rows:
                _out(f"{row['setting']:>20} = {row['value'] or '(unset)'}"
                     f"   [{row['source']}: {row['env']}]")
    except userconfig.UserConfigError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    return EXIT_OK


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``config`` to the ``element-pose`` parser."""
    config = subparsers.add_parser(
        "config", help="show or edit the settings file (roots, database, S3, Slurm)",
        description="Settings persist in a JSON file (ELEMENT_POSE_CONFIG, else "
                    "<ELEMENT_POSE_HOME>/config.json, else ~/.config/element-pose/"
                    "config.json); environment variables override it; secrets come "
                    "from the environment only.")
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
