"""DB-free tests of the multi-camera 3D core on synthetic scenes with known geometry.

The scenes (cameras, trajectories, rendered ChArUco videos) come from
``element_pose.sample.threed``.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("aniposelib")

from element_pose.core.pose import PoseData  # noqa: E402
from element_pose.processing.threed import (  # noqa: E402
    CalibrationError,
    CalibrationResult,
    CameraParams,
    ThreeDParamsError,
    TriangulationError,
    calibrate,
    calibration_params_from_anipose,
    draw_board,
    filter_3d,
    joint_angles,
    make_board,
    triangulate,
    triangulation_params_from_anipose,
    validate_angles,
    validate_calibration_params,
    validate_filter_3d_params,
    validate_triangulation_params,
)
from element_pose.sample.threed import (  # noqa: E402
    BOARD,
    BODY,
    FOCAL,
    KEYPOINTS,
    H,
    W,
    errors_mm,
    make_cameras,
    make_trajectory,
    project_scene,
    relative_pose,
    render_board_videos,
)


@pytest.fixture(scope="module")
def cameras() -> list[CameraParams]:
    return make_cameras()


@pytest.fixture(scope="module")
def calibration(cameras) -> CalibrationResult:
    return CalibrationResult(cameras=cameras, units="mm")


@pytest.fixture(scope="module")
def scene(cameras):
    truth = make_trajectory(120)[:, None]
    return truth, project_scene(cameras, truth)


# -------------------------------------------------------------- triangulation
def test_triangulate_recovers_known_points(scene, calibration):
    truth, poses = scene
    result = triangulate(poses, calibration, {"score_threshold": 0.5})
    err = errors_mm(result.pose, truth)
    assert result.pose.position.shape == (120, 1, 4, 3)
    assert result.pose.n_space == 3
    assert np.percentile(err, 95) < 1.0 and np.nanmax(err) < 2.0 and np.nanmean(err) < 0.5
    assert np.all(result.n_cameras == 3)
    assert np.nanmax(result.reprojection_error) < 1.5
    assert np.allclose(result.pose.confidence, 0.95)
    assert result.pose.fps == 30.0
    assert result.cameras == ["left", "centre", "right"]
    step = result.pose.provenance[-1]
    assert step["step"] == "triangulate" and step["cameras"] == result.cameras
    json.dumps(step)
    json.dumps(result.summary())


def test_triangulation_matches_aniposelib(scene, calibration):
    _truth, poses = scene
    ours = triangulate(poses, calibration, {"score_threshold": 0}).pose.position
    cgroup = calibration.to_camera_group(["left", "centre", "right"])
    pts = np.stack([poses[n].position[:, 0].reshape(-1, 2) for n in ["left", "centre", "right"]])
    theirs = cgroup.triangulate(pts.astype(np.float64)).reshape(ours.shape)
    assert np.allclose(ours, theirs, atol=1e-3)


def test_calibration_dict_and_toml_round_trip(calibration, tmp_path):
    from aniposelib.cameras import CameraGroup

    d = calibration.to_dict()
    assert json.loads(json.dumps(d)) == d
    back = CalibrationResult.from_dict(d)
    for a, b in zip(calibration.cameras, back.cameras, strict=True):
        assert a.name == b.name and np.allclose(a.matrix, b.matrix)
    path = calibration.write_toml(tmp_path / "calibration.toml")
    again = CalibrationResult.from_toml(path)
    assert again.camera_names == calibration.camera_names
    for a, b in zip(calibration.cameras, again.cameras, strict=True):
        assert np.allclose(a.distortion, b.distortion) and np.allclose(a.translation, b.translation)
    anipose = CameraGroup.load(str(path))  # anipose itself reads our TOML
    assert anipose.get_names() == calibration.camera_names
    assert np.allclose(anipose.get_rotations(), [c.rotation for c in calibration.cameras])


def test_score_threshold_drops_low_confidence(scene, calibration):
    truth, poses = scene
    low = poses["right"].confidence.copy()
    low[:10] = 0.1
    poses = {**poses, "right": poses["right"].replace(confidence=low)}
    result = triangulate(poses, calibration, {"score_threshold": 0.5})
    assert np.all(result.n_cameras[:10] == 2) and np.all(result.n_cameras[10:] == 3)
    assert np.nanmax(errors_mm(result.pose, truth)) < 1.5
    # below threshold in two cameras: nothing left to triangulate
    poses = {**poses, "left": poses["left"].replace(confidence=low)}
    result = triangulate(poses, calibration, {"score_threshold": 0.5})
    assert np.all(np.isnan(result.pose.position[:10])) and np.all(result.n_cameras[:10] == 0)
    assert np.all(np.isnan(result.pose.confidence[:10]))


def test_ransac_rejects_outlier_camera(scene, calibration):
    truth, poses = scene
    bad = poses["centre"].position.copy()
    bad[::5, 0, 1] += 60.0  # a wrong detection of the neck in every 5th frame
    poses = {**poses, "centre": poses["centre"].replace(position=bad)}
    plain = triangulate(poses, calibration, {"score_threshold": 0.5})
    robust = triangulate(poses, calibration, {"score_threshold": 0.5, "ransac": True})
    assert np.nanmax(errors_mm(plain.pose, truth)[::5, 0, 1]) > 5.0
    assert np.nanmax(errors_mm(robust.pose, truth)) < 1.5
    assert np.all(robust.n_cameras[::5, 0, 1] == 2)
    assert np.all(robust.n_cameras[1::5] == 3)


def test_optim_with_limb_constraints(cameras, calibration):
    truth = make_trajectory(80)[:, None]
    poses = project_scene(cameras, truth, noise=1.5, seed=3)
    # the tail is seen by one camera only in frames 30-34: optim still places it
    for name in ("centre", "right"):
        pos = poses[name].position.copy()
        pos[30:35, 0, 3] = np.nan
        poses[name] = poses[name].replace(position=pos)
    params = {
        "score_threshold": 0.5,
        "optim": True,
        "constraints": [["snout", "neck"], ["neck", "hip"], ["hip", "tail"]],
        "scale_smooth": 2,
        "scale_length": 2,
        "n_deriv_smooth": 2,
    }
    plain = triangulate(poses, calibration, {"score_threshold": 0.5})
    optim = triangulate(poses, calibration, params)
    assert np.all(np.isnan(plain.pose.position[30:35, 0, 3]))
    assert np.all(np.isfinite(optim.pose.position[30:35, 0, 3]))
    assert np.all(optim.n_cameras[30:35, 0, 3] == 1)
    err_plain = np.nanmean(errors_mm(plain.pose, truth))
    err_optim = np.nanmean(errors_mm(optim.pose, truth))
    assert err_optim < 2.0 and err_optim <= err_plain * 1.1

    def length_sd(pose):
        d = np.linalg.norm(pose.position[:, 0, 0] - pose.position[:, 0, 1], axis=-1)
        return np.nanstd(d)

    assert length_sd(optim.pose) < length_sd(plain.pose)


def test_multi_animal_matched_by_name(cameras, calibration):
    truth = np.stack([make_trajectory(40), make_trajectory(40, phase=np.pi)], axis=1)
    poses = project_scene(cameras, truth, individuals=["mouse1", "mouse2"])
    # another order of individuals and keypoints in one camera must not matter
    poses["right"] = poses["right"].select(
        keypoints=KEYPOINTS[::-1], individuals=["mouse2", "mouse1"]
    )
    result = triangulate(poses, calibration, {"score_threshold": 0.5})
    assert result.pose.individuals == ["mouse1", "mouse2"]
    assert result.pose.keypoints == KEYPOINTS
    assert np.nanmax(errors_mm(result.pose, truth)) < 1.0


def test_axes_and_reference_point(scene, calibration):
    _truth, poses = scene
    params = {
        "score_threshold": 0.5,
        "axes": [["x", "tail", "snout"], ["y", "snout", "hip"]],
        "reference_point": "hip",
    }
    result = triangulate(poses, calibration, params)
    pos = result.pose.position.astype(np.float64)
    assert np.allclose(np.median(pos[:, 0, 2], axis=0), 0.0, atol=1e-4)  # hip at the origin
    rotation = np.array(result.transform["rotation"])
    assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    direction = np.median(pos[:, 0, 0] - pos[:, 0, 3], axis=0)  # tail -> snout along +x
    assert direction[0] > 0 and abs(direction[1]) < 1.0
    # distances are preserved, and the transform maps calibration-frame points
    plain = triangulate(poses, calibration, {"score_threshold": 0.5}).pose.position.astype(float)
    origin = np.array(result.transform["origin"])
    assert np.allclose((plain - origin) @ rotation.T, pos, atol=1e-3)
    # reference point alone: a pure shift
    shifted = triangulate(poses, calibration, {"score_threshold": 0.5, "reference_point": "neck"})
    assert np.allclose(np.array(shifted.transform["rotation"]), np.eye(3))


def test_triangulation_input_errors(scene, calibration):
    _truth, poses = scene
    short = {
        **poses,
        "right": PoseData(
            position=poses["right"].position[:100],
            confidence=poses["right"].confidence[:100],
            keypoints=KEYPOINTS,
            individuals=poses["right"].individuals,
            fps=30.0,
        ),
    }
    with pytest.raises(TriangulationError, match="number of frames"):
        triangulate(short, calibration)
    with pytest.raises(TriangulationError, match="frame rate"):
        triangulate({**poses, "left": poses["left"].replace(fps=25.0)}, calibration)
    with pytest.raises(TriangulationError, match=r"camera 'centre' lacks body parts \['tail'\]"):
        triangulate(
            {**poses, "centre": poses["centre"].select(keypoints=KEYPOINTS[:3])}, calibration
        )
    with pytest.raises(TriangulationError, match="not in the calibration"):
        triangulate({"left": poses["left"], "top": poses["right"]}, calibration)
    with pytest.raises(TriangulationError, match="individuals"):
        triangulate({**poses, "left": poses["left"].replace(individuals=["other"])}, calibration)
    with pytest.raises(TriangulationError, match=r"unknown body parts in constraints: \['paw'\]"):
        triangulate(poses, calibration, {"optim": True, "constraints": [["snout", "paw"]]})
    with pytest.raises(TriangulationError, match="unknown body parts in axes"):
        triangulate(poses, calibration, {"axes": [["x", "snout", "ear"], ["y", "neck", "hip"]]})
    with pytest.raises(TriangulationError, match="reference_point"):
        triangulate(poses, calibration, {"reference_point": "ear"})
    with pytest.raises(TriangulationError, match="at least two cameras"):
        triangulate({"left": poses["left"]}, calibration)
    # the plain-dict calibration works as well as the object
    assert triangulate(poses, calibration.to_dict()).pose.n_frames == 120


def test_triangulation_params_validation():
    p = validate_triangulation_params({})
    assert p["score_threshold"] == 0.8 and p["ransac"] is False and p["axes"] == []
    assert validate_triangulation_params({"scale_smooth": 2}) == validate_triangulation_params(
        {"scale_smooth": 2.0}
    )
    json.dumps(p)
    for bad in (
        {"ransac": "yes"},
        {"unknown": 1},
        {"reproj_loss": "cauchy"},
        {"axes": [["x", "a", "b"], ["x", "c", "d"]]},
        {"axes": [["w", "a", "b"], ["x", "c", "d"]]},
        {"constraints": [["a"]]},
        {"min_cameras": 1},
    ):
        with pytest.raises(ThreeDParamsError):
            validate_triangulation_params(bad)
    anipose = triangulation_params_from_anipose(
        {
            "optim": True,
            "cam_regex": "cam([0-9])",
            "constraints": [["a", "b"]],
            "score_threshold": 0.5,
        }
    )
    assert anipose["optim"] is True and anipose["constraints"] == [["a", "b"]]


# ---------------------------------------------------------- filtering, angles
def test_filter_3d_removes_spikes_and_interpolates(scene, calibration):
    truth, poses = scene
    pose = triangulate(poses, calibration, {"score_threshold": 0.5}).pose
    spiky = pose.position.copy()
    spiky[50, 0, 1] += [80.0, 0.0, 0.0]
    spiky[70:72, 0, 2] += [0.0, 0.0, -60.0]
    pose = pose.replace(position=spiky)
    out = filter_3d(pose, {"medfilt": 7, "offset_threshold": 20.0, "max_gap": 5})
    err = errors_mm(out, truth)
    assert err[50, 0, 1] < 3.0 and np.all(err[70:72, 0, 2] < 3.0)
    assert out.confidence[50, 0, 1] == 0.0 and out.confidence[49, 0, 1] > 0.9
    step = out.provenance[-1]
    assert step["step"] == "filter_3d" and step["n_removed_offset"] == 3
    assert step["n_interpolated"] == 3
    assert pose.position[50, 0, 1, 0] == spiky[50, 0, 1, 0]  # input untouched
    # no interpolation: the outliers stay missing
    out = filter_3d(pose, {"offset_threshold": 20.0, "interpolate": False})
    assert np.isnan(out.position[50, 0, 1]).all() and np.isnan(out.confidence[50, 0, 1])
    with pytest.raises(ThreeDParamsError):
        validate_filter_3d_params({"medfilt": 4})


@pytest.mark.parametrize(("what", "check", "key", "value", "message"), [
    ("filter_3d", validate_filter_3d_params, "medfilt", True, "must be an integer, got True"),
    ("filter_3d", validate_filter_3d_params, "medfilt", 2.5, "must be an integer, got 2.5"),
    ("filter_3d", validate_filter_3d_params, "max_gap", 0, "must be >= 1, got 0"),
    ("filter_3d", validate_filter_3d_params, "interpolate", 1,
     "must be true or false, got 1"),
    ("filter_3d", validate_filter_3d_params, "offset_threshold", 0, "must be > 0, got 0"),
    ("filter_3d", validate_filter_3d_params, "offset_threshold", float("nan"),
     "must be a number, got nan"),
    ("filter_3d", validate_filter_3d_params, "score_threshold", -0.5,
     "must be >= 0, got -0.5"),
    ("triangulation", validate_triangulation_params, "min_cameras", True,
     "must be integer >= 2, got True"),
    ("triangulation", validate_triangulation_params, "min_cameras", 1,
     "must be integer >= 2, got 1"),
    ("triangulation", validate_triangulation_params, "ransac", 1,
     "must be true/false, got 1"),
    ("triangulation", validate_triangulation_params, "ransac_threshold", 0,
     "must be number > 0, got 0"),
    ("triangulation", validate_triangulation_params, "scale_smooth", float("nan"),
     "must be number >= 0, got nan"),
])
def test_3d_params_share_their_checks_and_messages(what, check, key, value, message):
    """The filter's integers, flags and numbers are checked by the helpers that the
    triangulation and calibration parameters use: the same rules and words."""
    with pytest.raises(ThreeDParamsError,
                       match=rf"^{what} params?:? '{key}' {re.escape(message)}$"):
        check({key: value})


def test_joint_angles_known_configuration():
    position = np.array(
        [
            [[[1, 0, 0], [0, 0, 0], [0, 2, 0]]],  # right angle at b
            [[[1, 0, 0], [0, 0, 0], [-3, 0, 0]]],  # straight
            [[[1, 1, 0], [0, 0, 0], [1, 0, 0]]],  # 45 degrees
            [[[np.nan, 0, 0], [0, 0, 0], [1, 0, 0]]],  # missing
        ],
        dtype=float,
    )
    pose = PoseData(
        position=position,
        confidence=np.ones(position.shape[:3]),
        keypoints=["a", "b", "c"],
        individuals=["ind"],
    )
    angles = joint_angles(pose, {"abc": ["a", "b", "c"], "cba": ["c", "b", "a"]})
    assert angles["abc"].shape == (4, 1)
    assert np.allclose(angles["abc"][:3, 0], [90.0, 180.0, 45.0])
    assert np.isnan(angles["abc"][3, 0])
    assert np.allclose(angles["abc"][:3], angles["cba"][:3])
    with pytest.raises(ThreeDParamsError, match="unknown body parts"):
        joint_angles(pose, {"bad": ["a", "b", "knee"]})
    with pytest.raises(ThreeDParamsError):
        validate_angles({"bad": ["a", "b"]})


# ---------------------------------------------------------------- calibration
@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    truth = make_cameras(distortion=False)
    videos = render_board_videos(truth, tmp_path_factory.mktemp("calib"))
    return truth, calibrate(videos, BOARD)


def test_calibration_recovers_camera_geometry(calibrated):
    truth, result = calibrated
    assert result.camera_names == ["left", "centre", "right"]
    assert result.n_detections == {"left": 10, "centre": 10, "right": 10}
    assert result.reprojection_error < 1.0
    assert result.units == "mm" and result.params["type"] == "charuco"
    for cam in result.cameras:
        assert cam.size == (W, H)
        assert cam.focal_length == pytest.approx(FOCAL, rel=0.03)
    for i in (1, 2):
        r_true, t_true = relative_pose(truth[0], truth[i])
        r_cal, t_cal = relative_pose(result.cameras[0], result.cameras[i])
        angle = np.degrees(np.linalg.norm(cv2.Rodrigues(r_true.T @ r_cal)[0]))
        assert angle < 1.0
        assert np.linalg.norm(t_cal - t_true) < 0.04 * np.linalg.norm(t_true)
    d = result.to_dict()
    assert json.loads(json.dumps(d)) == d
    again = CalibrationResult.from_toml(result.to_toml())
    assert again.params == result.params and again.reprojection_error == result.reprojection_error


def test_calibrated_cameras_triangulate_true_lengths(calibrated):
    truth_cams, result = calibrated
    truth = make_trajectory(30)[:, None]
    poses = project_scene(truth_cams, truth, noise=0.2)
    pose = triangulate(poses, result, {"score_threshold": 0.5}).pose
    true_len = np.linalg.norm(BODY[3] - BODY[0])
    length = np.linalg.norm(pose.position[:, 0, 3] - pose.position[:, 0, 0], axis=-1)
    assert np.allclose(length, true_len, rtol=0.03)


def test_board_never_detected_names_camera(tmp_path):
    truth = make_cameras(distortion=False)
    videos = render_board_videos(truth, tmp_path, n_views=4, blank=("right",))
    with pytest.raises(CalibrationError, match=r"never detected in camera 'right' \(.*calib_right"):
        calibrate(videos, BOARD)
    with pytest.raises(CalibrationError, match="too few board detections in camera 'left'"):
        calibrate(videos, {**BOARD, "min_detections": 5})


def test_unlinked_cameras_are_named():
    from element_pose.processing.threed.calibration import _check_linked

    ids = np.arange(12)
    rows = [
        [{"framenum": (0, 1), "ids": ids}, {"framenum": (0, 2), "ids": ids}],
        [{"framenum": (0, 1), "ids": ids}],
        [{"framenum": (0, 3), "ids": ids}],
    ]
    with pytest.raises(CalibrationError, match=r"\[\['a', 'b'\], \['c'\]\]"):
        _check_linked(["a", "b", "c"], rows)
    rows[2].append({"framenum": (0, 2), "ids": ids})
    _check_linked(["a", "b", "c"], rows)


def test_board_detection_and_legacy_pattern():
    for legacy in (False, True):
        params = {**BOARD, "squares_y": 6, "legacy_pattern": legacy}
        image = draw_board(params, 4.0, margin=40)
        _corners, ids = make_board(params).detect_image(image)
        assert len(ids) == (params["squares_x"] - 1) * (params["squares_y"] - 1)


def test_calibration_params_validation():
    p = validate_calibration_params(BOARD)
    assert p["marker_bits"] == 4 and p["dict_size"] == 50 and p["units"] == "mm"
    assert p == validate_calibration_params({**BOARD, "square_length": 25, "dict_size": 50})
    json.dumps(p)
    checker = validate_calibration_params(
        {
            "type": "checkerboard",
            "squares_x": 8,
            "squares_y": 6,
            "square_length": 20,
            "marker_length": 5,
        }
    )
    assert checker["marker_length"] is None and checker["dict_size"] is None
    for bad in (
        {**BOARD, "colour": "red"},
        {**BOARD, "type": "aruco"},
        {**BOARD, "marker_length": 30.0},
        {**BOARD, "squares_x": 3, "squares_y": 3},
        {**BOARD, "squares_x": 12, "squares_y": 10},  # 60 markers > 50
        {**BOARD, "marker_bits": 3},
        {k: v for k, v in BOARD.items() if k != "square_length"},
        {**BOARD, "bundle_adjust": {"n_iters": 0}},
    ):
        with pytest.raises(ThreeDParamsError):
            validate_calibration_params(bad)
    anipose = calibration_params_from_anipose(
        {
            "board_type": "charuco",
            "board_size": [7, 5],
            "board_marker_bits": 4,
            "board_marker_dict_number": 50,
            "board_marker_length": 18.75,
            "board_square_side_length": 25,
            "animal_calibration": False,
        }
    )
    assert (anipose["squares_x"], anipose["squares_y"], anipose["marker_length"]) == (7, 5, 18.75)
    anipose = calibration_params_from_anipose(
        {"board_type": "checkerboard", "board_size": [7, 5], "board_square_side_length": 20}
    )
    assert (anipose["squares_x"], anipose["squares_y"]) == (8, 6)
