"""DANDI: layout, organize, validate, and upload with the real client to a local archive."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from element_pose import sample
from element_pose.export import dandi, nwb
from element_pose.export.dandi import (
    DandiAuthError,
    DandiError,
    DandiUploadError,
    DandiValidationError,
    dandi_relpath,
    file_checksum,
    plan_sync,
)

DANDISET_ID = "000123"  # the dandiset the conftest's archive and dandiset folders use


def test_relpath_matches_dandi_organize_sanitizing():
    from dandi.organize import _sanitize_value

    for value in ("m_1", "a.b", "x y", "ok-1", "c:d@e"):
        assert dandi.sanitize_label(value) == _sanitize_value(value, "subject_id")
    assert dandi_relpath("m_1", "s.2") == "sub-m-1/sub-m-1_ses-s-2_behavior+image.nwb"
    assert dandi_relpath("m1", "s1", suffix="behavior") == "sub-m1/sub-m1_ses-s1_behavior.nwb"


def test_organize_and_validate(tmp_path, recording, subject, session, camera):
    from pynwb import NWBHDF5IO

    video, truth = recording
    config = sample.make_dlc_project(tmp_path / "proj", n_frames=12, n_labeled=2)
    src = nwb.write_nwb(tmp_path / "raw" / "any_name.nwb", truth, subject, session,
                        camera=camera, video=nwb.VideoMetadata.from_files([video]),
                        training=nwb.TrainingData.from_dlc_project(config))
    ds = tmp_path / "dandiset"
    dandi.write_dandiset_yaml(ds, DANDISET_ID, "Pose test")

    mapping = dandi.organize([src], ds)
    dest = mapping[src]
    assert dest.relative_to(ds).as_posix() == dandi_relpath("mouse1", "session1")
    assert src.is_file()  # copy mode
    with NWBHDF5IO(str(dest), "r") as io:
        f = io.read()
        ext = f.acquisition["camera_top_video"].external_file[0]
        assert not Path(ext).is_absolute()
        assert (dest.parent / ext).read_bytes() == video.read_bytes()
        assert Path(ext).parts[0] == dest.stem  # beside the file, in <file stem>/
        pt = f.processing["behavior"]["PoseTraining"]
        train_ext = pt.source_videos.image_series["demo_video0"].external_file[0]
        assert (dest.parent / train_ext).is_file()

    assert dandi.validate(ds) == []  # includes NWB Inspector and PyNWB validation

    with pytest.raises(DandiError, match="already exist"):
        dandi.organize([shutil.copy(src, tmp_path / "again.nwb")], ds)

    bad = ds / "not_dandi_layout.nwb"
    shutil.copy(dest, bad)
    with pytest.raises(DandiValidationError, match="NON_DANDI") as info:
        dandi.require_valid(bad)
    assert "DANDI.NON_DANDI_FILENAME" in {e.id for e in info.value.errors}


def test_upload_then_nothing_new_then_changed(dandi_archive, dandiset_copy, recording,
                                              monkeypatch):
    ds = dandiset_copy
    results = dandi.upload(ds, DANDISET_ID, dandi_archive.api_url, api_key=dandi_archive.api_key)
    assert len(results) == 2 and {r.status for r in results} == {"uploaded"}
    assets = dandi_archive.assets(DANDISET_ID)
    assert set(assets) == {r.asset_path for r in results}
    for r in results:
        data = r.path.read_bytes()
        assert dandi_archive.asset_bytes(DANDISET_ID, r.asset_path) == data
        assert r.sha256 == hashlib.sha256(data).hexdigest()
        assert r.asset_id == assets[r.asset_path].asset_id
        assert assets[r.asset_path].metadata["digest"]["dandi:dandi-etag"] == r.dandi_etag
    nwb_result = next(r for r in results if r.asset_path.endswith(".nwb"))
    assert nwb_result.asset_path == dandi_relpath("mouse1", "session1")

    # the sync bookkeeping says nothing is new ...
    record = {r.asset_path: r.sha256 for r in results}
    current = {rel: file_checksum(p).sha256 for rel, p in dandi.local_assets(ds).items()}
    assert plan_sync(current, record).to_upload == ()
    # ... and a second upload (key from the environment) sends no bytes
    monkeypatch.setenv("DANDI_API_KEY", dandi_archive.api_key)
    initialized, parts = dandi_archive.count("POST", r"/uploads/initialize"), \
        dandi_archive.part_puts
    again = dandi.upload(ds, DANDISET_ID, dandi_archive.api_url)
    assert {r.status for r in again} == {"unchanged"}
    assert dandi_archive.count("POST", r"/uploads/initialize") == initialized
    assert dandi_archive.part_puts == parts

    # a changed file is re-uploaded in place; nothing is deleted
    _, truth = recording
    nwb.append_to_nwb(nwb_result.path, truth.replace(scorer="second_model"),
                      name="PoseEstimation_second")
    current = {rel: file_checksum(p).sha256 for rel, p in dandi.local_assets(ds).items()}
    plan = plan_sync(current, record)
    assert plan.changed == (nwb_result.asset_path,) and plan.new == ()
    third = {r.asset_path: r for r in dandi.upload(ds, DANDISET_ID, dandi_archive.api_url)}
    assert third[nwb_result.asset_path].status == "replaced"
    assert {r.status for r in third.values()} == {"replaced", "unchanged"}
    assert len(dandi_archive.assets(DANDISET_ID)) == 2
    assert dandi_archive.asset_bytes(DANDISET_ID, nwb_result.asset_path) == \
        nwb_result.path.read_bytes()
    assert dandi_archive.deleted == [] and dandi_archive.count("DELETE", ".") == 0


def test_an_upload_checks_the_key_once_and_reuses_an_open_archive(dandi_archive,
                                                                   dandiset_copy):
    """One key check and one dandiset lookup per upload (not one per file and step);
    through an open Archive that listed the draft, no further key check or lookup."""
    from element_pose.export.dandi.archive import Archive

    key_checks, lookups = (("GET", r"^/api/auth/token/$"), ("GET", r"^/api/dandisets/000123/$"))
    listing = ("GET", r"^/api/dandisets/000123/versions/draft/assets/$")
    results = dandi.upload(dandiset_copy, DANDISET_ID, dandi_archive.api_url,
                           api_key=dandi_archive.api_key)
    assert len(results) == 2 and {r.status for r in results} == {"uploaded"}
    assert dandi_archive.count(*key_checks) == 1 and dandi_archive.count(*lookups) == 1
    assert dandi_archive.count(*listing) == 2  # one lookup by path per file

    with Archive(dandi_archive.api_url, DANDISET_ID, dandi_archive.api_key) as archive:
        archive.assets()
        before = len(dandi_archive.requests)
        again = dandi.upload(dandiset_copy, DANDISET_ID, archive=archive)
        assert {r.status for r in again} == {"unchanged"}
        assert [r.asset_id for r in again] == [r.asset_id for r in results]
        # the client's schema check (once per connection) and each existing asset's
        # metadata (its etag): no key check, no lookup, no listing
        asked = [(m, p) for m, p, _ in dandi_archive.requests[before:]]
        assert asked.count(("GET", "/api/info/")) == 1 and len(asked) == 3
        assert all(re.fullmatch(r"/api/dandisets/000123/versions/draft/assets/[^/]+/", p)
                   for m, p in asked if p != "/api/info/")
        with pytest.raises(DandiError, match="000999"):
            dandi.upload(dandiset_copy, "000999", archive=archive)
    assert dandi_archive.count(*key_checks) == 2 and dandi_archive.count(*lookups) == 2


def test_local_assets_within_looks_only_there(dandiset_copy, tmp_path):
    nwb_file = next(dandiset_copy.glob("sub-*/*.nwb"))
    everything = dandi.local_assets(dandiset_copy)
    (nwb_file.parent / ".hidden.nwb").write_bytes(b"")
    elsewhere = dandiset_copy / "sub-other" / "sub-other_ses-1.nwb"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"")
    owned = dandi.local_assets(dandiset_copy, within=[nwb_file, nwb_file.with_suffix("")])
    assert owned == everything and len(owned) == 2  # the file and its video, in path order
    assert dandi.local_assets(dandiset_copy, within=[elsewhere.parent]) == {
        "sub-other/sub-other_ses-1.nwb": elsewhere}
    assert dandi.local_assets(dandiset_copy, within=[tmp_path / "outside",
                                                     dandiset_copy / "missing"]) == {}


def test_failed_part_is_retried(dandi_archive, dandiset_copy):
    dandi_archive.fail_parts(1)
    nwb_file = next(dandiset_copy.glob("sub-*/*.nwb"))
    results = dandi.upload(nwb_file, DANDISET_ID, dandi_archive.api_url,
                           api_key=dandi_archive.api_key)
    assert {r.status for r in results} == {"uploaded"}
    assert len(results) == 2  # the NWB file brings its organized video along
    assert dandi_archive.count("PUT", r"^/storage/") == len(results) + 1
    assert [s for _, p, s in dandi_archive.requests if p.startswith("/storage/")].count(500) == 1
    for r in results:
        assert dandi_archive.asset_bytes(DANDISET_ID, r.asset_path) == r.path.read_bytes()


def test_key_and_option_errors(dandi_archive, dandiset_copy, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-key-do-not-log-0000"
    with pytest.raises(DandiAuthError, match="rejected the API key") as info:
        dandi.upload(dandiset_copy, DANDISET_ID, dandi_archive.api_url, api_key=wrong)
    assert wrong not in str(info.value) and wrong not in caplog.text
    with pytest.raises(DandiAuthError, match="DANDI_API_KEY"):
        dandi.upload(dandiset_copy, DANDISET_ID, dandi_archive.api_url)
    from dandi.upload import UploadExisting

    with pytest.raises(TypeError, match="not strings"):
        dandi.upload(dandiset_copy, DANDISET_ID, dandi_archive.api_url,
                     api_key=dandi_archive.api_key, existing="refresh")
    with pytest.raises(DandiError, match="000999"):
        dandi.upload(dandiset_copy, "000999", dandi_archive.api_url, api_key=dandi_archive.api_key,
                     existing=UploadExisting.SKIP)
    assert dandi_archive.count("POST", r"/uploads/") == 0
    assert dandi_archive.assets(DANDISET_ID) == {}


def test_a_key_that_owns_nothing_is_refused_before_any_upload(dandi_archive, dandiset_copy,
                                                              caplog):
    """The archive lets only a dandiset's owners write to it (403 otherwise): a valid key
    of another user fails once, naming the user, the dandiset and its owners (it used to
    be reported as a rejected key, file by file)."""
    caplog.set_level(logging.DEBUG)
    dandi_archive.add_user("reader-key-0123456789", "reader")
    with pytest.raises(DandiAuthError, match=r"'reader'.*not an owner of dandiset 000123"
                                             r".*'tester'"):
        dandi.upload(dandiset_copy, DANDISET_ID, dandi_archive.api_url,
                     api_key="reader-key-0123456789")
    assert dandi_archive.count("POST", r"/uploads/") == 0
    assert dandi_archive.assets(DANDISET_ID) == {}
    assert "reader-key-0123456789" not in caplog.text


def test_the_archive_validates_assets_as_published_metadata(dandi_archive, dandiset_copy):
    """The archive validates each asset's metadata as a PublishedAsset with dandischema
    (after computing its SHA-256): ours are Valid, and the checks are real."""
    from support.dandi_server import Asset, Blob

    results = dandi.upload(dandiset_copy, DANDISET_ID, dandi_archive.api_url,
                           api_key=dandi_archive.api_key)
    dandi_archive.wait_validated()
    assets = dandi_archive.assets(DANDISET_ID)
    assert {a.status for a in assets.values()} == {"Valid"}
    for r in results:
        digest = assets[r.asset_path].metadata["digest"]
        assert digest == {"dandi:dandi-etag": r.dandi_etag, "dandi:sha2-256": r.sha256}
    nwb_asset = next(a for a in assets.values() if a.path.endswith(".nwb"))
    blob = dandi_archive.blobs[nwb_asset.blob_id]
    broken = Asset(**{**vars(nwb_asset), "metadata": {
        k: v for k, v in nwb_asset.metadata.items() if k != "encodingFormat"}})
    assert dandi_archive._validation_errors(broken, blob) == [
        {"field": "encodingFormat", "message": "Field required"}]
    unhashed = Blob(blob.blob_id, blob.etag, None, blob.data)
    assert any(e["field"] == "digest" for e in dandi_archive._validation_errors(
        nwb_asset, unhashed))


def test_invalid_file_is_not_uploaded(dandi_archive, dandiset_copy):
    nwb_file = next(dandiset_copy.glob("sub-*/*.nwb"))
    bad = nwb_file.with_name("badly_named.nwb")
    shutil.copy(nwb_file, bad)
    with pytest.raises(DandiUploadError, match="badly_named") as info:
        dandi.upload(bad, DANDISET_ID, dandi_archive.api_url, api_key=dandi_archive.api_key)
    assert [r.status for r in info.value.results] == ["failed"]
    assert dandi_archive.assets(DANDISET_ID) == {}


def test_plan_sync_is_pure():
    previous = {"a.nwb": "1", "b.nwb": "x", "gone.nwb": "4"}
    plan = plan_sync({"a.nwb": "1", "b.nwb": "2", "c.nwb": "3"}, previous)
    assert plan.new == ("c.nwb",) and plan.changed == ("b.nwb",)
    assert plan.unchanged == ("a.nwb",) and plan.to_upload == ("b.nwb", "c.nwb")
    assert previous == {"a.nwb": "1", "b.nwb": "x", "gone.nwb": "4"}


def test_file_checksum_matches_dandi(tmp_path):
    from dandi.support.digests import get_digest

    path = tmp_path / "blob.bin"
    path.write_bytes(np.random.default_rng(0).bytes(300_000))
    cs = file_checksum(path)
    assert cs.dandi_etag == get_digest(path, "dandi-etag")
    assert cs.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert cs.size == 300_000


def test_dandiset_yaml(tmp_path):
    path = dandi.write_dandiset_yaml(tmp_path, "000042", "Name", "Desc")
    assert dandi.read_dandiset_id(tmp_path) == "000042"
    assert path.name == "dandiset.yaml"
    with pytest.raises(ValueError, match="six digits"):
        dandi.write_dandiset_yaml(tmp_path, "42", "x")


def _long_nwb(path: Path, n_frames: int, subject_id: str) -> Path:
    """A real NWB pose file of ``n_frames`` x 20 body parts, uncompressed (~243 B/frame)."""
    import datetime as dt

    from element_pose.core.pose import PoseData

    rng = np.random.default_rng(n_frames)
    pose = PoseData(position=rng.uniform(0, 640, (n_frames, 1, 20, 2)),
                    confidence=rng.uniform(0, 1, (n_frames, 1, 20)),
                    keypoints=[f"part{i}" for i in range(20)], individuals=["animal0"],
                    fps=30.0, scorer="DLC_long", source_software_version="3.0.2")
    subject = nwb.SubjectMetadata(subject_id, species="Mus musculus", sex="F", age="P90D")
    session = nwb.SessionMetadata("long", dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
                                  description="long recording")
    return nwb.write_nwb(path, pose, subject, session, compression=None)


def test_files_over_8_and_64_mib_checksum_and_upload(tmp_path, dandi_archive):
    """Issue 11 defect 1: a file > 8 MiB broke the checksum; > 64 MiB has several parts."""
    from dandi.support.digests import get_digest

    ds = tmp_path / DANDISET_ID
    dandi.write_dandiset_yaml(ds, DANDISET_ID, "large files")
    sources = [_long_nwb(tmp_path / "raw" / "mid.nwb", 100_000, "mid"),    # ~23 MiB
               _long_nwb(tmp_path / "raw" / "big.nwb", 320_000, "big")]    # ~74 MiB
    organized = dandi.organize(sources, ds, files_mode="move")
    sizes = sorted(p.stat().st_size for p in organized.values())
    assert 8 << 20 < sizes[0] < 64 << 20 < sizes[1]
    for path in organized.values():
        cs = file_checksum(path)
        assert cs.dandi_etag == get_digest(path, "dandi-etag")
        assert cs.sha256 == get_digest(path, "sha256")
    results = dandi.upload(ds, DANDISET_ID, dandi_archive.api_url, api_key=dandi_archive.api_key)
    assert sorted(r.status for r in results) == ["uploaded", "uploaded"]
    parts = {r.asset_path: int(r.dandi_etag.rsplit("-", 1)[1]) for r in results}
    assert sorted(parts.values()) == [1, 2]  # 64 MiB parts, as the archive cuts them
    for r in results:
        assert dandi_archive.asset_bytes(DANDISET_ID, r.asset_path) == r.path.read_bytes()


def test_redact_url_helper():
    from element_pose.core.redact import redact_url, split_credentials

    assert redact_url("see https://user:s3cret@host/api and http://tok@h:1/x") == \
        "see https://***@host/api and http://***@h:1/x"
    assert redact_url("https://s3/b?X-Amz-Signature=abc&part=1&token=zz") == \
        "https://s3/b?X-Amz-Signature=***&part=1&token=***"
    assert redact_url("dandi") == "dandi"
    assert split_credentials("https://user:k%40y@host:8/api") == ("https://host:8/api", "k@y")
    assert split_credentials("https://host/api") == ("https://host/api", None)


def test_secret_in_instance_url_is_never_logged(dandi_archive, dandiset_copy, caplog):
    """Issue 12: a key inside ``--instance`` was logged verbatim."""
    caplog.set_level(logging.DEBUG)
    secret = dandi_archive.api_key
    host = dandi_archive.api_url.removeprefix("http://")
    results = dandi.upload(dandiset_copy, DANDISET_ID, f"http://user:{secret}@{host}")
    assert {r.status for r in results} == {"uploaded"}
    assert secret not in caplog.text
    with pytest.raises(DandiAuthError) as info:
        dandi.upload(dandiset_copy, DANDISET_ID, f"http://user:wrong-{secret}@{host}")
    assert secret not in str(info.value) and secret not in caplog.text


def test_multipart_upload_killed_midway_then_resumed(tmp_path, dandi_archive):
    """A client killed after the first of two 64 MiB parts leaves an unfinished upload
    (``active_uploads``); clearing it and uploading again completes the asset."""
    import os
    import signal
    import subprocess
    import sys

    from element_pose.export.dandi.archive import Archive

    ds = tmp_path / DANDISET_ID
    dandi.write_dandiset_yaml(ds, DANDISET_ID, "killed upload")
    big = next(iter(dandi.organize([_long_nwb(tmp_path / "raw" / "big.nwb", 300_000, "k")],
                                   ds, files_mode="move").values()))
    assert big.stat().st_size > 64 << 20
    dandi_archive.hold_parts(1)  # part 1 goes through, part 2 hangs
    code = ("import sys; from element_pose.export import dandi; "
            "dandi.upload(sys.argv[1], sys.argv[2], sys.argv[3], api_key=sys.argv[4], "
            "jobs_per_file=1)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", code, str(big), DANDISET_ID,
                              dandi_archive.api_url, dandi_archive.api_key], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert dandi_archive.parts_held.wait(120), "the client never reached part 2"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    dandi_archive.release_parts()
    assert len(dandi_archive.active_uploads(DANDISET_ID)) == 1
    assert dandi_archive.assets(DANDISET_ID) == {}

    with Archive(dandi_archive.api_url, DANDISET_ID, dandi_archive.api_key) as archive:
        assert archive.active_uploads() == 1
        assert archive.clear_active_uploads() == 1 and archive.active_uploads() == 0
    results = dandi.upload(big, DANDISET_ID, dandi_archive.api_url,
                           api_key=dandi_archive.api_key)
    assert [r.status for r in results] == ["uploaded"]
    assert dandi_archive.asset_bytes(DANDISET_ID, results[0].asset_path) == big.read_bytes()
    dandi_archive.wait_validated()
    assert dandi_archive.assets(DANDISET_ID)[results[0].asset_path].status == "Valid"


def test_wrong_key_gets_401_on_every_authenticated_call(dandi_archive):
    import requests

    bad = {"Authorization": "token not-the-key"}
    for method, path in (("GET", "/dandisets/000123/"), ("GET", "/auth/token"),
                         ("GET", "/dandisets/000123/versions/draft/assets/"),
                         ("POST", "/uploads/initialize/"),
                         ("DELETE", "/dandisets/000123/uploads/")):
        response = requests.request(method, dandi_archive.api_url + path, headers=bad, timeout=10)
        assert response.status_code == 401, (method, path)


def test_an_unreachable_archive_is_a_dandi_error(dandiset_copy):
    """No answer at all (not an HTTP status): a DandiError naming the archive, no traceback."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = f"http://user:secret-in-url@127.0.0.1:{port}/api"
    with pytest.raises(DandiError, match=rf"cannot reach .*127\.0\.0\.1:{port}") as info:
        dandi.upload(dandiset_copy, DANDISET_ID, api, api_key="key-0000")
    assert "secret-in-url" not in str(info.value)
