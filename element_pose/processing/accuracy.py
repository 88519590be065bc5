"""Accuracy of predictions on labelled frames, computed the same way for every engine.

Each engine reports its own figures (DeepLabCut's RMSE and mAP, SLEAP's OKS/PCK),
computed its own way; to compare models across engines element-pose scores every
model itself, on the same held-out frames of the same :class:`~element_pose.core.labels.LabelSet`:

- **RMSE** in pixels: the root of the mean squared Euclidean distance between the
  predicted and labelled point, over labelled points that were predicted;
- **PCK@t**: the fraction of labelled points predicted within ``t`` pixels (a point
  not predicted counts as a miss);
- per body part and over all of them, for the trained-on and the held-out frames.

Several individuals are matched per frame to the labelled ones (Hungarian
assignment on the mean distance), so identity swaps of a multi-animal model are
not counted as errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from element_pose.core.labels import LabelSet, LabelSetError, held_out

__all__ = ["PCK_THRESHOLDS", "Score", "match_individuals", "score_predictions"]

#: PCK thresholds in pixels.
PCK_THRESHOLDS = (2.0, 5.0, 10.0)
ALL_BODY_PARTS = ""


@dataclasses.dataclass(frozen=True)
class Score:
    """Accuracy of one body part (or all: ``body_part == ""``) on one split.

    Attributes:
        split: ``"train"`` or ``"test"``.
        body_part: The body part, or ``""`` for all of them.
        rmse: Pixels (NaN when no labelled point was predicted).
        pck: ``{threshold: fraction}``.
        n_labelled: Labelled points scored.
        n_predicted: Of those, points the model predicted (finite position).
        n_frames: Frames of the split.
    """

    split: str
    body_part: str
    rmse: float
    pck: dict[float, float]
    n_labelled: int
    n_predicted: int
    n_frames: int


def match_individuals(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Reorder each frame's predicted individuals to best match the labelled ones.

    Args:
        truth: ``(n_frames, n_ind, n_kp, 2)``.
        predicted: ``(n_frames, n_pred, n_kp, >=2)``.

    Returns:
        ``(n_frames, n_ind, n_kp, 2)``: for each labelled individual the predicted
        one assigned to it (NaN when there are fewer predictions).
    """
    from scipy.optimize import linear_sum_assignment

    n_frames, n_ind, n_kp, _ = truth.shape
    out = np.full((n_frames, n_ind, n_kp, 2), np.nan)
    pred = np.asarray(predicted, dtype=np.float64)[..., :2]
    if n_ind == 1 and pred.shape[1] == 1:
        return pred.copy()
    for f in range(n_frames):
        d = np.linalg.norm(truth[f][:, None] - pred[f][None], axis=-1)  # (n_ind, n_pred, n_kp)
        with np.errstate(invalid="ignore"):
            cost = np.nanmean(np.where(np.isfinite(d), d, np.nan), axis=-1)
        cost = np.where(np.isfinite(cost), cost, 1e9)
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols, strict=True):
            out[f, r] = pred[f, c]
    return out


def _score(split: str, name: str, dist: np.ndarray, labelled: np.ndarray, n_frames: int,
           thresholds: Sequence[float]) -> Score:
    hits = dist[labelled]
    finite = np.isfinite(hits)
    rmse = float(np.sqrt(np.mean(hits[finite] ** 2))) if finite.any() else float("nan")
    n = int(labelled.sum())
    pck = {float(t): (float(np.sum(hits[finite] <= t)) / n if n else float("nan"))
           for t in thresholds}
    return Score(split, name, rmse, pck, n, int(finite.sum()), n_frames)


def score_predictions(truth: LabelSet, predicted: np.ndarray,
                      test: Sequence[bool] | None = None, *,
                      thresholds: Sequence[float] = PCK_THRESHOLDS) -> list[Score]:
    """Score predictions on the frames of a labelled set.

    Args:
        truth: The labelled frames.
        predicted: ``(n_frames, n_pred_individuals, n_keypoints, 2 or 3)`` in the
            order of ``truth.frames`` and ``truth.keypoints`` (a third column, the
            confidence, is ignored).
        test: Per frame, whether it is held out; default :func:`held_out` of the frames.
        thresholds: PCK thresholds in pixels.

    Returns:
        One :class:`Score` per split (``train``, ``test``) and body part, plus one
        for all body parts (``body_part == ""``) per split; a split with no frames
        is left out.

    Raises:
        LabelSetError: the predictions do not have one row per frame and keypoint.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    if predicted.ndim != 4 or predicted.shape[0] != truth.n_frames \
            or predicted.shape[2] != len(truth.keypoints):
        raise LabelSetError(
            f"predictions of shape {predicted.shape} do not fit {truth.n_frames} frames x "
            f"{len(truth.keypoints)} keypoints {truth.keypoints}")
    test = np.asarray(held_out(truth.frames) if test is None else test, dtype=bool)
    matched = match_individuals(truth.xy, predicted)
    dist = np.linalg.norm(matched - truth.xy, axis=-1)  # (n_frames, n_ind, n_kp)
    labelled = np.isfinite(truth.xy).all(axis=-1)
    out: list[Score] = []
    for split, mask in (("train", ~test), ("test", test)):
        if not mask.any():
            continue
        d, lab, n = dist[mask], labelled[mask], int(mask.sum())
        out.append(_score(split, ALL_BODY_PARTS, d, lab, n, thresholds))
        out.extend(_score(split, kp, d[..., k], lab[..., k], n, thresholds)
                   for k, kp in enumerate(truth.keypoints))
    return out
