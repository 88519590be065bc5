"""The model schema on a real database: recordings, models, load-mode pose estimation."""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from element_pose import sample
from element_pose.io import dlc

pytestmark = pytest.mark.usefixtures("pipeline")


def _session(pipeline, name: str) -> dict:
    pipeline.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1(
        {"subject": name, "sex": "M", "species": "Mus musculus",
         "subject_birth_date": datetime.date(2025, 1, 1)})
    key = {"subject": name, "session_id": 1}
    pipeline.session.Session.insert1({**key, "session_datetime": datetime.datetime(2026, 1, 2)})
    return key


@pytest.fixture
def project(raw_root, unique) -> Path:
    """A tiny DeepLabCut project (config + labelled frames)."""
    return sample.make_dlc_project(raw_root / f"project_{unique}", n_frames=20, n_labeled=4)


@pytest.fixture
def recording(pipeline, raw_root, processed_root, unique, project):
    """A session with a 2-file recording, its truth, a model and load-mode outputs."""
    session_key = _session(pipeline, f"m{unique}")
    folder = raw_root / f"session_{unique}"
    truths = [sample.make_video(folder / f"part{i}.mp4", n_frames=30 + 10 * i, seed=i)
              for i in range(2)]
    key = pipeline.model.VideoRecording.insert_recording(
        session_key, 0, {"device": "cam0"}, [folder / "part0.mp4", folder / "part1.mp4"])
    outputs = processed_root / f"outputs_{unique}"
    for i, truth in enumerate(truths):
        sample.make_dlc_output(truth, folder / f"part{i}.mp4", outputs, seed=i)
    model_key = pipeline.model.Model.insert_new_model(f"model_{unique}", project, shuffle=1)
    return {"key": key, "model": model_key, "truths": truths, "outputs": outputs,
            "folder": folder, "project": project}


def test_recording_paths_are_relative_and_info_is_probed(pipeline, recording, raw_root):
    model = pipeline.model
    key = recording["key"]
    paths = (model.VideoRecording.File & key).to_arrays("file_path", order_by="file_id")
    assert all(not Path(p).is_absolute() for p in paths)
    assert paths[0] == f"{recording['folder'].name}/part0.mp4"
    model.RecordingInfo.populate(key)
    info = (model.RecordingInfo & key).fetch1()
    assert (info["px_width"], info["px_height"], info["nframes"]) == (160, 120, 70)
    assert info["fps"] == pytest.approx(30.0)
    assert info["recording_duration"] == pytest.approx(70 / 30)
    timestamps = np.asarray(info["timestamps"])
    assert timestamps.shape == (70,)
    assert np.allclose(np.diff(timestamps), 1 / 30, atol=1e-6)
    offsets = (model.RecordingInfo.File & key).to_arrays("frame_offset", order_by="file_id")
    assert list(offsets) == [0, 30]


def test_recording_outside_roots_is_refused(pipeline, unique, tmp_path):
    from element_pose.core.paths import PathError

    session_key = _session(pipeline, f"o{unique}")
    video = tmp_path / "elsewhere.mp4"
    sample.make_video(video, n_frames=5)
    with pytest.raises(PathError, match="outside the configured root"):
        pipeline.model.VideoRecording.insert_recording(session_key, 0, {"device": "cam0"},
                                                       [video])
    assert not (pipeline.model.VideoRecording & session_key)


def test_recording_files_must_agree(pipeline, raw_root, unique):
    session_key = _session(pipeline, f"d{unique}")
    folder = raw_root / f"mixed_{unique}"
    sample.make_video(folder / "a.mp4", n_frames=5, width=160, height=120)
    sample.make_video(folder / "b.mp4", n_frames=5, width=128, height=96)
    key = pipeline.model.VideoRecording.insert_recording(
        session_key, 0, {"device": "cam0"}, [folder / "a.mp4", folder / "b.mp4"])
    result = pipeline.model.RecordingInfo.populate(key, reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 0
    message = (pipeline.model.RecordingInfo.jobs.errors & key).fetch1("error_message")
    assert "b.mp4 is 128x96" in message
    assert not (pipeline.model.RecordingInfo & key)


def test_model_registration_reads_config(pipeline, recording):
    model = pipeline.model
    row = (model.Model & recording["model"]).fetch1()
    options = row["engine_options"]
    assert row["engine"] == "deeplabcut" and not row["multi_animal"]
    assert options["task"] == "demo" and options["shuffle"] == 1
    assert options["train_fraction"] == pytest.approx(0.8)
    assert model.Model.body_parts(recording["model"]) == list(sample.DEFAULT_BODYPARTS)
    assert set(sample.DEFAULT_BODYPARTS) <= set(model.BodyPart.to_arrays("body_part"))
    assert ("nose", "left_ear") in model.Model.skeleton(recording["model"])


def test_model_registration_rejects_bad_config(pipeline, raw_root, unique):
    bad = raw_root / f"bad_{unique}" / "config.yaml"
    bad.parent.mkdir()
    bad.write_text("Task: x\nscorer: y\n")
    with pytest.raises(dlc.DLCFormatError, match="names no body parts"):
        pipeline.model.Model.insert_new_model(f"bad_{unique}", bad)
    assert not (pipeline.model.Model & {"model_name": f"bad_{unique}"})


# DataJoint logs every statement it runs ("Executing SQL:...") at debug level.
_MODEL_TABLES = re.compile(r'FROM [`"][^`"]+[`"]\.[`"]model(__body_part)?[`"]')


def _statements(caplog, call):
    """``call()`` and every statement it ran."""
    with caplog.at_level(logging.DEBUG, logger="datajoint"):
        caplog.clear()
        result = call()
        statements = [r.getMessage() for r in caplog.records
                      if r.getMessage().startswith("Executing SQL:")]
    assert statements, "DataJoint logged no statement: a count would prove nothing"
    return result, statements


def _model_queries(caplog, call):
    """``call()`` and the statements it ran on ``Model`` and ``Model.BodyPart``."""
    result, statements = _statements(caplog, call)
    return result, [q for q in statements if _MODEL_TABLES.search(q)]


def test_model_row_is_fetched_once_per_call(pipeline, recording, caplog):
    """A model's description (and every make_fetch using it): its row and body parts, once."""
    model = pipeline.model
    description, queries = _model_queries(
        caplog, lambda: model.Model.description(recording["model"]))
    assert len(queries) == 2, queries  # the row, the body parts
    assert description.keypoints == list(sample.DEFAULT_BODYPARTS)
    assert ("nose", "left_ear") in description.skeleton
    as_json = json.dumps(description.to_dict(), sort_keys=True)

    task = _load_task(pipeline, recording)
    fetched, queries = _model_queries(caplog, lambda: model.PoseEstimation().make_fetch(task))
    assert len(queries) == 2, queries
    assert fetched[3:5] == ("deeplabcut", as_json)
    fetched, queries = _model_queries(
        caplog, lambda: model.ModelEvaluation().make_fetch(recording["model"]))
    assert len(queries) == 2, queries
    assert fetched == ("deeplabcut", as_json, tuple(sample.DEFAULT_BODYPARTS))
    idx = model.LabeledVideoParamSet.insert_new_params(f"q{task['model_name']}", {})
    video_key = {**task, "labeled_video_paramset_idx": idx}
    fetched, queries = _model_queries(caplog, lambda: model.LabeledVideo().make_fetch(video_key))
    assert len(queries) == 2, queries
    assert fetched[:2] == ("deeplabcut", as_json)

    model.PoseEstimation.populate(task)
    pose, queries = _model_queries(caplog, lambda: model.PoseEstimation.fetch_pose(task))
    assert sum("model__body_part" in q for q in queries) == 1, queries
    assert ("nose", "left_ear") in pose.skeleton


def test_reading_a_pose_takes_three_queries(pipeline, recording, caplog):
    """fetch_pose / get_trajectory: the estimation joined with its recording info and
    model, the model's body parts, the part rows; nothing else per call."""
    model = pipeline.model
    task = _load_task(pipeline, recording)
    model.PoseEstimation.populate(task)
    expected = model.PoseEstimation.fetch_pose(task)  # headings are cached from here on
    pose, statements = _statements(caplog, lambda: model.PoseEstimation.fetch_pose(task))
    assert len(statements) == 3, statements
    assert pose.fps == expected.fps == float((model.RecordingInfo & task).fetch1("fps"))
    assert pose.source_software == "DeepLabCut"
    assert ("nose", "left_ear") in pose.skeleton
    df, statements = _statements(caplog, lambda: model.PoseEstimation.get_trajectory(task))
    assert len(statements) == 3, statements
    assert df.shape == (pose.n_frames, 3 * len(pose.keypoints))
    assert np.array_equal(df.to_numpy()[:, 0], pose.position[:, 0, 0, 0], equal_nan=True)


def _load_task(pipeline, recording, output_dir=None):
    model = pipeline.model
    model.RecordingInfo.populate(recording["key"])
    return model.PoseEstimationTask.insert_estimation_task(
        {**recording["key"], **recording["model"]}, "load",
        output_dir=output_dir or recording["outputs"])


def test_load_mode_ingests_float32_arrays(pipeline, recording):
    model = pipeline.model
    task = _load_task(pipeline, recording)
    model.PoseEstimation.populate(task)
    row = (model.PoseEstimation & task).fetch1()
    assert row["nframes"] == 70
    assert all(not Path(p).is_absolute() for p in row["output_files"])
    # the row is tied to its files by a SHA-256 of their bytes (128 bits kept)
    import hashlib

    digest = hashlib.sha256()
    for rel in row["output_files"]:
        digest.update(model.roots().find(rel).read_bytes())
    assert row["output_checksum"] == digest.hexdigest()[:32]
    parts = (model.PoseEstimation.BodyPartPosition & task).to_dicts()
    assert len(parts) == 4
    x = np.asarray(parts[0]["x"])
    assert x.dtype == np.float32 and x.shape == (70,)
    pose = model.PoseEstimation.fetch_pose(task)
    truth = np.concatenate([t.position for t in recording["truths"]])
    assert pose.position.shape == (70, 1, 4, 2)
    assert np.nanmax(np.abs(pose.position - truth)) < 6  # noise of 1 px
    assert np.allclose(np.diff(pose.time()), 1 / 30, atol=1e-6)


NEUTRAL_TABLES = ("Model", "ModelEvaluation", "PoseEstimationTask", "PoseEstimation")
ENGINE_COLUMNS = {"task", "project_date", "iteration", "shuffle", "trainingsetindex",
                  "train_fraction", "snapshot", "net_type", "pytorch_config"}


def test_tables_name_their_engine_and_no_engine_has_columns(pipeline):
    """A row names its engine; one engine's facts live in its JSON, no table names it."""
    import inspect

    from element_pose.schemas import model, train

    tables = [getattr(model, n) for n in NEUTRAL_TABLES] + [train.ModelTraining]
    for table in tables:
        assert not ENGINE_COLUMNS & set(table.heading.names), table.__name__
    assert {"engine", "engine_options"} <= set(model.Model.heading.names)
    assert {"engine", "engine_details", "training_config"} <= set(
        train.ModelTraining.heading.names)
    assert model.Model.heading.attributes["engine"].default in (None, "")
    for table in (model.Model, train.ModelTraining):
        text = table.definition + inspect.getdoc(table)
        assert "deeplabcut" not in text.lower() and "dlc" not in text.lower(), table.__name__


def test_engine_options_are_stored_and_snapshots_registered_by_them(pipeline, recording,
                                                                    unique):
    """insert_new_model's keyword options reach the engine and are stored as it returns
    them; insert_snapshot reuses them with another snapshot."""
    model = pipeline.model
    key = model.Model.insert_new_model(f"opts_{unique}", recording["project"], "dlc",
                                       shuffle=2, snapshot="last", note="kept")
    row = (model.Model & key).fetch1()
    assert row["engine"] == "deeplabcut"
    assert (row["engine_options"]["shuffle"], row["engine_options"]["snapshot"],
            row["engine_options"]["note"]) == (2, "last", "kept")
    assert "config" not in row["engine_options"]
    assert model.Model.description(key).options["shuffle"] == 2
    other = model.Model.insert_snapshot(key["model_name"], f"opts2_{unique}", 5)
    again = (model.Model & other).fetch1("engine_options")
    assert (again["shuffle"], again["snapshot"], again["note"]) == (2, "5", "kept")


def test_trajectory_is_exactly_the_key(pipeline, recording, processed_root, unique):
    """get_trajectory(key) returns that key's data, not any other estimation's."""
    model = pipeline.model
    task = _load_task(pipeline, recording)
    model.PoseEstimation.populate(task)
    other = model.Model.insert_new_model(f"other_{unique}", recording["project"], shuffle=2)
    other_outputs = processed_root / f"other_{unique}"
    for i, truth in enumerate(recording["truths"]):
        shifted = truth.replace(position=truth.position + 50)
        sample.make_dlc_output(shifted, recording["folder"] / f"part{i}.mp4", other_outputs)
    other_task = model.PoseEstimationTask.insert_estimation_task(
        {**recording["key"], **other}, "load", output_dir=other_outputs)
    model.PoseEstimation.populate(other_task)

    df = model.PoseEstimation.get_trajectory(task)
    df_other = model.PoseEstimation.get_trajectory(other_task)
    assert df.shape == (70, 12)
    assert df.columns.names == ["scorer", "bodyparts", "coords"]
    difference = (df_other.xs("x", level="coords", axis=1).to_numpy()
                  - df.xs("x", level="coords", axis=1).to_numpy())
    assert np.nanmedian(difference) == pytest.approx(50, abs=1)
    with pytest.raises(Exception, match="fetch1"):
        model.PoseEstimation.get_trajectory(recording["key"])  # two estimations match

    ds = model.PoseEstimation.to_xarray(task)
    assert ds["position"].dims == ("time", "space", "keypoints", "individuals")
    assert ds.sizes["time"] == 70 and list(ds["space"].values) == ["x", "y"]


def test_filtered_output_beside_raw_is_ignored(pipeline, recording):
    model = pipeline.model
    for h5 in list(recording["outputs"].glob("*.h5")):
        h5.with_name(h5.stem + "_filtered.h5").write_bytes(h5.read_bytes())
    task = _load_task(pipeline, recording)
    model.PoseEstimation.populate(task)
    files = (model.PoseEstimation & task).fetch1("output_files")
    assert len(files) == 2 and not any("_filtered" in f for f in files)


def test_multi_animal_keeps_individuals(pipeline, raw_root, processed_root, unique):
    model = pipeline.model
    project = sample.make_dlc_project(raw_root / f"ma_{unique}", n_frames=20, n_labeled=4,
                                      n_individuals=3)
    session_key = _session(pipeline, f"ma{unique}")
    video = raw_root / f"ma_{unique}" / "session.mp4"
    truth = sample.make_video(video, n_frames=25, n_individuals=3, seed=3)
    key = model.VideoRecording.insert_recording(session_key, 0, {"device": "cam0"}, [video])
    model_key = model.Model.insert_new_model(f"ma_{unique}", project)
    sample.make_dlc_output(truth, video, processed_root / f"ma_{unique}")
    model.RecordingInfo.populate(key)
    task = model.PoseEstimationTask.insert_estimation_task(
        {**key, **model_key}, "load", output_dir=processed_root / f"ma_{unique}")
    model.PoseEstimation.populate(task)
    assert len(model.PoseEstimation.BodyPartPosition & task) == 3 * 4
    pose = model.PoseEstimation.fetch_pose(task)
    assert pose.individuals == ["animal0", "animal1", "animal2"]
    assert np.nanmax(np.abs(pose.position - truth.position)) < 6
    df = model.PoseEstimation.get_trajectory(task)
    assert df.columns.names == ["scorer", "individuals", "bodyparts", "coords"]


# ------------------------------------------------------------------ bad input
def _populate_error(pipeline, task) -> str:
    model = pipeline.model
    result = model.PoseEstimation.populate(task, reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 0
    assert not (model.PoseEstimation & task)
    assert not (model.PoseEstimation.BodyPartPosition & task)
    return (model.PoseEstimation.jobs.errors & task).fetch1("error_message")


def test_missing_outputs_error_names_video(pipeline, recording):
    for h5 in recording["outputs"].glob("part1*.h5"):
        h5.unlink()
    message = _populate_error(pipeline, _load_task(pipeline, recording))
    assert "no DeepLabCut output for video part1.mp4" in message


def test_truncated_h5_error_names_file(pipeline, recording):
    h5 = next(recording["outputs"].glob("part0*.h5"))
    h5.write_bytes(h5.read_bytes()[:2000])
    message = _populate_error(pipeline, _load_task(pipeline, recording))
    assert "cannot read DeepLabCut output" in message and h5.name in message


def test_body_part_mismatch_error(pipeline, recording):
    h5 = next(recording["outputs"].glob("part0*.h5"))
    pose = dlc.read_dlc_h5(h5)
    renamed = pose.replace(keypoints=["nose", "left_ear", "right_ear", "tail_tip"])
    dlc.write_dlc_h5(renamed, h5)
    message = _populate_error(pipeline, _load_task(pipeline, recording))
    assert "missing ['tail_base'], unexpected ['tail_tip']" in message


def test_frame_count_mismatch_error_then_retry(pipeline, recording):
    model = pipeline.model
    h5 = next(recording["outputs"].glob("part1*.h5"))
    good = h5.read_bytes()
    pose = dlc.read_dlc_h5(h5)
    short = pose.replace(position=pose.position[:-3], confidence=pose.confidence[:-3])
    dlc.write_dlc_h5(short, h5)
    task = _load_task(pipeline, recording)
    message = _populate_error(pipeline, task)
    assert "has 37 frames but its video has 40" in message
    # fix the cause, clear the error, and the next populate succeeds
    h5.write_bytes(good)
    (model.PoseEstimation.jobs & task).delete_quick()
    model.PoseEstimation.populate(task, reserve_jobs=True)
    assert (model.PoseEstimation & task).fetch1("nframes") == 70


def test_missing_output_dir_error(pipeline, recording, processed_root):
    message = _populate_error(
        pipeline, _load_task(pipeline, recording, processed_root / "does_not_exist"))
    assert "output folder not found" in message


# ------------------------------------------------------------------ concurrency
def test_two_processes_populate_without_duplicates(pipeline, raw_root, processed_root, unique,
                                                   project):
    """Two workers with reserve_jobs share the queue: every key once, none lost."""
    model = pipeline.model
    session_key = _session(pipeline, f"c{unique}")
    model_key = model.Model.insert_new_model(f"c_{unique}", project)
    tasks = []
    for i in range(6):
        video = raw_root / f"c_{unique}" / f"v{i}.mp4"
        truth = sample.make_video(video, n_frames=12, seed=i)
        sample.make_dlc_output(truth, video, processed_root / f"c_{unique}")
        key = model.VideoRecording.insert_recording(session_key, i, {"device": "cam0"}, [video])
        model.RecordingInfo.populate(key)
        tasks.append(model.PoseEstimationTask.insert_estimation_task(
            {**key, **model_key}, "load", output_dir=processed_root / f"c_{unique}"))
    model.PoseEstimation.jobs.refresh()  # create the job table before workers race to it
    script = textwrap.dedent(f"""
        import json
        from workflow.pipeline import model
        r = model.PoseEstimation.populate({{"subject": "c{unique}"}}, reserve_jobs=True)
        print(json.dumps(r["success_count"]))
    """)
    workers = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(os.environ))
               for _ in range(2)]
    counts = []
    for w in workers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
        counts.append(int(out.strip().splitlines()[-1]))
    assert sum(counts) == 6
    done = model.PoseEstimation & {"subject": f"c{unique}"}
    assert len(done) == 6
    assert len(model.PoseEstimation.BodyPartPosition & {"subject": f"c{unique}"}) == 6 * 4
