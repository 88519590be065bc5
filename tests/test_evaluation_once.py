"""A snapshot is evaluated once, whatever name its model has (issue 27 item 10b)."""

from __future__ import annotations

import logging

import pytest

from element_pose import sample
from element_pose.ops.demo import QUICK_TRAINING_PARAMS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("pipeline")]
PARAMS = {**QUICK_TRAINING_PARAMS, "device": "cpu", "epochs": 2, "save_epochs": 1,
          "eval_interval": 1}


def test_a_trained_task_registered_twice_is_evaluated_once(pipeline, raw_root, caplog):
    pytest.importorskip("deeplabcut")
    model, train = pipeline.model, pipeline.train
    project = sample.make_dlc_project(raw_root / "dlc_once", n_frames=60, n_labeled=24)
    train.VideoSet.insert_from_project(910, project)
    paramset = train.TrainingParamSet.insert_new_params("evaluate once", PARAMS)
    task = {"video_set_id": 910, "paramset_idx": paramset, "training_id": 0}
    train.TrainingTask.insert1({**task, "project_path": "dlc_once"})
    train.ModelTraining.populate(task, reserve_jobs=True, suppress_errors=True)
    assert (train.ModelTraining & task), train.ModelTraining.jobs.errors.to_dicts()

    first = train.ModelTraining.register_model(task, "once_a")
    work_config = model.roots().processed((train.ModelTraining & task).fetch1("config_path"))
    second = model.Model.insert_new_model("once_b", work_config)
    # the same project: another snapshot is another model, evaluated on its own
    best = (train.ModelTraining & task).fetch1("best_snapshot")
    another = next(str(s) for s in (train.ModelTraining.Snapshot & task).to_arrays(
        "snapshot_name") if s != best)
    other = model.Model.insert_new_model("once_c", work_config, snapshot=another)

    caplog.set_level(logging.INFO)
    keys = [first, second, other]
    model.ModelEvaluation.populate(keys, reserve_jobs=True, suppress_errors=True)
    assert not model.ModelEvaluation.jobs.errors.to_dicts()
    evaluated = [r.getMessage() for r in caplog.records
                 if r.name == "element_pose.engines.deeplabcut.run"
                 and r.getMessage().startswith("evaluating ")]
    assert len(evaluated) == 2, evaluated  # once_a (or once_b) and once_c

    rows = {k["model_name"]: (model.ModelEvaluation & k).fetch1() for k in keys}
    a, b = rows["once_a"], rows["once_b"]
    assert a["evaluated_snapshot"] == b["evaluated_snapshot"]
    assert a["results_file"] == b["results_file"] and a["test_rmse"] == b["test_rmse"]
    assert rows["once_c"]["evaluated_snapshot"] != a["evaluated_snapshot"]
    parts = [len(model.ModelEvaluation.BodyPartError & k) for k in (first, second)]
    assert parts[0] == parts[1] > 0
    assert any("evaluation reused" in r.getMessage() for r in caplog.records)
