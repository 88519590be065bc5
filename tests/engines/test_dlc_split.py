"""DeepLabCut trains on element-pose's held-out split (issue 28 item 1).

The training dataset DeepLabCut makes (its ``Documentation_data-*.pickle``) must hold
out exactly the frames :func:`element_pose.core.labels.held_out` holds out for every
engine, whatever the order DeepLabCut merges the labelled videos in.
"""

from __future__ import annotations

import pytest

from element_pose import sample
from element_pose.core.labels import held_out
from element_pose.engines import deeplabcut as dlc_engine
from element_pose.engines.deeplabcut.split import dataset_split, labelled_frame_ids
from element_pose.io import dlc as dlc_io

PARAMS = {"net_type": "cspnext_s", "weight_init": "random", "train_fraction": 0.8,
          "device": "cpu"}


@pytest.fixture
def two_video_project(tmp_path):
    return sample.make_dlc_project(tmp_path / "user", n_videos=2, n_frames=30, n_labeled=12,
                                   width=64, height=48)


def test_frame_ids_follow_deeplabcuts_merged_order(two_video_project):
    frames = labelled_frame_ids(two_video_project)
    assert len(frames) == 24
    assert frames == sorted(frames)
    assert all(f.startswith("labeled-data/demo_video") and f.endswith(".png") for f in frames)
    assert all((two_video_project.parent / f).is_file() for f in frames)


def test_the_shuffle_holds_out_element_poses_frames(two_video_project, tmp_path):
    before = two_video_project.read_text()
    config = dlc_engine.prepare_training_project(two_video_project, tmp_path / "work", PARAMS)
    frames = labelled_frame_ids(config)
    test = held_out(frames, 0.2)
    train_ids, test_ids = dataset_split(config)
    assert sorted(test_ids) == [f for f, t in zip(frames, test, strict=True) if t]
    assert sorted(train_ids) == [f for f, t in zip(frames, test, strict=True) if not t]
    assert test_ids and train_ids
    # the copy's TrainingFraction is the split's; the user's config is untouched
    frac = dlc_io.read_config(config)["TrainingFraction"]
    assert frac == [round(len(train_ids) / len(frames), 2)]
    assert two_video_project.read_text() == before
    assert dlc_engine.pytorch_config_path(config).is_file()


def test_train_only_frames_are_never_held_out(two_video_project, tmp_path):
    frames = labelled_frame_ids(two_video_project)
    held = [f for f, t in zip(frames, held_out(frames, 0.2), strict=True) if t]
    config = dlc_engine.prepare_training_project(two_video_project, tmp_path / "work",
                                                 PARAMS, train_only=held[:1])
    train_ids, test_ids = dataset_split(config)
    assert held[0] in train_ids and held[0] not in test_ids
    assert sorted(test_ids) == held[1:] or (len(held) == 1 and test_ids)


def test_an_explicit_split_is_kept(two_video_project, tmp_path):
    params = {**PARAMS, "train_fraction": None, "train_indices": list(range(1, 24)),
              "test_indices": [0]}
    config = dlc_engine.prepare_training_project(two_video_project, tmp_path / "work", params)
    _, test_ids = dataset_split(config)
    assert test_ids == [labelled_frame_ids(config)[0]]
