"""Frames to relabel: each criterion finds what was planted in synthetic poses."""

from __future__ import annotations

import numpy as np
import pytest

from element_pose.core.params import params_hash
from element_pose.core.pose import PoseData
from element_pose.processing.outliers import (
    OutlierError,
    OutlierParams,
    OutlierParamsError,
    kmeans,
    select_frames,
)

KEYPOINTS = ["nose", "left_ear", "right_ear", "tail_base"]


def _smooth_pose(n_frames: int = 200, n_individuals: int = 1, seed: int = 0) -> PoseData:
    """Slow smooth motion, small noise, confident everywhere."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames)[:, None, None]
    base = np.array([[0, -10], [-7, -3], [7, -3], [0, 12]], dtype=float)
    centre = np.stack([80 + 30 * np.sin(t / 40.0), 60 + 20 * np.cos(t / 50.0)], axis=-1)
    position = centre[:, :, :, :] + base[None, None] + rng.normal(0, 0.3, (
        n_frames, n_individuals, len(KEYPOINTS), 2))
    confidence = rng.uniform(0.9, 1.0, position.shape[:3])
    return PoseData(position=position, confidence=confidence, keypoints=KEYPOINTS,
                    individuals=[f"animal{i}" for i in range(n_individuals)], fps=30.0)


def _frames(table) -> list[int]:
    return [int(f) for f in table["frame"]]


def test_uncertain_finds_a_low_confidence_stretch():
    pose = _smooth_pose()
    pose.confidence[120:125, 0, 2] = 0.005
    chosen = select_frames(pose, {"criteria": [{"criterion": "uncertain", "p_bound": 0.01}],
                                  "frames_per_video": 50})
    assert _frames(chosen) == [120, 121, 122, 123, 124]
    assert set(chosen["criterion"]) == {"uncertain"}
    assert np.allclose(chosen["score"], 0.995)


def test_jump_finds_a_planted_spike():
    pose = _smooth_pose()
    pose.position[77, 0, 0] += (40.0, 0.0)
    both = select_frames(pose, {"criteria": [{"criterion": "jump", "epsilon": 15}]})
    assert _frames(both) == [77, 78]  # the spike and the way back, as DeepLabCut's 'jump'
    assert np.allclose(both["score"], 40, atol=2)
    one = select_frames(pose, {"criteria": [{"criterion": "jump", "epsilon": 15}],
                               "min_gap": 1})
    assert len(one) == 1 and _frames(one)[0] in (77, 78)


def test_fitting_finds_an_off_trajectory_point_the_jump_misses():
    pose = _smooth_pose()
    # a slow drift away and back: no step exceeds 10 px, but frame 150 is 30 px off
    for f, off in zip(range(144, 157), [5, 10, 15, 20, 25, 28, 30, 28, 25, 20, 15, 10, 5],
                      strict=True):
        pose.position[f, 0, 3, 1] += off
    jump = select_frames(pose, {"criteria": [{"criterion": "jump", "epsilon": 10}]})
    assert jump.empty
    fitting = select_frames(pose, {"criteria": [
        {"criterion": "fitting", "threshold": 8, "window": 21}], "frames_per_video": 3,
        "min_gap": 2})
    assert 150 in _frames(fitting)
    first = fitting.sort_values("rank").iloc[0]
    assert first["frame"] == 150 and first["criterion"] == "fitting"
    assert first["score"] > 15  # px from the running median (which the drift pulls a little)


def test_kmeans_picks_one_frame_per_distinct_pose():
    rng = np.random.default_rng(3)
    places = np.array([[20, 20], [140, 20], [20, 100], [140, 100]], dtype=float)
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    position = places[labels][:, None, None, :] + rng.normal(0, 1, (200, 1, 4, 2))
    pose = PoseData(position=position, confidence=np.ones((200, 1, 4)), keypoints=KEYPOINTS,
                    individuals=["a"])
    params = {"criteria": [{"criterion": "kmeans", "n_clusters": 4}], "frames_per_video": 10}
    chosen = select_frames(pose, params)
    assert sorted(labels[_frames(chosen)]) == [0, 1, 2, 3]  # one frame from each place
    assert sorted(chosen["score"]) == pytest.approx([0.1, 0.15, 0.25, 0.5])
    again = select_frames(pose, params)
    assert _frames(again) == _frames(chosen)  # seeded: the same frames every time


def test_kmeans_is_deterministic_and_separates_clusters():
    x = np.concatenate([np.zeros((10, 2)), np.full((10, 2), 10.0)])
    a, _ = kmeans(x, 2, seed=1)
    b, _ = kmeans(x, 2, seed=1)
    assert np.array_equal(a, b) and len(set(a[:10])) == 1 and a[0] != a[-1]
    labels, centres = kmeans(np.ones((5, 3)), 4)  # fewer distinct rows than clusters
    assert len(centres) == 1 and set(labels) == {0}


def test_cap_min_gap_and_criteria_take_turns():
    pose = _smooth_pose()
    pose.confidence[10:60, 0, 0] = 0.001  # 50 uncertain frames
    pose.position[150, 0, 1] += (50.0, 0.0)  # one jump
    params = {"criteria": [{"criterion": "uncertain"}, {"criterion": "jump"}],
              "frames_per_video": 6, "min_gap": 4}
    chosen = select_frames(pose, params)
    frames = _frames(chosen)
    assert len(frames) == 6
    assert {150, 151} & set(frames)  # the jump got its turn despite 50 uncertain frames
    assert min(np.diff(frames)) > 4
    assert list(chosen.sort_values("rank")["criterion"][:2]) == ["uncertain", "jump"]
    assert sorted(chosen["rank"]) == list(range(6))


def test_restricted_to_body_parts_and_individuals():
    pose = _smooth_pose(n_individuals=2)
    pose.confidence[30, 1, 0] = 0.0
    pose.confidence[90, 0, 3] = 0.0
    params = {"criteria": [{"criterion": "uncertain"}]}
    assert _frames(select_frames(pose, params)) == [30, 90]
    assert _frames(select_frames(pose, {**params, "individuals": ["animal0"]})) == [90]
    assert _frames(select_frames(pose, {**params, "keypoints": ["nose"]})) == [30]
    with pytest.raises(OutlierError, match=r"body parts \['tail'\]"):
        select_frames(pose, {**params, "keypoints": ["tail"]})


def test_missing_points_are_not_uncertain_and_all_missing_gives_nothing():
    pose = _smooth_pose(n_frames=30)
    pose.position[5] = np.nan
    pose.confidence[5] = np.nan
    chosen = select_frames(pose, {"criteria": [{"criterion": "uncertain"},
                                               {"criterion": "jump"},
                                               {"criterion": "fitting"}]})
    assert chosen.empty
    pose.position[:] = np.nan
    pose.confidence[:] = np.nan
    chosen = select_frames(pose, {"criteria": [{"criterion": "kmeans"},
                                               {"criterion": "fitting"}]})
    assert chosen.empty and list(chosen.columns) == ["frame", "criterion", "score", "rank"]


def test_missing_points_count_as_uncertain_when_asked():
    """A single-animal model that lost its points (SLEAP: below its peak threshold, NaN)
    on a stretch of frames: ``missing: true`` picks that stretch, the frames that lost
    more points first (score ``1 - lowest + fraction missing``)."""
    pose = _smooth_pose(n_frames=40)
    pose.position[3, 0, 0] = np.nan
    pose.confidence[3, 0, 0] = np.nan
    pose.position[10:14, 0, :] = np.nan
    pose.confidence[10:14, 0, :] = np.nan
    pose.confidence[30, 0, 1] = 0.2
    params = {"criteria": [{"criterion": "uncertain", "p_bound": 0.5, "missing": True}],
              "frames_per_video": 50}
    chosen = select_frames(pose, params)
    assert list(chosen.sort_values("rank")["frame"]) == [10, 11, 12, 13, 3, 30]
    assert np.allclose(chosen.sort_values("rank")["score"], [2, 2, 2, 2, 1.25, 0.8])
    params["criteria"][0]["missing"] = False
    assert _frames(select_frames(pose, params)) == [30]


def test_parameters_are_validated_and_normalised():
    stored = OutlierParams.for_storage({"criteria": [{"criterion": "jump"}]})
    assert stored == {"criteria": [{"criterion": "jump", "epsilon": 20.0}],
                      "frames_per_video": 20, "min_gap": 0, "keypoints": None,
                      "individuals": None, "seed": 0}
    assert params_hash(stored) == params_hash(
        OutlierParams.for_storage({"frames_per_video": 20,
                                   "criteria": [{"epsilon": 20, "criterion": "jump"}]}))
    for bad, words in [
        ({"criteria": []}, "criteria"),
        ({"criteria": [{"criterion": "wild"}]}, "wild"),
        ({"criteria": [{"criterion": "jump", "epsilon": -1}]}, "epsilon"),
        ({"criteria": [{"criterion": "fitting", "window": 8}]}, "odd"),
        ({"criteria": [{"criterion": "jump"}, {"criterion": "jump"}]}, "once"),
        ({"criteria": [{"criterion": "jump"}], "frames_per_video": 0}, "frames_per_video"),
        ({"criteria": [{"criterion": "jump"}], "cap": 3}, "cap"),
    ]:
        with pytest.raises(OutlierParamsError, match=words):
            OutlierParams.check(bad)


def test_fitting_window_longer_than_the_poses_is_refused():
    with pytest.raises(OutlierError, match="longer than the 5 frames"):
        select_frames(_smooth_pose(n_frames=5),
                      {"criteria": [{"criterion": "fitting", "window": 7}]})


def test_fitting_with_savitzky_golay_finds_a_spike():
    pose = _smooth_pose()
    pose.position[100, 0, 2] += (0.0, 30.0)
    chosen = select_frames(pose, {"criteria": [
        {"criterion": "fitting", "filter": "savgol", "window": 7, "threshold": 10}],
        "frames_per_video": 1})
    assert _frames(chosen) == [100]
    assert chosen["score"][0] > 15


def test_egocentric_kmeans_clusters_postures_not_places():
    rng = np.random.default_rng(5)
    stretched = np.array([[0, -20], [0, -10], [0, 10], [0, 20]], float)
    curled = np.array([[-5, 0], [0, -5], [5, 0], [0, 5]], float)
    posture = np.tile([0, 1], 50)  # alternating postures
    places = rng.uniform(20, 140, (100, 2))  # anywhere in the arena
    shapes = np.where(posture[:, None, None] == 0, stretched, curled)
    position = (places[:, None, :] + shapes)[:, None] + rng.normal(0, 0.2, (100, 1, 4, 2))
    pose = PoseData(position=position, confidence=np.ones((100, 1, 4)), keypoints=KEYPOINTS,
                    individuals=["a"])
    chosen = select_frames(pose, {"criteria": [
        {"criterion": "kmeans", "n_clusters": 2, "egocentric": True}]})
    assert sorted(posture[_frames(chosen)]) == [0, 1]
    assert np.allclose(chosen["score"], 0.5)
