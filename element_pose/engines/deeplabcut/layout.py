"""A DeepLabCut 3 project's layout: model folders, pytorch_config, snapshots, scorers.

The folder, snapshot and scorer functions read the project's ``config.yaml`` from
``config_path`` unless given it, already read, as ``cfg=``
(:func:`element_pose.io.dlc.read_config`): a caller that makes several calls for one
project parses the file once and passes the dict along.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.engines.deeplabcut.base import (
    _SNAPSHOT_RE,
    EVALUATION_FOLDER,
    MODELS_FOLDER,
    PYTORCH_CONFIG,
    EngineError,
    SnapshotInfo,
)
from element_pose.engines.deeplabcut.runtime import (
    _read_yaml,
)
from element_pose.io import dlc as dlc_io

__all__ = [
    "TRACK_METHODS",
    "check_video_sets",
    "evaluation_folder",
    "model_folder",
    "pytorch_config_path",
    "read_pytorch_config",
    "registered_snapshot",
    "resolve_snapshot",
    "scorer_name",
    "snapshot_uid",
    "snapshots",
]

log = logging.getLogger(__name__)


# ====================================================== project layout helpers
def _project_root(config_path: str | Path) -> Path:
    return Path(config_path).resolve().parent


def _config(config_path: str | Path, cfg: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``cfg`` when given (already read), else the validated ``config.yaml`` at ``config_path``."""
    return cfg if cfg is not None else dlc_io.read_config(config_path)


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


def model_folder(config_path: str | Path, shuffle: int = 1, trainingsetindex: int = 0, *,
                 cfg: Mapping[str, Any] | None = None) -> Path:
    """The shuffle's ``train`` folder (snapshots, ``pytorch_config.yaml``, logs).

    ``cfg``: the project's config, already read (else read from ``config_path``).
    """
    config_path = Path(config_path)
    cfg = _config(config_path, cfg)
    frac = _train_fraction(cfg, trainingsetindex, config_path)
    return (
        _project_root(config_path)
        / MODELS_FOLDER
        / f"iteration-{cfg.get('iteration', 0)}"
        / _shuffle_name(cfg, frac, shuffle)
        / "train"
    )


def evaluation_folder(config_path: str | Path, shuffle: int = 1, trainingsetindex: int = 0, *,
                      cfg: Mapping[str, Any] | None = None) -> Path:
    """The shuffle's folder under ``evaluation-results-pytorch``.

    ``cfg``: the project's config, already read (else read from ``config_path``).
    """
    config_path = Path(config_path)
    cfg = _config(config_path, cfg)
    frac = _train_fraction(cfg, trainingsetindex, config_path)
    prefix = cfg.get("eval_prefix") or EVALUATION_FOLDER
    return (
        _project_root(config_path)
        / prefix
        / f"iteration-{cfg.get('iteration', 0)}"
        / _shuffle_name(cfg, frac, shuffle)
    )


def pytorch_config_path(
    config_path: str | Path, shuffle: int = 1, trainingsetindex: int = 0, *,
    cfg: Mapping[str, Any] | None = None,
) -> Path:
    """The shuffle's ``pytorch_config.yaml`` (``cfg``: the config, already read)."""
    return model_folder(config_path, shuffle, trainingsetindex, cfg=cfg) / PYTORCH_CONFIG


def read_pytorch_config(
    config_path: str | Path, shuffle: int = 1, trainingsetindex: int = 0, *,
    cfg: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Read the shuffle's ``pytorch_config.yaml`` (``cfg``: the config, already read).

    Raises:
        EngineError: if the shuffle has no training dataset yet.
    """
    path = pytorch_config_path(config_path, shuffle, trainingsetindex, cfg=cfg)
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
    *,
    cfg: Mapping[str, Any] | None = None,
) -> str:
    """The scorer DeepLabCut gives outputs of a snapshot (pose models without detector).

    Without ``snapshot`` the prefix ``DLC_<NetType>_<Task><date>shuffle<k>`` is returned.
    ``cfg``: the project's config, already read (else read from ``config_path``).
    """
    cfg = _config(config_path, cfg)
    net_type = read_pytorch_config(config_path, shuffle, trainingsetindex, cfg=cfg)["net_type"]
    name = "".join(p.capitalize() for p in str(net_type).split("_"))
    prefix = f"DLC_{name}_{cfg['Task']}{cfg['date']}shuffle{shuffle}"
    return prefix if snapshot is None else f"{prefix}_snapshot_{snapshot.uid}"


# ================================================================ snapshots
def snapshots(
    config_path: str | Path, shuffle: int = 1, trainingsetindex: int = 0, *,
    cfg: Mapping[str, Any] | None = None,
) -> list[SnapshotInfo]:
    """The pose snapshots of a shuffle, sorted by epoch (a best one after a regular one).

    Returns an empty list when nothing was trained yet.  ``cfg``: the project's
    config, already read (else read from ``config_path``).
    """
    folder = model_folder(config_path, shuffle, trainingsetindex, cfg=cfg)
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
    *,
    cfg: Mapping[str, Any] | None = None,
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
        cfg: The project's config, already read (else read from ``config_path``).

    Raises:
        EngineError: naming the folder or path when the snapshot does not exist.
    """
    folder = model_folder(config_path, shuffle, trainingsetindex, cfg=cfg)
    if isinstance(snapshot, SnapshotInfo | Path) or (
        isinstance(snapshot, str) and ("/" in snapshot or os.sep in snapshot)
    ):
        return _snapshot_at(snapshot, folder, shuffle)
    available = _list_snapshots(folder)
    if not available:
        raise EngineError(f"no snapshots in {folder}: the shuffle has not been trained")
    if snapshot is None or snapshot == "best":
        return _best_snapshot(available, folder)
    if snapshot == "last":
        return max(available, key=lambda s: (s.epoch, not s.best))
    names = [s.path.name for s in available]
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


def _snapshot_at(snapshot: SnapshotInfo | str | Path, folder: Path, shuffle: int
                 ) -> SnapshotInfo:
    """A snapshot given by its file, which must lie in the shuffle's model folder."""
    path = snapshot.path if isinstance(snapshot, SnapshotInfo) else Path(snapshot)
    if not path.is_file():
        raise EngineError(f"snapshot {path} does not exist")
    info = SnapshotInfo.from_path(path)
    if path.resolve().parent != folder.resolve():
        raise EngineError(
            f"snapshot {path} is not in the model folder {folder} of shuffle {shuffle}"
        )
    return info


def _best_snapshot(available: list[SnapshotInfo], folder: Path) -> SnapshotInfo:
    """The best snapshot; before DeepLabCut marks one (every ``eval_interval`` epochs)
    it picks the last one, and so do we."""
    best = [s for s in available if s.best]
    if best:
        return best[-1]
    last = max(available, key=lambda s: s.epoch)
    log.info("no best snapshot in %s; using the last one, %s", folder, last.name)
    return last


def registered_snapshot(
    config_path: str | Path,
    shuffle: int = 1,
    trainingsetindex: int = 0,
    snapshot: SnapshotInfo | str | int | Path | None = "best",
    *,
    cfg: Mapping[str, Any] | None = None,
) -> tuple[str, str] | None:
    """The concrete snapshot (file stem) and its output scorer, as a Model stores them.

    ``"best"``/``"last"``/an epoch are resolved once, here, so that a model keeps
    meaning the same file when training continues or outputs of other snapshots
    appear beside it.  ``config.yaml`` is read once (or not at all when given as
    ``cfg``).

    Returns:
        ``(snapshot name, scorer)``, or ``None`` when the shuffle has no snapshot
        (a project whose outputs are only loaded).

    Raises:
        EngineError: the shuffle has snapshots but not the one asked for (the message
            lists those found).
    """
    cfg = _config(config_path, cfg)
    if not snapshots(config_path, shuffle, trainingsetindex, cfg=cfg):
        return None
    snap = resolve_snapshot(config_path, shuffle, trainingsetindex, snapshot, cfg=cfg)
    try:
        scorer = scorer_name(config_path, shuffle, trainingsetindex, snap, cfg=cfg)
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
