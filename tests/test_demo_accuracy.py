"""The demo's accuracy against the generator's known positions (issue 27, item 16)."""

from __future__ import annotations

import numpy as np
import pytest

from element_pose import sample


def test_accuracy_on_known_offsets():
    truth = sample.ground_truth(n_frames=10, seed=3)
    position = truth.position.copy()
    # nose: every point 1 px off; left_ear: 3 px (a 3-4-5 triangle would be 5 px);
    # right_ear: 0 px, 2 px and 6 px in turn; tail_base: exact but 2 frames missing
    position[:, 0, 0, 0] += 1.0
    position[:, 0, 1, 1] -= 3.0
    position[:, 0, 2, 0] += np.array([0, 2, 6, 0, 2, 6, 0, 2, 6, 0], dtype=float)
    position[[4, 7], 0, 3, :] = np.nan
    estimate = truth.replace(position=position.astype(np.float32))

    table = sample.accuracy(estimate, truth).set_index("body_part")

    assert list(table.index) == ["nose", "left_ear", "right_ear", "tail_base", "all"]
    assert list(table.columns) == ["points", "median_px", "mean_px", "within_2px", "within_5px"]
    assert (table["points"] == [10, 10, 10, 10, 40]).all()
    assert table.loc["nose", "median_px"] == pytest.approx(1.0, abs=1e-4)
    assert table.loc["nose", ["within_2px", "within_5px"]].tolist() == [100.0, 100.0]
    assert table.loc["left_ear", "median_px"] == pytest.approx(3.0, abs=1e-4)
    assert table.loc["left_ear", ["within_2px", "within_5px"]].tolist() == [0.0, 100.0]
    assert table.loc["right_ear", "median_px"] == pytest.approx(2.0, abs=1e-4)
    assert table.loc["right_ear", "mean_px"] == pytest.approx(2.4, abs=1e-4)
    assert table.loc["right_ear", ["within_2px", "within_5px"]].tolist() == [70.0, 70.0]
    # missing points are misses: out of the median, outside every threshold
    assert table.loc["tail_base", "median_px"] == pytest.approx(0.0, abs=1e-4)
    assert table.loc["tail_base", ["within_2px", "within_5px"]].tolist() == [80.0, 80.0]
    # all: 38 found errors; 10 + 0 + 7 + 8 = 25 of 40 within 2 px
    assert table.loc["all", "within_2px"] == pytest.approx(62.5)
    assert table.loc["all", "within_5px"] == pytest.approx(87.5)
    assert table.loc["all", "median_px"] == pytest.approx(1.0, abs=1e-4)


def test_accuracy_matches_body_parts_by_name_and_common_frames():
    truth = sample.ground_truth(n_frames=8, seed=1)
    order = [3, 1, 0]  # tail_base, left_ear, nose: no right_ear
    estimate = truth.replace(
        position=(truth.position[:6][:, :, order] + 0.5).astype(np.float32),
        confidence=truth.confidence[:6][:, :, order],
        keypoints=[truth.keypoints[i] for i in order],
        skeleton=[])
    table = sample.accuracy(estimate, truth, thresholds=(0.5, 1.0))
    assert table["body_part"].tolist() == ["nose", "left_ear", "tail_base", "all"]
    assert table["points"].tolist() == [6, 6, 6, 18]
    assert np.allclose(table["median_px"], np.hypot(0.5, 0.5), atol=1e-4)
    assert table["within_0.5px"].tolist() == [0.0] * 4
    assert table["within_1px"].tolist() == [100.0] * 4


def test_accuracy_without_common_body_parts_is_an_error():
    truth = sample.ground_truth(n_frames=4, seed=1)
    other = truth.replace(keypoints=["a", "b", "c", "d"], skeleton=[])
    with pytest.raises(ValueError, match="no body part in common"):
        sample.accuracy(other, truth)
