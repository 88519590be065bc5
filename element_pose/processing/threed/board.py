"""Calibration boards: the parameters of a calibration and the board they describe.

Split from :mod:`element_pose.processing.threed.calibration` (which still offers these
names): :func:`validate_calibration_params` (the parameter dict and its defaults, see
that module's docstring), :func:`calibration_params_from_anipose`, and the aniposelib
board object (:func:`make_board`) and its image (:func:`draw_board`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import (
    CalibrationError,
    ThreeDParamsError,
    param_flag,
    param_int,
    param_number,
    with_defaults,
)

logger = logging.getLogger("element_pose.processing.threed.calibration")

__all__ = [
    "BOARD_TYPES",
    "CALIBRATION_DEFAULTS",
    "DEFAULT_BUNDLE_ADJUST",
    "DICT_SIZES",
    "MARKER_BITS",
    "MIN_BOARD_CORNERS",
    "calibration_params_from_anipose",
    "draw_board",
    "make_board",
    "validate_calibration_params",
]

BOARD_TYPES = ("charuco", "checkerboard")
MARKER_BITS = (4, 5, 6, 7)
DICT_SIZES = (50, 100, 250, 1000)
#: aniposelib needs 9 corners in a view to initialise intrinsics, 8 for extrinsics.
MIN_BOARD_CORNERS = 9

DEFAULT_BUNDLE_ADJUST: dict[str, Any] = {
    "n_iters": 6,
    "start_mu": 15.0,
    "end_mu": 1.0,
    "max_nfev": 200,
    "ftol": 1e-4,
    "n_samp_iter": 200,
    "n_samp_full": 1000,
    "error_threshold": 0.3,
}
_BA_INTS = ("n_iters", "max_nfev", "n_samp_iter", "n_samp_full")

CALIBRATION_DEFAULTS: dict[str, Any] = {
    "type": "charuco",
    "marker_length": None,
    "marker_bits": 4,
    "dict_size": 50,
    "legacy_pattern": False,
    "units": "mm",
    "fisheye": False,
    "extra_distortion": False,
    "frame_step": 5,
    "min_detections": 5,
    "seed": 0,
}
_REQUIRED = ("squares_x", "squares_y", "square_length")
_KEYS = (*_REQUIRED, *CALIBRATION_DEFAULTS, "bundle_adjust")


# ----------------------------------------------------------------- parameters
def _as_int(value: Any, key: str, minimum: int) -> int:
    return param_int(value, key, minimum, "calibration")


def _as_positive(value: Any, key: str) -> float:
    return param_number(value, key, "calibration", strict=True)


def _as_bool(value: Any, key: str) -> bool:
    return param_flag(value, key, "calibration")


def validate_calibration_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Check calibration parameters and return a normalised copy.

    Defaults are filled in, numbers typed, and fields that do not apply to the
    board type (marker fields of a checkerboard) set to ``None``, so equal
    calibrations give equal dicts (and hashes).

    Args:
        params: Board and calibration options (see the module docstring).

    Returns:
        A new dict with every key of the module docstring.

    Raises:
        ThreeDParamsError: naming the offending key.
    """
    p = with_defaults(params, CALIBRATION_DEFAULTS, "calibration", known=_KEYS)
    missing = [k for k in _REQUIRED if params.get(k) is None]
    if missing:
        raise ThreeDParamsError(f"calibration params lack {missing}")
    out: dict[str, Any] = {}
    board_type = str(p["type"]).lower()
    if board_type not in BOARD_TYPES:
        raise ThreeDParamsError(
            f"calibration param 'type' must be one of {BOARD_TYPES}, got {p['type']!r} "
            "(plain ArUco grids are not supported; use a ChArUco board)"
        )
    out["type"] = board_type
    out["squares_x"] = _as_int(p["squares_x"], "squares_x", 2)
    out["squares_y"] = _as_int(p["squares_y"], "squares_y", 2)
    corners = (out["squares_x"] - 1) * (out["squares_y"] - 1)
    if corners < MIN_BOARD_CORNERS:
        raise ThreeDParamsError(
            f"a {out['squares_x']} x {out['squares_y']} board has only {corners} inner corners; "
            f"calibration needs at least {MIN_BOARD_CORNERS} (e.g. 4 x 4 squares)"
        )
    out["square_length"] = _as_positive(p["square_length"], "square_length")
    if board_type == "charuco":
        if p["marker_length"] is None:
            raise ThreeDParamsError("a charuco board needs 'marker_length'")
        out["marker_length"] = _as_positive(p["marker_length"], "marker_length")
        if out["marker_length"] >= out["square_length"]:
            raise ThreeDParamsError(
                f"marker_length ({out['marker_length']}) must be smaller than square_length "
                f"({out['square_length']})"
            )
        out["marker_bits"] = _as_int(p["marker_bits"], "marker_bits", 1)
        if out["marker_bits"] not in MARKER_BITS:
            raise ThreeDParamsError(
                f"marker_bits must be one of {MARKER_BITS}, got {p['marker_bits']}"
            )
        out["dict_size"] = _as_int(p["dict_size"], "dict_size", 1)
        if out["dict_size"] not in DICT_SIZES:
            raise ThreeDParamsError(f"dict_size must be one of {DICT_SIZES}, got {p['dict_size']}")
        n_markers = out["squares_x"] * out["squares_y"] // 2
        if n_markers > out["dict_size"]:
            raise ThreeDParamsError(
                f"a {out['squares_x']} x {out['squares_y']} charuco board has {n_markers} markers, "
                f"more than the dictionary's {out['dict_size']}"
            )
        out["legacy_pattern"] = _as_bool(p["legacy_pattern"], "legacy_pattern")
    else:
        out.update(marker_length=None, marker_bits=None, dict_size=None, legacy_pattern=False)
    units = p["units"]
    if not isinstance(units, str) or not units.strip():
        raise ThreeDParamsError(
            f"calibration param 'units' must be a non-empty string, got {units!r}"
        )
    out["units"] = units.strip()
    out["fisheye"] = _as_bool(p["fisheye"], "fisheye")
    out["extra_distortion"] = _as_bool(p["extra_distortion"], "extra_distortion")
    out["frame_step"] = _as_int(p["frame_step"], "frame_step", 1)
    out["min_detections"] = _as_int(p["min_detections"], "min_detections", 1)
    out["seed"] = _as_int(p["seed"], "seed", 0)
    ba = p.get("bundle_adjust") or {}
    if not isinstance(ba, Mapping):
        raise ThreeDParamsError(f"'bundle_adjust' must be a mapping, got {ba!r}")
    unknown = sorted(set(ba) - set(DEFAULT_BUNDLE_ADJUST))
    if unknown:
        raise ThreeDParamsError(
            f"unknown bundle_adjust options {unknown}; known: {sorted(DEFAULT_BUNDLE_ADJUST)}"
        )
    merged = {**DEFAULT_BUNDLE_ADJUST, **dict(ba)}
    out["bundle_adjust"] = {
        k: (
            _as_int(v, f"bundle_adjust.{k}", 1)
            if k in _BA_INTS
            else _as_positive(v, f"bundle_adjust.{k}")
        )
        for k, v in merged.items()
    }
    return out


def calibration_params_from_anipose(section: Mapping[str, Any]) -> dict[str, Any]:
    """Convert an anipose ``[calibration]`` config section to validated parameters.

    ``board_type``, ``board_size``, ``board_marker_bits``, ``board_marker_dict_number``,
    ``board_marker_length``, ``board_square_side_length`` and ``fisheye`` are read;
    other anipose keys (``animal_calibration``, ``calibration_init``...) are ignored.
    Anipose passes a checkerboard's ``board_size`` to OpenCV as inner corners, so one
    square is added in each direction.
    """
    board_type = str(section.get("board_type", "charuco")).lower()
    try:
        size_x, size_y = section["board_size"]
    except (KeyError, TypeError, ValueError):
        raise ThreeDParamsError("anipose calibration section needs board_size = [x, y]") from None
    extra = 1 if board_type == "checkerboard" else 0
    params: dict[str, Any] = {
        "type": board_type,
        "squares_x": int(size_x) + extra,
        "squares_y": int(size_y) + extra,
        "square_length": section.get("board_square_side_length"),
        "fisheye": bool(section.get("fisheye", False)),
    }
    if board_type == "charuco":
        params.update(
            marker_length=section.get("board_marker_length"),
            marker_bits=section.get("board_marker_bits", 4),
            dict_size=section.get("board_marker_dict_number", 50),
        )
    ignored = sorted(
        set(section)
        - {
            "board_type",
            "board_size",
            "board_marker_bits",
            "board_marker_dict_number",
            "board_marker_length",
            "board_square_side_length",
            "board_marker_separation_length",
            "fisheye",
        }
    )
    if ignored:
        logger.info("ignoring anipose calibration keys %s", ignored)
    return validate_calibration_params(params)


def make_board(params: Mapping[str, Any]):
    """The aniposelib board object (``CharucoBoard`` or ``Checkerboard``) for the params.

    For ChArUco boards drawn by OpenCV < 4.6 (``legacy_pattern``), the OpenCV board
    is switched to the legacy layout and the detector rebuilt.
    """
    import cv2
    from aniposelib.boards import CharucoBoard, Checkerboard

    p = validate_calibration_params(params)
    if p["type"] == "checkerboard":
        return Checkerboard(
            p["squares_x"] - 1, p["squares_y"] - 1, square_length=p["square_length"]
        )
    if not hasattr(cv2, "aruco") or not hasattr(cv2.aruco, "CharucoDetector"):
        raise CalibrationError(
            f"OpenCV {cv2.__version__} has no cv2.aruco.CharucoDetector; ChArUco calibration "
            "needs OpenCV >= 4.7 (opencv-python-headless or opencv-contrib-python-headless)"
        )
    board = CharucoBoard(
        p["squares_x"],
        p["squares_y"],
        square_length=p["square_length"],
        marker_length=p["marker_length"],
        marker_bits=p["marker_bits"],
        dict_size=p["dict_size"],
    )
    if p["legacy_pattern"]:
        board.board.setLegacyPattern(True)
        board.charuco_detector = cv2.aruco.CharucoDetector(board.board)
        board.charuco_detector.setDetectorParameters(board.detector_params)
    return board


def draw_board(params: Mapping[str, Any], pixels_per_unit: float, margin: int = 0) -> np.ndarray:
    """Render a ChArUco board as a grayscale image (for printing or synthetic tests).

    Args:
        params: Calibration parameters of a charuco board.
        pixels_per_unit: Image pixels per length unit (e.g. per mm).
        margin: White margin in pixels around the board.

    Returns:
        ``uint8`` image of ``squares * square_length * pixels_per_unit + 2 * margin`` pixels.
    """
    p = validate_calibration_params(params)
    if p["type"] != "charuco":
        raise ThreeDParamsError("draw_board renders charuco boards only")
    board = make_board(p)
    width = round(p["squares_x"] * p["square_length"] * pixels_per_unit) + 2 * margin
    height = round(p["squares_y"] * p["square_length"] * pixels_per_unit) + 2 * margin
    return board.board.generateImage((width, height), marginSize=margin, borderBits=1)
