"""The demo: its accuracy against the generator's known positions (issue 27, item 16)
and what a second run reuses (item 17)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from element_pose import sample

ACCURACY_LINE = re.compile(
    r"^accuracy against the generator's known positions \(all body parts\): median "
    r"(?P<median>[0-9.]+) px, (?P<within2>[0-9.]+)% within 2 px, (?P<within5>[0-9.]+)% "
    r"within 5 px$", re.MULTILINE)


def run_cli(*args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "element_pose.cli", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def _demo_env(tmp_path, name: str) -> dict:
    """A demo of its own: roots under tmp_path, schemas with their own prefix."""
    return {**os.environ, "ELEMENT_POSE_ROOT_DIRS": str(tmp_path),
            "ELEMENT_POSE_PROCESSED_DIR": str(tmp_path / "processed"),
            "ELEMENT_POSE_SCHEMA_PREFIX": os.environ["ELEMENT_POSE_SCHEMA_PREFIX"] + name}


def _accuracy(stdout: str) -> dict[str, float]:
    match = ACCURACY_LINE.search(stdout)
    assert match, stdout
    return {k: float(v) for k, v in match.groupdict().items()}


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


@pytest.mark.usefixtures("pipeline")
def test_second_demo_says_what_it_reuses_and_fresh_makes_it_again(tmp_path):
    env = _demo_env(tmp_path, "reuse")
    first = run_cli("demo", "--mode", "load", "--frames", "30", env=env)
    assert first.returncode == 0, first.stderr
    assert "reusing" not in first.stdout
    # load mode ingests the generator's outputs: truth + 1 px noise
    acc = _accuracy(first.stdout)
    assert 0.8 < acc["median"] < 1.6 and acc["within5"] > 95

    second = run_cli("demo", "--mode", "load", "--frames", "30", env=env)
    assert second.returncode == 0, second.stderr
    reused = [line for line in second.stdout.splitlines() if line.startswith("reusing")]
    assert len(reused) == 3, second.stdout
    assert reused[0].startswith("reusing the sample DeepLabCut project generated 20")
    assert reused[1].startswith("reusing the session video generated 20")
    assert reused[2].startswith("reusing the pose estimates of 20")
    assert all(line.endswith("pass --fresh to make it again") for line in reused)
    assert _accuracy(second.stdout) == acc

    video = tmp_path / "sessions" / "demo-mouse" / "session1" / "camera0.mp4"
    before = video.stat().st_mtime_ns
    fresh = run_cli("demo", "--mode", "load", "--frames", "30", "--fresh", env=env)
    assert fresh.returncode == 0, fresh.stderr
    assert "reusing" not in fresh.stdout
    assert video.stat().st_mtime_ns != before  # generated again
    assert _accuracy(fresh.stdout) == acc  # the same seeds: the same data

    # a project generated by an older demo (fewer labelled frames) is made again, not
    # reused (training it with today's parameters would fail)
    next((tmp_path / "dlc_project" / "labeled-data").glob("*/img*.png")).unlink()
    before = video.stat().st_mtime_ns
    upgraded = run_cli("demo", "--mode", "load", "--frames", "30", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "reusing" not in upgraded.stdout
    assert "199 labelled frames, not the 200" in upgraded.stderr
    assert video.stat().st_mtime_ns != before


@pytest.mark.slow
@pytest.mark.usefixtures("pipeline")
def test_full_demo_meets_three_pixels(tmp_path):
    """`element-pose demo` trains (DEMO_TRAINING_PARAMS, a few minutes on 2 cores),
    infers on the session video through populate() and lands within 3 px (median)."""
    env = _demo_env(tmp_path, "full")
    result = run_cli("demo", "--mode", "full", env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    print(result.stdout[-2000:])  # the accuracy it printed (shown with -rP)
    acc = _accuracy(result.stdout)
    assert acc["median"] <= 3.0, result.stdout
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("body_part"))
    per_part = {line.split()[0]: float(line.split()[3]) for line in lines[header + 1:header + 5]}
    assert set(per_part) == set(sample.DEFAULT_BODYPARTS)
    assert all(px <= 5.0 for px in per_part.values()), result.stdout
