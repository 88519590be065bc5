"""Value checks of the DeepLabCut reader: likelihood in [0, 1], sane x/y, NaN legal."""

import numpy as np
import pytest

from element_pose import sample
from element_pose.io import dlc


def _output(tmp_path, n_frames=20, n_individuals=1):
    truth = sample.ground_truth(n_frames=n_frames, n_individuals=n_individuals)
    h5 = sample.make_dlc_output(truth, tmp_path / "v.mp4", tmp_path, scorer="DLC_s")
    return h5, dlc.read_dlc_h5(h5)


def _rewrite(h5, pose, *, frame, keypoint, likelihood=None, x=None, individual=0):
    position, confidence = pose.position.copy(), pose.confidence.copy()
    if likelihood is not None:
        confidence[frame, individual, keypoint] = likelihood
    if x is not None:
        position[frame, individual, keypoint, 0] = x
    dlc.write_dlc_h5(pose.replace(position=position, confidence=confidence), h5)


@pytest.mark.parametrize("value", [-0.2, 1.5, np.inf, -np.inf])
def test_likelihood_outside_0_1_is_refused_naming_file_part_frame(tmp_path, value):
    h5, pose = _output(tmp_path)
    later = pose.replace(confidence=_with(pose.confidence, (12, 0, 1), value))
    _rewrite(h5, later, frame=7, keypoint=2, likelihood=value)
    with pytest.raises(dlc.DLCValueError) as err:
        dlc.read_dlc_h5(h5)
    message = str(err.value)
    assert str(h5) in message and "likelihood" in message
    assert f"body part {pose.keypoints[2]!r}" in message and "frame 7" in message


def _with(array, index, value):
    out = array.copy()
    out[index] = value
    return out


@pytest.mark.parametrize("value", [np.inf, -np.inf, -1e9, 1e9])
def test_absurd_or_infinite_x_is_refused(tmp_path, value):
    h5, pose = _output(tmp_path)
    _rewrite(h5, pose, frame=3, keypoint=1, x=value)
    with pytest.raises(dlc.DLCValueError) as err:
        dlc.read_dlc_h5(h5)
    message = str(err.value)
    assert str(h5) in message and f"body part {pose.keypoints[1]!r}" in message
    assert "frame 3" in message and "x = " in message


def test_frame_size_bounds_x_and_y(tmp_path):
    h5, pose = _output(tmp_path)
    _rewrite(h5, pose, frame=4, keypoint=0, x=500.0)  # 160 x 120 frame: x in [-160, 320]
    assert dlc.read_dlc_h5(h5).n_frames == 20  # fine without a frame size
    with pytest.raises(dlc.DLCValueError, match=r"frame 4 .*160 x 120 frame"):
        dlc.read_dlc_h5(h5, frame_size=(160, 120))
    _rewrite(h5, pose, frame=4, keypoint=0, x=-20.0)  # a little outside the frame: fine
    assert dlc.read_dlc_h5(h5, frame_size=(160, 120)).n_frames == 20


def test_nan_is_legal_and_first_bad_frame_is_reported(tmp_path):
    h5, pose = _output(tmp_path)
    confidence = pose.confidence.copy()
    position = pose.position.copy()
    confidence[:5] = np.nan
    position[:5] = np.nan
    dlc.write_dlc_h5(pose.replace(position=position, confidence=confidence), h5)
    assert np.isnan(dlc.read_dlc_h5(h5).confidence[:5]).all()
    confidence[15, 0, 0] = 2.0
    confidence[9, 0, 3] = -1.0
    dlc.write_dlc_h5(pose.replace(position=position, confidence=confidence), h5)
    with pytest.raises(dlc.DLCValueError, match=rf"{pose.keypoints[3]!r} at frame 9 "):
        dlc.read_dlc_h5(h5)


def test_multi_animal_error_names_individual(tmp_path):
    h5, pose = _output(tmp_path, n_individuals=2)
    _rewrite(h5, pose, frame=2, keypoint=0, likelihood=1.5, individual=1)
    with pytest.raises(dlc.DLCValueError, match=r"individual 'animal1' at frame 2"):
        dlc.read_dlc_h5(h5)
