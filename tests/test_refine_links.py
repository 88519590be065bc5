"""Labelling sets end to end: videos of one stem, and the layout of SLEAP models.

* Two recordings whose videos share a stem (``dayA/cam.mp4``, ``dayB/cam.mp4``): the
  second ``labeled-data`` folder is ``cam_2``; DeepLabCut's own lookup
  (``get_labeled_data_folder``: a video's folder is ``labeled-data/<video stem>``) finds
  each folder from the set's ``video_sets``, each linking the recording's own video;
  corrections saved in ``cam_2`` import into a new VideoSet version whose frames map
  back (through ``refine.LabellingSet.Image``) to the frames of that recording.
* A selection of a SLEAP estimation with layout ``''`` is written in SLEAP's layout.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from element_pose import sample
from element_pose.io import dlc
from element_pose.io.video import read_frames
from element_pose.ops import iteration

pytestmark = pytest.mark.usefixtures("pipeline")


def _session(pipeline, name: str) -> dict:
    pipeline.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1(
        {"subject": name, "sex": "M", "species": "Mus musculus",
         "subject_birth_date": datetime.date(2025, 1, 1)})
    key = {"subject": name, "session_id": 1}
    pipeline.session.Session.insert1({**key, "session_datetime": datetime.datetime(2026, 1, 2)})
    return key


def test_videos_of_one_stem_link_to_their_folders_and_import(pipeline, raw_root,
                                                             processed_root, unique):
    from deeplabcut.utils.auxiliaryfunctions import get_labeled_data_folder

    model, refine, train = pipeline.model, pipeline.refine, pipeline.train
    config = sample.make_dlc_project(raw_root / f"stem_{unique}" / "project", n_frames=20,
                                     n_labeled=4)
    set_id = 40000 + int(unique, 16) % 100000
    train.VideoSet.insert_from_project(set_id, config)
    model_key = model.Model.insert_new_model(f"stem_{unique}", config)
    session = _session(pipeline, f"stem{unique}")
    for r, day in enumerate(("dayA", "dayB")):
        video = raw_root / f"stem_{unique}" / day / "cam.mp4"
        truth = sample.make_video(video, n_frames=20, seed=r + 5)
        outputs = processed_root / f"stem_{unique}_{day}"
        sample.make_dlc_output(truth, video, outputs, seed=r, missing_fraction=0.0)
        key = model.VideoRecording.insert_recording(session, r, {"device": "cam0"}, [video])
        model.RecordingInfo.populate(key)
        model.PoseEstimationTask.insert_estimation_task({**key, **model_key}, "load",
                                                        output_dir=outputs)
    model.PoseEstimation.populate(session)
    paramset = refine.OutlierParamSet.insert_new_params(
        f"stem kmeans {unique}", {"criteria": [{"criterion": "kmeans", "n_clusters": 2}],
                                  "frames_per_video": 2, "min_gap": 1})
    selection = refine.FrameSelection.insert_selection(session, paramset)
    refine.SelectedFrames.populate(selection)
    refine.LabellingSet.populate(selection, suppress_errors=False)

    folder = refine.LabellingSet.folder_path(selection)
    images = (refine.LabellingSet.Image & selection).to_dicts(order_by="frame_index")
    folders = {Path(i["frame_id"]).parent.name for i in images}
    assert folders == {"cam", "cam_2"}
    cfg = dlc.read_config(folder / "config.yaml")
    linked = {get_labeled_data_folder(cfg, v).name: Path(v) for v in cfg["video_sets"]}
    assert set(linked) == folders  # DeepLabCut finds every folder from video_sets
    for image in images:
        own = model.VideoRecording.file_paths(image)[0]
        name = Path(image["frame_id"]).parent.name
        assert linked[name].resolve() == Path(own).resolve()
        assert (folder / "labeled-data" / name).is_dir()
        pixels = read_frames(linked[name], [image["frame_index"]])[0]
        assert np.array_equal(np.asarray(Image.open(folder / image["frame_id"])), pixels)

    # a person accepts the guesses in cam_2 and saves (as napari-deeplabcut does)
    labelled = folder / "labeled-data" / "cam_2"
    machine = pd.read_hdf(labelled / "machinelabels-iter0.h5", key="df_with_missing")
    scorer = machine.columns.get_level_values("scorer")[0]
    accepted = machine.drop(columns="likelihood", level="coords").rename(
        columns={scorer: cfg["scorer"]}, level="scorer")
    saved = labelled / f"CollectedData_{cfg['scorer']}.h5"
    accepted.to_hdf(saved, key="df_with_missing", mode="w")
    version = iteration.import_corrections(set_id, saved)

    added = train.added_frames(version["video_set_id"])
    cam_2 = {i["frame_id"]: i for i in images if "/cam_2/" in i["frame_id"]}
    assert sorted(added) == sorted(cam_2) and len(added) == 2
    assert "videos/cam_2.mp4" in (train.VideoSet & version).fetch1("video_sets")
    merged = train.VideoSet.label_set(version)
    for frame_id, image in cam_2.items():  # back to the recording's frame
        pose = model.PoseEstimation.fetch_pose(image)
        assert image["recording_id"] == 1
        np.testing.assert_allclose(merged.xy[merged.frames.index(frame_id), 0],
                                   pose.position[image["frame_index"], 0], atol=1e-3)


@pytest.mark.slow
def test_a_sleap_estimation_gets_the_sleap_layout(pipeline, raw_root, unique):
    """FrameSelection layout ``''`` and a real SLEAP estimation (a tiny sleap-nn model run
    by PoseEstimation): the labelling set is a ``.pkg.slp`` of the chosen frames with the
    estimation's positions as predicted instances."""
    import sleap_io as sio
    from support.sleap_models import HEIGHT, WIDTH, train_tiny_model

    model, refine = pipeline.model, pipeline.refine
    trained = train_tiny_model(raw_root / f"sleaplay_{unique}", epochs=2)
    model_key = model.Model.insert_new_model(f"sleaplay_{unique}", trained, "sleap")
    session = _session(pipeline, f"sl{unique}")
    video = raw_root / f"sleaplay_{unique}" / "session" / "cam.mp4"
    sample.make_video(video, n_frames=20, width=WIDTH, height=HEIGHT, seed=4)
    recording = model.VideoRecording.insert_recording(session, 0, {"device": "cam0"}, [video])
    model.RecordingInfo.populate(recording)
    task = model.PoseEstimationTask.insert_estimation_task(
        {**recording, **model_key}, "trigger", params={"device": "cpu", "batch_size": 4})
    model.PoseEstimation.populate(task, suppress_errors=False)
    paramset = refine.OutlierParamSet.insert_new_params(
        f"sleap kmeans {unique}", {"criteria": [{"criterion": "kmeans", "n_clusters": 3}],
                                   "frames_per_video": 3, "min_gap": 1})
    selection = refine.FrameSelection.insert_selection(task, paramset)
    assert (refine.FrameSelection & selection).fetch1("layout") == ""
    refine.SelectedFrames.populate(selection)
    refine.LabellingSet.populate(selection, suppress_errors=False)

    row = (refine.LabellingSet & selection).fetch1()
    assert row["layout"] == "sleap" and row["n_images"] == 3
    folder = refine.LabellingSet.folder_path(selection)
    slp = folder / f"{folder.name}.pkg.slp"
    assert set((refine.LabellingSet.File & selection).to_arrays("file_path")) == {slp.name}
    labels = sio.load_slp(str(slp))
    assert labels.skeleton.node_names == model.Model.body_parts(model_key)
    predicted = [inst.numpy() for lf in labels.labeled_frames for inst in lf.instances
                 if isinstance(inst, sio.PredictedInstance)]
    assert len(labels.labeled_frames) == len(predicted) == 3
    pose = model.PoseEstimation.fetch_pose(task)
    for image in (refine.LabellingSet.Image & selection).to_dicts():
        truth = pose.position[image["frame_index"], 0]
        assert any(np.allclose(p, truth, atol=1e-3, equal_nan=True) for p in predicted)
