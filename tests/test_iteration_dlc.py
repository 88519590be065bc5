"""The refinement loop with real DeepLabCut (issue 29): iteration 0 trained, corrected
labels (the generator's truth written as napari-deeplabcut writes it) imported, iteration
1 fine-tuned from iteration 0's snapshot on the merged labels, both scored on the same
held-out frames, iteration 0's estimation superseded and re-run.

CPU, offline, tiny generated project; slow (two trainings).
"""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from element_pose import sample
from element_pose.ops import iteration
from element_pose.ops.demo import QUICK_TRAINING_PARAMS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("pipeline")]
PARAMS = {**QUICK_TRAINING_PARAMS, "device": "cpu"}
N_FRAMES, N_LABELLED = 60, 16
VIDEO = "demo_video0"


def _corrections(project, folder):
    """Frames the project did not label, with the generator's truth, as napari saves
    them (``CollectedData_<scorer>.h5``, key ``df_with_missing``, and ``.csv``)."""
    truth = sample.ground_truth(N_FRAMES)  # what make_dlc_project drew (seed 0)
    labelled = {int(p.stem[3:]) for p in (project / "labeled-data" / VIDEO).glob("img*.png")}
    new = [f for f in range(1, N_FRAMES, 4) if f not in labelled][:8]
    images = sample.render(truth.position[new], 160, 120)
    folder.mkdir(parents=True)
    for f, image in zip(new, images, strict=True):
        Image.fromarray(image).save(folder / f"img{f:04d}.png")
    columns = pd.MultiIndex.from_product([["sampler"], truth.keypoints, ["x", "y"]],
                                         names=["scorer", "bodyparts", "coords"])
    index = pd.MultiIndex.from_tuples([("labeled-data", VIDEO, f"img{f:04d}.png") for f in new])
    table = pd.DataFrame(truth.position[new, 0].reshape(len(new), -1).astype(float),
                         index=index, columns=columns)
    table.to_hdf(folder / "CollectedData_sampler.h5", key="df_with_missing", mode="w")
    table.to_csv(folder / "CollectedData_sampler.csv")
    return folder / "CollectedData_sampler.h5", [f"labeled-data/{VIDEO}/img{f:04d}.png"
                                                 for f in new]


def _split(pipeline, task):
    """(train, test) frame ids a DeepLabCut training run used, read from its dataset."""
    from element_pose.engines.deeplabcut.split import dataset_split

    row = (pipeline.train.ModelTraining & task).fetch1()
    config = pipeline.model.roots().processed(row["config_path"])
    details = row["engine_details"]
    train_ids, test_ids = dataset_split(config, details["shuffle"], details["trainingsetindex"])
    return sorted(train_ids), sorted(test_ids)


def test_dlc_iteration_fine_tunes_keeps_the_held_out_frames_and_supersedes(
        pipeline, raw_root, monkeypatch):
    monkeypatch.delenv("ELEMENT_POSE_DEVICE", raising=False)
    model, train = pipeline.model, pipeline.train
    config = sample.make_dlc_project(raw_root / "dlc_loop", n_frames=N_FRAMES,
                                     n_labeled=N_LABELLED)
    train.VideoSet.insert_from_project(950, config)
    paramset = train.TrainingParamSet.insert_new_params("loop iteration 0", PARAMS)
    first = {"video_set_id": 950, "paramset_idx": paramset, "training_id": 0}
    train.TrainingTask.insert1({**first, "project_path": "dlc_loop"})
    train.ModelTraining.populate(first, reserve_jobs=True, suppress_errors=True)
    assert train.ModelTraining & first, train.ModelTraining.jobs.errors.to_dicts()

    corrected, added = _corrections(config.parent, raw_root / "dlc_loop_napari" /
                                    "labeled-data" / VIDEO)
    version = iteration.import_corrections(950, corrected, imported_by="labeller")
    assert train.added_frames(version["video_set_id"]) == sorted(added)

    second = iteration.next_iteration(first, params={"epochs": 6, "save_epochs": 3},
                                      model_name="loop_dlc_0")
    train.ModelTraining.populate(second, reserve_jobs=True, suppress_errors=True)
    assert train.ModelTraining & second, train.ModelTraining.jobs.errors.to_dicts()
    row = (train.ModelTraining & second).fetch1()
    init = row["training_config"]["train_settings"]["weight_init"]
    first_dir = (train.ModelTraining & first).fetch1("training_dir")
    assert first_dir in init["snapshot_path"]  # fine-tuned from iteration 0's snapshot
    assert init["with_decoder"] is True  # backbone and heads (the same body parts)
    train.ModelTraining.register_model(second, "loop_dlc_1")
    model.ModelEvaluation.populate([{"model_name": "loop_dlc_0"}, {"model_name": "loop_dlc_1"}],
                                   reserve_jobs=True, suppress_errors=True)
    assert not model.ModelEvaluation.jobs.errors.to_dicts()

    # DeepLabCut trained on the added frames and held out the same frames as before
    first_split, second_split = (_split(pipeline, task) for task in (first, second))
    assert set(added) <= set(second_split[0]) and not set(added) & set(second_split[1])
    assert second_split[1] == first_split[1] and first_split[1]

    scores = iteration.lineage_scores(second)  # element-pose's scores of both iterations
    assert sorted(scores["iteration"].unique()) == [0, 1]
    overall = scores[(scores["body_part"] == "") & (scores["split"] == "test")]
    assert len(overall) == 2 and np.isfinite(overall["rmse"].astype(float)).all()
    assert set(scores["body_part"]) == {"", *sample.DEFAULT_BODYPARTS}
    assert {"pck_2", "pck_5", "pck_10"} <= set(scores.columns)
    from element_pose.processing.refinement import lineage_figure

    assert lineage_figure(scores).axes[0].lines
    from element_pose.cli.app import main

    png = raw_root / "dlc_loop_lineage.png"
    assert main(["iteration", "lineage", *map(str, second.values()), "--figure", str(png)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")

    # iteration 0's estimation is superseded and re-run with iteration 1's model
    pipeline.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": "loopdlc", "sex": "M"})
    session = {"subject": "loopdlc", "session_id": 1}
    pipeline.session.Session.insert1({**session,
                                      "session_datetime": datetime.datetime(2026, 4, 1)})
    video = raw_root / "dlc_loop_session" / "cam0.mp4"
    sample.make_video(video, n_frames=20, seed=5)
    recording = model.VideoRecording.insert_recording(session, 0, {"device": "cam0"}, [video])
    model.RecordingInfo.populate(recording)
    old = model.PoseEstimationTask.insert_estimation_task(
        {**recording, "model_name": "loop_dlc_0"}, "trigger",
        params={"batch_size": 4, "device": "cpu"})
    model.PoseEstimation.populate(old, reserve_jobs=True, suppress_errors=True)
    assert model.PoseEstimation & old, model.PoseEstimation.jobs.errors.to_dicts()
    listed = iteration.superseded_estimations(session)
    assert [(r["model_name"], r["newest_model"]) for r in listed] == [("loop_dlc_0",
                                                                       "loop_dlc_1")]
    tasks = iteration.rerun_superseded(session)
    assert (model.PoseEstimation & tasks[0]).fetch1("nframes") == 20
    assert [k["model_name"] for k in iteration.current_estimations(session).keys()] == [
        "loop_dlc_1"]
