"""The figure of a refinement lineage: error per iteration, overall and per body part.

Input is the tidy table of :func:`element_pose.ops.iteration.lineage_scores` (columns
``iteration, model_name, body_part, split`` and a metric such as ``rmse``; body part
``""`` is the overall score).  The figure is made without pyplot, as the QC figures
(:mod:`element_pose.processing.qc`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["lineage_figure"]


def lineage_figure(scores: Any, *, metric: str = "rmse", split: str = "test",
                   title: str | None = None) -> Figure:
    """Error per iteration: one line overall (thick) and one per body part.

    Args:
        scores: DataFrame with ``iteration``, ``body_part``, ``split`` and ``metric``.
        metric: Column to plot (``rmse``, ``pck_5``, ...).
        split: ``"test"`` (held-out frames, the same in every iteration) or ``"train"``.
        title: Figure title (default names the metric and split).

    Raises:
        ValueError: the table lacks the metric or holds no row of the split.
    """
    from matplotlib.figure import Figure

    if metric not in getattr(scores, "columns", ()):
        raise ValueError(f"the scores have no column {metric!r}")
    rows = scores[scores["split"] == split]
    if rows.empty:
        raise ValueError(f"the scores hold no {split!r} rows")
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    parts = sorted(str(p) for p in rows["body_part"].unique())
    for part in parts:
        sub = rows[rows["body_part"] == part].groupby("iteration")[metric].mean()
        values = np.asarray(sub.to_numpy(dtype=np.float64))
        ax.plot(sub.index.to_numpy(), values, marker="o",
                linewidth=3 if part == "" else 1, color="black" if part == "" else None,
                label="all body parts" if part == "" else part)
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"{split} {metric}" + (" (px)" if metric == "rmse" else ""))
    ax.set_xticks(sorted(int(i) for i in rows["iteration"].unique()))
    ax.legend(fontsize="small")
    ax.set_title(title or f"{split} {metric} per refinement iteration")
    return fig
