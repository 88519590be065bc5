"""Filtered poses, QC figures, tidy exports and kinematics through the database."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest

from element_pose import sample
from element_pose.core.params import DuplicateParamsError

pytestmark = pytest.mark.usefixtures("pipeline")

PIPELINE = {"steps": [{"step": "confidence_threshold", "threshold": 0.5},
                      {"step": "median", "window": 5},
                      {"step": "interpolate", "max_gap": 5}]}


@pytest.fixture
def estimation(pipeline, raw_root, processed_root, unique):
    """A load-mode estimation with a spike and a low-confidence gap in 'nose'."""
    model = pipeline.model
    pipeline.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": f"a{unique}", "sex": "F"})
    session = {"subject": f"a{unique}", "session_id": 1}
    pipeline.session.Session.insert1({**session, "session_datetime": datetime.datetime(2026, 2, 1)})
    folder = raw_root / f"analysis_{unique}"
    truth = sample.make_video(folder / "cam.mp4", n_frames=60, seed=4)
    project = sample.make_dlc_project(folder / "project", n_frames=10, n_labeled=3)
    outputs = processed_root / f"analysis_{unique}"
    h5 = sample.make_dlc_output(truth, folder / "cam.mp4", outputs, noise_px=0.0,
                                missing_fraction=0.0)
    from element_pose.io import dlc

    pose = dlc.read_dlc_h5(h5)
    pose.position[20, 0, 0, 0] += 80  # a one-frame spike in nose x
    pose.confidence[40:43, 0, 0] = 0.1  # a 3-frame low-confidence gap
    dlc.write_dlc_h5(pose, h5, scorer=pose.scorer)
    key = model.VideoRecording.insert_recording(session, 0, {"device": "cam0"},
                                                [folder / "cam.mp4"])
    model.RecordingInfo.populate(key)
    model_key = model.Model.insert_new_model(f"an_{unique}", project)
    task = model.PoseEstimationTask.insert_estimation_task({**key, **model_key}, "load",
                                                           output_dir=outputs)
    model.PoseEstimation.populate(task)
    return {"key": task, "truth": truth}


def test_filtering_removes_spike_fills_gap_and_keeps_raw(pipeline, estimation, unique):
    analysis, model = pipeline.analysis, pipeline.model
    idx = analysis.FilterParamSet.insert_new_params(f"smooth {unique}",
                                                    {**PIPELINE, "steps": PIPELINE["steps"]})
    key = {**estimation["key"], "filter_paramset_idx": idx}
    analysis.FilteringTask.insert1(key)
    analysis.FilteredPose.populate(key)
    raw = model.PoseEstimation.fetch_pose(estimation["key"])
    filtered = analysis.FilteredPose.fetch_pose(key)
    truth = estimation["truth"].position
    assert abs(raw.position[20, 0, 0, 0] - truth[20, 0, 0, 0]) > 70  # raw untouched
    step = abs(truth[21, 0, 0, 0] - truth[20, 0, 0, 0])  # the marker's motion in one frame
    assert abs(filtered.position[20, 0, 0, 0] - truth[20, 0, 0, 0]) <= step + 1  # spike gone
    assert np.isfinite(filtered.position[40:43, 0, 0]).all()  # 3-frame gap filled
    assert [s["step"] for s in filtered.provenance] == ["confidence_threshold", "median",
                                                        "interpolate"]
    assert filtered.provenance[1]["window"] == 5


def test_filter_params_are_validated_and_hashed(pipeline, unique):
    from element_pose.processing.filters import FilterParamsError

    analysis = pipeline.analysis
    with pytest.raises(FilterParamsError, match="window 1 = off"):
        analysis.FilterParamSet.insert_new_params("even", {"steps": [{"step": "median",
                                                                      "window": 4}]})
    params = {"steps": [{"step": "median", "window": 3}, {"step": "interpolate",
                                                          "max_gap": int(unique, 16) % 97 + 1}]}
    idx = analysis.FilterParamSet.insert_new_params("a", params)
    with pytest.raises(DuplicateParamsError, match=f"filter_paramset_idx={idx}"):
        analysis.FilterParamSet.insert_new_params("b", params, filter_paramset_idx=idx + 500)


def test_unknown_body_part_in_filter_is_an_error_and_inserts_nothing(pipeline, estimation,
                                                                     unique):
    analysis = pipeline.analysis
    idx = analysis.FilterParamSet.insert_new_params(
        f"paw {unique}", {"steps": [{"step": "median", "window": 3, "keypoints": ["paw"]}]})
    key = {**estimation["key"], "filter_paramset_idx": idx}
    analysis.FilteringTask.insert1(key)
    result = analysis.FilteredPose.populate(key, reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 0
    assert "paw" in (analysis.FilteredPose.jobs.errors & key).fetch1("error_message")
    assert not (analysis.FilteredPose & key)


def test_qc_figures_are_written_and_recorded(pipeline, estimation, processed_root):
    analysis = pipeline.analysis
    analysis.PoseQC.populate(estimation["key"])
    paths = analysis.PoseQC.figure_paths(estimation["key"])
    assert set(paths) == {"hist", "likelihood", "position", "trajectory"}
    for path in paths.values():
        assert path.is_file() and processed_root in path.parents
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_tidy_table_and_csv(pipeline, estimation, tmp_path):
    analysis = pipeline.analysis
    df = analysis.tidy_table(estimation["key"])
    assert len(df) == 60
    assert {"Frame number", "Movie number", "Local frame number", "Time since start (s)",
            "nose x", "nose y", "nose likelihood", "subject", "model_name"} <= set(df.columns)
    assert df["Time since start (s)"].iloc[30] == pytest.approx(1.0, abs=1e-3)
    path = analysis.export_tidy(estimation["key"], tmp_path / "poses.csv")
    back = pd.read_csv(path)
    assert np.allclose(back["nose x"], df["nose x"], equal_nan=True)
    with pytest.raises(ValueError, match="no pose estimation matches"):
        analysis.tidy_table({"subject": "nobody"})


def test_locomotion_speed_on_recording_time(pipeline, estimation):
    analysis = pipeline.analysis
    loco = analysis.locomotion(estimation["key"], threshold=5.0,
                               keypoints=["left_ear", "right_ear"])
    truth = estimation["truth"]
    centre = truth.position[:, 0, 1:3].mean(axis=1)
    expected = np.hypot(*np.gradient(centre, 1 / 30, axis=0).T)
    assert loco.speed.shape[0] == 60
    assert np.allclose(np.asarray(loco.speed).reshape(60, -1)[:, 0], expected, rtol=0.05,
                       atol=2.0)
