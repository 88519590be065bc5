"""Lightning Pose prediction CSVs -> :class:`PoseData`.

Lightning Pose writes predictions in the layout of single-animal DeepLabCut CSVs:
three header rows ``scorer`` (the model type, e.g. ``heatmap_tracker``),
``bodyparts`` and ``coords`` (``x``, ``y``, ``likelihood`` per keypoint), then one row
per frame whose first column is the frame index.  Predictions on labelled images
index rows by image path and may end with a ``set`` column; those are not video
time series and are refused with a clear error.

Files beside a video's predictions that are not poses (``<stem>_temporal_norm.csv``,
``<stem>_pca_singleview_error.csv``, ``<stem>_pca_multiview_error.csv``, ...) are
never picked by :func:`find_lightning_pose_output`.

Multi-view models write one CSV per view; each view is a separate recording
(:func:`read_lightning_pose_views`), as the cameras of a multi-camera session are.

Mapping: one individual ``individual_0``; likelihood in [0, 1] as confidence
(checked); source software ``Lightning Pose``; the scorer row as scorer.

Why not movement's loader (``movement.io.load_poses.from_file(path, "LightningPose")``,
movement 0.15; ``tests/io/test_movement_parity.py`` checks both read equal values):
it fails on a file whose frame indices have gaps (``cannot reshape array``; we place
each row at its frame index and leave the gaps NaN), does not refuse labelled-image
predictions, checks no likelihood range, and returns float64 (we keep float32).  It is
faster: 2.0 s against 3.0 s here
(54,000 frames x 20 body parts, best of 3 on the project's 2-core machine).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from element_pose.core.pose import PoseData
from element_pose.io.dlc import pose_from_dataframe
from element_pose.io.registry import (
    PoseFormatError,
    check_scores,
    present_mask,
    register_format,
    require_file,
)

log = logging.getLogger(__name__)

__all__ = [
    "NON_POSE_SUFFIXES",
    "LightningPoseFormatError",
    "detect_lightning_pose_csv",
    "find_lightning_pose_output",
    "read_lightning_pose_csv",
    "read_lightning_pose_views",
    "validate_lightning_pose_csv",
]

SOFTWARE = "Lightning Pose"
#: Stems ending like this are diagnostics Lightning Pose writes beside predictions.
NON_POSE_SUFFIXES = ("_temporal_norm", "_pca_singleview_error", "_pca_multiview_error",
                     "_error", "_norm", "_metrics")
_COORDS = ("x", "y", "likelihood")


class LightningPoseFormatError(PoseFormatError):
    """A Lightning Pose CSV is missing, unreadable or not in the expected layout."""


def _header(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            return [next(reader) for _ in range(3)]
    except StopIteration:
        raise LightningPoseFormatError(
            f"{path} has fewer than 3 header rows; a Lightning Pose CSV has "
            "scorer/bodyparts/coords rows"
        ) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LightningPoseFormatError(f"cannot read Lightning Pose CSV {path}: {exc}") from exc


def validate_lightning_pose_csv(path: Path) -> None:
    """Check the header of a Lightning Pose prediction CSV.

    Raises:
        LightningPoseFormatError: naming the file and the offending header row.
    """
    path = require_file(path, "Lightning Pose CSV", LightningPoseFormatError)
    rows = _header(path)
    labels = [r[0].strip() if r else "" for r in rows]
    if labels != ["scorer", "bodyparts", "coords"]:
        raise LightningPoseFormatError(
            f"{path} is not a Lightning Pose prediction CSV: header rows start with {labels}, "
            "expected scorer/bodyparts/coords (multi-animal CSVs are DeepLabCut's)"
        )
    coords = {c.strip() for c in rows[2][1:]} - {""}
    missing = [c for c in _COORDS if c not in coords]
    if missing:
        raise LightningPoseFormatError(f"{path}: the coords row lacks {missing}")
    if len({len(r) for r in rows}) != 1:
        raise LightningPoseFormatError(f"{path}: header rows differ in length")


def detect_lightning_pose_csv(path: Path) -> bool:
    """Whether a file looks like a Lightning Pose CSV (not one with a DeepLabCut scorer)."""
    if path.suffix.lower() != ".csv":
        return False
    try:
        validate_lightning_pose_csv(path)
    except PoseFormatError:
        return False
    scorers = {c for c in _header(path)[0][1:] if c}
    return not any(s.startswith("DLC") for s in scorers)


def read_lightning_pose_csv(path: str | Path, *, fps: float | None = None) -> PoseData:
    """Read one Lightning Pose prediction CSV (one video, or one view of one).

    Args:
        path: The CSV.
        fps: Frame rate to attach (the CSV stores none).

    Returns:
        Pose data of one individual, one row per frame index (missing frames NaN).

    Raises:
        LightningPoseFormatError: naming the file for a bad header, a non-numeric
            frame index (predictions on labelled images), or likelihoods outside [0, 1].
    """
    import pandas as pd

    path = require_file(path, "Lightning Pose CSV", LightningPoseFormatError)
    validate_lightning_pose_csv(path)
    try:
        df = pd.read_csv(path, header=[0, 1, 2], index_col=0)
    except (ValueError, pd.errors.ParserError) as exc:
        raise LightningPoseFormatError(f"cannot read Lightning Pose CSV {path}: {exc}") from exc
    keep = [c in _COORDS for c in df.columns.get_level_values(2)]
    dropped = sorted({c[0] for c, k in zip(df.columns, keep, strict=True) if not k})
    if dropped:
        log.info("%s: ignoring non-pose columns %s", path, dropped)
    df = df.loc[:, keep]
    try:
        frames = np.asarray(df.index, dtype=np.int64)
    except (TypeError, ValueError):
        raise LightningPoseFormatError(
            f"{path}: rows are indexed by {df.index[0]!r}..., not frame numbers; this looks "
            "like predictions on labelled images, not on a video"
        ) from None
    if frames.size and (frames.min() < 0 or len(np.unique(frames)) != frames.size):
        raise LightningPoseFormatError(f"{path}: frame indices are negative or repeated")
    try:
        values = df.apply(pd.to_numeric, errors="raise")
    except (TypeError, ValueError) as exc:
        raise LightningPoseFormatError(f"{path}: non-numeric prediction value: {exc}") from exc
    values.columns = values.columns.set_names(["scorer", "bodyparts", "coords"])
    n_frames = int(frames.max()) + 1 if frames.size else 0
    if frames.size and not np.array_equal(frames, np.arange(n_frames)):
        values = values.reindex(pd.RangeIndex(n_frames))
    else:
        values = values.reset_index(drop=True)
    try:
        pose = pose_from_dataframe(values, source=str(path), fps=fps)
    except ValueError as exc:
        raise LightningPoseFormatError(str(exc)) from exc
    check_scores(pose.confidence, path, "likelihood", 0.0, 1.0, present=present_mask(pose),
                 error=LightningPoseFormatError)
    return pose.replace(source_software=SOFTWARE)


def read_lightning_pose_views(
    paths_by_view: Mapping[str, str | Path], *, fps: float | None = None
) -> dict[str, PoseData]:
    """Read the per-view CSVs of a multi-view model: one recording per view.

    Args:
        paths_by_view: View (camera) name -> prediction CSV.
        fps: Frame rate to attach.

    Returns:
        View name -> pose data, in the given order.

    Raises:
        LightningPoseFormatError: for a bad file, or when the views do not share
            their keypoints (naming the view).
    """
    out: dict[str, PoseData] = {}
    for view, path in paths_by_view.items():
        pose = read_lightning_pose_csv(path, fps=fps)
        first = next(iter(out.values()), None)
        if first is not None and pose.keypoints != first.keypoints:
            raise LightningPoseFormatError(
                f"view {view!r} ({path}) has keypoints {pose.keypoints}, other views "
                f"{first.keypoints}"
            )
        out[str(view)] = pose
    return out


def find_lightning_pose_output(video: str | Path, output_dir: str | Path) -> Path:
    """The prediction CSV of one video in an output folder (or its ``video_preds``).

    Lightning Pose names predictions ``<video stem>.csv``; diagnostics such as
    ``<stem>_temporal_norm.csv`` are skipped.

    Raises:
        LightningPoseFormatError: when there is none, or several candidates.
    """
    video, output_dir = Path(video), Path(output_dir)
    stem = video.stem
    for folder in (output_dir, output_dir / "video_preds"):
        exact = folder / f"{stem}.csv"
        if exact.is_file():
            return exact
    candidates = sorted(
        p for folder in (output_dir, output_dir / "video_preds") if folder.is_dir()
        for p in folder.glob(f"{stem}*.csv")
        if not p.stem.endswith(NON_POSE_SUFFIXES)
    )
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise LightningPoseFormatError(
            f"no Lightning Pose predictions for video {video.name} in {output_dir}"
        )
    raise LightningPoseFormatError(
        f"several Lightning Pose predictions for {video.name} in {output_dir}: "
        f"{[p.name for p in candidates]}"
    )


register_format(
    "lightning_pose_csv",
    read_lightning_pose_csv,
    validator=validate_lightning_pose_csv,
    detector=detect_lightning_pose_csv,
    suffixes=(".csv",),
    software=SOFTWARE,
    description="Lightning Pose prediction CSV (one per video; one per view for multi-view)",
)
