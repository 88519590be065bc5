"""``element-pose db migrate``: release 0's tables brought to the engine-neutral shapes.

Release 0's ``model`` and ``train`` tables (frozen in ``tests/support/release0_tables.py``)
are declared under a fresh schema prefix and filled; the migration runs through the
command line in a subprocess; then the current schemas are activated on that prefix in
another subprocess (one process binds the element's schemas to one prefix) and every
row and value is read back.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from element_pose.db.config import connect, import_datajoint

TESTS = Path(__file__).parent
REPO = TESTS.parent
PYTORCH_CONFIG = {"net_type": "cspnext_s", "train_settings": {"epochs": 3},
                  "metadata": {"bodyparts": ["nose", "tail"]}}
LEGACY_OPTIONS = {"task": "demo", "project_date": "Jan01", "iteration": 0, "shuffle": 2,
                  "trainingsetindex": 0, "train_fraction": 0.8, "snapshot": "snapshot-003",
                  "net_type": "cspnext_s"}


def _env(prefix: str) -> dict[str, str]:
    path = os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "ELEMENT_POSE_SCHEMA_PREFIX": prefix, "PYTHONPATH": path}


def _cli(prefix: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "element_pose.cli", *args], env=_env(prefix),
                          capture_output=True, text=True, timeout=300)


def _fill_release0(old) -> None:
    """One row in every table of release 0 that the migration touches or that refers
    to a migrated row: a DeepLabCut model, a load-only model, a training, an
    evaluation, a pose estimation."""
    old.release0_link.Session.insert1({"session_id": 1})
    old.release0_link.Device.insert1({"device": "cam0"})
    old.VideoRecording.insert1({"session_id": 1, "recording_id": 0, "device": "cam0"})
    old.VideoRecording.File.insert1({"session_id": 1, "recording_id": 0, "file_id": 0,
                                     "file_path": "s/cam.mp4"})
    old.BodyPart.insert([{"body_part": "nose"}, {"body_part": "tail"}])
    old.Model.insert([
        {"model_name": "dlc_model", "engine": "deeplabcut", **LEGACY_OPTIONS,
         "scorer": "DLC_CspnextS_demoJan01shuffle2_snapshot_3", "multi_animal": False,
         "project_path": "project", "config_template": {"Task": "demo", "skeleton": []},
         "model_description": "trained"},
        {"model_name": "sleap_model", "engine": "sleap", "task": "labels", "project_date": "",
         "iteration": 0, "shuffle": 0, "trainingsetindex": 0, "train_fraction": 0.0,
         "snapshot": "", "scorer": "", "net_type": "", "multi_animal": True,
         "project_path": "labels.slp",
         "config_template": {"engine": "sleap", "options": {"model_type": "unet"}},
         "model_description": ""}])
    old.Model.BodyPart.insert([{"model_name": m, "body_part": b, "body_part_index": i}
                               for m in ("dlc_model", "sleap_model")
                               for i, b in enumerate(("nose", "tail"))])
    old.ModelEvaluation.insert1(
        {"model_name": "dlc_model", "evaluated_snapshot": "snapshot-003", "training_epochs": 3,
         "train_rmse": 1.5, "test_rmse": 2.5, "pcutoff": 0.6, "evaluation_time": 4.0,
         "results_file": "eval/results.csv"}, allow_direct_insert=True)
    old.ModelEvaluation.BodyPartError.insert1(
        {"model_name": "dlc_model", "body_part": "nose", "train_error": 1.0, "test_error": 2.0},
        allow_direct_insert=True)
    old.PoseEstimationTask.insert1({"session_id": 1, "recording_id": 0,
                                    "model_name": "dlc_model", "task_mode": "load"})
    old.PoseEstimation.insert1(
        {"session_id": 1, "recording_id": 0, "model_name": "dlc_model",
         "pose_estimation_time": datetime.datetime(2026, 11, 1, 12, 0), "nframes": 30,
         "scorer": "DLC_x", "output_files": ["s/cam.h5"], "output_checksum": "0" * 32},
        allow_direct_insert=True)
    old.VideoSet.insert1({"video_set_id": 1})
    old.VideoSet.File.insert1({"video_set_id": 1, "file_path": "project/labeled-data/a.h5"})
    old.TrainingParamSet.insert([
        {"paramset_idx": 1, "paramset_desc": "dlc", "param_set_hash": "a" * 32,
         "params": {"net_type": "cspnext_s", "epochs": 3}},
        {"paramset_idx": 2, "paramset_desc": "alias", "param_set_hash": "b" * 32,
         "params": {"engine": "dlc", "epochs": 1}}])
    old.TrainingTask.insert([{"video_set_id": 1, "paramset_idx": p, "training_id": 0,
                              "project_path": "project"} for p in (1, 2)])
    old.ModelTraining.insert([
        {"video_set_id": 1, "paramset_idx": 1, "training_id": 0, "training_dir": "t/p1",
         "config_path": "t/p1/config.yaml", "shuffle": 2, "trainingsetindex": 0,
         "best_snapshot": "snapshot-best-002", "latest_snapshot": "snapshot-003",
         "train_time": 12.5, "device": "cpu", "engine_versions": {"deeplabcut": "3.0.2"},
         "learning_stats": {"step": [1, 2, 3]}, "pytorch_config": PYTORCH_CONFIG},
        {"video_set_id": 1, "paramset_idx": 2, "training_id": 0, "training_dir": "t/p2",
         "config_path": "t/p2/config.yaml", "shuffle": 1, "trainingsetindex": 0,
         "best_snapshot": "snapshot-001", "latest_snapshot": "snapshot-001",
         "train_time": 1.0, "device": "cpu", "engine_versions": {}, "learning_stats": None,
         "pytorch_config": None}],
        allow_direct_insert=True)
    old.ModelTraining.Snapshot.insert1(
        {"video_set_id": 1, "paramset_idx": 1, "training_id": 0, "snapshot_name": "snapshot-003",
         "epoch": 3, "snapshot_path": "t/p1/snapshot-003.pt"}, allow_direct_insert=True)


#: Run after the migration with the current schemas activated on the test's prefix.
READ_BACK = textwrap.dedent("""
    import json, os
    from element_pose.db.config import connect
    from element_pose.schemas import model, train
    from support import release0_link

    connect()
    prefix = os.environ["ELEMENT_POSE_SCHEMA_PREFIX"]
    release0_link.activate(prefix)
    model.activate(prefix + "model", linking_module=release0_link)
    train.activate(prefix + "train", linking_module=release0_link)
    out = {name: table.to_dicts() for name, table in {
        "Model": model.Model, "ModelBodyPart": model.Model.BodyPart,
        "ModelEvaluation": model.ModelEvaluation,
        "BodyPartError": model.ModelEvaluation.BodyPartError,
        "PoseEstimationTask": model.PoseEstimationTask, "PoseEstimation": model.PoseEstimation,
        "ModelTraining": train.ModelTraining, "Snapshot": train.ModelTraining.Snapshot,
        "TrainingTask": train.TrainingTask}.items()}
    out["options"] = {m: model._description((model.Model & {"model_name": m}).fetch1()).options
                      for m in ("dlc_model", "sleap_model")}
    out["headings"] = {"Model": model.Model.heading.names,
                       "ModelTraining": train.ModelTraining.heading.names}
    out["engine_default"] = [model.Model.heading.attributes["engine"].default,
                             train.ModelTraining.heading.attributes["engine"].default]
    print("READ-BACK " + json.dumps(out, default=str))
""")


@pytest.fixture
def release0(db_backend):
    """Release 0's tables on a fresh prefix, filled; dropped afterwards."""
    from support import release0_tables

    connect()
    prefix = f"mig{uuid.uuid4().hex[:6]}_"
    release0_tables.activate(prefix)
    _fill_release0(release0_tables)
    yield prefix, release0_tables
    dj = import_datajoint()
    for name in ("train", "model", "link"):  # dependants first
        dj.Schema(f"{prefix}{name}", create_schema=False).drop(prompt=False)


def _read_back(prefix: str) -> dict:
    run = subprocess.run([sys.executable, "-c", READ_BACK], env=_env(prefix),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("READ-BACK "))
    return json.loads(line.removeprefix("READ-BACK "))


def test_migrate_keeps_every_row_and_value_and_runs_once(release0):
    prefix, _ = release0
    first = _cli(prefix, "db", "migrate")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "moved into engine_options" in first.stdout and "dropped columns" in first.stdout
    assert "ALTER TABLE" in first.stderr  # each statement is logged

    back = _read_back(prefix)
    models = {m["model_name"]: m for m in back["Model"]}
    assert models["dlc_model"]["engine_options"] == LEGACY_OPTIONS
    assert models["dlc_model"]["scorer"] == "DLC_CspnextS_demoJan01shuffle2_snapshot_3"
    assert models["dlc_model"]["config_template"] == {"Task": "demo", "skeleton": []}
    assert models["dlc_model"]["model_description"] == "trained"
    assert models["sleap_model"]["engine"] == "sleap" and models["sleap_model"]["multi_animal"]
    assert models["sleap_model"]["engine_options"]["task"] == "labels"
    assert back["options"]["dlc_model"]["shuffle"] == 2
    assert back["options"]["sleap_model"]["model_type"] == "unet"  # the template's, kept
    assert len(back["ModelBodyPart"]) == 4
    evaluation = back["ModelEvaluation"][0]
    assert (evaluation["train_rmse"], evaluation["test_rmse"], evaluation["pcutoff"]) == (
        1.5, 2.5, 0.6)
    assert back["BodyPartError"][0]["test_error"] == 2.0
    assert back["PoseEstimationTask"][0]["model_name"] == "dlc_model"
    assert back["PoseEstimation"][0]["nframes"] == 30
    assert len(back["TrainingTask"]) == 2 and back["Snapshot"][0]["epoch"] == 3

    runs = {r["paramset_idx"]: r for r in back["ModelTraining"]}
    assert runs[1]["engine"] == runs[2]["engine"] == "deeplabcut"  # default, and an alias
    assert runs[1]["engine_details"] == {
        "shuffle": 2, "trainingsetindex": 0,
        "model_options": {"shuffle": 2, "trainingsetindex": 0, "net_type": "cspnext_s"}}
    assert runs[2]["engine_details"]["model_options"] == {"shuffle": 1, "trainingsetindex": 0}
    assert runs[1]["training_config"] == PYTORCH_CONFIG and runs[2]["training_config"] is None
    assert (runs[1]["best_snapshot"], runs[1]["train_time"], runs[1]["learning_stats"]) == (
        "snapshot-best-002", 12.5, {"step": [1, 2, 3]})
    assert "shuffle" not in back["headings"]["Model"]
    assert not {"shuffle", "trainingsetindex", "pytorch_config"} & set(
        back["headings"]["ModelTraining"])
    assert back["engine_default"] == [None, None]

    second = _cli(prefix, "db", "migrate")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "nothing to migrate" in second.stdout
    assert "ALTER TABLE" not in second.stderr
    assert _read_back(prefix)["Model"] == back["Model"]


def test_migrate_refuses_an_unknown_state_and_changes_nothing(release0):
    prefix, _ = release0
    dj = import_datajoint()
    conn = dj.conn()
    quote = conn.adapter.quote_identifier
    conn.query(f"ALTER TABLE {quote(prefix + 'model')}.{quote('model')} DROP COLUMN "
               f"{quote('net_type')}")  # half of an earlier release
    run = _cli(prefix, "db", "migrate")
    assert run.returncode == 1
    assert "state this migration does not know" in run.stderr and "net_type" in run.stderr
    assert "Nothing was changed" in run.stderr
    def columns(schema: str, table: str) -> set[str]:
        return {c[0] for c in conn.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = %s", (prefix + schema, table)).fetchall()}

    assert "shuffle" in columns("model", "model") and "engine_options" not in columns(
        "model", "model")
    assert "pytorch_config" in columns("train", "__model_training")  # untouched

    missing = _cli(f"nothing{uuid.uuid4().hex[:4]}_", "db", "migrate")
    assert missing.returncode == 1 and "no table model" in missing.stderr
