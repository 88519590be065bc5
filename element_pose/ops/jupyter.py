"""``element-pose lab``: JupyterLab on the tutorials, with the demo's database and roots.

The server runs this interpreter's JupyterLab with a kernel of this environment
(``element-pose``), in ``notebooks/`` when run from a checkout. The kernel
inherits the same configuration as ``element-pose demo``: the embedded
PostgreSQL in ``ELEMENT_POSE_HOME`` (or the configured server) and the demo's
root folders, so notebook 01 shows the demo's data.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

__all__ = ["KERNEL_NAME", "default_notebook_dir", "install_kernel", "jupyter_installed",
           "lab_command"]

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


def default_notebook_dir() -> Path:
    """The tutorials of a checkout (``notebooks/``), else the current folder."""
    checkout = Path(__file__).resolve().parents[2] / "notebooks"
    return checkout if checkout.is_dir() else Path.cwd()


def lab_command(notebook_dir: str | Path, root: str | Path | None = None,
                port: int | None = None, no_browser: bool = False,
                jupyter_args: list[str] | None = None) -> list[str]:
    """The ``jupyter lab`` command line (the demo's environment is set up too).

    Args:
        notebook_dir: The folder JupyterLab opens.
        root: Demo data folder (as for ``element-pose demo``).
        port: Server port (default: Jupyter's).
        no_browser: Do not open a browser.
        jupyter_args: Further arguments for ``jupyter lab``.
    """
    from element_pose.ops import demo

    demo.prepare_environment(Path(root) if root else None)
    install_kernel()
    command = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={notebook_dir}",
               f"--MultiKernelManager.default_kernel_name={KERNEL_NAME}"]
    if no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers, CI: Jupyter refuses root
        command.append("--allow-root")
    if port:
        command.append(f"--port={port}")
    extra = list(jupyter_args or [])
    return command + (extra[1:] if extra[:1] == ["--"] else extra)


def jupyter_installed() -> bool:
    """Whether this interpreter's environment has JupyterLab."""
    return shutil.which("jupyter", path=str(Path(sys.executable).parent)) is not None
