"""Constants, errors and the engine-neutral results of the DeepLabCut adapter."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.pose import check_keypoints
from element_pose.engines.base import EngineError as _EngineError
from element_pose.io import dlc as dlc_io

__all__ = [
    "ENGINE_NAME",
    "EVALUATION_FOLDER",
    "LEARNING_STATS",
    "MODELS_FOLDER",
    "PREPARED_MARKER",
    "PYTORCH_CONFIG",
    "RANDOM_INIT_NAME",
    "AnalyzedVideo",
    "EngineError",
    "ShuffleTraining",
    "SnapshotEvaluation",
    "SnapshotInfo",
    "VideoAnalysis",
]

log = logging.getLogger(__name__)


ENGINE_NAME = "deeplabcut"
MODELS_FOLDER = "dlc-models-pytorch"
EVALUATION_FOLDER = "evaluation-results-pytorch"
PYTORCH_CONFIG = "pytorch_config.yaml"
LEARNING_STATS = "learning_stats.csv"
RANDOM_INIT_NAME = "weight-init-random.pt"
PREPARED_MARKER = ".element_pose_prepared"
_SNAPSHOT_RE = re.compile(r"^snapshot(?P<best>-best)?-(?P<epoch>\d+)\.pt$")


class EngineError(_EngineError):
    """A DeepLabCut step cannot run or failed; the message names the file or step.

    A :class:`element_pose.engines.base.EngineError`, as every engine's errors are."""


# ================================================================= results
@dataclasses.dataclass(frozen=True)
class SnapshotInfo:
    """One saved model snapshot of a training run.

    Attributes:
        path: The ``.pt`` file.
        epoch: Training epochs the snapshot was saved after.
        best: Whether DeepLabCut marked it the best (by its key metric, test mAP).
    """

    path: Path
    epoch: int
    best: bool

    @property
    def name(self) -> str:
        """File stem, e.g. ``snapshot-best-010`` (what ``snapshots_to_evaluate`` takes)."""
        return self.path.stem

    @property
    def uid(self) -> str:
        """DeepLabCut's uid for scorer names: ``"10"`` or ``"best-10"``."""
        return f"best-{self.epoch}" if self.best else str(self.epoch)

    @classmethod
    def from_path(cls, path: str | Path) -> SnapshotInfo:
        """Parse ``snapshot[-best]-<epoch>.pt``.

        Raises:
            EngineError: if the name is not a DeepLabCut pose snapshot name.
        """
        path = Path(path)
        match = _SNAPSHOT_RE.match(path.name)
        if not match:
            raise EngineError(f"{path} is not a DeepLabCut snapshot (snapshot[-best]-<epoch>.pt)")
        return cls(path=path, epoch=int(match["epoch"]), best=bool(match["best"]))


@dataclasses.dataclass
class ShuffleTraining:
    """What one training run produced.

    Attributes:
        config_path: The project ``config.yaml`` trained on.
        shuffle: Shuffle index.
        trainingsetindex: Index into ``TrainingFraction``.
        train_fraction: The training fraction.
        model_folder: The shuffle's ``train`` folder (snapshots, logs, configs).
        snapshots: All pose snapshots in the folder after training, by epoch.
        new_snapshots: Snapshots written (or rewritten) by this run.
        best_snapshot: The snapshot marked best, or ``None``.
        last_snapshot: The snapshot with the most epochs.
        learning_stats: ``learning_stats.csv`` as a DataFrame, one row per epoch:
            ``step`` (the epoch), ``losses/train.total_loss`` and the head losses,
            and on evaluation epochs (every ``eval_interval``; NaN otherwise)
            ``losses/eval.*``, ``metrics/test.rmse``, ``metrics/test.rmse_pcutoff``,
            ``metrics/test.mAP``, ``metrics/test.mAR``.  ``None`` when absent.
        wall_time: Seconds spent in ``deeplabcut.train_network``.
        device: Torch device trained on.
        versions: Software versions (``deeplabcut``, ``torch``, ``element_pose``).
        pytorch_config: The effective ``pytorch_config.yaml`` after training.
        bodyparts: Body parts the model predicts, in model order.
        net_type: Network type, e.g. ``cspnext_s``.
        scorer_prefix: Scorer without the snapshot part,
            ``DLC_<NetType>_<Task><date>shuffle<k>``.
        individuals: Multi-animal only: the individuals the model assembles (empty
            for single-animal projects).
    """

    config_path: Path
    shuffle: int
    trainingsetindex: int
    train_fraction: float
    model_folder: Path
    snapshots: list[SnapshotInfo]
    new_snapshots: list[SnapshotInfo]
    best_snapshot: SnapshotInfo | None
    last_snapshot: SnapshotInfo
    learning_stats: Any
    wall_time: float
    device: str
    versions: dict[str, str]
    pytorch_config: dict[str, Any]
    bodyparts: list[str]
    net_type: str
    scorer_prefix: str
    individuals: list[str] = dataclasses.field(default_factory=list)

    def learning_stats_arrays(self) -> dict[str, np.ndarray]:
        """Learning statistics as ``{column: float array}`` (empty when none)."""
        if self.learning_stats is None:
            return {}
        return {
            str(c): self.learning_stats[c].to_numpy(dtype=np.float64)
            for c in self.learning_stats.columns
        }


@dataclasses.dataclass
class SnapshotEvaluation:
    """Evaluation of one snapshot on the labelled train/test images.

    Metric values are DeepLabCut's, which rounds them to 2 decimals.  RMSE are in
    pixels; mAP/mAR are OKS-based percentages (0-100).

    Attributes:
        snapshot: The snapshot evaluated.
        scorer: Its scorer name.
        results_csv: ``<scorer>-results.csv`` written by this call.
        predictions_h5: ``<scorer>.h5`` with predictions on every labelled image.
        keypoint_results_csv: ``<scorer>-keypoint-results.csv``, when written.
        train_rmse: Train RMSE over all body parts (px).
        train_rmse_pcutoff: Train RMSE over points with likelihood >= pcutoff.
        train_map: Train mAP.
        train_mar: Train mAR.
        test_rmse: Test RMSE (px).
        test_rmse_pcutoff: Test RMSE with likelihood >= pcutoff.
        test_map: Test mAP.
        test_mar: Test mAR.
        pcutoff: The likelihood cutoff used (as DeepLabCut reports it).
        train_fraction: Training fraction of the shuffle.
        shuffle: Shuffle index.
        per_bodypart: DataFrame indexed by body part with columns ``train_rmse`` and
            ``test_rmse`` (px), or ``None`` when DeepLabCut wrote none.
        metrics: The raw result row ``{column: value}``.
        device: Torch device used.
        wall_time: Seconds spent in ``deeplabcut.evaluate_network``.
        versions: Software versions.
    """

    snapshot: SnapshotInfo
    scorer: str
    results_csv: Path
    predictions_h5: Path | None
    keypoint_results_csv: Path | None
    train_rmse: float
    train_rmse_pcutoff: float
    train_map: float
    train_mar: float
    test_rmse: float
    test_rmse_pcutoff: float
    test_map: float
    test_mar: float
    pcutoff: float | str
    train_fraction: float
    shuffle: int
    per_bodypart: Any
    metrics: dict[str, Any]
    device: str
    wall_time: float
    versions: dict[str, str]


@dataclasses.dataclass
class AnalyzedVideo:
    """The outputs of one analysed video.

    Attributes:
        video: The video analysed.
        h5: Pose output (``<stem><scorer>.h5``; ``_el.h5`` for tracked multi-animal).
        meta: ``_meta.pickle``, when written.
        full_pickle: ``_full.pickle`` (raw predictions), when written.
        files: Every file written for this video.
        n_frames: Frames in the video (probed before inference).
        fps: Video frame rate.
        width: Frame width (px).
        height: Frame height (px).
        run_duration: DeepLabCut's run time for this video (s), when recorded.
    """

    video: Path
    h5: Path
    meta: Path | None
    full_pickle: Path | None
    files: list[Path]
    n_frames: int
    fps: float
    width: int
    height: int
    run_duration: float | None


@dataclasses.dataclass
class VideoAnalysis:
    """What :func:`infer` produced.

    Attributes:
        outputs: One :class:`AnalyzedVideo` per video, in input order.
        scorer: Scorer name (includes the snapshot uid).
        snapshot: The snapshot used.
        output_dir: Folder holding the outputs.
        bodyparts: Body parts the model predicts, in model order.
        run_time: Seconds spent in ``deeplabcut.analyze_videos`` (all videos,
            including model loading).
        frames_per_second: Total frames / ``run_time``.
        n_frames: Total frames analysed.
        device: Torch device used.
        batch_size: Inference batch size.
        versions: Software versions.
        individuals: Multi-animal only: the model's individuals (the tracks' names).
        track_method: Multi-animal only: the tracker used (``ellipse``, ``box``,
            ``skeleton``), ``None`` when not tracked.
        tracking_time: Seconds spent building and stitching tracklets (not in
            ``run_time``).
    """

    outputs: list[AnalyzedVideo]
    scorer: str
    snapshot: SnapshotInfo
    output_dir: Path
    bodyparts: list[str]
    run_time: float
    frames_per_second: float
    n_frames: int
    device: str
    batch_size: int
    versions: dict[str, str]
    individuals: list[str] = dataclasses.field(default_factory=list)
    track_method: str | None = None
    tracking_time: float = 0.0

    def read_pose(self, index: int = 0):
        """Read one video's output as :class:`~element_pose.core.pose.PoseData`.

        Goes through :func:`element_pose.io.dlc.read_dlc_h5` and returns the body
        parts in model order.
        """
        out = self.outputs[index]
        pose = dlc_io.read_dlc_h5(out.h5, fps=out.fps)
        return check_keypoints(pose, self.bodyparts, out.h5, error=dlc_io.DLCFormatError)
