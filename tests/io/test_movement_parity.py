"""Our readers and movement's loaders (``movement.io.load_poses.from_file``) give equal
values on the same file, one test per format movement reads.

Our readers stay (see the module docstrings of :mod:`element_pose.io.dlc`,
:mod:`element_pose.io.sleap`, :mod:`element_pose.io.lightning_pose` and
:mod:`element_pose.io.anipose` for what movement 0.15 lacks); these tests pin that both
read the same numbers.  The comparison is by keypoint and individual name (movement
sorts anipose keypoints by name), on points that have a position (movement keeps the
point score of a missing SLEAP point; we leave it NaN).
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import sleap_io as sio
from movement.io import load_poses, save_poses

from element_pose import sample
from element_pose.io import read_pose

NODES = ["nose", "ear", "tail"]


def _movement(path, software, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_poses.from_file(path, software, **kw)


def assert_same_values(ds, pose, individuals=None):
    """movement's dataset and our PoseData hold the same positions and confidences.

    Args:
        ds: movement's dataset (time, space, keypoints, individuals).
        pose: Ours (frames, individuals, keypoints, space).
        individuals: movement's names of our individuals, in our order (default: ours).
    """
    names = list(pose.individuals) if individuals is None else list(individuals)
    assert sorted(str(k) for k in ds.keypoints.values) == sorted(pose.keypoints)
    assert sorted(str(i) for i in ds.individuals.values) == sorted(names)
    sel = {"keypoints": list(pose.keypoints), "individuals": names}
    position = ds.position.sel(sel).transpose("time", "individuals", "keypoints", "space")
    confidence = ds.confidence.sel(sel).transpose("time", "individuals", "keypoints")
    assert position.shape == pose.position.shape
    np.testing.assert_allclose(pose.position, position.values, rtol=1e-6, equal_nan=True)
    present = ~np.isnan(pose.position).any(axis=-1)
    assert np.array_equal(present, ~np.isnan(position.values).any(axis=-1))
    np.testing.assert_allclose(pose.confidence[present], confidence.values[present], rtol=1e-6)


# ------------------------------------------------------------------ DeepLabCut
@pytest.mark.parametrize("n_individuals", [1, 2])
def test_dlc_h5(tmp_path, n_individuals):
    truth = sample.ground_truth(n_frames=25, n_individuals=n_individuals, fps=30)
    if n_individuals == 1:
        h5 = sample.make_dlc_output(truth, tmp_path / "v.mp4", tmp_path, scorer="DLC_x_snap_5")
    else:
        h5 = tmp_path / "vDLC_x_snap_5.h5"
        truth.to_dlc_dataframe(scorer="DLC_x_snap_5").to_hdf(h5, key="df_with_missing")
    pose = read_pose(h5, fmt="dlc_h5", fps=30)
    assert len(pose.individuals) == n_individuals
    assert_same_values(_movement(h5, "DeepLabCut", fps=30), pose)


@pytest.mark.parametrize("n_individuals", [1, 2])
def test_dlc_csv(tmp_path, n_individuals):
    truth = sample.ground_truth(n_frames=25, n_individuals=n_individuals, fps=30)
    csv = tmp_path / "vDLC_x_snap_5.csv"
    truth.to_dlc_dataframe(scorer="DLC_x_snap_5").to_csv(csv)
    pose = read_pose(csv, fmt="dlc_csv", fps=30)
    assert len(pose.individuals) == n_individuals
    assert_same_values(_movement(csv, "DeepLabCut", fps=30), pose)


# ----------------------------------------------------------------------- SLEAP
def _labels(tracked: bool = True):
    """Two tracked mice over frames 2..9 (one point missing, one mouse absent once), or
    one untracked animal."""
    skeleton = sio.Skeleton(list(NODES), edges=[("nose", "ear"), ("ear", "tail")])
    video = sio.Video(filename="session1.mp4", open_backend=False)
    tracks = [sio.Track("mouse_a"), sio.Track("mouse_b")] if tracked else [None]
    frames = []
    for f in range(2, 10):
        instances = []
        for t, track in enumerate(tracks):
            if t == 1 and f == 6:
                continue
            pts = np.arange(6, dtype=float).reshape(3, 2) + 100 * t + f + 0.25
            if f == 4:
                pts[1] = np.nan
            instances.append(sio.PredictedInstance.from_numpy(
                pts, skeleton=skeleton, point_scores=np.array([0.5, 0.75, 0.9]) - 0.01 * f,
                score=0.8, track=track))
        frames.append(sio.LabeledFrame(video=video, frame_idx=f, instances=instances))
    return sio.Labels(frames, videos=[video], skeletons=[skeleton],
                      tracks=[t for t in tracks if t is not None])


@pytest.mark.parametrize("name", ["preds.slp", "preds.analysis.h5"])
@pytest.mark.parametrize("tracked", [True, False])
def test_sleap(tmp_path, name, tracked):
    path = tmp_path / name
    (sio.save_slp if name.endswith(".slp") else sio.save_analysis_h5)(
        _labels(tracked), str(path))
    pose = read_pose(path)
    # an untracked animal: movement names it id_0 (.slp) or track_0 (analysis .h5); we
    # name it individual_0 in both
    untracked = "id_0" if name.endswith(".slp") else "track_0"
    assert_same_values(_movement(path, "SLEAP"), pose, None if tracked else [untracked])


# -------------------------------------------------------------- Lightning Pose
def test_lightning_pose_csv(tmp_path):
    rng = np.random.default_rng(3)
    position = rng.uniform(0, 300, (15, 2, 3, 1))
    confidence = rng.uniform(0, 1, (15, 3, 1))
    position[4, :, 1] = np.nan
    confidence[4, 1] = np.nan
    ds = load_poses.from_numpy(position_array=position, confidence_array=confidence,
                               individual_names=["individual_0"], keypoint_names=NODES,
                               fps=30, source_software="LightningPose")
    save_poses.to_lp_file(ds, tmp_path / "mouse1.csv")
    (csv,) = sorted(tmp_path.glob("mouse1*.csv"))
    pose = read_pose(csv, fmt="lightning_pose_csv", fps=30)
    assert_same_values(_movement(csv, "LightningPose", fps=30), pose)


# --------------------------------------------------------------------- anipose
def test_anipose_3d_csv(tmp_path):
    rng = np.random.default_rng(0)
    keypoints = ["snout", "tailbase", "paw"]  # not in name order: movement sorts them
    n = 20
    out = pd.DataFrame()
    for k in keypoints:
        point = rng.normal(0, 50, (n, 3))
        point[5] = np.nan if k == "paw" else point[5]
        for a, axis in enumerate("xyz"):
            out[f"{k}_{axis}"] = point[:, a]
        out[f"{k}_error"] = np.where(np.isnan(point[:, 0]), np.nan, rng.uniform(0, 4, n))
        out[f"{k}_ncams"] = np.where(np.isnan(point[:, 0]), np.nan, 2.0)
        out[f"{k}_score"] = np.where(np.isnan(point[:, 0]), np.nan, rng.uniform(0.5, 1, n))
    for i in range(3):
        for j in range(3):
            out[f"M_{i}{j}"] = float(i == j)
    for i in range(3):
        out[f"center_{i}"] = 0.0
    out["fnum"] = np.arange(n)
    csv = tmp_path / "trial1.csv"
    out.to_csv(csv, index=False)
    pose = read_pose(csv, fmt="anipose_3d_csv", fps=100)
    assert pose.keypoints == keypoints
    # movement names the one animal id_0; we name it individual_0
    assert_same_values(_movement(csv, "Anipose", fps=100), pose, ["id_0"])
