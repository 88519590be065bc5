"""The pose store: deletes through element-pose free it, ``store gc`` removes orphans."""

from __future__ import annotations

import os
import re
import time

import datajoint as dj
import pytest
from test_worker import make_batch, store_files

from element_pose.ops import store, worker

pytestmark = pytest.mark.usefixtures("pipeline")

#: Store files of one estimation: all its arrays in one block (element_pose.db.arrays).
PER_ESTIMATION = 1


@pytest.fixture
def ingested(pipeline, raw_root, processed_root, unique):
    def make(n: int) -> dict:
        b = make_batch(pipeline, raw_root, processed_root, unique, n)
        report = worker.run_worker(["model.RecordingInfo", "model.PoseEstimation"], once=True,
                                   restriction=b["restriction"], poll_interval=0)
        assert report.ok and report.jobs == 2 * n
        return b
    return make


def test_delete_frees_the_store_files_of_the_deleted_rows_without_prompting(
        pipeline, ingested, monkeypatch):
    b = ingested(3)
    subject = b["restriction"]["subject"]
    files = len(store_files(subject))
    assert files >= 3 * (PER_ESTIMATION + 1)  # the pose block + the timestamps
    monkeypatch.setitem(dj.config, "safemode", True)  # a prompt would fail here: no stdin
    one = {**b["session"], "recording_id": 0}
    result = store.delete(pipeline.model.PoseEstimation & one)
    assert result["rows"] == 1 and result["files"] == PER_ESTIMATION
    assert len(store_files(subject)) == files - PER_ESTIMATION
    # a whole subject, through the cascade
    result = store.delete(pipeline.subject.Subject & b["restriction"])
    assert result["rows"] == 1
    assert store_files(subject) == []
    assert not (pipeline.model.VideoRecording & b["restriction"])


def test_store_gc_removes_what_plain_deletes_leave(pipeline, ingested, capsys):
    from element_pose import cli

    b = ingested(2)
    subject = b["restriction"]["subject"]
    files = len(store_files(subject))
    (pipeline.model.PoseEstimation & b["restriction"]).delete(prompt=False)
    assert len(store_files(subject)) == files  # DataJoint leaves the arrays behind
    assert cli.main(["store", "gc"]) == 0  # default --min-age: too recent to touch
    assert "removed 0" in capsys.readouterr().out
    assert len(store_files(subject)) == files
    assert cli.main(["store", "gc", "--min-age", "0", "--dry-run"]) == 0
    assert len(store_files(subject)) == files
    dry = capsys.readouterr().out
    would = re.search(r"would remove (\d+) \((\d+) bytes would be freed\)", dry)
    assert would and int(would[1]) > 0 and int(would[2]) > 0, dry  # not "0 bytes freed"
    assert cli.main(["store", "gc", "--min-age", "0"]) == 0
    done = re.search(r"removed (\d+) \((\d+) bytes freed\)", capsys.readouterr().out)
    assert done and done[1] == would[1] and done[2] == would[2]
    assert len(store_files(subject)) == 2  # RecordingInfo's timestamps stay
    assert len(pipeline.model.RecordingInfo & b["restriction"]) == 2


def test_store_gc_keeps_files_newer_than_a_live_reservation(pipeline, ingested):
    model = pipeline.model
    b = ingested(1)
    subject = b["restriction"]["subject"]
    (model.PoseEstimation & b["restriction"]).delete(prompt=False)
    (task,) = b["tasks"]
    model.PoseEstimation.jobs.refresh(task, delay=-1)
    assert model.PoseEstimation.jobs.reserve(task)  # a live worker, maybe mid-insert
    time.sleep(1.5)
    for path in store_files(subject):  # ... that has just written these files
        os.utime(path)
    report = store.collect_garbage(min_age_s=0)
    assert report.deleted == 0 and report.kept_recent >= PER_ESTIMATION
    assert len(store_files(subject)) == PER_ESTIMATION + 1
    (model.PoseEstimation.jobs & task).delete_quick()
    report = store.collect_garbage(min_age_s=0)
    assert report.deleted >= PER_ESTIMATION
    assert len(store_files(subject)) == 1
