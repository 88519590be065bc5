"""3D outlier filtering (anipose style) and joint angles.

:func:`filter_3d` removes points far from the running median of their own trace and
interpolates short gaps; its parameters are a plain JSON-able dict::

    {
        "medfilt": 7,             # odd running-median window, frames
        "offset_threshold": 25.0, # distance to the running median, in the 3D unit
        "score_threshold": 0.0,   # drop points with a lower (or NaN) confidence first
        "interpolate": True,      # fill gaps linearly ...
        "max_gap": 10,            # ... of at most this many frames (null: any length)
    }

:func:`joint_angles` computes anipose ``[angles]``: ``{"name": [a, b, c]}`` gives the
angle at ``b`` between ``b -> a`` and ``b -> c``, in degrees.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from element_pose.core.pose import PoseData
from element_pose.version import __version__

from .errors import ThreeDParamsError, param_flag, param_int, param_number, with_defaults

__all__ = [
    "FILTER_3D_DEFAULTS",
    "filter_3d",
    "joint_angles",
    "validate_angles",
    "validate_filter_3d_params",
]

_WHAT = "filter_3d"
FILTER_3D_DEFAULTS: dict[str, Any] = {
    "medfilt": 7,
    "offset_threshold": 25.0,
    "score_threshold": 0.0,
    "interpolate": True,
    "max_gap": 10,
}


def validate_filter_3d_params(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check :func:`filter_3d` parameters; return a normalised copy with defaults.

    Raises:
        ThreeDParamsError: naming the offending key.
    """
    params = {} if params is None else params
    p = with_defaults(params, FILTER_3D_DEFAULTS, _WHAT)
    medfilt = param_int(p["medfilt"], "medfilt", 1, _WHAT)
    if medfilt % 2 == 0:
        raise ThreeDParamsError(f"filter_3d param 'medfilt' must be odd, got {medfilt}")
    interpolate = param_flag(p["interpolate"], "interpolate", _WHAT)
    return {
        "medfilt": medfilt,
        "offset_threshold": param_number(p["offset_threshold"], "offset_threshold", _WHAT,
                                         strict=True),
        "score_threshold": param_number(p["score_threshold"], "score_threshold", _WHAT),
        "interpolate": interpolate,
        "max_gap": None if p["max_gap"] is None else param_int(p["max_gap"], "max_gap", 1, _WHAT),
    }


def _running_nanmedian(position: np.ndarray, window: int) -> np.ndarray:
    """Centred running median over axis 0, ignoring NaN (NaN-padded edges)."""
    if window == 1:
        return position.copy()
    half = window // 2
    out = np.empty_like(position)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
        for j in range(position.shape[2]):  # per keypoint, to bound memory
            trace = position[:, :, j]
            padded = np.pad(
                trace, [(half, half)] + [(0, 0)] * (trace.ndim - 1), constant_values=np.nan
            )
            windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
            out[:, :, j] = np.nanmedian(windows, axis=-1)
    return out


def _fill_gaps(trace: np.ndarray, max_gap: int | None) -> np.ndarray:
    """Linear interpolation of interior runs of missing rows of ``(n_frames, n_space)``."""
    missing = ~np.isfinite(trace).all(axis=1)
    if not missing.any() or missing.all():
        return trace
    idx = np.arange(trace.shape[0])
    good = np.flatnonzero(~missing)
    starts = missing & ~np.concatenate([[False], missing[:-1]])
    run = np.cumsum(starts) * missing
    lengths = np.bincount(run)
    fill = missing & (idx > good[0]) & (idx < good[-1])
    if max_gap is not None:
        fill &= lengths[run] <= max_gap
    if not fill.any():
        return trace
    out = trace.copy()
    for d in range(trace.shape[1]):
        out[fill, d] = np.interp(idx[fill], good, trace[good, d])
    return out


def filter_3d(pose3d: PoseData, params: Mapping[str, Any] | None = None) -> PoseData:
    """Remove 3D outliers (distance to the running median) and interpolate short gaps.

    Anipose's ``medfilt`` + ``offset_threshold`` applied in 3D: a point farther than
    ``offset_threshold`` (Euclidean, in the data's unit) from the NaN-aware running
    median of its own trace is removed; then gaps of at most ``max_gap`` frames between
    two present points are filled linearly.  Removed or still-missing points have NaN
    confidence; interpolated points have confidence 0.  Each individual and keypoint
    is filtered separately.  The input is not modified.

    Args:
        pose3d: 3D pose data (2D data are accepted too; the distance is then in pixels).
        params: See :func:`validate_filter_3d_params`.

    Returns:
        A new :class:`~element_pose.core.pose.PoseData` whose provenance ends with a
        ``filter_3d`` step (parameters and counts of removed / interpolated points).
    """
    p = validate_filter_3d_params(params)
    position = pose3d.position.astype(np.float64)
    confidence = pose3d.confidence.astype(np.float64)
    present = np.isfinite(position).all(axis=-1)
    if p["score_threshold"] > 0:
        with np.errstate(invalid="ignore"):
            low = present & ~(confidence >= p["score_threshold"])
        position[low] = np.nan
    else:
        low = np.zeros_like(present)
    median = _running_nanmedian(position, p["medfilt"])
    with np.errstate(invalid="ignore"):
        offset = np.linalg.norm(position - median, axis=-1)
        outlier = offset > p["offset_threshold"]
    position[outlier] = np.nan
    before_fill = np.isfinite(position).all(axis=-1)
    if p["interpolate"]:
        n_ind, n_kp = position.shape[1:3]
        for i in range(n_ind):
            for j in range(n_kp):
                position[:, i, j] = _fill_gaps(position[:, i, j], p["max_gap"])
    after = np.isfinite(position).all(axis=-1)
    filled = after & ~before_fill
    confidence[filled] = 0.0
    confidence[~after] = np.nan
    step = {
        "step": "filter_3d",
        **p,
        "n_removed_score": int(low.sum()),
        "n_removed_offset": int(outlier.sum()),
        "n_interpolated": int(filled.sum()),
        "software": f"element-pose {__version__}",
    }
    return pose3d.with_step(position.astype(np.float32), confidence.astype(np.float32), step)


def validate_angles(angles: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Check an anipose ``[angles]`` mapping ``{name: [a, b, c]}``; return a plain copy."""
    if not isinstance(angles, Mapping):
        raise ThreeDParamsError(f"angles must be a mapping name -> [a, b, c], got {type(angles)}")
    out: dict[str, list[str]] = {}
    for name, parts in angles.items():
        if isinstance(parts, str) or not isinstance(parts, Sequence) or len(parts) != 3:
            raise ThreeDParamsError(
                f"angle {name!r} needs three body parts [a, b, c], got {parts!r}"
            )
        a, b, c = (str(x) for x in parts)
        if b in (a, c):
            raise ThreeDParamsError(
                f"angle {name!r}: the vertex {b!r} must differ from {a!r} and {c!r}"
            )
        out[str(name)] = [a, b, c]
    return out


def joint_angles(pose3d: PoseData, angles: Mapping[str, Sequence[str]]) -> dict[str, np.ndarray]:
    """Angles at joints, in degrees.

    Args:
        pose3d: Pose data (3D, or 2D for angles in the image plane).
        angles: ``{name: [a, b, c]}``: the angle at ``b`` between ``b -> a`` and ``b -> c``.

    Returns:
        ``{name: (n_frames, n_individuals) float64}`` in [0, 180]; NaN where a point
        is missing or two points coincide.

    Raises:
        ThreeDParamsError: malformed angles or unknown body parts (naming the angle).
    """
    spec = validate_angles(angles)
    out: dict[str, np.ndarray] = {}
    position = pose3d.position.astype(np.float64)
    for name, parts in spec.items():
        unknown = [k for k in parts if k not in pose3d.keypoints]
        if unknown:
            raise ThreeDParamsError(
                f"angle {name!r} names unknown body parts {unknown}; known: {pose3d.keypoints}"
            )
        ia, ib, ic = (pose3d.keypoints.index(k) for k in parts)
        v1 = position[:, :, ia] - position[:, :, ib]
        v2 = position[:, :, ic] - position[:, :, ib]
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.sum(v1 * v2, axis=-1) / (
                np.linalg.norm(v1, axis=-1) * np.linalg.norm(v2, axis=-1)
            )
            out[name] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return out
