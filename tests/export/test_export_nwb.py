"""NWB export (ndx-pose 0.4): write, read back, append, split, training, inspector."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from element_pose import sample
from element_pose.export import nwb
from element_pose.export.nwb import (
    MetadataError,
    NWBExportError,
    NWBInspectionError,
    SessionMetadata,
    SubjectMetadata,
)


def _assert_same_pose(back, pose):
    assert back.keypoints == pose.keypoints
    assert back.position.dtype == np.float32
    np.testing.assert_array_equal(back.position, pose.position)
    np.testing.assert_array_equal(back.confidence, pose.confidence)
    assert back.skeleton == pose.skeleton
    assert back.scorer == pose.scorer
    assert back.source_software == pose.source_software
    assert back.source_software_version == pose.source_software_version


def test_write_read_with_rate(tmp_path, recording, subject, session, camera):
    video, truth = recording
    shutil.copy(video, tmp_path / video.name)
    video_meta = nwb.VideoMetadata.from_files([tmp_path / video.name])
    path = tmp_path / "out.nwb"
    nwb.write_nwb(path, truth, subject, session, camera=camera, video=video_meta)

    back = nwb.read_pose_from_nwb(path)
    _assert_same_pose(back, truth)
    assert back.timestamps is None and back.fps == 30.0 and back.start_time == 0.0
    assert back.individuals == ["mouse1"]
    np.testing.assert_allclose(back.time(), truth.time())

    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), "r") as io:
        f = io.read()
        assert f.subject.species == "Mus musculus" and f.subject.sex == "F"
        pe = f.processing["behavior"]["PoseEstimation"]
        assert pe.device.name == "camera_top"
        assert f.devices["camera_top"].model.manufacturer == "Basler"
        assert pe.source_software == "DeepLabCut" and pe.source_software_version == "3.0.2"
        assert list(pe.skeleton.nodes[:]) == truth.keypoints
        np.testing.assert_array_equal(pe.skeleton.edges[:],
                                      [[0, 1], [0, 2], [1, 3], [2, 3]])
        series = pe.pose_estimation_series["nose"]
        assert series.unit == "pixels" and "top-left" in series.reference_frame
        assert series.confidence_definition and series.rate == 30.0
        sv = pe.source_video
        assert list(sv.external_file[:]) == [video.name]  # relative to the NWB file
        assert sv.rate == 30.0 and sv.num_samples == 60 and list(sv.dimension[:]) == [160, 120]
    with h5py.File(path, "r") as h5:
        data = h5["processing/behavior/PoseEstimation/nose/data"]
        assert data.dtype == np.float32 and data.compression == "gzip"
        assert h5["processing/behavior/PoseEstimation/nose/confidence"].dtype == np.float32
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"
    assert nwb.check_nwb(path) is not None  # no CRITICAL message


def test_write_read_with_timestamps(tmp_path, recording, subject, session, video_meta):
    _, truth = recording
    rng = np.random.default_rng(0)
    timestamps = 12.5 + np.cumsum(rng.uniform(0.03, 0.04, truth.n_frames))
    pose = truth.replace(timestamps=timestamps, fps=None)
    path = nwb.write_nwb(tmp_path / "ts.nwb", pose, subject, session, video=video_meta)
    back = nwb.read_pose_from_nwb(path)
    _assert_same_pose(back, pose)
    np.testing.assert_array_equal(back.timestamps, timestamps)
    assert back.fps is None
    with h5py.File(path, "r") as h5:  # one timestamps dataset, shared by the others
        group = h5["processing/behavior/PoseEstimation"]
        assert group["left_ear/timestamps"] == group["nose/timestamps"]
        assert h5["acquisition/camera_video/timestamps"] == group["nose/timestamps"]
        assert "starting_time" not in h5["acquisition/camera_video"]


def test_3d_export(tmp_path, recording, subject, session):
    _, truth = recording
    z = np.linspace(0, 1, truth.n_frames, dtype=np.float32)[:, None, None, None]
    pose3d = truth.replace(position=np.concatenate(
        [truth.position, np.broadcast_to(z, (*truth.position.shape[:3], 1))], axis=3))
    assert pose3d.n_space == 3
    path = nwb.write_nwb(tmp_path / "3d.nwb", pose3d, subject, session,
                         name="PoseEstimation3D")
    back = nwb.read_pose_from_nwb(path, name="PoseEstimation3D")
    assert back.n_space == 3
    _assert_same_pose(back, pose3d)
    with pytest.raises(KeyError, match="PoseEstimation3D"):
        nwb.read_pose_from_nwb(path)


def test_multi_animal_one_file_per_individual(tmp_path, subject, session):
    truth = sample.make_video(tmp_path / "two.mp4", n_frames=20, n_individuals=2, seed=3)
    plans = nwb.plan_individual_files(truth, subject, session)
    assert [p.subject.subject_id for p in plans] == ["mouse1-animal0", "mouse1-animal1"]
    assert plans[0].relpath == "sub-mouse1-animal0/sub-mouse1-animal0_ses-session1_" \
                               "behavior+image.nwb"
    explicit = nwb.plan_individual_files(
        truth, subject, session,
        subjects={"animal1": dataclasses.replace(subject, subject_id="rat7")})
    assert explicit[1].subject.subject_id == "rat7"

    written = nwb.write_nwb_per_individual(tmp_path / "dandiset", truth, subject, session)
    assert set(written) == {"animal0", "animal1"}
    for individual, path in written.items():
        assert path.is_relative_to(tmp_path / "dandiset" / f"sub-mouse1-{individual}")
        back = nwb.read_pose_from_nwb(path)
        np.testing.assert_array_equal(back.position,
                                      truth.select(individuals=[individual]).position)
        assert back.individuals == [f"mouse1-{individual}"]

    with pytest.raises(MetadataError, match="write_nwb_per_individual"):
        nwb.build_nwbfile(truth, subject, session, require_dandi=False)


def test_missing_metadata_lists_every_field_and_writes_nothing(tmp_path, recording):
    _, truth = recording
    bad_subject = SubjectMetadata("cage/1", species="mouse-ish", sex="male?", age="90 days")
    bad_session = SessionMetadata("s/1", dt.datetime(2026, 1, 2, 10))  # naive
    pose = truth.replace(fps=None)
    video = nwb.VideoMetadata([tmp_path / "missing.mp4"])
    target = tmp_path / "out" / "file.nwb"
    with pytest.raises(MetadataError) as info:
        nwb.write_nwb(target, pose, bad_subject, bad_session, video=video)
    text = str(info.value)
    for expected in ("subject.subject_id", "subject.species", "subject.sex", "subject.age",
                     "session.session_id", "session.session_start_time", "fps",
                     "missing.mp4"):
        assert expected in text, expected
    assert len(info.value.problems) >= 8
    assert not target.parent.exists()

    no_age = SubjectMetadata("m2", species="Mus musculus", sex="M")
    problems = nwb.metadata_problems(no_age, None, dandi=True)
    assert any("date_of_birth" in p for p in problems)
    assert any(p.startswith("session") for p in problems)
    # without DANDI's requirements only NWB's own are checked
    ok_session = SessionMetadata("s1", dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    assert nwb.metadata_problems(SubjectMetadata("m2"), ok_session, dandi=False) == []
    # common names and sex words are normalised
    mouse = SubjectMetadata("m3", species="mouse", sex="female",
                            date_of_birth=dt.date(2025, 10, 1))
    assert nwb.metadata_problems(mouse, ok_session) == []


def test_append_into_existing_file(tmp_path, recording, subject, session, camera, video_meta):
    _, truth = recording
    path = nwb.write_nwb(tmp_path / "a.nwb", truth, subject, session, camera=camera,
                         video=video_meta)
    inode = path.stat().st_ino
    second = truth.replace(position=truth.position + 1, scorer="other_model")
    nwb.append_to_nwb(path, second, camera=nwb.CameraMetadata("camera_side"),
                      name="PoseEstimation_side")
    assert path.stat().st_ino == inode  # modified in place, not rewritten

    assert sorted(nwb.list_pose_estimations(path)) == [
        "behavior/PoseEstimation", "behavior/PoseEstimation_side"]
    _assert_same_pose(nwb.read_pose_from_nwb(path), truth)
    side = nwb.read_pose_from_nwb(path, name="PoseEstimation_side")
    np.testing.assert_array_equal(side.position, second.position)
    assert side.scorer == "other_model"

    before = path.read_bytes()
    with pytest.raises(NWBExportError, match="already holds"):
        nwb.append_to_nwb(path, second, name="PoseEstimation_side")
    assert path.read_bytes() == before
    with pytest.raises(FileNotFoundError):
        nwb.append_to_nwb(tmp_path / "nope.nwb", second)


def test_training_frames(tmp_path, subject, session):
    config = sample.make_dlc_project(tmp_path / "proj", n_frames=20, n_labeled=3)
    training = nwb.TrainingData.from_dlc_project(config)
    truth = sample.make_video(tmp_path / "rec.mp4", n_frames=20)
    path = nwb.write_nwb(tmp_path / "t.nwb", truth, subject, session, training=training)

    from pynwb import NWBHDF5IO

    scorer, rows = nwb.read_dlc_labels(training.labels[0])
    assert scorer == "sampler" and len(rows) == 3
    with NWBHDF5IO(str(path), "r") as io:
        f = io.read()
        pt = f.processing["behavior"]["PoseTraining"]
        frames = pt.training_frames.training_frames
        assert len(frames) == 3
        name = f"demo_video0_{rows[1]['image'].removesuffix('.png')}"
        frame = frames[name]
        assert frame.source_video_frame_index == rows[1]["frame_index"]
        assert frame.annotator == "sampler"
        instance = next(iter(frame.skeleton_instances.skeleton_instances.values()))
        expected = np.array([rows[1]["bodyparts"][k] for k in truth.keypoints])
        np.testing.assert_allclose(instance.node_locations[:], expected)
        video = pt.source_videos.image_series["demo_video0"]
        assert video.external_file[0].endswith("demo_video0.mp4") and video.num_samples == 20
    nwb.check_nwb(path, skip_validate=True)  # with validation: test_organize_and_validate


def test_inspector_flags_missing_video(tmp_path, recording, subject, session, camera):
    video, truth = recording
    local = tmp_path / "moved.mp4"
    shutil.copy(video, local)
    path = nwb.write_nwb(tmp_path / "v.nwb", truth, subject, session, camera=camera,
                         video=nwb.VideoMetadata.from_files([local]))
    local.unlink()
    with pytest.raises(NWBInspectionError, match="external_file"):
        nwb.check_nwb(path, skip_validate=True)


def test_refuses_to_overwrite(tmp_path, recording, subject, session):
    _, truth = recording
    path = nwb.write_nwb(tmp_path / "o.nwb", truth, subject, session)
    with pytest.raises(FileExistsError):
        nwb.write_nwb(path, truth, subject, session)
    nwb.write_nwb(path, truth, subject, session, overwrite=True)


# ------------------------------------------------------------ issue 11 (NWB side)
def _fresh_python(code: str, *args: str) -> str:
    """Run ``code`` in a new interpreter (nothing imported yet); return its stdout."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import element_pose

    env = {**os.environ, "PYTHONPATH": str(Path(element_pose.__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


_APPEND_IN_FRESH_PROCESS = """
import sys
from element_pose import sample
from element_pose.export import nwb
pose = sample.make_video(sys.argv[2], n_frames=60, fps=30.0, seed=7)
nwb.append_to_nwb(sys.argv[1], pose, camera=nwb.CameraMetadata("camera_side"),
                  name="PoseEstimation_side")
"""

_READ_IN_FRESH_PROCESS = """
import json, sys
from pynwb import NWBHDF5IO
with NWBHDF5IO(sys.argv[1], "r") as io:
    f = io.read()
    out = {}
    for name, c in f.processing["behavior"].data_interfaces.items():
        entry = {"type": c.neurodata_type}
        if c.neurodata_type == "PoseEstimation":
            entry["series"] = {k: [list(s.data.shape), s.data[:].tolist()]
                               for k, s in c.pose_estimation_series.items()}
            entry["device"] = c.device.name if c.device is not None else None
        out[name] = entry
    print(json.dumps(out))
"""


def test_append_in_a_fresh_process_writes_typed_containers(tmp_path, recording, subject,
                                                            session, camera):
    """Defect 7: append in a process that has not imported ndx_pose, read in another."""
    import json

    _, truth = recording
    path = nwb.write_nwb(tmp_path / "a.nwb", truth, subject, session, camera=camera)
    _fresh_python(_APPEND_IN_FRESH_PROCESS, str(path), str(tmp_path / "side.mp4"))
    seen = json.loads(_fresh_python(_READ_IN_FRESH_PROCESS, str(path)))
    assert seen["PoseEstimation_side"]["type"] == "PoseEstimation"
    assert seen["Skeletons"]["type"] == "Skeletons"
    assert seen["PoseEstimation_side"]["device"] == "camera_side"
    side = sample.make_video(tmp_path / "again.mp4", n_frames=60, fps=30.0, seed=7)
    for k, keypoint in enumerate(side.keypoints):
        shape, data = seen["PoseEstimation_side"]["series"][keypoint]
        assert shape == [60, 2]
        np.testing.assert_array_equal(np.asarray(data, np.float32), side.position[:, 0, k])
    assert seen["PoseEstimation"]["type"] == "PoseEstimation"


def test_read_back_catches_missing_or_empty_containers(tmp_path, recording, subject, session):
    """Every write is read back: an untyped or empty container is an error, not success."""
    from element_pose.export.nwb.layout import (
        ExpectedContainer,
        NWBReadBackError,
        verify_pose_containers,
    )

    _, truth = recording
    path = nwb.write_nwb(tmp_path / "r.nwb", truth, subject, session)
    expected = [ExpectedContainer("PoseEstimation", truth.keypoints, truth.n_frames, 2)]
    verify_pose_containers(path, expected)
    with h5py.File(path, "a") as h5:  # what a pre-fix append left: an empty untyped group
        del h5["processing/behavior/PoseEstimation/nose"]
        group = h5["processing/behavior"].create_group("PoseEstimation_side")
        group.attrs["neurodata_type"] = "NWBDataInterface"
        group.attrs["namespace"] = "core"
    with pytest.raises(NWBReadBackError, match="nose") as info:
        verify_pose_containers(path, [*expected, ExpectedContainer(
            "PoseEstimation_side", truth.keypoints, truth.n_frames, 2)])
    assert "PoseEstimation_side: type core:NWBDataInterface" in str(info.value)


def test_source_software_version_written_when_known_never_empty(tmp_path, recording, subject,
                                                                session):
    _, truth = recording
    known = nwb.write_nwb(tmp_path / "k.nwb", truth, subject, session)
    unknown = nwb.write_nwb(tmp_path / "u.nwb", truth.replace(source_software_version=""),
                            subject, session)
    with h5py.File(known, "r") as h5:
        software = h5["processing/behavior/PoseEstimation/source_software"]
        assert software.attrs["version"] == "3.0.2"
    with h5py.File(unknown, "r") as h5:
        assert "version" not in h5["processing/behavior/PoseEstimation/source_software"].attrs
    assert nwb.read_pose_from_nwb(unknown).source_software_version is None


def test_multi_animal_files_carry_the_individual_name(tmp_path, subject, session):
    """animal0 in the Subject and PoseEstimation descriptions and in the identifier,
    which movement uses as the individual's name."""
    from movement.io import load_poses

    truth = sample.make_video(tmp_path / "two.mp4", n_frames=20, n_individuals=2, seed=3)
    written = nwb.write_nwb_per_individual(tmp_path / "ds", truth, subject, session)
    from pynwb import NWBHDF5IO

    for individual, path in written.items():
        with NWBHDF5IO(str(path), "r") as io:
            f = io.read()
            assert f.identifier == f"{individual}_sub-mouse1_ses-session1"
            assert repr(individual) in f.subject.description
            assert repr(individual) in f.processing["behavior"]["PoseEstimation"].description
        ds = load_poses.from_nwb_file(path)
        assert list(ds.individuals.values) == [f"{individual}_sub-mouse1_ses-session1"]
        assert str(ds.individuals.values[0]).split("_")[0] == individual


def test_container_names_are_unique_for_every_set():
    from element_pose.export.nwb.layout import container_names

    one = [{"camera": "cam0", "model": "m", "recording": 0}]
    assert container_names(one) == ["PoseEstimation"]
    assert container_names(one, taken=["PoseEstimation"]) == ["PoseEstimation_cam0_m"]
    two_cameras = [{"camera": "camA", "model": "m", "recording": 0},
                   {"camera": "camB", "model": "m", "recording": 1}]
    assert container_names(two_cameras) == ["PoseEstimation_camA_m", "PoseEstimation_camB_m"]
    same_camera = [{"camera": "cam0", "model": "m", "recording": 0},
                   {"camera": "cam0", "model": "m", "recording": 1},
                   {"camera": "cam0", "model": "other", "recording": 1}]
    assert container_names(same_camera) == [
        "PoseEstimation_cam0_m_rec0", "PoseEstimation_cam0_m_rec1", "PoseEstimation_cam0_other"]
    unsafe = [{"camera": "a/b", "model": "m", "recording": 0},
              {"camera": "a_b", "model": "m", "recording": 0}]
    names = container_names(unsafe)
    assert len(set(names)) == 2 and not any("/" in n for n in names)


def test_videos_beside_the_file_survive_a_copy(tmp_path, recording, subject, session, camera):
    from element_pose.export.nwb.layout import place_videos

    video, truth = recording
    target = tmp_path / "export" / "sub-mouse1" / "sub-mouse1_ses-session1_behavior+image.nwb"
    placed = place_videos([video], target)
    assert placed.paths == [target.parent / target.stem / video.name]
    again = place_videos([video], target)  # the same file again: reused, nothing created
    assert again.paths == placed.paths and again.created == []
    nwb.write_nwb(target, truth, subject, session, camera=camera,
                  video=nwb.VideoMetadata.from_files(placed.paths))
    copy = shutil.copytree(tmp_path / "export", tmp_path / "elsewhere")
    moved = copy / "sub-mouse1" / target.name
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(moved), "r") as io:
        link = io.read().acquisition["camera_top_video"].external_file[0]
    assert link == f"{target.stem}/{video.name}"
    assert (moved.parent / link).is_file()
    nwb.check_nwb(moved, skip_validate=True)  # the inspector finds the video
    with pytest.raises(ValueError, match="video mode"):
        place_videos([video], target, "move")


def test_3d_export_multicamera_calibrated_cameras_and_movement_default(
        tmp_path, recording, subject, session):
    """3D: metric unit NWB Inspector accepts, triangulation-score confidence, calibrated
    cameras linked through per-view PoseEstimations, version, movement's default name."""
    from movement.io import load_poses
    from pynwb import NWBHDF5IO

    from element_pose.export.nwb.three_d import (
        CalibratedCameraMetadata,
        CameraView,
        nwb_length_unit,
        write_nwb_3d,
    )

    video, truth = recording
    video = Path(shutil.copy(video, tmp_path / video.name))
    z = np.linspace(0, 1, truth.n_frames, dtype=np.float32)[:, None, None, None]
    pose3d = truth.replace(position=np.concatenate(
        [truth.position, np.broadcast_to(z, (*truth.position.shape[:3], 1))], axis=3),
        source_software="element-pose", source_software_version="9.9.9")
    k = [[500.0, 0, 80], [0, 500.0, 60], [0, 0, 1]]
    views = [CameraView(CalibratedCameraMetadata(
        name=name, intrinsic_matrix=k, rotation_matrix=np.eye(3),
        translation_vector=[shift, 0, 0], distortion_coefficients=[0.1, 0, 0, 0, 0]),
        pose=truth, video=nwb.VideoMetadata.from_files([video]))
        for name, shift in (("left", -50.0), ("right", 50.0))]
    path = write_nwb_3d(tmp_path / "3d.nwb", pose3d, subject, session, views, unit="mm")

    with NWBHDF5IO(str(path), "r") as io:
        f = io.read()
        pe = f.processing["behavior"]["PoseEstimation"]
        assert pe.neurodata_type == "MultiCameraPoseEstimation"
        assert pe.source_software == "element-pose" and pe.source_software_version == "9.9.9"
        series = pe.pose_estimation_series["nose"]
        assert series.unit == "millimeters" and series.data.shape == (truth.n_frames, 3)
        assert series.confidence_definition.startswith("Triangulation score")
        for name, shift in (("left", -50.0), ("right", 50.0)):
            camera = f.devices[name]
            assert camera.neurodata_type == "CalibratedCamera"
            np.testing.assert_allclose(camera.intrinsic_matrix[:], k)
            np.testing.assert_allclose(camera.translation_vector[:], [shift, 0, 0])
            view = pe.pose_estimations[name]
            assert view.device is camera
            assert view.source_video.external_file[0] == video.name
            np.testing.assert_array_equal(view.pose_estimation_series["nose"].data[:],
                                          truth.position[:, 0, 0])
    ds = load_poses.from_nwb_file(path)  # default arguments find the 3D poses
    assert list(ds.space.values) == ["x", "y", "z"]
    np.testing.assert_array_equal(
        ds.position.sel(keypoints="nose").transpose("time", "space", "individuals").values[:, :, 0],
        pose3d.position[:, 0, 0])
    back = nwb.read_pose_from_nwb(path)
    np.testing.assert_array_equal(back.position, pose3d.position)
    messages = nwb.check_nwb(path)  # no critical message, and no unit complaint
    assert not [m for m in messages if "unit" in m.check_function_name]
    assert nwb_length_unit("m") == "meters"
    with pytest.raises(NWBExportError, match="length unit"):
        nwb_length_unit("pixels")


def test_gzip_chunks_are_standard_and_keep_x_and_y_together(tmp_path, subject, session):
    """Direct-chunk-written gzip + shuffle data: plain HDF5 reads them back exactly."""
    truth = sample.ground_truth(n_frames=70_001, bodyparts=["nose", "tail"])  # 5 chunks
    rng = np.random.default_rng(0)
    truth.position[:] += rng.normal(0, 1, truth.position.shape).astype(np.float32)
    truth.position[10:20, 0, 1] = np.nan
    truth = dataclasses.replace(truth, individuals=["mouse1"])
    path = nwb.write_nwb(tmp_path / "big.nwb", truth, subject, session)
    with h5py.File(path, "r") as h5:
        for k, keypoint in enumerate(truth.keypoints):
            data = h5[f"processing/behavior/PoseEstimation/{keypoint}/data"]
            assert data.compression == "gzip" and data.shuffle
            assert data.chunks == (16384, 2)  # x and y in one chunk
            assert data.id.get_num_chunks() == 5  # every chunk written, none left to fill
            assert data[:].tobytes() == np.ascontiguousarray(truth.position[:, 0, k]).tobytes()
            confidence = h5[f"processing/behavior/PoseEstimation/{keypoint}/confidence"]
            assert confidence.compression == "gzip" and confidence.chunks == (16384,)
            assert confidence[:].tobytes() == truth.confidence[:, 0, k].tobytes()
    messages = nwb.check_nwb(path)
    assert not [m for m in messages if "compress" in m.check_function_name
                or "chunk" in m.check_function_name], messages
    _assert_same_pose(nwb.read_pose_from_nwb(path), truth)


def test_noise_planes_are_run_length_coded_in_standard_zlib_streams():
    """Chunks whose low byte planes are noise (sub-pixel coordinates) are deflated as
    run-length-coded runs plus matched runs: one standard zlib stream per chunk that any
    inflate reads back exactly, no larger than a plain deflate of the same bytes."""
    import zlib

    from element_pose.export.nwb import deflate

    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(0, 0.5, (40_000, 2)), axis=0) + 300
    arrays = {"xy": (walk + rng.normal(0, 1, walk.shape)).astype(np.float32),
              "likelihood": rng.uniform(0.85, 1, 40_000).astype(np.float32),
              "frames": np.arange(40_000, dtype=np.int64),  # no noise: one plain stream
              "constant": np.full(40_000, 2.5, np.float64)}
    zl = deflate._zlib()
    for name, array in arrays.items():
        chunks = deflate._deflate(array, 16384, 4)
        assert [start for start, _ in chunks] == [0, 16384, 32768], name
        plain = 0
        for start, payload in chunks:
            block = np.zeros((16384, *array.shape[1:]), array.dtype)
            part = array[start:start + 16384]
            block[:len(part)] = part  # the edge chunk is stored at full size
            shuffled = np.frombuffer(block.tobytes(), np.uint8).reshape(
                -1, array.dtype.itemsize).T.tobytes()
            assert zlib.decompress(payload) == shuffled, name
            plain += len(zl.compress(shuffled, 4))
        assert sum(len(p) for _, p in chunks) <= plain, name
    sample = np.frombuffer(arrays["xy"][:4096].tobytes(), np.uint8).reshape(-1, 4).T
    assert deflate._noise_planes(sample, zl)[:2] == [True, True]  # the low two bytes
    assert deflate._noise_planes(sample, zl)[3] is False  # sign and exponent


def test_preload_imports_pynwb_and_ndx_pose_in_the_background():
    """``preload`` (called by ``export_nwb`` first) imports ndx-pose in a background
    thread, not a daemon (see the next test)."""
    code = (
        "import sys, threading\n"
        "from element_pose.export.nwb import layout\n"
        "assert 'pynwb' not in sys.modules\n"
        "layout.preload(); layout.preload()\n"
        "threads = [t for t in threading.enumerate() if t.name == 'element-pose-nwb-import']\n"
        "assert len(threads) == 1 and not threads[0].daemon\n"
        "threads[0].join(120)\n"
        "assert 'ndx_pose' in sys.modules and 'pynwb' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr


def test_the_background_nwb_import_is_waited_for_at_exit():
    """A process that exits while pynwb is imported in the background must wait for it:
    a daemon thread importing h5py during interpreter shutdown crashed (SIGSEGV) the
    CLI's refused re-export."""
    code = ("import sys, threading\n"
            "from element_pose.export.nwb.layout import preload\n"
            "preload()\n"
            "threads = [t for t in threading.enumerate() if t.name == 'element-pose-nwb-import']\n"
            "print(all(not t.daemon for t in threads), len(threads))\n"
            "sys.exit(3)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 3, done.stderr  # its own exit code, not a signal
    assert done.stdout.split() == ["True", "1"], done.stdout
