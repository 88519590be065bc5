"""Labelling sets written from chosen frames: layouts, names, and nothing partly written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from element_pose import sample
from element_pose.core.pose import concatenate
from element_pose.io.dlc import read_config
from element_pose.processing.labelling import (
    LabellingError,
    RecordingFrames,
    image_name,
    write_labelling_set,
)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    truths = [sample.make_video(folder / name / "cam.mp4", n_frames=n, seed=i,
                                n_individuals=2)
              for i, (name, n) in enumerate([("day1", 12), ("day2", 105)])]
    return folder, truths


def _recording(folder, truth, name, frames):
    return RecordingFrames(files=[folder / name / "cam.mp4"], frame_counts=[truth.n_frames],
                           frames=frames, pose=truth)


def test_image_names_pad_as_deeplabcut_does():
    assert image_name(7, 12) == "img07.png"
    assert image_name(7, 105) == "img007.png"
    assert image_name(0, 1) == "img0.png"


def test_multi_animal_sets_with_one_stem_in_two_recordings(videos, tmp_path):
    folder, (a, b) = videos
    recordings = [_recording(folder, a, "day1", [3]), _recording(folder, b, "day2", [5, 100])]
    written = write_labelling_set(tmp_path / "set", recordings, scorer="model-x")
    # both videos are called cam.mp4: distinct labeled-data folders
    assert [i[2] for i in written.images] == ["labeled-data/cam/img03.png",
                                              "labeled-data/cam_2/img005.png",
                                              "labeled-data/cam_2/img100.png"]
    machine = pd.read_hdf(tmp_path / "set/labeled-data/cam_2/machinelabels-iter0.h5")
    assert machine.columns.names == ["scorer", "individuals", "bodyparts", "coords"]
    assert list(machine.columns.get_level_values("individuals").unique()) == a.individuals
    row = machine.loc[("labeled-data", "cam_2", "img100.png")]
    assert np.allclose(row.xs(("animal1", "x"), level=("individuals", "coords")).to_numpy(),
                       b.position[100, 1, :, 0])
    cfg = read_config(tmp_path / "set/config.yaml")  # minimal: no model config given
    assert cfg["multianimalproject"] and cfg["individuals"] == a.individuals
    assert cfg["multianimalbodyparts"] == a.keypoints
    # the renamed folder's video is a link named after the folder (DeepLabCut finds a
    # labelled folder by its video's stem), to the recording's own video
    second = tmp_path / "set" / "videos" / "cam_2.mp4"
    assert set(cfg["video_sets"]) == {str((folder / "day1" / "cam.mp4").resolve()),
                                      str(second)}
    assert second.resolve() == (folder / "day2" / "cam.mp4").resolve()
    assert all(v["crop"] == "0, 160, 0, 120" for v in cfg["video_sets"].values())


def test_a_rewrite_replaces_the_set_and_failures_leave_the_old_one(videos, tmp_path):
    folder, (a, b) = videos
    target = tmp_path / "set"
    write_labelling_set(target, [_recording(folder, b, "day2", [1, 2])])
    write_labelling_set(target, [_recording(folder, b, "day2", [50])])
    assert sorted(p.name for p in (target / "labeled-data/cam").glob("*.png")) == ["img050.png"]
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    longer = concatenate([a, a])  # 24 frames of poses for a 12-frame video
    short = RecordingFrames(files=[folder / "day1/cam.mp4"], frame_counts=[20], frames=[15],
                            pose=longer.replace(position=longer.position[:20],
                                                confidence=longer.confidence[:20]))
    with pytest.raises(LabellingError, match="has no frame 15; nothing was written"):
        write_labelling_set(target, [short])  # the file has 12 frames, not 20
    missing = _recording(folder, a, "nowhere", [1])
    with pytest.raises(LabellingError, match=r"video files not found.*nowhere"):
        write_labelling_set(target, [missing])
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["set"]  # no staging folder left


def test_inputs_are_checked(videos, tmp_path):
    folder, (a, _) = videos
    with pytest.raises(LabellingError, match="unknown labelling layout"):
        write_labelling_set(tmp_path / "x", [_recording(folder, a, "day1", [1])],
                            layout="napari")
    with pytest.raises(LabellingError, match="no frames"):
        write_labelling_set(tmp_path / "x", [_recording(folder, a, "day1", [])])
    with pytest.raises(LabellingError, match="beyond the 12 frames"):
        write_labelling_set(tmp_path / "x", [_recording(folder, a, "day1", [12])])
    other = a.select(keypoints=a.keypoints[:2])
    with pytest.raises(LabellingError, match="same body parts"):
        write_labelling_set(tmp_path / "x", [_recording(folder, a, "day1", [1]),
                                             _recording(folder, other, "day1", [2])])
    assert not (tmp_path / "x").exists()


def test_sleap_layout_embeds_frames_and_tracks(videos, tmp_path):
    import sleap_io as sio

    folder, (a, _) = videos
    written = write_labelling_set(tmp_path / "set", [_recording(folder, a, "day1", [2, 9])],
                                  layout="sleap")
    assert written.files == ["set.pkg.slp"]
    labels = sio.load_slp(str(tmp_path / "set/set.pkg.slp"))
    assert [t.name for t in labels.tracks] == a.individuals
    assert [n.name for n in labels.skeletons[0].nodes] == a.keypoints
    frame = labels.labeled_frames[1]
    assert frame.image.shape == (120, 160, 3)
    by_track = {i.track.name: i.numpy() for i in frame.predicted_instances}
    assert np.allclose(by_track["animal1"], a.position[9, 1], atol=1e-4)
