"""Checks before publishing: ``dandi validate`` and nwbinspector, on a dandiset or on an
``element-pose export`` folder.

* :func:`validate`, :func:`require_valid` - ``dandi validate`` (its Python API) on a
  dandiset folder or files in one.
* :func:`check_folder` - what ``element-pose validate FOLDER`` reports: nwbinspector's
  messages for every NWB file and ``dandi validate``'s results, as :class:`Finding`.
  ``dandi validate`` needs a ``dandiset.yaml`` above the files (else it reports
  ``NO_DANDISET_FOUND``); an export folder has none, so the check runs on a mirror of
  the folder (symbolic links, in a temporary folder) with a minimal ``dandiset.yaml``,
  and nothing is written into the folder itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from element_pose.export.dandi.errors import DandiValidationError, describe
from element_pose.export.dandi.layout import DANDISET_YAML, write_dandiset_yaml

__all__ = ["ERROR", "HINT", "WARNING", "Finding", "check_folder", "require_valid", "validate"]

log = logging.getLogger("element_pose.export.dandi")

ERROR, WARNING, HINT = "ERROR", "WARNING", "HINT"
#: nwbinspector importance -> our severity.
_IMPORTANCE = {"ERROR": ERROR, "PYNWB_VALIDATION": ERROR, "CRITICAL": ERROR,
               "BEST_PRACTICE_VIOLATION": WARNING, "BEST_PRACTICE_SUGGESTION": HINT}
#: The identifier of the placeholder ``dandiset.yaml`` of :func:`check_folder`.
PLACEHOLDER_ID = "000000"


def validate(
    paths: str | Path | Sequence[str | Path],
    *,
    min_severity: str = "ERROR",
) -> list[Any]:
    """Run ``dandi validate`` (the Python API) on a dandiset folder or files.

    Args:
        paths: A dandiset folder or files inside one.
        min_severity: Lowest severity returned (``HINT``, ``WARNING``, ``ERROR``).

    Returns:
        ``dandi.validate.ValidationResult`` objects at or above ``min_severity``.
    """
    from dandi.validate import Severity
    from dandi.validate._core import validate as dandi_validate

    if isinstance(paths, (str, Path)):
        paths = [paths]
    threshold = Severity[min_severity]
    results = [r for r in dandi_validate(*[str(p) for p in paths])
               if r.severity is not None and r.severity >= threshold]
    for r in results:
        log.warning("dandi validate: %s", describe(r))
    return results


def require_valid(paths: str | Path | Sequence[str | Path]) -> None:
    """Raise :class:`DandiValidationError` when ``dandi validate`` reports errors."""
    errors = validate(paths)
    if errors:
        raise DandiValidationError(errors)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One message of a check.

    Attributes:
        tool: ``"nwbinspector"`` or ``"dandi validate"``.
        severity: ``ERROR``, ``WARNING`` or ``HINT``.
        check: The check's name (nwbinspector's check function, dandi's result id).
        message: What is wrong.
        path: The file, relative to the checked folder (empty for the folder itself).
        location: Where in the file, when the tool says.
    """

    tool: str
    severity: str
    check: str
    message: str
    path: str = ""
    location: str = ""

    def __str__(self) -> str:
        where = f"{self.path}{' ' + self.location if self.location else ''}"
        return f"[{self.severity}] {self.tool} {self.check}: {self.message}" \
            + (f" ({where})" if where else "")


def check_folder(folder: str | Path, *, min_severity: str = WARNING) -> list[Finding]:
    """nwbinspector and ``dandi validate`` on an export (or dandiset) folder.

    Args:
        folder: A folder of NWB files, e.g. written by ``element-pose export`` (DANDI
            layout, videos beside the files), or a dandiset folder.
        min_severity: Lowest severity reported (``HINT``, ``WARNING``, ``ERROR``).

    Returns:
        The findings, errors first.

    Raises:
        FileNotFoundError: the folder does not exist.
    """
    folder = Path(folder).absolute()
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder {folder}")
    order = [ERROR, WARNING, HINT]
    keep = order[:order.index(min_severity) + 1]
    files = sorted(p for p in folder.rglob("*.nwb")
                   if not any(part.startswith(".") for part in p.relative_to(folder).parts))
    findings = [f for path in files for f in _inspect(path, folder)]
    findings += _dandi_validate(folder)
    findings = [f for f in findings if f.severity in keep]
    findings.sort(key=lambda f: (order.index(f.severity), f.path, f.tool, f.check))
    log.info("checked %d NWB file(s) in %s: %d finding(s)", len(files), folder, len(findings))
    return findings


def _inspect(path: Path, folder: Path) -> list[Finding]:
    """nwbinspector's messages for one file (its default configuration)."""
    from nwbinspector import inspect_nwbfile

    found = []
    for msg in inspect_nwbfile(nwbfile_path=str(path)):
        if msg is None:
            continue
        importance = getattr(msg.importance, "name", str(msg.importance))
        found.append(Finding("nwbinspector", _IMPORTANCE.get(importance, WARNING),
                             str(msg.check_function_name), str(msg.message),
                             path.relative_to(folder).as_posix(), str(msg.location or "")))
    return found


def _dandi_validate(folder: Path) -> list[Finding]:
    """``dandi validate``'s results for the folder (through a mirror when it has no
    ``dandiset.yaml``), with the paths made relative to ``folder``."""
    from dandi.validate import Severity

    with _as_dandiset(folder) as root:
        results = validate(root, min_severity="HINT")
    found = []
    for r in results:
        severity = r.severity if r.severity is not None else Severity.ERROR
        name = (ERROR if severity >= Severity.ERROR else
                WARNING if severity >= Severity.WARNING else HINT)
        found.append(Finding("dandi validate", name, str(r.id), str(r.message or ""),
                             _relative(getattr(r, "path", None), root)))
    return found


def _relative(path: Any, root: Path) -> str:
    if not path:
        return ""
    path = Path(path)
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


@contextlib.contextmanager
def _as_dandiset(folder: Path) -> Iterator[Path]:
    """``folder`` when it holds ``dandiset.yaml``; else a temporary mirror of it (a
    symbolic link per file, the same relative layout, so that the files' links to
    their videos hold) with a minimal ``dandiset.yaml``."""
    if (folder / DANDISET_YAML).is_file():
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="element-pose-validate-") as tmp:
        root = Path(tmp)
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            here = Path(dirpath)
            (root / here.relative_to(folder)).mkdir(parents=True, exist_ok=True)
            for name in filenames:
                if not name.startswith("."):
                    (root / here.relative_to(folder) / name).symlink_to(here / name)
        write_dandiset_yaml(root, PLACEHOLDER_ID, f"element-pose export check of {folder.name}")
        yield root
