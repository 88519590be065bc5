"""SLEAP trained, registered and evaluated through the same tables as DeepLabCut.

A labelled DeepLabCut project becomes a VideoSet; a TrainingParamSet with
``engine: sleap`` (checked by the engine's own parameter model at insert) makes
ModelTraining train a sleap-nn model; the run is registered as a Model of engine
``sleap`` (body parts and skeleton kept) and ModelEvaluation evaluates it, with no
schema edit for the engine.
"""

from __future__ import annotations

import numpy as np
import pytest

from element_pose import sample
from element_pose.core.labels import held_out

pytestmark = pytest.mark.usefixtures("pipeline")

#: Quick but learning parameters (see test_sleap_engine).
QUICK = {"engine": "sleap", "epochs": 6, "min_train_steps_per_epoch": 20, "filters": 16,
         "max_stride": 16, "learning_rate": 3e-3, "batch_size": 4, "device": "cpu"}


def test_sleap_trains_registers_and_evaluates_through_the_tables(pipeline, raw_root, unique,
                                                                 monkeypatch):
    monkeypatch.delenv("ELEMENT_POSE_DEVICE", raising=False)
    train, model = pipeline.train, pipeline.model
    config = sample.make_dlc_project(raw_root / f"sleaptab_{unique}", n_frames=40,
                                     n_labeled=20, width=128, height=96)
    set_id = int(unique, 16) % 100000
    train.VideoSet.insert_from_project(set_id, config, engine="sleap")  # its folder check

    # the engine's parameter model checks them at insert, naming the key
    with pytest.raises(ValueError, match="model_type"):
        train.TrainingParamSet.insert_new_params(f"sleap bad {unique}",
                                                 {**QUICK, "model_type": "centroids"})
    with pytest.raises(ValueError, match="filters"):
        train.TrainingParamSet.insert_new_params(f"sleap bad {unique}",
                                                 {**QUICK, "filters": 0})
    idx = train.TrainingParamSet.insert_new_params(f"sleap {unique}", QUICK)
    task = {"video_set_id": set_id, "paramset_idx": idx, "training_id": 0}
    train.TrainingTask.insert1({**task, "project_path": f"sleaptab_{unique}"})
    train.ModelTraining.populate(task, suppress_errors=False)

    row = (train.ModelTraining & task).fetch1()
    assert row["engine"] == "sleap" and row["device"] == "cpu"
    assert row["best_snapshot"] == "best" and row["latest_snapshot"] == "last"
    assert row["config_path"].endswith("/model")
    details = row["engine_details"]
    assert details["model_type"] == "single_instance"
    assert details["model_options"]["model_type"] == "single_instance"
    frames = [f"labeled-data/demo_video0/img{i:04d}.png"
              for i in np.linspace(0, 39, 20).astype(int)]  # as make_dlc_project picks
    assert details["test_frames"] == [f for f, t in zip(frames, held_out(frames), strict=True)
                                      if t]
    assert len(row["learning_stats"]["epoch"]) == QUICK["epochs"]
    assert "single_instance" in row["training_config"]
    snapshots = {r["snapshot_name"]: r for r in (train.ModelTraining.Snapshot & task).to_dicts()}
    assert set(snapshots) == {"best", "last"} and snapshots["last"]["epoch"] == QUICK["epochs"]
    snapshot = snapshots["best"]
    assert 1 <= snapshot["epoch"] <= QUICK["epochs"]
    assert snapshot["snapshot_path"].endswith("single_instance/best.ckpt")

    key = train.ModelTraining.register_model(task, f"sleaptab_{unique}")
    registered = (model.Model & key).fetch1()
    assert registered["engine"] == "sleap" and not registered["multi_animal"]
    assert registered["engine_options"]["model_type"] == "single_instance"
    assert model.Model.body_parts(key) == list(sample.DEFAULT_BODYPARTS)
    assert ("nose", "left_ear") in model.Model.skeleton(key)
    assert (train.TrainedModel & key).fetch1("paramset_idx") == idx

    # a trained SLEAP model is queued for evaluation and evaluated by its engine
    assert model.ModelEvaluation.key_source & key
    model.ModelEvaluation.populate(key, suppress_errors=False)
    evaluation = (model.ModelEvaluation & key).fetch1()
    assert evaluation["evaluated_snapshot"] == "best"
    assert evaluation["training_epochs"] == snapshot["epoch"]
    assert evaluation["test_rmse"] < 5 and evaluation["train_rmse"] < 5  # ~0.6 px measured
    assert evaluation["results_file"].endswith("evaluation/best/scores.json")
    parts = (model.ModelEvaluation.BodyPartError & key).to_dicts()
    assert {p["body_part"] for p in parts} == set(sample.DEFAULT_BODYPARTS)
    assert all(p["test_error"] < 5 for p in parts)
    # element-pose's own scores of the predictions, as for every engine, agree with
    # sleap-nn's (one matched instance per frame: the same distances)
    accuracy = {r["split"]: r for r in (model.ModelEvaluation.Accuracy & key).to_dicts()}
    assert set(accuracy) == {"train", "test"}
    assert accuracy["test"]["rmse"] == pytest.approx(evaluation["test_rmse"], rel=1e-6)
    assert accuracy["train"]["rmse"] == pytest.approx(evaluation["train_rmse"], rel=1e-6)
    assert accuracy["test"]["n_predicted"] == accuracy["test"]["n_labelled"]
    assert accuracy["test"]["n_frames"] == len(details["test_frames"])
    assert accuracy["test"]["pck_10"] > 0.9
    assert len(model.ModelEvaluation.BodyPartAccuracy & key) == 2 * len(sample.DEFAULT_BODYPARTS)

    # a further run fine-tunes from the registered model (a refinement iteration)
    tuned_idx = train.TrainingParamSet.insert_new_params(f"sleap tuned {unique}", {
        **QUICK, "epochs": 1, "min_train_steps_per_epoch": 2,
        "weight_init": {"model": f"sleaptab_{unique}"}})
    tuned = {"video_set_id": set_id, "paramset_idx": tuned_idx, "training_id": 1}
    train.TrainingTask.insert1({**tuned, "project_path": f"sleaptab_{unique}"})
    train.ModelTraining.populate(tuned, suppress_errors=False)
    started = (train.ModelTraining & tuned).fetch1("training_config")
    assert started["single_instance"]["model_config"]["pretrained_backbone_weights"].endswith(
        snapshot["snapshot_path"])


def test_a_sleap_labelled_videoset_trains_a_multi_animal_model(pipeline, raw_root, unique,
                                                               monkeypatch):
    """A VideoSet of SLEAP labels (a .slp and its video) trains bottom-up through the tables;
    the tracks are the registered model's individuals."""
    from support.sleap_models import make_labels

    monkeypatch.delenv("ELEMENT_POSE_DEVICE", raising=False)
    train, model = pipeline.train, pipeline.model
    slp = make_labels(raw_root / f"sleapslp_{unique}", n_individuals=2, n_frames=40, step=2)
    set_id = int(unique, 16) % 100000
    train.VideoSet.insert_from_slp(set_id, slp)
    assert len(train.VideoSet.File & {"video_set_id": set_id}) == 2  # the .slp, its video
    idx = train.TrainingParamSet.insert_new_params(f"sleap bu {unique}",
                                                   {**QUICK, "model_type": "bottomup"})
    task = {"video_set_id": set_id, "paramset_idx": idx, "training_id": 0}
    train.TrainingTask.insert1({**task, "project_path": f"sleapslp_{unique}"})
    train.ModelTraining.populate(task, suppress_errors=False)
    row = (train.ModelTraining & task).fetch1()
    assert row["engine"] == "sleap" and row["engine_details"]["model_type"] == "bottomup"
    key = train.ModelTraining.register_model(task, f"sleapslp_{unique}")
    registered = (model.Model & key).fetch1()
    assert registered["multi_animal"]
    assert model.Model.description(key).individuals == ["animal0", "animal1"]
    model.ModelEvaluation.populate(key, suppress_errors=False)
    evaluation = (model.ModelEvaluation & key).fetch1()
    assert evaluation["evaluated_snapshot"] == "best" and evaluation["train_rmse"] is not None
