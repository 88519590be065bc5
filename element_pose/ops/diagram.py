"""A picture of the pipeline that needs no Graphviz.

DataJoint draws its diagram with Graphviz's ``dot``; many laptops lack it. This
module draws the same dependency graph (master tables, their tiers and their
dependencies) with matplotlib, and writes it as a PNG whose metadata carries a
fingerprint of the graph. ``docs/images/pipeline.png`` is made this way and
:func:`is_stale` tells whether the schemas have changed since::

    python -m element_pose.ops.diagram docs/images/pipeline.png

Notebook 01 shows DataJoint's own diagram where ``dot`` exists, this image
otherwise (:func:`show`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["PipelineGraph", "draw", "is_stale", "pipeline_graph", "show", "write_png"]

log = logging.getLogger(__name__)

#: DataJoint's table-name prefixes, longest first, and the tier each marks.
_TIERS = (("__", "Computed"), ("_", "Imported"), ("#", "Lookup"), ("", "Manual"))
#: Colours of DataJoint's own diagram, per tier.
_COLOURS = {"Manual": "#3a8f3a", "Lookup": "#8c8c8c", "Imported": "#3a5fcd",
            "Computed": "#c03030"}
#: The fingerprint's key in the PNG's text chunks.
PNG_KEY = "element-pose-pipeline"
DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "docs" / "images" / "pipeline.png"


@dataclass(frozen=True)
class PipelineGraph:
    """Master tables and their dependencies, independent of the schema prefix.

    Attributes:
        tables: ``{"model.VideoRecording": tier}`` for every master table.
        edges: ``(parent, child, primary)``: ``child`` depends on ``parent``, in its
            primary key when ``primary``.
    """

    tables: dict[str, str]
    edges: list[tuple[str, str, bool]] = field(default_factory=list)

    def fingerprint(self) -> str:
        """A hash of the graph (tables, tiers, dependencies)."""
        text = json.dumps({"tables": self.tables, "edges": self.edges}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _class_name(table: str) -> tuple[str, str, bool]:
    """``"__pose_estimation__body_part"`` -> (``"PoseEstimation"``, tier, is_part)."""
    prefix, tier = next((p, t) for p, t in _TIERS if table.startswith(p))
    master, _, part = table[len(prefix):].partition("__")
    return "".join(w.capitalize() for w in master.split("_")), tier, bool(part)


def _split(node: str, prefix: str) -> tuple[str, str] | None:
    """``'"pose_model"."video_recording"'`` -> (``"model"``, ``"video_recording"``)."""
    names = [p.strip('"`') for p in node.split(".")]
    if len(names) != 2 or not names[0].startswith(prefix):
        return None  # an alias node or a table of another pipeline
    return names[0][len(prefix):], names[1]


def _diagram(modules: Sequence[ModuleType]):
    """DataJoint's diagram of the schemas of ``modules`` together."""
    import datajoint as dj

    diagram = dj.Diagram(modules[0].schema)
    for module in modules[1:]:
        diagram += dj.Diagram(module.schema)
    return diagram


def pipeline_graph(modules: Sequence[ModuleType], prefix: str | None = None) -> PipelineGraph:
    """The dependency graph of the activated schemas of ``modules``.

    Args:
        modules: Modules with an activated ``schema`` (e.g. ``workflow.pipeline.lab``).
        prefix: Schema-name prefix to drop; default the configured one.
    """
    from element_pose.db.config import schema_prefix

    prefix = schema_prefix() if prefix is None else prefix
    diagram = _diagram(modules)
    names: dict[str, str] = {}
    tables: dict[str, str] = {}
    for node in diagram.nodes():
        split = _split(node, prefix)
        if split is None:
            continue
        cls, tier, is_part = _class_name(split[1])
        names[node] = f"{split[0]}.{cls}"
        if not is_part:
            tables[names[node]] = tier
    edges = set()
    for parent, child, data in diagram.edges(data=True):
        a, b = names.get(parent), names.get(child)
        if a and b and a != b:  # a part's dependency is its master's
            edges.add((a, b, bool(data.get("primary"))))
    # one edge per pair: primary wins
    best: dict[tuple[str, str], bool] = {}
    for a, b, primary in edges:
        best[(a, b)] = best.get((a, b), False) or primary
    return PipelineGraph(dict(sorted(tables.items())),
                         sorted((a, b, p) for (a, b), p in best.items()))


def _layers(graph: PipelineGraph) -> dict[str, int]:
    """Depth of each table: the longest dependency path from a table with no parent."""
    parents: dict[str, set[str]] = {t: set() for t in graph.tables}
    for a, b, _ in graph.edges:
        parents[b].add(a)
    depth: dict[str, int] = {}

    def visit(table: str) -> int:
        if table not in depth:
            depth[table] = 0  # guards against cycles (none in DataJoint)
            depth[table] = max((visit(p) + 1 for p in parents[table]), default=0)
        return depth[table]

    for table in graph.tables:
        visit(table)
    return depth


def _place(graph: PipelineGraph, rows: dict[int, list[str]]) -> dict[str, tuple[float, float]]:
    """Positions: rows by depth, each row ordered by its parents' mean position."""
    parents: dict[str, list[str]] = {t: [] for t in graph.tables}
    for a, b, _ in graph.edges:
        parents[b].append(a)
    where: dict[str, tuple[float, float]] = {}

    def spread(row: int, tables: list[str]) -> None:
        for i, table in enumerate(tables):
            where[table] = ((i + 0.5) / len(tables), row)

    for row in sorted(rows):
        spread(row, rows[row])
    for _ in range(3):  # barycentre ordering: fewer crossings
        for row in sorted(rows)[1:]:
            def centre(table: str) -> float:
                xs = [where[p][0] for p in parents[table]]
                return sum(xs) / len(xs) if xs else where[table][0]

            rows[row].sort(key=centre)
            spread(row, rows[row])
    return where


def draw(graph: PipelineGraph, *, width: float = 16.0) -> Any:
    """Draw the graph with matplotlib: one row per depth, colour per tier.

    Returns:
        The matplotlib Figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    depth = _layers(graph)
    rows: dict[int, list[str]] = {}
    for table in sorted(graph.tables, key=lambda t: (t.split(".")[0], t)):
        rows.setdefault(depth[table], []).append(table)
    n_rows = max(rows) + 1
    fig = Figure(figsize=(width, 1.1 * n_rows + 1))  # no pyplot: no global state
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.5, n_rows - 0.5)
    ax.invert_yaxis()
    ax.axis("off")
    where = _place(graph, rows)
    for a, b, primary in graph.edges:
        (x0, y0), (x1, y1) = where[a], where[b]
        ax.annotate("", xy=(x1, y1 - 0.18), xytext=(x0, y0 + 0.18),
                    arrowprops={"arrowstyle": "-|>", "lw": 0.8, "color": "#555555",
                                "linestyle": "-" if primary else (0, (4, 3)),
                                "shrinkA": 0, "shrinkB": 0}, zorder=1)
    for table, (x, y) in where.items():
        schema, cls = table.split(".")
        tier = graph.tables[table]
        ax.text(x, y, f"{cls}\n{schema}", ha="center", va="center", fontsize=7.5,
                color="white", zorder=2,
                bbox={"boxstyle": "round,pad=0.35", "fc": _COLOURS[tier], "ec": "none"})
    handles = [Line2D([], [], ls="", marker="s", ms=9, color=c, label=t)
               for t, c in _COLOURS.items()]
    handles += [Line2D([], [], color="#555555", label="in primary key"),
                Line2D([], [], color="#555555", ls=(0, (4, 3)), label="secondary")]
    ax.legend(handles=handles, loc="lower right", ncol=6, fontsize=8, frameon=False,
              bbox_to_anchor=(1.0, -0.06))
    fig.tight_layout()
    return fig


def write_png(graph: PipelineGraph, path: str | Path) -> Path:
    """Write the drawing to ``path`` with the graph's fingerprint in its metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = draw(graph)
    fig.savefig(path, dpi=110, metadata={PNG_KEY: graph.fingerprint()})
    log.info("wrote %s (%d tables)", path, len(graph.tables))
    return path


def png_fingerprint(path: str | Path) -> str | None:
    """The fingerprint stored in a PNG written by :func:`write_png` (None if absent)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.info.get(PNG_KEY)


def is_stale(graph: PipelineGraph, path: str | Path = DEFAULT_IMAGE) -> bool:
    """Whether the image at ``path`` is missing or shows another graph."""
    path = Path(path)
    return not path.is_file() or png_fingerprint(path) != graph.fingerprint()


def _pipeline_modules() -> list[ModuleType]:
    from element_pose.ops.pipeline import load_pipeline

    pipeline = load_pipeline()
    names = ("lab", "subject", "session", "model", "train", "analysis", "refine", "multicam",
             "publish")
    return [getattr(pipeline, n) for n in names if hasattr(getattr(pipeline, n, None), "schema")]


def show(modules: Iterable[ModuleType] | None = None) -> Any:
    """DataJoint's diagram where Graphviz is installed, the committed image otherwise.

    Args:
        modules: Modules with activated schemas; default the configured pipeline's
            (:mod:`element_pose.ops.pipeline`).

    Returns:
        Something Jupyter displays: a ``dj.Diagram`` or an ``IPython.display.Image``.
    """
    modules = list(modules) if modules is not None else _pipeline_modules()
    if shutil.which("dot"):
        return _diagram(modules)
    from IPython.display import Image

    if is_stale(pipeline_graph(modules)):
        log.warning("%s is out of date with the schemas; refresh it with "
                    "`python -m element_pose.ops.diagram`", DEFAULT_IMAGE)
    return Image(filename=str(DEFAULT_IMAGE))


def main(argv: Sequence[str] | None = None) -> int:
    """Write the pipeline image (default ``docs/images/pipeline.png``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT_IMAGE))
    args = parser.parse_args(argv)
    write_png(pipeline_graph(_pipeline_modules()), args.path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
