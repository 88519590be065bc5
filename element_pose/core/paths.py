"""Root data directories and the relative paths stored in the database.

Every path element-pose stores is relative to one of the configured roots:

* raw roots (setting ``root_dirs``: ``ELEMENT_POSE_ROOT_DIRS``, several separated
  by ``os.pathsep``, or the settings file): videos, labelled data and DeepLabCut
  projects;
* the processed root (setting ``processed_dir``: ``ELEMENT_POSE_PROCESSED_DIR`` or
  the settings file; default: the first raw root): outputs element-pose writes
  (inference, training, figures, NWB).

Both come from :func:`element_pose.settings.get_settings` (defaults < settings file
< environment); this module never imports DataJoint.

A linking module may override both with ``get_pose_root_data_dirs()`` and
``get_pose_processed_data_dir()`` (see :mod:`element_pose.schemas.model`).  Paths that
escape the roots (``..``, symlinks pointing elsewhere, absolute paths outside)
are refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_PATH_LENGTH",
    "PROCESSED_DIR_ENV",
    "ROOT_DIRS_ENV",
    "PathError",
    "Roots",
    "check_path_length",
    "default_processed_dir",
    "default_root_dirs",
    "relative_json",
]

ROOT_DIRS_ENV = "ELEMENT_POSE_ROOT_DIRS"
#: Longest relative path the database stores (the path columns are varchar(1000)).
MAX_PATH_LENGTH = 1000
PROCESSED_DIR_ENV = "ELEMENT_POSE_PROCESSED_DIR"


class PathError(ValueError):
    """A path is missing, outside the configured roots, or no root is configured."""


def check_path_length(relative: str, path: str | Path, limit: int = MAX_PATH_LENGTH) -> str:
    """Return ``relative`` when it fits a path column of ``limit`` characters.

    Raises:
        PathError: naming the file, its length and the limit.
    """
    if len(relative) > limit:
        raise PathError(
            f"the path of {path} relative to its root has {len(relative)} characters; the "
            f"database stores paths of at most {limit}: move or rename the file")
    return relative


def default_root_dirs() -> list[Path]:
    """Raw roots from the settings (environment, settings file, DataJoint config)."""
    from element_pose.settings import get_settings

    return list(get_settings().root_dirs)


def default_processed_dir() -> Path | None:
    """Processed root from the settings, else the first raw root."""
    from element_pose.settings import get_settings

    current = get_settings()
    if current.processed_dir is not None:
        return current.processed_dir
    return current.root_dirs[0] if current.root_dirs else None


class Roots:
    """Resolves relative paths against root directories and makes paths relative.

    Args:
        root_dirs: Callable returning the raw roots (first match wins).
        processed_dir: Callable returning the processed root.
    """

    def __init__(
        self,
        root_dirs: Callable[[], Sequence[str | Path]] = default_root_dirs,
        processed_dir: Callable[[], str | Path | None] = default_processed_dir,
    ) -> None:
        self._root_dirs = root_dirs
        self._processed_dir = processed_dir

    def root_dirs(self) -> list[Path]:
        """All roots: raw roots then the processed root (without duplicates)."""
        roots = [Path(r).expanduser().resolve() for r in (self._root_dirs() or [])]
        processed = self._processed_dir()
        if processed is not None:
            processed = Path(processed).expanduser().resolve()
            if processed not in roots:
                roots.append(processed)
        if not roots:
            raise PathError(
                f"no root data directory configured: set {ROOT_DIRS_ENV} (and optionally "
                f"{PROCESSED_DIR_ENV}), or `element-pose config set root_dirs DIR`"
            )
        return roots

    def processed_dir(self) -> Path:
        """The processed root (created if needed)."""
        processed = self._processed_dir()
        if processed is None:
            processed = self.root_dirs()[0]
        path = Path(processed).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    def relative(self, path: str | Path, limit: int = MAX_PATH_LENGTH) -> str:
        """The POSIX path of ``path`` relative to the root that contains it.

        Raises:
            PathError: if the path lies outside every root, or is longer than
                ``limit`` characters (the database column).
        """
        absolute = Path(path).expanduser().resolve()
        for root in self.root_dirs():
            if absolute == root or root in absolute.parents:
                return check_path_length(absolute.relative_to(root).as_posix(), path, limit)
        raise PathError(
            f"{path} is outside the configured root directories "
            f"{[str(r) for r in self.root_dirs()]}"
        )

    def relative_to_processed(self, path: str | Path, limit: int = MAX_PATH_LENGTH) -> str:
        """The path relative to the processed root (error if outside it or too long)."""
        absolute = Path(path).expanduser().resolve()
        root = self.processed_dir()
        if absolute != root and root not in absolute.parents:
            raise PathError(f"{path} is outside the processed root {root}")
        return check_path_length(absolute.relative_to(root).as_posix(), path, limit)

    def find(self, relative_path: str | Path, must_exist: bool = True) -> Path:
        """The absolute path of a stored relative path, in the first root holding it.

        Raises:
            PathError: if the path escapes the roots, or (``must_exist``) is in none.
        """
        rel = Path(relative_path)
        if rel.is_absolute():
            self.relative(rel)  # confinement check
            if must_exist and not rel.exists():
                raise PathError(f"file not found: {rel}")
            return rel
        roots = self.root_dirs()
        for root in roots:
            candidate = (root / rel).resolve()
            if candidate != root and root not in candidate.parents:
                raise PathError(f"{relative_path} escapes the root directory {root}")
            if candidate.exists():
                return candidate
        if must_exist:
            raise PathError(
                f"{relative_path} not found under any root directory {[str(r) for r in roots]}"
            )
        return (roots[0] / rel).resolve()

    def processed(self, relative_path: str | Path) -> Path:
        """The absolute path of a path stored relative to the processed root."""
        root = self.processed_dir()
        candidate = (root / relative_path).resolve()
        if candidate != root and root not in candidate.parents:
            raise PathError(f"{relative_path} escapes the processed root {root}")
        return candidate


def relative_json(value: Any, roots: Roots) -> Any:
    """A JSON-like value with every absolute path made relative to its root.

    Strings (values and mapping keys) that are absolute paths become POSIX paths
    relative to the root that contains them; paths outside every root are reduced
    to their file name, so that no stored JSON holds a machine's absolute path.
    """
    if isinstance(value, dict):
        return {relative_json(k, roots): relative_json(v, roots) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [relative_json(v, roots) for v in value]
    if isinstance(value, str) and "\n" not in value and os.path.isabs(value):
        try:
            return roots.relative(value)
        except PathError:
            return Path(value).name
    return value
