"""Validation at the door, through the real tables: bad values never become rows."""

from __future__ import annotations

import datetime
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
def load_task(pipeline, raw_root, processed_root, unique):
    """A one-file recording, a model and a load-mode task over generated outputs."""
    model = pipeline.model
    project = sample.make_dlc_project(raw_root / f"dproject_{unique}", n_frames=20,
                                      n_labeled=4)
    folder = raw_root / f"dsession_{unique}"
    truth = sample.make_video(folder / "cam.mp4", n_frames=30)
    key = model.VideoRecording.insert_recording(
        _session(pipeline, f"d{unique}"), 0, {"device": "cam0"}, [folder / "cam.mp4"])
    outputs = processed_root / f"doutputs_{unique}"
    h5 = sample.make_dlc_output(truth, folder / "cam.mp4", outputs)
    model_key = model.Model.insert_new_model(f"dmodel_{unique}", project)
    model.RecordingInfo.populate(key)
    task = model.PoseEstimationTask.insert_estimation_task(
        {**key, **model_key}, "load", output_dir=outputs)
    return {"task": task, "h5": h5, "model": model_key}


def _populate_error(pipeline, task) -> str:
    model = pipeline.model
    result = model.PoseEstimation.populate(task, reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 0
    assert not (model.PoseEstimation & task)
    assert not (model.PoseEstimation.BodyPartPosition & task)
    return (model.PoseEstimation.jobs.errors & task).fetch1("error_message")


def _edit(h5: Path, **arrays) -> None:
    pose = dlc.read_dlc_h5(h5)
    dlc.write_dlc_h5(pose.replace(**{k: f(pose) for k, f in arrays.items()}), h5)


def _set(array, index, value):
    out = array.copy()
    out[index] = value
    return out


def test_likelihood_out_of_range_is_not_stored(pipeline, load_task):
    _edit(load_task["h5"], confidence=lambda p: _set(p.confidence, (11, 0, 1), 1.5))
    message = _populate_error(pipeline, load_task["task"])
    assert load_task["h5"].name in message and "'left_ear'" in message
    assert "frame 11" in message and "[0, 1]" in message


def test_x_outside_the_frame_is_not_stored(pipeline, load_task):
    # 160 x 120 video: x = 1000 is beyond one frame width from the edge
    _edit(load_task["h5"], position=lambda p: _set(p.position, (4, 0, 0, 0), 1000.0))
    message = _populate_error(pipeline, load_task["task"])
    assert load_task["h5"].name in message and "frame 4" in message
    assert "160 x 120" in message


def test_all_nan_output_is_refused(pipeline, load_task):
    _edit(load_task["h5"], position=lambda p: np.full_like(p.position, np.nan),
          confidence=lambda p: np.full_like(p.confidence, np.nan))
    message = _populate_error(pipeline, load_task["task"])
    assert "NaN" in message and load_task["h5"].name in message
    assert "no detection" in message


@pytest.mark.parametrize("bodyparts, fragment", [
    ("nose", "list of names"),
    (["nose", "nose"], "more than once"),
    (["nose", None], "entry 1"),
    (["nose", "n" * 80], "at most 64"),
])
def test_bad_config_registers_nothing(pipeline, raw_root, unique, bodyparts, fragment):
    import yaml

    config = sample.make_dlc_project(raw_root / f"cfg_{unique}", n_frames=8, n_labeled=2)
    cfg = yaml.safe_load(config.read_text())
    cfg["bodyparts"] = bodyparts
    config.write_text(yaml.safe_dump(cfg))
    body_parts_before = len(pipeline.model.BodyPart())
    with pytest.raises(dlc.DLCFormatError) as err:
        pipeline.model.Model.insert_new_model(f"cfg_{unique}", config)
    assert str(config) in str(err.value) and "'bodyparts'" in str(err.value)
    assert fragment in str(err.value)
    assert not (pipeline.model.Model & {"model_name": f"cfg_{unique}"})
    assert len(pipeline.model.BodyPart()) == body_parts_before


def _long_path(root: Path, total: int) -> Path:
    """A real file whose path below ``root`` has more than ``total`` characters."""
    folder = root
    while len(str(folder.relative_to(root))) < total:
        folder = folder / ("d" * 200)
    folder.mkdir(parents=True)
    path = folder / "cam.mp4"
    path.write_bytes(b"\0" * 16)
    return path


def test_path_longer_than_its_column_is_named(pipeline, raw_root, unique):
    from element_pose.core.paths import PathError

    video = _long_path(raw_root / f"long_{unique}", 1000)
    session_key = _session(pipeline, f"l{unique}")
    with pytest.raises(PathError) as err:
        pipeline.model.VideoRecording.insert_recording(session_key, 0, {"device": "cam0"},
                                                       [video])
    assert str(video) in str(err.value) and "at most 1000" in str(err.value)
    assert not (pipeline.model.VideoRecording & session_key)


def test_labelled_file_longer_than_767_is_named(pipeline, raw_root, unique):
    from element_pose.core.paths import PathError

    project = sample.make_dlc_project(raw_root / f"lp_{unique}", n_frames=8, n_labeled=2)
    long_file = _long_path(project.parent / "labeled-data", 800).with_suffix(".png")
    long_file.write_bytes(b"\0")
    with pytest.raises(PathError, match="at most 767"):
        pipeline.train.VideoSet.insert_from_project(int(unique[:6], 16), project)
    assert not (pipeline.train.VideoSet & {"video_set_id": int(unique[:6], 16)})


def test_names_longer_than_their_columns_are_named(pipeline, raw_root, unique):
    from element_pose.db.limits import ColumnLengthError

    parts = [f"nose_{unique}", f"tail_{unique}"]
    project = sample.make_dlc_project(raw_root / f"ln_{unique}", n_frames=8, n_labeled=2,
                                      bodyparts=parts)
    with pytest.raises(ColumnLengthError, match=r"Model\.model_name holds at most 64"):
        pipeline.model.Model.insert_new_model("m" * 65, project)
    with pytest.raises(ColumnLengthError, match=r"BodyPart\.body_part_description"):
        pipeline.model.Model.insert_new_model(f"ln_{unique}", project,
                                              body_part_descriptions={parts[0]: "n" * 1001})
    with pytest.raises(ColumnLengthError, match=r"Model\.scorer holds at most 255"):
        pipeline.model.Model.insert_new_model(f"ln_{unique}", project, scorer="s" * 300)
    assert not (pipeline.model.Model & {"model_name": f"ln_{unique}"})
    session_key = _session(pipeline, f"ln{unique}")
    video = raw_root / f"ln_{unique}" / "v.mp4"
    video.write_bytes(b"\0")
    with pytest.raises(ColumnLengthError, match=r"VideoRecording\.recording_description"):
        pipeline.model.VideoRecording.insert_recording(session_key, 0, {"device": "cam0"},
                                                       [video], description="x" * 1001)
