"""Trained sleap-nn models on disk: model folders, model sets, skeletons and snapshots.

sleap-nn writes one *model folder* per trained network (``<ckpt_dir>/<run_name>/``
holding ``training_config.yaml``, ``best.ckpt``, ``training_log.csv``); SLEAP 1.x wrote
``training_config.json`` and ``best_model.h5``.  A top-down model is two networks (a
centroid and a centered-instance folder), so element-pose names a model by a *model
set*: a folder holding one model folder (single-instance, bottom-up) or the top-down
pair, plus, when element-pose trained it, the manifest :data:`MANIFEST` (model type,
its run folders in inference order, the labelled frames it was trained and held out
on).  A model folder itself is also a model set of one.

Layout written by :func:`element_pose.engines.sleap.run.train`::

    <model set>/element_pose_sleap.json      manifest
    <model set>/labels.json                  the labelled frames and their split
    <model set>/train.slp, test.slp          the frames, images embedded
    <model set>/<run>/training_config.yaml   one per network (centroid, centered_instance...)
    <model set>/<run>/best.ckpt

No sleap-nn import here (sleap-io only, lazily).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from element_pose.engines.base import EngineError

__all__ = [
    "CONFIG_NAMES",
    "EPOCHS",
    "MANIFEST",
    "SNAPSHOTS",
    "config_skeleton",
    "learning_stats",
    "model_runs",
    "read_manifest",
    "read_training_log",
    "run_model_type",
    "snapshot_epoch",
    "snapshot_names",
]

#: The manifest element-pose writes in a model set it trained.
MANIFEST = "element_pose_sleap.json"
#: Per-epoch losses element-pose recorded while a network trained (in its folder).
EPOCHS = "element_pose_epochs.json"
#: A model folder's configuration, newest form first.
CONFIG_NAMES = ("training_config.yaml", "training_config.json")
#: Snapshot name -> checkpoint file of a model folder (sleap-nn, then SLEAP 1.x).
SNAPSHOTS = {"best": ("best.ckpt", "best_model.h5"), "last": ("last.ckpt",)}
#: Heads of sleap-nn's configuration -> the model type they make, in inference order.
_HEAD_ORDER = ("centroid", "centered_instance", "single_instance", "bottomup",
               "multi_class_bottomup", "multi_class_topdown")


def _config_file(folder: Path) -> Path | None:
    return next((folder / n for n in CONFIG_NAMES if (folder / n).is_file()), None)


def read_config(folder: Path) -> dict[str, Any]:
    """A model folder's training configuration as a dict.

    Raises:
        EngineError: naming the folder when it holds no readable configuration.
    """
    import yaml

    path = _config_file(folder)
    if path is None:
        raise EngineError(f"{folder} is no SLEAP model folder (no {' or '.join(CONFIG_NAMES)})")
    try:
        text = path.read_text()
        # libyaml's loader when PyYAML has it: ~10x faster than the pure-Python one
        # (~13 ms -> ~1 ms for sleap-nn's configuration; read several times per populate)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=loader)
    except Exception as exc:  # yaml and json raise many types
        raise EngineError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(data, dict):
        raise EngineError(f"{path} is not a SLEAP training configuration")
    return data


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a model set element-pose trained, or ``None``."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise EngineError(f"cannot read {path}: {exc}") from exc


def run_model_type(config: dict[str, Any]) -> str:
    """The head of a model folder's configuration (``single_instance``, ``centroid``...)."""
    heads = (config.get("model_config") or {}).get("head_configs") or {}
    for head in _HEAD_ORDER:
        if heads.get(head):
            return head
    legacy = ((config.get("model") or {}).get("heads") or {})  # SLEAP 1.x json
    for head in _HEAD_ORDER:
        if legacy.get(head):
            return head
    return "unknown"


def model_runs(folder: str | Path) -> list[Path]:
    """The model folders of a model set, in inference order (centroid first).

    Raises:
        EngineError: naming the folder when it holds no model folder.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is not None:
        runs = [folder / r for r in manifest.get("runs", [])]
        missing = [str(r) for r in runs if _config_file(r) is None]
        if missing or not runs:
            raise EngineError(f"the SLEAP model set {folder} lacks its model folders {missing}")
        return runs
    if _config_file(folder) is not None:
        return [folder]
    runs = sorted((p for p in folder.iterdir() if p.is_dir() and _config_file(p) is not None),
                  key=lambda p: (_rank(read_config(p)), p.name)) if folder.is_dir() else []
    if not runs:
        raise EngineError(f"no SLEAP model folder in {folder}: no "
                          f"{' or '.join(str(folder / n) for n in CONFIG_NAMES)}, and no "
                          "folder in it holding one")
    return runs


def _rank(config: dict[str, Any]) -> int:
    kind = run_model_type(config)
    return _HEAD_ORDER.index(kind) if kind in _HEAD_ORDER else len(_HEAD_ORDER)


def set_model_type(runs: list[Path]) -> str:
    """The model type of a model set: ``topdown`` for the pair, else its one head."""
    kinds = [run_model_type(read_config(r)) for r in runs]
    if set(kinds) == {"centroid", "centered_instance"}:
        return "topdown"
    if len(kinds) != 1:
        raise EngineError(f"SLEAP model folders {[str(r) for r in runs]} ({kinds}) are not "
                          "one model: a set holds one model folder or a centroid and a "
                          "centered-instance pair")
    return kinds[0]


def config_skeleton(config: dict[str, Any], where: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """``(node names, edges)`` of a model folder's configuration.

    Raises:
        EngineError: the configuration names no skeleton (named).
    """
    skeletons = (config.get("data_config") or {}).get("skeletons")
    if not skeletons:
        skeletons = (config.get("data") or {}).get("labels", {}).get("skeletons")  # SLEAP 1.x
        if skeletons:
            return _legacy_skeleton(config, where)
        raise EngineError(f"{where}: the training configuration names no skeleton")
    from sleap_io.io.skeleton import SkeletonYAMLDecoder

    try:
        skeleton = SkeletonYAMLDecoder().decode(dict(skeletons[0]))
    except Exception as exc:  # sleap-io's decoder raises several types
        raise EngineError(f"{where}: cannot read its skeleton: {type(exc).__name__}: "
                          f"{exc}") from exc
    skeleton = skeleton[0] if isinstance(skeleton, list) else skeleton
    return ([str(n) for n in skeleton.node_names],
            [(str(a), str(b)) for a, b in skeleton.edge_names])


def _legacy_skeleton(config: dict[str, Any], where: Path):
    import sleap_io as sio

    path = _config_file(where)
    try:
        loaded = sio.load_skeleton(path)
    except Exception as exc:  # sleap-io raises many types on foreign files
        raise EngineError(f"cannot read a SLEAP skeleton from {path}: "
                          f"{type(exc).__name__}: {exc}") from exc
    skeleton = loaded[0] if isinstance(loaded, list) else loaded
    return ([str(n) for n in skeleton.node_names],
            [(str(a), str(b)) for a, b in skeleton.edge_names])


def snapshot_names(runs: list[Path]) -> list[str]:
    """Snapshots of a model set: ``best``, and ``last`` (the last epoch's) for a set of
    one network (sleap-nn chooses the checkpoint of each network of a top-down pair only
    as ``best``)."""
    names = [name for name, files in SNAPSHOTS.items()
             if runs and all(any((r / f).is_file() for f in files) for r in runs)]
    return names if len(runs) == 1 else [n for n in names if n == "best"]


def snapshot_path(run: Path, snapshot: str) -> Path:
    """The checkpoint file of one model folder's snapshot.

    Raises:
        EngineError: no such snapshot (the ones found are named).
    """
    for name in SNAPSHOTS.get(str(snapshot), ()):
        if (run / name).is_file():
            return run / name
    raise EngineError(f"SLEAP model folder {run} has no snapshot {snapshot!r} "
                      f"(found: {snapshot_names([run])})")


def read_training_log(run: Path) -> dict[str, list[float]]:
    """sleap-nn's ``training_log.csv`` as ``{column: per-epoch values}`` (NaN for blanks).

    Columns are as sleap-nn names them (``epoch``, ``train/loss``, ``val/loss``,
    ``learning_rate``, ...); empty when the folder has no log.
    """
    path = run / "training_log.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            columns.setdefault(str(key), []).append(_float(value))
    return columns


def learning_stats(run: Path) -> dict[str, list[float]]:
    """Per-epoch columns of one network: element-pose's and sleap-nn's.

    ``epoch`` (1-based), ``train_loss`` (mean of the epoch's batch losses),
    ``valid_loss`` and ``elapsed`` (seconds) as element-pose recorded them while it
    trained, then the columns of sleap-nn's ``training_log.csv`` as it wrote them
    (``val/loss``, ``learning_rate``, per-node losses...; its ``train/*`` columns are
    logged one row late by sleap-nn 0.3.5: its row of epoch N holds epoch N's
    training loss only from the second row on, the first is empty).
    """
    columns: dict[str, list[float]] = {}
    path = run / EPOCHS
    if path.is_file():
        rows = json.loads(path.read_text())
        for key in ("epoch", "train_loss", "valid_loss", "elapsed"):
            columns[key] = [_float(r.get(key)) for r in rows]
    n = len(columns.get("epoch", []))
    for key, values in read_training_log(run).items():
        if key == "epoch" and columns:
            continue
        if not columns or len(values) == n:
            columns[key] = values
    return columns


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def snapshot_epoch(run: Path, snapshot: str) -> int | None:
    """Epochs trained at a snapshot, from the training log (best: least validation loss)."""
    log = read_training_log(run)
    epochs = [int(e) for e in log.get("epoch", []) if e == e]
    if not epochs:
        return None
    valid = log.get("val/loss") or []
    if snapshot == "best" and any(v == v for v in valid):
        best = min((v, i) for i, v in enumerate(valid) if v == v)[1]
        return epochs[best] + 1
    return max(epochs) + 1
