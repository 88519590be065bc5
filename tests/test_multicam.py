"""The multicam schema on a real database: calibration, camera groups, triangulation.

One session holds everything: ChArUco board videos rendered for three known cameras
are calibrated once; camera groups of synthetic recordings (2D poses projected from a
known 3D trajectory, loaded as DeepLabCut outputs) are triangulated with it.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("aniposelib")

from element_pose import sample
from element_pose.core.pose import SINGLE_INDIVIDUAL
from element_pose.io import dlc
from element_pose.io.video import write_video
from element_pose.processing.threed import (
    CalibrationResult,
    ThreeDParamsError,
)
from element_pose.sample.threed import (
    BOARD,
    FOCAL,
    H,
    W,
    make_cameras,
    make_trajectory,
    project_scene,
    relative_pose,
    render_board_videos,
)

pytestmark = pytest.mark.usefixtures("pipeline")

PARTS = list(sample.DEFAULT_BODYPARTS)  # nose, left_ear, right_ear, tail_base
# a rigid body with a right angle at left_ear between nose and right_ear
BODY = np.array([[0.0, 0.0, 0.0], [30.0, 0.0, 0.0], [30.0, 0.0, 30.0], [80.0, 5.0, 10.0]])
N_FRAMES = 30
SCORER = "DLC_Resnet50_demoJan1shuffle1_snapshot_best-10"
TRIANGULATION_PARAMS = {
    "score_threshold": 0.5,
    "filter_3d": {"medfilt": 5, "offset_threshold": 20.0},
    "angles": {"ear_angle": ["nose", "left_ear", "right_ear"]},
}


@pytest.fixture(scope="module")
def multicam(pipeline):
    """The multicam module, activated here unless the workflow already did it.

    The test session's teardown drops it with the pipeline's other schemas
    (``workflow.pipeline.schemas_in_drop_order``).
    """
    from element_pose.schemas import multicam as mc

    if not mc.schema.is_activated():
        mc.activate(os.environ["ELEMENT_POSE_SCHEMA_PREFIX"] + "multicam",
                    linking_module=pipeline)
    return mc


@pytest.fixture(scope="module")
def scene(pipeline, multicam, raw_root, processed_root):
    """A session, its calibration (populated), a model and the true cameras."""
    token = os.urandom(4).hex()
    pipeline.lab.Device.insert(({"device": f"mc_{name}"} for name in ("left", "centre", "right")),
                               skip_duplicates=True)
    pipeline.subject.Subject.insert1(
        {"subject": f"mc{token}", "sex": "F", "species": "Mus musculus",
         "subject_birth_date": datetime.date(2025, 1, 1)})
    session = {"subject": f"mc{token}", "session_id": 1}
    pipeline.session.Session.insert1({**session,
                                      "session_datetime": datetime.datetime(2026, 1, 2)})
    folder = raw_root / f"multicam_{token}"
    truth_cams = make_cameras(distortion=False)
    videos = render_board_videos(truth_cams, folder / "calibration")
    paramset = multicam.CalibrationParamSet.insert_new_params("6x5 charuco", BOARD)
    calib = multicam.CalibrationTask.insert_calibration_task(session, 1, videos, paramset)
    multicam.Calibration.populate(calib)
    project = sample.make_dlc_project(raw_root / f"mcproject_{token}", n_frames=10, n_labeled=2)
    model_key = pipeline.model.Model.insert_new_model(f"mc_{token}", project)
    tri_params = multicam.TriangulationParamSet.insert_new_params("3d", TRIANGULATION_PARAMS)
    return {"session": session, "folder": folder, "truth_cams": truth_cams, "calib": calib,
            "model": model_key, "tri_params": tri_params, "outputs": processed_root / token,
            "cal_paramset": paramset}


def _add_group(pipeline, multicam, scene, group_id: int, *, frames=None, drop_part=None,
               estimate=("left", "centre", "right")):
    """Recordings of the three cameras, their load-mode estimations and a camera group.

    Returns the group key, the triangulation task key and the 3D truth.
    """
    model = pipeline.model
    frames = frames or {}
    truth = make_trajectory(N_FRAMES, body=BODY)[:, None]
    poses = project_scene(scene["truth_cams"], truth, noise=0.3, seed=group_id,
                          individuals=[SINGLE_INDIVIDUAL], keypoints=PARTS)
    members = {}
    for i, (camera, pose) in enumerate(poses.items()):
        rid = 10 * group_id + i
        n = frames.get(camera, N_FRAMES)
        video = write_video(scene["folder"] / f"rec{rid}.mp4",
                            [np.zeros((H, W, 3), np.uint8)] * n, fps=30.0)
        pose = pose.replace(position=pose.position[:n], confidence=pose.confidence[:n])
        if drop_part and drop_part[0] == camera:
            k = PARTS.index(drop_part[1])
            position, confidence = pose.position.copy(), pose.confidence.copy()
            position[:, :, k] = np.nan
            confidence[:, :, k] = np.nan
            pose = pose.replace(position=position, confidence=confidence)
        outputs = scene["outputs"] / f"rec{rid}"
        dlc.write_dlc_h5(pose, outputs / f"{video.stem}{SCORER}.h5", scorer=SCORER)
        key = model.VideoRecording.insert_recording(scene["session"], rid,
                                                    {"device": f"mc_{camera}"}, [video])
        model.RecordingInfo.populate(key)
        task = model.PoseEstimationTask.insert_estimation_task(
            {**key, **scene["model"]}, "load", output_dir=outputs)
        if camera in estimate:
            model.PoseEstimation.populate(task)
        members[camera] = rid
    group = multicam.CameraGroup.insert_camera_group(scene["session"], group_id, 1, members)
    task = {**group, **scene["model"], "triangulation_paramset_id": scene["tri_params"]}
    multicam.TriangulationTask.insert1(task)
    return group, task, truth


def _rigid_fit(points: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``points`` moved onto ``truth`` by the best rotation and translation (Kabsch).

    The calibration's world frame is its own; lengths are in the board's unit, so no
    scale is fitted.
    """
    p, q = points.reshape(-1, 3), truth.reshape(-1, 3)
    pc, qc = p.mean(axis=0), q.mean(axis=0)
    u, _, vt = np.linalg.svd((p - pc).T @ (q - qc))
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1.0, 1.0, d]) @ vt
    return ((p - pc) @ rotation + qc).reshape(points.shape)


def _error_message(table, key) -> str:
    result = table.populate(key, reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 0
    assert not (table & key)
    return (table.jobs.errors & key).fetch1("error_message")


# ------------------------------------------------------------------ calibration
def test_calibration_recovers_camera_geometry(multicam, scene, processed_root):
    calib = scene["calib"]
    row = (multicam.Calibration & calib).fetch1()
    assert row["reprojection_error"] < 1.0 and row["units"] == "mm"
    assert row["n_points"] > 100
    cameras = (multicam.Calibration.Camera & calib).to_dicts(order_by="camera_order")
    assert [c["camera_name"] for c in cameras] == ["left", "centre", "right"]
    for cam in cameras:
        assert (cam["image_width"], cam["image_height"]) == (W, H)
        matrix = np.asarray(cam["intrinsic_matrix"])
        assert matrix.shape == (3, 3)
        assert (matrix[0, 0] + matrix[1, 1]) / 2 == pytest.approx(FOCAL, rel=0.03)
        assert len(cam["rotation"]) == 3 and cam["n_detections"] == 10
    result = multicam.Calibration.fetch_calibration(calib)
    truth = scene["truth_cams"]
    for i in (1, 2):
        r_true, t_true = relative_pose(truth[0], truth[i])
        r_cal, t_cal = relative_pose(result.cameras[0], result.cameras[i])
        cos = np.clip((np.trace(r_true.T @ r_cal) - 1) / 2, -1, 1)
        assert np.degrees(np.arccos(cos)) < 1.0
        assert np.linalg.norm(t_cal - t_true) < 0.04 * np.linalg.norm(t_true)
    # the anipose TOML, stored relative to the processed root
    assert not Path(row["calibration_file"]).is_absolute()
    path = multicam.Calibration.calibration_path(calib)
    assert processed_root in path.parents
    assert CalibrationResult.from_toml(path).camera_names == ["left", "centre", "right"]


def test_calibration_params_are_hash_keyed(multicam, scene):
    table = multicam.CalibrationParamSet
    reordered = dict(reversed(list(BOARD.items())))
    same = table.insert_new_params("again", {**reordered, "marker_bits": 4, "units": "mm"})
    assert same == scene["cal_paramset"]
    with pytest.raises(multicam.DuplicateParamsError,
                       match=f"calibration_paramset_id={scene['cal_paramset']}"):
        table.insert_new_params("other id", BOARD, paramset_id=scene["cal_paramset"] + 50)
    before = len(table())
    with pytest.raises(ThreeDParamsError, match="marker_length"):
        table.insert_new_params("bad", {**BOARD, "marker_length": 40.0})
    assert len(table()) == before
    # triangulation sets: filter true means the filter's defaults; angles are checked
    tri = multicam.validate_triangulation_paramset({"filter_3d": True})
    assert tri["filter_3d"]["medfilt"] == 7 and tri["angles"] == {} and tri["ransac"] is False
    with pytest.raises(ThreeDParamsError, match="three body parts"):
        multicam.TriangulationParamSet.insert_new_params("bad", {"angles": {"a": ["x", "y"]}})


def test_board_never_detected_is_an_error(multicam, scene, processed_root):
    folder = scene["folder"] / "calibration_blank"
    videos = render_board_videos(scene["truth_cams"], folder, n_views=4, blank=("right",))
    key = multicam.CalibrationTask.insert_calibration_task(
        scene["session"], 2, videos, scene["cal_paramset"])
    message = _error_message(multicam.Calibration, key)
    assert "never detected in camera 'right'" in message and "calib_right.mp4" in message
    assert not (multicam.Calibration.Camera & key)
    assert not (multicam.CalibrationTask.output_dir(key) / "calibration.toml").exists()


def test_camera_group_checks_members(pipeline, multicam, scene):
    with pytest.raises(ValueError, match=r"cameras \['top'\] are not in calibration 1"):
        multicam.CameraGroup.insert_camera_group(scene["session"], 90, 1,
                                                 {"left": 0, "top": 1})
    with pytest.raises(ValueError, match="not computed"):
        multicam.CameraGroup.insert_camera_group(scene["session"], 90, 7,
                                                 {"left": 0, "right": 1})
    with pytest.raises(ValueError, match="no VideoRecording"):
        multicam.CameraGroup.insert_camera_group(scene["session"], 90, 1,
                                                 {"left": 900, "right": 901})
    assert not (multicam.CameraGroup & {"camera_group_id": 90})


# ---------------------------------------------------------------- triangulation
def test_triangulation_recovers_known_3d(pipeline, multicam, scene, tmp_path):
    _group, task, truth = _add_group(pipeline, multicam, scene, 1)
    multicam.Triangulation.populate(task)
    row = (multicam.Triangulation & task).fetch1()
    assert row["nframes"] == N_FRAMES and row["units"] == "mm"
    assert row["cameras"] == ["left", "centre", "right"]
    assert row["summary"]["mean_reprojection_error"] < 2.0
    assert "filter_3d" in row["summary"]
    assert [s["step"] for s in row["provenance"]][-2:] == ["triangulate", "filter_3d"]
    assert set(row["input_checksums"]) == {"left", "centre", "right"}

    parts = (multicam.Triangulation.BodyPart3D & task).to_dicts()
    assert len(parts) == 4
    x = np.asarray(parts[0]["x"])
    assert x.dtype == np.float32 and x.shape == (N_FRAMES,)
    assert np.asarray(parts[0]["n_cameras"]).dtype == np.int16

    pose = multicam.Triangulation.fetch_pose3d(task)
    assert pose.position.shape == (N_FRAMES, 1, 4, 3) and pose.keypoints == PARTS
    assert pose.fps == pytest.approx(30.0)
    assert np.allclose(np.diff(pose.time()), 1 / 30, atol=1e-6)
    error = np.linalg.norm(_rigid_fit(pose.position.astype(np.float64), truth) - truth, axis=-1)
    assert np.median(error) < 1.0 and np.max(error) < 3.0
    length = np.linalg.norm(pose.position[:, 0, 3] - pose.position[:, 0, 0], axis=-1)
    assert np.allclose(length, np.linalg.norm(BODY[3] - BODY[0]), rtol=0.03)

    diagnostics = multicam.Triangulation.fetch_diagnostics(task)
    assert np.all(diagnostics["n_cameras"] == 3)
    assert np.nanmax(diagnostics["reprojection_error"]) < 3.0

    angles = multicam.Triangulation.joint_angles(task)
    assert set(angles) == {"ear_angle"} and angles["ear_angle"].shape == (N_FRAMES, 1)
    assert np.allclose(angles["ear_angle"], 90.0, atol=2.0)

    df = multicam.Triangulation.to_tidy(task, identifiers={"camera_group": 1})
    assert len(df) == N_FRAMES
    assert {"nose x", "nose y", "nose z", "nose likelihood"} <= set(df.columns)
    assert df.columns[0] == "camera_group"

    # 3D poses to NWB (ndx-pose 3D series), read back equal
    from element_pose.export.nwb import check_nwb, read_pose_from_nwb

    exported = pipeline.publish.export_triangulation_nwb(task, tmp_path)
    assert exported.relpath.endswith("_behavior.nwb")
    back = read_pose_from_nwb(exported.path)  # behavior/PoseEstimation: movement's default
    pose3d = multicam.Triangulation.fetch_pose3d(task)
    assert back.n_space == 3
    assert np.array_equal(back.position, pose3d.position, equal_nan=True)
    assert back.source_software == "element-pose" and back.source_software_version
    messages = check_nwb(exported.path)
    assert not [m for m in messages if "unit" in m.check_function_name]
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(exported.path), "r") as io:  # calibrated cameras linked per view
        f = io.read()
        pe = f.processing["behavior"]["PoseEstimation"]
        assert pe.pose_estimation_series["nose"].unit == "millimeters"
        assert "Triangulation score" in pe.pose_estimation_series["nose"].confidence_definition
        assert sorted(pe.pose_estimations) == ["centre", "left", "right"]
        for name, view in pe.pose_estimations.items():
            assert view.device is f.devices[name]
            assert view.device.neurodata_type == "CalibratedCamera"
            assert (exported.path.parent / view.source_video.external_file[0]).is_file()


def test_waits_for_every_member_estimation(pipeline, multicam, scene):
    _group, task, _ = _add_group(pipeline, multicam, scene, 2, estimate=("left", "centre"))
    assert not (multicam.Triangulation.key_source & task)
    rid = (multicam.CameraGroup.Member & task & {"camera_name": "right"}).fetch1("recording_id")
    pipeline.model.PoseEstimation.populate({**scene["session"], "recording_id": rid})
    assert multicam.Triangulation.key_source & task


def test_frame_count_mismatch_is_an_error(pipeline, multicam, scene):
    _group, task, _ = _add_group(pipeline, multicam, scene, 3, frames={"right": 25})
    message = _error_message(multicam.Triangulation, task)
    assert "disagree on the number of frames" in message and "'right' (recording 32): 25" in message
    assert not (multicam.Triangulation.BodyPart3D & task)


def test_body_part_missing_in_one_camera_is_an_error(pipeline, multicam, scene):
    _group, task, _ = _add_group(pipeline, multicam, scene, 4,
                                 drop_part=("centre", "tail_base"))
    message = _error_message(multicam.Triangulation, task)
    assert "camera 'centre' (recording 41) has no estimates" in message
    assert "['tail_base']" in message and "['left', 'right']" in message
    assert not (multicam.Triangulation.BodyPart3D & task)


def test_triangulation_compute_reads_nothing_from_the_database(pipeline, multicam, scene):
    """make_fetch reads everything; make_compute works on it alone (tripartite contract)."""
    _group, task, _truth = _add_group(pipeline, multicam, scene, 7)
    table = multicam.Triangulation()
    fetched = table.make_fetch(task)
    # the 2D estimations vanish before the compute step: it must not need them
    rids = (multicam.CameraGroup.Member & task).to_arrays("recording_id")
    rows = (pipeline.model.PoseEstimation & scene["session"] & scene["model"]
            & [{"recording_id": int(r)} for r in rids])
    assert len(rows) == 3
    (pipeline.model.PoseEstimation.BodyPartPosition & rows.proj()).delete_quick()
    rows.delete_quick()
    assert not rows
    pose3d, *_ = table.make_compute(task, *fetched)
    assert pose3d.position.shape == (N_FRAMES, 1, len(PARTS), 3)
    assert np.isfinite(pose3d.position).mean() > 0.9
