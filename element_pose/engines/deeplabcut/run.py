"""Training and evaluation with DeepLabCut."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.engines.deeplabcut.base import (
    LEARNING_STATS,
    PYTORCH_CONFIG,
    EngineError,
    ShuffleTraining,
    SnapshotEvaluation,
    SnapshotInfo,
)
from element_pose.engines.deeplabcut.layout import (
    _list_snapshots,
    _train_fraction,
    evaluation_folder,
    pytorch_config_path,
    read_pytorch_config,
    resolve_snapshot,
    scorer_name,
)
from element_pose.engines.deeplabcut.progress import training_progress
from element_pose.engines.deeplabcut.project import (
    read_project_config,
    training_params,
    validate_labeled_data,
)
from element_pose.engines.deeplabcut.runtime import (
    _config_device,
    _dlc_errors,
    _import_deeplabcut,
    _keep_cwd,
    _plain,
    select_device,
    versions,
)
from element_pose.engines.deeplabcut.weights import offline_hint, use_weights_cache
from element_pose.io import dlc as dlc_io

__all__ = [
    "evaluate",
    "train",
]

log = logging.getLogger(__name__)


# ==================================================================== train
def train(
    config_path: str | Path,
    params: Mapping[str, Any] | None = None,
    device: str | None = None,
) -> ShuffleTraining:
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
    cfg = read_project_config(config_path)
    validate_labeled_data(config_path, cfg)
    frac = _train_fraction(cfg, tsi, config_path)
    pt = read_pytorch_config(config_path, shuffle, tsi, cfg=cfg)
    folder = pytorch_config_path(config_path, shuffle, tsi, cfg=cfg).parent
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
    with (
        offline_hint(pt.get("net_type")),  # hub errors name `element-pose weights fetch`
        use_weights_cache(),  # ELEMENT_POSE_WEIGHTS_CACHE
        training_progress(kwargs.get("epochs")),  # a record per epoch
        _dlc_errors(f"training shuffle {shuffle} of {config_path}", t0=t0),
        _keep_cwd(),
    ):
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
    return ShuffleTraining(
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
        scorer_prefix=scorer_name(config_path, shuffle, tsi, cfg=cfg),
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
) -> SnapshotEvaluation:
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
    cfg = dlc_io.read_config(config_path)
    snap = resolve_snapshot(config_path, shuffle, trainingsetindex, snapshot, cfg=cfg)
    dev = select_device(device)
    frac = _train_fraction(cfg, trainingsetindex, config_path)
    scorer = scorer_name(config_path, shuffle, trainingsetindex, snap, cfg=cfg)
    folder = evaluation_folder(config_path, shuffle, trainingsetindex, cfg=cfg)
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

    result = SnapshotEvaluation(
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
