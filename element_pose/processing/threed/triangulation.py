"""Triangulation of 2D pose estimates from calibrated cameras (anipose style).

Parameters are a plain JSON-able dict; the names follow anipose's ``[triangulation]``
section so that a section can be reused (:func:`triangulation_params_from_anipose`)::

    {
        "score_threshold": 0.8,      # 2D points below this confidence are not used
        "ransac": False,             # pick the best camera subset per point
        "ransac_threshold": 5.0,     # px: largest subset with mean error below wins
        "min_cameras": 2,            # smallest camera subset (ransac)
        "optim": False,              # spatio-temporal optimisation (aniposelib)
        "constraints": [],           # [[a, b], ...] body parts at a fixed distance
        "constraints_weak": [],      # same, weaker weight
        "scale_smooth": 2.0,         # weight of temporal smoothness (optim)
        "scale_length": 2.0,         # weight of the constraints (optim)
        "scale_length_weak": 1.0,    # weight of the weak constraints (optim)
        "reproj_error_threshold": 5.0,  # px, robust loss scale (optim)
        "reproj_loss": "soft_l1",    # "linear", "soft_l1" or "huber" (optim)
        "n_deriv_smooth": 3,         # order of the smoothed derivative (optim)
        "axes": [],                  # [["x", a, b], ["z", c, d]]: axis from a to b
        "reference_point": None,     # body part placed at the origin
    }

Defaults are anipose's.  :func:`triangulate` returns a :class:`TriangulationResult`:
a 3D :class:`~element_pose.core.pose.PoseData` (in the calibration's unit; confidence is
the smallest 2D score among the cameras used, as anipose does) and, per frame,
individual and keypoint, the mean reprojection error in pixels and the number of
cameras used.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BeforeValidator, Field, model_validator

from element_pose.core.params import Int, ParamSet, register_params
from element_pose.core.pose import PoseData

from .calibration import CalibrationResult, _quiet
from .errors import ThreeDParamsError, TriangulationError
from .geometry import CameraParams, align_axes, reprojection_errors, triangulate_dlt
from .postprocess import FILTER_3D_DEFAULTS, validate_angles

logger = logging.getLogger(__name__)

__all__ = [
    "TRIANGULATION_DEFAULTS",
    "Filter3DParams",
    "TriangulationParams",
    "TriangulationResult",
    "TriangulationSetParams",
    "align_axes",
    "triangulate",
    "triangulation_params_from_anipose",
    "validate_triangulation_params",
]

TRIANGULATION_DEFAULTS: dict[str, Any] = {
    "score_threshold": 0.8,
    "ransac": False,
    "ransac_threshold": 5.0,
    "min_cameras": 2,
    "optim": False,
    "constraints": [],
    "constraints_weak": [],
    "scale_smooth": 2.0,
    "scale_length": 2.0,
    "scale_length_weak": 1.0,
    "reproj_error_threshold": 5.0,
    "reproj_loss": "soft_l1",
    "n_deriv_smooth": 3,
    "axes": [],
    "reference_point": None,
}
REPROJ_LOSSES = ("linear", "soft_l1", "huber")
_FPS_TOLERANCE = 1e-3


# ----------------------------------------------------------------- parameters
def _pairs(value: Any, key: str) -> list[list[str]]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ThreeDParamsError(f"{key!r} must be a list of [body part, body part] pairs")
    out = []
    for pair in value:
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ThreeDParamsError(
                f"{key!r}: each entry must be a pair of body parts, got {pair!r}"
            )
        a, b = (str(x) for x in pair)
        if a == b:
            raise ThreeDParamsError(f"{key!r}: a pair needs two different body parts, got {pair!r}")
        out.append([a, b])
    return out


def _axes(value: Any) -> list[list[str]]:
    if not value:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ThreeDParamsError(
            f"'axes' must be two entries like [['x', 'a', 'b'], ['z', 'c', 'd']], got {value!r}"
        )
    out = []
    for entry in value:
        if isinstance(entry, str) or not isinstance(entry, Sequence) or len(entry) != 3:
            raise ThreeDParamsError(f"'axes': each entry must be [axis, from, to], got {entry!r}")
        axis, a, b = (str(x) for x in entry)
        axis = axis.lower()
        if axis not in ("x", "y", "z"):
            raise ThreeDParamsError(f"'axes': axis must be x, y or z, got {entry[0]!r}")
        if a == b:
            raise ThreeDParamsError(
                f"'axes': an axis needs two different body parts, got {entry!r}"
            )
        out.append([axis, a, b])
    if out[0][0] == out[1][0]:
        raise ThreeDParamsError(f"'axes' must name two different axes, got {value!r}")
    return out


Pairs = Annotated[list[list[str]], BeforeValidator(lambda v: _pairs(v, "constraints"))]
WeakPairs = Annotated[list[list[str]], BeforeValidator(lambda v: _pairs(v, "constraints_weak"))]
Weight = Annotated[float, Field(ge=0)]
PixelThreshold = Annotated[float, Field(gt=0)]
_D = TRIANGULATION_DEFAULTS


class TriangulationParams(ParamSet):
    """Triangulation of 2D poses (:func:`triangulate`); anipose's ``[triangulation]`` names."""

    where: ClassVar[str] = "triangulation params"
    error: ClassVar[type[ValueError]] = ThreeDParamsError
    normalise: ClassVar[bool] = True

    score_threshold: Annotated[float, Field(ge=0, le=1)] = Field(
        _D["score_threshold"], description="2D points below this likelihood are ignored")
    ransac: bool = Field(_D["ransac"], description="RANSAC triangulation")
    ransac_threshold: PixelThreshold = Field(
        _D["ransac_threshold"], description="RANSAC inlier threshold (pixels)")
    min_cameras: Annotated[Int, Field(ge=2)] = Field(
        _D["min_cameras"], description="cameras needed for a 3D point")
    optim: bool = Field(_D["optim"], description="anipose's spatio-temporal optimisation")
    constraints: Pairs = Field([],
                               description="[a, b] body-part pairs of fixed length")
    constraints_weak: WeakPairs = Field([],
                                        description="weak [a, b] length constraints")
    scale_smooth: Weight = Field(_D["scale_smooth"], description="smoothness weight")
    scale_length: Weight = Field(_D["scale_length"], description="length-constraint weight")
    scale_length_weak: Weight = Field(_D["scale_length_weak"],
                                      description="weak length-constraint weight")
    reproj_error_threshold: PixelThreshold = Field(
        _D["reproj_error_threshold"], description="reprojection error threshold (pixels)")
    reproj_loss: Literal[REPROJ_LOSSES] = Field(  # type: ignore[valid-type]
        _D["reproj_loss"], description="reprojection loss")
    n_deriv_smooth: Annotated[Int, Field(ge=1)] = Field(
        _D["n_deriv_smooth"], description="derivative order smoothed")
    axes: Annotated[list[list[str]], BeforeValidator(_axes)] = Field(
        [], description="[[axis, from, to], [axis, from, to]] to align axes")
    reference_point: Annotated[str, Field(min_length=1)] | None = Field(
        _D["reference_point"], description="body part placed at the origin")


class Filter3DParams(ParamSet):
    """The 3D filter of :func:`~element_pose.processing.threed.filter_3d`."""

    medfilt: Annotated[Int, Field(ge=1)] = Field(
        FILTER_3D_DEFAULTS["medfilt"], description="odd median window in frames")
    offset_threshold: Annotated[float, Field(gt=0)] = Field(
        FILTER_3D_DEFAULTS["offset_threshold"],
        description="largest distance from the median (units)")
    score_threshold: Annotated[float, Field(ge=0, le=1)] = Field(
        FILTER_3D_DEFAULTS["score_threshold"], description="points below this score are dropped")
    interpolate: bool = Field(FILTER_3D_DEFAULTS["interpolate"], description="fill gaps")
    max_gap: Annotated[Int, Field(ge=1)] | None = Field(
        FILTER_3D_DEFAULTS["max_gap"], description="longest gap filled (null: any)")

    @model_validator(mode="after")
    def _odd_window(self) -> Filter3DParams:
        if self.medfilt % 2 == 0:
            raise ValueError(f"filter_3d param 'medfilt' must be odd, got {self.medfilt}")
        return self


def _filter_3d(value: Any) -> Any:
    """``true``: the filter with its defaults; ``false``/``null``: no filter."""
    return {} if value is True else None if value is False else value


@register_params("triangulation", "multicam.TriangulationParamSet")
class TriangulationSetParams(TriangulationParams):
    """Triangulation, optional 3D filter and joint angles (Triangulation).

    Stored normalised (defaults filled in), so equal parameter sets hash equally.
    """

    where: ClassVar[str] = ""

    filter_3d: Annotated[Filter3DParams | None, BeforeValidator(_filter_3d)] = Field(
        None, description="3D filter: true, or options (null/false: none)")
    angles: Annotated[dict[str, list[str]],
                      BeforeValidator(lambda v: validate_angles(v) if v else {})] = Field(
        {}, description="anipose angles {name: [a, b, c]}")


def validate_triangulation_params(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check triangulation parameters (:class:`TriangulationParams`); return a normalised copy.

    Body-part names are checked against the data in :func:`triangulate`.

    Raises:
        ThreeDParamsError: naming the offending key.
    """
    return TriangulationParams.for_storage(params)


def triangulation_params_from_anipose(section: Mapping[str, Any]) -> dict[str, Any]:
    """Convert an anipose ``[triangulation]`` section to validated parameters.

    Keys this module does not know (``cam_regex``, ``triangulate``...) are dropped.
    """
    known = {k: v for k, v in section.items() if k in TRIANGULATION_DEFAULTS}
    dropped = sorted(set(section) - set(known))
    if dropped:
        logger.info("ignoring anipose triangulation keys %s", dropped)
    return validate_triangulation_params(known)


# --------------------------------------------------------------------- result
@dataclasses.dataclass
class TriangulationResult:
    """3D poses and per-point diagnostics.

    Attributes:
        pose: 3D pose data (``n_space`` 3) in the calibration unit; confidence is the
            smallest 2D score among the cameras used (NaN where not triangulated).
        reprojection_error: ``(n_frames, n_individuals, n_keypoints)`` float32, mean
            pixel distance between the 3D point's projections and the 2D points of the
            cameras used; NaN where nothing was triangulated.
        n_cameras: ``(n_frames, n_individuals, n_keypoints)`` int16, cameras used.
        cameras: Camera names, in the order used.
        params: The validated triangulation parameters.
        transform: ``None``, or ``{"rotation": 3x3, "origin": 3}`` (lists): the aligned
            points are ``rotation @ (p - origin)`` for calibration-frame points ``p``.
    """

    pose: PoseData
    reprojection_error: np.ndarray
    n_cameras: np.ndarray
    cameras: list[str]
    params: dict[str, Any]
    transform: dict[str, list] | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-able per-keypoint summary: fraction triangulated, median and mean error."""
        out: dict[str, Any] = {"keypoints": {}}
        with np.errstate(invalid="ignore"):
            for j, name in enumerate(self.pose.keypoints):
                err = self.reprojection_error[:, :, j]
                ok = np.isfinite(self.pose.position[:, :, j]).all(axis=-1)
                finite = err[np.isfinite(err)]
                out["keypoints"][name] = {
                    "fraction_triangulated": float(ok.mean()) if ok.size else 0.0,
                    "median_reprojection_error": float(np.median(finite)) if finite.size else None,
                    "mean_reprojection_error": float(finite.mean()) if finite.size else None,
                }
            finite = self.reprojection_error[np.isfinite(self.reprojection_error)]
        out["mean_reprojection_error"] = float(finite.mean()) if finite.size else None
        out["median_reprojection_error"] = float(np.median(finite)) if finite.size else None
        return out


# ------------------------------------------------------------------ checks
def _check_inputs(names: list[str], poses: list[PoseData]) -> tuple[list[str], list[str]]:
    """Check the cameras' 2D poses agree; their body parts and individuals.

    Raises:
        TriangulationError: naming the camera and what differs.
    """
    for name, pose in zip(names, poses, strict=True):
        if not isinstance(pose, PoseData):
            raise TriangulationError(
                f"camera {name!r}: expected PoseData, got {type(pose).__name__}"
            )
        if pose.n_space != 2:
            raise TriangulationError(f"camera {name!r}: expected 2D poses, got {pose.n_space}D")
    _check_time_base(names, poses)
    keypoints = list(poses[0].keypoints)
    for name, pose in zip(names, poses, strict=True):
        _check_same_keypoints(keypoints, name, names[0], pose)
    individuals = list(poses[0].individuals)
    for name, pose in zip(names, poses, strict=True):
        if sorted(pose.individuals) != sorted(individuals):
            raise TriangulationError(
                f"cameras disagree on individuals: {names[0]!r} has {individuals}, {name!r} has "
                f"{pose.individuals}; identities must match across cameras"
            )
    return keypoints, individuals


def _check_time_base(names: list[str], poses: list[PoseData]) -> None:
    """The cameras have as many frames and (where known) the same frame rate."""
    frames = {n: p.n_frames for n, p in zip(names, poses, strict=True)}
    if len(set(frames.values())) > 1:
        raise TriangulationError(
            f"cameras disagree on the number of frames: {frames}; trim or synchronise the "
            "videos so that frame i of every camera was taken at the same time"
        )
    rates = {n: p.fps for n, p in zip(names, poses, strict=True) if p.fps is not None}
    if rates:
        ref = next(iter(rates.values()))
        if any(abs(r - ref) > _FPS_TOLERANCE * ref for r in rates.values()):
            raise TriangulationError(f"cameras disagree on the frame rate: {rates}")


def _check_same_keypoints(keypoints: list[str], name: str, first: str, pose: PoseData) -> None:
    """Camera ``name`` tracks exactly the body parts of the first camera."""
    missing = [k for k in keypoints if k not in pose.keypoints]
    extra = [k for k in pose.keypoints if k not in keypoints]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"camera {name!r} lacks body parts {missing}")
        if extra:
            parts.append(
                f"camera {name!r} has body parts {extra} that camera {first!r} lacks"
            )
        raise TriangulationError(
            "; ".join(parts) + ": every camera must track the same body parts"
        )


def _check_names(params: Mapping[str, Any], keypoints: list[str]) -> None:
    known = set(keypoints)
    checks = {
        "constraints": [n for pair in params["constraints"] for n in pair],
        "constraints_weak": [n for pair in params["constraints_weak"] for n in pair],
        "axes": [n for entry in params["axes"] for n in entry[1:]],
        "reference_point": [params["reference_point"]] if params["reference_point"] else [],
    }
    for key, used in checks.items():
        unknown = sorted({n for n in used if n not in known})
        if unknown:
            raise TriangulationError(f"unknown body parts in {key}: {unknown}; known: {keypoints}")


# -------------------------------------------------------------- triangulation
def _plain(cameras: Sequence[CameraParams], pts: np.ndarray, valid: np.ndarray):
    normalized = np.stack([cam.undistort(pts[c]) for c, cam in enumerate(cameras)])
    extrinsics = np.stack([cam.extrinsics for cam in cameras])
    p3d = triangulate_dlt(normalized, extrinsics, valid)
    used = valid & np.isfinite(p3d[:, 0])[None]
    return p3d, used


def _ransac(
    cameras: Sequence[CameraParams],
    pts: np.ndarray,
    valid: np.ndarray,
    min_cameras: int,
    threshold: float,
):
    """Per point, the largest camera subset whose mean reprojection error is below
    ``threshold``; failing that, the subset with the smallest error."""
    n_cams, n_points, _ = pts.shape
    normalized = np.stack([cam.undistort(pts[c]) for c, cam in enumerate(cameras)])
    extrinsics = np.stack([cam.extrinsics for cam in cameras])
    best_p3d = np.full((n_points, 3), np.nan)
    best_used = np.zeros((n_cams, n_points), dtype=bool)
    decided = np.zeros(n_points, dtype=bool)
    fallback_err = np.full(n_points, np.inf)
    fallback_p3d = np.full((n_points, 3), np.nan)
    fallback_used = np.zeros((n_cams, n_points), dtype=bool)
    for size in range(n_cams, min_cameras - 1, -1):
        size_err = np.full(n_points, np.inf)
        size_p3d = np.full((n_points, 3), np.nan)
        size_used = np.zeros((n_cams, n_points), dtype=bool)
        for subset in itertools.combinations(range(n_cams), size):
            sub = list(subset)
            ok = np.flatnonzero(valid[sub].all(axis=0) & ~decided)
            if ok.size == 0:
                continue
            mask = np.zeros((n_cams, ok.size), dtype=bool)
            mask[sub] = True
            p3d = triangulate_dlt(normalized[:, ok], extrinsics, mask)
            err = np.mean(
                [np.linalg.norm(cameras[c].project(p3d) - pts[c, ok], axis=-1) for c in sub], axis=0
            )
            err = np.where(np.isfinite(err), err, np.inf)
            better = err < size_err[ok]
            idx = ok[better]
            size_err[idx] = err[better]
            size_p3d[idx] = p3d[better]
            size_used[:, idx] = mask[:, better]
        accept = (size_err < threshold) & ~decided
        best_p3d[accept] = size_p3d[accept]
        best_used[:, accept] = size_used[:, accept]
        decided |= accept
        improve = (size_err < fallback_err) & ~decided
        fallback_err[improve] = size_err[improve]
        fallback_p3d[improve] = size_p3d[improve]
        fallback_used[:, improve] = size_used[:, improve]
    rest = ~decided & np.isfinite(fallback_err)
    best_p3d[rest] = fallback_p3d[rest]
    best_used[:, rest] = fallback_used[:, rest]
    return best_p3d, best_used


def _optimise(
    cameras: Sequence[CameraParams],
    pts: np.ndarray,
    p3d: np.ndarray,
    params: Mapping[str, Any],
    keypoints: list[str],
    label: str,
) -> np.ndarray:
    """aniposelib's spatio-temporal optimisation of one individual's points.

    Args:
        pts: ``(n_cams, n_frames, n_keypoints, 2)`` 2D points used (NaN elsewhere).
        p3d: ``(n_frames, n_keypoints, 3)`` initial 3D points.
    """
    from aniposelib.cameras import CameraGroup
    from numba.core.errors import NumbaWarning

    n_frames = p3d.shape[0]
    finite = np.isfinite(p3d[:, :, 0])
    if finite.sum() < 20 or n_frames <= params["n_deriv_smooth"] + 1:
        logger.warning(
            "%s: too few 3D points (%d) to optimise; kept the linear result",
            label,
            int(finite.sum()),
        )
        return p3d
    with np.errstate(invalid="ignore"):
        motion = np.nanmean(np.abs(np.diff(p3d, axis=0)))
    if not np.isfinite(motion) or motion == 0:
        logger.warning("%s: points do not move; kept the linear result (optim needs motion)", label)
        return p3d
    index = {k: i for i, k in enumerate(keypoints)}
    constraints = [[index[a], index[b]] for a, b in params["constraints"]]
    constraints_weak = [[index[a], index[b]] for a, b in params["constraints_weak"]]
    cgroup = CameraGroup.from_dicts([c.to_anipose_dict() for c in cameras])
    with _quiet(logger), warnings.catch_warnings():
        # aniposelib's numba functions fall back to object mode, loudly, on first use
        warnings.simplefilter("ignore", NumbaWarning)
        out = cgroup.optim_points(
            pts,
            p3d,
            constraints=constraints,
            constraints_weak=constraints_weak,
            scale_smooth=params["scale_smooth"],
            scale_length=params["scale_length"],
            scale_length_weak=params["scale_length_weak"],
            reproj_error_threshold=params["reproj_error_threshold"],
            reproj_loss=params["reproj_loss"],
            n_deriv_smooth=params["n_deriv_smooth"],
            verbose=False,
        )
    out = np.asarray(out, dtype=np.float64).reshape(p3d.shape)
    out[:, ~finite.any(axis=0)] = np.nan  # body parts never triangulated stay missing
    return out


# ---------------------------------------------------------------------- main
def triangulate(
    poses_by_camera: Mapping[str, PoseData],
    calibration: CalibrationResult | Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
) -> TriangulationResult:
    """Triangulate synchronised 2D poses of two or more calibrated cameras.

    Frame ``i`` of every camera must show the same instant.  Keypoints and
    individuals are matched by name (the first camera's order is kept); individuals
    are triangulated separately, so identities must agree across cameras.  A 2D
    point is used when its position is finite and its confidence is at least
    ``score_threshold`` (a NaN confidence counts as 0 unless the threshold is 0).

    Args:
        poses_by_camera: Camera name -> 2D :class:`~element_pose.core.pose.PoseData`.
        calibration: A :class:`CalibrationResult` or its :meth:`~CalibrationResult.to_dict`.
        params: Triangulation parameters (see :func:`validate_triangulation_params`).

    Returns:
        The 3D poses and per-point reprojection errors and camera counts.

    Raises:
        TriangulationError: cameras unknown to the calibration, frame counts or rates
            that disagree, body parts or individuals missing in a camera, unknown body
            parts in constraints/axes/reference_point.
        ThreeDParamsError: malformed parameters.
    """
    p = validate_triangulation_params(params)
    calib = (
        calibration
        if isinstance(calibration, CalibrationResult)
        else CalibrationResult.from_dict(calibration)
    )
    names = [str(n) for n in poses_by_camera]
    if len(names) < 2:
        raise TriangulationError(f"triangulation needs at least two cameras, got {names}")
    unknown = [n for n in names if n not in calib.camera_names]
    if unknown:
        raise TriangulationError(
            f"cameras {unknown} are not in the calibration (cameras: {calib.camera_names})"
        )
    if p["min_cameras"] > len(names):
        raise TriangulationError(f"min_cameras is {p['min_cameras']} but only {len(names)} cameras")
    cameras = [calib.camera(n) for n in names]
    poses = [poses_by_camera[n] for n in names]
    keypoints, individuals = _check_inputs(names, poses)
    _check_names(p, keypoints)
    poses = [pose.select(keypoints=keypoints, individuals=individuals) for pose in poses]

    pts = np.stack([pose.position for pose in poses]).astype(np.float64)  # (C, N, I, J, 2)
    conf = np.stack([pose.confidence for pose in poses]).astype(np.float64)  # (C, N, I, J)
    valid = np.isfinite(pts).all(axis=-1)
    if p["score_threshold"] > 0:
        with np.errstate(invalid="ignore"):
            valid &= conf >= p["score_threshold"]
    pts[~valid] = np.nan
    n_cams, n_frames, n_ind, n_kp, _ = pts.shape

    p3d = np.full((n_frames, n_ind, n_kp, 3), np.nan)
    used = np.zeros((n_cams, n_frames, n_ind, n_kp), dtype=bool)
    for i, individual in enumerate(individuals):
        flat = pts[:, :, i].reshape(n_cams, -1, 2)
        flat_valid = valid[:, :, i].reshape(n_cams, -1)
        if p["ransac"]:
            q, u = _ransac(cameras, flat, flat_valid, p["min_cameras"], p["ransac_threshold"])
        else:
            q, u = _plain(cameras, flat, flat_valid)
        q = q.reshape(n_frames, n_kp, 3)
        u = u.reshape(n_cams, n_frames, n_kp)
        if p["optim"]:
            if not p["ransac"]:
                u = valid[:, :, i]  # optim also uses points seen by a single camera
            used_pts = np.where(u[..., None], pts[:, :, i], np.nan)
            q = _optimise(cameras, used_pts, q, p, keypoints, f"individual {individual!r}")
        p3d[:, i] = q
        used[:, :, i] = u & np.isfinite(q[None, ..., 0])

    # diagnostics, in the calibration frame
    errs = reprojection_errors(
        cameras, p3d.reshape(-1, 3), np.where(used[..., None], pts, np.nan).reshape(n_cams, -1, 2)
    ).reshape(n_cams, n_frames, n_ind, n_kp)
    n_used = used.sum(axis=0).astype(np.int16)
    with np.errstate(invalid="ignore"):
        mean_err = np.where(
            n_used > 0, np.nansum(np.where(used, errs, 0.0), axis=0) / np.maximum(n_used, 1), np.nan
        )
    score = np.where(used, np.nan_to_num(conf, nan=0.0), np.inf).min(axis=0)
    score[n_used == 0] = np.nan

    p3d, transform = align_axes(p3d, keypoints, p["axes"], p["reference_point"])

    first = poses[0]
    step = {
        "step": "triangulate",
        "cameras": names,
        **p,
        "calibration_error": calib.reprojection_error,
        "units": calib.units,
        "transform": transform,
        "inputs": {
            n: [dict(s) for s in pose.provenance] for n, pose in zip(names, poses, strict=True)
        },
    }
    pose3d = PoseData(
        position=p3d.astype(np.float32),
        confidence=score.astype(np.float32),
        keypoints=keypoints,
        individuals=individuals,
        fps=first.fps,
        timestamps=first.timestamps,
        start_time=first.start_time,
        skeleton=list(first.skeleton),
        scorer=first.scorer,
        source_software=first.source_software,
        source_software_version=first.source_software_version,
        provenance=[step],
    )
    n_ok = int(np.isfinite(p3d).all(axis=-1).sum())
    logger.info("triangulated %d of %d points from %d cameras", n_ok, p3d[..., 0].size, n_cams)
    return TriangulationResult(
        pose=pose3d,
        reprojection_error=mean_err.astype(np.float32),
        n_cameras=n_used,
        cameras=names,
        params=p,
        transform=transform,
    )
