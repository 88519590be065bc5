"""Frames worth relabelling, chosen from pose estimates by declared criteria (no database).

The refinement loop (analyse videos, pick the frames the model gets wrong, correct
them, retrain) starts here: :func:`select_frames` scores every frame of one
:class:`~element_pose.core.pose.PoseData` by the criteria of an
:class:`OutlierParams` and picks at most ``frames_per_video`` of them.  It works on the
stored estimations of any engine, so nothing is asked of DeepLabCut (whose
``extract_outlier_frames`` rewrites the project it is given).

Criteria (DeepLabCut's names; each scores every frame, higher = more worth a look):

``uncertain`` (``p_bound``)
    A point's likelihood is below ``p_bound``.  Score: ``1 -`` the lowest likelihood
    of the frame.  Missing points (NaN likelihood) are not flagged: nothing to correct
    (an empty slot of a multi-animal model is no animal); with ``missing: true`` they
    count as likelihood 0 and the score adds the fraction of the frame's points
    missing (a frame where the model lost every point ranks first), for a
    single-animal model whose missing point is a point it lost (SLEAP reports a point
    below its peak threshold as missing).
``jump`` (``epsilon``, pixels)
    A point moved more than ``epsilon`` since the previous frame.  Score: the largest
    displacement (px).  A one-frame spike flags the frame and the next one.
``fitting`` (``threshold`` px, ``filter`` median or savgol, ``window``, ``p_bound``)
    A point is farther than ``threshold`` from a filtered trajectory (the
    :mod:`~element_pose.processing.filters` pipeline ``confidence_threshold`` +
    ``median`` or ``savgol``).  Score: the largest distance (px).  DeepLabCut fits a
    SARIMAX model and averages over body parts; a running median is robust to the
    outliers it looks for and the largest distance finds one bad body part.
``kmeans`` (``n_clusters``, ``egocentric``, ``p_bound``)
    Diversity: k-means on the poses (x, y of every body part, points below
    ``p_bound`` filled with their mean), one frame per cluster, the one nearest its
    centre, as DeepLabCut's ``kmeans`` extraction does on images.  Score: the
    fraction of frames its cluster holds.  ``egocentric`` clusters postures rather
    than places (each individual's centroid subtracted).

Picking: criteria take turns, in the order given, each offering its best frame not
yet taken (by score, then frame index) that is more than ``min_gap`` frames from every
frame taken, until ``frames_per_video`` frames are taken or no criterion has any left.
The result is deterministic: the k-means start is seeded by ``seed``.
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from element_pose.core.params import Int, ParamsError, ParamSet, register_params
from element_pose.core.pose import PoseData

__all__ = [
    "CRITERIA",
    "Fitting",
    "Jump",
    "KMeans",
    "OutlierError",
    "OutlierParams",
    "OutlierParamsError",
    "Uncertain",
    "criterion_scores",
    "kmeans",
    "select_frames",
]

log = logging.getLogger(__name__)

CRITERIA = ("uncertain", "jump", "fitting", "kmeans")
Fraction = Annotated[float, Field(ge=0, le=1)]
Names = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


class OutlierError(ValueError):
    """Frames cannot be selected from these poses (unknown names, no frames)."""


class OutlierParamsError(ParamsError):
    """Outlier parameters do not fit their model."""


# ------------------------------------------------------------------ parameters
class Uncertain(ParamSet):
    """A point's likelihood is below ``p_bound``."""

    criterion: Literal["uncertain"]
    p_bound: Fraction = Field(0.01, description="likelihood below which a point is uncertain")
    missing: bool = Field(
        False, description="count a point not found (NaN likelihood) as likelihood 0")


class Jump(ParamSet):
    """A point moved more than ``epsilon`` pixels since the previous frame."""

    criterion: Literal["jump"]
    epsilon: Annotated[float, Field(gt=0)] = Field(
        20.0, description="largest plausible move between frames (pixels)")


class Fitting(ParamSet):
    """A point is farther than ``threshold`` pixels from its filtered trajectory."""

    criterion: Literal["fitting"]
    threshold: Annotated[float, Field(gt=0)] = Field(
        20.0, description="largest distance from the filtered trajectory (pixels)")
    filter: Literal["median", "savgol"] = Field("median", description="trajectory filter")
    window: Annotated[Int, Field(ge=3, le=10_001)] = Field(
        7, description="odd filter window (frames)")
    p_bound: Fraction = Field(
        0.01, description="points below this likelihood are left out of the trajectory")

    @model_validator(mode="after")
    def _odd_window(self) -> Fitting:
        if self.window % 2 == 0:
            raise ValueError(f"'window' must be odd so the filter is centred, got {self.window}")
        return self


class KMeans(ParamSet):
    """Diverse poses: k-means on the poses, one frame per cluster."""

    criterion: Literal["kmeans"]
    n_clusters: Annotated[Int, Field(ge=1, le=10_000)] = Field(
        10, description="clusters (frames offered)")
    egocentric: bool = Field(False, description="cluster postures (centroid subtracted)")
    p_bound: Fraction = Field(0.01, description="points below this likelihood count as missing")


Criterion = Annotated[Uncertain | Jump | Fitting | KMeans, Field(discriminator="criterion")]


@register_params("outliers", "refine.OutlierParamSet")
class OutlierParams(ParamSet):
    """How frames to relabel are chosen from pose estimates (refine.SelectedFrames).

    Stored normalised (defaults filled in), so equal selections hash equally.
    """

    error: ClassVar[type[ValueError]] = OutlierParamsError
    normalise: ClassVar[bool] = True

    criteria: list[Criterion] = Field(
        min_length=1, description="criteria ({\"criterion\": name, ...}), taking turns")
    frames_per_video: Annotated[Int, Field(ge=1, le=100_000)] = Field(
        20, description="most frames chosen per estimation (recording)")
    min_gap: Annotated[Int, Field(ge=0, le=1_000_000)] = Field(
        0, description="chosen frames are more than this many frames apart")
    keypoints: Names | None = Field(None, description="body parts considered (null: all)")
    individuals: Names | None = Field(None, description="individuals considered (null: all)")
    seed: Annotated[Int, Field(ge=0, le=2**31 - 1)] = Field(0, description="k-means seed")

    @model_validator(mode="after")
    def _distinct_criteria(self) -> OutlierParams:
        names = [c.criterion for c in self.criteria]
        if len(set(names)) != len(names):
            raise ValueError(f"each criterion may appear once, got {names}")
        return self


# ------------------------------------------------------------------ scoring
def _subset(pose: PoseData, params: OutlierParams) -> PoseData:
    """The body parts and individuals the parameters consider."""
    for what, names, known in (("body parts", params.keypoints, pose.keypoints),
                               ("individuals", params.individuals, pose.individuals)):
        unknown = [n for n in names or () if n not in known]
        if unknown:
            raise OutlierError(f"outlier parameters name {what} {unknown} that the poses do "
                               f"not have ({list(known)})")
    return pose.select(keypoints=params.keypoints, individuals=params.individuals)


def _frame_max(values: np.ndarray) -> np.ndarray:
    """Per frame, the largest finite value over individuals and body parts (else NaN)."""
    flat = values.reshape(values.shape[0], -1)
    finite = np.isfinite(flat)
    out = np.where(finite, flat, -np.inf).max(axis=1, initial=-np.inf)
    return np.where(finite.any(axis=1), out, np.nan)


def _uncertain(pose: PoseData, c: Uncertain) -> tuple[np.ndarray, np.ndarray]:
    confidence = pose.confidence.astype(np.float64)
    lost = np.zeros(pose.n_frames)
    if c.missing:
        lost = (~np.isfinite(confidence)).reshape(pose.n_frames, -1).mean(axis=1)
        confidence = np.where(np.isfinite(confidence), confidence, 0.0)
    lowest = -_frame_max(-confidence)
    flagged = np.isfinite(lowest) & (lowest < c.p_bound)
    return flagged, 1.0 - lowest + lost


def _jump(pose: PoseData, c: Jump) -> tuple[np.ndarray, np.ndarray]:
    step = np.linalg.norm(np.diff(pose.position.astype(np.float64), axis=0), axis=-1)
    moved = np.concatenate([np.full((1, *step.shape[1:]), np.nan), step])
    score = _frame_max(moved)
    return np.isfinite(score) & (score > c.epsilon), score


def _fitting(pose: PoseData, c: Fitting) -> tuple[np.ndarray, np.ndarray]:
    from element_pose.processing.filters import apply_filters

    smooth: dict[str, Any] = ({"step": "median", "window": c.window} if c.filter == "median"
                              else {"step": "savgol", "window": c.window})
    if pose.n_frames < c.window:
        raise OutlierError(f"the fitting window ({c.window} frames) is longer than the "
                           f"{pose.n_frames} frames of the poses")
    steps = [{"step": "confidence_threshold", "threshold": c.p_bound}, smooth]
    trusted = pose.confidence >= c.p_bound
    position = np.where(trusted[..., None], pose.position, np.nan)
    if not np.isfinite(position).any():
        nan = np.full(pose.n_frames, np.nan)
        return np.zeros(pose.n_frames, bool), nan
    filtered = apply_filters(pose, {"steps": steps}).position
    distance = np.linalg.norm(position.astype(np.float64) - filtered, axis=-1)
    score = _frame_max(distance)
    return np.isfinite(score) & (score > c.threshold), score


def kmeans(features: np.ndarray, n_clusters: int, seed: int = 0, iterations: int = 100
           ) -> tuple[np.ndarray, np.ndarray]:
    """Plain k-means (k-means++ start from ``seed``): ``(labels, centres)``.

    Deterministic for a given seed; ``n_clusters`` is capped at the number of
    distinct rows.
    """
    x = np.asarray(features, dtype=np.float64)
    k = min(int(n_clusters), len(np.unique(x, axis=0)))
    rng = np.random.default_rng(seed)
    centres = np.empty((k, x.shape[1]))
    centres[0] = x[rng.integers(len(x))]
    nearest = ((x - centres[0]) ** 2).sum(-1)
    for j in range(1, k):  # k-means++: far rows are likelier starts
        centres[j] = x[rng.choice(len(x), p=nearest / nearest.sum())]
        nearest = np.minimum(nearest, ((x - centres[j]) ** 2).sum(-1))
    labels = np.full(len(x), -1)
    squares = (x**2).sum(-1)[:, None]
    for _ in range(iterations):
        d2 = squares - 2 * x @ centres.T + (centres**2).sum(-1)[None]
        new = d2.argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            if (labels == j).any():
                centres[j] = x[labels == j].mean(axis=0)
    return labels, centres


def _kmeans(pose: PoseData, c: KMeans, seed: int) -> tuple[np.ndarray, np.ndarray]:
    position = np.where((pose.confidence >= c.p_bound)[..., None], pose.position, np.nan)
    position = position.astype(np.float64)
    if c.egocentric:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an individual all missing
            position = position - np.nanmean(position, axis=2, keepdims=True)
    flat = position.reshape(pose.n_frames, -1)
    valid = np.flatnonzero(np.isfinite(flat).any(axis=1))
    flagged = np.zeros(pose.n_frames, bool)
    score = np.full(pose.n_frames, np.nan)
    if not len(valid):
        return flagged, score
    x = flat[valid]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a body part always missing
        means = np.nan_to_num(np.nanmean(x, axis=0))
    x = np.where(np.isfinite(x), x, means)
    labels, centres = kmeans(x, c.n_clusters, seed)
    for j in range(len(centres)):
        members = np.flatnonzero(labels == j)
        if not len(members):
            continue
        nearest = members[((x[members] - centres[j]) ** 2).sum(-1).argmin()]
        flagged[valid[nearest]] = True
        score[valid[nearest]] = len(members) / len(valid)
    return flagged, score


def criterion_scores(pose: PoseData, criterion: Criterion, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``(flagged, score)`` per frame for one criterion (see the module's docstring)."""
    if isinstance(criterion, Uncertain):
        return _uncertain(pose, criterion)
    if isinstance(criterion, Jump):
        return _jump(pose, criterion)
    if isinstance(criterion, Fitting):
        return _fitting(pose, criterion)
    return _kmeans(pose, criterion, seed)


# ------------------------------------------------------------------ picking
def _ranked(flagged: np.ndarray, score: np.ndarray) -> list[int]:
    """Flagged frames, best score first, then lowest frame."""
    frames = np.flatnonzero(flagged)
    order = np.lexsort((frames, -np.nan_to_num(score[frames], nan=-np.inf)))
    return [int(f) for f in frames[order]]


def _far_enough(frame: int, taken: list[int], min_gap: int) -> bool:
    return all(abs(frame - t) > min_gap for t in taken)


def select_frames(pose: PoseData, params: OutlierParams | dict[str, Any]):
    """Frames of one estimation worth relabelling.

    Args:
        pose: The estimation's poses (any engine).
        params: An :class:`OutlierParams` or its parameters (validated here).

    Returns:
        A ``pandas.DataFrame`` with columns ``frame`` (int), ``criterion`` (the one that
        chose it), ``score`` (float, that criterion's) and ``rank`` (0 = chosen first),
        sorted by frame; at most ``frames_per_video`` rows.

    Raises:
        OutlierParamsError: invalid parameters (named).
        OutlierError: names the poses do not have, or a window longer than the poses.
    """
    import pandas as pd

    if not isinstance(params, OutlierParams):
        params = OutlierParams.check(params)
    pose = _subset(pose, params)
    queues = []
    for c in params.criteria:
        flagged, score = criterion_scores(pose, c, params.seed)
        queues.append((c.criterion, deque(_ranked(flagged, score)), score))
        log.debug("criterion %s flags %d of %d frames", c.criterion, int(flagged.sum()),
                  pose.n_frames)
    taken: list[int] = []
    rows: list[tuple[int, str, float, int]] = []
    while len(taken) < params.frames_per_video and any(q[1] for q in queues):
        for name, queue, score in queues:
            while queue and not _far_enough(queue[0], taken, params.min_gap):
                queue.popleft()
            if queue and len(taken) < params.frames_per_video:
                frame = queue.popleft()
                rows.append((frame, name, float(score[frame]), len(taken)))
                taken.append(frame)
    table = pd.DataFrame(rows, columns=["frame", "criterion", "score", "rank"])
    return table.sort_values("frame", ignore_index=True).astype(
        {"frame": int, "criterion": str, "score": float, "rank": int})
