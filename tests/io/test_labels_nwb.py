"""PoseTraining (ndx-pose) from any labelled set: SLEAP labels export like DeepLabCut's."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import numpy as np
import pytest
import sleap_io as sio

from element_pose import sample
from element_pose.export import nwb
from element_pose.io.labels import read_label_set
from element_pose.io.sleap_labels import write_slp

_READ = """
import json, sys
from pynwb import NWBHDF5IO
with NWBHDF5IO(sys.argv[1], "r") as io:
    f = io.read()
    pt = f.processing["behavior"]["PoseTraining"]
    out = {"frames": {}, "videos": {}}
    for name, frame in pt.training_frames.training_frames.items():
        instances = frame.skeleton_instances.skeleton_instances
        out["frames"][name] = {
            "index": int(frame.source_video_frame_index),
            "video": frame.source_video.name,
            "nodes": [str(n) for n in next(iter(instances.values())).skeleton.nodes[:]],
            "xy": {k: v.node_locations[:].tolist() for k, v in instances.items()}}
    for name, series in pt.source_videos.image_series.items():
        out["videos"][name] = [str(p) for p in series.external_file[:]]
print(json.dumps(out))
"""


def _metadata():
    subject = nwb.SubjectMetadata("mouse1", species="Mus musculus", sex="F", age="P90D",
                                  description="test mouse")
    session = nwb.SessionMetadata("session1", dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
                                  description="labels", lab="Pose Lab",
                                  institution="Test Institute", experimenters=["Doe, Jane"],
                                  experiment_description="labels")
    return subject, session


def _read_back(path) -> dict:
    done = subprocess.run([sys.executable, "-c", _READ, str(path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _sleap_labels(tmp_path, bodyparts):
    truth = sample.make_video(tmp_path / "mouse.mp4", 12, 30.0, 64, 48, bodyparts, 1)
    video = sio.Video.from_filename(str(tmp_path / "mouse.mp4"))
    skeleton = sio.Skeleton(nodes=list(bodyparts), edges=[list(bodyparts[:2])])
    frames = [sio.LabeledFrame(video=video, frame_idx=f, instances=[sio.Instance.from_numpy(
        truth.position[f, 0], skeleton=skeleton)]) for f in (3, 7)]
    path = tmp_path / "mouse.slp"
    sio.save_slp(sio.Labels(labeled_frames=frames, videos=[video], skeletons=[skeleton]),
                 str(path))
    return path, truth


def test_sleap_labels_export_as_pose_training(tmp_path):
    bodyparts = tuple(sample.DEFAULT_BODYPARTS)
    path, truth = _sleap_labels(tmp_path, bodyparts)
    labels = read_label_set(path)
    training = nwb.TrainingData.from_label_set(labels, videos={"mouse": tmp_path / "mouse.mp4"},
                                               annotator="Doe, Jane")
    subject, session = _metadata()
    pose = sample.make_video(tmp_path / "rec.mp4", n_frames=12)
    out = nwb.write_nwb(tmp_path / "t.nwb", pose, subject, session, training=training)
    seen = _read_back(out)
    assert sorted(seen["frames"]) == ["mouse_img000003", "mouse_img000007"]
    frame = seen["frames"]["mouse_img000007"]
    assert frame["index"] == 7 and frame["video"] == "mouse"
    assert frame["nodes"] == list(pose.keypoints)
    xy = np.array(frame["xy"]["individual_0"])
    order = [labels.keypoints.index(k) for k in pose.keypoints]
    np.testing.assert_array_equal(xy, labels.xy[1, 0][order])
    np.testing.assert_array_equal(xy, truth.position[7, 0][order].astype(np.float32))
    assert seen["videos"]["mouse"][0].endswith("mouse.mp4")
    nwb.check_nwb(out)  # schema validation and the inspector: nothing critical


def test_embedded_labels_refer_to_their_images(tmp_path):
    bodyparts = tuple(sample.DEFAULT_BODYPARTS)
    path, _ = _sleap_labels(tmp_path, bodyparts)
    package = write_slp(read_label_set(path), tmp_path / "set.pkg.slp")
    labels = read_label_set(package, images_to=tmp_path / "frames")
    subject, session = _metadata()
    pose = sample.make_video(tmp_path / "rec.mp4", n_frames=12)
    out = nwb.write_nwb(tmp_path / "e.nwb", pose, subject, session,
                        training=nwb.TrainingData.from_label_set(labels))
    seen = _read_back(out)
    assert seen["frames"]["mouse_img000003"]["index"] == 0  # first image of the series
    assert [p.rsplit("/", 1)[-1] for p in seen["videos"]["mouse"]] == [
        "img000003.png", "img000007.png"]
    nwb.check_nwb(out)
    # a set whose images are gone, without a video, is refused by name
    labels.root = None
    with pytest.raises(nwb.NWBExportError, match="no video given for labelled video 'mouse'"):
        nwb.write_nwb(tmp_path / "x.nwb", pose, subject, session,
                      training=nwb.TrainingData.from_label_set(labels))
