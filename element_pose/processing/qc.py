"""Quality-control figures for one pose estimation, raw or filtered.

The four views DeepLabCut's ``plot_trajectories`` gives (and the Inscopix tool
previews):

* ``hist`` -- histogram of frame-to-frame coordinate differences per body part
  (outliers show as long tails; ideally narrow around 0),
* ``likelihood`` -- likelihood (confidence) of each body part over time,
* ``position`` -- x and y (and z) of each body part over time,
* ``trajectory`` -- x against y over the video frame, y pointing down because
  (0, 0) is the top-left pixel.

The ``*_figure`` functions return :class:`matplotlib.figure.Figure` objects made
without pyplot (no display, no global figure registry; they render in notebooks);
:func:`write_qc_figures` writes them as PNG files, atomically.  For multi-animal
data each figure shows one individual; :func:`write_qc_figures` writes one set per
individual.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from element_pose.core.pose import PoseData, PoseDataError
from element_pose.core.util import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

__all__ = [
    "FIGURE_NAMES",
    "difference_histogram_figure",
    "likelihood_figure",
    "position_figure",
    "save_figure",
    "trajectory_figure",
    "write_qc_figures",
]

FIGURE_NAMES = ("hist", "likelihood", "position", "trajectory")
DEFAULT_COLORMAP = "rainbow"


@functools.cache
def _figure_class() -> type[Figure]:
    from matplotlib.figure import Figure

    class NotebookFigure(Figure):
        """A Figure that Jupyter shows as a PNG without pyplot (no inline backend needed)."""

        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png")
            return buffer.getvalue()

    return NotebookFigure


def _new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """A figure on its own Agg canvas: no pyplot, so no global registry to leak into."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _figure_class()(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _individual_index(pose: PoseData, individual: str | None) -> int:
    if individual is None:
        if pose.is_multi_animal:
            logger.debug("no individual named: plotting %s", pose.individuals[0])
        return 0
    return pose.individual_index([individual])[0]


def _keypoint_indices(pose: PoseData, keypoints: Sequence[str] | None) -> list[int]:
    return pose.keypoint_index(keypoints) if keypoints is not None else list(
        range(len(pose.keypoints)))


def _colours(n: int, colormap: str) -> list:
    import matplotlib

    cmap = matplotlib.colormaps[colormap]
    return [cmap(v) for v in (np.linspace(0, 1, n) if n > 1 else [0.5])]


def _time_axis(pose: PoseData) -> tuple[np.ndarray, str]:
    try:
        return pose.time(), "time (s)"
    except PoseDataError:
        return np.arange(pose.n_frames, dtype=np.float64), "frame"


def _title(pose: PoseData, what: str, i: int, title: str | None) -> str:
    parts = [what]
    if pose.is_multi_animal:
        parts.append(pose.individuals[i])
    if title:
        parts.append(title)
    return " - ".join(parts)


def difference_histogram_figure(
    pose: PoseData,
    individual: str | None = None,
    keypoints: Sequence[str] | None = None,
    bins: int = 50,
    title: str | None = None,
) -> Figure:
    """Histograms of frame-to-frame coordinate differences, one panel per body part.

    Args:
        pose: Pose data (2D or 3D).
        individual: Which individual (default: the first).
        keypoints: Body parts to show (default: all).
        bins: Histogram bins.
        title: Extra text for the figure title (e.g. "raw" or "filtered").
    """
    i = _individual_index(pose, individual)
    kps = _keypoint_indices(pose, keypoints)
    n_cols = min(4, len(kps))
    n_rows = int(np.ceil(len(kps) / n_cols))
    fig = _new_figure(3.2 * n_cols, 2.6 * n_rows)
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    diffs = np.diff(pose.position[:, i].astype(np.float64), axis=0)
    for ax, k in zip(axes, kps, strict=False):
        for c, name in enumerate(pose.space):
            values = diffs[:, k, c]
            values = values[np.isfinite(values)]
            if values.size:
                ax.hist(values, bins=bins, histtype="stepfilled", alpha=0.5, label=f"d{name}")
        ax.set_title(pose.keypoints[k])
        ax.set_xlabel("difference (px/frame)")
        ax.set_ylabel("count")
        ax.legend(fontsize="small")
    for ax in axes[len(kps):]:
        ax.set_visible(False)
    fig.suptitle(_title(pose, "Frame-to-frame differences", i, title))
    return fig


def likelihood_figure(
    pose: PoseData,
    individual: str | None = None,
    keypoints: Sequence[str] | None = None,
    pcutoff: float | None = None,
    colormap: str = DEFAULT_COLORMAP,
    title: str | None = None,
) -> Figure:
    """Likelihood of each body part over time (a dashed line at ``pcutoff`` if given)."""
    i = _individual_index(pose, individual)
    kps = _keypoint_indices(pose, keypoints)
    t, t_label = _time_axis(pose)
    fig = _new_figure(10, 4)
    ax = fig.add_subplot()
    for colour, k in zip(_colours(len(kps), colormap), kps, strict=True):
        ax.plot(t, pose.confidence[:, i, k], color=colour, lw=0.8, label=pose.keypoints[k])
    if pcutoff is not None:
        ax.axhline(pcutoff, color="k", ls="--", lw=1, label=f"pcutoff {pcutoff:g}")
    ax.set_xlabel(t_label)
    ax.set_ylabel("likelihood")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    fig.suptitle(_title(pose, "Likelihood", i, title))
    return fig


def position_figure(
    pose: PoseData,
    individual: str | None = None,
    keypoints: Sequence[str] | None = None,
    colormap: str = DEFAULT_COLORMAP,
    title: str | None = None,
) -> Figure:
    """x and y (and z) of each body part over time, one panel per coordinate."""
    i = _individual_index(pose, individual)
    kps = _keypoint_indices(pose, keypoints)
    t, t_label = _time_axis(pose)
    fig = _new_figure(10, 2.5 * pose.n_space)
    axes = fig.subplots(pose.n_space, 1, sharex=True, squeeze=False)[:, 0]
    colours = _colours(len(kps), colormap)
    for c, (ax, name) in enumerate(zip(axes, pose.space, strict=True)):
        for colour, k in zip(colours, kps, strict=True):
            ax.plot(t, pose.position[:, i, k, c], color=colour, lw=0.8, label=pose.keypoints[k])
        ax.set_ylabel(f"{name} (px)")
    axes[-1].set_xlabel(t_label)
    axes[0].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    fig.suptitle(_title(pose, "Body parts over time", i, title))
    return fig


def trajectory_figure(
    pose: PoseData,
    width: float | None = None,
    height: float | None = None,
    individual: str | None = None,
    keypoints: Sequence[str] | None = None,
    colormap: str = DEFAULT_COLORMAP,
    title: str | None = None,
) -> Figure:
    """x against y over the video frame; the y axis points down ((0, 0) is top-left).

    Args:
        pose: Pose data; for 3D data x and y are shown.
        width: Frame width in pixels (default: fit the data).
        height: Frame height in pixels (default: fit the data).
        individual: Which individual (default: the first).
        keypoints: Body parts to show (default: all).
        colormap: Matplotlib colormap name for the body parts.
        title: Extra text for the figure title.
    """
    i = _individual_index(pose, individual)
    kps = _keypoint_indices(pose, keypoints)
    aspect = (width / height) if width and height else 4 / 3
    fig = _new_figure(min(12.0, 5 * aspect) + 1.8, 5)
    ax = fig.add_subplot()
    for colour, k in zip(_colours(len(kps), colormap), kps, strict=True):
        xy = pose.position[:, i, k, :2]
        ax.plot(xy[:, 0], xy[:, 1], ".", color=colour, ms=2, label=pose.keypoints[k])
    if width is not None:
        ax.set_xlim(0, width)
    if height is not None:
        ax.set_ylim(height, 0)
    else:
        ax.invert_yaxis()
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small", markerscale=4)
    fig.suptitle(_title(pose, "Trajectory", i, title))
    return fig


def _safe(name: str) -> str:
    """A file-name-safe version of an individual's name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a figure as PNG atomically (temporary file in the same folder, then rename)."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def write_qc_figures(
    pose: PoseData,
    out_dir: str | Path,
    width: float | None = None,
    height: float | None = None,
    prefix: str = "",
    pcutoff: float | None = None,
    keypoints: Sequence[str] | None = None,
    dpi: int = 100,
) -> dict[str, Path]:
    """Write the four QC figures as PNG files.

    File names are ``<prefix><name>.png`` for single-animal data and
    ``<prefix><name>_<individual>.png`` for multi-animal data, where ``name`` is one
    of :data:`FIGURE_NAMES`.

    Args:
        pose: Pose data, raw or filtered.
        out_dir: Folder for the files (created if needed).
        width: Video frame width in pixels, for the trajectory plot.
        height: Video frame height in pixels, for the trajectory plot.
        prefix: Prepended to every file name (e.g. ``"filtered_"``).
        pcutoff: Likelihood cut-off drawn on the likelihood plot.
        keypoints: Body parts to show (default: all).
        dpi: Resolution.

    Returns:
        ``{figure key: path}``, keys as the file names without ``prefix`` and suffix
        (``"hist"``, ... or ``"hist_<individual>"``, ...).
    """
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    for individual in pose.individuals:
        figures = {
            "hist": difference_histogram_figure(pose, individual, keypoints),
            "likelihood": likelihood_figure(pose, individual, keypoints, pcutoff=pcutoff),
            "position": position_figure(pose, individual, keypoints),
            "trajectory": trajectory_figure(pose, width, height, individual, keypoints),
        }
        for name, fig in figures.items():
            key = f"{name}_{_safe(individual)}" if pose.is_multi_animal else name
            written[key] = save_figure(fig, out_dir / f"{prefix}{key}.png", dpi=dpi)
            logger.debug("wrote %s", written[key])
    return written
