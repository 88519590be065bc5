"""Multi-camera calibration from videos of a ChArUco board or a checkerboard.

Parameters are a plain JSON-able dict (so that a database can hash them);
:func:`validate_calibration_params` checks them and returns a normalised copy with
every default filled in::

    {
        "type": "charuco",          # or "checkerboard"
        "squares_x": 7,             # squares along the board's x (width)
        "squares_y": 5,             # squares along y (height)
        "square_length": 25.0,      # side of one square, in `units`
        "marker_length": 18.75,     # ArUco marker side (charuco only), in `units`
        "marker_bits": 4,           # 4x4 .. 7x7 markers (charuco only)
        "dict_size": 50,            # 50, 100, 250 or 1000 markers (charuco only)
        "legacy_pattern": False,    # boards drawn by OpenCV < 4.6 with even squares_y
        "units": "mm",              # label of the length unit; 3D output is in it
        "fisheye": False,           # OpenCV fisheye camera model
        "extra_distortion": False,  # also fit k2 (aniposelib fits k1 only by default)
        "frame_step": 5,            # look for the board in every n-th frame
        "min_detections": 5,        # usable board views needed per camera
        "seed": 0,                  # aniposelib samples points at random
        "bundle_adjust": {...},     # aniposelib bundle_adjust_iter options
    }

Sizes count *squares* for both board types (a checkerboard of 8 x 6 squares has
7 x 5 inner corners); :func:`calibration_params_from_anipose` converts an anipose
``[calibration]`` section (whose checkerboard ``board_size`` counts inner corners).

:func:`calibrate` detects the board with OpenCV's ArUco module (through aniposelib's
board classes, which use the OpenCV >= 4.7 ``CharucoDetector`` API), initialises
intrinsics and extrinsics and runs aniposelib's iterative bundle adjustment.
:mod:`element_pose.processing.threed.board` holds the parameters and the board
(importable from here too).  :class:`CalibrationResult` holds the cameras and the
reprojection error and converts to and from a plain dict (for database storage) and
anipose's ``calibration.toml``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import math
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.util import package_version
from element_pose.io.video import VideoError, probe_video

from .board import (
    BOARD_TYPES,
    CALIBRATION_DEFAULTS,
    DEFAULT_BUNDLE_ADJUST,
    DICT_SIZES,
    MARKER_BITS,
    MIN_BOARD_CORNERS,
    calibration_params_from_anipose,
    draw_board,
    make_board,
    validate_calibration_params,
)
from .errors import CalibrationError, ThreeDParamsError
from .geometry import CameraParams, reprojection_errors, triangulate_points

logger = logging.getLogger(__name__)

__all__ = [
    "BOARD_TYPES",
    "CALIBRATION_DEFAULTS",
    "DEFAULT_BUNDLE_ADJUST",
    "DICT_SIZES",
    "MARKER_BITS",
    "CalibrationResult",
    "calibrate",
    "calibration_params_from_anipose",
    "draw_board",
    "make_board",
    "validate_calibration_params",
]

# --------------------------------------------------------------------- result
@dataclasses.dataclass
class CalibrationResult:
    """Calibrated cameras of one camera group.

    Attributes:
        cameras: One :class:`CameraParams` per camera, in calibration order.
        reprojection_error: Mean reprojection error (pixels) of the board corners
            seen by two or more cameras, triangulated with the result.
        reprojection_error_median: Median of the same errors.
        camera_errors: Mean reprojection error per camera name.
        n_detections: Usable board views (>= 9 corners) per camera name.
        n_points: Number of board corners (seen by >= 2 cameras) behind the errors.
        units: Length unit of the translations (and of triangulated points).
        params: The validated calibration parameters, or ``None`` when unknown.
        software: Versions of the software that produced the calibration.
    """

    cameras: list[CameraParams]
    reprojection_error: float | None = None
    reprojection_error_median: float | None = None
    camera_errors: dict[str, float] = dataclasses.field(default_factory=dict)
    n_detections: dict[str, int] = dataclasses.field(default_factory=dict)
    n_points: int = 0
    units: str = "mm"
    params: dict[str, Any] | None = None
    software: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cameras = [
            c if isinstance(c, CameraParams) else CameraParams.from_dict(c) for c in self.cameras
        ]
        names = self.camera_names
        if not names:
            raise ThreeDParamsError("a calibration needs at least one camera")
        if len(set(names)) != len(names):
            raise ThreeDParamsError(f"camera names must be distinct, got {names}")

    @property
    def camera_names(self) -> list[str]:
        """Camera names, in calibration order."""
        return [c.name for c in self.cameras]

    def camera(self, name: str) -> CameraParams:
        """One camera by name."""
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise ThreeDParamsError(
            f"no camera {name!r} in the calibration; cameras: {self.camera_names}"
        )

    # ------------------------------------------------------------ plain dict
    def to_dict(self) -> dict[str, Any]:
        """JSON-able plain form (for database storage); inverse of :meth:`from_dict`."""
        return {
            "cameras": [c.to_dict() for c in self.cameras],
            "reprojection_error": _float_or_none(self.reprojection_error),
            "reprojection_error_median": _float_or_none(self.reprojection_error_median),
            "camera_errors": {k: _float_or_none(v) for k, v in self.camera_errors.items()},
            "n_detections": {k: int(v) for k, v in self.n_detections.items()},
            "n_points": int(self.n_points),
            "units": self.units,
            "params": json.loads(json.dumps(self.params)) if self.params is not None else None,
            "software": dict(self.software),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CalibrationResult:
        """Build from :meth:`to_dict` output."""
        if "cameras" not in d:
            raise ThreeDParamsError("calibration dict lacks 'cameras'")
        return cls(
            cameras=[CameraParams.from_dict(c) for c in d["cameras"]],
            reprojection_error=d.get("reprojection_error"),
            reprojection_error_median=d.get("reprojection_error_median"),
            camera_errors=dict(d.get("camera_errors") or {}),
            n_detections=dict(d.get("n_detections") or {}),
            n_points=int(d.get("n_points") or 0),
            units=d.get("units") or "mm",
            params=dict(d["params"]) if d.get("params") is not None else None,
            software=dict(d.get("software") or {}),
        )

    # ------------------------------------------------------------ anipose TOML
    def to_toml(self) -> str:
        """Anipose ``calibration.toml`` text (``[cam_0]``... and ``[metadata]``)."""
        tables: dict[str, Any] = {}
        for i, cam in enumerate(self.cameras):
            tables[f"cam_{i}"] = cam.to_anipose_dict()
        metadata: dict[str, Any] = {"adjusted": False}
        if self.reprojection_error is not None:
            metadata["error"] = float(self.reprojection_error)
        if self.reprojection_error_median is not None:
            metadata["error_median"] = float(self.reprojection_error_median)
        metadata["units"] = self.units
        metadata["n_points"] = int(self.n_points)
        if self.n_detections:
            metadata["n_detections"] = {k: int(v) for k, v in self.n_detections.items()}
        if self.camera_errors:
            metadata["camera_errors"] = {k: float(v) for k, v in self.camera_errors.items()}
        if self.software:
            metadata["software"] = dict(self.software)
        if self.params is not None:
            metadata["params"] = self.params
        tables["metadata"] = metadata
        return _dump_toml(tables)

    def write_toml(self, path: str | Path) -> Path:
        """Write :meth:`to_toml` to a file and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_toml(), encoding="utf-8")
        return path

    @classmethod
    def from_toml(cls, source: str | Path) -> CalibrationResult:
        """Read an anipose ``calibration.toml`` (a path, or the TOML text itself)."""
        text = source
        if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source):
            text = Path(source).read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ThreeDParamsError(f"not a valid calibration TOML: {exc}") from exc
        cam_keys = [k for k in data if k.startswith("cam_") and isinstance(data[k], dict)]
        cam_keys.sort(key=lambda k: (int(k[4:]) if k[4:].isdigit() else math.inf, k))
        if not cam_keys:
            raise ThreeDParamsError("calibration TOML has no [cam_N] tables")
        meta = data.get("metadata", {})
        params = meta.get("params")
        if params is not None:
            try:  # TOML has no null: restore the fields that do not apply to the board
                params = validate_calibration_params(params)
            except ThreeDParamsError:
                logger.warning("calibration TOML carries invalid params; kept as written")
        return cls(
            cameras=[CameraParams.from_dict(data[k]) for k in cam_keys],
            reprojection_error=meta.get("error"),
            reprojection_error_median=meta.get("error_median"),
            camera_errors=dict(meta.get("camera_errors", {})),
            n_detections=dict(meta.get("n_detections", {})),
            n_points=int(meta.get("n_points", 0)),
            units=meta.get("units", "mm"),
            params=params,
            software=dict(meta.get("software", {})),
        )

    def to_camera_group(self, names: Sequence[str] | None = None):
        """An aniposelib ``CameraGroup`` of some or all cameras (in the given order)."""
        from aniposelib.cameras import CameraGroup

        cams = [self.camera(n) for n in names] if names is not None else self.cameras
        return CameraGroup.from_dicts([c.to_anipose_dict() for c in cams])


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# ------------------------------------------------------------------ TOML writer
def _toml_value(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple | np.ndarray):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _dump_toml(tables: Mapping[str, Any], prefix: str = "") -> str:
    lines: list[str] = []
    for name, table in tables.items():
        header = f"{prefix}{_toml_key(name)}"
        lines.append(f"[{header}]")
        subtables = {}
        for key, value in table.items():
            if value is None:
                continue
            if isinstance(value, Mapping):
                subtables[key] = value
            else:
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        lines.append("")
        if subtables:
            lines.append(_dump_toml(subtables, prefix=f"{header}."))
    return "\n".join(lines)


# ---------------------------------------------------------------- calibration
def _video_list(value: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(value, str | Path):
        return [Path(value)]
    return [Path(v) for v in value]


def _iter_gray_frames(path: Path, step: int) -> Iterator[tuple[int, np.ndarray]]:
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i % step == 0:
                    yield i, frame.to_ndarray(format="gray")
    except (getattr(av, "FFmpegError", OSError), IndexError) as exc:
        raise CalibrationError(f"cannot decode calibration video {path}: {exc}") from exc


def _detect(board, board_type: str, path: Path, prefix: int, step: int) -> tuple[list[dict], int]:
    """Board detections (aniposelib rows) in one video, and the number of frames searched."""
    n_corners_total = len(board.get_object_points())
    rows, searched = [], 0
    for framenum, gray in _iter_gray_frames(path, step):
        searched += 1
        corners, ids = board.detect_image(gray)
        if corners is None or ids is None or len(corners) < MIN_BOARD_CORNERS:
            continue
        if board_type == "checkerboard" and len(corners) != n_corners_total:
            continue
        rows.append({"framenum": (prefix, framenum), "corners": corners, "ids": ids})
    board.fill_points_rows(rows)
    return rows, searched


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def _quiet(log: logging.Logger) -> Iterator[None]:
    """Send aniposelib's prints to the log (DEBUG) instead of stdout."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        text = buffer.getvalue().strip()
        if text:
            log.debug("aniposelib output:\n%s", text)


def _check_linked(names: list[str], all_rows: list[list[dict]]) -> None:
    """Every camera must be linked to the others by frames where both see the board."""
    frames = [{r["framenum"] for r in rows if r["ids"].size >= 8} for rows in all_rows]
    parent = list(range(len(names)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if frames[i] & frames[j]:
                parent[find(i)] = find(j)
    groups: dict[int, list[str]] = {}
    for i, name in enumerate(names):
        groups.setdefault(find(i), []).append(name)
    if len(groups) > 1:
        raise CalibrationError(
            "cannot link all cameras: no frame shows the board to cameras of different groups "
            f"{list(groups.values())}; record the board where these cameras see it together "
            "(and check that the calibration videos are synchronised)"
        )


def calibrate(
    videos_by_camera: Mapping[str, str | Path | Sequence[str | Path]],
    params: Mapping[str, Any],
) -> CalibrationResult:
    """Calibrate a group of synchronised cameras from videos of a calibration board.

    Args:
        videos_by_camera: Camera name -> calibration video (or list of videos, the
            n-th video of every camera recorded at the same time).  The order of the
            mapping is the camera order of the result; the first camera defines the
            initial world frame.
        params: Calibration parameters (see :func:`validate_calibration_params`).

    Returns:
        The calibrated cameras and their reprojection error.

    Raises:
        CalibrationError: when a camera never sees the board (naming the camera and
            its videos), sees it in fewer than ``min_detections`` frames, cannot be
            linked to the others, or aniposelib fails.
        ThreeDParamsError: for malformed parameters.
    """
    import cv2

    p = validate_calibration_params(params)
    names, videos = _calibration_videos(videos_by_camera)
    sizes = _video_sizes(videos)
    board = make_board(p)
    all_rows = [_camera_detections(board, p, name, videos[name]) for name in names]
    _check_linked(names, all_rows)
    cameras = _bundle_adjust(names, sizes, all_rows, board, p)
    errors, n_points = _corner_errors(cameras, all_rows, board)
    finite = errors[np.isfinite(errors)]
    with np.errstate(invalid="ignore"):
        camera_errors = {
            n: float(np.nanmean(errors[c])) if np.isfinite(errors[c]).any() else float("nan")
            for c, n in enumerate(names)
        }
    result = CalibrationResult(
        cameras=cameras,
        reprojection_error=float(finite.mean()),
        reprojection_error_median=float(np.median(finite)),
        camera_errors=camera_errors,
        n_detections={n: len(r) for n, r in zip(names, all_rows, strict=True)},
        n_points=n_points,
        units=p["units"],
        params=p,
        software={
            "aniposelib": package_version("aniposelib") or "unknown",
            "opencv": cv2.__version__,
        },
    )
    logger.info(
        "calibrated %d cameras: mean reprojection error %.3f px over %d points",
        len(names),
        result.reprojection_error,
        result.n_points,
    )
    return result


def _calibration_videos(
    videos_by_camera: Mapping[str, str | Path | Sequence[str | Path]],
) -> tuple[list[str], dict[str, list[Path]]]:
    """Camera names and their videos: two cameras or more, as many videos each."""
    names = [str(n) for n in videos_by_camera]
    if len(names) < 2:
        raise CalibrationError(f"calibration needs at least two cameras, got {names}")
    videos = {str(n): _video_list(v) for n, v in videos_by_camera.items()}
    n_videos = {len(v) for v in videos.values()}
    if len(n_videos) != 1 or 0 in n_videos:
        raise CalibrationError(
            "every camera needs the same (non-zero) number of calibration videos, got "
            + ", ".join(f"{n}: {len(v)}" for n, v in videos.items())
        )
    return names, videos


def _video_sizes(videos: dict[str, list[Path]]) -> dict[str, tuple[int, int]]:
    """Each camera's frame size (its videos must agree); warns when frame counts differ."""
    sizes: dict[str, tuple[int, int]] = {}
    frame_counts: dict[str, list[int]] = {}
    for name, paths in videos.items():
        for path in paths:
            try:
                info = probe_video(path)
            except VideoError as exc:
                raise CalibrationError(f"camera {name!r}: {exc}") from exc
            frame_counts.setdefault(name, []).append(info.n_frames)
            size = (info.width, info.height)
            if sizes.setdefault(name, size) != size:
                raise CalibrationError(
                    f"camera {name!r}: calibration videos differ in size ({sizes[name]} vs "
                    f"{size} for {path})"
                )

    if len({tuple(v) for v in frame_counts.values()}) > 1:
        logger.warning(
            "calibration videos differ in frame count %s: frames are matched by number, so "
            "the videos must start together",
            frame_counts,
        )
    return sizes


def _camera_detections(board, p: Mapping[str, Any], name: str,
                       paths: list[Path]) -> list[dict]:
    """The board views of one camera's videos; enough of them, or a CalibrationError."""
    rows_cam, searched = [], 0
    for vnum, path in enumerate(paths):
        rows, n = _detect(board, p["type"], path, vnum, p["frame_step"])
        rows_cam.extend(rows)
        searched += n
    logger.info(
        "camera %s: board found in %d of %d frames searched", name, len(rows_cam), searched
    )
    where = ", ".join(str(v) for v in paths)
    if not rows_cam:
        raise CalibrationError(
            f"the calibration board was never detected in camera {name!r} ({where}; "
            f"{searched} frames searched). Check the board parameters (type, squares_x/"
            f"squares_y, marker_bits/dict_size, legacy_pattern) and that the board is "
            "visible and in focus"
        )
    if len(rows_cam) < p["min_detections"]:
        raise CalibrationError(
            f"too few board detections in camera {name!r} ({where}): {len(rows_cam)} usable "
            f"views (>= {MIN_BOARD_CORNERS} corners), min_detections is {p['min_detections']}"
        )
    return rows_cam


def _bundle_adjust(names: list[str], sizes: dict[str, tuple[int, int]],
                   all_rows: list[list[dict]], board, p: Mapping[str, Any],
                   ) -> list[CameraParams]:
    """aniposelib's intrinsics, extrinsics and iterative bundle adjustment."""
    from aniposelib.cameras import CameraGroup

    cgroup = CameraGroup.from_names(names, fisheye=p["fisheye"])
    for cam, name in zip(cgroup.cameras, names, strict=True):
        cam.set_size(sizes[name])
        cam.extra_dist = p["extra_distortion"]
    try:
        with _seeded(p["seed"]), _quiet(logger):
            cgroup.calibrate_rows(
                all_rows,
                board,
                init_intrinsics=True,
                init_extrinsics=True,
                verbose=False,
                **p["bundle_adjust"],
            )
    except CalibrationError:
        raise
    except Exception as exc:  # aniposelib raises ValueError/AssertionError/cv2.error
        raise CalibrationError(
            f"aniposelib calibration failed: {type(exc).__name__}: {exc}"
        ) from exc

    cameras = []
    for cam in cgroup.cameras:
        d = cam.get_dict()
        cameras.append(
            CameraParams(
                name=d["name"],
                size=sizes[d["name"]],
                matrix=d["matrix"],
                distortion=d["distortions"],
                rotation=d["rotation"],
                translation=d["translation"],
                fisheye=p["fisheye"],
            )
        )
    return cameras


def _corner_errors(cameras: list[CameraParams], all_rows: list[list[dict]],
                   board) -> tuple[np.ndarray, int]:
    """Reprojection errors of every corner seen by two or more cameras, and how many
    corners were triangulated."""
    from aniposelib.boards import extract_points, merge_rows

    n_cams = len(cameras)
    usable = [[r for r in rows if r["ids"].size >= 8] for rows in all_rows]
    merged = merge_rows(usable, cam_names=list(range(n_cams)))
    imgp, _ = extract_points(merged, board, cam_names=list(range(n_cams)), min_cameras=2)
    p3d = triangulate_points(cameras, imgp)
    errors = reprojection_errors(cameras, p3d, imgp)
    if not np.isfinite(errors).any():
        raise CalibrationError("no board corner was seen by two cameras after calibration")
    return errors, int(np.isfinite(p3d).all(axis=1).sum())
