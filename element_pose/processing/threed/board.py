"""Calibration boards: the parameters of a calibration and the board they describe.

Split from :mod:`element_pose.processing.threed.calibration` (which still offers these
names): :func:`validate_calibration_params` (the parameter dict and its defaults, see
that module's docstring), :func:`calibration_params_from_anipose`, and the aniposelib
board object (:func:`make_board`) and its image (:func:`draw_board`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from element_pose.core.params import Int, ParamSet, integral, register_params

from .errors import CalibrationError, ThreeDParamsError

logger = logging.getLogger("element_pose.processing.threed.calibration")

__all__ = [
    "BOARD_TYPES",
    "CALIBRATION_DEFAULTS",
    "DEFAULT_BUNDLE_ADJUST",
    "DICT_SIZES",
    "MARKER_BITS",
    "MIN_BOARD_CORNERS",
    "BundleAdjustParams",
    "CalibrationParams",
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


# ----------------------------------------------------------------- parameters
Positive = Annotated[float, Field(gt=0)]
AtLeastOne = Annotated[Int, Field(ge=1)]
_BA = DEFAULT_BUNDLE_ADJUST
_C = CALIBRATION_DEFAULTS


class BundleAdjustParams(ParamSet):
    """aniposelib's bundle adjustment options."""

    n_iters: AtLeastOne = Field(_BA["n_iters"], description="iterations")
    start_mu: Positive = Field(_BA["start_mu"], description="initial damping")
    end_mu: Positive = Field(_BA["end_mu"], description="final damping")
    max_nfev: AtLeastOne = Field(_BA["max_nfev"], description="function evaluations per "
                                                              "iteration")
    ftol: Positive = Field(_BA["ftol"], description="tolerance")
    n_samp_iter: AtLeastOne = Field(_BA["n_samp_iter"], description="samples per iteration")
    n_samp_full: AtLeastOne = Field(_BA["n_samp_full"], description="samples of the final pass")
    error_threshold: Positive = Field(_BA["error_threshold"], description="outlier threshold")


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError(f"'units' must be a non-empty text, got {text!r}")
    return text.strip()


@register_params("calibration", "multicam.CalibrationParamSet")
class CalibrationParams(ParamSet):
    """Calibration board and options (Calibration), anipose-style.

    Stored normalised: defaults filled in, numbers typed, and the marker fields of a
    checkerboard set to null, so equal calibrations hash equally.
    """

    # (no annotations here: the field ``type`` shadows the builtin in the class body)
    error = ThreeDParamsError
    normalise = True

    type: Annotated[Literal[BOARD_TYPES], BeforeValidator(_lower)] = Field(  # type: ignore[valid-type]
        _C["type"], description="board type")
    squares_x: Annotated[Int, Field(ge=2)] = Field(description="squares along x")
    squares_y: Annotated[Int, Field(ge=2)] = Field(description="squares along y")
    square_length: Positive = Field(description="square side, in units")
    marker_length: Positive | None = Field(
        _C["marker_length"], description="ChArUco marker side (< square_length); charuco only")
    marker_bits: Annotated[Literal[MARKER_BITS], BeforeValidator(integral)] | None = Field(  # type: ignore[valid-type]
        _C["marker_bits"], description="ArUco marker bits (charuco)")
    dict_size: Annotated[Literal[DICT_SIZES], BeforeValidator(integral)] | None = Field(  # type: ignore[valid-type]
        _C["dict_size"], description="ArUco dictionary size (charuco)")
    legacy_pattern: bool = Field(_C["legacy_pattern"],
                                 description="OpenCV's pre-4.6 ChArUco layout")
    units: Annotated[str, AfterValidator(_non_empty)] = Field(
        _C["units"], description="length unit of the board and of 3D poses")
    fisheye: bool = Field(_C["fisheye"], description="fisheye lens model")
    extra_distortion: bool = Field(_C["extra_distortion"],
                                   description="more distortion coefficients")
    frame_step: AtLeastOne = Field(_C["frame_step"], description="use every N-th frame")
    min_detections: AtLeastOne = Field(_C["min_detections"],
                                       description="board detections needed per camera")
    seed: Annotated[Int, Field(ge=0)] = Field(_C["seed"], description="random seed")
    bundle_adjust: Annotated[BundleAdjustParams, BeforeValidator(lambda v: v or {})] = Field(
        BundleAdjustParams(), description="bundle adjustment options (null: the defaults)")

    @model_validator(mode="after")
    def _board_fits(self) -> CalibrationParams:
        corners = (self.squares_x - 1) * (self.squares_y - 1)
        if corners < MIN_BOARD_CORNERS:
            raise ValueError(
                f"a {self.squares_x} x {self.squares_y} board has only {corners} inner corners; "
                f"calibration needs at least {MIN_BOARD_CORNERS} (e.g. 4 x 4 squares)")
        if self.type == "charuco":
            self._check_charuco()
        else:
            self.marker_length = self.marker_bits = self.dict_size = None
            self.legacy_pattern = False
        return self

    def _check_charuco(self) -> None:
        if self.marker_length is None:
            raise ValueError("a charuco board needs 'marker_length'")
        if self.marker_length >= self.square_length:
            raise ValueError(f"marker_length ({self.marker_length}) must be smaller than "
                             f"square_length ({self.square_length})")
        if self.marker_bits is None or self.dict_size is None:
            raise ValueError("a charuco board needs 'marker_bits' and 'dict_size'")
        n_markers = self.squares_x * self.squares_y // 2
        if n_markers > self.dict_size:
            raise ValueError(
                f"a {self.squares_x} x {self.squares_y} charuco board has {n_markers} markers, "
                f"more than the dictionary's {self.dict_size}")


def validate_calibration_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Check calibration parameters (:class:`CalibrationParams`); return a normalised copy.

    Defaults are filled in, numbers typed, and fields that do not apply to the
    board type (marker fields of a checkerboard) set to ``None``, so equal
    calibrations give equal dicts (and hashes).

    Raises:
        ThreeDParamsError: naming the offending key.
    """
    return CalibrationParams.for_storage(params)


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
