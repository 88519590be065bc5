"""Lightning Pose reader, against CSVs written by movement's saver and by hand in the
documented layout (scorer/bodyparts/coords header, frame index first)."""

import numpy as np
import pytest
from movement.io import load_poses, save_poses

from element_pose.io import detect_format, read_pose
from element_pose.io.lightning_pose import (
    LightningPoseFormatError,
    detect_lightning_pose_csv,
    find_lightning_pose_output,
    read_lightning_pose_views,
)

KEYPOINTS = ["paw_l", "paw_r", "nose"]


def _arrays(n_frames=15, offset=0.0):
    rng = np.random.default_rng(3)
    position = rng.uniform(0, 300, (n_frames, 1, 3, 2)).astype(np.float32) + offset
    confidence = rng.uniform(0, 1, (n_frames, 1, 3)).astype(np.float32)
    position[4, 0, 1] = np.nan
    confidence[4, 0, 1] = np.nan
    return position, confidence


def _write_with_movement(path, position, confidence, scorer="heatmap_tracker"):
    ds = load_poses.from_numpy(
        position_array=np.transpose(position, (0, 3, 2, 1)),
        confidence_array=np.transpose(confidence, (0, 2, 1)),
        individual_names=["individual_0"], keypoint_names=KEYPOINTS, fps=30,
        source_software="LightningPose")
    ds.attrs["scorer"] = scorer
    save_poses.to_lp_file(ds, path)
    written = sorted(path.parent.glob(f"{path.stem}*.csv"))
    assert len(written) == 1
    return written[0]


def _write_by_hand(path, rows, scorer="heatmap_tracker", extra_header=None):
    head = [["scorer"] + [scorer] * 3 * len(KEYPOINTS),
            ["bodyparts"] + [k for k in KEYPOINTS for _ in range(3)],
            ["coords"] + ["x", "y", "likelihood"] * len(KEYPOINTS)]
    if extra_header:
        for line, extra in zip(head, extra_header, strict=True):
            line.append(extra)
    lines = [",".join(h) for h in head] + [",".join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_written_by_movement(tmp_path):
    position, confidence = _arrays()
    csv = _write_with_movement(tmp_path / "mouse1.csv", position, confidence)
    assert detect_format(csv) == "lightning_pose_csv"
    pose = read_pose(csv, fps=30)
    assert pose.keypoints == KEYPOINTS and pose.individuals == ["individual_0"]
    assert pose.source_software == "Lightning Pose" and pose.fps == 30
    np.testing.assert_allclose(pose.position, position, rtol=1e-6)
    np.testing.assert_allclose(pose.confidence, confidence, rtol=1e-6)


def test_documented_layout_with_gaps_and_set_column(tmp_path):
    rows = [[f] + [f + 0.5, 2 * f, 0.9] * 3 + ["train"] for f in (0, 1, 3)]
    csv = _write_by_hand(tmp_path / "v.csv", rows, extra_header=["set", "", ""])
    pose = read_pose(csv)
    assert pose.n_frames == 4
    assert np.isnan(pose.position[2]).all()
    np.testing.assert_allclose(pose.position[3, 0, 2], [3.5, 6.0])
    np.testing.assert_allclose(pose.confidence[1, 0], [0.9] * 3, rtol=1e-6)


def test_bad_files_are_refused_naming_them(tmp_path):
    rows = [[0] + [1.0, 2.0, 1.5] * 3]
    with pytest.raises(LightningPoseFormatError, match=r"high\.csv.*likelihood.*outside"):
        read_pose(_write_by_hand(tmp_path / "high.csv", rows))
    rows = [["labeled-data/img001.png"] + [1.0, 2.0, 0.5] * 3]
    with pytest.raises(LightningPoseFormatError, match=r"images\.csv.*labelled images"):
        read_pose(_write_by_hand(tmp_path / "images.csv", rows))
    bad = tmp_path / "plain.csv"
    bad.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(LightningPoseFormatError, match=r"plain\.csv is not a Lightning Pose"):
        read_pose(bad, fmt="lightning_pose_csv")


def test_deeplabcut_scorer_is_not_taken_for_lightning_pose(tmp_path):
    rows = [[0] + [1.0, 2.0, 0.5] * 3]
    dlc_csv = _write_by_hand(tmp_path / "vDLC_resnet50_x.csv", rows,
                             scorer="DLC_resnet50_xshuffle1_snapshot_5")
    assert not detect_lightning_pose_csv(dlc_csv)


def test_multi_view_as_separate_recordings_and_finding_outputs(tmp_path):
    preds = tmp_path / "video_preds"
    preds.mkdir()
    views = {}
    for i, view in enumerate(["top", "side"]):
        position, confidence = _arrays(offset=100 * i)
        views[view] = _write_with_movement(preds / f"sess1_{view}.csv", position, confidence)
        (preds / f"{views[view].stem}_temporal_norm.csv").write_text("x\n1\n")
        (preds / f"{views[view].stem}_pca_singleview_error.csv").write_text("x\n1\n")
    found = {v: find_lightning_pose_output(tmp_path / f"{p.stem}.mp4", tmp_path)
             for v, p in views.items()}
    assert found == views
    poses = read_lightning_pose_views(found, fps=60)
    assert list(poses) == ["top", "side"]
    np.testing.assert_allclose(poses["side"].position, _arrays(offset=100)[0], rtol=1e-6)
    with pytest.raises(LightningPoseFormatError, match="no Lightning Pose predictions"):
        find_lightning_pose_output(tmp_path / "other.mp4", tmp_path)
