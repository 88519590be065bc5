"""anipose files as the 3D core's results.

The file formats are read and written by the DB-free :mod:`element_pose.io.anipose`
(one layer below); here they become the structures of this package:

* :func:`read_anipose_3d` -- an anipose 3D CSV (``anipose triangulate`` output) as a
  :class:`~element_pose.processing.threed.TriangulationResult`, what the
  ``multicam.Triangulation`` table stores.
* :func:`read_anipose_calibration` -- a ``calibration.toml`` as a
  :class:`~element_pose.processing.threed.CalibrationResult`.
* :func:`write_anipose_calibration` -- the writer of :mod:`element_pose.io.anipose`,
  re-exported so that the three come from one place.
"""

from __future__ import annotations

from pathlib import Path

from element_pose.io.anipose import (
    SOFTWARE,
    AniposeFormatError,
    read_anipose_3d_csv,
    validate_anipose_calibration,
    write_anipose_calibration,
)

from .calibration import CalibrationResult
from .errors import ThreeDParamsError
from .triangulation import TriangulationResult

__all__ = ["read_anipose_3d", "read_anipose_calibration", "write_anipose_calibration"]


def read_anipose_3d(path: str | Path, *, fps: float | None = None) -> TriangulationResult:
    """Read an anipose 3D CSV into a :class:`TriangulationResult`.

    Args:
        path: The CSV.
        fps: Frame rate to attach (the CSV stores none).

    Returns:
        The 3D pose (confidence = anipose's score), the per-point reprojection
        error and number of cameras (0 where anipose wrote NaN), and the axis
        transform when the file carries a non-trivial one.  ``cameras`` is empty
        (anipose does not write which cameras were used) and ``params`` is
        ``{"source": "anipose"}``.

    Raises:
        element_pose.io.anipose.AniposeFormatError: naming the file for missing
            columns, non-numeric values, scores outside [0, 1], negative errors or
            camera counts.
    """
    data = read_anipose_3d_csv(path, fps=fps)
    return TriangulationResult(
        pose=data.pose,
        reprojection_error=data.reprojection_error,
        n_cameras=data.n_cameras,
        cameras=[],
        params={"source": SOFTWARE},
        transform=data.transform,
    )


def read_anipose_calibration(path: str | Path) -> CalibrationResult:
    """Read an anipose ``calibration.toml`` into a :class:`CalibrationResult`.

    Raises:
        element_pose.io.anipose.AniposeFormatError: naming the file when it is not a
            valid calibration.
    """
    validate_anipose_calibration(path)
    try:
        return CalibrationResult.from_toml(Path(path))
    except ThreeDParamsError as exc:
        raise AniposeFormatError(f"{path}: {exc}") from exc
