"""Execute the tutorials and build the documentation site in strict mode.

    python docs/build.py [SITE_DIR]      # default: site/

The notebooks are the jupytext percent scripts ``notebooks/scripts/*.py`` (paired
with ``notebooks/*.ipynb``, committed without outputs). Each is executed top to bottom
against the configured database (the embedded PostgreSQL by default, as
``make demo``), and MkDocs builds the site from ``docs/`` plus the executed
notebooks with ``--strict``: a broken link, a missing image or a failed notebook
fails the build. ``tests/test_notebooks.py`` uses the same functions.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
DOCS = REPO / "docs"
log = logging.getLogger("docs.build")


def notebook_sources() -> list[Path]:
    """The tutorials, in order: ``notebooks/scripts/NN_name.py``."""
    return sorted((NOTEBOOKS / "scripts").glob("[0-9][0-9]_*.py"))


def execute(source: Path, kernel_name: str = "python3", timeout: int = 900):
    """Execute one percent-script notebook; return the executed ``NotebookNode``.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell failed (with its traceback).
    """
    import jupytext
    import nbclient

    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": kernel_name,
                                 "language": "python"}
    start = time.perf_counter()
    nbclient.NotebookClient(nb, kernel_name=kernel_name, timeout=timeout, allow_errors=False,
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    log.info("%s executed in %.1f s", source.name, time.perf_counter() - start)
    return nb


def build_site(executed: Mapping[str, object], site_dir: Path) -> Path:
    """Build the site from ``docs/`` and executed notebooks (``{stem: NotebookNode}``).

    Returns:
        The site folder (``index.html`` at its top).
    """
    import nbformat
    import yaml

    site_dir = Path(site_dir).resolve()
    work = Path(tempfile.mkdtemp(prefix="element-pose-docs-"))
    try:
        source = work / "docs"
        shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("build.py", "__pycache__"))
        (source / "tutorials").mkdir(exist_ok=True)
        for stem, nb in executed.items():
            nbformat.write(nb, source / "tutorials" / f"{stem}.ipynb")
        config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
        config["docs_dir"] = str(source)
        config["site_dir"] = str(site_dir)
        for plugin in config["plugins"]:
            if isinstance(plugin, dict) and "mkdocstrings" in plugin:
                plugin["mkdocstrings"]["handlers"]["python"]["paths"] = [str(REPO)]
        (work / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        result = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(work / "mkdocs.yml")],
            capture_output=True, text=True, cwd=REPO,
            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
        if result.returncode != 0:
            raise RuntimeError(f"mkdocs build --strict failed:\n{result.stderr[-6000:]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return site_dir


def main(argv: list[str] | None = None) -> int:
    """Execute every tutorial, then build the site."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site_dir", nargs="?", default=str(REPO / "site"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    executed = {source.stem: execute(source) for source in notebook_sources()}
    site = build_site(executed, Path(args.site_dir))
    log.info("site built: %s", site / "index.html")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
