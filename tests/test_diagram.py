"""The committed pipeline picture (docs/images/pipeline.png) matches the schemas."""

from __future__ import annotations

import dataclasses

import pytest

from element_pose.ops import diagram

pytestmark = pytest.mark.usefixtures("pipeline")


def _graph():
    return diagram.pipeline_graph(diagram._pipeline_modules())


def test_pipeline_image_is_current():
    graph = _graph()
    assert {"model.PoseEstimation", "train.ModelTraining", "publish.DandiUpload"} <= set(
        graph.tables)
    assert graph.tables["model.PoseEstimation"] == "Computed"
    assert ("model.PoseEstimationTask", "model.PoseEstimation", True) in graph.edges
    assert not diagram.is_stale(graph), (
        "docs/images/pipeline.png is out of date with the schemas: "
        "run `python -m element_pose.ops.diagram` and commit the image")


def test_a_changed_schema_makes_the_image_stale(tmp_path):
    graph = _graph()
    path = diagram.write_png(graph, tmp_path / "pipeline.png")
    assert not diagram.is_stale(graph, path)
    grown = dataclasses.replace(graph, tables={**graph.tables, "model.NewTable": "Manual"})
    assert diagram.is_stale(grown, path)
    assert diagram.is_stale(graph, tmp_path / "missing.png")


def test_show_without_graphviz_displays_the_committed_image(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no `dot`
    shown = diagram.show()
    assert type(shown).__name__ == "Image"
    assert shown.data[:8] == b"\x89PNG\r\n\x1a\n"
