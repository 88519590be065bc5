"""The schema of every parameter set: data read by validation, ``element-pose params``
and the README (see :mod:`element_pose.core.params`).

Kept free of heavy imports; tests check that the names and allowed values here
match the modules that use the parameters (engine defaults, filter steps, 3D).
"""

from __future__ import annotations

from element_pose.core.params import Param, ParamSchema

__all__ = ["CALIBRATION", "FILTER", "LABELED_VIDEO", "SCHEMAS", "TRAINING", "TRIANGULATION"]

_INT = "int"
_NUM = "number"
_BOOL = "bool"
_TEXT = "text"

WEIGHT_INIT = ParamSchema("weight_init", "weight_init mapping", (
    Param("snapshot_path", _TEXT, "a local .pt snapshot (relative to a root, or absolute)"),
    Param("model", _TEXT, "a registered model's name: start from its snapshot"),
    Param("with_decoder", _BOOL, "also load the heads (same body parts)", default=False),
    Param("resume", _BOOL, "continue training from the snapshot", default=False),
    Param("detector_snapshot_path", _TEXT, "detector weights (top-down models)"),
))

TRAINING = ParamSchema("training", "train.TrainingParamSet", (
    Param("engine", _TEXT, "engine that trains", default="deeplabcut",
          choices=("deeplabcut", "dlc"), nullable=False),
    Param("shuffle", _INT, "DeepLabCut shuffle index", default=1, minimum=0, maximum=100000),
    Param("trainingsetindex", _INT, "index into the config's TrainingFraction", default=0,
          minimum=0, maximum=1000),
    Param("train_fraction", _NUM, "fraction of labelled frames used for training",
          minimum=0, exclusive_minimum=True, maximum=1),
    Param("net_type", _TEXT, "network, e.g. resnet_50, cspnext_s (null: the config's)"),
    Param("augmenter_type", _TEXT, "DeepLabCut augmenter"),
    Param("train_indices", "list", "explicit training frame indices", items=_INT, minimum=0),
    Param("test_indices", "list", "explicit test frame indices", items=_INT, minimum=0),
    Param("epochs", _INT, "training epochs", minimum=1, maximum=100000),
    Param("batch_size", _INT, "images per batch", minimum=1, maximum=1024),
    Param("save_epochs", _INT, "save a snapshot every N epochs", minimum=1, maximum=100000),
    Param("max_snapshots", _INT, "snapshots kept", minimum=1, maximum=10000),
    Param("eval_interval", _INT, "evaluate every N epochs", minimum=1, maximum=100000),
    Param("key_metric", _TEXT, "metric that picks the best snapshot, e.g. test.mAP"),
    Param("key_metric_asc", _BOOL, "whether a larger key metric is better"),
    Param("display_iters", _INT, "log every N iterations", minimum=1, maximum=1000000),
    Param("learning_rate", _NUM, "optimizer learning rate", minimum=0,
          exclusive_minimum=True, maximum=1),
    Param("optimizer", "mapping", "pytorch_config runner.optimizer"),
    Param("scheduler", ("mapping", _TEXT, _BOOL), "runner.scheduler; \"none\" or false: none",
          choices=("none", False)),
    Param("crop_size", (_TEXT, "list"), "training crop [width, height]; \"auto\": the frame "
          "size", default="auto", choices=("auto",), items=_INT, length=2, minimum=1,
          maximum=8192),
    Param("augmentation", "mapping", "data.train augmentation settings"),
    Param("seed", _INT, "random seed", minimum=0, maximum=2**32 - 1),
    Param("dataloader_workers", _INT, "data loader processes", minimum=0, maximum=256),
    Param("device", _TEXT, "cpu, cuda, cuda:0, ... (null: ELEMENT_POSE_DEVICE or auto)"),
    Param("weight_init", (_TEXT, "mapping"), "initial weights", default="pretrained",
          choices=("pretrained", "random"), pattern=r".+\.pt", schema=WEIGHT_INIT),
    Param("pytorch_config_updates", "mapping", "{dotted.key: value} set in pytorch_config"),
    Param("pcutoff", _NUM, "likelihood cut-off written to the project config",
          minimum=0, maximum=1),
    Param("copy_videos", _BOOL, "copy the project's videos into the task's copy",
          default=False),
    Param("track_method", _TEXT, "multi-animal tracker written to the copy's config "
          "(default_track_method; null: the config's, else ellipse)",
          choices=("ellipse", "box", "skeleton")),
), doc="Training of a DeepLabCut model (ModelTraining). Absent keys keep DeepLabCut's "
       "defaults.")

_SELECTORS = (
    Param("keypoints", "list", "restrict the step to these body parts", items=_TEXT),
    Param("individuals", "list", "restrict the step to these individuals", items=_TEXT),
)
FILTER_STEPS = {
    "confidence_threshold": ParamSchema("confidence_threshold", "filter step", (
        Param("threshold", _NUM, "points whose likelihood is below become missing",
              required=True, minimum=0, maximum=1), *_SELECTORS)),
    "median": ParamSchema("median", "filter step", (
        Param("window", _INT, "odd window in frames (1: off)", required=True, minimum=1,
              maximum=100001), *_SELECTORS)),
    "offset_threshold": ParamSchema("offset_threshold", "filter step", (
        Param("window", _INT, "odd median window in frames", required=True, minimum=3,
              maximum=100001),
        Param("threshold", _NUM, "largest distance from the running median (pixels)",
              required=True, minimum=0, exclusive_minimum=True), *_SELECTORS)),
    "savgol": ParamSchema("savgol", "filter step", (
        Param("window", _INT, "odd window in frames", required=True, minimum=3,
              maximum=100001),
        Param("polyorder", _INT, "polynomial order (< window)", default=2, minimum=0),
        *_SELECTORS)),
    "interpolate": ParamSchema("interpolate", "filter step", (
        Param("max_gap", _INT, "longest gap filled, in frames (null: any)", required=True,
              nullable=True, minimum=1),
        Param("method", _TEXT, "interpolation method", default="linear",
              choices=("linear", "nearest", "cubic", "pchip")), *_SELECTORS)),
}
FILTER = ParamSchema("filter", "analysis.FilterParamSet", (
    Param("steps", "list", "filter steps, applied in order", required=True,
          variants=FILTER_STEPS, variant_key="step"),
), doc="A filter pipeline (FilteredPose); each step is {\"step\": name, ...}.")

LABELED_VIDEO = ParamSchema("labeled_video", "model.LabeledVideoParamSet", (
    Param("pcutoff", _NUM, "hide points below this likelihood (null: the config's)",
          minimum=0, maximum=1),
    Param("dotsize", _INT, "marker radius in pixels (null: the config's)", minimum=1,
          maximum=100),
    Param("colormap", _TEXT, "matplotlib colormap (null: the config's)"),
    Param("draw_skeleton", _BOOL, "draw the config's skeleton", default=False),
    Param("trailpoints", _INT, "previous positions drawn as a trail", default=0, minimum=0,
          maximum=10000),
    Param("keypoints_only", _BOOL, "draw on a blank background", default=False),
    Param("output_fps", _NUM, "frame rate of the video (null: the source's)", minimum=0,
          exclusive_minimum=True, maximum=1000),
    Param("filtered", _BOOL, "draw the _filtered.h5 output", default=False),
), doc="Options of labelled videos (LabeledVideo), DeepLabCut's names.")

BUNDLE_ADJUST = ParamSchema("bundle_adjust", "bundle adjustment", (
    Param("n_iters", _INT, "iterations", default=6, minimum=1),
    Param("start_mu", _NUM, "initial damping", default=15.0, minimum=0,
          exclusive_minimum=True),
    Param("end_mu", _NUM, "final damping", default=1.0, minimum=0, exclusive_minimum=True),
    Param("max_nfev", _INT, "function evaluations per iteration", default=200, minimum=1),
    Param("ftol", _NUM, "tolerance", default=1e-4, minimum=0, exclusive_minimum=True),
    Param("n_samp_iter", _INT, "samples per iteration", default=200, minimum=1),
    Param("n_samp_full", _INT, "samples of the final pass", default=1000, minimum=1),
    Param("error_threshold", _NUM, "outlier threshold", default=0.3, minimum=0,
          exclusive_minimum=True),
))
CALIBRATION = ParamSchema("calibration", "multicam.CalibrationParamSet", (
    Param("type", _TEXT, "board type", default="charuco", choices=("charuco", "checkerboard"),
          nullable=False),
    Param("squares_x", _INT, "squares along x", required=True, minimum=2),
    Param("squares_y", _INT, "squares along y", required=True, minimum=2),
    Param("square_length", _NUM, "square side, in units", required=True, minimum=0,
          exclusive_minimum=True),
    Param("marker_length", _NUM, "ChArUco marker side (< square_length); charuco only",
          minimum=0, exclusive_minimum=True),
    Param("marker_bits", _INT, "ArUco marker bits (charuco)", default=4, choices=(4, 5, 6, 7),
          nullable=True),
    Param("dict_size", _INT, "ArUco dictionary size (charuco)", default=50,
          choices=(50, 100, 250, 1000), nullable=True),
    Param("legacy_pattern", _BOOL, "OpenCV's pre-4.6 ChArUco layout", default=False),
    Param("units", _TEXT, "length unit of the board and of 3D poses", default="mm"),
    Param("fisheye", _BOOL, "fisheye lens model", default=False),
    Param("extra_distortion", _BOOL, "more distortion coefficients", default=False),
    Param("frame_step", _INT, "use every N-th frame", default=5, minimum=1),
    Param("min_detections", _INT, "board detections needed per camera", default=5,
          minimum=1),
    Param("seed", _INT, "random seed", default=0, minimum=0),
    Param("bundle_adjust", "mapping", "bundle adjustment options", default={},
          nullable=True, schema=BUNDLE_ADJUST),
), doc="Calibration board and options (Calibration), anipose-style.")

FILTER_3D = ParamSchema("filter_3d", "3D filter", (
    Param("medfilt", _INT, "odd median window in frames", default=7, minimum=1),
    Param("offset_threshold", _NUM, "largest distance from the median (units)", default=25.0,
          minimum=0, exclusive_minimum=True),
    Param("score_threshold", _NUM, "points below this score are dropped", default=0.0,
          minimum=0, maximum=1),
    Param("interpolate", _BOOL, "fill gaps", default=True),
    Param("max_gap", _INT, "longest gap filled (null: any)", default=10, nullable=True,
          minimum=1),
))
TRIANGULATION = ParamSchema("triangulation", "multicam.TriangulationParamSet", (
    Param("score_threshold", _NUM, "2D points below this likelihood are ignored",
          default=0.8, minimum=0, maximum=1),
    Param("ransac", _BOOL, "RANSAC triangulation", default=False),
    Param("ransac_threshold", _NUM, "RANSAC inlier threshold (pixels)", default=5.0,
          minimum=0, exclusive_minimum=True),
    Param("min_cameras", _INT, "cameras needed for a 3D point", default=2, minimum=2),
    Param("optim", _BOOL, "anipose's spatio-temporal optimisation", default=False),
    Param("constraints", "list", "[a, b] body-part pairs of fixed length", default=[],
          nullable=True),
    Param("constraints_weak", "list", "weak [a, b] length constraints", default=[],
          nullable=True),
    Param("scale_smooth", _NUM, "smoothness weight", default=2.0, minimum=0),
    Param("scale_length", _NUM, "length-constraint weight", default=2.0, minimum=0),
    Param("scale_length_weak", _NUM, "weak length-constraint weight", default=1.0, minimum=0),
    Param("reproj_error_threshold", _NUM, "reprojection error threshold (pixels)",
          default=5.0, minimum=0, exclusive_minimum=True),
    Param("reproj_loss", _TEXT, "reprojection loss", default="soft_l1",
          choices=("linear", "soft_l1", "huber")),
    Param("n_deriv_smooth", _INT, "derivative order smoothed", default=3, minimum=1),
    Param("axes", "list", "[[axis, from, to], [axis, from, to]] to align axes", default=[],
          nullable=True),
    Param("reference_point", _TEXT, "body part placed at the origin"),
    Param("filter_3d", ("mapping", _BOOL), "3D filter: true, or options (null/false: none)",
          schema=FILTER_3D),
    Param("angles", "mapping", "anipose angles {name: [a, b, c]}", default={}, nullable=True),
), doc="Triangulation, optional 3D filter and joint angles (Triangulation).")

#: Every parameter set's schema, by the name ``element-pose params NAME`` takes.
SCHEMAS: dict[str, ParamSchema] = {s.name: s for s in (
    TRAINING, FILTER, LABELED_VIDEO, CALIBRATION, TRIANGULATION)}
