"""Readers and writers of external formats, one module per format, with no database.

:func:`read_pose` reads any registered pose file into :class:`~element_pose.core.pose.PoseData`;
each format module registers a reader and a validator with :func:`register_format`
(see :mod:`element_pose.io.registry`).  The built-in format modules are imported on
the first call that needs the registry, so ``import element_pose.io`` stays cheap and
imports no pose-estimation package.

Example:
    >>> from element_pose.io import read_pose
    >>> pose = read_pose("session1.slp")                 # format detected from the file
    >>> pose = read_pose("preds.csv", fmt="lightning_pose_csv", fps=30)
"""

from __future__ import annotations

import importlib

from element_pose.io.registry import (
    PoseFormat,
    PoseFormatError,
    available_formats,
    check_scores,
    detect_format,
    get_format,
    read_pose,
    register_format,
    validate_pose_file,
)

#: Modules that register the built-in formats when imported.
BUILTIN_FORMAT_MODULES: tuple[str, ...] = (
    "element_pose.io.dlc_formats",
    "element_pose.io.sleap",
    "element_pose.io.lightning_pose",
    "element_pose.io.anipose",
)

_loaded = False


def _load_builtin_formats() -> None:
    """Import the built-in format modules once (each registers itself)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN_FORMAT_MODULES:
        importlib.import_module(module)


__all__ = [
    "BUILTIN_FORMAT_MODULES",
    "PoseFormat",
    "PoseFormatError",
    "available_formats",
    "check_scores",
    "detect_format",
    "get_format",
    "read_pose",
    "register_format",
    "validate_pose_file",
]
