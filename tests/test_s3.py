"""The pose store on S3 (moto's real S3 server on a local port): ingest, fetch, export, gc.

Every step runs in its own process with the S3 settings in the environment only,
as a worker on another machine would: no local store folder exists or is created.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.s3server import running_s3_server

SETUP = r"""
import datetime, json, sys
from pathlib import Path
from element_pose import sample
from workflow import pipeline as p
unique, raw, processed, n = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
subject = f"s3{unique}"
p.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
p.subject.Subject.insert1({"subject": subject, "sex": "F", "species": "Mus musculus",
                           "subject_birth_date": datetime.date(2025, 1, 1)})
session = {"subject": subject, "session_id": 1}
p.session.Session.insert1({**session, "session_datetime": datetime.datetime(2026, 1, 2)})
video = raw / f"s3_{unique}" / "cam.mp4"
truth = sample.make_video(video, n_frames=20, seed=1)
outputs = processed / f"s3_{unique}"
sample.make_dlc_output(truth, video, outputs, seed=1)
project = sample.make_dlc_project(raw / f"s3_{unique}" / "project", n_frames=10, n_labeled=2)
model_key = p.model.Model.insert_new_model(f"s3_{unique}", project, shuffle=1)
for i in range(n):
    key = p.model.VideoRecording.insert_recording(session, i, {"device": "cam0"}, [video])
    p.model.PoseEstimationTask.insert_estimation_task({**key, **model_key}, "load",
                                                      output_dir=outputs)
print(json.dumps({"subject": subject}))
"""

CHECK = r"""
import json, sys
import numpy as np
import datajoint as dj
from workflow import pipeline as p
from element_pose.db import config
r = json.loads(sys.argv[1])
out = sys.argv[2]
m = p.model
assert dj.config["stores"]["pose"]["protocol"] == "s3", dj.config["stores"]["pose"]
keys = (m.PoseEstimation & r).keys()
shapes = []
for key in keys:
    pose = m.PoseEstimation.fetch_pose(key)
    assert np.isfinite(pose.position).any()
    shapes.append(list(pose.position.shape))
files = p.publish.export_nwb(keys[-1], out)  # one recording per camera: see issue 11
first = keys[0]
(m.PoseEstimation & first).delete(prompt=False)
gc = dj.gc.GarbageCollector(m.schema, store="pose")
stats = gc.collect(dry_run=False)
print(json.dumps({"shapes": shapes, "files": [str(f.path) for f in files],
                  "deleted": stats["deleted"], "errors": stats.get("errors"),
                  "schema": m.schema.database, "store": config.describe()["pose_store"]}))
"""


def _run(args, env, timeout=600):
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.fixture(scope="module")
def s3():
    with running_s3_server() as server:
        yield server


def test_pose_store_on_s3_ingest_fetch_export_gc(s3, db_backend, tmp_path, raw_root,
                                                  processed_root):
    bucket = f"pose-{uuid.uuid4().hex[:8]}"  # not created: its first use creates it
    unique = uuid.uuid4().hex[:6]
    never = tmp_path / "no-local-store"
    env = {**os.environ, **s3.env(bucket), "ELEMENT_POSE_STORE_DIR": str(never),
           "ELEMENT_POSE_SCHEMA_PREFIX": f"s3{unique}_",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(),
                                                       os.environ.get("PYTHONPATH")]))}
    n = 3
    setup = _run([sys.executable, "-c", SETUP, unique, str(raw_root), str(processed_root),
                  str(n)], env)
    restriction = json.loads(setup.stdout.strip().splitlines()[-1])
    # the first use (here the setup's import of the pipeline) created the bucket
    assert f"created the pose store's S3 bucket s3://{bucket}" in setup.stderr, setup.stderr
    try:
        # a worker with no local store path: the arrays go to the bucket
        work = _run([sys.executable, "-m", "element_pose.cli", "worker", "--once",
                     "--table", "model.RecordingInfo", "--table", "model.PoseEstimation",
                     "--restrict", json.dumps(restriction), "--poll-interval", "0"], env)
        assert f"{2 * n} completed, 0 failed" in work.stdout, work.stdout + work.stderr
        assert not never.exists()
        objects = s3.objects(bucket)
        schema = f"s3{unique}_model"
        ours = [k for k in objects if k.startswith("element-pose/") and f"/{schema}/" in k]
        # one pose block per estimation (all its arrays), plus the timestamps (.npy)
        assert len([k for k in ours if "/__pose_estimation__body_part_position/" in k]) == n, \
            objects[:20]
        assert len([k for k in ours if k.endswith(".npy")]) == n, objects[:20]

        check = _run([sys.executable, "-c", CHECK, json.dumps(restriction),
                      str(tmp_path / "nwb")], env)
        report = json.loads(check.stdout.strip().splitlines()[-1])
        assert len(report["shapes"]) == n and all(s[0] == 20 for s in report["shapes"])
        assert report["files"] and all(Path(f).stat().st_size > 0 for f in report["files"])
        assert report["store"].startswith(f"s3://{bucket}/element-pose")
        # gc removed exactly the deleted estimation's arrays from the bucket
        assert report["deleted"] >= 1 and not report["errors"]
        after = [k for k in s3.objects(bucket) if f"/{schema}/" in k]
        assert len(after) == len(ours) - report["deleted"]
        assert not never.exists()
    finally:
        drop = ("from workflow import pipeline as p\n"
                "for s in p.schemas_in_drop_order(): s.drop(prompt=False)")
        subprocess.run([sys.executable, "-c", drop], env=env, capture_output=True, timeout=300)


def test_incomplete_s3_credentials_are_refused(monkeypatch):
    from element_pose.db import config

    monkeypatch.setenv(config.S3_BUCKET_ENV, "b")
    monkeypatch.setenv("ELEMENT_POSE_S3_ACCESS_KEY", "only-one")
    monkeypatch.delenv("ELEMENT_POSE_S3_SECRET_KEY", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    with pytest.raises(config.ConfigError, match="ELEMENT_POSE_S3_SECRET_KEY"):
        config.s3_store_spec()
    monkeypatch.setenv("ELEMENT_POSE_S3_SECRET_KEY", "two")
    monkeypatch.setenv(config.S3_ENDPOINT_ENV, "http://127.0.0.1:9000")
    spec = config.s3_store_spec()
    assert spec["secure"] is False and spec["endpoint"] == "http://127.0.0.1:9000"
    assert "two" not in config._store_text(spec)


def test_a_missing_bucket_is_refused_before_submitting_when_creating_is_forbidden(
        s3, db_backend, tmp_path):
    """ELEMENT_POSE_S3_CREATE_BUCKET=false: `submit` and `worker` refuse at once, naming
    the command that creates the bucket; `element-pose store create-bucket` creates it."""
    bucket = f"pose-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **s3.env(bucket), "ELEMENT_POSE_S3_CREATE_BUCKET": "false",
           "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(),
                                                       os.environ.get("PYTHONPATH")]))}
    called = tmp_path / "sbatch-called"
    sbatch = tmp_path / "sbatch"  # must never run: the refusal comes first
    sbatch.write_text(f"#!/bin/sh\ntouch {called}\necho 1\n")
    sbatch.chmod(0o755)
    cli = [sys.executable, "-m", "element_pose.cli"]
    refused = subprocess.run([*cli, "submit", "--table", "model.RecordingInfo", "--log-dir",
                              str(tmp_path / "logs")], env=env, capture_output=True, text=True,
                             timeout=600)
    assert refused.returncode == 1, refused.stderr[-3000:]
    assert "element-pose store create-bucket" in refused.stderr, refused.stderr[-3000:]
    assert not called.exists()
    worker = subprocess.run([*cli, "worker", "--once", "--table", "model.RecordingInfo",
                             "--restrict", '{"subject": "none"}'], env=env,
                            capture_output=True, text=True, timeout=600)
    assert worker.returncode == 1 and "element-pose store create-bucket" in worker.stderr
    assert bucket not in [b["Name"] for b in s3.client().list_buckets()["Buckets"]]
    created = _run([*cli, "store", "create-bucket"], env)
    assert "bucket created" in created.stdout, created.stdout
    assert bucket in [b["Name"] for b in s3.client().list_buckets()["Buckets"]]
    again = _run([*cli, "store", "create-bucket"], env)
    assert "exists already" in again.stdout


def test_a_python_import_of_the_pipeline_creates_a_missing_bucket(s3, db_backend):
    """`populate()` from Python or a notebook (no submit, no worker) finds the bucket too."""
    bucket = f"pose-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **s3.env(bucket),
           "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(),
                                                       os.environ.get("PYTHONPATH")]))}
    assert bucket not in [b["Name"] for b in s3.client().list_buckets()["Buckets"]]
    _run([sys.executable, "-c", "from workflow import pipeline"], env)
    assert bucket in [b["Name"] for b in s3.client().list_buckets()["Buckets"]]
