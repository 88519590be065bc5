"""Errors raised by the multi-camera 3D core."""

from __future__ import annotations

__all__ = [
    "CalibrationError",
    "ThreeDError",
    "ThreeDParamsError",
    "TriangulationError",
]


class ThreeDError(ValueError):
    """Base class of the errors raised by :mod:`element_pose.processing.threed`."""


class ThreeDParamsError(ThreeDError):
    """Calibration, triangulation, filter or angle parameters are malformed."""


class CalibrationError(ThreeDError):
    """Calibration failed: the board was not found, too few detections, unlinked cameras."""


class TriangulationError(ThreeDError):
    """The 2D inputs cannot be triangulated together (cameras, frames, body parts)."""
