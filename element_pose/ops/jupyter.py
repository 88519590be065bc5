"""``element-pose lab``: JupyterLab on the tutorials, with the demo's database and roots.

The server runs this interpreter's JupyterLab with a kernel of this environment
(``element-pose``), in ``notebooks/`` when run from a checkout. The kernel
inherits the same configuration as ``element-pose demo``: the embedded
PostgreSQL in ``ELEMENT_POSE_HOME`` (or the configured server) and the demo's
root folders, so notebook 01 shows the demo's data.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

__all__ = ["KERNEL_NAME", "install_kernel", "lab_command", "register_cli"]

log = logging.getLogger(__name__)
KERNEL_NAME = "element-pose"


def install_kernel(prefix: str | Path = sys.prefix) -> Path:
    """Write (or refresh) the ``element-pose`` kernelspec for this interpreter."""
    spec = Path(prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "element-pose",
        "language": "python",
        "metadata": {"debugger": True},
    }, indent=1))
    return spec


def _notebook_dir() -> Path:
    checkout = Path(__file__).resolve().parents[1] / "notebooks"
    return checkout if checkout.is_dir() else Path.cwd()


def lab_command(args: argparse.Namespace) -> list[str]:
    """The ``jupyter lab`` command line for ``args`` (the environment is set up too)."""
    from element_pose.ops import demo

    demo.prepare_environment(Path(args.root) if args.root else None)
    install_kernel()
    command = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={args.notebook_dir}",
               f"--MultiKernelManager.default_kernel_name={KERNEL_NAME}"]
    if args.no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers, CI: Jupyter refuses root
        command.append("--allow-root")
    if args.port:
        command.append(f"--port={args.port}")
    extra = list(args.jupyter_args)
    return command + (extra[1:] if extra[:1] == ["--"] else extra)


def cmd_lab(args: argparse.Namespace) -> int:
    """Start JupyterLab (replaces this process)."""
    if shutil.which("jupyter", path=str(Path(sys.executable).parent)) is None:
        log.error("JupyterLab is not installed here: `make lab` (or pip install "
                  "'element-pose[lab]') installs it")
        return 2
    command = lab_command(args)
    log.info("starting JupyterLab in %s (roots: %s)", args.notebook_dir,
             os.environ.get("ELEMENT_POSE_ROOT_DIRS"))
    os.execv(command[0], command)
    return 0  # not reached


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    """Add ``element-pose lab`` to the CLI."""
    lab = subparsers.add_parser("lab", help="open the tutorials in JupyterLab (demo database "
                                            "and roots)")
    lab.add_argument("--notebook-dir", default=str(_notebook_dir()),
                     help="folder JupyterLab opens (default: the tutorials)")
    lab.add_argument("--root", help="demo data folder (as for `element-pose demo`)")
    lab.add_argument("--port", type=int, help="server port (default: Jupyter's)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.add_argument("jupyter_args", nargs=argparse.REMAINDER,
                     help="further arguments for jupyter lab (after --)")
    lab.set_defaults(func=cmd_lab)
