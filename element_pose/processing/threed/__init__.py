"""Multi-camera 3D pose: calibration, triangulation, 3D filtering and joint angles.

DB-free and anipose-style.  Every parameter set is a plain JSON-able dict with a
``validate_*`` function that returns a normalised copy (defaults filled in) for hashing;
every result converts to plain data for storage.

* :func:`calibrate` -- ChArUco / checkerboard videos -> :class:`CalibrationResult`
  (``to_dict``/``from_dict``, ``to_toml``/``from_toml`` in anipose's format).
* :func:`triangulate` -- 2D :class:`~element_pose.core.pose.PoseData` per camera ->
  :class:`TriangulationResult` (3D pose, reprojection error, cameras used).
* :func:`filter_3d` -- running-median offset filter and gap interpolation in 3D.
* :func:`joint_angles` -- anipose ``[angles]``.
* :func:`read_anipose_3d`, :func:`read_anipose_calibration`,
  :func:`write_anipose_calibration` -- anipose's files as these results.

OpenCV and aniposelib are imported inside the functions that need them.
"""

from .anipose import read_anipose_3d, read_anipose_calibration, write_anipose_calibration
from .calibration import (
    BOARD_TYPES,
    CalibrationResult,
    calibrate,
    calibration_params_from_anipose,
    draw_board,
    make_board,
    validate_calibration_params,
)
from .errors import CalibrationError, ThreeDError, ThreeDParamsError, TriangulationError
from .geometry import CameraParams, triangulate_points
from .postprocess import (
    FILTER_3D_DEFAULTS,
    filter_3d,
    joint_angles,
    validate_angles,
    validate_filter_3d_params,
)
from .triangulation import (
    TRIANGULATION_DEFAULTS,
    TriangulationResult,
    align_axes,
    triangulate,
    triangulation_params_from_anipose,
    validate_triangulation_params,
)

__all__ = [
    "BOARD_TYPES",
    "FILTER_3D_DEFAULTS",
    "TRIANGULATION_DEFAULTS",
    "CalibrationError",
    "CalibrationResult",
    "CameraParams",
    "ThreeDError",
    "ThreeDParamsError",
    "TriangulationError",
    "TriangulationResult",
    "align_axes",
    "calibrate",
    "calibration_params_from_anipose",
    "draw_board",
    "filter_3d",
    "joint_angles",
    "make_board",
    "read_anipose_3d",
    "read_anipose_calibration",
    "triangulate",
    "triangulate_points",
    "triangulation_params_from_anipose",
    "validate_angles",
    "validate_calibration_params",
    "validate_filter_3d_params",
    "validate_triangulation_params",
    "write_anipose_calibration",
]
