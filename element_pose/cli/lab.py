"""``element-pose lab``: JupyterLab on the tutorials, with the demo's database and roots."""

from __future__ import annotations

import argparse
import logging
import os

from element_pose.cli.common import EXIT_USAGE

__all__ = ["cmd_lab", "register_cli"]

log = logging.getLogger(__name__)


def cmd_lab(args: argparse.Namespace) -> int:
    """Start JupyterLab (replaces this process)."""
    from element_pose.ops.jupyter import jupyter_installed, lab_command

    if not jupyter_installed():
        log.error("JupyterLab is not installed here: `make lab` (or pip install "
                  "'element-pose[lab]') installs it")
        return EXIT_USAGE
    command = lab_command(args.notebook_dir, root=args.root, port=args.port,
                          no_browser=args.no_browser, jupyter_args=args.jupyter_args)
    log.info("starting JupyterLab in %s (roots: %s)", args.notebook_dir,
             os.environ.get("ELEMENT_POSE_ROOT_DIRS"))
    os.execv(command[0], command)
    return 0  # not reached


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``element-pose lab`` to the CLI."""
    from element_pose.ops.jupyter import default_notebook_dir

    lab = subparsers.add_parser("lab", help="open the tutorials in JupyterLab (demo database "
                                            "and roots)")
    lab.add_argument("--notebook-dir", default=str(default_notebook_dir()),
                     help="folder JupyterLab opens (default: the tutorials)")
    lab.add_argument("--root", help="demo data folder (as for `element-pose demo`)")
    lab.add_argument("--port", type=int, help="server port (default: Jupyter's)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.add_argument("jupyter_args", nargs=argparse.REMAINDER,
                     help="further arguments for jupyter lab (after --)")
    lab.set_defaults(func=cmd_lab)
