"""Throughput of workers on one queue: 1 worker, 2 workers, and a Slurm array of 2.

``python -m bench.cluster [--tasks N] [--frames F]`` builds one queue of N load-mode
PoseEstimation tasks (F frames x 4 body parts each, one shared video) on the MariaDB server at
127.0.0.1:3306, then empties it three times from scratch: with one ``element-pose
worker --once`` process, with two, and with ``element-pose submit --workers 2``
on a single-node Slurm cluster started for the run (root and Debian's slurm-wlm +
munge needed; skipped otherwise).  Wall time counts from the start of the
worker processes (or ``sbatch``) until the queue is empty, so process start-up
(~2-4 s of imports) is included.  Prints a table and writes
``bench/results/cluster.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.common import REPO, RESULTS, TMP

POSE = "model.PoseEstimation"

SETUP = r"""
import datetime, json, sys
from pathlib import Path
from element_pose import sample
from element_pose.ops import worker
from workflow import pipeline as p
raw, processed, n, frames = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
p.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
p.subject.Subject.insert1({"subject": "bench", "sex": "F", "species": "Mus musculus",
                           "subject_birth_date": datetime.date(2025, 1, 1)})
session = {"subject": "bench", "session_id": 1}
p.session.Session.insert1({**session, "session_datetime": datetime.datetime(2026, 1, 2)})
video = raw / "cam.mp4"
truth = sample.make_video(video, n_frames=frames, seed=1)
sample.make_dlc_output(truth, video, processed / "out", seed=1)
project = sample.make_dlc_project(raw / "project", n_frames=10, n_labeled=2)
model_key = p.model.Model.insert_new_model("bench", project, shuffle=1)
for i in range(n):
    key = p.model.VideoRecording.insert_recording(session, i, {"device": "cam0"}, [video])
    p.model.PoseEstimationTask.insert_estimation_task({**key, **model_key}, "load",
                                                      output_dir=processed / "out")
p.model.RecordingInfo.populate()
"""

RESET = r"""
from element_pose.ops import worker
from workflow import pipeline as p
p.model.PoseEstimation.delete(prompt=False)
worker.prepare_job_queues(["model.PoseEstimation"])
"""

COUNT = r"""
from workflow import pipeline as p
print(len(p.model.PoseEstimation()), len(p.model.PoseEstimation().jobs))
"""

DROP = r"""
from workflow import pipeline as p
for s in p.schemas_in_drop_order(): s.drop(prompt=False)
from element_pose.ops import slurm
slurm.worker_table()
slurm.cluster_schema().drop(prompt=False)
"""


def _py(code: str, env: dict, *args: str) -> str:
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                            text=True, cwd=REPO, timeout=1800)
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return result.stdout


def _workers(env: dict, n: int) -> float:
    _py(RESET, env)
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "element_pose.cli", "worker", "--once",
                               "--table", POSE, "--poll-interval", "0", "--order", "random"],
                              env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(n)]
    codes = [p.wait() for p in procs]
    seconds = time.perf_counter() - start
    if any(codes):
        raise RuntimeError(f"a worker failed: exit codes {codes}")
    return seconds


def _slurm_array(env: dict, n: int, log_dir: Path) -> float | None:
    sys.path.insert(0, str(REPO / "tests"))
    from support.slurm_cluster import running_slurm_cluster, unavailable_reason

    if unavailable_reason():
        print(f"Slurm array skipped: {unavailable_reason()}", file=sys.stderr)
        return None
    with running_slurm_cluster() as slurm_env:
        env = {**env, **slurm_env}
        _py(RESET, env)
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "element_pose.cli", "submit", "--workers",
                              str(n), "--once", "--table", POSE, "--poll-interval", "0",
                              "--log-dir", str(log_dir)], env=env, cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
        job = out.split()[-1]
        while subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True,
                             text=True).stdout.strip():
            time.sleep(0.2)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements; print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--frames", type=int, default=1800)
    args = parser.parse_args(argv)
    work = TMP / f"cluster-{uuid.uuid4().hex[:6]}"
    (work / "raw").mkdir(parents=True)
    (work / "processed").mkdir()
    env = {**os.environ, "ELEMENT_POSE_DATABASE": "server", "DJ_HOST": "127.0.0.1",
           "DJ_PORT": "3306", "DJ_USER": "root", "DJ_PASS": "", "DJ_BACKEND": "mysql",
           "DJ_USE_TLS": "false", "ELEMENT_POSE_SCHEMA_PREFIX": f"bc{uuid.uuid4().hex[:6]}_",
           "ELEMENT_POSE_ROOT_DIRS": str(work / "raw"),
           "ELEMENT_POSE_PROCESSED_DIR": str(work / "processed"),
           "ELEMENT_POSE_STORE_DIR": str(work / "store"), "ELEMENT_POSE_HOME": str(work / "home"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    results: dict[str, float | None] = {}
    try:
        _py(SETUP, env, str(work / "raw"), str(work / "processed"), str(args.tasks),
            str(args.frames))
        results["1 worker"] = _workers(env, 1)
        results["2 workers"] = _workers(env, 2)
        results["Slurm array of 2"] = _slurm_array(env, 2, work / "slurm-logs")
        results["1 worker, again"] = _workers(env, 1)  # drift of the machine during the run
        done, left = map(int, _py(COUNT, env).split())
        assert done == args.tasks and left == 0, (done, left)
    finally:
        try:
            _py(DROP, env)
        except RuntimeError as exc:
            print(f"cleanup failed: {exc}", file=sys.stderr)
    table = [f"{'workers':<18}{'seconds':>9}{'tasks/s':>9}{'vs 1':>7}"]
    base = results["1 worker"]
    for name, seconds in results.items():
        if seconds is None:
            table.append(f"{name:<18}{'skipped':>9}")
            continue
        table.append(f"{name:<18}{seconds:>9.1f}{args.tasks / seconds:>9.2f}"
                     f"{base / seconds:>7.2f}")
    print("\n".join(table))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(
        {"tasks": args.tasks, "frames": args.frames, "body_parts": 4, "seconds": results,
         "cpus": os.cpu_count(), "load_avg": os.getloadavg()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
