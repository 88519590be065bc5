"""anipose files: 3D pose CSVs in, ``calibration.toml`` in and out.

* 3D CSV (``pose-3d/<trial>.csv``, written by ``anipose triangulate``): one row per
  frame and, per keypoint ``bp``, the columns ``bp_x, bp_y, bp_z`` (calibration unit),
  ``bp_error`` (mean reprojection error, px), ``bp_ncams`` (cameras used; NaN when
  fewer than 2) and ``bp_score`` (smallest 2D score of the cameras used, in [0, 1]);
  then ``M_00`` .. ``M_22`` and ``center_0`` .. ``center_2`` (the axis alignment:
  written points are ``M @ p - center``) and ``fnum``.
  :func:`read_anipose_3d_csv` returns its arrays (:class:`Anipose3D`: the 3D pose, the
  reprojection error, the camera counts and the axis transform);
  :func:`element_pose.processing.threed.read_anipose_3d` wraps them in the structure the
  3D core and the ``multicam.Triangulation`` table store (a ``TriangulationResult``); the
  registered reader ``anipose_3d_csv`` returns its 3D :class:`PoseData`.
* ``calibration.toml`` (``[cam_0]`` ... tables of ``name``, ``size``, ``matrix``,
  ``distortions``, ``rotation``, ``translation``, and ``[metadata]``): checked here
  (:func:`validate_anipose_calibration`) and written from any calibration with a
  ``to_toml()`` (:func:`write_anipose_calibration`);
  :func:`element_pose.processing.threed.read_anipose_calibration` reads one into a
  ``CalibrationResult``, so a calibration made here can be used by anipose, and one made
  by anipose stored here.

anipose 3D files hold one animal: one individual ``individual_0``.

Why not movement's loader (``movement.io.load_poses.from_file(path, "Anipose")``,
movement 0.15; ``tests/io/test_movement_parity.py`` checks both read equal values):
its result holds position and score only -- no reprojection error, camera counts or
axis transform, which ``multicam.Triangulation`` stores -- with the keypoints sorted by
name instead of the file's order, the animal named ``id_0``, float64 values, and no
checks of the score, error and camera-count ranges or of ``fnum``.  It is faster:
4.4 s against 5.2 s here
(54,000 frames x 20 body parts, best of 3 on the project's 2-core machine).
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from pathlib import Path

import numpy as np

from element_pose.core.pose import SINGLE_INDIVIDUAL, PoseData
from element_pose.io.registry import (
    PoseFormatError,
    check_scores,
    register_format,
    require_file,
)

log = logging.getLogger(__name__)

__all__ = [
    "CAMERA_KEYS",
    "MAX_HEADER_BYTES",
    "SOFTWARE",
    "Anipose3D",
    "AniposeFormatError",
    "anipose_3d_keypoints",
    "detect_anipose_3d_csv",
    "read_anipose_3d_csv",
    "read_anipose_3d_pose",
    "validate_anipose_3d_csv",
    "validate_anipose_calibration",
    "write_anipose_calibration",
]

SOFTWARE = "anipose"
POINT_FIELDS = ("x", "y", "z", "error", "ncams", "score")
CAMERA_KEYS = ("name", "size", "matrix", "distortions", "rotation", "translation")
_TRANSFORM_COLUMNS = (*(f"M_{i}{j}" for i in range(3) for j in range(3)),
                      *(f"center_{i}" for i in range(3)))


class AniposeFormatError(PoseFormatError):
    """An anipose file is missing, unreadable or not in the expected layout."""


@dataclasses.dataclass
class Anipose3D:
    """The arrays of one anipose 3D CSV.

    Attributes:
        pose: 3D pose (one individual), confidence = anipose's score.
        reprojection_error: ``(n_frames, 1, n_keypoints)`` float32 mean reprojection
            error in pixels (NaN where not triangulated).
        n_cameras: ``(n_frames, 1, n_keypoints)`` int16 cameras used (0 where anipose
            wrote NaN).
        transform: ``None``, or ``{"rotation": 3x3, "origin": 3}`` (lists) when the
            file carries a non-trivial axis alignment.
    """

    pose: PoseData
    reprojection_error: np.ndarray
    n_cameras: np.ndarray
    transform: dict[str, list] | None = None


# -------------------------------------------------------------------- 3D CSV
#: longest header line read (a 3D CSV of 1000 body parts has a header of ~100 kB)
MAX_HEADER_BYTES = 1 << 20


def _csv_columns(path: Path) -> list[str]:
    """The column names: the first line only, read as bytes (the body is never read)."""
    try:
        with open(path, "rb") as f:
            line = f.readline(MAX_HEADER_BYTES + 1)
    except OSError as exc:
        raise AniposeFormatError(f"cannot read anipose 3D CSV {path}: {exc}") from exc
    if len(line) > MAX_HEADER_BYTES:
        raise AniposeFormatError(
            f"{path} is not an anipose 3D CSV: no header line in its first "
            f"{MAX_HEADER_BYTES} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AniposeFormatError(f"cannot read anipose 3D CSV {path}: {exc}") from exc
    return [c.strip() for c in text.rstrip("\r\n").split(",")]


def _keypoints(columns: list[str]) -> list[str]:
    names = [c[:-2] for c in columns if c.endswith("_x")]
    return [k for k in dict.fromkeys(names) if all(f"{k}_{f}" in columns for f in "yz")]


def anipose_3d_keypoints(path: str | Path) -> list[str]:
    """The body parts of an anipose 3D CSV, from its checked header line alone.

    Raises:
        AniposeFormatError: naming the file and the missing columns.
    """
    path = require_file(path, "anipose 3D CSV", AniposeFormatError)
    columns = _csv_columns(path)
    keypoints = _keypoints(columns)
    if not keypoints:
        raise AniposeFormatError(
            f"{path} is not an anipose 3D CSV: no <keypoint>_x/_y/_z columns in {columns[:8]}"
        )
    missing = [f"{k}_{f}" for k in keypoints for f in POINT_FIELDS if f"{k}_{f}" not in columns]
    if missing:
        raise AniposeFormatError(f"{path}: anipose 3D CSV lacks the columns {missing}")
    return keypoints


def validate_anipose_3d_csv(path: Path) -> None:
    """Check the header of an anipose 3D CSV (only its first line is read).

    Raises:
        AniposeFormatError: naming the file and the missing columns.
    """
    anipose_3d_keypoints(path)


def detect_anipose_3d_csv(path: Path) -> bool:
    """Whether a file looks like an anipose 3D CSV."""
    if path.suffix.lower() != ".csv":
        return False
    try:
        validate_anipose_3d_csv(path)
    except PoseFormatError:
        return False
    return True


def _numeric_columns(df, path: Path) -> dict[str, np.ndarray]:
    """The point, transform and ``fnum`` columns as float64 arrays."""
    import pandas as pd

    try:
        return {c: pd.to_numeric(df[c], errors="raise").to_numpy(np.float64)
                for c in df.columns if c.rsplit("_", 1)[-1] in POINT_FIELDS
                or c in _TRANSFORM_COLUMNS or c == "fnum"}
    except (TypeError, ValueError) as exc:
        raise AniposeFormatError(f"{path}: non-numeric value: {exc}") from exc


def _frame_rows(table: dict[str, np.ndarray], n_rows: int, path: Path) -> np.ndarray:
    """The frame number of every row: ``fnum`` when present (checked), else the row."""
    if "fnum" not in table:
        return np.arange(n_rows)
    fnum = table["fnum"]
    if not np.all(np.isfinite(fnum)) or np.any(fnum < 0) or np.any(fnum != np.round(fnum)) \
            or len(np.unique(fnum)) != n_rows:
        raise AniposeFormatError(f"{path}: fnum holds negative, repeated or non-integer "
                                 "frame numbers")
    return fnum.astype(np.int64)


def read_anipose_3d_csv(path: str | Path, *, fps: float | None = None) -> Anipose3D:
    """Read an anipose 3D CSV into its arrays.

    Args:
        path: The CSV.
        fps: Frame rate to attach (the CSV stores none).

    Returns:
        The 3D pose (confidence = anipose's score), the per-point reprojection
        error and number of cameras (0 where anipose wrote NaN), and the axis
        transform when the file carries a non-trivial one.

    Raises:
        AniposeFormatError: naming the file for missing columns, non-numeric
            values, scores outside [0, 1], negative errors or camera counts.
    """
    import pandas as pd

    path = require_file(path, "anipose 3D CSV", AniposeFormatError)
    validate_anipose_3d_csv(path)
    try:
        df = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError) as exc:
        raise AniposeFormatError(f"cannot read anipose 3D CSV {path}: {exc}") from exc
    keypoints = _keypoints(list(df.columns))
    table = _numeric_columns(df, path)
    rows = _frame_rows(table, len(df), path)
    n_frames = int(rows.max()) + 1 if len(df) else 0

    def grid(field: str) -> np.ndarray:
        out = np.full((n_frames, 1, len(keypoints)), np.nan)
        for j, k in enumerate(keypoints):
            out[rows, 0, j] = table[f"{k}_{field}"]
        return out

    position = np.stack([grid(a) for a in "xyz"], axis=-1)
    score, error, ncams = grid("score"), grid("error"), grid("ncams")
    check_scores(score, path, "score", 0.0, 1.0, error=AniposeFormatError)
    check_scores(error, path, "reprojection error", 0.0, None, error=AniposeFormatError)
    check_scores(ncams, path, "ncams", 0.0, None, error=AniposeFormatError)
    pose = PoseData(position=position, confidence=score, keypoints=keypoints,
                    individuals=[SINGLE_INDIVIDUAL], fps=fps, source_software=SOFTWARE)
    return Anipose3D(
        pose=pose,
        reprojection_error=error.astype(np.float32),
        n_cameras=np.nan_to_num(ncams, nan=0.0).astype(np.int16),
        transform=_transform(table, path),
    )


def _transform(table: dict[str, np.ndarray], path: Path) -> dict[str, list] | None:
    if not all(c in table for c in _TRANSFORM_COLUMNS) or not len(table["M_00"]):
        return None
    first = {c: table[c][0] for c in _TRANSFORM_COLUMNS}
    if any(not np.allclose(table[c], v, equal_nan=True) for c, v in first.items()):
        raise AniposeFormatError(f"{path}: the M_ij/center_i columns change between rows")
    m = np.array([[first[f"M_{i}{j}"] for j in range(3)] for i in range(3)])
    center = np.array([first[f"center_{i}"] for i in range(3)])
    if np.allclose(m, np.eye(3)) and np.allclose(center, 0):
        return None
    if not np.allclose(m @ m.T, np.eye(3), atol=1e-6):
        raise AniposeFormatError(f"{path}: M_ij is not a rotation matrix")
    # anipose writes M @ p - center; element-pose's transform is rotation @ (p - origin)
    return {"rotation": m.tolist(), "origin": (m.T @ center).tolist()}


def read_anipose_3d_pose(path: str | Path, *, fps: float | None = None) -> PoseData:
    """The 3D :class:`PoseData` of an anipose 3D CSV (see :func:`read_anipose_3d_csv`)."""
    return read_anipose_3d_csv(path, fps=fps).pose


# --------------------------------------------------------- calibration.toml
def validate_anipose_calibration(path: str | Path) -> dict:
    """Check an anipose ``calibration.toml`` and return its parsed tables.

    Raises:
        AniposeFormatError: naming the file and the table or key that is wrong.
    """
    path = require_file(path, "anipose calibration", AniposeFormatError)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AniposeFormatError(f"{path} is not valid TOML: {exc}") from exc
    cams = [k for k, v in data.items() if k.startswith("cam_") and isinstance(v, dict)]
    if not cams:
        raise AniposeFormatError(f"{path}: no [cam_N] tables (anipose calibration expected)")
    for key in cams:
        missing = [c for c in CAMERA_KEYS if c not in data[key]]
        if missing:
            raise AniposeFormatError(f"{path}: [{key}] lacks {missing}")
        cam = data[key]
        shapes = {"size": (2,), "matrix": (3, 3), "rotation": (3,), "translation": (3,)}
        for field, shape in shapes.items():
            try:
                value = np.asarray(cam[field], dtype=np.float64)
            except (TypeError, ValueError):
                value = np.empty(0)
            if value.shape != shape or not np.all(np.isfinite(value)):
                raise AniposeFormatError(
                    f"{path}: [{key}] {field} must be {shape} finite numbers, got {cam[field]!r}")
    names = [str(data[k]["name"]) for k in cams]
    if len(set(names)) != len(names):
        raise AniposeFormatError(f"{path}: camera names repeat: {names}")
    return data


def write_anipose_calibration(calibration, path: str | Path) -> Path:
    """Write a calibration as an anipose ``calibration.toml`` (atomically).

    Args:
        calibration: A :class:`~element_pose.processing.threed.CalibrationResult` (or
            anything with ``to_toml()`` and ``cameras``).
        path: The file to write; its folder is made.

    Returns:
        The path.  The file is what ``aniposelib.cameras.CameraGroup.load`` and
        ``anipose`` read; it is checked before it replaces ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(calibration.to_toml(), encoding="utf-8")
        validate_anipose_calibration(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("wrote anipose calibration of %d cameras to %s", len(calibration.cameras), path)
    return path


register_format(
    "anipose_3d_csv",
    read_anipose_3d_pose,
    validator=validate_anipose_3d_csv,
    detector=detect_anipose_3d_csv,
    suffixes=(".csv",),
    software=SOFTWARE,
    description="anipose triangulate output (3D CSV: x, y, z, error, ncams, score)",
)
