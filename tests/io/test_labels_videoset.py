"""VideoSet from SLEAP labels, and the LabelSet of a VideoSet (either engine's labels)."""

from __future__ import annotations

import numpy as np
import pytest
import sleap_io as sio

from element_pose import sample
from element_pose.core.labels import LabelSetError
from element_pose.io.dlc_labels_write import write_dlc_project
from element_pose.io.labels import read_label_set
from element_pose.io.sleap_labels import SlpLabelError, write_slp

pytestmark = pytest.mark.usefixtures("pipeline")


def _slp_with_video(folder, skeletons=1):
    folder.mkdir(parents=True)
    truth = sample.make_video(folder / "mouse.mp4", 8, 30.0, 64, 48, ("a", "b", "c"), 1)
    video = sio.Video.from_filename(str(folder / "mouse.mp4"))
    sk = [sio.Skeleton(nodes=["a", "b", "c"], edges=[["a", "b"]], name=f"s{k}")
          for k in range(skeletons)]
    frames = [sio.LabeledFrame(video=video, frame_idx=f, instances=[sio.Instance.from_numpy(
        truth.position[f, 0], skeleton=sk[k % skeletons])]) for k, f in enumerate((2, 6))]
    path = folder / "mouse.slp"
    sio.save_slp(sio.Labels(labeled_frames=frames, videos=[video], skeletons=sk), str(path))
    return path, truth


def test_video_set_from_slp_and_its_label_set(pipeline, raw_root, unique):
    train = pipeline.train
    set_id = int(unique, 16) % 100000 + 200000
    path, truth = _slp_with_video(raw_root / f"slp_{unique}")
    key = train.VideoSet.insert_from_slp(set_id, path, description="sleap labels")
    files = sorted((train.VideoSet.File & key).to_arrays("file_path"))
    assert files == [f"slp_{unique}/mouse.mp4", f"slp_{unique}/mouse.slp"]
    labels = train.VideoSet.label_set(key)
    assert labels.frames == ["mouse/img000002.png", "mouse/img000006.png"]
    assert labels.keypoints == ["a", "b", "c"] and labels.image(labels.frames[1]).is_file()
    assert "videoset" in str(labels.root)
    assert np.array_equal(labels.xy[:, 0], truth.position[[2, 6], 0].astype(np.float32))
    with pytest.raises(LabelSetError, match=r"do not match the model: missing \['d'\]"):
        train.VideoSet.label_set(key, keypoints=["a", "b", "c", "d"])
    # a .pkg.slp with embedded frames registers alone
    pkg = write_slp(labels, raw_root / f"slp_{unique}" / "set.pkg.slp")
    key2 = train.VideoSet.insert_from_slp(set_id + 1, pkg)
    assert (train.VideoSet.File & key2).to_arrays("file_path").tolist() == [
        f"slp_{unique}/set.pkg.slp"]
    again = train.VideoSet.label_set(key2, keypoints=["a", "b", "c"])
    assert np.array_equal(again.xy, labels.xy, equal_nan=True)
    # the same labels as a DeepLabCut project: a VideoSet DeepLabCut trains on
    config = write_dlc_project(labels, raw_root / f"slp_{unique}" / "dlc", "jane")
    key3 = train.VideoSet.insert_from_project(set_id + 2, config)
    as_dlc = train.VideoSet.label_set(key3, keypoints=["a", "b", "c"])
    assert as_dlc.frames == [f"labeled-data/{f}" for f in labels.frames]
    assert np.array_equal(as_dlc.xy, labels.xy, equal_nan=True)


def test_video_set_from_slp_refusals(pipeline, raw_root, unique):
    train = pipeline.train
    set_id = int(unique, 16) % 100000 + 400000
    path, _ = _slp_with_video(raw_root / f"slp2_{unique}", skeletons=2)
    with pytest.raises(SlpLabelError, match="2 skeletons"):
        train.VideoSet.insert_from_slp(set_id, path)
    assert not (train.VideoSet & {"video_set_id": set_id})


def test_label_set_of_a_dlc_video_set(pipeline, raw_root, unique):
    train = pipeline.train
    set_id = int(unique, 16) % 100000 + 600000
    config = sample.make_dlc_project(raw_root / f"vsl_{unique}", n_frames=10, n_labeled=3)
    key = train.VideoSet.insert_from_project(set_id, config)
    labels = train.VideoSet.label_set(key, keypoints=list(sample.DEFAULT_BODYPARTS))
    direct = read_label_set(config)
    assert labels.frames == direct.frames and np.array_equal(labels.xy, direct.xy)
