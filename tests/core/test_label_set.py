"""The engine-neutral labelled set and its held-out split."""

import numpy as np
import pytest

from element_pose.core.labels import LabelSet, LabelSetError, frame_number, held_out


def _frames(n):
    return [f"labeled-data/v{i % 3}/img{i:04d}.png" for i in range(n)]


def test_split_depends_on_the_frame_alone():
    frames = _frames(200)
    first = dict(zip(frames, held_out(frames, 0.2), strict=True))
    more = frames + [f"labeled-data/new/img{i:04d}.png" for i in range(50)]
    second = dict(zip(more, held_out(more, 0.2), strict=True))
    assert all(first[f] == second[f] for f in frames)
    assert 0.1 < np.mean(list(first.values())) < 0.3


def test_train_only_frames_are_never_held_out_and_small_sets_get_both():
    frames = _frames(3)
    out = held_out(frames, 0.2)
    assert any(out) and not all(out)
    assert not any(held_out(frames, 0.9, train_only=frames))


def test_labelset_checks_shapes_and_body_parts():
    xy = np.zeros((2, 1, 2, 2))
    s = LabelSet(_frames(2), ["nose", "tail"], ["individual_0"], xy)
    with pytest.raises(LabelSetError, match="missing \\['ear'\\]"):
        s.check_keypoints(["nose", "tail", "ear"])
    with pytest.raises(LabelSetError, match="order"):
        s.check_keypoints(["tail", "nose"])
    with pytest.raises(LabelSetError, match="shape"):
        LabelSet(_frames(3), ["nose", "tail"], ["individual_0"], xy)
    assert s.select([s.frames[1]]).n_frames == 1
    assert frame_number("labeled-data/v/img0042.png") == 42
