"""NWB export (ndx-pose 0.4): write, read back, append, split, training, inspector."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil

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
            assert data[:].tobytes() == np.ascontiguousarray(truth.position[:, 0, k]).tobytes()
            confidence = h5[f"processing/behavior/PoseEstimation/{keypoint}/confidence"]
            assert confidence.compression == "gzip" and confidence.chunks == (16384,)
            assert confidence[:].tobytes() == truth.confidence[:, 0, k].tobytes()
    messages = nwb.check_nwb(path)
    assert not [m for m in messages if "compress" in m.check_function_name
                or "chunk" in m.check_function_name], messages
    _assert_same_pose(nwb.read_pose_from_nwb(path), truth)
