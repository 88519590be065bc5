"""Errors raised by the multi-camera 3D core, and the shared first check of a parameter dict."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "CalibrationError",
    "ThreeDError",
    "ThreeDParamsError",
    "TriangulationError",
    "with_defaults",
]


class ThreeDError(ValueError):
    """Base class of the errors raised by :mod:`element_pose.processing.threed`."""


class ThreeDParamsError(ThreeDError):
    """Calibration, triangulation, filter or angle parameters are malformed."""


class CalibrationError(ThreeDError):
    """Calibration failed: the board was not found, too few detections, unlinked cameras."""


class TriangulationError(ThreeDError):
    """The 2D inputs cannot be triangulated together (cameras, frames, body parts)."""


def with_defaults(params: Any, defaults: Mapping[str, Any], what: str,
                  known: Iterable[str] | None = None) -> dict[str, Any]:
    """A parameter mapping merged over its defaults, after checking its type and keys.

    Args:
        params: The user's parameters (must be a mapping).
        defaults: Default values.
        what: Name of the parameter set in messages (``"triangulation"``).
        known: Accepted keys; default the keys of ``defaults``.

    Raises:
        ThreeDParamsError: ``params`` is no mapping, or has unknown keys (named).
    """
    if not isinstance(params, Mapping):
        raise ThreeDParamsError(f"{what} params must be a mapping, got {type(params)}")
    known = sorted(defaults if known is None else known)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ThreeDParamsError(f"unknown {what} params {unknown}; known: {known}")
    return {**defaults, **dict(params)}
