"""DeepLabCut 3 (PyTorch engine) adapter: prepare, train, evaluate, infer, label.

The only module of element-pose that imports :mod:`deeplabcut` (and torch); both
are imported inside the functions that need them, so importing this module is
cheap.  Nothing here touches a database: the DataJoint tables call these
functions from their ``make()`` methods and store what they return.

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

import contextlib
import copy
import dataclasses
import io
import logging
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.io import dlc as dlc_io

log = logging.getLogger(__name__)

ENGINE_NAME = "deeplabcut"
MODELS_FOLDER = "dlc-models-pytorch"
EVALUATION_FOLDER = "evaluation-results-pytorch"
PYTORCH_CONFIG = "pytorch_config.yaml"
LEARNING_STATS = "learning_stats.csv"
RANDOM_INIT_NAME = "weight-init-random.pt"
PREPARED_MARKER = ".element_pose_prepared"
_SNAPSHOT_RE = re.compile(r"^snapshot(?P<best>-best)?-(?P<epoch>\d+)\.pt$")


class EngineError(RuntimeError):
    """A DeepLabCut step cannot run or failed; the message names the file or step."""


# ============================================================== parameters
#: Training parameters accepted by :func:`prepare_training_project` and :func:`train`,
#: with their defaults (``None`` keeps DeepLabCut's value).
TRAINING_DEFAULTS: dict[str, Any] = {
    # dataset / shuffle
    "shuffle": 1,
    "trainingsetindex": 0,
    "train_fraction": None,
    "net_type": None,
    "augmenter_type": None,
    "train_indices": None,
    "test_indices": None,
    # pytorch_config.yaml
    "epochs": None,
    "batch_size": None,
    "save_epochs": None,
    "max_snapshots": None,
    "eval_interval": None,
    "key_metric": None,
    "key_metric_asc": None,
    "display_iters": None,
    "learning_rate": None,
    "optimizer": None,
    "scheduler": None,
    "crop_size": "auto",
    "augmentation": None,
    "seed": None,
    "dataloader_workers": None,
    "device": None,
    "weight_init": "pretrained",
    "pytorch_config_updates": None,
    # project config.yaml
    "pcutoff": None,
    "copy_videos": False,
}


def training_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the full training parameter dict: defaults updated with ``params``.

    Raises:
        EngineError: naming any key that is not in :data:`TRAINING_DEFAULTS`.
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(TRAINING_DEFAULTS))
    if unknown:
        raise EngineError(
            f"unknown DeepLabCut training parameters {unknown}; "
            f"accepted: {sorted(TRAINING_DEFAULTS)}"
        )
    out = {**TRAINING_DEFAULTS, **params}
    _weight_init_spec(out["weight_init"])  # validate early
    return out


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
class TrainingResult:
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
class EvaluationResult:
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
class VideoOutput:
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
class InferenceResult:
    """What :func:`infer` produced.

    Attributes:
        outputs: One :class:`VideoOutput` per video, in input order.
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

    outputs: list[VideoOutput]
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
        """Read one video's output as :class:`~element_pose.pose.PoseData`.

        Goes through :func:`element_pose.io.dlc.read_dlc_h5` and returns the body
        parts in model order.
        """
        out = self.outputs[index]
        pose = dlc_io.read_dlc_h5(out.h5, fps=out.fps)
        return dlc_io.check_keypoints(pose, self.bodyparts, str(out.h5))


# ===================================================================== devices
def device_info() -> dict[str, Any]:
    """Describe the torch devices: ``{torch, cuda_available, cuda_devices, default}``.

    ``default`` is ``"cuda"`` when torch sees a GPU, else ``"cpu"``.
    """
    import torch

    cuda = torch.cuda.is_available()
    count = torch.cuda.device_count() if cuda else 0
    names = [torch.cuda.get_device_name(i) for i in range(count)]
    return {
        "torch": torch.__version__,
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "cuda_devices": names,
        "default": "cuda" if cuda else "cpu",
    }


def select_device(device: str | None = None) -> str:
    """The torch device to run on: ``device`` when given, else CUDA if available, else CPU.

    Raises:
        EngineError: if a CUDA device is requested but torch sees no GPU.
    """
    if device and device != "auto":
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise EngineError(f"device {device!r} requested but torch sees no CUDA GPU")
        return device
    return device_info()["default"]


def versions() -> dict[str, str]:
    """Versions of the software that trains/infers (without importing deeplabcut)."""
    from importlib import metadata

    from element_pose.version import __version__

    out = {"element_pose": __version__}
    for dist in ("deeplabcut", "torch", "torchvision", "timm"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


# ====================================================== project layout helpers
def _project_root(config_path: str | Path) -> Path:
    return Path(config_path).resolve().parent


def _train_fraction(cfg: Mapping[str, Any], trainingsetindex: int, config_path: Path) -> float:
    fractions = cfg.get("TrainingFraction") or []
    if not 0 <= trainingsetindex < len(fractions):
        raise EngineError(
            f"trainingsetindex {trainingsetindex} is out of range for TrainingFraction "
            f"{fractions} in {config_path}"
        )
    return float(fractions[trainingsetindex])


def _shuffle_name(cfg: Mapping[str, Any], train_fraction: float, shuffle: int) -> str:
    # The same arithmetic as deeplabcut.utils.auxiliaryfunctions.get_model_folder.
    return f"{cfg['Task']}{cfg['date']}-trainset{int(train_fraction * 100)}shuffle{shuffle}"


def model_folder(config_path: str | Path, shuffle: int = 1, trainingsetindex: int = 0) -> Path:
    """The shuffle's ``train`` folder (snapshots, ``pytorch_config.yaml``, logs)."""
    config_path = Path(config_path)
    cfg = dlc_io.read_config(config_path)
    frac = _train_fraction(cfg, trainingsetindex, config_path)
    return (
        _project_root(config_path)
        / MODELS_FOLDER
        / f"iteration-{cfg.get('iteration', 0)}"
        / _shuffle_name(cfg, frac, shuffle)
        / "train"
    )


def evaluation_folder(config_path: str | Path, shuffle: int = 1, trainingsetindex: int = 0) -> Path:
    """The shuffle's folder under ``evaluation-results-pytorch``."""
    config_path = Path(config_path)
    cfg = dlc_io.read_config(config_path)
    frac = _train_fraction(cfg, trainingsetindex, config_path)
    prefix = cfg.get("eval_prefix") or EVALUATION_FOLDER
    return (
        _project_root(config_path)
        / prefix
        / f"iteration-{cfg.get('iteration', 0)}"
        / _shuffle_name(cfg, frac, shuffle)
    )


def pytorch_config_path(
    config_path: str | Path, shuffle: int = 1, trainingsetindex: int = 0
) -> Path:
    """The shuffle's ``pytorch_config.yaml``."""
    return model_folder(config_path, shuffle, trainingsetindex) / PYTORCH_CONFIG


def read_pytorch_config(
    config_path: str | Path, shuffle: int = 1, trainingsetindex: int = 0
) -> dict[str, Any]:
    """Read the shuffle's ``pytorch_config.yaml``.

    Raises:
        EngineError: if the shuffle has no training dataset yet.
    """
    path = pytorch_config_path(config_path, shuffle, trainingsetindex)
    if not path.is_file():
        raise EngineError(
            f"no PyTorch training dataset for shuffle {shuffle} (trainingsetindex "
            f"{trainingsetindex}) of {config_path}: {path} does not exist; run "
            "prepare_training_project first"
        )
    return _read_yaml(path)


def scorer_name(
    config_path: str | Path,
    shuffle: int = 1,
    trainingsetindex: int = 0,
    snapshot: SnapshotInfo | None = None,
) -> str:
    """The scorer DeepLabCut gives outputs of a snapshot (pose models without detector).

    Without ``snapshot`` the prefix ``DLC_<NetType>_<Task><date>shuffle<k>`` is returned.
    """
    cfg = dlc_io.read_config(config_path)
    net_type = read_pytorch_config(config_path, shuffle, trainingsetindex)["net_type"]
    name = "".join(p.capitalize() for p in str(net_type).split("_"))
    prefix = f"DLC_{name}_{cfg['Task']}{cfg['date']}shuffle{shuffle}"
    return prefix if snapshot is None else f"{prefix}_snapshot_{snapshot.uid}"


# ================================================================ snapshots
def snapshots(
    config_path: str | Path, shuffle: int = 1, trainingsetindex: int = 0
) -> list[SnapshotInfo]:
    """The pose snapshots of a shuffle, sorted by epoch (a best one after a regular one).

    Returns an empty list when nothing was trained yet.
    """
    folder = model_folder(config_path, shuffle, trainingsetindex)
    return _list_snapshots(folder)


def _list_snapshots(folder: Path) -> list[SnapshotInfo]:
    if not folder.is_dir():
        return []
    found = [SnapshotInfo.from_path(p) for p in folder.iterdir() if _SNAPSHOT_RE.match(p.name)]
    return sorted(found, key=lambda s: (s.epoch, s.best))


def _dlc_snapshot_index(all_snapshots: Sequence[SnapshotInfo], snapshot: SnapshotInfo) -> int:
    """Index of ``snapshot`` in DeepLabCut's order (by epoch, the best one last)."""
    ordered = sorted(all_snapshots, key=lambda s: (s.best, s.epoch))
    for i, s in enumerate(ordered):
        if s.path.name == snapshot.path.name:
            return i
    raise EngineError(f"snapshot {snapshot.path} is not among {[s.name for s in ordered]}")


def resolve_snapshot(
    config_path: str | Path,
    shuffle: int = 1,
    trainingsetindex: int = 0,
    snapshot: SnapshotInfo | str | int | Path | None = None,
) -> SnapshotInfo:
    """Find one snapshot of a shuffle.

    Args:
        config_path: Project ``config.yaml``.
        shuffle: Shuffle index.
        trainingsetindex: Index into ``TrainingFraction``.
        snapshot: ``None`` or ``"best"`` (the best snapshot, else the last one, as
            DeepLabCut picks by default), ``"last"`` (most epochs, not the best
            copy), an ``int`` epoch (a regular snapshot, else the best one of that
            epoch), a name (``"snapshot-best-010"``, ``"snapshot-010.pt"``), a path,
            or a :class:`SnapshotInfo`.

    Raises:
        EngineError: naming the folder or path when the snapshot does not exist.
    """
    folder = model_folder(config_path, shuffle, trainingsetindex)
    available = _list_snapshots(folder)
    names = [s.path.name for s in available]

    if isinstance(snapshot, SnapshotInfo | Path) or (
        isinstance(snapshot, str) and ("/" in snapshot or os.sep in snapshot)
    ):
        path = snapshot.path if isinstance(snapshot, SnapshotInfo) else Path(snapshot)
        if not path.is_file():
            raise EngineError(f"snapshot {path} does not exist")
        info = SnapshotInfo.from_path(path)
        if path.resolve().parent != folder.resolve():
            raise EngineError(
                f"snapshot {path} is not in the model folder {folder} of shuffle {shuffle}"
            )
        return info
    if not available:
        raise EngineError(f"no snapshots in {folder}: the shuffle has not been trained")
    if snapshot is None or snapshot == "best":
        best = [s for s in available if s.best]
        if best:
            return best[-1]
        # DeepLabCut marks a best snapshot only every eval_interval epochs; before
        # that it picks the last one, and so do we.
        last = max(available, key=lambda s: s.epoch)
        log.info("no best snapshot in %s; using the last one, %s", folder, last.name)
        return last
    if snapshot == "last":
        return max(available, key=lambda s: (s.epoch, not s.best))
    if isinstance(snapshot, int | np.integer) and not isinstance(snapshot, bool):
        matches = sorted((s for s in available if s.epoch == int(snapshot)), key=lambda s: s.best)
        if not matches:
            raise EngineError(f"no snapshot of epoch {snapshot} in {folder} (found {names})")
        return matches[0]
    if isinstance(snapshot, str):
        name = snapshot if snapshot.endswith(".pt") else f"{snapshot}.pt"
        path = folder / name
        if not path.is_file():
            raise EngineError(f"snapshot {path} does not exist (found {names})")
        return SnapshotInfo.from_path(path)
    raise EngineError(f"cannot interpret snapshot {snapshot!r}")


def registered_snapshot(
    config_path: str | Path,
    shuffle: int = 1,
    trainingsetindex: int = 0,
    snapshot: SnapshotInfo | str | int | Path | None = "best",
) -> tuple[str, str] | None:
    """The concrete snapshot (file stem) and its output scorer, as a Model stores them.

    ``"best"``/``"last"``/an epoch are resolved once, here, so that a model keeps
    meaning the same file when training continues or outputs of other snapshots
    appear beside it.

    Returns:
        ``(snapshot name, scorer)``, or ``None`` when the shuffle has no snapshot
        (a project whose outputs are only loaded).

    Raises:
        EngineError: the shuffle has snapshots but not the one asked for (the message
            lists those found).
    """
    if not snapshots(config_path, shuffle, trainingsetindex):
        return None
    snap = resolve_snapshot(config_path, shuffle, trainingsetindex, snapshot)
    try:
        scorer = scorer_name(config_path, shuffle, trainingsetindex, snap)
    except EngineError:
        scorer = ""
    return snap.name, scorer


def snapshot_uid(snapshot: str | int) -> str | None:
    """DeepLabCut's scorer uid (``"3"``, ``"best-3"``) of a stored snapshot label.

    ``None`` for labels that name no epoch (``"best"``, ``"last"``).
    """
    text = str(snapshot)
    if text.isdigit():
        return str(int(text))
    match = _SNAPSHOT_RE.match(text if text.endswith(".pt") else f"{text}.pt")
    if not match:
        return None
    epoch = int(match["epoch"])
    return f"best-{epoch}" if match["best"] else str(epoch)


def check_video_sets(config_path: str | Path) -> tuple[list[str], list[str]]:
    """Labelled-data folders of a project and the folder names its ``video_sets`` expect.

    DeepLabCut trains on ``labeled-data/<video stem>`` for each video of
    ``video_sets`` and silently ignores other folders.

    Returns:
        ``(folders holding a CollectedData_*.h5, expected folder names)``.
    """
    config_path = Path(config_path)
    cfg = dlc_io.read_config(config_path)
    folder = config_path.resolve().parent / "labeled-data"
    found = sorted(p.name for p in folder.iterdir()
                   if p.is_dir() and any(p.glob("CollectedData_*.h5"))) if folder.is_dir() else []
    expected = [Path(str(v)).stem for v in (cfg.get("video_sets") or {})]
    return found, expected


# ============================================================ labelled data
@dataclasses.dataclass
class LabeledDataSummary:
    """What :func:`validate_labeled_data` found.

    Attributes:
        files: The ``CollectedData_<scorer>.h5`` files checked.
        n_images: Labelled images (rows with at least one labelled point).
        bodyparts: Body parts labelled.
        frame_size: ``(width, height)`` of the largest labelled image.
        individuals: Individuals of a multi-animal project, as in the config (plus
            ``single`` when it has unique body parts); empty for single-animal ones.
    """

    files: list[Path]
    n_images: int
    bodyparts: list[str]
    frame_size: tuple[int, int]
    individuals: list[str] = dataclasses.field(default_factory=list)

    @property
    def multi_animal(self) -> bool:
        """Whether the project is a multi-animal (maDLC) project."""
        return bool(self.individuals)


def validate_labeled_data(config_path: str | Path) -> LabeledDataSummary:
    """Check a project's labelled frames against its ``config.yaml`` before training.

    For every video in ``video_sets`` with a ``labeled-data/<stem>`` folder, the
    ``CollectedData_<scorer>.h5`` must exist, use the config's scorer, label
    exactly the config's body parts and point at images that exist.  Labels of a
    multi-animal project (``multianimalproject: true``) must have an ``individuals``
    column level naming only the config's ``individuals`` (and ``single`` for
    ``uniquebodyparts``); a single-animal project must not.

    Raises:
        EngineError: naming the file and the body parts, images or scorer at fault,
            or saying that there are no labelled frames at all.
    """
    import pandas as pd
    from PIL import Image

    config_path = Path(config_path)
    try:
        cfg = dlc_io.read_config(config_path)
    except dlc_io.DLCFormatError as exc:
        raise EngineError(str(exc)) from exc
    root = config_path.resolve().parent
    scorer = cfg["scorer"]
    expected = dlc_io.config_bodyparts(cfg)
    multi = dlc_io.is_multi_animal(cfg)
    individuals = _check_multi_animal_config(cfg, config_path) if multi else []
    videos = list((cfg.get("video_sets") or {}).keys())
    if not videos:
        raise EngineError(f"{config_path} lists no videos (video_sets); no labelled data")

    files: list[Path] = []
    n_images = 0
    width = height = 0
    for video in videos:
        folder = root / "labeled-data" / Path(video).stem
        if not folder.is_dir():
            log.info("no labelled frames for video %s (no folder %s)", video, folder)
            continue
        h5 = folder / f"CollectedData_{scorer}.h5"
        if not h5.is_file():
            others = sorted(p.name for p in folder.glob("CollectedData_*.h5"))
            raise EngineError(
                f"labelled frames in {folder} have no {h5.name}"
                + (f" (found {others}: labelled by another scorer?)" if others else "")
            )
        try:
            df = pd.read_hdf(h5)
        except Exception as exc:
            raise EngineError(f"cannot read labelled data {h5}: {exc}") from exc
        if not isinstance(df.columns, pd.MultiIndex) or "bodyparts" not in df.columns.names:
            raise EngineError(f"{h5} is not a DeepLabCut labelled-data table")
        scorers = list(dict.fromkeys(df.columns.get_level_values(0)))
        if scorers != [scorer]:
            raise EngineError(f"{h5} is labelled by {scorers}, but {config_path} names {scorer!r}")
        _check_labelled_individuals(df, h5, config_path, individuals, multi)
        labelled = list(dict.fromkeys(df.columns.get_level_values("bodyparts")))
        extra = [b for b in labelled if b not in expected]
        missing = [b for b in expected if b not in labelled]
        if extra or missing:
            raise EngineError(
                f"labelled data {h5} do not match the body parts of {config_path}: "
                + (f"body parts {extra} are missing from the config" if extra else "")
                + ("; " if extra and missing else "")
                + (f"config body parts {missing} are not labelled" if missing else "")
            )
        coords = df.to_numpy(dtype=np.float64)
        rows = np.isfinite(coords).any(axis=1)
        missing_images = []
        for idx in df.index[rows]:
            parts = idx if isinstance(idx, tuple) else Path(str(idx)).parts
            image = root.joinpath(*[str(p) for p in parts])
            if not image.is_file():
                missing_images.append(str(image))
            elif not width:
                with Image.open(image) as im:
                    width, height = im.size
        if missing_images:
            raise EngineError(
                f"{h5} refers to {len(missing_images)} missing image(s), e.g. {missing_images[:3]}"
            )
        files.append(h5)
        n_images += int(rows.sum())
    if not files:
        found, expected = check_video_sets(config_path)
        raise EngineError(
            f"no labelled data for {config_path}: none of the videos of its video_sets has "
            f"a labeled-data folder (expected folders {expected}, found {found})"
        )
    if n_images == 0:
        raise EngineError(
            f"the labelled data of {config_path} are empty: {[str(f) for f in files]}"
        )
    return LabeledDataSummary(
        files=files,
        n_images=n_images,
        bodyparts=expected,
        frame_size=(width, height),
        individuals=individuals,
    )


def _check_multi_animal_config(cfg: Mapping[str, Any], config_path: Path) -> list[str]:
    """The individuals of a multi-animal config, after checking its multi-animal keys.

    Raises:
        EngineError: no ``individuals`` (or duplicates), no ``multianimalbodyparts``,
            or a body part that is both a multi-animal and a unique one.
    """
    names = [str(i) for i in cfg.get("individuals") or []]
    if not names:
        raise EngineError(
            f"{config_path} is a multi-animal project (multianimalproject: true) but lists "
            "no individuals"
        )
    if len(set(names)) != len(names):
        raise EngineError(f"{config_path} lists duplicate individuals: {names}")
    if dlc_io.UNIQUE_INDIVIDUAL in names:
        raise EngineError(
            f"{config_path}: {dlc_io.UNIQUE_INDIVIDUAL!r} is reserved by DeepLabCut for "
            "unique body parts and cannot be an individual"
        )
    multi_parts = list(cfg.get("multianimalbodyparts") or [])
    unique_parts = list(cfg.get("uniquebodyparts") or [])
    if not multi_parts:
        raise EngineError(
            f"{config_path} is a multi-animal project but lists no multianimalbodyparts"
        )
    both = sorted(set(multi_parts) & set(unique_parts))
    if both:
        raise EngineError(
            f"{config_path}: body parts {both} are both multianimalbodyparts and uniquebodyparts"
        )
    return names + ([dlc_io.UNIQUE_INDIVIDUAL] if unique_parts else [])


def _check_labelled_individuals(
    df: Any, h5: Path, config_path: Path, individuals: Sequence[str], multi: bool
) -> None:
    """Check the ``individuals`` level of labelled data against the project kind."""
    levels = list(df.columns.names)
    if multi and "individuals" not in levels:
        raise EngineError(
            f"{config_path} is a multi-animal project (multianimalproject: true), but the "
            f"labelled data {h5} have no 'individuals' column level (columns {levels}): "
            "they were labelled in a single-animal project"
        )
    if not multi and "individuals" in levels:
        raise EngineError(
            f"labelled data {h5} are multi-animal (columns {levels}), but {config_path} is a "
            "single-animal project: set multianimalproject: true with individuals and "
            "multianimalbodyparts"
        )
    if multi:
        labelled = list(dict.fromkeys(df.columns.get_level_values("individuals")))
        extra = [i for i in labelled if i not in individuals]
        if extra:
            raise EngineError(
                f"labelled data {h5} name individuals {extra} that are not in the "
                f"individuals {list(individuals)} of {config_path}"
            )


# ======================================================= preparing a project
def prepare_training_project(
    source_config: str | Path,
    workdir: str | Path,
    params: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> Path:
    """Copy a labelled project into a work directory and create a training shuffle.

    The user's project is never modified: ``config.yaml`` and ``labeled-data/``
    (and ``videos/`` with ``copy_videos``) are copied into ``workdir``, the copy's
    config is updated (``project_path``, ``TrainingFraction``, ``default_net_type``,
    ``pcutoff``; ``default_track_method`` for multi-animal projects),
    ``deeplabcut.create_training_dataset`` makes the shuffle with the PyTorch engine,
    and the shuffle's ``pytorch_config.yaml`` is patched with the training
    parameters (see :func:`patch_pytorch_config`).

    Multi-animal projects (``multianimalproject: true``, labels with an
    ``individuals`` level) get a bottom-up model: a backbone net type
    (``cspnext_s``, ``resnet_50``, ``hrnet_w32``, ...) gets DeepLabCut's heatmap +
    part-affinity-field head, and ``dlcrnet_stride32_ms5`` / ``dekr_w18`` are
    multi-animal architectures.  Top-down net types (``top_down_*``, ``rtmpose_*``)
    also need an object detector, which ``weight_init="random"`` cannot provide.

    On any error the half-made ``workdir`` is removed.

    Args:
        source_config: The user's project ``config.yaml``.
        workdir: Folder to create (must not exist, or be empty; with ``overwrite``, a
            folder made earlier by this function is replaced).
        params: Training parameters (keys of :data:`TRAINING_DEFAULTS`).
        overwrite: Replace a ``workdir`` previously prepared by this function.

    Returns:
        The ``config.yaml`` inside ``workdir``.

    Raises:
        EngineError: bad parameters, labelled data that do not match the config, an
            occupied ``workdir``, or a failure inside DeepLabCut.
    """
    p = training_params(params)
    source_config = Path(source_config)
    summary = validate_labeled_data(source_config)
    cfg = dlc_io.read_config(source_config)
    source_root = source_config.resolve().parent
    workdir = Path(workdir).resolve()

    if workdir == source_root:
        raise EngineError(f"work directory {workdir} is the user's project itself")
    if workdir.exists() and any(workdir.iterdir()):
        if overwrite and (workdir / PREPARED_MARKER).is_file():
            shutil.rmtree(workdir)
        else:
            raise EngineError(
                f"work directory {workdir} is not empty"
                + ("" if overwrite else "; pass overwrite=True to replace a prepared one")
            )

    shuffle = int(p["shuffle"])
    tsi = int(p["trainingsetindex"])
    if p["train_indices"] is not None and p["test_indices"] is not None:
        # DeepLabCut names the shuffle after the fraction of the given split, rounded
        # to 2 decimals, whatever TrainingFraction says: make the config agree.
        n_train, n_test = len(p["train_indices"]), len(p["test_indices"])
        split_frac = round(n_train / max(n_train + n_test, 1), 2)
        if p["train_fraction"] is not None and abs(float(p["train_fraction"]) - split_frac) > 0.005:
            raise EngineError(
                f"train_fraction {p['train_fraction']} disagrees with the given split "
                f"({n_train} train / {n_test} test images = {split_frac})"
            )
        p["train_fraction"] = split_frac
    if p["train_fraction"] is not None:
        frac = float(p["train_fraction"])
        if not 0 < frac <= 1:
            raise EngineError(f"train_fraction must be in (0, 1], got {frac}")
        if tsi != 0:
            raise EngineError("with train_fraction given, trainingsetindex must be 0")
        cfg["TrainingFraction"] = [frac]
    else:
        _train_fraction(cfg, tsi, source_config)

    workdir.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(source_root / "labeled-data", workdir / "labeled-data")
        if p["copy_videos"] and (source_root / "videos").is_dir():
            shutil.copytree(source_root / "videos", workdir / "videos")
            cfg["video_sets"] = {
                (
                    str(workdir / "videos" / Path(v).name)
                    if (source_root / "videos" / Path(v).name).is_file()
                    else v
                ): meta
                for v, meta in (cfg.get("video_sets") or {}).items()
            }
        cfg["project_path"] = str(workdir)
        cfg["engine"] = "pytorch"
        if p["net_type"]:
            cfg["default_net_type"] = p["net_type"]
        if p["pcutoff"] is not None:
            cfg["pcutoff"] = float(p["pcutoff"])
        if summary.multi_animal:
            # Written now so that DeepLabCut never rewrites the config while tracking.
            cfg["default_track_method"] = _track_method(cfg, None)
        config_path = dlc_io.write_config(cfg, workdir / "config.yaml")

        _create_training_dataset(config_path, p)
        patch_pytorch_config(config_path, p, frame_size=summary.frame_size)
        (workdir / PREPARED_MARKER).write_text(f"prepared from {source_config.resolve()}\n")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    log.info(
        "prepared DeepLabCut training project %s (shuffle %d, %d labelled images, %s)",
        workdir,
        shuffle,
        summary.n_images,
        p["net_type"] or cfg.get("default_net_type"),
    )
    return config_path


def _create_training_dataset(config_path: Path, p: Mapping[str, Any]) -> None:
    deeplabcut = _import_deeplabcut()
    from deeplabcut.core.engine import Engine

    kwargs: dict[str, Any] = {
        "Shuffles": [int(p["shuffle"])],
        "userfeedback": False,
        "engine": Engine.PYTORCH,
    }
    if p["net_type"]:
        kwargs["net_type"] = p["net_type"]
    if p["augmenter_type"]:
        kwargs["augmenter_type"] = p["augmenter_type"]
    if p["train_indices"] is not None or p["test_indices"] is not None:
        if p["train_indices"] is None or p["test_indices"] is None:
            raise EngineError("train_indices and test_indices must be given together")
        kwargs["trainIndices"] = [list(map(int, p["train_indices"]))]
        kwargs["testIndices"] = [list(map(int, p["test_indices"]))]
    cfg = dlc_io.read_config(config_path)
    log.info("creating DeepLabCut training dataset for %s (%s)", config_path, kwargs)
    with _dlc_errors(f"creating the training dataset for {config_path}"), _keep_cwd():
        out = deeplabcut.create_training_dataset(str(config_path), **kwargs)
    pt_cfg = pytorch_config_path(config_path, int(p["shuffle"]), int(p["trainingsetindex"]))
    # Multi-animal projects go through create_multianimaltraining_dataset, which
    # returns None even on success: the shuffle's pytorch_config.yaml is the proof.
    if not pt_cfg.is_file() or (out is None and not dlc_io.is_multi_animal(cfg)):
        raise EngineError(
            f"DeepLabCut did not create a training dataset for {config_path} "
            f"(no {pt_cfg}); check the labelled data"
        )


def patch_pytorch_config(
    config_path: str | Path,
    params: Mapping[str, Any] | None,
    frame_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Apply training parameters to a shuffle's ``pytorch_config.yaml`` (atomically).

    Keys used: ``epochs``, ``batch_size``, ``save_epochs``, ``max_snapshots``,
    ``eval_interval``, ``key_metric`` (what picks the best snapshot, e.g. ``test.mAP``
    or ``test.rmse``), ``key_metric_asc`` (``True`` when larger is better),
    ``display_iters``, ``learning_rate``, ``optimizer`` (a dict
    replacing ``runner.optimizer``), ``scheduler`` (a dict replacing
    ``runner.scheduler``, or ``False`` to remove it), ``crop_size`` (``"auto"``: crop
    to the labelled frame size rounded up to 32 px, but no larger than DeepLabCut's
    default crop (448 px), so small frames are not padded; ``[w, h]``; ``None``: keep),
    ``augmentation`` (dict merged into ``data.train``), ``seed``,
    ``dataloader_workers``, ``device``, ``weight_init`` and ``pytorch_config_updates``
    (``{"dotted.key": value}`` applied last).

    Returns:
        The patched configuration.
    """
    p = training_params(params)
    config_path = Path(config_path)
    shuffle, tsi = int(p["shuffle"]), int(p["trainingsetindex"])
    path = pytorch_config_path(config_path, shuffle, tsi)
    pt = read_pytorch_config(config_path, shuffle, tsi)

    def put(dotted: str, value: Any) -> None:
        if value is not None:
            _set_nested(pt, dotted, value)

    put("train_settings.epochs", _opt_int(p["epochs"]))
    put("train_settings.batch_size", _opt_int(p["batch_size"]))
    put("train_settings.display_iters", _opt_int(p["display_iters"]))
    put("train_settings.seed", _opt_int(p["seed"]))
    put("train_settings.dataloader_workers", _opt_int(p["dataloader_workers"]))
    put("runner.snapshots.save_epochs", _opt_int(p["save_epochs"]))
    put("runner.snapshots.max_snapshots", _opt_int(p["max_snapshots"]))
    put("runner.eval_interval", _opt_int(p["eval_interval"]))
    put("runner.key_metric", p["key_metric"])
    if p["key_metric_asc"] is not None:
        put("runner.key_metric_asc", bool(p["key_metric_asc"]))
    if p["optimizer"] is not None:
        pt.setdefault("runner", {})["optimizer"] = copy.deepcopy(dict(p["optimizer"]))
    if p["learning_rate"] is not None:
        put("runner.optimizer.params.lr", float(p["learning_rate"]))
    if p["scheduler"] is False or p["scheduler"] == "none":
        pt.setdefault("runner", {})["scheduler"] = None
    elif p["scheduler"] is not None:
        pt.setdefault("runner", {})["scheduler"] = copy.deepcopy(dict(p["scheduler"]))
    if p["device"] is not None:
        pt["device"] = p["device"]

    crop = p["crop_size"]
    if crop == "auto":
        if frame_size is None or not frame_size[0]:
            frame_size = validate_labeled_data(config_path).frame_size
        current = (pt.get("data", {}).get("train", {}) or {}).get("crop_sampling") or {}
        crop = [
            min(_round_up(frame_size[0], 32), int(current.get("width") or 448)),
            min(_round_up(frame_size[1], 32), int(current.get("height") or 448)),
        ]
    if crop is not None:
        train = pt.setdefault("data", {}).setdefault("train", {})
        sampling = dict(train.get("crop_sampling") or {})
        sampling.update({"width": int(crop[0]), "height": int(crop[1])})
        sampling.setdefault("max_shift", 0.1)
        sampling.setdefault("method", "hybrid")
        train["crop_sampling"] = sampling
    if p["augmentation"]:
        train = pt.setdefault("data", {}).setdefault("train", {})
        train.update(copy.deepcopy(dict(p["augmentation"])))

    spec = _weight_init_spec(p["weight_init"])
    train_folder = path.parent
    if spec["mode"] == "pretrained":
        pt.setdefault("train_settings", {}).pop("weight_init", None)
        pt.pop("resume_training_from", None)
    elif spec["mode"] == "random":
        if pt.get("detector"):
            raise EngineError(
                f"net type {pt.get('net_type')!r} is a top-down model that needs an object "
                "detector, and weight_init='random' builds only the pose model; use a "
                "bottom-up net type (e.g. cspnext_s, resnet_50, dlcrnet_stride32_ms5, "
                "dekr_w18) or weight_init={'snapshot_path': ..., "
                "'detector_snapshot_path': ...}"
            )
        init = _make_random_init(pt, train_folder / RANDOM_INIT_NAME, seed=p["seed"])
        pt.setdefault("train_settings", {})["weight_init"] = _weight_init_dict(init)
        pt.pop("resume_training_from", None)
    else:
        snap = Path(spec["snapshot_path"]).resolve()
        if not snap.is_file():
            raise EngineError(f"weight_init snapshot {snap} does not exist")
        if spec["resume"]:
            pt.setdefault("train_settings", {}).pop("weight_init", None)
            pt["resume_training_from"] = str(snap)
        else:
            conversion = None
            if spec["with_decoder"]:
                n_bodyparts = len(pt.get("metadata", {}).get("bodyparts") or [])
                n_unique = len(pt.get("metadata", {}).get("unique_bodyparts") or [])
                conversion = list(range(n_bodyparts + n_unique))
            pt.setdefault("train_settings", {})["weight_init"] = _weight_init_dict(
                snap,
                with_decoder=spec["with_decoder"],
                conversion_array=conversion,
                detector=spec["detector_snapshot_path"],
            )
            pt.pop("resume_training_from", None)

    for dotted, value in (p["pytorch_config_updates"] or {}).items():
        _set_nested(pt, dotted, copy.deepcopy(value))
    _write_yaml(pt, path)
    log.info("patched %s", path)
    return pt


def _weight_init_spec(value: Any) -> dict[str, Any]:
    """Normalise ``params["weight_init"]``.

    Accepted: ``"pretrained"`` (DeepLabCut's default: ImageNet/hub weights, needs the
    internet), ``"random"`` (a random initialisation built locally, for offline use
    and tests), or a dict ``{"snapshot_path": <.pt>, "with_decoder": False,
    "resume": False, "detector_snapshot_path": None}``: backbone (and neck) weights
    from a local ``.pt`` (``{"model": state_dict}``, e.g. a previous model's
    snapshot); ``with_decoder=True`` also loads the heads (same body parts, same
    order); ``resume=True`` continues training from the snapshot (all weights,
    epoch count continues).
    """
    if value is None or value == "pretrained":
        return {"mode": "pretrained"}
    if value == "random":
        return {"mode": "random"}
    if isinstance(value, str | Path) and str(value).endswith(".pt"):
        value = {"snapshot_path": str(value)}
    if isinstance(value, Mapping):
        unknown = set(value) - {"snapshot_path", "with_decoder", "resume", "detector_snapshot_path"}
        if unknown or not value.get("snapshot_path"):
            raise EngineError(
                f"weight_init dict needs 'snapshot_path' and may have 'with_decoder', "
                f"'resume', 'detector_snapshot_path'; got {dict(value)}"
            )
        return {
            "mode": "snapshot",
            "snapshot_path": str(value["snapshot_path"]),
            "with_decoder": bool(value.get("with_decoder", False)),
            "resume": bool(value.get("resume", False)),
            "detector_snapshot_path": value.get("detector_snapshot_path"),
        }
    raise EngineError(
        f"weight_init must be 'pretrained', 'random' or {{'snapshot_path': ...}}, got {value!r}"
    )


def _weight_init_dict(
    snapshot: Path,
    with_decoder: bool = False,
    conversion_array: list[int] | None = None,
    detector: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "snapshot_path": str(snapshot),
        "detector_snapshot_path": str(detector) if detector else None,
        "with_decoder": bool(with_decoder),
        "memory_replay": False,
    }
    if conversion_array is not None:
        out["conversion_array"] = list(conversion_array)
    return out


def _make_random_init(pt: Mapping[str, Any], path: Path, seed: int | None = None) -> Path:
    """Build the configured pose model with random weights and save ``{"model": state_dict}``."""
    _import_deeplabcut()
    import torch
    from deeplabcut.pose_estimation_pytorch.models import PoseModel

    if seed is not None:
        torch.manual_seed(int(seed))
    model_cfg = copy.deepcopy(pt["model"])
    with _dlc_errors("building a randomly initialised model"):
        model = PoseModel.build(model_cfg, pretrained_backbone=False)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model.state_dict()}, tmp)
    tmp.replace(path)
    log.info("wrote random weight initialisation %s", path)
    return path


# ==================================================================== train
def train(
    config_path: str | Path,
    params: Mapping[str, Any] | None = None,
    device: str | None = None,
) -> TrainingResult:
    """Train a prepared shuffle with ``deeplabcut.train_network`` (PyTorch engine).

    The labelled data are validated first.  Training parameters were written to
    ``pytorch_config.yaml`` by :func:`prepare_training_project`; ``epochs``,
    ``batch_size`` and ``save_epochs`` in ``params`` are passed again to
    ``train_network`` so they hold even for a shuffle prepared elsewhere.

    Args:
        config_path: The (work) project's ``config.yaml``.
        params: Training parameters (``shuffle``, ``trainingsetindex``, ...).
        device: Torch device; default CUDA when available, else CPU.

    Raises:
        EngineError: bad labelled data, a shuffle without training dataset, a missing
            weight file, or a failure inside DeepLabCut (with the original exception
            chained).
    """
    p = training_params(params)
    config_path = Path(config_path).resolve()
    shuffle, tsi = int(p["shuffle"]), int(p["trainingsetindex"])
    validate_labeled_data(config_path)
    cfg = dlc_io.read_config(config_path)
    frac = _train_fraction(cfg, tsi, config_path)
    pt = read_pytorch_config(config_path, shuffle, tsi)
    folder = pytorch_config_path(config_path, shuffle, tsi).parent
    init = (pt.get("train_settings") or {}).get("weight_init") or {}
    for key in ("snapshot_path", "detector_snapshot_path"):
        if init.get(key) and not Path(init[key]).is_file():
            raise EngineError(
                f"weight_init {key} {init[key]} (in {folder / PYTORCH_CONFIG}) is missing"
            )
    resume = pt.get("resume_training_from")
    if resume and not Path(resume).is_file():
        raise EngineError(f"resume_training_from {resume} does not exist")

    dev = select_device(device or p["device"] or _config_device(pt))
    before = {s.path.name: s.path.stat().st_mtime for s in _list_snapshots(folder)}
    kwargs: dict[str, Any] = {"shuffle": shuffle, "trainingsetindex": tsi, "device": dev}
    for key in ("epochs", "batch_size", "save_epochs"):
        if p[key] is not None:
            kwargs[key] = int(p[key])
    if resume:
        kwargs["snapshot_path"] = str(resume)
    if p["max_snapshots"] is not None:
        kwargs["max_snapshots_to_keep"] = int(p["max_snapshots"])

    deeplabcut = _import_deeplabcut()
    log.info(
        "training DeepLabCut %s shuffle %d of %s on %s (epochs %s)",
        pt.get("net_type"),
        shuffle,
        config_path,
        dev,
        kwargs.get("epochs", (pt.get("train_settings") or {}).get("epochs")),
    )
    t0 = time.perf_counter()
    with _dlc_errors(f"training shuffle {shuffle} of {config_path}", t0=t0), _keep_cwd():
        deeplabcut.train_network(str(config_path), **kwargs)
    wall = time.perf_counter() - t0

    found = _list_snapshots(folder)
    if not found:
        raise EngineError(f"DeepLabCut training of {config_path} wrote no snapshot into {folder}")
    new = [s for s in found if before.get(s.path.name) != s.path.stat().st_mtime]
    best = [s for s in found if s.best]
    last = max(found, key=lambda s: (s.epoch, not s.best))
    stats = _read_learning_stats(folder / LEARNING_STATS)
    log.info(
        "DeepLabCut training done in %.1f s: %d snapshot(s), last %s, best %s",
        wall,
        len(found),
        last.name,
        best[-1].name if best else None,
    )
    pt_after = read_pytorch_config(config_path, shuffle, tsi)
    metadata = pt_after.get("metadata") or {}
    bodyparts = [*(metadata.get("bodyparts") or []), *(metadata.get("unique_bodyparts") or [])]
    return TrainingResult(
        config_path=config_path,
        shuffle=shuffle,
        trainingsetindex=tsi,
        train_fraction=frac,
        model_folder=folder,
        snapshots=found,
        new_snapshots=new,
        best_snapshot=best[-1] if best else None,
        last_snapshot=last,
        learning_stats=stats,
        wall_time=wall,
        device=dev,
        versions=versions(),
        pytorch_config=pt_after,
        bodyparts=bodyparts or dlc_io.config_bodyparts(cfg),
        net_type=str(pt_after.get("net_type")),
        scorer_prefix=scorer_name(config_path, shuffle, tsi),
        individuals=(
            list(metadata.get("individuals") or []) if dlc_io.is_multi_animal(cfg) else []
        ),
    )


@contextlib.contextmanager
def _no_paf_graph_pruning() -> Iterator[None]:
    """Keep ``evaluate_network`` from pruning the PAF graph of the model's config.

    DeepLabCut's evaluation calls ``prune_paf_graph.benchmark_paf_graphs`` for
    ``DLCRNetHead`` models, which rewrites ``edges_to_keep`` in
    ``pytorch_config.yaml`` (and ``paf_best`` in ``test/pose_cfg.yaml``) from the
    test images' mAP: a side effect that makes later inference depend on whether,
    and with which snapshot, the shuffle was evaluated first.
    """
    from deeplabcut.pose_estimation_pytorch.apis import prune_paf_graph

    original = prune_paf_graph.benchmark_paf_graphs

    def keep_graph(*args: Any, **kwargs: Any) -> list[dict]:
        log.debug("PAF graph kept as configured (evaluate(prune_paf_graph=False))")
        return []

    prune_paf_graph.benchmark_paf_graphs = keep_graph
    try:
        yield
    finally:
        prune_paf_graph.benchmark_paf_graphs = original


def _read_learning_stats(path: Path):
    import pandas as pd

    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except Exception as exc:  # an empty or truncated log must not lose the model
        log.warning("cannot read %s: %s", path, exc)
        return None


# ================================================================= evaluate
def evaluate(
    config_path: str | Path,
    shuffle: int = 1,
    trainingsetindex: int = 0,
    snapshot: SnapshotInfo | str | int | Path | None = None,
    device: str | None = None,
    *,
    pcutoff: float | None = None,
    per_keypoint: bool = True,
    prune_paf_graph: bool = False,
) -> EvaluationResult:
    """Evaluate one snapshot on the labelled train and test images.

    Runs ``deeplabcut.evaluate_network`` for exactly that snapshot and reads the
    ``<scorer>-results.csv`` it writes (checked to be newer than the call), plus
    the per-body-part RMSE (``per_keypoint_evaluation=True``).

    Args:
        config_path: Project ``config.yaml``.
        shuffle: Shuffle index.
        trainingsetindex: Index into ``TrainingFraction``.
        snapshot: Which snapshot (see :func:`resolve_snapshot`); default the best.
        device: Torch device; default CUDA when available, else CPU.
        pcutoff: Likelihood cutoff for ``rmse_pcutoff``; default the config's.
        per_keypoint: Also compute per-body-part RMSE.
        prune_paf_graph: Multi-animal models with part-affinity fields only: let
            DeepLabCut choose the PAF edges that give the best test mAP and write
            them into ``pytorch_config.yaml`` (``edges_to_keep``), which changes how
            every later :func:`infer` assembles animals.  DeepLabCut does this on
            the first evaluation of a shuffle; by default it is skipped here, so
            evaluating never changes the model and the metrics are those of the
            graph that :func:`infer` uses.

    Raises:
        EngineError: a missing snapshot or a failure inside DeepLabCut.
    """
    import pandas as pd

    config_path = Path(config_path).resolve()
    snap = resolve_snapshot(config_path, shuffle, trainingsetindex, snapshot)
    dev = select_device(device)
    cfg = dlc_io.read_config(config_path)
    frac = _train_fraction(cfg, trainingsetindex, config_path)
    scorer = scorer_name(config_path, shuffle, trainingsetindex, snap)
    folder = evaluation_folder(config_path, shuffle, trainingsetindex)
    results_csv = folder / f"{scorer}-results.csv"
    keypoint_csv = folder / f"{scorer}-keypoint-results.csv"

    deeplabcut = _import_deeplabcut()
    log.info("evaluating %s (shuffle %d) on %s", snap.path, shuffle, dev)
    start = time.time()
    t0 = time.perf_counter()
    with (
        _dlc_errors(f"evaluating {snap.path}", t0=t0),
        _keep_cwd(),
        contextlib.nullcontext() if prune_paf_graph else _no_paf_graph_pruning(),
    ):
        deeplabcut.evaluate_network(
            str(config_path),
            shuffles=[shuffle],
            trainingsetindex=trainingsetindex,
            snapshots_to_evaluate=[snap.name],
            device=dev,
            per_keypoint_evaluation=per_keypoint,
            pcutoff=pcutoff,
            plotting=False,
            show_errors=True,
        )
    wall = time.perf_counter() - t0
    if not results_csv.is_file() or results_csv.stat().st_mtime < start - 1:
        raise EngineError(
            f"DeepLabCut evaluation of {snap.path} did not write {results_csv}"
            + (" (the file there is older than this evaluation)" if results_csv.is_file() else "")
        )
    table = pd.read_csv(results_csv)
    if "Training epochs" in table.columns and len(table) > 1:
        table = table[table["Training epochs"] == snap.epoch]
    if len(table) != 1:
        raise EngineError(f"{results_csv} holds {len(table)} rows for {snap.name}; expected one")
    row = {str(k): _plain(v) for k, v in table.iloc[0].items()}

    per_bodypart = None
    if per_keypoint and keypoint_csv.is_file() and keypoint_csv.stat().st_mtime >= start - 1:
        kp = pd.read_csv(keypoint_csv, index_col=0)
        rows = {"train_rmse": "Train error (px)", "test_rmse": "Test error (px)"}
        per_bodypart = pd.DataFrame(
            {k: kp.loc[v] if v in kp.index else np.nan for k, v in rows.items()}
        ).astype(float)
        per_bodypart.index.name = "bodypart"
    predictions = folder / f"{scorer}.h5"

    def metric(name: str) -> float:
        value = row.get(name)
        try:
            return float(value)
        except (TypeError, ValueError):
            return float("nan")

    result = EvaluationResult(
        snapshot=snap,
        scorer=scorer,
        results_csv=results_csv,
        predictions_h5=predictions if predictions.is_file() else None,
        keypoint_results_csv=keypoint_csv if per_bodypart is not None else None,
        train_rmse=metric("train rmse"),
        train_rmse_pcutoff=metric("train rmse_pcutoff"),
        train_map=metric("train mAP"),
        train_mar=metric("train mAR"),
        test_rmse=metric("test rmse"),
        test_rmse_pcutoff=metric("test rmse_pcutoff"),
        test_map=metric("test mAP"),
        test_mar=metric("test mAR"),
        pcutoff=row.get("pcutoff"),
        train_fraction=frac,
        shuffle=shuffle,
        per_bodypart=per_bodypart,
        metrics=row,
        device=dev,
        wall_time=wall,
        versions=versions(),
    )
    log.info(
        "evaluated %s in %.1f s: train rmse %.2f, test rmse %.2f, test mAP %.1f",
        snap.name,
        wall,
        result.train_rmse,
        result.test_rmse,
        result.test_map,
    )
    return result


# ==================================================================== infer
def infer(
    config_path: str | Path,
    video_paths: Sequence[str | Path],
    output_dir: str | Path,
    shuffle: int = 1,
    trainingsetindex: int = 0,
    snapshot: SnapshotInfo | str | int | Path | None = None,
    batch_size: int = 8,
    device: str | None = None,
    *,
    save_as_csv: bool = False,
    auto_track: bool = True,
    track_method: str | None = None,
    n_tracks: int | None = None,
    min_tracklet_length: int = 10,
) -> InferenceResult:
    """Run ``deeplabcut.analyze_videos`` with one exact snapshot.

    Videos are probed first.  DeepLabCut runs in a fresh temporary folder inside
    ``output_dir`` (so no stale output is reused and nothing half-written is left);
    its files are then moved into ``output_dir``, replacing earlier outputs of the
    same snapshot.  Outputs of other snapshots in ``output_dir`` are left alone and
    never returned: every returned path carries this snapshot's scorer.

    Multi-animal projects (``multianimalproject: true``) are tracked as DeepLabCut's
    ``auto_track`` does: after ``analyze_videos`` (assemblies in
    ``_full.pickle``/``_assemblies.pickle``), ``convert_detections2tracklets`` builds
    tracklets (``_<el|bx|sk>.pickle``) and ``stitch_tracklets`` joins them into one
    track per individual, written as ``<stem><scorer>_<el|bx|sk>.h5`` (columns
    scorer/individuals/bodyparts/coords, individuals named as in the config).  The
    two steps are run here one by one so that a failure names the step, and with
    the track method passed explicitly so DeepLabCut never rewrites ``config.yaml``.
    ``VideoOutput.h5`` is that tracked file; DeepLabCut ends it at the last tracked
    frame, so it is padded with missing rows to the video's frame count.  With
    ``auto_track=False`` no tracking is done and ``VideoOutput.h5`` is the untracked
    ``<stem><scorer>.h5`` (assemblies per frame; identities are not kept across
    frames).

    Args:
        config_path: Project ``config.yaml``.
        video_paths: Videos to analyse (file names must differ).
        output_dir: Folder for the outputs (created).
        shuffle: Shuffle index.
        trainingsetindex: Index into ``TrainingFraction``.
        snapshot: Which snapshot (see :func:`resolve_snapshot`); default the best.
        batch_size: Inference batch size.
        device: Torch device; default CUDA when available, else CPU.
        save_as_csv: Also write DeepLabCut's ``.csv``.
        auto_track: Multi-animal only: track identities across frames.
        track_method: Multi-animal only: ``ellipse``, ``box`` or ``skeleton``; default
            the config's ``default_track_method``, else ``ellipse`` (``box`` when the
            project has a single multi-animal body part, as DeepLabCut requires).
        n_tracks: Multi-animal only: number of tracks to stitch; default the number of
            individuals in the config.
        min_tracklet_length: Multi-animal only: tracklets shorter than this (frames)
            are only attached to tracks afterwards (``stitch_tracklets(min_length=)``;
            at least 3).

    Raises:
        EngineError: a video that cannot be opened, a missing snapshot, bad tracking
            options, a failure inside DeepLabCut, or (multi-animal) tracking that
            produced no tracks.
    """
    from element_pose.io.video import VideoError, probe_video

    config_path = Path(config_path).resolve()
    videos = [Path(v).resolve() for v in video_paths]
    if not videos:
        raise EngineError("no videos given to analyse")
    stems = [v.stem for v in videos]
    if len(set(stems)) != len(stems):
        raise EngineError(f"videos to analyse together must have distinct names: {stems}")
    try:
        cfg = dlc_io.read_config(config_path)
    except dlc_io.DLCFormatError as exc:
        raise EngineError(str(exc)) from exc
    tracking = _tracking_options(
        cfg, config_path, auto_track, track_method, n_tracks, min_tracklet_length
    )
    infos = []
    for video in videos:
        try:
            infos.append(probe_video(video))
        except VideoError as exc:
            raise EngineError(f"cannot analyse {video}: {exc}") from exc
    snap = resolve_snapshot(config_path, shuffle, trainingsetindex, snapshot)
    index = _dlc_snapshot_index(snapshots(config_path, shuffle, trainingsetindex), snap)
    pt = read_pytorch_config(config_path, shuffle, trainingsetindex)
    metadata = pt.get("metadata") or {}
    bodyparts = [*(metadata.get("bodyparts") or []), *(metadata.get("unique_bodyparts") or [])]
    expected_scorer = scorer_name(config_path, shuffle, trainingsetindex, snap)
    dev = select_device(device)
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)

    deeplabcut = _import_deeplabcut()
    log.info(
        "analysing %d video(s) with %s on %s (batch %d) into %s",
        len(videos),
        snap.path,
        dev,
        batch_size,
        output_dir,
    )
    multi_kwargs: dict[str, Any] = {}
    if tracking is not None:
        # Tracking is run below, step by step; without it, keep the untracked table.
        multi_kwargs = {"auto_track": False, "save_as_df": not tracking["auto_track"]}
    with tempfile.TemporaryDirectory(prefix=".infer-", dir=output_dir) as tmp:
        tmp_dir = Path(tmp)
        t0 = time.perf_counter()
        what = f"analysing {[v.name for v in videos]} with {snap.path}"
        with _dlc_errors(what, t0=t0), _keep_cwd():
            scorer = deeplabcut.analyze_videos(
                str(config_path),
                [str(v) for v in videos],
                shuffle=shuffle,
                trainingsetindex=trainingsetindex,
                snapshot_index=index,
                device=dev,
                destfolder=str(tmp_dir),
                batch_size=int(batch_size),
                save_as_csv=save_as_csv,
                overwrite=True,
                **multi_kwargs,
            )
        run_time = time.perf_counter() - t0
        scorer = str(scorer)
        if f"snapshot_{snap.uid}" not in scorer:
            raise EngineError(
                f"DeepLabCut analysed with scorer {scorer}, not the requested snapshot "
                f"{snap.name} (expected {expected_scorer})"
            )
        tracking_time = 0.0
        if tracking is not None and tracking["auto_track"]:
            t1 = time.perf_counter()
            for video, info in zip(videos, infos, strict=True):
                _track_video(
                    config_path,
                    video,
                    info.n_frames,
                    tmp_dir,
                    scorer,
                    shuffle=shuffle,
                    trainingsetindex=trainingsetindex,
                    snapshot_index=index,
                    save_as_csv=save_as_csv,
                    **{k: v for k, v in tracking.items() if k != "auto_track"},
                )
            tracking_time = time.perf_counter() - t1
        outputs = []
        for video, info in zip(videos, infos, strict=True):
            prefix = video.stem + scorer
            written = sorted(p for p in tmp_dir.iterdir() if p.name.startswith(prefix))
            if tracking is not None and tracking["auto_track"]:
                candidates = [f"{prefix}_{tracking['suffix']}.h5"]
            else:
                candidates = [f"{prefix}.h5"]
            h5_name = next((n for n in candidates if (tmp_dir / n).is_file()), None)
            if h5_name is None:
                raise EngineError(
                    f"DeepLabCut wrote no pose output {candidates[0]} for {video} "
                    f"(found {[p.name for p in written]})"
                )
            moved = []
            for src in written:
                dst = output_dir / src.name
                os.replace(src, dst)
                moved.append(dst)
            meta = output_dir / f"{prefix}_meta.pickle"
            full = output_dir / f"{prefix}_full.pickle"
            run_duration = None
            if meta.is_file():
                with contextlib.suppress(dlc_io.DLCFormatError):
                    run_duration = _plain(dlc_io.read_dlc_meta(meta).get("run_duration"))
            outputs.append(
                VideoOutput(
                    video=video,
                    h5=output_dir / h5_name,
                    meta=meta if meta.is_file() else None,
                    full_pickle=full if full.is_file() else None,
                    files=moved,
                    n_frames=info.n_frames,
                    fps=info.fps,
                    width=info.width,
                    height=info.height,
                    run_duration=run_duration,
                )
            )
    n_frames = sum(o.n_frames for o in outputs)
    result = InferenceResult(
        outputs=outputs,
        scorer=scorer,
        snapshot=snap,
        output_dir=output_dir,
        bodyparts=bodyparts,
        run_time=run_time,
        frames_per_second=n_frames / run_time if run_time > 0 else float("nan"),
        n_frames=n_frames,
        device=dev,
        batch_size=int(batch_size),
        versions=versions(),
        individuals=list(metadata.get("individuals") or []) if tracking is not None else [],
        track_method=(
            tracking["track_method"] if tracking is not None and tracking["auto_track"] else None
        ),
        tracking_time=tracking_time,
    )
    log.info(
        "analysed %d frame(s) in %.1f s (%.1f fps) with scorer %s%s",
        n_frames,
        run_time,
        result.frames_per_second,
        scorer,
        f"; tracked ({result.track_method}) in {tracking_time:.1f} s"
        if result.track_method
        else "",
    )
    return result


#: DeepLabCut's multi-animal trackers and the suffix of their output files.
TRACK_METHODS = {"ellipse": "el", "box": "bx", "skeleton": "sk"}


def _track_method(cfg: Mapping[str, Any], track_method: str | None) -> str:
    """The tracker for a multi-animal project: given, else the config's, else ``ellipse``.

    DeepLabCut itself switches to ``box`` when there is one multi-animal body part
    (and then rewrites ``config.yaml``); choosing it here avoids that rewrite.
    """
    method = track_method or cfg.get("default_track_method") or "ellipse"
    if len(cfg.get("multianimalbodyparts") or []) == 1:
        if track_method and track_method != "box":
            log.warning("one multi-animal body part: DeepLabCut tracks it with 'box'")
        method = "box"
    if method not in TRACK_METHODS:
        raise EngineError(
            f"track_method {method!r} is not one of DeepLabCut's trackers {sorted(TRACK_METHODS)}"
            + ("" if track_method else " (default_track_method in config.yaml)")
        )
    return str(method)


def _tracking_options(
    cfg: Mapping[str, Any],
    config_path: Path,
    auto_track: bool,
    track_method: str | None,
    n_tracks: int | None,
    min_tracklet_length: int,
) -> dict[str, Any] | None:
    """Validated tracking options for a multi-animal project; ``None`` for single-animal."""
    if not dlc_io.is_multi_animal(cfg):
        return None
    individuals = _check_multi_animal_config(cfg, config_path)
    animals = [i for i in individuals if i != dlc_io.UNIQUE_INDIVIDUAL]
    method = _track_method(cfg, track_method)
    tracks = len(animals) if n_tracks is None else int(n_tracks)
    if tracks < 1:
        raise EngineError(f"n_tracks must be at least 1, got {n_tracks}")
    if int(min_tracklet_length) < 3:
        raise EngineError(
            f"min_tracklet_length must be at least 3 (DeepLabCut), got {min_tracklet_length}"
        )
    return {
        "auto_track": bool(auto_track),
        "track_method": method,
        "suffix": TRACK_METHODS[method],
        "n_tracks": tracks,
        "min_tracklet_length": int(min_tracklet_length),
    }


def _track_video(
    config_path: Path,
    video: Path,
    n_frames: int,
    folder: Path,
    scorer: str,
    *,
    shuffle: int,
    trainingsetindex: int,
    snapshot_index: int,
    save_as_csv: bool,
    track_method: str,
    suffix: str,
    n_tracks: int,
    min_tracklet_length: int,
) -> Path:
    """Track one analysed multi-animal video in ``folder``; return the tracked ``.h5``.

    Runs what ``analyze_videos(auto_track=True)`` runs, step by step, with the
    PyTorch functions it calls (``deeplabcut.convert_detections2tracklets`` would
    drop ``snapshot_index`` and look for the outputs of the config's snapshot).

    Raises:
        EngineError: naming the step that failed, or saying that no track came out.
    """
    from deeplabcut.pose_estimation_pytorch.apis.tracklets import (
        convert_detections2tracklets,
    )
    from deeplabcut.refine_training_dataset.stitch import stitch_tracklets

    prefix = video.stem + scorer
    tracklets = folder / f"{prefix}_{suffix}.pickle"
    tracked = folder / f"{prefix}_{suffix}.h5"
    common = {
        "shuffle": shuffle,
        "trainingsetindex": trainingsetindex,
        "destfolder": str(folder),
        "track_method": track_method,
        "snapshot_index": snapshot_index,
    }
    log.info("tracking %s (%s tracker, %d tracks)", video.name, track_method, n_tracks)
    t0 = time.perf_counter()
    what = f"building {track_method} tracklets for {video.name}"
    with _dlc_errors(what, t0=t0), _keep_cwd(), _kalman_filter_fix():
        convert_detections2tracklets(str(config_path), str(video), overwrite=True, **common)
    if not tracklets.is_file():
        raise EngineError(f"DeepLabCut wrote no tracklets {tracklets.name} for {video}")
    try:
        with _keep_cwd():
            stitch_tracklets(
                str(config_path),
                [str(video)],
                n_tracks=n_tracks,
                min_length=min_tracklet_length,
                save_as_csv=save_as_csv,
                **common,
            )
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        hint = ""
        if "Tracklets are empty" in str(exc):
            hint = (
                f" (no animal was tracked for {min_tracklet_length} or more frames in a row: "
                "(an undertrained model, a video shorter than min_tracklet_length, or "
                "a pcutoff in the shuffle's test/inference_cfg.yaml that is too high); "
                "infer with auto_track=False to get the untracked detections)"
            )
        raise EngineError(
            f"DeepLabCut failed stitching the tracklets of {video.name} into {n_tracks} "
            f"track(s) after {time.perf_counter() - t0:.1f} s: {type(exc).__name__}: {exc}"
            f"{hint}"
        ) from exc
    if not tracked.is_file():
        raise EngineError(
            f"DeepLabCut stitched no tracks for {video} (no {tracked.name}; "
            f"found {sorted(p.name for p in folder.iterdir() if p.name.startswith(prefix))})"
        )
    _pad_tracks(tracked, n_frames)
    return tracked


@contextlib.contextmanager
def _kalman_filter_fix() -> Iterator[None]:
    """Give DeepLabCut's Kalman trackers a correct measurement matrix, if filterpy does not.

    DeepLabCut's ``ellipse`` and ``skeleton`` trackers build their filters with
    ``filterpy.common.kinematic_kf(dim, 1, dim_z=..., order_by_dim=False)`` and rely on
    filterpy 1.x, which measures the ``dim`` positions (``H`` = identity on them).
    filterpy 2.0.0 fills each row of ``H`` with ones instead, so every update mixes
    all coordinates, the tracks diverge after one frame and no tracklet is longer
    than a frame or two ("Tracklets are empty").  When the installed filterpy
    behaves so, DeepLabCut's reference is replaced by a 1.x-compatible builder for
    the duration of the block (pinning ``filterpy<2`` makes this a no-op).
    """
    from deeplabcut.core import trackingutils

    original = trackingutils.kinematic_kf
    probe = original(2, 1, dim_z=2, order_by_dim=False)
    if np.array_equal(probe.H, np.eye(2, 4)):
        yield
        return

    def kinematic_kf(dim, order, dt=1.0, dim_z=1, order_by_dim=True, kf=None):
        # filterpy 1.4.5: one measurement per dimension, of that dimension's position.
        out = original(dim, order, dt=dt, dim_z=dim, order_by_dim=order_by_dim)
        out.H[:] = 0.0
        for i in range(dim):
            out.H[i, i * (order + 1) if order_by_dim else i] = 1.0
        return out

    log.warning(
        "the installed filterpy builds a wrong Kalman measurement matrix "
        "(kinematic_kf, filterpy 2.x); using a filterpy 1.x-compatible one for "
        "DeepLabCut's tracker (pin filterpy<2 to avoid this)"
    )
    trackingutils.kinematic_kf = kinematic_kf
    try:
        yield
    finally:
        trackingutils.kinematic_kf = original


def _pad_tracks(h5: Path, n_frames: int) -> None:
    """Give a stitched ``.h5`` one row per video frame (DeepLabCut ends it at the last track).

    Raises:
        EngineError: if the file holds frames beyond the video's end.
    """
    import pandas as pd

    df = pd.read_hdf(h5)
    if len(df) and int(df.index.max()) >= n_frames:
        raise EngineError(
            f"{h5} holds frame {int(df.index.max())}, but the video has {n_frames} frames"
        )
    if len(df) == n_frames and list(df.index) == list(range(n_frames)):
        return
    log.info("padding %s from %d to %d frames (untracked: missing)", h5, len(df), n_frames)
    df = df.reindex(range(n_frames))
    tmp = h5.with_name(h5.name + ".tmp")
    df.to_hdf(tmp, key="tracks", format="table", mode="w")
    tmp.replace(h5)


# ============================================================== label video
def label_video(
    config_path: str | Path,
    video: str | Path,
    output_dir: str | Path,
    shuffle: int = 1,
    trainingsetindex: int = 0,
    snapshot: SnapshotInfo | str | int | Path | None = None,
    pcutoff: float | None = None,
    dotsize: int | None = None,
    colormap: str | None = None,
    draw_skeleton: bool = False,
    trailpoints: int = 0,
    keypoints_only: bool = False,
    output_fps: float | None = None,
    filtered: bool = False,
    *,
    analysis_dir: str | Path | None = None,
    track_method: str | None = None,
) -> Path:
    """Draw a snapshot's predictions on a video with ``deeplabcut.create_labeled_video``.

    The video must have been analysed with the same snapshot (:func:`infer`); its
    outputs are looked up in ``analysis_dir`` (default ``output_dir``).
    DeepLabCut renders in a temporary folder; the finished ``.mp4`` is moved into
    ``output_dir``.

    Args:
        config_path: Project ``config.yaml``.
        video: The analysed video.
        output_dir: Folder for the labelled video.
        shuffle: Shuffle index.
        trainingsetindex: Index into ``TrainingFraction``.
        snapshot: Which snapshot (see :func:`resolve_snapshot`); default the best.
        pcutoff: Hide points below this likelihood; default the config's.
        dotsize: Marker radius; default the config's ``dotsize``.
        colormap: Matplotlib colormap name; default the config's.
        draw_skeleton: Draw the config's skeleton.
        trailpoints: Number of previous positions to draw as a trail.
        keypoints_only: Draw the points on a blank background.
        output_fps: Frame rate of the labelled video; default the source's, exactly
            (a 30.0003 fps source gives a 30.0003 fps video).
        filtered: Use the ``_filtered.h5`` output.
        analysis_dir: Folder holding the ``.h5``/``_meta.pickle`` of ``video``.
        track_method: Multi-animal only: the tracker whose tracks to draw (the
            ``_<el|bx|sk>.h5`` written by :func:`infer`); default as in :func:`infer`.

    Returns:
        The labelled ``.mp4``.

    Raises:
        EngineError: a video that cannot be opened, missing analysis outputs, a
            missing snapshot, or a failure inside DeepLabCut.
    """
    from element_pose.io.video import VideoError, probe_video, set_frame_rate

    config_path = Path(config_path).resolve()
    video = Path(video).resolve()
    try:
        source_info = probe_video(video)
    except VideoError as exc:
        raise EngineError(f"cannot label {video}: {exc}") from exc
    snap = resolve_snapshot(config_path, shuffle, trainingsetindex, snapshot)
    index = _dlc_snapshot_index(snapshots(config_path, shuffle, trainingsetindex), snap)
    scorer = scorer_name(config_path, shuffle, trainingsetindex, snap)
    cfg = dlc_io.read_config(config_path)
    output_dir = Path(output_dir).resolve()
    source_dir = Path(analysis_dir).resolve() if analysis_dir is not None else output_dir
    prefix = video.stem + scorer
    method = _track_method(cfg, track_method) if dlc_io.is_multi_animal(cfg) else ""
    stem = f"{prefix}_{TRACK_METHODS[method]}" if method else prefix
    needed = [f"{stem}_filtered.h5" if filtered else f"{stem}.h5", f"{prefix}_meta.pickle"]
    optional = [f"{prefix}_full.pickle"]
    missing = [n for n in needed if not (source_dir / n).is_file()]
    if missing:
        raise EngineError(
            f"cannot label {video.name}: {missing} not found in {source_dir}; run infer with "
            f"snapshot {snap.name} first"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    deeplabcut = _import_deeplabcut()
    with tempfile.TemporaryDirectory(prefix=".label-", dir=output_dir) as tmp:
        tmp_dir = Path(tmp)
        for name in needed + [n for n in optional if (source_dir / n).is_file()]:
            _link_or_copy(source_dir / name, tmp_dir / name)
        kwargs: dict[str, Any] = {
            "shuffle": shuffle,
            "trainingsetindex": trainingsetindex,
            "filtered": filtered,
            "keypoints_only": keypoints_only,
            "draw_skeleton": draw_skeleton,
            "trailpoints": int(trailpoints),
            "destfolder": str(tmp_dir),
            "overwrite": True,
            "snapshot_index": index,
            "pcutoff": pcutoff,
            "dotsize": int(dotsize if dotsize is not None else cfg.get("dotsize", 8)),
            "colormap": colormap or cfg.get("colormap", "rainbow"),
            "max_workers": 1,
        }
        if method:
            kwargs["track_method"] = method
        if output_fps is not None:
            kwargs["outputframerate"] = output_fps
        log.info("labelling %s with %s", video, snap.name)
        t0 = time.perf_counter()
        with _dlc_errors(f"labelling {video} with {snap.path}", t0=t0), _keep_cwd():
            deeplabcut.create_labeled_video(str(config_path), [str(video)], **kwargs)
        made = sorted(tmp_dir.glob(f"{prefix}*labeled.mp4"))
        if not made or made[0].stat().st_size == 0:
            raise EngineError(
                f"DeepLabCut wrote no labelled video for {video} into {tmp_dir} "
                f"(found {sorted(p.name for p in tmp_dir.iterdir())})"
            )
        # OpenCV's writer rounds the rate (30.0003 -> 30): re-time to the exact one
        fps = float(output_fps) if output_fps is not None else source_info.fps
        try:
            if abs(probe_video(made[0]).fps - fps) > 1e-9 * fps:
                set_frame_rate(made[0], fps)
        except VideoError as exc:
            raise EngineError(f"cannot set the frame rate of {made[0]}: {exc}") from exc
        target = output_dir / made[0].name
        os.replace(made[0], target)
    log.info("labelled video %s written in %.1f s", target, time.perf_counter() - t0)
    return target


# ================================================================= helpers
_DLC_MODULE = None


def _import_deeplabcut():
    """Import deeplabcut once (about 9 s), with hub downloads kept quiet."""
    global _DLC_MODULE
    if _DLC_MODULE is None:
        t0 = time.perf_counter()
        try:
            import deeplabcut
        except ImportError as exc:
            raise EngineError(
                "DeepLabCut is not installed: pip install 'element-pose[dlc]' "
                f"(deeplabcut==3.0.2): {exc}"
            ) from exc
        _DLC_MODULE = deeplabcut
        took = time.perf_counter() - t0
        log.debug("imported deeplabcut %s in %.1f s", deeplabcut.__version__, took)
    return _DLC_MODULE


@contextlib.contextmanager
def _dlc_errors(what: str, t0: float | None = None) -> Iterator[None]:
    """Re-raise exceptions from DeepLabCut as :class:`EngineError` with context."""
    try:
        yield
    except EngineError:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # DLC raises anything, including SystemExit
        took = f" after {time.perf_counter() - t0:.1f} s" if t0 is not None else ""
        raise EngineError(f"DeepLabCut failed {what}{took}: {type(exc).__name__}: {exc}") from exc


#: Set while DeepLabCut runs: processes forked then get default signal handlers.
_IN_DEEPLABCUT = False


def _default_signals_in_child() -> None:
    """After a fork inside DeepLabCut: drop the parent's handlers (e.g. DataJoint's
    SIGTERM handler in ``populate``, which would log "Populate terminated by SIGTERM"
    when DeepLabCut ends its worker processes)."""
    if _IN_DEEPLABCUT:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_default_signals_in_child)

_console_log = logging.getLogger(__name__ + ".console")
_PROGRESS_RE = re.compile(r"(\d+)/(\d+) \[")


class _ConsoleToLog(io.TextIOBase):
    """A text stream that sends DeepLabCut's console output to logging.

    Every line goes to DEBUG; tqdm progress bars (``12/300 [``) are logged at INFO
    each time another quarter is done.
    """

    def __init__(self) -> None:
        super().__init__()
        self._buffer = ""
        self._reported: dict[int, int] = {}

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = re.split(r"[\r\n]", self._buffer)
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            self._line(self._buffer)
            self._buffer = ""

    def _line(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        match = _PROGRESS_RE.search(line)
        if match:
            done, total = int(match.group(1)), int(match.group(2))
            quarter = 4 * done // total if total else 0
            if total and quarter > self._reported.get(total, 0):
                self._reported[total] = quarter
                _console_log.info("DeepLabCut progress: %d/%d (%d%%)", done, total,
                                  100 * done // total)
                return
        _console_log.debug("%s", line)


@contextlib.contextmanager
def _keep_cwd() -> Iterator[None]:
    """Restore what DeepLabCut changes globally: working directory and root logging.

    ``create_labeled_video`` changes the working directory, and ``train_network``
    reconfigures the root logger (``logging.basicConfig(force=True)``, then removes
    every root handler when done), which would silence the host application's
    logging and pytest's log capture.  DeepLabCut's console output (config dumps,
    progress bars) goes to the logger ``element_pose.engines.deeplabcut.console``
    (DEBUG; progress at INFO), and processes it forks get default signal handlers.
    """
    global _IN_DEEPLABCUT
    cwd = os.getcwd()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    console = _ConsoleToLog()
    was_inside, _IN_DEEPLABCUT = _IN_DEEPLABCUT, True
    try:
        with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
            yield
    finally:
        _IN_DEEPLABCUT = was_inside
        console.flush()
        os.chdir(cwd)
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                with contextlib.suppress(Exception):
                    handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    with open(path) as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise EngineError(f"{path} is not a YAML mapping")
    return data


def _write_yaml(data: Mapping[str, Any], path: Path) -> None:
    import yaml

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        yaml.safe_dump(_plain(data), f, sort_keys=False)
    tmp.replace(path)


def _set_nested(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def _config_device(pt: Mapping[str, Any]) -> str | None:
    device = pt.get("device")
    return None if device in (None, "auto") else str(device)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _round_up(value: int, multiple: int) -> int:
    return int(-(-int(value) // multiple) * multiple)


def _plain(value: Any) -> Any:
    """Numpy scalars/arrays and paths -> plain Python (YAML- and DataJoint-friendly)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


__all__ = [
    "ENGINE_NAME",
    "TRAINING_DEFAULTS",
    "EngineError",
    "EvaluationResult",
    "InferenceResult",
    "LabeledDataSummary",
    "SnapshotInfo",
    "TrainingResult",
    "VideoOutput",
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
