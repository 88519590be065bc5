"""The in-memory pose model."""

import numpy as np
import pytest

from element_pose.pose import PoseData, PoseDataError, concatenate
from element_pose.sample import ground_truth


def test_shapes_are_validated():
    with pytest.raises(PoseDataError, match="confidence shape"):
        PoseData(np.zeros((5, 1, 2, 2)), np.zeros((5, 1, 3)), ["a", "b"], ["i"])
    with pytest.raises(PoseDataError, match="distinct keypoint"):
        PoseData(np.zeros((5, 1, 2, 2)), np.zeros((5, 1, 2)), ["a", "a"], ["i"])
    with pytest.raises(PoseDataError, match="skeleton names unknown"):
        PoseData(np.zeros((5, 1, 2, 2)), np.zeros((5, 1, 2)), ["a", "b"], ["i"],
                 skeleton=[("a", "z")])
    with pytest.raises(PoseDataError, match="3 timestamps for 5 frames"):
        PoseData(np.zeros((5, 1, 2, 2)), np.zeros((5, 1, 2)), ["a", "b"], ["i"],
                 timestamps=np.arange(3))


def test_arrays_are_float32_and_time_is_derived():
    pose = ground_truth(n_frames=10, fps=20.0)
    assert pose.position.dtype == np.float32 and pose.confidence.dtype == np.float32
    assert np.allclose(pose.time(), np.arange(10) / 20.0)
    no_rate = pose.replace(fps=None)
    with pytest.raises(PoseDataError, match="neither timestamps nor fps"):
        no_rate.time()


def test_dlc_dataframe_round_trip_single_and_multi():
    single = ground_truth(n_frames=8)
    df = single.to_dlc_dataframe(scorer="s")
    assert df.columns.names == ["scorer", "bodyparts", "coords"]
    assert df.shape == (8, 12)
    assert np.allclose(df[("s", "nose", "x")], single.position[:, 0, 0, 0])
    multi = ground_truth(n_frames=8, n_individuals=2)
    df = multi.to_dlc_dataframe(scorer="s")
    assert df.columns.names == ["scorer", "individuals", "bodyparts", "coords"]
    assert np.allclose(df[("s", "animal1", "tail_base", "y")], multi.position[:, 1, 3, 1])


def test_xarray_round_trip():
    pose = ground_truth(n_frames=6, n_individuals=2)
    ds = pose.to_xarray()
    assert ds["position"].dims == ("time", "space", "keypoints", "individuals")
    assert ds.attrs["time_unit"] == "seconds"
    back = PoseData.from_xarray(ds)
    assert np.array_equal(back.position, pose.position)
    assert back.keypoints == pose.keypoints and back.individuals == pose.individuals


def test_select_and_provenance_do_not_touch_the_original():
    pose = ground_truth(n_frames=5)
    subset = pose.select(keypoints=["tail_base", "nose"])
    assert subset.keypoints == ["tail_base", "nose"]
    assert np.array_equal(subset.position[:, 0, 1], pose.position[:, 0, 0])
    assert subset.skeleton == []
    stepped = pose.with_step(pose.position * 0, pose.confidence, {"step": "zero"})
    assert stepped.provenance == [{"step": "zero"}] and pose.provenance == []
    assert pose.position.any()
    with pytest.raises(PoseDataError, match=r"unknown body parts \['paw'\]"):
        pose.select(keypoints=["paw"])


def test_concatenate_joins_time():
    a, b = ground_truth(n_frames=4), ground_truth(n_frames=6, seed=1)
    joined = concatenate([a, b])
    assert joined.n_frames == 10
    assert np.array_equal(joined.position[4:], b.position)
    with pytest.raises(PoseDataError, match="different keypoints"):
        concatenate([a, b.select(keypoints=["nose"])])
