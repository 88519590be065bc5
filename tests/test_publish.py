"""NWB export from the database and DANDI publishing with the real dandi client."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import numpy as np
import pytest

from element_pose import sample

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.dandi_server import LocalDandiArchive

pytestmark = pytest.mark.usefixtures("pipeline")
API_KEY = "publish-test-key-0123456789"


@pytest.fixture(autouse=True)
def _no_dandi_telemetry(monkeypatch):
    monkeypatch.setenv("DANDI_NO_ET", "1")
    monkeypatch.setenv("DANDI_CACHE", "ignore")
    monkeypatch.delenv("DANDI_API_KEY", raising=False)


def _estimation(pipeline, raw_root, processed_root, name, *, species="Mus musculus",
                n_individuals=1, cameras=("cam0",)):
    model = pipeline.model
    pipeline.lab.Lab.insert1({"lab": "plab", "lab_name": "Pose Lab", "institution": "Uni",
                              "time_zone": "Europe/Zurich"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": name, "sex": "F", "species": species,
                                      "subject_birth_date": datetime.date(2025, 9, 1)})
    pipeline.subject.Subject.Lab.insert1({"subject": name, "lab": "plab"})
    session = {"subject": name, "session_id": 3}
    pipeline.session.Session.insert1({**session, "session_datetime":
                                      datetime.datetime(2026, 3, 1, 9, 30),
                                      "session_description": "open field"})
    folder = raw_root / f"pub_{name}"
    project = sample.make_dlc_project(folder / "project", n_frames=10, n_labeled=2,
                                      n_individuals=n_individuals)
    model_key = model.Model.insert_new_model(f"pub_{name}", project)
    tasks, truths = [], []
    for r, camera in enumerate(cameras):
        pipeline.lab.Device.insert1({"device": camera, "description": "top view"},
                                    skip_duplicates=True)
        video = folder / f"{camera}.mp4"
        truth = sample.make_video(video, n_frames=30, n_individuals=n_individuals, seed=r)
        outputs = processed_root / f"pub_{name}_{camera}"
        sample.make_dlc_output(truth, video, outputs)
        key = model.VideoRecording.insert_recording(session, r, {"device": camera}, [video])
        model.RecordingInfo.populate(key)
        tasks.append(model.PoseEstimationTask.insert_estimation_task(
            {**key, **model_key}, "load", output_dir=outputs))
        truths.append(truth)
    model.PoseEstimation.populate(session)
    return session, tasks, truths


def test_export_round_trip_inspector_and_time(pipeline, raw_root, processed_root, unique,
                                              tmp_path):
    from element_pose.export.nwb import check_nwb, read_pose_from_nwb

    session, tasks, _ = _estimation(pipeline, raw_root, processed_root, f"e{unique}")
    files = pipeline.publish.export_nwb(session, tmp_path)
    assert [f.relpath for f in files] == [f"sub-e{unique}/sub-e{unique}_ses-3_behavior+image.nwb"]
    pose = read_pose_from_nwb(files[0].path)  # default container name: PoseEstimation
    stored = pipeline.model.PoseEstimation.fetch_pose(tasks[0])
    assert np.array_equal(pose.position, stored.position, equal_nan=True)
    assert np.allclose(pose.time(), np.arange(30) / 30, atol=1e-6)  # seconds, not frames
    check_nwb(files[0].path)  # no critical nwbinspector message
    fast = pipeline.publish.export_nwb(session, tmp_path / "fast", compression=None)
    assert np.array_equal(read_pose_from_nwb(fast[0].path).position, stored.position,
                          equal_nan=True)
    with pytest.raises(Exception, match="compression must be"):
        pipeline.publish.export_nwb(session, tmp_path / "bad", compression="zstd")


def test_two_cameras_get_distinct_containers(pipeline, raw_root, processed_root, unique,
                                             tmp_path):
    from element_pose.export.nwb import list_pose_estimations

    session, _, _ = _estimation(pipeline, raw_root, processed_root, f"two{unique}",
                                cameras=("camA", "camB"))
    files = pipeline.publish.export_nwb(session, tmp_path)
    assert len(files) == 1
    assert sorted(list_pose_estimations(files[0].path)) == [
        f"behavior/PoseEstimation_camA_pub_two{unique}",
        f"behavior/PoseEstimation_camB_pub_two{unique}"]


def test_multi_animal_gives_one_file_per_individual(pipeline, raw_root, processed_root,
                                                    unique, tmp_path):
    from element_pose.export.nwb import read_pose_from_nwb

    session, _, truths = _estimation(pipeline, raw_root, processed_root, f"ma{unique}",
                                     n_individuals=2)
    files = pipeline.publish.export_nwb(session, tmp_path)
    assert sorted(f.relpath.split("/")[0] for f in files) == [
        f"sub-ma{unique}-animal0", f"sub-ma{unique}-animal1"]
    one = read_pose_from_nwb(next(f.path for f in files if "animal1" in f.relpath))
    assert np.nanmax(np.abs(one.position[:, 0] - truths[0].position[:, 1])) < 6


def test_missing_metadata_lists_fields_and_writes_nothing(pipeline, raw_root, processed_root,
                                                          unique, tmp_path):
    from element_pose.export.nwb import MetadataError

    session, _, _ = _estimation(pipeline, raw_root, processed_root, f"nm{unique}", species="")
    with pytest.raises(MetadataError, match="species"):
        pipeline.publish.export_nwb(session, tmp_path)
    assert not any(tmp_path.rglob("*.nwb"))


def test_dandi_sync_uploads_new_only_and_retries(pipeline, raw_root, processed_root, unique,
                                                 tmp_path):
    publish = pipeline.publish
    session, _, _ = _estimation(pipeline, raw_root, processed_root, f"s{unique}")
    dandiset = tmp_path / "000123"
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        archive.fail_parts(1)  # the first part PUT fails once: the client must retry
        report = publish.dandi_sync("000123", dandiset, instance=archive.api_url,
                                    api_key=API_KEY, query=session)
        nwb_rel = f"sub-s{unique}/sub-s{unique}_ses-3_behavior+image.nwb"
        assert report.exported == [nwb_rel] and nwb_rel in report.uploaded
        assert archive.asset_bytes("000123", nwb_rel) == (dandiset / nwb_rel).read_bytes()
        video_assets = [a for a in archive.assets("000123") if a.endswith(".mp4")]
        assert video_assets  # the external video went along, beside the file
        row = (publish.DandiUpload & {"asset_path": nwb_rel}).fetch1()
        assert row["status"] == "uploaded" and len(row["sha256"]) == 64 and row["asset_id"]

        parts_before = archive.part_puts
        again = publish.dandi_sync("000123", dandiset, instance=archive.api_url,
                                   api_key=API_KEY, query=session)
        assert again.exported == [] and again.uploaded == [] and nwb_rel in again.unchanged
        assert archive.part_puts == parts_before and not archive.deleted

        # a fresh export (new file identifier, new bytes) with a wrong key: a clear error,
        # and the record still holds the last good upload
        from element_pose.export.dandi import DandiAuthError

        with pytest.raises(DandiAuthError, match=r"(?i)key"):
            publish.dandi_sync("000123", tmp_path / "fresh" / "000123",
                               instance=archive.api_url, api_key="wrong-key", query=session)
        assert "wrong-key" not in str((publish.DandiUpload & {"asset_path": nwb_rel}).to_dicts())
        assert (publish.DandiUpload & {"asset_path": nwb_rel}).fetch1("sha256") == row["sha256"]


def test_dandi_sync_refuses_a_second_copy(pipeline, tmp_path):
    publish = pipeline.publish
    dandiset = tmp_path / "000123"
    with publish._sync_lock(dandiset):
        with pytest.raises(publish.SyncBusyError, match="another dandi-sync"):
            publish.dandi_sync("000123", dandiset, api_key=API_KEY)


def test_append_to_an_existing_session_file(pipeline, raw_root, processed_root, unique,
                                            tmp_path):
    from pynwb import NWBHDF5IO, NWBFile

    from element_pose.export.nwb import read_pose_from_nwb

    session, tasks, _ = _estimation(pipeline, raw_root, processed_root, f"ap{unique}")
    path = tmp_path / "session.nwb"
    with NWBHDF5IO(str(path), "w") as io:  # the lab's own file, e.g. from ephys
        io.write(NWBFile(session_description="ephys", identifier=f"id-{unique}",
                         session_start_time=datetime.datetime(2026, 3, 1, 9, 30,
                                                              tzinfo=datetime.UTC)))
    inode = path.stat().st_ino
    assert pipeline.publish.append_nwb(session, path) == ["PoseEstimation"]
    assert path.stat().st_ino == inode  # appended in place, not rewritten
    pose = read_pose_from_nwb(path)
    stored = pipeline.model.PoseEstimation.fetch_pose(tasks[0])
    assert np.array_equal(pose.position, stored.position, equal_nan=True)
    assert pipeline.publish.append_nwb(session, path) == [f"PoseEstimation_cam0_pub_ap{unique}"]
    with pytest.raises(FileNotFoundError):
        pipeline.publish.append_nwb(session, tmp_path / "missing.nwb")


def test_export_with_training_frames(pipeline, raw_root, processed_root, unique, tmp_path):
    from pynwb import NWBHDF5IO

    session, _, _ = _estimation(pipeline, raw_root, processed_root, f"tr{unique}")
    files = pipeline.publish.export_nwb(session, tmp_path, include_training=True)
    with NWBHDF5IO(str(files[0].path), "r", load_namespaces=True) as io:
        behavior = io.read().processing["behavior"]
        training = [c for c in behavior.data_interfaces.values()
                    if type(c).__name__ == "PoseTraining"]
        assert training and len(training[0].training_frames.training_frames) == 2
