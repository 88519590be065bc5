"""A DeepLabCut project with the public examples' quirks, end to end (issue 13).

Quirks: placeholder ``video_sets``, fewer epochs than ``eval_interval`` (no best
snapshot), outputs outside the processed root, a CSV-only output, outputs of two
snapshots side by side, a 30.0003 fps session video.  The chain labelled frames ->
train -> register -> evaluate -> infer -> load -> labelled video -> NWB runs with no
manual step, as the README's training section shows.  Real DeepLabCut on the CPU,
offline, trained for 3 epochs.
"""

from __future__ import annotations

import datetime

import pytest

from element_pose import sample
from element_pose.engines import deeplabcut as engine
from element_pose.io import dlc
from element_pose.io.video import probe_video
from element_pose.ops.demo import QUICK_TRAINING_PARAMS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("pipeline")]
FPS = 30.0003
PARAMS = {**QUICK_TRAINING_PARAMS, "device": "cpu", "epochs": 3, "save_epochs": 1,
          "eval_interval": 10}


def _absolute_paths(value) -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _absolute_paths(k) + _absolute_paths(v)]
    if isinstance(value, list):
        return [p for v in value for p in _absolute_paths(v)]
    return [value] if isinstance(value, str) and value.startswith("/") else []


def _session(pipeline, name):
    pipeline.lab.Lab.insert1({"lab": "rlab", "lab_name": "Real Lab", "institution": "Uni",
                              "time_zone": "Europe/Zurich"}, skip_duplicates=True)
    pipeline.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": name, "sex": "F", "species": "Mus musculus",
                                      "subject_birth_date": datetime.date(2025, 9, 1)})
    pipeline.subject.Subject.Lab.insert1({"subject": name, "lab": "rlab"})
    session = {"subject": name, "session_id": 1}
    pipeline.session.Session.insert1({**session, "session_datetime":
                                      datetime.datetime(2026, 3, 1, 9, 30),
                                      "session_description": "open field"})
    return session


def test_public_example_project_end_to_end(pipeline, raw_root, processed_root, tmp_path,
                                           capfd):
    model, train = pipeline.model, pipeline.train

    # a project as the public examples ship it: placeholder video_sets
    config = sample.make_dlc_project(raw_root / "openfield", n_frames=60, n_labeled=24)
    cfg = dlc.read_config(config)
    cfg["video_sets"] = {"WILL BE AUTOMATICALLY UPDATED BY DEMO CODE":
                         {"crop": "0, 640, 0, 480"}}
    dlc.write_config(cfg, config)
    user_config = config.read_text()

    # labelled frames -> train (3 epochs, eval_interval 10: no best snapshot)
    with pytest.raises(ValueError, match="match no labeled-data folder"):
        train.VideoSet.insert_from_project(1, config)
    train.VideoSet.insert_from_project(1, config, video_sets="labeled-data")
    paramset = train.TrainingParamSet.insert_new_params("public example", PARAMS)
    task = {"video_set_id": 1, "paramset_idx": paramset, "training_id": 0}
    train.TrainingTask.insert1({**task, "project_path": "openfield"})
    train.ModelTraining.populate(task, reserve_jobs=True, suppress_errors=True)
    assert (train.ModelTraining & task), (train.ModelTraining.jobs & task).fetch1("error_message")
    assert config.read_text() == user_config  # the user's config.yaml is untouched
    trained = (train.ModelTraining & task).fetch1()
    assert _absolute_paths(trained["training_config"]) == []
    names = set((train.ModelTraining.Snapshot & task).to_arrays("snapshot_name"))
    assert names == {"snapshot-001", "snapshot-002", "snapshot-003"}

    # register: "best" resolved once to a file; another snapshot is another model
    model_key = train.ModelTraining.register_model(task, "openfield")
    registered = (model.Model & model_key).fetch1()
    assert registered["engine_options"]["snapshot"] == "snapshot-003"
    assert registered["scorer"].endswith("_snapshot_3")
    assert _absolute_paths(registered["config_template"]) == []
    early = model.Model.insert_snapshot("openfield", "openfield_epoch1", 1)
    assert (model.Model & early).fetch1("engine_options")["snapshot"] == "snapshot-001"

    # evaluate
    model.ModelEvaluation.populate(model_key)
    assert (model.ModelEvaluation & model_key).fetch1("evaluated_snapshot") == "snapshot-003"

    # infer: the lab's own outputs beside the video (outside the processed root),
    # of two snapshots side by side, and a CSV-only copy for a second recording
    session = _session(pipeline, "openfield1")
    video = raw_root / "openfield_sessions" / "day1" / "cam0.mp4"
    sample.make_video(video, n_frames=40, fps=FPS, seed=0)
    beside = video.parent / "dlc"
    model_config = model.Model.config_path(model_key)
    engine.infer(model_config, [video], beside, snapshot=1, device="cpu")
    last = engine.infer(model_config, [video], beside, snapshot="snapshot-003", device="cpu",
                        save_as_csv=True)
    video2 = raw_root / "openfield_sessions" / "day2" / "cam0.mp4"
    video2.parent.mkdir(parents=True)
    video2.write_bytes(video.read_bytes())
    csv_only = video2.parent / "dlc"
    csv_only.mkdir()
    csv = last.outputs[0].h5.with_suffix(".csv")
    (csv_only / csv.name).write_bytes(csv.read_bytes())

    # load
    tasks = []
    for rec_id, (path, outputs) in enumerate([(video, beside), (video2, csv_only)]):
        recording = model.VideoRecording.insert_recording(session, rec_id, {"device": "cam0"},
                                                          [path])
        model.RecordingInfo.populate(recording)
        assert (model.RecordingInfo & recording).fetch1("fps") == FPS
        tasks.append(model.PoseEstimationTask.insert_estimation_task(
            {**recording, **model_key}, "load", output_dir=outputs))
    model.PoseEstimation.populate(session, reserve_jobs=True, suppress_errors=True)
    assert len(model.PoseEstimation & session) == 2, model.PoseEstimation.jobs.errors.to_dicts()
    for t, version in zip(tasks, ["3.x", "unknown"], strict=True):  # the CSV has no _meta
        row = (model.PoseEstimation & t).fetch1()
        assert row["scorer"] == registered["scorer"] and row["nframes"] == 40
        assert row["engine_version"] == f"deeplabcut {version}"
        assert all(not f.startswith("/") for f in row["output_files"])
    assert (model.PoseEstimationTask & tasks[0]).fetch1("output_dir") == \
        "openfield_sessions/day1/dlc"
    h5_pose = dlc.read_dlc_h5(last.outputs[0].h5)
    csv_pose = model.PoseEstimation.fetch_pose(tasks[1])
    assert abs(csv_pose.position - h5_pose.position).max() < 1e-3

    # labelled video: exact source rate, written under the processed root, no SIGTERM noise
    capfd.readouterr()
    options = model.LabeledVideoParamSet.insert_new_params("dots", {"dotsize": 2})
    model.LabeledVideoTask.insert1({**tasks[0], "labeled_video_paramset_idx": options})
    model.LabeledVideo.populate(tasks[0], reserve_jobs=True, suppress_errors=True)
    assert (model.LabeledVideo & tasks[0]), model.LabeledVideo.jobs.errors.to_dicts()
    out, err = capfd.readouterr()
    assert "SIGTERM" not in out + err and "Video metadata" not in out + err
    labelled = model.roots().processed((model.LabeledVideo.File & tasks[0]).fetch1("file_path"))
    info = probe_video(labelled)
    assert info.fps == FPS and info.n_frames == 40

    # export: NWB carries the DeepLabCut version of the loaded outputs
    from element_pose.export.nwb import read_pose_from_nwb

    files = pipeline.publish.export_nwb(tasks[0], tmp_path / "nwb")
    pose = read_pose_from_nwb(files[0].path)
    assert pose.source_software_version == "3.x"
    assert abs(pose.position - h5_pose.position).max() < 1e-3
