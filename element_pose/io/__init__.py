"""Readers and writers of external formats, one module per format, with no database.

:func:`read_pose` reads any registered pose file into :class:`~element_pose.core.pose.PoseData`;
each format module registers a reader and a validator with :func:`register_format`
(see :mod:`element_pose.io.registry`).  The built-in format modules (named in
:data:`~element_pose.io.registry.BUILTIN_FORMAT_MODULES`) are imported by the registry on
the first call that needs it, so ``import element_pose.io`` stays cheap and
imports no pose-estimation package.

Example:
    >>> from element_pose.io import read_pose
    >>> pose = read_pose("session1.slp")                 # format detected from the file
    >>> pose = read_pose("preds.csv", fmt="lightning_pose_csv", fps=30)
"""

from __future__ import annotations

from element_pose.io.registry import (
    BUILTIN_FORMAT_MODULES,
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
