"""anipose files into and out of the multicam tables, on a real database.

A calibration.toml written by aniposelib's own ``CameraGroup.dump`` is imported and
used to triangulate; a stored calibration is written for aniposelib's
``CameraGroup.load``; a 3D CSV in ``anipose triangulate``'s layout is loaded into
``Triangulation`` and read back equal.
"""

from __future__ import annotations

import datetime
import os

import numpy as np
import pandas as pd
import pytest
from aniposelib.cameras import Camera, CameraGroup

from element_pose import sample
from element_pose.core.pose import SINGLE_INDIVIDUAL
from element_pose.io import dlc
from element_pose.io.anipose import AniposeFormatError
from element_pose.io.video import write_video
from element_pose.processing.threed import TriangulationError
from element_pose.sample.threed import BOARD, H, W, make_cameras, make_trajectory, project_scene

pytestmark = pytest.mark.usefixtures("pipeline")

PARTS = list(sample.DEFAULT_BODYPARTS)
BODY = np.array([[0.0, 0.0, 0.0], [30.0, 0.0, 0.0], [30.0, 0.0, 30.0], [80.0, 5.0, 10.0]])
N_FRAMES = 25
SCORER = "DLC_Resnet50_demoJan1shuffle1_snapshot_best-10"


@pytest.fixture(scope="module")
def multicam(pipeline):
    """The multicam module, activated here unless another test module did it."""
    from element_pose.schemas import multicam as mc

    if not mc.schema.is_activated():
        mc.activate(os.environ["ELEMENT_POSE_SCHEMA_PREFIX"] + "multicam",
                    linking_module=pipeline)
    return mc


def _dump_with_aniposelib(cams, path):
    group = CameraGroup([
        Camera(name=c.name, size=tuple(int(v) for v in c.size), matrix=np.asarray(c.matrix),
               dist=np.asarray(c.distortion), rvec=np.asarray(c.rotation),
               tvec=np.asarray(c.translation))
        for c in cams])
    group.dump(str(path))
    return group


@pytest.fixture(scope="module")
def scene(pipeline, multicam, raw_root, processed_root):
    """A session, a model, a board parameter set and an imported aniposelib calibration."""
    token = os.urandom(4).hex()
    pipeline.lab.Device.insert(({"device": f"ap_{n}"} for n in ("left", "centre", "right")),
                               skip_duplicates=True)
    pipeline.subject.Subject.insert1(
        {"subject": f"ap{token}", "sex": "F", "species": "Mus musculus",
         "subject_birth_date": datetime.date(2025, 1, 1)})
    session = {"subject": f"ap{token}", "session_id": 1}
    pipeline.session.Session.insert1({**session,
                                      "session_datetime": datetime.datetime(2026, 1, 2)})
    folder = raw_root / f"anipose_{token}"
    folder.mkdir(parents=True)
    cams = make_cameras(distortion=True)
    toml = folder / "calibration.toml"
    _dump_with_aniposelib(cams, toml)
    paramset = multicam.CalibrationParamSet.insert_new_params("6x5 charuco", BOARD)
    calib = multicam.Calibration.insert_from_anipose(session, 7, toml,
                                                     calibration_paramset_id=paramset)
    project = sample.make_dlc_project(raw_root / f"approject_{token}", n_frames=10,
                                      n_labeled=2)
    model_key = pipeline.model.Model.insert_new_model(f"ap_{token}", project)
    tri_params = multicam.TriangulationParamSet.insert_new_params(
        "anipose plain", {"score_threshold": 0.5})
    return {"session": session, "folder": folder, "cams": cams, "toml": toml, "calib": calib,
            "model": model_key, "tri_params": tri_params, "outputs": processed_root / token,
            "paramset": paramset}


def _add_group(pipeline, multicam, scene, group_id: int, estimate: bool = True):
    """Recordings of the three cameras (2D poses projected from a known trajectory),
    their load-mode estimations (when ``estimate``) and a camera group."""
    model = pipeline.model
    truth = make_trajectory(N_FRAMES, body=BODY)[:, None]
    poses = project_scene(scene["cams"], truth, noise=0.2, seed=group_id,
                          individuals=[SINGLE_INDIVIDUAL], keypoints=PARTS)
    members = {}
    for i, (camera, pose) in enumerate(poses.items()):
        rid = 10 * group_id + i
        video = write_video(scene["folder"] / f"rec{rid}.mp4",
                            [np.zeros((H, W, 3), np.uint8)] * N_FRAMES, fps=30.0)
        key = model.VideoRecording.insert_recording(scene["session"], rid,
                                                    {"device": f"ap_{camera}"}, [video])
        model.RecordingInfo.populate(key)
        if estimate:
            outputs = scene["outputs"] / f"rec{rid}"
            dlc.write_dlc_h5(pose, outputs / f"{video.stem}{SCORER}.h5", scorer=SCORER)
            task = model.PoseEstimationTask.insert_estimation_task(
                {**key, **scene["model"]}, "load", output_dir=outputs)
            model.PoseEstimation.populate(task)
        members[camera] = rid
    group = multicam.CameraGroup.insert_camera_group(scene["session"], group_id,
                                                     scene["calib"]["calibration_id"], members)
    return group, truth


def test_imported_aniposelib_calibration_triangulates(pipeline, multicam, scene,
                                                      processed_root):
    calib = scene["calib"]
    row = (multicam.Calibration & calib).fetch1()
    assert row["calibration"]["source"]["software"] == "anipose"
    assert row["calibration"]["source"]["file"].endswith("calibration.toml")
    assert not row["calibration"]["source"]["file"].startswith("/")
    assert (processed_root / row["calibration_file"]).is_file()
    cameras = (multicam.Calibration.Camera & calib).to_dicts(order_by="camera_order")
    assert [c["camera_name"] for c in cameras] == ["left", "centre", "right"]
    for cam, truth in zip(cameras, scene["cams"], strict=True):
        np.testing.assert_allclose(cam["intrinsic_matrix"], truth.matrix)
        np.testing.assert_allclose(cam["distortion"], truth.distortion)
        np.testing.assert_allclose(cam["rotation"], truth.rotation)
        np.testing.assert_allclose(cam["translation"], truth.translation)

    group, truth = _add_group(pipeline, multicam, scene, 1)
    task = multicam.TriangulationTask.insert_triangulation_task(
        group, scene["model"]["model_name"], scene["tri_params"])
    assert (multicam.TriangulationTask & task).fetch1("task_mode") == "trigger"
    multicam.Triangulation.populate(task)
    pose = multicam.Triangulation.fetch_pose3d(task)
    assert pose.keypoints == PARTS and pose.position.shape == (N_FRAMES, 1, 4, 3)
    error = np.linalg.norm(pose.position.astype(np.float64) - truth, axis=-1)
    assert np.median(error) < 1.0 and np.max(error) < 3.0


def test_calibration_without_a_board_is_refused(multicam, scene):
    with pytest.raises(ValueError, match=r"calibration\.toml.*calibration_paramset_id"):
        multicam.Calibration.insert_from_anipose(scene["session"], 8, scene["toml"])
    key = {**scene["session"], "calibration_id": 8}
    assert not (multicam.CalibrationTask & key) and not (multicam.Calibration & key)
    bad = scene["folder"] / "bad.toml"
    bad.write_text("[cam_0]\nname = 'a'\n")
    with pytest.raises(AniposeFormatError, match=r"bad\.toml"):
        multicam.Calibration.insert_from_anipose(scene["session"], 9, bad, scene["paramset"])
    assert not (multicam.CalibrationTask & {**scene["session"], "calibration_id": 9})
    # an imported calibration has no videos to compute it from again: a named error
    key = multicam.Calibration.insert_from_anipose(scene["session"], 10, scene["toml"],
                                                   scene["paramset"])
    (multicam.Calibration & key).delete(prompt=False)
    result = multicam.Calibration.populate(key, reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 0
    message = (multicam.Calibration.jobs.errors & key).fetch1("error_message")
    assert "has no videos" in message and "insert_from_anipose" in message


def test_stored_calibration_is_loaded_by_aniposelib(multicam, scene, tmp_path):
    path = multicam.Calibration.to_anipose(scene["calib"], tmp_path / "out" / "calibration.toml")
    group = CameraGroup.load(str(path))
    assert group.get_names() == ["left", "centre", "right"]
    for theirs, truth in zip(group.cameras, scene["cams"], strict=True):
        np.testing.assert_allclose(theirs.get_camera_matrix(), truth.matrix)
        np.testing.assert_allclose(theirs.get_distortions(), truth.distortion)
        np.testing.assert_allclose(theirs.get_rotation(), truth.rotation)
        np.testing.assert_allclose(theirs.get_translation(), truth.translation)
        assert tuple(theirs.get_size()) == tuple(truth.size)
    world = np.array([[1.0, 2.0, 3.0], [-10.0, 5.0, 20.0]])
    projected = group.project(world)
    for c, truth in enumerate(scene["cams"]):
        np.testing.assert_allclose(projected[c], truth.project(world), atol=1e-6)


def _anipose_csv(path, parts, points, errors, ncams, scores):
    """What anipose/triangulate.py writes (same columns, order and to_csv call)."""
    dout = pd.DataFrame()
    for bp_num, bp in enumerate(parts):
        for ax_num, axis in enumerate("xyz"):
            dout[bp + "_" + axis] = points[:, bp_num, ax_num]
        dout[bp + "_error"] = errors[:, bp_num]
        dout[bp + "_ncams"] = ncams[:, bp_num]
        dout[bp + "_score"] = scores[:, bp_num]
    for i in range(3):
        for j in range(3):
            dout[f"M_{i}{j}"] = float(i == j)
    for i in range(3):
        dout[f"center_{i}"] = 0.0
    dout["fnum"] = np.arange(len(points))
    dout.to_csv(path, index=False)
    return path


def _csv_data(n=N_FRAMES, k=4):
    rng = np.random.default_rng(3)
    points = rng.normal(0, 50, (n, k, 3))
    errors = rng.uniform(0, 4, (n, k))
    ncams = rng.integers(2, 4, (n, k)).astype(float)
    scores = rng.uniform(0.5, 1, (n, k))
    points[5, 1] = np.nan  # not triangulated: anipose writes NaN for all of them
    errors[5, 1] = ncams[5, 1] = scores[5, 1] = np.nan
    return points, errors, ncams, scores


def test_anipose_3d_csv_loads_into_triangulation(pipeline, multicam, scene, tmp_path):
    group, _ = _add_group(pipeline, multicam, scene, 2, estimate=False)
    points, errors, ncams, scores = _csv_data()
    (scene["folder"] / "pose-3d").mkdir(exist_ok=True)
    csv = _anipose_csv(scene["folder"] / "pose-3d" / "trial2.csv", PARTS, points, errors,
                       ncams, scores)
    task = multicam.TriangulationTask.insert_triangulation_task(
        group, scene["model"]["model_name"], scene["tri_params"], task_mode="load",
        triangulation_file=csv)
    stored = (multicam.TriangulationTask & task).fetch1()
    assert stored["task_mode"] == "load"
    assert stored["triangulation_file"].endswith("pose-3d/trial2.csv")
    assert not stored["triangulation_file"].startswith("/")
    assert multicam.Triangulation.key_source & task  # no 2D estimations needed

    multicam.Triangulation.populate(task)
    row = (multicam.Triangulation & task).fetch1()
    assert row["nframes"] == N_FRAMES and row["cameras"] == ["left", "centre", "right"]
    assert list(row["input_checksums"]) == [stored["triangulation_file"]]
    assert row["provenance"][-1]["step"] == "load"
    pose = multicam.Triangulation.fetch_pose3d(task)
    assert pose.keypoints == PARTS and pose.individuals == [SINGLE_INDIVIDUAL]
    np.testing.assert_array_equal(pose.position[:, 0], points.astype(np.float32))
    np.testing.assert_array_equal(pose.confidence[:, 0], scores.astype(np.float32))
    diagnostics = multicam.Triangulation.fetch_diagnostics(task)
    np.testing.assert_array_equal(diagnostics["reprojection_error"][:, 0],
                                  errors.astype(np.float32))
    np.testing.assert_array_equal(diagnostics["n_cameras"][:, 0],
                                  np.nan_to_num(ncams).astype(np.int16))
    assert row["summary"]["keypoints"][PARTS[1]]["fraction_triangulated"] == pytest.approx(
        1 - 1 / N_FRAMES)

    # the loaded 3D poses export to NWB without 2D estimations (views carry no 2D poses)
    from element_pose.export.nwb import read_pose_from_nwb

    exported = pipeline.publish.export_triangulation_nwb(task, tmp_path, videos="none")
    back = read_pose_from_nwb(exported.path)
    np.testing.assert_array_equal(back.position[:, 0], points.astype(np.float32))


def test_shorter_csv_is_padded_to_the_recordings(pipeline, multicam, scene):
    group, _ = _add_group(pipeline, multicam, scene, 4, estimate=False)
    points, errors, ncams, scores = _csv_data(n=N_FRAMES - 5)
    csv = _anipose_csv(scene["folder"] / "short.csv", PARTS, points, errors, ncams, scores)
    task = multicam.TriangulationTask.insert_triangulation_task(
        group, scene["model"]["model_name"], scene["tri_params"], task_mode="load",
        triangulation_file=csv)
    multicam.Triangulation.populate(task)
    pose = multicam.Triangulation.fetch_pose3d(task)
    assert pose.n_frames == N_FRAMES and np.allclose(np.diff(pose.time()), 1 / 30, atol=1e-6)
    np.testing.assert_array_equal(pose.position[:N_FRAMES - 5, 0], points.astype(np.float32))
    assert np.isnan(pose.position[N_FRAMES - 5:]).all()
    assert (multicam.Triangulation.fetch_diagnostics(task)["n_cameras"][N_FRAMES - 5:] == 0).all()


def test_bad_anipose_3d_csv_is_refused(pipeline, multicam, scene):
    group, _ = _add_group(pipeline, multicam, scene, 3, estimate=False)
    points, errors, ncams, scores = _csv_data(k=2)
    csv = _anipose_csv(scene["folder"] / "unknown_parts.csv", ["nose", "wing"], points,
                       errors, ncams, scores)
    with pytest.raises(TriangulationError, match=r"unknown_parts\.csv.*\['wing'\]"):
        multicam.TriangulationTask.insert_triangulation_task(
            group, scene["model"]["model_name"], scene["tri_params"], task_mode="load",
            triangulation_file=csv)
    assert not (multicam.TriangulationTask & group)
    filtered = multicam.TriangulationParamSet.insert_new_params(
        "anipose filtered", {"filter_3d": True})
    good = _anipose_csv(scene["folder"] / "good.csv", PARTS, *_csv_data())
    with pytest.raises(ValueError, match="filter_3d"):
        multicam.TriangulationTask.insert_triangulation_task(
            group, scene["model"]["model_name"], filtered, task_mode="load",
            triangulation_file=good)
    # more frames than the recordings: the job fails with a message naming the file
    long = _anipose_csv(scene["folder"] / "long.csv", PARTS, *_csv_data(n=N_FRAMES + 3))
    task = multicam.TriangulationTask.insert_triangulation_task(
        group, scene["model"]["model_name"], scene["tri_params"], task_mode="load",
        triangulation_file=long)
    result = multicam.Triangulation.populate(task, reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 0 and not (multicam.Triangulation & task)
    message = (multicam.Triangulation.jobs.errors & task).fetch1("error_message")
    assert "long.csv" in message and f"{N_FRAMES + 3} frames" in message
    # the insert reads the header line only; a body that is no numbers fails the job
    body = scene["folder"] / "bad_body.csv"
    body.write_bytes(good.read_bytes().split(b"\n", 1)[0] + b"\n" + b"\xff not a number\n" * 5)
    other = multicam.TriangulationParamSet.insert_new_params(
        "anipose plain, other threshold", {"score_threshold": 0.6})
    task = multicam.TriangulationTask.insert_triangulation_task(
        group, scene["model"]["model_name"], other, task_mode="load", triangulation_file=body)
    result = multicam.Triangulation.populate(task, reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 0 and not (multicam.Triangulation & task)
    assert "bad_body.csv" in (multicam.Triangulation.jobs.errors & task).fetch1("error_message")
