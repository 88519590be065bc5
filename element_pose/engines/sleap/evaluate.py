"""Evaluate a trained SLEAP model set on the frames it was trained and tested on.

The model set's ``train.slp`` and ``test.slp`` (written by
:func:`element_pose.engines.sleap.run.train`) are run through
``sleap_nn.inference.run.predict``; sleap-nn's own ``Evaluator`` scores each split,
and its figures are reported under ``<split>_sleap_<name>`` (OKS mAP/mAR, mean OKS,
distance percentiles, PCK).  ``<split>_rmse`` and the per-keypoint ``<split>_rmse``
are the root mean square of sleap-nn's matched per-keypoint distances.  The
predictions on every labelled frame come back in
:attr:`~element_pose.engines.base.EvaluationResult.predictions`, in the order of the
model set's ``labels.json``, so element-pose scores them like any engine's.

Files: ``<model set>/evaluation/<snapshot>/scores.json`` (first) and the predictions
``<split>.predictions.slp``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.labels import LabelSet
from element_pose.engines.base import EngineError, EvaluationResult, ModelDescription
from element_pose.engines.sleap import model as sm

__all__ = ["PEAK_THRESHOLD", "evaluate", "read_label_file"]

log = logging.getLogger(__name__)

#: sleap-nn's default peak threshold: points under it are not predicted (the cut-off).
PEAK_THRESHOLD = 0.2


def read_label_file(folder: Path) -> tuple[LabelSet, list[bool]]:
    """The labelled frames of a trained model set and their held-out flags.

    Raises:
        EngineError: the model set was not trained by element-pose (no labels file).
    """
    from element_pose.engines.sleap.run import LABELS_JSON

    path = Path(folder) / LABELS_JSON
    if not path.is_file():
        raise EngineError(f"SLEAP model {folder} has no {LABELS_JSON}: only a model "
                          "element-pose trained can be evaluated on its labelled frames")
    data = json.loads(path.read_text())
    xy = np.array(data["xy"], dtype=float)  # JSON null -> NaN
    labels = LabelSet(frames=data["frames"], keypoints=data["keypoints"],
                      individuals=data["individuals"], xy=xy,
                      skeleton=[tuple(e) for e in data["skeleton"]],
                      root=Path(data["root"]) if data.get("root") else None,
                      scorer=data.get("scorer", ""))
    return labels, [bool(t) for t in data["test"]]


def _predict(slp: Path, runs: list[Path], snapshot: str, device: str | None):
    from sleap_nn.inference.run import predict

    from element_pose.engines.sleap.run import sleap_logging

    checkpoints = {}
    if snapshot != "best":  # one network (snapshot_names): its own checkpoint
        path = str(sm.snapshot_path(runs[0], snapshot))
        checkpoints = {"backbone_ckpt_path": path, "head_ckpt_path": path}
    with sleap_logging(), contextlib.redirect_stderr(io.StringIO()):
        return predict(str(slp), model_paths=[str(r) for r in runs],
                       device=device, peak_threshold=PEAK_THRESHOLD, **checkpoints)


def _sleap_scores(truth, predicted, split: str, keypoints: list[str]):
    """sleap-nn's figures for one split, and per keypoint RMSE of its distances."""
    from sleap_nn.evaluation import Evaluator

    from element_pose.engines.sleap.run import sleap_logging

    with sleap_logging():
        m = Evaluator(truth, predicted).evaluate()
    voc, dist, pck = m["voc_metrics"], m["distance_metrics"], m["pck_metrics"]
    figures = {"oks_map": voc.get("oks_voc.mAP"), "oks_mar": voc.get("oks_voc.mAR"),
               "pck_map": voc.get("pck_voc.mAP"), "moks": m["mOKS"].get("mOKS"),
               "dist_avg": dist.get("avg"), "dist_p50": dist.get("p50"),
               "dist_p90": dist.get("p90"), "dist_p95": dist.get("p95"),
               "mpck": pck.get("mPCK"), "pck5": pck.get("PCK@5"), "pck10": pck.get("PCK@10")}
    metrics = {f"{split}_sleap_{k}": _number(v) for k, v in figures.items()}
    dists = np.asarray(dist.get("dists"), dtype=float).reshape(-1, len(keypoints))
    metrics[f"{split}_rmse"] = _rms(dists)
    per_keypoint = {k: {f"{split}_rmse": _rms(dists[:, i]),
                        f"{split}_sleap_dist_avg": _mean(dists[:, i])}
                    for i, k in enumerate(keypoints)}
    return metrics, per_keypoint


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _rms(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(np.sqrt(np.mean(values ** 2))) if values.size else float("nan")


def _mean(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def _frame_predictions(predicted, n_individuals: int, n_keypoints: int) -> list[np.ndarray]:
    """Per frame of the predicted labels (in their order): ``(n_ind, n_kp, 3)``."""
    out = []
    for lf in predicted.labeled_frames:
        array = np.full((n_individuals, n_keypoints, 3), np.nan)
        instances = sorted(lf.predicted_instances, key=lambda i: -float(i.score or 0))
        for slot, inst in enumerate(instances[:n_individuals]):
            array[slot] = inst.numpy(scores=True)
        out.append(array)
    return out


def _order(labels) -> list[tuple[int, int]]:
    return [(labels.videos.index(lf.video), int(lf.frame_idx)) for lf in labels.labeled_frames]


def evaluate(model: ModelDescription, snapshot: Any = None,
             device: str | None = None) -> EvaluationResult:
    """Evaluate a snapshot of a trained model set (``best``, or ``last`` for one network).

    Raises:
        EngineError: the model is no model set element-pose trained, or the snapshot
            does not exist.
    """
    import sleap_io as sio

    folder = Path(model.source)
    t0 = time.perf_counter()
    runs = sm.model_runs(folder)
    name = str(snapshot if snapshot not in (None, "") else model.options.get("snapshot")
               or "best")
    if name not in sm.snapshot_names(runs):
        raise EngineError(f"SLEAP model {folder} has no snapshot {name!r} "
                          f"(found: {sm.snapshot_names(runs)})")
    from element_pose.engines.sleap.run import resolve_device

    device = resolve_device(device)
    labels, test = read_label_file(folder)
    out = folder / "evaluation" / name
    out.mkdir(parents=True, exist_ok=True)
    n_ind = len(labels.individuals)
    predictions = np.full((labels.n_frames, n_ind, len(labels.keypoints), 3), np.nan)
    metrics: dict[str, float] = {"pcutoff": PEAK_THRESHOLD}
    per_keypoint: dict[str, dict[str, float]] = {k: {} for k in labels.keypoints}
    files = []
    for split, flag in (("train", False), ("test", True)):
        slp = folder / f"{split}.slp"
        rows = [i for i, t in enumerate(test) if t == flag]
        if not rows or not slp.is_file():
            continue
        truth = sio.load_slp(str(slp))
        predicted = _predict(slp, runs, name, device)
        pred_path = out / f"{split}.predictions.slp"
        sio.save_slp(predicted, str(pred_path), embed=False)
        files.append(pred_path)
        found = dict(zip(_order(predicted), _frame_predictions(predicted, n_ind,
                                                               len(labels.keypoints)),
                         strict=True))
        for row, place in zip(rows, _order(truth), strict=True):
            if place in found:
                predictions[row] = found[place]
        split_metrics, split_parts = _sleap_scores(truth, predicted, split, labels.keypoints)
        metrics.update(split_metrics)
        for k, values in split_parts.items():
            per_keypoint[k].update(values)
    scores = out / "scores.json"
    scores.write_text(json.dumps({"snapshot": name, "metrics": metrics,
                                  "per_keypoint": per_keypoint}, default=str))
    return EvaluationResult(
        snapshot=name, epochs=sm.snapshot_epoch(runs[-1], name), metrics=metrics,
        per_keypoint=per_keypoint, files=[scores, *files], device=device,
        wall_time=time.perf_counter() - t0, software={}, labels=labels,
        predictions=predictions, test=test)
