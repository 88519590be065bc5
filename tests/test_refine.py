"""The refine schema on a real database: frames chosen from estimations, labelling sets."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from element_pose import sample
from element_pose.io import dlc

pytestmark = pytest.mark.usefixtures("pipeline")

JUMP_FRAME = 12  # recording-wide frame of the planted jump (in the first file)


def _session(pipeline, name: str) -> dict:
    pipeline.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1(
        {"subject": name, "sex": "M", "species": "Mus musculus",
         "subject_birth_date": datetime.date(2025, 1, 1)})
    key = {"subject": name, "session_id": 1}
    pipeline.session.Session.insert1({**key, "session_datetime": datetime.datetime(2026, 1, 2)})
    return key


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def estimation(pipeline, raw_root, processed_root, unique):
    """A 2-file recording (30 + 20 frames), a DeepLabCut model, load-mode outputs with a
    planted jump; the estimation populated."""
    model = pipeline.model
    project = sample.make_dlc_project(raw_root / f"project_{unique}", n_frames=20, n_labeled=4)
    session_key = _session(pipeline, f"r{unique}")
    folder = raw_root / f"session_{unique}"
    outputs = processed_root / f"outputs_{unique}"
    for i, n in enumerate((30, 20)):
        truth = sample.make_video(folder / f"part{i}.mp4", n_frames=n, seed=i)
        h5 = sample.make_dlc_output(truth, folder / f"part{i}.mp4", outputs, seed=i,
                                    missing_fraction=0.0)
        if i == 0:  # the nose leaps 40 px at one frame and comes back
            table = pd.read_hdf(h5)
            scorer = table.columns.get_level_values("scorer")[0]
            table.loc[JUMP_FRAME, (scorer, "nose", "x")] += 40.0
            table.to_hdf(h5, key=dlc.H5_KEY, format="table", mode="w")
    key = model.VideoRecording.insert_recording(
        session_key, 0, {"device": "cam0"}, [folder / "part0.mp4", folder / "part1.mp4"])
    model_key = model.Model.insert_new_model(f"model_{unique}", project, shuffle=1)
    model.RecordingInfo.populate(key)
    task = model.PoseEstimationTask.insert_estimation_task(
        {**key, **model_key}, "load", output_dir=outputs)
    model.PoseEstimation.populate(task)
    return {"key": task, "project": project.parent, "folder": folder}


def _params(pipeline, unique: str) -> int:
    return pipeline.refine.OutlierParamSet.insert_new_params(
        f"jump and diversity {unique}",
        {"criteria": [{"criterion": "jump", "epsilon": 15},
                      {"criterion": "kmeans", "n_clusters": 3}],
         "frames_per_video": 4, "min_gap": 1})


def test_frames_chosen_and_written_for_deeplabcut(pipeline, estimation, unique,
                                                   processed_root):
    refine, model = pipeline.refine, pipeline.model
    project_before = _tree_digest(estimation["project"])
    paramset = _params(pipeline, unique)
    selection = refine.FrameSelection.insert_selection(
        estimation["key"], paramset, description="first round")
    refine.SelectedFrames.populate(selection)
    frames = (refine.SelectedFrames.Frame & selection).to_dicts(order_by="frame_index")
    assert (refine.SelectedFrames & selection).fetch1("n_frames") == len(frames) == 4
    picked = {f["frame_index"]: f["criterion"] for f in frames}
    assert {JUMP_FRAME, JUMP_FRAME + 1} & {f for f, c in picked.items() if c == "jump"}
    assert "kmeans" in picked.values()
    assert all(0 <= f < 50 for f in picked)

    refine.LabellingSet.populate(selection)
    row = (refine.LabellingSet & selection).fetch1()
    folder = refine.LabellingSet.folder_path(selection)
    assert row["layout"] == "deeplabcut" and row["n_images"] == 4
    assert folder.is_relative_to(processed_root) and not Path(row["folder"]).is_absolute()
    files = set((refine.LabellingSet.File & selection).to_arrays("file_path"))
    assert files == {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    images = (refine.LabellingSet.Image & selection).to_dicts(order_by="frame_index")
    pose = model.PoseEstimation.fetch_pose(estimation["key"])
    for image in images:  # second file: local index, the file's own folder
        f = image["frame_index"]
        video, local = ("part0", f) if f < 30 else ("part1", f - 30)
        assert image["frame_id"] == f"labeled-data/{video}/img{local:02d}.png"
        assert (folder / image["frame_id"]).is_file()
    cfg = dlc.read_config(folder / "config.yaml")
    assert cfg["project_path"] == str(folder) and cfg["bodyparts"] == list(pose.keypoints)
    assert cfg["scorer"] == "sampler"  # the user's labeller: CollectedData_sampler on save
    for video in {Path(i["frame_id"]).parent.name for i in images}:
        machine = pd.read_hdf(folder / "labeled-data" / video / "machinelabels-iter0.h5",
                              key="df_with_missing")
        assert machine.columns.names == ["scorer", "bodyparts", "coords"]
        assert set(machine.columns.get_level_values("coords")) == {"x", "y", "likelihood"}
        assert machine.columns.get_level_values("scorer")[0] == pose.scorer
        for (_, folder_name, name), values in machine.iterrows():
            f = int(name[3:5]) + (30 if folder_name == "part1" else 0)
            assert np.allclose(values.xs("x", level="coords").to_numpy(),
                               pose.position[f, 0, :, 0])
            assert np.allclose(values.xs("likelihood", level="coords").to_numpy(),
                               pose.confidence[f, 0])
        human = pd.read_hdf(folder / "labeled-data" / video / "CollectedData_sampler.h5")
        assert list(human.index) == list(machine.index)  # to fill in: nothing labelled yet
        assert human.isna().all().all() and "likelihood" not in human.columns.get_level_values(
            "coords")
        # a person accepts the guesses and saves, as napari-deeplabcut does
        accepted = machine.drop(columns="likelihood", level="coords").rename(
            columns={pose.scorer: "sampler"}, level="scorer")
        accepted.to_hdf(folder / "labeled-data" / video / "CollectedData_sampler.h5",
                        key="df_with_missing", mode="w")
    from element_pose.io.labels import read_label_set

    corrected = read_label_set(folder)  # what the next step of the loop reads back
    assert sorted(corrected.frames) == sorted(i["frame_id"] for i in images)
    for frame, xy in zip(corrected.frames, corrected.xy, strict=True):
        f = int(Path(frame).stem[3:]) + (30 if "/part1/" in frame else 0)
        assert np.allclose(xy[0], pose.position[f, 0])
    assert _tree_digest(estimation["project"]) == project_before  # the user's project untouched


def test_sleap_layout_has_predicted_instances(pipeline, estimation, unique):
    import sleap_io as sio

    refine, model = pipeline.refine, pipeline.model
    selection = refine.FrameSelection.insert_selection(
        estimation["key"], _params(pipeline, unique), layout="sleap")
    refine.SelectedFrames.populate(selection)
    refine.LabellingSet.populate(selection)
    folder = refine.LabellingSet.folder_path(selection)
    files = list((refine.LabellingSet.File & selection).to_arrays("file_path"))
    assert files == [f"{folder.name}.pkg.slp"]
    labels = sio.load_slp(str(folder / files[0]))
    pose = model.PoseEstimation.fetch_pose(estimation["key"])
    chosen = sorted((refine.SelectedFrames.Frame & selection).to_arrays("frame_index"))
    assert len(labels.labeled_frames) == len(chosen) == len(labels.suggestions)
    assert all(len(lf.predicted_instances) == 1 and not lf.user_instances
               for lf in labels.labeled_frames)
    predicted = sorted((lf.predicted_instances[0].numpy()[0, 0], lf.image.shape)
                       for lf in labels.labeled_frames)
    expected = sorted((pose.position[f, 0, 0, 0], (120, 160, 3)) for f in chosen)
    assert np.allclose([p[0] for p in predicted], [e[0] for e in expected], atol=1e-4)
    assert {p[1] for p in predicted} == {(120, 160, 3)}


def test_missing_video_fails_clearly_and_writes_nothing(pipeline, estimation, unique):
    refine = pipeline.refine
    selection = refine.FrameSelection.insert_selection(
        estimation["key"], _params(pipeline, unique))
    refine.SelectedFrames.populate(selection)
    video = estimation["folder"] / "part1.mp4"
    video.rename(video.with_suffix(".moved"))
    try:
        result = refine.LabellingSet.populate(selection, reserve_jobs=True,
                                              suppress_errors=True)
    finally:
        video.with_suffix(".moved").rename(video)
    assert result["success_count"] == 0
    message = (refine.LabellingSet.jobs.errors & selection).fetch1("error_message")
    assert "part1.mp4" in message and "not found" in message
    folder = refine.labelling_folder(selection)
    assert not folder.exists()
    assert not list(folder.parent.glob(f".{folder.name}*"))  # no staging left behind
    assert not refine.LabellingSet & selection


def test_selection_is_checked_at_insert(pipeline, estimation, unique):
    from element_pose.processing.outliers import OutlierParamsError

    refine = pipeline.refine
    with pytest.raises(OutlierParamsError, match="epsilon"):
        refine.OutlierParamSet.insert_new_params("bad", {"criteria": [
            {"criterion": "jump", "epsilon": 0}]})
    paramset = _params(pipeline, unique)
    with pytest.raises(ValueError, match="layout 'napari'"):
        refine.FrameSelection.insert_selection(estimation["key"], paramset, layout="napari")
    with pytest.raises(ValueError, match="no pose estimation matches"):
        refine.FrameSelection.insert_selection({"subject": "nobody"}, paramset)
    with pytest.raises(ValueError, match="OutlierParamSet 999"):
        refine.FrameSelection.insert_selection(estimation["key"], 999)
    assert not refine.FrameSelection.Estimation & estimation["key"]


def test_command_line_selects_and_writes(pipeline, estimation, capsys):
    import json

    from element_pose.cli import app as cli

    subject = estimation["key"]["subject"]
    params = json.dumps({"criteria": [{"criterion": "uncertain", "p_bound": 0.5},
                                      {"criterion": "jump", "epsilon": 15}],
                         "frames_per_video": 2})
    assert cli.main(["refine", "select", "--key", f"subject={subject}", "--params", params,
                     "--layout", "deeplabcut", "--description", "from the command line"]) == 0
    printed = capsys.readouterr().out
    selection = int(printed.split("frame selection ", 1)[1].split(" ", 1)[0])
    assert ": 2 frames" in printed and "jump" in printed
    assert cli.main(["refine", "write", "--selection", str(selection)]) == 0
    printed = capsys.readouterr().out
    folder = pipeline.refine.LabellingSet.folder_path({"frame_selection_id": selection})
    assert f"deeplabcut labelling set of 2 frames: {folder}" in printed
    assert (folder / "config.yaml").is_file()
    assert cli.main(["refine", "select", "--key", "subjekt=x", "--paramset", "0"]) == 2
    assert cli.main(["refine", "write", "--selection", "99999"]) == 2
    assert cli.main(["refine", "select", "--key", f"subject={subject}"]) == 2


def test_a_selection_that_chose_nothing_writes_nothing(pipeline, estimation, unique):
    refine = pipeline.refine
    paramset = refine.OutlierParamSet.insert_new_params(
        "nothing is that uncertain", {"criteria": [{"criterion": "uncertain", "p_bound": 0.0}]})
    selection = refine.FrameSelection.insert_selection(estimation["key"], paramset)
    refine.SelectedFrames.populate(selection)
    assert (refine.SelectedFrames & selection).fetch1("n_frames") == 0
    assert not refine.SelectedFrames.Frame & selection
    assert not refine.LabellingSet.key_source & selection
    refine.LabellingSet.populate(selection)
    assert not refine.LabellingSet & selection and not refine.labelling_folder(selection).exists()
