"""The in-memory pose model."""

import numpy as np
import pytest

from element_pose.core.pose import PoseData, PoseDataError, check_keypoints, concatenate
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


def test_source_software_has_no_engine_default():
    """Readers name the software; a PoseData made without one does not claim any."""
    pose = PoseData(np.zeros((5, 1, 2, 2)), np.zeros((5, 1, 2)), ["a", "b"], ["i"])
    assert pose.source_software is None
    assert pose.to_xarray().attrs["source_software"] is None


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


def _on_one_grid(n_individuals: int, n_space: int = 2) -> tuple[PoseData, np.ndarray]:
    """Pose arrays viewing one (individual, keypoint, coordinate, frame) grid, as fetched."""
    rng = np.random.default_rng(4)
    grid = rng.normal(size=(n_individuals, 4, n_space + 1, 50)).astype(np.float32)
    grid[0, 1, :, 3:9] = np.nan
    pose = PoseData(position=grid[:, :, :n_space].transpose(3, 0, 1, 2),
                    confidence=grid[:, :, n_space].transpose(2, 0, 1),
                    keypoints=list("abcd"), individuals=[f"m{i}" for i in range(n_individuals)],
                    scorer="DLC_s")
    return pose, grid


def _copied(pose: PoseData) -> PoseData:
    return pose.replace(position=pose.position.copy(), confidence=pose.confidence.copy())


@pytest.mark.parametrize(("n_individuals", "multi", "n_space"),
                         [(1, False, 2), (1, True, 2), (3, True, 2), (2, None, 3)])
def test_dlc_dataframe_of_a_part_grid_is_built_on_it(n_individuals, multi, n_space):
    import pandas as pd

    pose, grid = _on_one_grid(n_individuals, n_space)
    fast = pose.to_dlc_dataframe(multi_animal=multi)
    assert np.shares_memory(fast.to_numpy(), grid)  # no copy of the poses
    pd.testing.assert_frame_equal(fast, _copied(pose).to_dlc_dataframe(multi_animal=multi))
    renamed = pose.to_dlc_dataframe(scorer="other", multi_animal=multi)
    assert renamed.columns.get_level_values("scorer").unique().tolist() == ["other"]


def test_dlc_dataframe_copies_other_views_of_a_grid():
    import pandas as pd

    pose, grid = _on_one_grid(1)
    reversed_frames = pose.replace(position=pose.position[::-1], confidence=pose.confidence[::-1])
    assert reversed_frames.position.base is grid  # same base and shape, not the same layout
    df = reversed_frames.to_dlc_dataframe()
    assert not np.shares_memory(df.to_numpy(), grid)
    pd.testing.assert_frame_equal(df, _copied(reversed_frames).to_dlc_dataframe())
    with pytest.raises(PoseDataError, match="exactly one individual"):
        _on_one_grid(2)[0].to_dlc_dataframe(multi_animal=False)


def test_check_keypoints_orders_or_names_the_difference():
    pose = ground_truth(n_frames=4)
    assert check_keypoints(pose, pose.keypoints, "a.h5") is pose
    reordered = check_keypoints(pose, pose.keypoints[::-1], "a.h5")
    assert reordered.keypoints == pose.keypoints[::-1]
    assert np.array_equal(reordered.position[:, :, 0], pose.position[:, :, -1])
    expected = [*pose.keypoints[:-1], "tail_tip"]
    with pytest.raises(PoseDataError, match=r"keypoints \(body parts\) in a.h5 do not match "
                       r"the model: missing \['tail_tip'\], unexpected \['tail_base'\]"):
        check_keypoints(pose, expected, "a.h5")
    with pytest.raises(RuntimeError, match=r"the model m\.slp"):
        check_keypoints(pose, expected, "a.h5", model="m.slp", error=RuntimeError)


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


def test_all_missing_on_whole_arrays_and_strided_columns():
    from element_pose.core.pose import all_missing

    position = np.full((50, 3, 4, 2), np.nan, np.float32)
    assert all_missing(position) and all_missing(position[:, 1, 2, 0])
    position[17, 1, 2, 0] = 0.0
    assert not all_missing(position) and not all_missing(position[:, 1, 2, 0])
    assert all_missing(position[:, 1, 2, 1]) and all_missing(position[:, 0, 2, 0])
    assert not all_missing(position[:, 0, 0, 0], position[:, 1, 2, 0])  # every array
    assert all_missing(np.array([], np.float32))
    assert not all_missing(np.arange(5))  # integers are never missing
