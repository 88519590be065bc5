"""DeepLabCut 3 (PyTorch engine) adapter: prepare, train, evaluate, infer, label.

The only package of element-pose that imports :mod:`deeplabcut` (and torch); both
are imported inside the functions that need them, so importing this package is
cheap.  Nothing here touches a database: the DataJoint tables call these
functions from their ``make()`` methods and store what they return.

Modules, by concern (every public name is importable from this package; private
helpers only from their module):

* :mod:`.base`: constants, :class:`EngineError`, snapshots and results;
* :mod:`.layout`: project paths, ``pytorch_config.yaml``, snapshots and scorers;
* :mod:`.project`: training parameters, labelled-data checks, preparing a project
  and patching its ``pytorch_config.yaml``;
* :mod:`.run`: training and evaluation;
* :mod:`.infer`: inference, multi-animal tracking and labelled videos;
* :mod:`.runtime`: devices, versions, importing DeepLabCut, its errors, console
  output (into logging) and the signal handlers of its child processes.

Typical use::

    from element_pose.engines import deeplabcut as dlc_engine

    params = {"net_type": "cspnext_s", "epochs": 40, "weight_init": "random"}
    config = dlc_engine.prepare_training_project(user_config, workdir, params)
    trained = dlc_engine.train(config, params)
    scores = dlc_engine.evaluate(config, shuffle=1, trainingsetindex=0)
    out = dlc_engine.infer(config, [video], output_dir, shuffle=1, trainingsetindex=0)
    pose = out.read_pose(0)          # through element_pose.io.dlc.read_dlc_h5

What DeepLabCut 3.0.2 writes, and what this module relies on:

* ``<project>/dlc-models-pytorch/iteration-<i>/<Task><date>-trainset<pct>shuffle<k>/train/``
  holds ``pytorch_config.yaml``, ``snapshot-<epoch>.pt`` (``%03d``),
  ``snapshot-best-<epoch>.pt`` (best test mAP, checked every ``eval_interval``
  epochs) and ``learning_stats.csv`` (one row per epoch).  Only the newest
  ``max_snapshots`` regular snapshots are kept.
* A snapshot's scorer uid is ``<epoch>`` or ``best-<epoch>`` (no zero padding), and
  the scorer of its outputs is ``DLC_<NetType>_<Task><date>shuffle<k>_snapshot_<uid>``.
* ``evaluate_network`` writes, in
  ``evaluation-results-pytorch/iteration-<i>/<Task><date>-trainset<pct>shuffle<k>/``,
  ``<scorer>-results.csv`` (one row; metrics rounded to 2 decimals), ``<scorer>.h5``
  (predictions on every labelled image) and, with ``per_keypoint_evaluation=True``,
  ``<scorer>-keypoint-results.csv`` (rows ``Train error (px)``/``Test error (px)``,
  one column per body part).  The file name is fixed by the snapshot, so the
  result of one snapshot is found by name, never by globbing.
* ``analyze_videos`` writes ``<video stem><scorer>.h5`` / ``_meta.pickle`` /
  ``_full.pickle`` into ``destfolder`` and silently skips a video whose
  ``_full.pickle`` already exists; this module therefore runs it in a fresh
  temporary folder and moves the results into place.
* Multi-animal projects (``multianimalproject: true``) train bottom-up models
  (heatmaps + part-affinity fields; ``create_training_dataset`` returns ``None``
  for them even on success).  ``analyze_videos`` writes ``_full.pickle`` and
  ``_assemblies.pickle`` (no ``.h5``); tracking writes ``_el.pickle`` (tracklets)
  and the tracked ``<stem><scorer>_el.h5`` (``_bx``/``_sk`` for the box/skeleton
  trackers), one column group per individual of the config, ending at the last
  tracked frame.  :func:`infer` returns that file, padded to the video's length.
"""

from __future__ import annotations

from element_pose.engines.deeplabcut.base import (
    ENGINE_NAME,
    EVALUATION_FOLDER,
    LEARNING_STATS,
    MODELS_FOLDER,
    PREPARED_MARKER,
    PYTORCH_CONFIG,
    RANDOM_INIT_NAME,
    AnalyzedVideo,
    EngineError,
    ShuffleTraining,
    SnapshotEvaluation,
    SnapshotInfo,
    VideoAnalysis,
)
from element_pose.engines.deeplabcut.infer import infer, label_video
from element_pose.engines.deeplabcut.layout import (
    TRACK_METHODS,
    check_video_sets,
    evaluation_folder,
    model_folder,
    pytorch_config_path,
    read_pytorch_config,
    registered_snapshot,
    resolve_snapshot,
    scorer_name,
    snapshot_uid,
    snapshots,
)
from element_pose.engines.deeplabcut.project import (
    TRAINING_DEFAULTS,
    LabeledDataSummary,
    patch_pytorch_config,
    prepare_training_project,
    read_project_config,
    training_params,
    validate_labeled_data,
)
from element_pose.engines.deeplabcut.run import evaluate, train
from element_pose.engines.deeplabcut.runtime import device_info, select_device, versions

__all__ = [
    "ENGINE_NAME",
    "EVALUATION_FOLDER",
    "LEARNING_STATS",
    "MODELS_FOLDER",
    "PREPARED_MARKER",
    "PYTORCH_CONFIG",
    "RANDOM_INIT_NAME",
    "TRACK_METHODS",
    "TRAINING_DEFAULTS",
    "AnalyzedVideo",
    "EngineError",
    "LabeledDataSummary",
    "ShuffleTraining",
    "SnapshotEvaluation",
    "SnapshotInfo",
    "VideoAnalysis",
    "check_video_sets",
    "device_info",
    "evaluate",
    "evaluation_folder",
    "infer",
    "label_video",
    "model_folder",
    "patch_pytorch_config",
    "prepare_training_project",
    "pytorch_config_path",
    "read_project_config",
    "read_pytorch_config",
    "registered_snapshot",
    "resolve_snapshot",
    "scorer_name",
    "select_device",
    "snapshot_uid",
    "snapshots",
    "train",
    "training_params",
    "validate_labeled_data",
    "versions",
]
