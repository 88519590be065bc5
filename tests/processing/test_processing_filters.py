"""Filter pipeline: numeric behaviour of each step, provenance, validation and errors."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from processing_testdata import make_pose, smooth_truth

from element_pose.processing.filters import (
    STEP_NAMES,
    AllMissingError,
    FilterError,
    FilterParamsError,
    UnknownNameError,
    WindowTooLongError,
    apply_filters,
    canonical_params_json,
    validate_filter_params,
)

FULL_PIPELINE = {"steps": [
    {"step": "confidence_threshold", "threshold": 0.6},
    {"step": "median", "window": 5},
    {"step": "offset_threshold", "window": 7, "threshold": 10},
    {"step": "savgol", "window": 7, "polyorder": 2},
    {"step": "interpolate", "max_gap": 5},
]}


def _one(step: dict) -> dict:
    return {"steps": [step]}


# ------------------------------------------------------------------ steps
def test_median_removes_a_single_frame_spike(truth):
    position = truth.copy()
    position[100, 0, 0] += (50.0, -40.0)
    out = apply_filters(make_pose(position), _one({"step": "median", "window": 5}))
    assert np.abs(out.position[100, 0, 0] - truth[100, 0, 0]).max() < 1.0
    # smooth, slow traces are nearly unchanged by a 5-frame median (edges reflected)
    assert np.nanmax(np.abs(out.position - truth)) < 1.0
    assert not np.isnan(out.position).any()


def test_median_window_1_is_off_and_missing_points_stay_missing(truth):
    position = truth.copy()
    position[10, 0, 1] = np.nan
    pose = make_pose(position)
    off = apply_filters(pose, _one({"step": "median", "window": 1}))
    np.testing.assert_array_equal(off.position, pose.position)
    on = apply_filters(pose, _one({"step": "median", "window": 5}))
    assert np.isnan(on.position[10, 0, 1]).all()
    assert np.isnan(on.position).sum() == 2  # the gap did not grow


def test_offset_threshold_drops_a_jump_and_nothing_else(truth):
    position = truth.copy()
    position[50:53, 0, 1, 0] += 40.0  # a 3-frame jump of one body part
    pose = make_pose(position)
    out = apply_filters(pose, _one({"step": "offset_threshold", "window": 7, "threshold": 10}))
    missing = np.isnan(out.position).any(axis=-1)
    assert missing[50:53, 0, 1].all()
    assert missing.sum() == 3
    kept = ~np.isnan(out.position)
    np.testing.assert_array_equal(out.position[kept], pose.position[kept])


def test_interpolate_fills_short_gaps_only(truth):
    position = truth.copy()
    position[20:23, 0, 0] = np.nan  # 3 frames
    position[100:130, 0, 0] = np.nan  # 30 frames
    position[:2, 0, 1] = np.nan  # leading gap: nothing to interpolate from
    out = apply_filters(make_pose(position), _one({"step": "interpolate", "max_gap": 5}))
    assert not np.isnan(out.position[20:23, 0, 0]).any()
    np.testing.assert_allclose(out.position[20:23, 0, 0], truth[20:23, 0, 0], atol=0.2)
    assert np.isnan(out.position[100:130, 0, 0]).all()
    assert np.isnan(out.position[:2, 0, 1]).all()
    assert np.isnan(out.position).any(axis=-1).sum() == 32


@pytest.mark.parametrize("method", ["nearest", "cubic", "pchip"])
def test_interpolate_methods(truth, method):
    position = truth.copy()
    position[20:23, 0, 0] = np.nan
    out = apply_filters(make_pose(position),
                        _one({"step": "interpolate", "max_gap": None, "method": method}))
    np.testing.assert_allclose(out.position[20:23, 0, 0], truth[20:23, 0, 0], atol=2.0)


def test_interpolate_gap_equal_to_max_gap_is_filled(truth):
    position = truth.copy()
    position[40:45, 0, 0] = np.nan  # exactly 5
    position[60:66, 0, 0] = np.nan  # 6
    out = apply_filters(make_pose(position), _one({"step": "interpolate", "max_gap": 5}))
    assert not np.isnan(out.position[40:45, 0, 0]).any()
    assert np.isnan(out.position[60:66, 0, 0]).all()


def test_confidence_threshold(truth):
    confidence = np.full(truth.shape[:3], 0.9)
    confidence[5, 0, 0] = 0.3
    confidence[6, 0, 1] = 0.6  # at the threshold: kept
    confidence[7, 0, 1] = np.nan  # unknown confidence: dropped
    pose = make_pose(truth, confidence)
    out = apply_filters(pose, _one({"step": "confidence_threshold", "threshold": 0.6}))
    missing = np.isnan(out.position).all(axis=-1)
    assert missing[5, 0, 0] and missing[7, 0, 1] and not missing[6, 0, 1]
    assert missing.sum() == 2
    np.testing.assert_array_equal(out.confidence, pose.confidence)


def test_savgol_smooths_noise(truth):
    rng = np.random.default_rng(1)
    noisy = truth + rng.normal(0, 2.0, truth.shape)
    noisy[30, 0, 0] = np.nan  # a gap does not spread over the window
    pose = make_pose(noisy)
    out = apply_filters(pose, _one({"step": "savgol", "window": 11, "polyorder": 2}))

    def rmse(p):
        return np.sqrt(np.nanmean((p - truth) ** 2))

    assert rmse(out.position) < 0.6 * rmse(pose.position)
    assert np.isnan(out.position).any(axis=-1).sum() == 1


def test_full_pipeline_on_noisy_data_with_outliers(truth):
    rng = np.random.default_rng(2)
    noisy = truth + rng.normal(0, 1.0, truth.shape)
    confidence = rng.uniform(0.8, 1.0, truth.shape[:3])
    confidence[rng.random(confidence.shape) < 0.03] = 0.1
    noisy[120, 0, 0] += 60.0
    pose = make_pose(noisy, confidence)
    out = apply_filters(pose, FULL_PIPELINE)
    assert np.abs(out.position[120, 0, 0] - truth[120, 0, 0]).max() < 3.0
    assert np.sqrt(np.nanmean((out.position - truth) ** 2)) < 1.0
    assert out.position.dtype == np.float32


def test_input_is_not_modified(truth):
    position = truth.copy()
    position[100, 0, 0] += 50.0
    position[20:23, 0, 1] = np.nan
    pose = make_pose(position, provenance=[{"step": "load", "file": "x.h5"}])
    before = (pose.position.copy(), pose.confidence.copy(), copy.deepcopy(pose.provenance))
    out = apply_filters(pose, FULL_PIPELINE)
    np.testing.assert_array_equal(pose.position, before[0])
    np.testing.assert_array_equal(pose.confidence, before[1])
    assert pose.provenance == before[2]
    assert out.position is not pose.position
    assert out.confidence is not pose.confidence


def test_provenance_lists_each_step(pose):
    pose = pose.replace(provenance=[{"step": "load"}])
    out = apply_filters(pose, FULL_PIPELINE)
    assert [s["step"] for s in out.provenance] == ["load", *[
        s["step"] for s in FULL_PIPELINE["steps"]]]
    normalised = validate_filter_params(FULL_PIPELINE)["steps"]
    for entry, step in zip(out.provenance[1:], normalised, strict=True):
        for key, value in step.items():
            assert entry[key] == value
        assert entry["software"] in ("movement", "element-pose")
        assert entry["software_version"]
        assert entry["n_missing_after"] >= 0
    assert out.provenance[3]["software"] == "element-pose"  # offset threshold: our own
    json.dumps(out.provenance)  # storable as JSON
    # the time base and names travel unchanged
    assert out.fps == pose.fps and out.keypoints == pose.keypoints


def test_empty_pipeline_is_a_copy(pose):
    out = apply_filters(pose, {"steps": []})
    np.testing.assert_array_equal(out.position, pose.position)
    assert out.provenance == pose.provenance


# ----------------------------------------------------------- multi-animal
def test_multi_animal_filters_each_individual_separately():
    truth = smooth_truth(n_individuals=2)
    truth[:, 1] += 100.0  # the second animal is far away from the first
    position = truth.copy()
    position[60:62, 1, 0, 1] -= 30.0  # a jump of animal1's nose only
    pose = make_pose(position)
    out = apply_filters(pose, _one({"step": "offset_threshold", "window": 7, "threshold": 10}))
    missing = np.isnan(out.position).any(axis=-1)
    assert missing[60:62, 1, 0].all()
    assert missing.sum() == 2
    np.testing.assert_array_equal(out.position[:, 0], pose.position[:, 0])


def test_steps_can_be_restricted_to_body_parts_and_individuals():
    rng = np.random.default_rng(3)
    truth = smooth_truth(n_individuals=2)
    pose = make_pose(truth + rng.normal(0, 1, truth.shape))
    out = apply_filters(pose, _one({"step": "savgol", "window": 9, "individuals": ["animal1"],
                                    "keypoints": ["tail_base"]}))
    changed = ~np.isclose(out.position, pose.position).all(axis=(0, 3))
    assert changed.tolist() == [[False, False], [False, True]]


def test_3d_data(truth):
    truth3 = smooth_truth(n_space=3)
    position = truth3.copy()
    position[80, 0, 0, 2] += 50.0
    out = apply_filters(make_pose(position), _one({"step": "median", "window": 5}))
    assert np.abs(out.position[80, 0, 0] - truth3[80, 0, 0]).max() < 1.0


# ------------------------------------------------------------- validation
def test_normalised_params_fill_defaults_and_hash_equal():
    a = validate_filter_params({"steps": [
        {"step": "offset_threshold", "window": 7, "threshold": 10},
        {"step": "savgol", "window": 7},
        {"step": "interpolate", "max_gap": 5},
        {"step": "median", "window": 5.0, "keypoints": ["b", "a", "a"]},
    ]})
    assert a["steps"][0] == {"step": "offset_threshold", "window": 7, "threshold": 10.0}
    assert a["steps"][1] == {"step": "savgol", "window": 7, "polyorder": 2}
    assert a["steps"][2] == {"step": "interpolate", "max_gap": 5, "method": "linear"}
    assert a["steps"][3] == {"step": "median", "window": 5, "keypoints": ["a", "b"]}
    assert isinstance(a["steps"][3]["window"], int)
    b = [{"step": "offset_threshold", "threshold": 10.0, "window": 7},
         {"step": "savgol", "window": 7, "polyorder": 2},
         {"step": "interpolate", "max_gap": 5, "method": "linear"},
         {"step": "median", "window": 5, "keypoints": ["a", "b"]}]
    assert canonical_params_json(a) == canonical_params_json(b)
    assert validate_filter_params(a) == a  # idempotent
    assert validate_filter_params(json.dumps(b)) == a  # JSON text, as stored
    with pytest.raises(FilterParamsError, match="not valid JSON"):
        validate_filter_params("{steps")
    assert set(STEP_NAMES) == {"confidence_threshold", "median", "offset_threshold", "savgol",
                               "interpolate"}


@pytest.mark.parametrize(("params", "match"), [
    (_one({"step": "median", "window": 4}), r"odd.*window 1 = off"),
    (_one({"step": "median", "window": 0}), r"'steps\[0\]\.window' must be integer in \[1, "),
    (_one({"step": "kalman"}), r"unknown step 'kalman'"),
    (_one({"step": "median"}), r"missing key 'steps\[0\]\.window'"),
    (_one({"step": "median", "window": "5"}), r"'steps\[0\]\.window' must be integer"),
    (_one({"step": "median", "window": True}), r"'steps\[0\]\.window' must be integer"),
    (_one({"step": "median", "window": 5.5}), r"'steps\[0\]\.window' must be integer"),
    (_one({"step": "median", "window": 5, "widow": 3}), r"unknown key\(s\) \['widow'\]"),
    (_one({"step": "savgol", "window": 5, "polyorder": 5}), r"polyorder"),
    (_one({"step": "savgol", "window": 6}), r"odd"),
    (_one({"step": "offset_threshold", "window": 7, "threshold": -1}), r"> 0"),
    (_one({"step": "confidence_threshold", "threshold": float("nan")}), r"number in .*got nan"),
    (_one({"step": "interpolate", "max_gap": 0}), r"max_gap"),
    (_one({"step": "interpolate", "max_gap": 3, "method": "spline"}), r"method"),
    (_one({"step": "median", "window": 5, "keypoints": "nose"}), r"list of texts"),
    ({"steps": [{"step": "median", "window": 5}], "extra": 1}, r"unknown key\(s\) \['extra'\]"),
    ({"step": "median"}, r"unknown key\(s\) \['step'\]"),
    ({}, r"missing key 'steps'"),
    ({"steps": "median"}, r"'steps' must be list"),
    ({"steps": [5]}, r"'steps\[0\]' must be mapping"),
])
def test_bad_params_raise_clear_errors(params, match):
    with pytest.raises(FilterParamsError, match=match) as info:
        validate_filter_params(params)
    assert isinstance(info.value, ValueError)


def test_window_longer_than_recording(truth):
    pose = make_pose(truth[:10])
    with pytest.raises(WindowTooLongError, match=r"window of 11 frames.*10 frames"):
        apply_filters(pose, _one({"step": "savgol", "window": 11}))
    apply_filters(pose, _one({"step": "median", "window": 9}))  # shorter is fine


def test_all_missing_input(truth):
    pose = make_pose(np.full_like(truth, np.nan))
    with pytest.raises(AllMissingError, match="nothing to filter"):
        apply_filters(pose, _one({"step": "median", "window": 5}))


def test_step_that_removes_everything(pose):
    with pytest.raises(AllMissingError, match=r"confidence_threshold.*left no point"):
        apply_filters(pose, _one({"step": "confidence_threshold", "threshold": 0.99}))


def test_unknown_body_parts_and_individuals(pose):
    with pytest.raises(UnknownNameError, match=r"unknown body parts \['paw'\]"):
        apply_filters(pose, _one({"step": "median", "window": 5, "keypoints": ["nose", "paw"]}))
    with pytest.raises(UnknownNameError, match=r"unknown individuals \['mouse9'\]"):
        apply_filters(pose, _one({"step": "median", "window": 5, "individuals": ["mouse9"]}))
    assert issubclass(UnknownNameError, FilterError) and issubclass(FilterError, ValueError)
