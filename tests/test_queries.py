"""Restrictions as users write them: a dict, a list of dicts or a query; bad keys refused.

Every function that takes a restriction accepts all three forms (DataJoint 2.3's
semantic matching refuses ``T & (T & key)`` for tables with secondary attributes, so
a query is applied by its primary key).  The command line's ``--key`` names attributes
that exist and values of their type, or it exits 2 with one line and does nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from test_worker import make_batch

from element_pose.ops import worker

pytestmark = pytest.mark.usefixtures("pipeline")


@pytest.fixture
def estimation(pipeline, raw_root, processed_root, unique):
    b = make_batch(pipeline, raw_root, processed_root, unique, 1)
    report = worker.run_worker(["model.RecordingInfo", "model.PoseEstimation"], once=True,
                               restriction=b["restriction"], poll_interval=0)
    assert report.ok
    key = (pipeline.model.PoseEstimation & b["restriction"]).keys()[0]
    return key


def _forms(model, key):
    return {"dict": key, "list": [key], "query": model.PoseEstimation & key}


def test_fetch_functions_take_a_dict_a_list_or_a_query(pipeline, estimation):
    model = pipeline.model
    reference = model.PoseEstimation.get_trajectory(estimation)
    for name, form in _forms(model, estimation).items():
        frame = model.PoseEstimation.get_trajectory(form)
        assert frame.equals(reference), name
        pose = model.PoseEstimation.fetch_pose(form)
        np.testing.assert_array_equal(pose.position, model.PoseEstimation.fetch_pose(
            estimation).position)
        assert model.PoseEstimation.to_xarray(form).sizes["time"] == len(reference), name


def test_exports_take_a_dict_a_list_or_a_query(pipeline, estimation, tmp_path):
    model, analysis, publish = pipeline.model, pipeline.analysis, pipeline.publish
    for name, form in _forms(model, estimation).items():
        tidy = analysis.export_tidy(form, tmp_path / f"{name}.csv")
        assert tidy.is_file() and tidy.stat().st_size > 0, name
        files = publish.export_nwb(form, tmp_path / name)
        assert len(files) == 1 and files[0].path.is_file(), name


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "element_pose.cli", *args],
                          capture_output=True, text=True, env=dict(os.environ), timeout=600)


def test_export_refuses_keys_that_cannot_match(pipeline, estimation, tmp_path):
    out = tmp_path / "out"
    unknown = _cli("export", str(out), "--key", "nosuchattr=1")
    assert unknown.returncode == 2, unknown.stderr
    assert "nosuchattr" in unknown.stderr and "Traceback" not in unknown.stderr
    badly_typed = _cli("export", str(out), "--key", "session_id=abc")
    assert badly_typed.returncode == 2, badly_typed.stderr
    assert "session_id" in badly_typed.stderr and "abc" in badly_typed.stderr
    assert "SQL" not in badly_typed.stderr and "Traceback" not in badly_typed.stderr
    no_filter = _cli("export", str(out), "--key", f"subject={estimation['subject']}",
                     "--filter", "99")
    assert no_filter.returncode == 2, no_filter.stderr
    assert "99" in no_filter.stderr and "fetch1" not in no_filter.stderr
    assert not out.exists() or not any(out.rglob("*.nwb"))  # nothing was done


def test_reexport_names_the_overwrite_option(pipeline, estimation, tmp_path):
    out = tmp_path / "out"
    key = [f"--key=subject={estimation['subject']}"]
    first = _cli("export", str(out), *key)
    assert first.returncode == 0, first.stderr
    again = _cli("export", str(out), *key)
    assert again.returncode != 0 and "--overwrite" in again.stderr, again.stderr
    assert "overwrite=True" not in again.stderr
    assert _cli("export", str(out), *key, "--overwrite").returncode == 0
