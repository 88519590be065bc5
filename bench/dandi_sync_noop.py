"""Scale run: a nightly ``dandi-sync`` with nothing new, at N sessions.

    python -m bench.dandi_sync_noop --n 100 1000

For each N: N sessions with one load-mode estimation each (a small DeepLabCut
output, populated for real) on a private embedded PostgreSQL; then the state a
finished sync leaves (one file per session in the dandiset folder, its
``DandiUpload`` row with content hash, size, mtime and asset id, and the asset on
a local archive, Valid), built directly instead of exporting and uploading N
files. Then ``ops.dandi_sync.sync`` is timed (median of 3): the key check, the
draft listing, the content hashes, a stat per file, no checksum, no validation.
Prints one ``BENCH_RESULT`` JSON line.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import REPO, emit

SESSION_TIME = datetime.datetime(2026, 3, 1, 9, 30)
API_KEY = "bench-key-0123456789"


def _setup_env(home: Path) -> None:
    os.environ.update({
        "ELEMENT_POSE_HOME": str(home / "home"), "ELEMENT_POSE_DATABASE": "embedded",
        "ELEMENT_POSE_ROOT_DIRS": str(home / "root"),
        "ELEMENT_POSE_PROCESSED_DIR": str(home / "processed"),
        "ELEMENT_POSE_SCHEMA_PREFIX": f"benchds{uuid.uuid4().hex[:5]}_",
        "DANDI_NO_ET": "1", "DANDI_CACHE": "ignore", "MPLBACKEND": "Agg",
    })
    for name in ("root", "processed"):
        (home / name).mkdir(parents=True, exist_ok=True)


def _populate(pipeline, home: Path, n: int, start: int) -> None:
    from element_pose import sample

    model = pipeline.model
    folder = home / "root" / "data"
    if not (folder / "cam0.mp4").exists():
        truth = sample.make_video(folder / "cam0.mp4", n_frames=30)
        sample.make_dlc_output(truth, folder / "cam0.mp4", home / "processed" / "out")
        pipeline.lab.Lab.insert1({"lab": "blab", "lab_name": "Bench Lab", "institution": "U",
                                  "time_zone": "UTC"})
        pipeline.lab.Device.insert1({"device": "cam0"})
        project = sample.make_dlc_project(folder / "project", n_frames=10, n_labeled=2)
        model.Model.insert_new_model("bench_sync", project)
    for i in range(start, n):
        subject = f"m{i // 100:03d}"
        pipeline.subject.Subject.insert1(
            {"subject": subject, "sex": "F", "species": "Mus musculus",
             "subject_birth_date": datetime.date(2025, 9, 1)}, skip_duplicates=True)
        pipeline.subject.Subject.Lab.insert1({"subject": subject, "lab": "blab"},
                                             skip_duplicates=True)
        session = {"subject": subject, "session_id": i}
        pipeline.session.Session.insert1({**session, "session_datetime": SESSION_TIME,
                                          "session_description": "bench"})
        key = model.VideoRecording.insert_recording(session, 0, {"device": "cam0"},
                                                    [folder / "cam0.mp4"])
        model.RecordingInfo.populate(key)
        model.PoseEstimationTask.insert_estimation_task(
            {**key, "model_name": "bench_sync"}, "load", output_dir=home / "processed" / "out")
    model.PoseEstimation.populate()


def _synced_state(pipeline, archive, dandiset: Path) -> int:
    """Files, DandiUpload rows and archive assets as a finished sync leaves them."""
    from support.dandi_server import Asset, Blob

    from element_pose.export import dandi
    from element_pose.ops import dandi_sync

    publish = pipeline.publish
    plan = publish.plan_export({})
    hashes = dandi_sync.content_hashes(plan, {}, None)
    dandi.write_dandiset_yaml(dandiset, "000123", "bench")
    blob = Blob("blob-0", "0" * 32 + "-1", "0" * 64, b"placeholder")
    archive.blobs[blob.blob_id] = blob
    existing = set(publish.DandiUpload.to_arrays("asset_path"))
    rows = []
    for rel in plan:
        if rel in existing:
            continue
        path = dandiset / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"placeholder")
        asset_id = str(uuid.uuid4())
        archive.dandisets["000123"].assets[asset_id] = Asset(
            asset_id, rel, blob.blob_id, blob.size, {"path": rel}, "", "", status="Valid")
        st = path.stat()
        rows.append({"dandiset_id": "000123", "asset_path": rel, "local_path": rel,
                     "sha256": blob.sha256, "dandi_etag": blob.etag, "asset_id": asset_id,
                     "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                     "content_hash": hashes[rel], "status": "uploaded",
                     "archive_status": "Valid", "archive_errors": [],
                     "uploaded_at": datetime.datetime.now().replace(microsecond=0),
                     "source_keys": plan[rel]})
    publish.DandiUpload.insert(rows)
    return len(plan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="bench-dandi-sync-"))
    _setup_env(home)
    sys.path.insert(0, str(REPO / "tests"))
    from support.dandi_server import LocalDandiArchive

    from element_pose.ops import dandi_sync
    from workflow import pipeline

    results = {}
    done = 0
    try:
        with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
            for n in sorted(args.n):
                t0 = time.perf_counter()
                _populate(pipeline, home, n, done)
                done = n
                files = _synced_state(pipeline, archive, home / "000123")
                setup_s = time.perf_counter() - t0
                times, report = [], None
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    report = dandi_sync.sync("000123", home / "000123",
                                             instance=archive.api_url, api_key=API_KEY)
                    times.append(time.perf_counter() - t)
                assert report is not None and not report.uploaded and not report.exported
                assert not report.checksummed and not report.validated, report
                results[n] = {"files": files, "noop_sync_s": statistics.median(times),
                              "times": times, "setup_s": setup_s}
                print(f"N={n}: no-op dandi-sync {statistics.median(times):.2f} s "
                      f"(files {files}, setup {setup_s:.0f} s)", file=sys.stderr, flush=True)
    finally:
        for schema in pipeline.schemas_in_drop_order():
            schema.drop(prompt=False)
        from element_pose.db import embedded

        embedded.stop()
        shutil.rmtree(home, ignore_errors=True)
    emit({"dandi_sync_noop": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
