"""Errors raised by the multi-camera 3D core, and the parameter checks its modules share."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "CalibrationError",
    "ThreeDError",
    "ThreeDParamsError",
    "TriangulationError",
    "param_flag",
    "param_int",
    "param_number",
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


def param_int(value: Any, key: str, minimum: int, what: str) -> int:
    """``value`` as an int >= ``minimum`` (integral floats accepted; bools are not).

    Raises:
        ThreeDParamsError: naming ``what`` (``"calibration"``) and the key.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not value.is_integer())
    ):
        raise ThreeDParamsError(f"{what} param {key!r} must be an integer, got {value!r}")
    if value < minimum:
        raise ThreeDParamsError(f"{what} param {key!r} must be >= {minimum}, got {value!r}")
    return int(value)


def param_flag(value: Any, key: str, what: str) -> bool:
    """``value`` as a bool (Python or NumPy booleans only).

    Raises:
        ThreeDParamsError: naming ``what`` and the key.
    """
    import numpy as np

    if not isinstance(value, bool | np.bool_):
        raise ThreeDParamsError(f"{what} param {key!r} must be true or false, got {value!r}")
    return bool(value)


def param_number(value: Any, key: str, what: str, minimum: float = 0.0,
                 strict: bool = False) -> float:
    """``value`` as a finite float >= ``minimum`` (> with ``strict``; bools are refused).

    Raises:
        ThreeDParamsError: naming ``what`` and the key.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ThreeDParamsError(f"{what} param {key!r} must be a number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise ThreeDParamsError(
            f"{what} param {key!r} must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return float(value)
