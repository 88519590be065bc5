"""anipose 3D CSVs and calibration.toml, against aniposelib's own CameraGroup.load/dump
and a 3D CSV built column by column the way ``anipose triangulate`` writes it."""

import numpy as np
import pandas as pd
import pytest
from aniposelib.cameras import Camera, CameraGroup

from element_pose.io import PoseFormatError, detect_format, read_pose
from element_pose.io.anipose import AniposeFormatError, anipose_3d_keypoints
from element_pose.processing.threed import (
    CalibrationResult,
    CameraParams,
    read_anipose_3d,
    read_anipose_calibration,
    write_anipose_calibration,
)

BODYPARTS = ["snout", "tailbase", "paw"]


def _anipose_csv(path, points, errors, ncams, scores, m=None, center=None):
    """What anipose/triangulate.py writes (same columns, order and to_csv call)."""
    m = np.eye(3) if m is None else m
    center = np.zeros(3) if center is None else center
    dout = pd.DataFrame()
    for bp_num, bp in enumerate(BODYPARTS):
        for ax_num, axis in enumerate("xyz"):
            dout[bp + "_" + axis] = points[:, bp_num, ax_num]
        dout[bp + "_error"] = errors[:, bp_num]
        dout[bp + "_ncams"] = ncams[:, bp_num]
        dout[bp + "_score"] = scores[:, bp_num]
    for i in range(3):
        for j in range(3):
            dout[f"M_{i}{j}"] = m[i, j]
    for i in range(3):
        dout[f"center_{i}"] = center[i]
    dout["fnum"] = np.arange(len(points))
    dout.to_csv(path, index=False)
    return path


def _data(n=20):
    rng = np.random.default_rng(0)
    points = rng.normal(0, 50, (n, 3, 3))
    errors = rng.uniform(0, 4, (n, 3))
    ncams = rng.integers(2, 4, (n, 3)).astype(float)
    scores = rng.uniform(0.5, 1, (n, 3))
    points[5, 1] = np.nan  # not triangulated: anipose writes NaN for all three
    errors[5, 1] = ncams[5, 1] = scores[5, 1] = np.nan
    return points, errors, ncams, scores


def test_3d_csv_into_the_triangulation_structure(tmp_path):
    points, errors, ncams, scores = _data()
    csv = _anipose_csv(tmp_path / "trial1.csv", points, errors, ncams, scores)
    assert detect_format(csv) == "anipose_3d_csv"
    result = read_anipose_3d(csv, fps=100)
    pose = result.pose
    assert pose.keypoints == BODYPARTS and pose.n_space == 3 and pose.fps == 100
    assert pose.individuals == ["individual_0"] and pose.source_software == "anipose"
    np.testing.assert_allclose(pose.position[:, 0], points, rtol=1e-6)
    np.testing.assert_allclose(pose.confidence[:, 0], scores, rtol=1e-6)
    np.testing.assert_allclose(result.reprojection_error[:, 0], errors, rtol=1e-6)
    assert result.n_cameras.dtype == np.int16
    assert result.n_cameras[5, 0, 1] == 0 and result.n_cameras[0, 0, 0] == ncams[0, 0]
    assert result.transform is None
    assert result.summary()["keypoints"]["tailbase"]["fraction_triangulated"] == 0.95
    np.testing.assert_allclose(read_pose(csv).position, pose.position)


def test_axis_transform_is_kept_in_element_pose_terms(tmp_path):
    points, errors, ncams, scores = _data()
    angle = 0.3
    m = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                  [0, 0, 1]])
    center = np.array([5.0, -2.0, 1.0])
    written = points @ m.T - center  # anipose: all_points_3d.dot(M.T) - center
    csv = _anipose_csv(tmp_path / "t.csv", written, errors, ncams, scores, m, center)
    result = read_anipose_3d(csv)
    rotation, origin = np.array(result.transform["rotation"]), np.array(
        result.transform["origin"])
    # element-pose's convention: aligned = rotation @ (p - origin)
    np.testing.assert_allclose((points[0] - origin) @ rotation.T, written[0], atol=1e-9)


def test_bad_3d_csv_named(tmp_path):
    points, errors, ncams, scores = _data()
    scores[3, 2] = 1.7
    with pytest.raises(AniposeFormatError, match=r"s\.csv.*score.*outside"):
        read_anipose_3d(_anipose_csv(tmp_path / "s.csv", points, errors, ncams, scores))
    partial = tmp_path / "partial.csv"
    partial.write_text("snout_x,snout_y,snout_z,snout_score\n1,2,3,0.5\n")
    with pytest.raises(AniposeFormatError, match=r"partial\.csv.*lacks.*snout_error"):
        read_pose(partial, fmt="anipose_3d_csv")


def test_only_the_header_line_is_read_for_detection_and_keypoints(tmp_path):
    """Detection, validation and the keypoints read the header line, never the body."""
    points, errors, ncams, scores = _data()
    good = _anipose_csv(tmp_path / "good.csv", points, errors, ncams, scores)
    header = good.read_bytes().split(b"\n", 1)[0] + b"\n"
    corrupt = tmp_path / "corrupt_body.csv"
    corrupt.write_bytes(header + b"\xff\xfe not utf-8 \x00" * 200_000)  # a 4 MB bad body
    assert detect_format(corrupt) == "anipose_3d_csv"
    assert anipose_3d_keypoints(corrupt) == BODYPARTS
    with pytest.raises(AniposeFormatError, match=r"corrupt_body\.csv"):
        read_anipose_3d(corrupt)  # reading the values still names the file
    # a first line that never ends is refused without reading the whole file
    endless = tmp_path / "endless.csv"
    endless.write_bytes(b"snout_x," * 1_000_000)
    with pytest.raises(AniposeFormatError, match=r"endless\.csv.*header line"):
        anipose_3d_keypoints(endless)
    with pytest.raises(PoseFormatError, match=r"endless\.csv"):
        detect_format(endless)


def _camera_group():
    cams = []
    for i, name in enumerate(["cam_left", "cam_right", "cam_top"]):
        cam = Camera(
            name=name, size=(640 + 10 * i, 480),
            matrix=[[800.0 + i, 0, 320.5], [0, 805.0, 240.25], [0, 0, 1]],
            dist=[0.01 * (i + 1), 0, 0, 0, 0],
            rvec=[0.1 * i, -0.2, 0.05], tvec=[10.0 * i, -5.0, 300.0 + i])
        cams.append(cam)
    return CameraGroup(cams)


def test_calibration_made_by_aniposelib_is_read(tmp_path):
    group = _camera_group()
    path = tmp_path / "calibration.toml"
    group.dump(str(path))
    calibration = read_anipose_calibration(path)
    assert calibration.camera_names == ["cam_left", "cam_right", "cam_top"]
    for ours, theirs in zip(calibration.cameras, group.cameras, strict=True):
        np.testing.assert_allclose(ours.matrix, theirs.get_camera_matrix())
        np.testing.assert_allclose(ours.distortion, theirs.get_distortions())
        np.testing.assert_allclose(ours.rotation, theirs.get_rotation())
        np.testing.assert_allclose(ours.translation, theirs.get_translation())
        assert tuple(ours.size) == tuple(theirs.get_size())


def test_calibration_made_here_is_loaded_by_aniposelib(tmp_path):
    cams = [CameraParams(name=f"c{i}", size=(320, 240),
                         matrix=[[400.0 + i, 0, 160], [0, 401.0, 120], [0, 0, 1]],
                         distortion=[0.02, -0.01, 0, 0, 0.001], rotation=[0.0, 0.3 * i, 0.0],
                         translation=[-50.0 * i, 0.0, 400.0]) for i in range(2)]
    result = CalibrationResult(cameras=cams, reprojection_error=0.4, units="mm")
    path = write_anipose_calibration(result, tmp_path / "calib" / "calibration.toml")
    group = CameraGroup.load(str(path))
    assert group.get_names() == ["c0", "c1"]
    world = np.array([[1.0, 2.0, 3.0], [-10.0, 5.0, 20.0]])
    projected = group.project(world)
    for c, cam in enumerate(cams):
        np.testing.assert_allclose(projected[c], cam.project(world), atol=1e-6)
    back = read_anipose_calibration(path)
    assert back.reprojection_error == pytest.approx(0.4) and back.camera_names == ["c0", "c1"]


def test_bad_calibration_named(tmp_path):
    path = tmp_path / "calibration.toml"
    path.write_text('[cam_0]\nname = "a"\nsize = [10, 10]\nmatrix = [[1, 0, 0], [0, 1, 0]]\n'
                    'distortions = [0, 0, 0, 0, 0]\nrotation = [0, 0, 0]\n'
                    'translation = [0, 0, 0]\n')
    with pytest.raises(AniposeFormatError, match=r"calibration\.toml: \[cam_0\] matrix"):
        read_anipose_calibration(path)
    path.write_text("[cam_0]\nname = 'a'\n")
    with pytest.raises(AniposeFormatError, match=r"\[cam_0\] lacks"):
        read_anipose_calibration(path)
    path.write_text("not = [toml")
    with pytest.raises(AniposeFormatError, match="not valid TOML"):
        read_anipose_calibration(path)
