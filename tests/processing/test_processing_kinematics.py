"""Kinematics: centre of mass, exact speed on the recording's time base, rest/movement."""

from __future__ import annotations

import numpy as np
import pytest
from processing_testdata import make_pose

from element_pose.core.pose import PoseDataError
from element_pose.processing.kinematics import (
    MOVING,
    REST,
    UNKNOWN,
    bouts,
    centre_of_mass,
    classify_states,
    locomotion,
    speed,
)


def _constant_velocity(n_frames=90, fps=30.0, v=(60.0, -80.0), timestamps=None):
    """Two markers 10 px apart moving at ``v`` px/s."""
    t = np.arange(n_frames) / fps if timestamps is None else timestamps
    position = np.empty((n_frames, 1, 2, 2))
    position[:, 0, 0] = np.array([20.0, 100.0]) + np.outer(t, v)
    position[:, 0, 1] = position[:, 0, 0] + (10.0, 0.0)
    return position


def test_centre_of_mass_ignores_missing_body_parts():
    position = _constant_velocity(n_frames=3)
    position[1, 0, 1] = np.nan
    position[2, 0, :] = np.nan
    pose = make_pose(position)
    com = centre_of_mass(pose)
    np.testing.assert_allclose(com[0, 0], position[0, 0, 0] + (5.0, 0.0))
    np.testing.assert_allclose(com[1, 0], position[1, 0, 0])
    assert np.isnan(com[2, 0]).all()
    np.testing.assert_allclose(centre_of_mass(pose, ["tail_base"])[0, 0], position[0, 0, 1])
    with pytest.raises(PoseDataError, match="unknown body parts"):
        centre_of_mass(pose, ["paw"])


def test_speed_of_constant_velocity_is_exact():
    pose = make_pose(_constant_velocity(fps=30.0))
    loco = locomotion(pose, threshold=10.0)
    np.testing.assert_allclose(loco.speed[:, 0], 100.0, rtol=1e-4)  # |(60, -80)| px/s
    np.testing.assert_allclose(loco.velocity[:, 0], np.tile([60.0, -80.0], (90, 1)), rtol=1e-4)
    np.testing.assert_allclose(loco.time, np.arange(90) / 30.0)
    assert (loco.state == MOVING).all()


def test_speed_uses_real_uneven_timestamps():
    rng = np.random.default_rng(0)
    stamps = 5.0 + np.cumsum(rng.uniform(0.02, 0.05, 60))
    pose = make_pose(_constant_velocity(n_frames=60, timestamps=stamps), fps=None,
                     timestamps=stamps)
    loco = locomotion(pose, threshold=10.0)
    np.testing.assert_allclose(loco.speed[:, 0], 100.0, rtol=1e-3)
    np.testing.assert_array_equal(loco.time, stamps)


def test_matches_movement_compute_speed():
    xr = pytest.importorskip("xarray")
    kin = pytest.importorskip("movement.kinematics")
    rng = np.random.default_rng(1)
    position = np.cumsum(rng.normal(0, 2, (50, 1, 2, 2)), axis=0)
    pose = make_pose(position)
    com = centre_of_mass(pose)
    ours = speed(com, pose.time())
    da = xr.DataArray(com, dims=("time", "individuals", "space"),
                      coords={"time": pose.time(), "space": ["x", "y"]})
    np.testing.assert_allclose(ours, kin.compute_speed(da).values, rtol=1e-6)


def test_rest_and_movement_states():
    fps = 10.0
    # rest 2 s, move at 50 px/s for 2 s, rest 2 s
    t = np.arange(60) / fps
    x = np.where(t < 2, 0.0, np.where(t < 4, 50 * (t - 2), 100.0))
    position = np.zeros((60, 1, 1, 2))
    position[:, 0, 0, 0] = x
    pose = make_pose(np.repeat(position, 2, axis=2), fps=fps)
    loco = locomotion(pose, threshold=20.0)
    state = loco.state[:, 0]
    assert (state[:20] == REST).all()
    assert (state[21:40] == MOVING).all()
    assert (state[41:] == REST).all()
    assert loco.rest[:, 0].sum() + loco.moving[:, 0].sum() == 60
    table = bouts(loco)
    assert table["state"].tolist() == ["rest", "moving", "rest"]
    assert table["duration"].sum() == pytest.approx(6.0)
    assert 0.3 < loco.fraction_moving()[0] < 0.4


def test_minimum_bout_duration_and_unknown():
    t = np.arange(40) / 10.0
    spd = np.zeros(40)
    spd[10:12] = 50.0  # 0.2 s of movement: a blip
    spd[20:35] = 50.0  # 1.5 s of movement
    # frames 35-36 (0.2 s) stay below threshold: a short pause after the movement
    spd[37:] = np.nan  # unknown (missing points)
    raw = classify_states(spd, t, threshold=20.0)
    assert (raw[10:12] == MOVING).all() and (raw[37:] == UNKNOWN).all()
    merged = classify_states(spd, t, threshold=20.0, min_bout_duration=0.5)
    assert (merged[:20] == REST).all()
    assert (merged[20:35] == MOVING).all()
    assert (merged[35:37] == MOVING).all()  # 0.2 s rest after movement absorbed
    assert (merged[37:] == UNKNOWN).all()
    per_individual = classify_states(np.stack([spd, spd], axis=1), t, 20.0, 0.5)
    np.testing.assert_array_equal(per_individual[:, 1], merged)


def test_locomotion_needs_a_time_base():
    pose = make_pose(_constant_velocity(), fps=None)
    with pytest.raises(PoseDataError, match="cannot derive time"):
        locomotion(pose, threshold=1.0)
