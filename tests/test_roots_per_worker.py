"""Workers whose roots differ: the same data at other paths on another machine.

A second worker sees the raw and processed data under different absolute paths
(a copy here, another mount point on a cluster), configured through its own
environment.  Both complete one queue, and nothing stored in the database names
either worker's local path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_worker import HARNESS, INFO, POSE, done_keys, finish, make_batch

from element_pose.ops import worker

pytestmark = pytest.mark.usefixtures("pipeline")


def start(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HARNESS, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def stored_text(tables, restriction) -> str:
    """Every value of the rows selected, as text."""
    return repr([(t & restriction).to_dicts() for t in tables])


def test_two_workers_with_different_roots_complete_one_queue(pipeline, raw_root, processed_root,
                                                             unique, tmp_path):
    model = pipeline.model
    n = 4
    b = make_batch(pipeline, raw_root, processed_root, unique, n)
    r = b["restriction"]
    # the other machine: the same files under other paths
    other_raw, other_processed = tmp_path / "mnt" / "raw", tmp_path / "mnt" / "processed"
    shutil.copytree(raw_root / f"worker_{unique}", other_raw / f"worker_{unique}")
    shutil.copytree(processed_root / f"worker_{unique}", other_processed / f"worker_{unique}")
    env_b = {**os.environ, "ELEMENT_POSE_ROOT_DIRS": str(other_raw),
             "ELEMENT_POSE_PROCESSED_DIR": str(other_processed)}
    args = ["worker", "--once", "--table", INFO, "--table", POSE, "--restrict", b["restrict"],
            "--poll-interval", "0"]
    worker.prepare_job_queues([INFO, POSE], r)

    # the other machine's worker alone first: it must find everything under its roots
    ((code, _out, err),) = finish([start(env_b, *args, "--max-jobs", "3")])
    assert code == 0, err[-3000:]
    first = done_keys(err)
    assert len(first) == 3
    # then both together finish the queue
    results = finish([start(dict(os.environ), *args), start(env_b, *args)])
    for code, _, err in results:
        assert code == 0, err[-3000:]
    everything = first + [key for _, _, err in results for key in done_keys(err)]
    assert len(everything) == len(set(everything)) == 2 * n  # each key once
    assert len(model.PoseEstimation & r) == n
    assert len(model.PoseEstimation.BodyPartPosition & r) == 4 * n
    assert not worker.clear_errors([INFO, POSE], r)

    # nothing in the database depends on a worker's local paths
    text = stored_text([model.VideoRecording.File, model.PoseEstimationTask,
                        model.PoseEstimation, model.RecordingInfo], r)
    for local in (raw_root, processed_root, other_raw, other_processed, tmp_path):
        assert str(local) not in text
    # and both workers read the same poses
    pose_a = model.PoseEstimation.fetch_pose(b["tasks"][0])
    assert pose_a.position.shape[0] == 20
