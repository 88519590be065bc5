"""A figure that compares models: element-pose's scores of each, side by side.

Takes the tables that :func:`element_pose.schemas.compare.rank_models` and
:func:`~element_pose.schemas.compare.body_part_scores` return (pandas DataFrames; no
database here): per model, bars of RMSE (pixels) and PCK at 2, 5 and 10 px on one
split, best model first, and optionally RMSE per body part.  The figure is made
without pyplot (like :mod:`element_pose.processing.qc`): no display, and it renders
in notebooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_model_ranking"]

_PCK = (("pck_2", "2 px"), ("pck_5", "5 px"), ("pck_10", "10 px"))


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _labels(ranking: Any) -> list[str]:
    return [f"{name}\n({engine})" for name, engine in
            zip(ranking["model_name"], ranking["engine"], strict=True)]


def plot_model_ranking(ranking: Any, body_parts: Any = None, *, title: str | None = None
                       ) -> Figure:
    """Bars of each model's RMSE and PCK (and RMSE per body part), best first.

    Args:
        ranking: :func:`element_pose.schemas.compare.rank_models`'s DataFrame (columns
            ``model_name``, ``engine``, ``rmse``, ``pck_2``, ``pck_5``, ``pck_10``).
        body_parts: Optionally :func:`~element_pose.schemas.compare.body_part_scores`'s
            DataFrame (``model_name``, ``body_part``, ``rmse``): a third panel, RMSE
            per body part and model.
        title: Figure title; default names the split the scores are on.

    Returns:
        A :class:`matplotlib.figure.Figure` (models without scores show no bar).

    Raises:
        ValueError: ``ranking`` holds no model or lacks a score column.
    """
    missing = [c for c in ("model_name", "engine", "rmse", *(c for c, _ in _PCK))
               if c not in ranking.columns]
    if missing:
        raise ValueError(f"the ranking lacks columns {missing} (use rank_models)")
    if len(ranking) == 0:
        raise ValueError("the ranking holds no model: nothing to plot")
    panels = 3 if body_parts is not None and len(body_parts) else 2
    n = len(ranking)
    fig = _figure(max(6.0, 1.2 * n + 3) * (1 + 0.5 * (panels - 2)), 3.6)
    axes = fig.subplots(1, panels)
    x = np.arange(n)
    labels = _labels(ranking)
    rmse = ranking["rmse"].to_numpy(dtype=float)
    axes[0].bar(x, np.nan_to_num(rmse, nan=0.0), color="tab:blue")
    axes[0].set(xticks=x, ylabel="RMSE (px)", title="RMSE (lower is better)")
    axes[0].set_xticklabels(labels, fontsize=8)
    width = 0.8 / len(_PCK)
    for j, (column, name) in enumerate(_PCK):
        values = ranking[column].to_numpy(dtype=float) * 100
        axes[1].bar(x + (j - 1) * width, np.nan_to_num(values, nan=0.0), width, label=name)
    axes[1].set(xticks=x, ylabel="labelled points (%)", ylim=(0, 100),
                title="PCK: within t px (higher is better)")
    axes[1].set_xticklabels(labels, fontsize=8)
    axes[1].legend(fontsize=8, loc="lower right")
    if panels == 3:
        _body_part_panel(axes[2], ranking, body_parts)
    split = ranking.attrs.get("split") or (ranking["split"].iloc[0] if "split" in ranking
                                           else "")
    fig.suptitle(title or f"Models compared on the {split} frames".replace("  ", " "))
    return fig


def _body_part_panel(ax: Any, ranking: Any, body_parts: Any) -> None:
    """Grouped bars: RMSE per body part (groups) and model (bars, ranking order)."""
    names = list(dict.fromkeys(body_parts["body_part"]))
    models = [m for m in ranking["model_name"] if m in set(body_parts["model_name"])]
    x = np.arange(len(names))
    width = 0.8 / max(len(models), 1)
    for j, name in enumerate(models):
        rows = body_parts[body_parts["model_name"] == name].set_index("body_part")
        values = [float(rows["rmse"].get(b, np.nan)) for b in names]
        ax.bar(x + (j - (len(models) - 1) / 2) * width, np.nan_to_num(values, nan=0.0),
               width, label=name)
    ax.set(xticks=x, ylabel="RMSE (px)", title="RMSE per body part")
    ax.set_xticklabels(names, fontsize=8, rotation=30)
    ax.legend(fontsize=8)
