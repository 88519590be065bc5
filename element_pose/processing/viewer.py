"""Look at poses on the video: frames with their keypoints and skeleton drawn on them.

DB-free: give it the video file(s) and a :class:`~element_pose.core.pose.PoseData`.
:meth:`element_pose.schemas.model.PoseEstimation.show_frames` does the fetching for one
estimation. Works headless: the figure is a :class:`matplotlib.figure.Figure` on
its own Agg canvas, made without pyplot (no global figure registry, so a worker
drawing many leaks none); in Jupyter the returned figure displays itself.

Each panel shows one frame at its native resolution (one data unit = one pixel,
``(0, 0)`` the top-left pixel) with each keypoint as a dot, coloured per body
part, and the skeleton as lines. Keypoints below ``min_confidence`` are drawn as
hollow circles, NaN (not detected) ones not at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.pose import PoseData
from element_pose.io.video import read_frames
from element_pose.processing.qc import _new_figure, _time_axis

__all__ = ["frames_to_show", "lowest_confidence_frames", "read_recording_frames", "show_frames"]


def lowest_confidence_frames(pose: PoseData, n: int, keypoint: str | None = None,
                             individual: str | None = None) -> list[int]:
    """The ``n`` frames with the lowest confidence: the frames a scientist would relabel.

    Args:
        pose: The estimation.
        n: How many frames.
        keypoint: Rank by this body part's confidence; default the mean over body parts.
        individual: Rank by this individual; default the mean over individuals.

    Returns:
        Frame indices, lowest confidence first (frames where the keypoint was not
        detected at all, NaN, come first).
    """
    conf = pose.confidence
    if individual is not None:
        conf = conf[:, pose.individual_index([individual])]
    if keypoint is not None:
        conf = conf[:, :, pose.keypoint_index([keypoint])]
    with np.errstate(all="ignore"):
        score = np.nanmean(conf.reshape(conf.shape[0], -1).astype(np.float64), axis=1)
    score = np.where(np.isnan(score), -np.inf, score)
    order = np.argsort(score, kind="stable")
    return [int(i) for i in order[: max(0, int(n))]]


def frames_to_show(pose: PoseData, frames: Sequence[int] | range | None = None,
                   lowest: int | None = None, keypoint: str | None = None,
                   individual: str | None = None, default: int = 6) -> list[int]:
    """Resolve the frame choice of :func:`show_frames` to sorted, valid frame indices."""
    if frames is not None and lowest is not None:
        raise ValueError("give either frames or lowest, not both")
    if lowest is not None:
        chosen = lowest_confidence_frames(pose, lowest, keypoint, individual)
    elif frames is not None:
        chosen = [int(f) for f in frames]
    else:
        chosen = np.linspace(0, pose.n_frames - 1, min(default, pose.n_frames)).astype(int)
    bad = [f for f in chosen if not 0 <= f < pose.n_frames]
    if bad:
        raise ValueError(f"frames {bad[:5]} outside the estimation's 0..{pose.n_frames - 1}")
    return sorted(set(int(f) for f in chosen))


def read_recording_frames(paths: Sequence[str | Path], frame_counts: Sequence[int],
                          indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Decode the given recording-wide frame indices from a recording of several files."""
    out: dict[int, np.ndarray] = {}
    offset = 0
    for path, count in zip(paths, frame_counts, strict=True):
        local = [i - offset for i in indices if offset <= i < offset + count]
        if local:
            for i, frame in zip(local, read_frames(path, local), strict=False):
                out[i + offset] = frame
        offset += count
    missing = sorted(set(indices) - set(out))
    if missing:
        raise ValueError(f"frames {missing[:5]} are not in the video files {list(map(str, paths))}")
    return out


def _draw_individual(ax, xy: np.ndarray, conf: np.ndarray, edges: list[tuple[int, int]],
                     colours: list, min_confidence: float, marker_size: float) -> None:
    """One individual's skeleton (white lines) and keypoints (hollow below the cutoff)."""
    for a, b in edges:
        if np.isfinite(xy[[a, b]]).all():
            ax.plot(xy[[a, b], 0], xy[[a, b], 1], color="white", lw=1.0, alpha=0.8)
    for k in range(len(xy)):
        if not np.isfinite(xy[k]).all():
            continue
        solid = bool(conf[k] >= min_confidence)
        ax.scatter(xy[k, 0], xy[k, 1], s=marker_size, zorder=3,
                   c=[colours[k]] if solid else "none",
                   edgecolors=[colours[k]], linewidths=1.2)


def show_frames(frames: dict[int, np.ndarray], pose: PoseData, *,
                individuals: Sequence[str] | None = None, min_confidence: float = 0.5,
                columns: int | None = None, panel_width: float = 4.0,
                marker_size: float = 30.0, title: str | None = None) -> Any:
    """Draw frames with their keypoints and skeleton.

    Args:
        frames: ``{frame index: RGB uint8 image}``, e.g. from :func:`read_recording_frames`.
        pose: The estimation (2D) the keypoints come from.
        individuals: Individuals to draw; default all.
        min_confidence: Keypoints below it are drawn hollow.
        columns: Panels per row; default up to 3.
        panel_width: Width of a panel in inches.
        marker_size: Keypoint marker area (points squared).
        title: Figure title.

    Returns:
        A :class:`matplotlib.figure.Figure` (one panel per frame, titled with the frame
        index and time), not registered with pyplot.
    """
    import matplotlib
    from matplotlib.lines import Line2D

    if pose.n_space != 2:
        raise ValueError("show_frames draws 2D poses; this estimation is 3D")
    if not frames:
        raise ValueError("no frames to show")
    chosen = individuals or pose.individuals
    ind = pose.individual_index(list(chosen))
    cmap = matplotlib.colormaps["tab20" if len(pose.keypoints) > 10 else "tab10"]
    colours = [cmap(k % cmap.N) for k in range(len(pose.keypoints))]
    edges = [(pose.keypoints.index(a), pose.keypoints.index(b)) for a, b in pose.skeleton]
    seconds, unit = _time_axis(pose)  # frame numbers when the pose has no time base

    order = sorted(frames)
    columns = columns or min(3, len(order))
    rows = math.ceil(len(order) / columns)
    height, width = next(iter(frames.values())).shape[:2]
    panel_height = panel_width * height / width
    fig = _new_figure(panel_width * columns, (panel_height + 0.35) * rows, layout=None)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, index in zip(axes.flat, order, strict=False):
        image = frames[index]
        ax.imshow(image, extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5),
                  interpolation="nearest")
        ax.set_xlim(-0.5, image.shape[1] - 0.5)
        ax.set_ylim(image.shape[0] - 0.5, -0.5)
        for i in ind:
            _draw_individual(ax, pose.position[index, i], pose.confidence[index, i], edges,
                             colours, min_confidence, marker_size)
        when = f"{seconds[index]:.2f} s" if unit == "time (s)" else "no time base"
        ax.set_title(f"frame {index}  ({when})", fontsize=9)
    handles = [Line2D([], [], ls="", marker="o", color=colours[k], label=name)
               for k, name in enumerate(pose.keypoints)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8,
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return fig
