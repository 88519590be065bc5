"""What a real DeepLabCut project brings (issue 13), without training: snapshots,
placeholder ``video_sets``, outputs of several snapshots, outputs outside the
processed root, CSV outputs, engine versions and stored paths.

Snapshots are empty ``.pt`` files: registration only reads their names.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import yaml

from element_pose import sample
from element_pose.engines import deeplabcut as engine
from element_pose.io import dlc

pytestmark = pytest.mark.usefixtures("pipeline")


def _trained_project(root: Path, epochs=(1, 2, 3), best=None) -> Path:
    """A labelled project with snapshot files as DeepLabCut leaves them."""
    config = sample.make_dlc_project(root, n_frames=10, n_labeled=3)
    folder = engine.model_folder(config, 1, 0)
    folder.mkdir(parents=True)
    for epoch in epochs:
        (folder / f"snapshot-{epoch:03d}.pt").write_bytes(b"")
    if best is not None:
        (folder / f"snapshot-best-{best:03d}.pt").write_bytes(b"")
    (folder / "pytorch_config.yaml").write_text(yaml.safe_dump(
        {"net_type": "cspnext_s", "metadata": {"project_path": str(root)}}))
    return config


def _absolute_paths(value) -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _absolute_paths(k) + _absolute_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _absolute_paths(v)]
    return [value] if isinstance(value, str) and value.startswith("/") else []


def test_best_without_a_best_snapshot_is_resolved_to_a_file_at_registration(
        pipeline, raw_root, unique):
    """Fewer epochs than eval_interval: no snapshot-best; 'best' means the last one."""
    config = _trained_project(raw_root / f"nobest_{unique}")
    key = pipeline.model.Model.insert_new_model(f"nb_{unique}", config)
    row = (pipeline.model.Model & key).fetch1()
    assert row["engine_options"]["snapshot"] == "snapshot-003"
    assert row["scorer"] == "DLC_CspnextS_demoJan01shuffle1_snapshot_3"
    # more training later does not change what the model means
    (engine.model_folder(config, 1, 0) / "snapshot-best-004.pt").write_bytes(b"")
    assert (pipeline.model.Model & key).fetch1("engine_options")["snapshot"] == "snapshot-003"


def test_a_missing_snapshot_is_refused_at_registration(pipeline, raw_root, unique):
    config = _trained_project(raw_root / f"missing_{unique}")
    with pytest.raises(engine.EngineError, match=r"epoch 9.*snapshot-001"):
        pipeline.model.Model.insert_new_model(f"ms_{unique}", config, snapshot=9)
    assert not (pipeline.model.Model & {"model_name": f"ms_{unique}"})


def test_another_snapshot_is_another_model(pipeline, raw_root, unique):
    config = _trained_project(raw_root / f"other_{unique}", best=2)
    model = pipeline.model.Model
    key = model.insert_new_model(f"o_{unique}", config)
    assert (model & key).fetch1("engine_options")["snapshot"] == "snapshot-best-002"
    other = model.insert_snapshot(f"o_{unique}", f"o1_{unique}", 1)
    row = (model & other).fetch1()
    assert row["engine_options"]["snapshot"] == "snapshot-001"
    assert row["scorer"].endswith("_snapshot_1")
    assert model.body_parts(other) == model.body_parts(key)


def test_config_template_stores_no_absolute_path(pipeline, raw_root, unique):
    config = _trained_project(raw_root / f"paths_{unique}")
    key = pipeline.model.Model.insert_new_model(f"p_{unique}", config)
    template = (pipeline.model.Model & key).fetch1("config_template")
    assert _absolute_paths(template) == []
    assert template["project_path"] == f"paths_{unique}"
    assert f"paths_{unique}/videos/demo_video0.mp4" in template["video_sets"]


def test_placeholder_video_sets_are_refused_at_insert(pipeline, raw_root, unique):
    """The public examples ship with a placeholder video path in video_sets."""
    config = sample.make_dlc_project(raw_root / f"ph_{unique}", n_frames=10, n_labeled=3)
    cfg = dlc.read_config(config)
    cfg["video_sets"] = {"WILL BE AUTOMATICALLY UPDATED BY DEMO CODE": {"crop": "0, 640, 0, 480"}}
    dlc.write_config(cfg, config)
    train = pipeline.train
    set_id = int(unique, 16) % 100000
    with pytest.raises(ValueError) as err:
        train.VideoSet.insert_from_project(set_id, config)
    message = str(err.value)
    assert str(config) in message and "['demo_video0']" in message
    assert "WILL BE AUTOMATICALLY UPDATED BY DEMO CODE" in message
    assert not (train.VideoSet & {"video_set_id": set_id})
    key = train.VideoSet.insert_from_project(set_id, config, video_sets="labeled-data")
    assert (train.VideoSet & key).fetch1("video_sets") == {
        "videos/demo_video0.mp4": {"crop": "0, 160, 0, 120"}}


# ------------------------------------------------------------------ load mode
@pytest.fixture
def session_video(pipeline, raw_root, unique):
    """A recording at a non-integer frame rate, probed."""
    pipeline.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": f"r{unique}", "sex": "M"})
    session = {"subject": f"r{unique}", "session_id": 1}
    pipeline.session.Session.insert1({**session,
                                      "session_datetime": datetime.datetime(2026, 3, 1)})
    video = raw_root / f"rec_{unique}" / "cam0.mp4"
    truth = sample.make_video(video, n_frames=20, fps=30.0003, seed=3)
    key = pipeline.model.VideoRecording.insert_recording(session, 0, {"device": "cam0"}, [video])
    pipeline.model.RecordingInfo.populate(key)
    return {"key": key, "video": video, "truth": truth}


def _load(pipeline, recording, model_key, output_dir):
    model = pipeline.model
    task = model.PoseEstimationTask.insert_estimation_task(
        {**recording, **model_key}, "load", output_dir=output_dir)
    model.PoseEstimation.populate(task, reserve_jobs=True, suppress_errors=True)
    errors = (model.PoseEstimation.jobs.errors & task).to_arrays("error_message")
    return task, (errors[0] if len(errors) else None)


def test_load_matches_the_model_snapshot(pipeline, raw_root, session_video, unique):
    """Outputs of two snapshots side by side: the model's own is loaded."""
    config = _trained_project(raw_root / f"two_{unique}")
    model_key = pipeline.model.Model.insert_new_model(f"t_{unique}", config)  # snapshot-003
    prefix = "DLC_CspnextS_demoJan01shuffle1_snapshot_"
    outputs = session_video["video"].parent / "dlc"
    for uid, seed in (("1", 1), ("3", 2)):
        sample.make_dlc_output(session_video["truth"], session_video["video"], outputs,
                               scorer=prefix + uid, seed=seed)
    task, error = _load(pipeline, session_video["key"], model_key, outputs)
    assert error is None, error
    assert (pipeline.model.PoseEstimation & task).fetch1("scorer") == prefix + "3"


def test_load_refuses_outputs_of_another_snapshot(pipeline, raw_root, session_video, unique):
    config = _trained_project(raw_root / f"wrong_{unique}")
    model_key = pipeline.model.Model.insert_new_model(f"w_{unique}", config)  # snapshot-003
    outputs = session_video["video"].parent / "dlc1"
    sample.make_dlc_output(session_video["truth"], session_video["video"], outputs,
                           scorer="DLC_CspnextS_demoJan01shuffle1_snapshot_1")
    task, error = _load(pipeline, session_video["key"], model_key, outputs)
    assert not (pipeline.model.PoseEstimation & task)
    assert "snapshot_3" in error and "(snapshot 1)" in error


def test_load_from_a_raw_root_records_relative_paths_and_version(
        pipeline, project_outputs):
    model = pipeline.model
    task, error = _load(pipeline, project_outputs["key"], project_outputs["model"],
                        project_outputs["outputs"])
    assert error is None, error
    stored = (model.PoseEstimationTask & task).fetch1("output_dir")
    assert stored == f"{project_outputs['video'].parent.name}/dlc"
    row = (model.PoseEstimation & task).fetch1()
    assert row["engine_version"] == "deeplabcut 3.x"
    assert all(not f.startswith("/") for f in row["output_files"])
    pose = model.PoseEstimation.fetch_pose(task)
    assert pose.source_software_version == "3.x"


def test_csv_only_outputs_load(pipeline, project_outputs):
    """A folder holding only DeepLabCut's .csv output loads like the .h5."""
    h5 = project_outputs["h5"]
    expected = dlc.read_dlc_h5(h5)
    dlc.read_dlc_h5(h5).to_dlc_dataframe().to_csv(h5.with_suffix(".csv"))
    h5.unlink()
    task, error = _load(pipeline, project_outputs["key"], project_outputs["model"],
                        project_outputs["outputs"])
    assert error is None, error
    pose = pipeline.model.PoseEstimation.fetch_pose(task)
    assert (pose.position == expected.position).all() or (
        abs(pose.position - expected.position).max() < 1e-4)
    assert (pipeline.model.PoseEstimation & task).fetch1("output_files")[0].endswith(".csv")


def test_filtered_only_outputs_say_what_was_found(pipeline, project_outputs):
    h5 = project_outputs["h5"]
    h5.rename(h5.with_name(h5.stem + "_filtered.h5"))
    task, error = _load(pipeline, project_outputs["key"], project_outputs["model"],
                        project_outputs["outputs"])
    assert not (pipeline.model.PoseEstimation & task)
    assert "_filtered.h5" in error and "accepted" in error and ".csv" in error


@pytest.fixture
def project_outputs(pipeline, raw_root, session_video, unique):
    """A registered untrained project and its output (with _meta.pickle) in a raw root."""
    config = sample.make_dlc_project(raw_root / f"lo_{unique}", n_frames=10, n_labeled=3)
    model_key = pipeline.model.Model.insert_new_model(f"lo_{unique}", config)
    outputs = session_video["video"].parent / "dlc"
    h5 = sample.make_dlc_output(session_video["truth"], session_video["video"], outputs)
    meta = h5.with_name(h5.stem + "_meta.pickle")
    data = dlc.read_dlc_meta(meta)
    dlc.write_dlc_meta({**data, "pytorch-config": {"net_type": "resnet_50"}}, meta)
    return {**session_video, "model": model_key, "outputs": outputs, "h5": h5}


def test_csv_reader_round_trips_both_layouts(tmp_path):
    for n_individuals in (1, 2):
        truth = sample.ground_truth(12, 30.0, 160, 120, sample.DEFAULT_BODYPARTS,
                                    n_individuals, 0)
        path = tmp_path / f"out{n_individuals}.csv"
        truth.to_dlc_dataframe(scorer="DLC_x").to_csv(path)
        pose = dlc.read_dlc_output(path)
        assert pose.individuals == truth.individuals
        assert abs(pose.position - truth.position).max() < 1e-3
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(dlc.DLCFormatError, match=r"bad\.csv is not a DeepLabCut pose table"):
        dlc.read_dlc_output(tmp_path / "bad.csv")
