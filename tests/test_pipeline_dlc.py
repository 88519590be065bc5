"""The whole DeepLabCut 3 loop through populate(): train, register, evaluate, infer, draw.

Real DeepLabCut on the CPU, offline (random initialisation), on a tiny generated
project. Training runs once per module.
"""

from __future__ import annotations

import datetime
import json

import numpy as np
import pytest

from element_pose import sample
from element_pose.ops.demo import QUICK_TRAINING_PARAMS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("pipeline")]
PARAMS = {**QUICK_TRAINING_PARAMS, "device": "cpu"}


@pytest.fixture(scope="module")
def trained(pipeline, raw_root):
    """A trained, registered and evaluated model, and a session recording."""
    model, train = pipeline.model, pipeline.train
    project = sample.make_dlc_project(raw_root / "dlc_e2e", n_frames=60, n_labeled=24)
    train.VideoSet.insert_from_project(900, project)
    paramset = train.TrainingParamSet.insert_new_params("e2e tiny", PARAMS)
    task = {"video_set_id": 900, "paramset_idx": paramset, "training_id": 0}
    train.TrainingTask.insert1({**task, "project_path": "dlc_e2e"})
    train.ModelTraining.populate(task, reserve_jobs=True, suppress_errors=True)
    assert (train.ModelTraining & task), train.ModelTraining.jobs.errors.to_dicts()
    model_key = train.ModelTraining.register_model(task, "e2e_model")
    model.ModelEvaluation.populate(model_key)

    pipeline.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": "e2e", "sex": "M"})
    session = {"subject": "e2e", "session_id": 1}
    pipeline.session.Session.insert1({**session,
                                      "session_datetime": datetime.datetime(2026, 4, 1)})
    video = raw_root / "e2e_session" / "cam0.mp4"
    truth = sample.make_video(video, n_frames=45, seed=11)
    recording = model.VideoRecording.insert_recording(session, 0, {"device": "cam0"}, [video])
    model.RecordingInfo.populate(recording)
    return {"task": task, "model": model_key, "recording": recording, "truth": truth,
            "project": project}


def test_training_records_snapshots_stats_and_versions(pipeline, trained, processed_root):
    train = pipeline.train
    row = (train.ModelTraining & trained["task"]).fetch1()
    snapshots = (train.ModelTraining.Snapshot & trained["task"]).to_dicts()
    assert {s["epoch"] for s in snapshots} >= {10, 20}
    for s in snapshots:
        assert (processed_root / s["snapshot_path"]).is_file()
    assert row["best_snapshot"] in {s["snapshot_name"] for s in snapshots}
    assert row["device"] == "cpu" and row["train_time"] > 0
    assert row["engine_versions"]["deeplabcut"].startswith("3.")
    assert "torch" in row["engine_versions"]
    assert row["engine"] == "deeplabcut"  # the engine's own facts in its JSON
    assert (row["engine_details"]["shuffle"], row["engine_details"]["trainingsetindex"]) == (1, 0)
    assert row["engine_details"]["model_options"]["shuffle"] == 1
    stats = row["learning_stats"]
    assert len(next(iter(stats.values()))) == 20  # one value per epoch
    # the user's project config was never rewritten
    assert json.dumps(trained["project"].read_text()).count("TrainingFraction") == 1
    assert "dlc-models-pytorch" not in {p.name for p in trained["project"].parent.iterdir()}


def test_evaluation_numbers_are_finite(pipeline, trained):
    row = (pipeline.model.ModelEvaluation & trained["model"]).fetch1()
    assert np.isfinite(row["train_rmse"]) and np.isfinite(row["test_rmse"])
    assert 0 <= row["test_rmse"] < 160  # inside the 160x120 frame
    errors = (pipeline.model.ModelEvaluation.BodyPartError & trained["model"]).to_dicts()
    assert {e["body_part"] for e in errors} == set(sample.DEFAULT_BODYPARTS)


def test_trigger_mode_inference_follows_the_truth(pipeline, trained):
    model = pipeline.model
    task = model.PoseEstimationTask.insert_estimation_task(
        {**trained["recording"], **trained["model"]}, "trigger",
        params={"batch_size": 4, "device": "cpu"})
    model.PoseEstimation.populate(task, reserve_jobs=True, suppress_errors=True)
    assert (model.PoseEstimation & task), model.PoseEstimation.jobs.errors.to_dicts()
    row = (model.PoseEstimation & task).fetch1()
    assert row["nframes"] == 45 and row["device"] == "cpu" and row["batch_size"] == 4
    assert row["processing_fps"] > 0 and row["engine_version"].startswith("deeplabcut 3.")
    assert len(model.PoseEstimation.BodyPartPosition & task) == 4
    pose = model.PoseEstimation.fetch_pose(task)
    truth = trained["truth"].position
    error = np.linalg.norm(pose.position - truth, axis=-1)
    constant = np.linalg.norm(truth - np.nanmean(truth, axis=0), axis=-1)
    assert np.nanmedian(error) < 0.5 * np.nanmedian(constant)

    # labelled video of that estimation, stored relative to the processed root
    options = model.LabeledVideoParamSet.insert_new_params(
        "dots", {"pcutoff": 0.1, "dotsize": 3, "draw_skeleton": True, "trailpoints": 2})
    model.LabeledVideoTask.insert1({**task, "labeled_video_paramset_idx": options})
    model.LabeledVideo.populate(task, reserve_jobs=True, suppress_errors=True)
    assert (model.LabeledVideo & task), model.LabeledVideo.jobs.errors.to_dicts()
    path = (model.LabeledVideo.File & task).fetch1("file_path")
    absolute = model.roots().processed(path)
    assert not path.startswith("/") and absolute.stat().st_size > 1000
    from element_pose.io.video import probe_video

    assert probe_video(absolute).n_frames == 45


def test_fine_tune_from_a_registered_model(pipeline, trained):
    train = pipeline.train
    params = {**PARAMS, "epochs": 2, "save_epochs": 2, "weight_init": {"model": "e2e_model"}}
    paramset = train.TrainingParamSet.insert_new_params("fine-tune", params)
    task = {"video_set_id": 900, "paramset_idx": paramset, "training_id": 1}
    train.TrainingTask.insert1({**task, "project_path": "dlc_e2e"})
    train.ModelTraining.populate(task, reserve_jobs=True, suppress_errors=True)
    assert (train.ModelTraining & task), train.ModelTraining.jobs.errors.to_dicts()
    config = (train.ModelTraining & task).fetch1("training_config")
    init = config["train_settings"]["weight_init"]
    assert init["snapshot_path"].endswith(".pt") and "videoset900_param" in init["snapshot_path"]


# ------------------------------------------------------------------ bad input
def _error(table, key) -> str:
    result = table.populate(key, reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 0 and not (table & key)
    return (table.jobs.errors & key).fetch1("error_message")


def test_empty_video_set_is_an_error(pipeline, trained):
    train = pipeline.train
    train.VideoSet.insert1({"video_set_id": 901})
    task = {"video_set_id": 901, "paramset_idx": trained["task"]["paramset_idx"],
            "training_id": 0}
    train.TrainingTask.insert1({**task, "project_path": "dlc_e2e"})
    assert "is empty" in _error(train.ModelTraining, task)


def test_missing_snapshot_is_refused_at_registration(pipeline, trained):
    from element_pose.engines.deeplabcut import EngineError

    model = pipeline.model
    config = model.Model.config_path(trained["model"])
    with pytest.raises(EngineError, match="no snapshot of epoch 999"):
        model.Model.insert_new_model("e2e_missing_snapshot", config, snapshot=999)
    assert not (model.Model & {"model_name": "e2e_missing_snapshot"})


def test_unreadable_video_is_an_error_and_retry_works(pipeline, trained, raw_root):
    model = pipeline.model
    video = raw_root / "e2e_session" / "broken.mp4"
    sample.make_video(video, n_frames=10, seed=2)
    recording = model.VideoRecording.insert_recording(
        {"subject": "e2e", "session_id": 1}, 1, {"device": "cam0"}, [video])
    model.RecordingInfo.populate(recording)
    good = video.read_bytes()
    video.write_bytes(b"\x00" * 2048)
    task = model.PoseEstimationTask.insert_estimation_task(
        {**recording, **trained["model"]}, "trigger", params={"device": "cpu"})
    assert "broken.mp4" in _error(model.PoseEstimation, task)
    assert not (model.PoseEstimation.BodyPartPosition & task)
    video.write_bytes(good)
    (model.PoseEstimation.jobs & task).delete_quick()
    model.PoseEstimation.populate(task, reserve_jobs=True)
    assert (model.PoseEstimation & task).fetch1("nframes") == 10


def test_nwb_training_frames_are_those_of_the_trained_set(pipeline, trained, raw_root,
                                                         tmp_path):
    """A DeepLabCut model trained through the tables exports the labels of the VideoSet it
    was trained on as PoseTraining (as a SLEAP one does: test_publish_sleap_training)."""
    from pynwb import NWBHDF5IO

    from element_pose.export.nwb import check_nwb

    model, train = pipeline.model, pipeline.train
    pipeline.lab.Lab.insert1({"lab": "e2elab", "lab_name": "E2E Lab", "institution": "Uni",
                              "time_zone": "Europe/Zurich"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": "e2enwb", "sex": "F",
                                      "species": "Mus musculus",
                                      "subject_birth_date": datetime.date(2025, 9, 1)})
    pipeline.subject.Subject.Lab.insert1({"subject": "e2enwb", "lab": "e2elab"})
    session = {"subject": "e2enwb", "session_id": 1}
    pipeline.session.Session.insert1({**session, "session_datetime":
                                      datetime.datetime(2026, 4, 2, 9, 0),
                                      "session_description": "open field"})
    video = raw_root / "e2e_nwb" / "cam0.mp4"
    sample.make_video(video, n_frames=8, seed=12)
    recording = model.VideoRecording.insert_recording(session, 0, {"device": "cam0"}, [video])
    model.RecordingInfo.populate(recording)
    task = model.PoseEstimationTask.insert_estimation_task(
        {**recording, **trained["model"]}, "trigger", params={"batch_size": 4, "device": "cpu"})
    model.PoseEstimation.populate(task, suppress_errors=False)
    (exported,) = pipeline.publish.export_nwb(session, tmp_path, include_training=True)
    labels = train.VideoSet.label_set({"video_set_id": 900})
    with NWBHDF5IO(str(exported.path), "r", load_namespaces=True) as io:
        behavior = io.read().processing["behavior"]
        (training,) = [c for c in behavior.data_interfaces.values()
                       if type(c).__name__ == "PoseTraining"]
        frames = training.training_frames.training_frames
        assert set(frames) == {f"{f.split('/')[1]}_{f.split('/')[2][:-4]}"
                               for f in labels.frames}
        for r, f in enumerate(labels.frames):
            (instance,) = frames[f"{f.split('/')[1]}_{f.split('/')[2][:-4]}"].skeleton_instances \
                .skeleton_instances.values()
            assert [str(n) for n in instance.skeleton.nodes[:]] == labels.keypoints
            np.testing.assert_allclose(instance.node_locations[:], labels.xy[r, 0])
    check_nwb(exported.path)
