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


@pytest.mark.slow
def test_evaluation_reports_predictions_on_the_labelled_frames(tiny_model):
    """The engine's evaluation carries the labels, DeepLabCut's predictions on them
    and the held-out flags, which equal element-pose's split."""
    import numpy as np

    from element_pose.engines import get_engine
    from element_pose.processing.accuracy import score_predictions

    engine = get_engine("deeplabcut")
    result = engine.evaluate(engine.describe_model(tiny_model.config), device="cpu")
    labels = result.labels
    assert labels is not None and labels.n_frames == 24
    assert labels.keypoints == list(tiny_model.truth.keypoints)
    assert result.predictions.shape == (24, 1, 4, 3)
    assert np.isfinite(result.predictions).all()
    assert result.test == held_out(labels.frames, 1 - 0.8)
    assert sum(result.test) >= 1
    # the predictions are where the labels are: the model learned something
    scores = {(s.split, s.body_part): s for s in score_predictions(
        labels, result.predictions, result.test)}
    assert scores[("train", "")].n_labelled == 4 * (24 - sum(result.test))
    assert scores[("train", "")].rmse < 40
    # DeepLabCut's own "rmse" is the mean distance on the same frames and points: the
    # predictions, the labels and the split are aligned
    dist = np.linalg.norm(result.predictions[..., :2] - labels.xy, axis=-1)
    test = np.array(result.test)
    for split, mask in (("train", ~test), ("test", test)):
        assert np.nanmean(dist[mask]) == pytest.approx(result.metrics[f"{split}_rmse"],
                                                       abs=0.01)
