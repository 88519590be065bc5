"""A filter pipeline for pose estimates, described by plain JSON-able parameters.

Parameters are a dict with one key, ``steps``, a list of steps applied in order::

    {"steps": [
        {"step": "confidence_threshold", "threshold": 0.6},
        {"step": "median", "window": 5},
        {"step": "offset_threshold", "window": 7, "threshold": 10},
        {"step": "savgol", "window": 7, "polyorder": 2},
        {"step": "interpolate", "max_gap": 5},
    ]}

:class:`FilterParams` (a pydantic model, one per step kind) checks them and
:func:`validate_filter_params` returns a normalised copy (defaults filled in,
numbers typed, names sorted) so that equal pipelines hash equally;
:func:`canonical_params_json` gives the string to hash.  :func:`apply_filters`
runs the pipeline on a :class:`~element_pose.core.pose.PoseData` and returns a new one
whose ``provenance`` lists every step with its parameters and the software that
ran it.  The input is never modified.

Steps (windows and gaps are in frames, thresholds in the position unit, pixels
for 2D data).  Every step also accepts ``"keypoints"`` and/or ``"individuals"``,
lists of names restricting the step to those body parts / animals.

``confidence_threshold`` (``threshold``: number >= 0)
    Points whose confidence is below ``threshold`` (or NaN) become missing (NaN).
    movement's ``filter_by_confidence``.
``median`` (``window``: odd int >= 1; 1 switches the filter off)
    Centred running median over time, NaN-aware (the median of the points present
    in the window; the edges are reflected).  Missing points stay missing -- use
    ``interpolate`` to fill them.  movement's ``rolling_filter(statistic="median",
    min_periods=1)``.
``offset_threshold`` (``window``: odd int >= 3, ``threshold``: number > 0)
    Anipose's ``medfilt`` + ``offset_threshold``: a point farther than ``threshold``
    from the running median of its own trace (window ``window``) becomes missing.
    Distance is Euclidean over x, y (and z), where Anipose adds ``|dx| + |dy|``.
    Own implementation (movement has no such filter); the median is movement's.
``savgol`` (``window``: odd int >= 3, ``polyorder``: int, 0 <= polyorder < window,
default 2)
    Savitzky-Golay smoothing over time.  So that gaps do not grow by half a window
    (scipy propagates NaN), gaps are bridged linearly for the smoothing only and
    missing points stay missing.  movement's ``savgol_filter``.
``interpolate`` (``max_gap``: int >= 1 or null for no limit; ``method``: one of
``linear`` (default), ``nearest``, ``cubic``, ``pchip``)
    Fills runs of at most ``max_gap`` consecutive missing frames; longer runs and
    missing points at the start or end of the recording stay missing.
    movement's ``interpolate_over_time``.

Filters act on each individual, keypoint and coordinate trace independently, so
multi-animal data are filtered per individual.  Confidence values are left as the
estimator reported them.  A point is missing as a whole: when one coordinate
becomes NaN, all its coordinates do.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import AfterValidator, Field, model_validator

from element_pose.core.params import Int, ParamsError, ParamSet, register_params
from element_pose.core.pose import PoseData
from element_pose.version import __version__

logger = logging.getLogger(__name__)

__all__ = [
    "STEP_NAMES",
    "AllMissingError",
    "FilterError",
    "FilterParams",
    "FilterParamsError",
    "UnknownNameError",
    "WindowTooLongError",
    "apply_filters",
    "canonical_params_json",
    "validate_filter_params",
]

INTERPOLATION_METHODS = ("linear", "nearest", "cubic", "pchip")
_SELECTORS = ("keypoints", "individuals")


# ------------------------------------------------------------------ errors
class FilterError(ValueError):
    """Base class of the errors raised by the filter pipeline."""


class FilterParamsError(FilterError, ParamsError):
    """The filter parameters are malformed (unknown step, missing key, bad value)."""


class WindowTooLongError(FilterError):
    """A filter window is longer than the recording."""


class AllMissingError(FilterError):
    """There is no data to filter, or a step left no point at all."""


class UnknownNameError(FilterError):
    """A step names body parts or individuals that the pose data do not have."""


# --------------------------------------------------------------- validation
Window = Annotated[Int, Field(ge=3, le=100_001, description="odd window in frames")]
Names = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1),
                  AfterValidator(lambda names: sorted(set(names)))]


def _odd(window: int, hint: str = "") -> None:
    if window % 2 == 0:
        raise ValueError(f"'window' must be odd so the filter is centred, got {window}{hint}")


class _Step(ParamSet):
    keypoints: Names | None = Field(None, description="restrict the step to these body parts")
    individuals: Names | None = Field(None, description="restrict the step to these individuals")

    def dump(self) -> dict[str, Any]:
        """The step with its defaults, without the selectors it does not use."""
        return {k: v for k, v in self.model_dump(mode="json").items()
                if v is not None or k not in _SELECTORS}


class ConfidenceThreshold(_Step):
    """Points whose likelihood is below ``threshold`` become missing."""

    step: Literal["confidence_threshold"]
    threshold: Annotated[float, Field(ge=0, le=1)] = Field(
        description="points whose likelihood is below become missing")


class Median(_Step):
    """Centred running median (window 1: off)."""

    step: Literal["median"]
    window: Annotated[Int, Field(ge=1, le=100_001)] = Field(
        description="odd window in frames (1: off)")

    @model_validator(mode="after")
    def _odd_window(self) -> Median:
        _odd(self.window, " (window 1 = off)")
        return self


class OffsetThreshold(_Step):
    """A point farther than ``threshold`` from its running median becomes missing."""

    step: Literal["offset_threshold"]
    window: Window
    threshold: Annotated[float, Field(gt=0)] = Field(
        description="largest distance from the running median (pixels)")

    @model_validator(mode="after")
    def _odd_window(self) -> OffsetThreshold:
        _odd(self.window)
        return self


class Savgol(_Step):
    """Savitzky-Golay smoothing."""

    step: Literal["savgol"]
    window: Window
    polyorder: Annotated[Int, Field(ge=0)] = Field(2, description="polynomial order (< window)")

    @model_validator(mode="after")
    def _odd_window_above_polyorder(self) -> Savgol:
        _odd(self.window)
        if self.polyorder >= self.window:
            raise ValueError(f"'polyorder' must be >= 0 and < window ({self.window}), "
                             f"got {self.polyorder}")
        return self


class Interpolate(_Step):
    """Fill gaps of at most ``max_gap`` frames."""

    step: Literal["interpolate"]
    max_gap: Annotated[Int, Field(ge=1)] | None = Field(
        description="longest gap filled, in frames (null: any)")
    method: Literal[INTERPOLATION_METHODS] = Field(  # type: ignore[valid-type]
        "linear", description="interpolation method")


Step = Annotated[ConfidenceThreshold | Median | OffsetThreshold | Savgol | Interpolate,
                 Field(discriminator="step")]
STEP_NAMES = ("confidence_threshold", "median", "offset_threshold", "savgol", "interpolate")


@register_params("filter", "analysis.FilterParamSet")
class FilterParams(ParamSet):
    """A filter pipeline (FilteredPose); each step is {"step": name, ...}.

    Stored normalised: defaults filled in, integers as int, thresholds as float and
    selector lists sorted, so that equal pipelines hash equally.
    """

    error: ClassVar[type[ValueError]] = FilterParamsError
    normalise: ClassVar[bool] = True

    steps: list[Step] = Field(description="filter steps, applied in order")

    def dump(self) -> dict[str, Any]:
        """``{"steps": [normalised step dicts]}``."""
        return {"steps": [step.dump() for step in self.steps]}


def _check_known_names(steps: Sequence[Mapping[str, Any]], keypoints: Sequence[str] | None,
                       individuals: Sequence[str] | None) -> None:
    for i, step in enumerate(steps):
        for key, known in (("keypoints", keypoints), ("individuals", individuals)):
            absent = [n for n in step.get(key) or () if known is not None and n not in known]
            if absent:
                label = "body parts" if key == "keypoints" else "individuals"
                raise UnknownNameError(f"filter step {i} ({step['step']}): unknown {label} "
                                       f"{absent}; the data have {list(known or ())}")


def validate_filter_params(
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | str,
    keypoints: Sequence[str] | None = None,
    individuals: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Check filter parameters (:class:`FilterParams`) and return their normalised form.

    Args:
        params: ``{"steps": [...]}``; a bare list of steps, or either as a JSON
            string, is accepted too.
        keypoints: When given, the body parts the data have; steps naming others
            raise :class:`UnknownNameError`.
        individuals: Likewise for individuals.

    Returns:
        ``{"steps": [normalised step dicts]}``, JSON-serialisable.

    Raises:
        FilterParamsError: unknown step or key, missing key, wrong type or value.
        UnknownNameError: a step names keypoints/individuals not in the data.
    """
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except json.JSONDecodeError as err:
            raise FilterParamsError(f"filter params: not valid JSON ({err})") from None
    if not isinstance(params, Mapping):
        params = {"steps": params}
    normalised = FilterParams.for_storage(params)
    _check_known_names(normalised["steps"], keypoints, individuals)
    return normalised


def canonical_params_json(params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | str) -> str:
    """The normalised parameters as compact, key-sorted JSON (a stable hash input)."""
    return json.dumps(validate_filter_params(params), sort_keys=True, separators=(",", ":"))


# ------------------------------------------------------------------ engine
def _movement() -> tuple[Any, str]:
    """Import movement's filtering module, keeping Python's warning display as it was.

    movement configures its own logging on import and redirects
    ``warnings.showwarning`` to it; we undo the latter.
    """
    from element_pose.core.util import package_version

    showwarning = warnings.showwarning
    try:
        from movement import filtering
    finally:
        warnings.showwarning = showwarning
    return filtering, package_version("movement")


def _accelerator_options():
    """xarray options for movement's calls: bottleneck rather than numbagg when possible.

    numbagg JIT-compiles its rolling median on first use (tens of seconds in each new
    process); bottleneck gives the same numbers at once.  One of them is needed for
    ``interpolate_over_time`` with ``max_gap``.
    """
    import importlib.util

    import xarray as xr

    if importlib.util.find_spec("bottleneck") is not None:
        return xr.set_options(use_bottleneck=True, use_numbagg=False)
    return xr.set_options(use_numbagg=True)


def _missing_points(position: np.ndarray) -> np.ndarray:
    """Boolean (frame, individual, keypoint): any coordinate is NaN."""
    return np.isnan(position).any(axis=-1)


def _as_dataarray(position: np.ndarray):
    """Wrap (frame, individual, keypoint, space) values in movement's dimension names."""
    import xarray as xr

    return xr.DataArray(
        position,
        dims=("time", "individuals", "keypoints", "space"),
        coords={"time": np.arange(position.shape[0])},  # frames: windows/gaps are in frames
    )


def _from_dataarray(da) -> np.ndarray:
    return np.asarray(da.transpose("time", "individuals", "keypoints", "space").values)


def _running_median(position: np.ndarray, window: int) -> np.ndarray:
    """NaN-aware centred running median over frames (movement's rolling_filter)."""
    filtering, _ = _movement()
    da = filtering.rolling_filter(_as_dataarray(position), window, "median", min_periods=1)
    return _from_dataarray(da)


def _bridge_gaps(position: np.ndarray) -> np.ndarray:
    """Linearly bridge NaN gaps of every trace, holding edge values; all-NaN traces -> 0."""
    n_frames = position.shape[0]
    flat = position.reshape(n_frames, -1).copy()
    frames = np.arange(n_frames)
    for j in range(flat.shape[1]):
        trace = flat[:, j]
        ok = np.isfinite(trace)
        if ok.all():
            continue
        if not ok.any():
            flat[:, j] = 0.0
            continue
        flat[~ok, j] = np.interp(frames[~ok], frames[ok], trace[ok])
    return flat.reshape(position.shape)


def _step_confidence_threshold(position, confidence, p):
    filtering, version = _movement()
    conf = _as_dataarray(np.broadcast_to(confidence[..., None], position.shape))
    da = filtering.filter_by_confidence(_as_dataarray(position), conf, threshold=p["threshold"])
    return _from_dataarray(da), {
        "implementation": "movement.filtering.filter_by_confidence",
        "software": "movement",
        "software_version": version,
    }


def _step_median(position, confidence, p):
    _, version = _movement()
    info = {
        "implementation": "movement.filtering.rolling_filter(statistic='median', min_periods=1)",
        "software": "movement",
        "software_version": version,
    }
    if p["window"] == 1:
        return position.copy(), {**info, "note": "window 1: filter off"}
    smoothed = _running_median(position, p["window"])
    smoothed[np.isnan(position)] = np.nan
    return smoothed, info


def _step_offset_threshold(position, confidence, p):
    _, version = _movement()
    reference = _running_median(position, p["window"])
    distance = np.sqrt(np.sum((position - reference) ** 2, axis=-1))
    with np.errstate(invalid="ignore"):
        jumps = distance > p["threshold"]
    out = position.copy()
    out[jumps] = np.nan
    return out, {
        "implementation": "element_pose.processing.filters (Anipose medfilt + "
        "offset_threshold, Euclidean distance to movement's running median)",
        "software": "element-pose",
        "software_version": __version__,
        "median_software": f"movement {version}",
    }


def _step_savgol(position, confidence, p):
    filtering, version = _movement()
    bridged = _bridge_gaps(position)
    da = filtering.savgol_filter(_as_dataarray(bridged), p["window"], polyorder=p["polyorder"])
    out = _from_dataarray(da)
    out[np.isnan(position)] = np.nan
    return out, {
        "implementation": "movement.filtering.savgol_filter (gaps bridged linearly for "
        "smoothing only; missing points stay missing)",
        "software": "movement",
        "software_version": version,
    }


def _step_interpolate(position, confidence, p):
    filtering, version = _movement()
    da = filtering.interpolate_over_time(
        _as_dataarray(position), method=p["method"], max_gap=p["max_gap"]
    )
    return _from_dataarray(da), {
        "implementation": "movement.filtering.interpolate_over_time",
        "software": "movement",
        "software_version": version,
    }


_RUNNERS = {
    "confidence_threshold": _step_confidence_threshold,
    "median": _step_median,
    "offset_threshold": _step_offset_threshold,
    "savgol": _step_savgol,
    "interpolate": _step_interpolate,
}


def apply_filters(
    pose: PoseData, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | str
) -> PoseData:
    """Run a filter pipeline on pose data.

    Args:
        pose: The pose estimates (2D or 3D, one or several individuals).  Not modified.
        params: Filter parameters (see the module docstring); validated first.

    Returns:
        A new :class:`PoseData` with filtered positions, the same confidence and time
        base, and one ``provenance`` entry per step: the normalised step parameters
        plus ``implementation``, ``software``, ``software_version``,
        ``n_missing_before`` and ``n_missing_after`` (points, over the whole data).

    Raises:
        FilterParamsError: malformed parameters.
        UnknownNameError: a step names body parts or individuals the data lack.
        WindowTooLongError: a window is longer than the recording.
        AllMissingError: the data have no point at all, or a step removed them all.
    """
    normalised = validate_filter_params(params, pose.keypoints, pose.individuals)
    if pose.n_frames == 0 or not np.isfinite(pose.position).all(axis=-1).any():
        raise AllMissingError(
            f"nothing to filter: all {pose.n_frames} frames of every body part are missing"
        )
    for i, step in enumerate(normalised["steps"]):
        window = step.get("window", 1)
        if window > pose.n_frames:
            raise WindowTooLongError(
                f"filter step {i} ({step['step']}): window of {window} frames is longer "
                f"than the recording ({pose.n_frames} frames)"
            )

    result = pose.replace(position=pose.position.copy(), confidence=pose.confidence.copy())
    for i, step in enumerate(normalised["steps"]):
        name = step["step"]
        ind = pose.individual_index(step["individuals"]) if "individuals" in step else None
        kp = pose.keypoint_index(step["keypoints"]) if "keypoints" in step else None
        ind_ix = ind if ind is not None else list(range(len(pose.individuals)))
        kp_ix = kp if kp is not None else list(range(len(pose.keypoints)))
        sel = np.ix_(np.arange(pose.n_frames), ind_ix, kp_ix)

        position = result.position.astype(np.float64)
        part = position[sel]
        if not np.isfinite(part).all(axis=-1).any():
            logger.warning("filter step %d (%s): the selected points are all missing", i, name)
            filtered, info = part.copy(), {
                "note": "selection all missing: nothing done",
                "software": "element-pose",
                "software_version": __version__,
            }
        else:
            with _accelerator_options():
                filtered, info = _RUNNERS[name](part, result.confidence[sel], step)
        filtered[_missing_points(filtered)] = np.nan
        position[sel] = filtered

        before = int(_missing_points(result.position).sum())
        after = int(_missing_points(position).sum())
        if not np.isfinite(position).all(axis=-1).any():
            raise AllMissingError(
                f"filter step {i} ({name}) with {step} left no point at all; "
                "loosen its parameters"
            )
        entry = {**step, **info, "n_missing_before": before, "n_missing_after": after}
        logger.debug("filter step %d: %s", i, entry)
        result = result.with_step(position.astype(np.float32), result.confidence, entry)
    return result
