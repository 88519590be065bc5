"""NWB export from the database and DANDI publishing with the real dandi client."""

from __future__ import annotations

import datetime
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from element_pose import sample
from element_pose.ops import dandi_sync

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.dandi_server import LocalDandiArchive

pytestmark = pytest.mark.usefixtures("pipeline")
API_KEY = "publish-test-key-0123456789"


@pytest.fixture(autouse=True)
def _fresh_dandiset_records(pipeline):
    """Every test publishes to its own archive's dandiset 000123: no earlier records."""
    pipeline.publish.DandiUpload.delete_quick()


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
                                                    unique, tmp_path, monkeypatch):
    """One file per individual; each file reads only its own individual's arrays."""
    from element_pose.db import arrays
    from element_pose.export.nwb import read_pose_from_nwb

    session, _, truths = _estimation(pipeline, raw_root, processed_root, f"ma{unique}",
                                     n_individuals=2)
    decoded = []
    decode = arrays.decode_array

    def counting(buffer, meta, out=None):
        decoded.append(meta["path"])
        return decode(buffer, meta, out)

    monkeypatch.setattr(arrays, "decode_array", counting)
    files = pipeline.publish.export_nwb(session, tmp_path)
    stored = len(pipeline.model.PoseEstimation.BodyPartPosition & session)
    assert len(decoded) == 3 * stored  # x, y, likelihood of each part row, once
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
        report = dandi_sync.sync("000123", dandiset, instance=archive.api_url,
                                    api_key=API_KEY, query=session)
        nwb_rel = f"sub-s{unique}/sub-s{unique}_ses-3_behavior+image.nwb"
        assert report.exported == [nwb_rel] and nwb_rel in report.uploaded
        assert archive.asset_bytes("000123", nwb_rel) == (dandiset / nwb_rel).read_bytes()
        video_assets = [a for a in archive.assets("000123") if a.endswith(".mp4")]
        assert video_assets  # the external video went along, beside the file
        row = (publish.DandiUpload & {"asset_path": nwb_rel}).fetch1()
        assert row["status"] == "uploaded" and len(row["sha256"]) == 64 and row["asset_id"]

        parts_before = archive.part_puts
        again = dandi_sync.sync("000123", dandiset, instance=archive.api_url,
                                   api_key=API_KEY, query=session)
        assert again.exported == [] and again.uploaded == [] and nwb_rel in again.unchanged
        assert archive.part_puts == parts_before and not archive.deleted

        # a fresh export (new file identifier, new bytes) with a wrong key: a clear error,
        # and the record still holds the last good upload
        from element_pose.export.dandi import DandiAuthError

        with pytest.raises(DandiAuthError, match=r"(?i)key"):
            dandi_sync.sync("000123", tmp_path / "fresh" / "000123",
                               instance=archive.api_url, api_key="wrong-key", query=session)
        assert "wrong-key" not in str((publish.DandiUpload & {"asset_path": nwb_rel}).to_dicts())
        assert (publish.DandiUpload & {"asset_path": nwb_rel}).fetch1("sha256") == row["sha256"]


def test_dandi_sync_with_a_key_that_owns_nothing(pipeline, tmp_path, caplog):
    """A valid key of a user who does not own the dandiset: a clear error naming the user
    and the owners, before anything is exported (the archive's 403 on its uploads listing
    used to end the sync with a bare HTTPError)."""
    from element_pose.export.dandi import DandiAuthError

    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        archive.add_user("reader-key-0123456789", "reader")
        with pytest.raises(DandiAuthError, match=r"'reader'.*not an owner of dandiset "
                                                 r"000123.*'tester'"):
            dandi_sync.sync("000123", tmp_path / "000123", instance=archive.api_url,
                               api_key="reader-key-0123456789", query={"subject": "nobody"})
        assert archive.count("POST", r"^/api/") == 0 and archive.count("DELETE", ".") == 0
    assert not list((tmp_path / "000123").glob("sub-*"))
    assert "reader-key-0123456789" not in caplog.text


def test_dandi_sync_refuses_a_second_copy(pipeline, tmp_path):
    dandiset = tmp_path / "000123"
    with dandi_sync.sync_lock(dandiset):
        with pytest.raises(dandi_sync.SyncBusyError, match="another dandi-sync"):
            dandi_sync.sync("000123", dandiset, api_key=API_KEY)


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


# ------------------------------------------------------------- incremental dandi-sync
def _sync(publish, archive, dandiset, session, **kw):
    return dandi_sync.sync("000123", dandiset, instance=archive.api_url, api_key=API_KEY,
                              query=session, **kw)


def _add_recording(pipeline, raw_root, processed_root, name, session, camera, number, task):
    """A further camera's recording and estimation in an existing session."""
    model = pipeline.model
    pipeline.lab.Device.insert1({"device": camera, "description": "side view"},
                                skip_duplicates=True)
    video = raw_root / f"pub_{name}" / f"{camera}.mp4"
    truth = sample.make_video(video, n_frames=30, seed=number)
    outputs = processed_root / f"pub_{name}_{camera}"
    sample.make_dlc_output(truth, video, outputs)
    key = model.VideoRecording.insert_recording(session, number, {"device": camera}, [video])
    model.RecordingInfo.populate(key)
    new = model.PoseEstimationTask.insert_estimation_task(
        {**key, "model_name": task["model_name"]}, "load", output_dir=outputs)
    model.PoseEstimation.populate(session)
    return new


def test_sync_is_incremental_and_compares_with_the_archive(pipeline, raw_root, processed_root,
                                                           unique, tmp_path):
    """Issue 17 item 1 + issue 11 defect 6: a no-op run checksums and validates nothing,
    an asset deleted on the archive is uploaded again, a wrong key fails with nothing new."""
    from element_pose.export.dandi import DandiAuthError
    from element_pose.ops.dandi_sync import invalid_assets

    publish = pipeline.publish
    session, _, _ = _estimation(pipeline, raw_root, processed_root, f"inc{unique}")
    dandiset = tmp_path / "000123"
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        archive.max_page_size = 1  # listings in pages of one asset: the sync follows them
        first = _sync(publish, archive, dandiset, session)
        nwb_rel = f"sub-inc{unique}/sub-inc{unique}_ses-3_behavior+image.nwb"
        assert first.exported == [nwb_rel] and first.ok
        assert nwb_rel in first.validated and len(first.uploaded) == 2  # file + its video
        archive.wait_validated()

        pages = archive.count("GET", r"/versions/draft/assets/$")
        again = _sync(publish, archive, dandiset, session)
        assert archive.count("GET", r"/versions/draft/assets/$") == pages + 2  # 2 pages
        assert again.checksummed == [] and again.validated == [] and again.exported == []
        assert again.uploaded == [] and sorted(again.unchanged) == sorted(first.uploaded)
        rows = (publish.DandiUpload & {"dandiset_id": "000123"}).to_dicts()
        assert {r["archive_status"] for r in rows} == {"Valid"}  # asked the archive
        assert all(not Path(r["local_path"]).is_absolute() for r in rows)
        assert invalid_assets() == [] or all(a["asset_path"] not in first.uploaded
                                             for a in invalid_assets())

        # deleted on the archive (by someone else): uploaded again, no checksum needed
        with archive.lock:
            ds = archive.dandisets["000123"]
            gone = next(a for a in ds.assets.values() if a.path == nwb_rel)
            del ds.assets[gone.asset_id]
        third = _sync(publish, archive, dandiset, session)
        assert third.uploaded == [nwb_rel] and third.checksummed == [] and third.validated == []
        assert archive.asset_bytes("000123", nwb_rel) == (dandiset / nwb_rel).read_bytes()

        # a wrong key is an error on every run, even with nothing new
        with pytest.raises(DandiAuthError, match="rejected the API key"):
            dandi_sync.sync("000123", dandiset, instance=archive.api_url,
                               api_key="wrong-key", query=session)
        assert archive.deleted == []


def test_changed_content_is_exported_and_replaced(pipeline, raw_root, processed_root, unique,
                                                  tmp_path):
    """Issue 11 defect 2: re-populated poses under the same key are published again."""
    from element_pose.export.nwb import read_pose_from_nwb

    publish, model = pipeline.publish, pipeline.model
    name = f"chg{unique}"
    session, tasks, truths = _estimation(pipeline, raw_root, processed_root, name)
    dandiset = tmp_path / "000123"
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        _sync(publish, archive, dandiset, session)
        nwb_rel = f"sub-{name}/sub-{name}_ses-3_behavior+image.nwb"
        old_id = archive.assets()[nwb_rel].asset_id
        (model.PoseEstimation & tasks[0]).delete(prompt=False)
        video = raw_root / f"pub_{name}" / "cam0.mp4"
        moved = truths[0].replace(position=truths[0].position + 40.0)
        sample.make_dlc_output(moved, video, processed_root / f"pub_{name}_cam0")
        model.PoseEstimation.populate(session)

        report = _sync(publish, archive, dandiset, session)
        assert report.exported == [nwb_rel] and nwb_rel in report.uploaded and report.ok
        assert archive.assets()[nwb_rel].asset_id != old_id  # replaced in place
        remote = tmp_path / "remote.nwb"
        remote.write_bytes(archive.asset_bytes("000123", nwb_rel))
        stored = model.PoseEstimation.fetch_pose(tasks[0])
        assert np.array_equal(read_pose_from_nwb(remote).position, stored.position,
                              equal_nan=True)
        assert archive.deleted == []


def test_grown_session_replaces_the_file_in_place(pipeline, raw_root, processed_root, unique,
                                                  tmp_path):
    """Issue 11 defect 3: a second recording after a sync no longer gives 'already exist'."""
    from element_pose.export.nwb import list_pose_estimations

    publish = pipeline.publish
    name = f"grow{unique}"
    session, tasks, _ = _estimation(pipeline, raw_root, processed_root, name)
    dandiset = tmp_path / "000123"
    user_dir = dandiset / ".staging"  # the user's own folder with the old fixed name
    user_dir.mkdir(parents=True)
    (user_dir / "notes.txt").write_text("mine")
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        _sync(publish, archive, dandiset, session)
        nwb_rel = f"sub-{name}/sub-{name}_ses-3_behavior+image.nwb"
        old_id = archive.assets()[nwb_rel].asset_id
        _add_recording(pipeline, raw_root, processed_root, name, session, "cam1", 1, tasks[0])
        report = _sync(publish, archive, dandiset, session)
        assert report.exported == [nwb_rel] and nwb_rel in report.uploaded and report.ok
        assert archive.assets()[nwb_rel].asset_id != old_id
        assert len(list_pose_estimations(dandiset / nwb_rel)) == 2
        assert archive.asset_bytes("000123", nwb_rel) == (dandiset / nwb_rel).read_bytes()
        assert archive.deleted == [] and archive.count("DELETE", "/assets/") == 0
    assert (user_dir / "notes.txt").read_text() == "mine"  # issue 11 defect 5
    assert not [p for p in dandiset.iterdir() if p.name.startswith(".element-pose-staging")]


def test_one_invalid_file_fails_alone(pipeline, raw_root, processed_root, unique, tmp_path):
    """Issue 17 item 1: an invalid file is reported; the others are uploaded."""
    import shutil

    publish = pipeline.publish
    good, _, _ = _estimation(pipeline, raw_root, processed_root, f"ok{unique}")
    bad, _, _ = _estimation(pipeline, raw_root, processed_root, f"nosp{unique}", species="")
    dandiset = tmp_path / "000123"
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        report = _sync(publish, archive, dandiset, [good, bad])
        good_rel = f"sub-ok{unique}/sub-ok{unique}_ses-3_behavior+image.nwb"
        bad_rel = f"sub-nosp{unique}/sub-nosp{unique}_ses-3_behavior+image.nwb"
        assert good_rel in report.uploaded and "species" in report.failed[bad_rel]
        assert not report.ok
        # a file that dandi validate rejects fails alone too, and is recorded as invalid
        stray = dandiset / f"sub-ok{unique}" / "stray_name.nwb"
        shutil.copy(dandiset / good_rel, stray)
        again = _sync(publish, archive, dandiset, good)
        stray_rel = stray.relative_to(dandiset).as_posix()
        assert "NON_DANDI" in again.failed[stray_rel] and again.validated == [stray_rel]
        assert stray_rel not in archive.assets()
        row = (publish.DandiUpload & {"asset_path": stray_rel}).fetch1()
        assert row["status"] == "invalid"
        third = _sync(publish, archive, dandiset, good)  # not validated again
        assert third.validated == [] and stray_rel in third.failed


def test_archive_validation_status_is_recorded(pipeline, raw_root, processed_root, unique,
                                               tmp_path):
    """Issue 11: assets go Pending -> Valid/Invalid on the archive; Invalid ones are shown."""
    from element_pose.ops.dandi_sync import invalid_assets

    publish = pipeline.publish
    name = f"inv{unique}"
    session, _, _ = _estimation(pipeline, raw_root, processed_root, name)
    nwb_rel = f"sub-{name}/sub-{name}_ses-3_behavior+image.nwb"
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        archive.validation_delay = 1.0
        archive.invalidate(nwb_rel, "session_start_time is in the future")
        first = _sync(publish, archive, tmp_path / "000123", session)
        assert nwb_rel in first.pending  # not assumed Valid
        archive.wait_validated()
        later = _sync(publish, archive, tmp_path / "000123", session)
        assert later.invalid == {nwb_rel: [": session_start_time is in the future"]
                                 } or "future" in " ".join(later.invalid[nwb_rel])
        assert not later.ok
        shown = [a for a in invalid_assets() if a["asset_path"] == nwb_rel]
        assert shown and shown[0]["archive_status"] == "Invalid"
        assert "future" in shown[0]["messages"][0]


_CHILD_SYNC = """
import json, sys
from workflow import pipeline  # activates the schemas
from element_pose.ops import dandi_sync
dandi_sync.sync("000123", sys.argv[1], instance=sys.argv[2], api_key=sys.argv[3],
                            query=json.loads(sys.argv[4]))
"""


def test_killed_upload_is_resumed(pipeline, raw_root, processed_root, unique, tmp_path):
    """Issue 11: a client killed mid-upload leaves an unfinished upload; the next sync
    clears it and uploads the file, without exporting or validating it again."""
    import json
    import os
    import signal
    import subprocess

    publish = pipeline.publish
    name = f"kill{unique}"
    session, _, _ = _estimation(pipeline, raw_root, processed_root, name)
    dandiset = tmp_path / "000123"
    nwb_rel = f"sub-{name}/sub-{name}_ses-3_behavior+image.nwb"
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        archive.hold_parts(0)  # the first part upload hangs: kill the client there
        # the same sync in its own process (same database and schemas), killed mid-upload
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD_SYNC, str(dandiset), archive.api_url, API_KEY,
             json.dumps(session)], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            assert archive.parts_held.wait(180), "the child never reached the upload"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(30)
        archive.release_parts()
        assert archive.active_uploads() and archive.assets() == {}
        row = (publish.DandiUpload & {"asset_path": nwb_rel}).fetch1()
        assert row["status"] == "pending" and row["content_hash"]  # state kept as it went
        assert [p for p in dandiset.iterdir() if p.name.startswith(".element-pose-staging")]

        report = _sync(publish, archive, dandiset, session)
        assert report.cleared_uploads >= 1 and archive.active_uploads() == []
        assert report.exported == [] and report.validated == []
        assert nwb_rel in report.uploaded and report.ok
        assert archive.asset_bytes("000123", nwb_rel) == (dandiset / nwb_rel).read_bytes()
        assert archive.deleted == []
    assert not [p for p in dandiset.iterdir() if p.name.startswith(".element-pose-staging")]


def test_another_clients_upload_in_progress_is_left_alone(pipeline, raw_root, processed_root,
                                                         unique, tmp_path):
    """The archive cancels a dandiset's unfinished uploads all at once: a sync cancels
    them only when every one is its own (a killed run's); another client's upload in
    progress (a colleague's ``dandi upload``) is left running, and said so."""
    import requests

    publish = pipeline.publish
    session, _, _ = _estimation(pipeline, raw_root, processed_root, f"other{unique}")
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        started = requests.post(  # a colleague's upload, just started
            f"{archive.api_url}/uploads/initialize/", headers={"Authorization": f"token {API_KEY}"},
            json={"contentSize": 1000, "dandiset": "000123",
                  "digest": {"algorithm": "dandi:dandi-etag", "value": "0" * 32 + "-1"}},
            timeout=10)
        assert started.status_code == 200
        report = _sync(publish, archive, tmp_path / "000123", session)
        assert report.ok and len(report.uploaded) == 2
        assert report.cleared_uploads == 0 and report.left_uploads == 1
        assert archive.active_uploads() == [started.json()["upload_id"]]
        assert archive.count("DELETE", r"/uploads/$") == 0


# ------------------------------------------------------------- one connection per run
def test_a_sync_checks_the_key_and_lists_the_draft_once(pipeline, raw_root, processed_root,
                                                        unique, tmp_path):
    """A run of several new files checks the key, looks up the dandiset and lists (or
    globs) the draft once, not once per file; so does a run with nothing new."""
    publish = pipeline.publish
    sessions = [_estimation(pipeline, raw_root, processed_root, f"one{n}{unique}")[0]
                for n in range(2)]
    dandiset = tmp_path / "000123"
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        report = _sync(publish, archive, dandiset, sessions)
        assert len(report.exported) == 2 and len(report.uploaded) == 4 and report.ok
        assert len(archive.assets("000123")) == 4
        per_run = {("GET", r"^/api/auth/token/$"): 1,  # the key check
                   ("GET", r"^/api/dandisets/000123/$"): 1,  # the dandiset lookup
                   # the listing (a path or glob lookup is the same endpoint)
                   ("GET", r"^/api/dandisets/000123/versions/draft/assets/$"): 1}
        assert {k: archive.count(*k) for k in per_run} == per_run

        again = _sync(publish, archive, dandiset, sessions)
        assert again.uploaded == [] and len(again.unchanged) == 4
        assert {k: archive.count(*k) for k in per_run} == {k: 2 for k in per_run}


def test_a_sync_fetches_each_sessions_metadata_once(pipeline, raw_root, processed_root,
                                                    unique, tmp_path, monkeypatch):
    """The linking module is asked once per run for all sessions (plan, content hashes
    and every file's export share it), and once per export_nwb call; a file exported
    again is looked for where it and its videos are, not in a rescan of its folder."""
    import os
    publish = pipeline.publish
    sessions = [_estimation(pipeline, raw_root, processed_root, f"meta{n}{unique}")[0]
                for n in range(2)]
    asked: list[int] = []
    real_many, real_one = pipeline.get_nwb_metadata_many, pipeline.get_nwb_metadata

    def many(keys):
        asked.append(len(keys))
        return real_many(keys)

    def one(key):
        asked.append(-1)  # never expected: everything goes through the batched call
        return real_one(key)

    monkeypatch.setattr(pipeline, "get_nwb_metadata_many", many)
    monkeypatch.setattr(pipeline, "get_nwb_metadata", one)
    dandiset = tmp_path / "000123"
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        report = _sync(publish, archive, dandiset, sessions)
        assert len(report.exported) == 2 and report.ok
        assert asked == [2]

        # both files gone locally: exported again; each subject folder is scanned once
        # (the run's look at the whole dandiset), not again for each file it exports
        for rel in report.exported:
            (dandiset / rel).unlink()
        scanned: list[str] = []
        real_scandir = os.scandir

        def scandir(path="."):
            scanned.append(str(path))  # a path or a file descriptor
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)
        again = _sync(publish, archive, dandiset, sessions)
        assert sorted(again.exported) == sorted(report.exported) and again.ok
        folders = {str(dandiset / rel.split("/")[0]) for rel in report.exported}
        in_run = {f: scanned.count(f) for f in folders}
        scanned.clear()
        from element_pose.export.dandi import local_assets

        local_assets(dandiset)  # what one look at the whole dandiset scans
        monkeypatch.setattr(os, "scandir", real_scandir)
        assert in_run == {f: scanned.count(f) for f in folders} and all(in_run.values())
        assert asked == [2, 2]

    asked.clear()
    files = publish.export_nwb(sessions, tmp_path / "export")
    assert len(files) == 2 and asked == [2]


# ------------------------------------------------------------- leftovers (issue 27 item 1)
def _repopulate(pipeline, raw_root, processed_root, name, session, task, truth, shift):
    """New poses under the same key: the next sync exports the file again."""
    model = pipeline.model
    (model.PoseEstimation & task).delete(prompt=False)
    video = raw_root / f"pub_{name}" / "cam0.mp4"
    sample.make_dlc_output(truth.replace(position=truth.position + shift), video,
                           processed_root / f"pub_{name}_cam0")
    model.PoseEstimation.populate(session)


def test_re_exports_keep_one_video_per_camera_and_remove_only_their_own(
        pipeline, raw_root, processed_root, unique, tmp_path):
    """Issue 27 item 1: a re-exported file's video keeps its name (dandi organize named it
    after the ImageSeries' object id, new on every write, and every re-export left one
    more video in the draft); what a sync uploaded earlier and no file refers to any more
    is removed from the draft, and an asset another client uploaded stays."""
    publish = pipeline.publish
    name = f"left{unique}"
    session, tasks, truths = _estimation(pipeline, raw_root, processed_root, name)
    dandiset = tmp_path / "000123"
    nwb_rel = f"sub-{name}/sub-{name}_ses-3_behavior+image.nwb"
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        first = _sync(publish, archive, dandiset, session)
        assert first.ok and len(first.uploaded) == 2
        videos = [a for a in archive.assets() if a.endswith(".mp4")]
        # another client's asset at another path, beside ours
        other = tmp_path / "other" / "000123"
        from element_pose.export import dandi

        dandi.write_dandiset_yaml(other, "000123", "another client")
        foreign = other / f"sub-{name}" / "foreign_external_file_0.mp4"
        foreign.parent.mkdir(parents=True)
        shutil.copy(dandiset / videos[0], foreign)
        dandi.upload(foreign, "000123", archive.api_url, api_key=API_KEY)
        for shift in (40.0, 80.0):
            _repopulate(pipeline, raw_root, processed_root, name, session, tasks[0],
                        truths[0], shift)
            report = _sync(publish, archive, dandiset, session)
            assert report.exported == [nwb_rel] and nwb_rel in report.uploaded and report.ok
        assets = archive.assets()
        ours = sorted(a for a in assets if a.endswith(".mp4") and "foreign" not in a)
        assert ours == videos  # one video for the one camera, under the same name
        assert f"sub-{name}/foreign_external_file_0.mp4" in assets
        on_disk = sorted(p.relative_to(dandiset).as_posix()
                         for p in dandiset.rglob("*.mp4"))
        assert on_disk == videos

        # a video this sync uploaded that the file no longer refers to (here: the
        # file's link rewritten by hand) is removed from the draft and the folder
        import h5py

        stale = dandiset / videos[0]
        kept = stale.with_name("cam0_video_external_file_9.mp4")
        shutil.copy(stale, kept)
        with h5py.File(dandiset / nwb_rel, "a") as h5:
            link = h5["acquisition/cam0_video/external_file"]
            link[0] = f"{Path(nwb_rel).stem}/{kept.name}"
        report = _sync(publish, archive, dandiset, session)
        assert report.removed == videos and report.ok
        assets = archive.assets()
        assert videos[0] not in assets and kept.relative_to(dandiset).as_posix() in assets
        assert f"sub-{name}/foreign_external_file_0.mp4" in assets
        assert not stale.exists()
        assert not (publish.DandiUpload & {"asset_path": videos[0]})
        assert archive.deleted == [videos[0]]
