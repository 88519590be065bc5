"""Scale run: a lab's year of sessions through ``element-pose worker``: ``python -m bench.scale``.

For each N (default 100 and 1,000 sessions of 10 min at 30 fps x 20 body parts, load
mode, on the benchmark's own embedded PostgreSQL):

* worker throughput: the first half of the sessions is inserted and run by one plain
  ``element-pose worker --once`` (no ``--table``: the default tables), then the second
  half by two such workers at once;
* store files per estimation;
* fixed per-job cost of DataJoint's job table: building ``Table.jobs`` (what every
  job paid twice before the worker kept one table instance per worker) against a
  cached one;
* delete + gc: ``element_pose.ops.store.delete`` of one subject (20 sessions) and the
  files it frees; then a plain DataJoint delete of another subject and the
  ``store gc`` that finds and removes its files by walking the whole store.

Options: ``--sizes 100,1000``, ``--per-subject 20``, ``--frames 18000``.  Results:
a table on stdout and ``bench/results/scale.json``.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import resource
import subprocess
import sys
import time
from typing import Any

from bench.common import RESULTS, TMP, emit, run_child

PY = sys.executable
DONE = re.compile(r"stopping \((\w+)\): (\d+) completed, (\d+) failed in ([\d.]+) s")


# ------------------------------------------------------------------ children
def cmd_setup(args: argparse.Namespace) -> dict[str, Any]:
    """Insert half ``args.half`` of ``n`` sessions (``per_subject`` a subject), one task each."""
    from bench.data import make_dataset
    from bench.ours import SESSION_TIME, _load_task, _model, _pipeline, _recording, _session

    ds = make_dataset(args.frames, args.bodyparts, 1)
    pipeline = _pipeline()
    model_key = _model(pipeline, ds)
    t0 = time.perf_counter()
    first = range(args.n // 2) if args.half == "a" else range(args.n // 2, args.n)
    for i in first:
        half = args.half
        subject = f"{half}{i // args.per_subject:04d}"
        _session(pipeline, subject)  # the subject (and a session 1)
        session_key = {"subject": subject, "session_id": 100 + i % args.per_subject}
        pipeline.session.Session.insert1(
            {**session_key, "session_datetime": SESSION_TIME + datetime.timedelta(days=i)})
        key = _recording(pipeline, session_key, 0, ds)
        _load_task(pipeline, key, model_key, ds)
    setup_s = time.perf_counter() - t0
    for table in (pipeline.model.RecordingInfo, pipeline.model.PoseEstimation):
        table.jobs.refresh(delay=-1)  # once, before many workers start
    return {"sessions": len(first), "setup_s": setup_s, "n_frames": ds.n_frames,
            "n_keypoints": ds.n_keypoints}


def cmd_measure(args: argparse.Namespace) -> dict[str, Any]:
    """Store files per estimation, job-table cost, delete + gc; drop the schemas at the end."""
    import logging

    from bench.ours import _drop, _pipeline, _store_dir
    from element_pose.ops import store

    logging.basicConfig(level=logging.INFO)
    pipeline = _pipeline()
    model = pipeline.model
    out: dict[str, Any] = {}
    prefix = os.environ["ELEMENT_POSE_SCHEMA_PREFIX"]  # this run's files, not earlier runs
    files = [p for p in _store_dir().rglob("*") if p.is_file() and prefix in str(p)]
    n_est = len(model.PoseEstimation())
    out["estimations"] = n_est
    out["store_files"] = len(files)
    out["store_mib"] = sum(p.stat().st_size for p in files) / 2**20
    out["files_per_estimation"] = len(files) / max(n_est, 1)

    # fixed per-job cost of the job table: built anew (class access) vs kept
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        len(model.PoseEstimation.jobs.pending)
    built = (time.perf_counter() - t0) / reps
    table = model.PoseEstimation()
    len(table.jobs.pending)
    t0 = time.perf_counter()
    for _ in range(reps):
        len(table.jobs.pending)
    cached = (time.perf_counter() - t0) / reps
    out["jobs_access_built_ms"] = built * 1e3
    out["jobs_access_cached_ms"] = cached * 1e3

    subjects = sorted(pipeline.subject.Subject.to_arrays("subject"))
    first, second = subjects[0], subjects[-1]
    t0 = time.perf_counter()
    result = store.delete(pipeline.subject.Subject & {"subject": first})
    out["delete_subject_s"] = time.perf_counter() - t0
    out["delete_subject_files"] = result["files"]
    out["delete_subject_sessions"] = args.per_subject
    t0 = time.perf_counter()
    (pipeline.subject.Subject & {"subject": second}).delete(prompt=False)
    out["plain_delete_s"] = time.perf_counter() - t0
    left = len([p for p in _store_dir().rglob("*") if p.is_file() and prefix in str(p)])
    t0 = time.perf_counter()
    gc = store.collect_garbage(min_age_s=0)
    out["gc_s"] = time.perf_counter() - t0
    out["gc_stored_files"] = gc.stored
    out["gc_removed"] = gc.deleted
    out["store_files_after"] = left - gc.deleted
    _drop(pipeline)
    return out


# ------------------------------------------------------------------ parent
def _workers(env: dict[str, str], n: int, tag: str) -> dict[str, Any]:
    logs = [TMP / f"scale-{tag}-{i}.log" for i in range(n)]
    handles = [open(log, "w") for log in logs]
    t0 = time.perf_counter()
    procs = [subprocess.Popen([PY, "-m", "element_pose.cli", "-v", "worker", "--once",
                               "--poll-interval", "0"],
                              env=env, stdout=handles[i], stderr=subprocess.STDOUT)
             for i in range(n)]
    codes = [p.wait(timeout=3600) for p in procs]
    wall = time.perf_counter() - t0
    for h in handles:
        h.close()
    done, busy = 0, 0.0
    for log, code in zip(logs, codes, strict=True):
        text = log.read_text()
        match = DONE.search(text)
        if code != 0 or match is None:
            raise RuntimeError(f"worker exited {code}; log {log}\n{text[-2000:]}")
        done += int(match.group(2))
        busy = max(busy, float(match.group(4)))
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"workers": n, "jobs": done, "wall_s": wall, "worker_s": busy,
            "jobs_per_s": done / busy if busy else 0.0, "max_rss_mib": rss}


def run_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """The whole run for ``n`` sessions on a fresh set of schemas."""
    from bench.run import _prefix, our_env

    env = our_env("embedded", _prefix(f"scale{n}"))
    print(f"N={n}: inserting sessions ...", flush=True)
    result: dict[str, Any] = {"sessions": n}
    for half, workers in (("a", 1), ("b", 2)):  # a plain worker: the default tables
        result[f"setup_{half}"] = run_child(
            [PY, "-m", "bench.scale", "setup", "--half", half, "--n", str(n), "--per-subject",
             str(args.per_subject), "--frames", str(args.frames)],
            env=env, timeout=3600, log_name=f"scale-setup-{n}-{half}")
        print(f"N={n}: {workers} worker(s) on {result[f'setup_{half}']['sessions']} "
              "sessions ...", flush=True)
        result[f"workers_{workers}"] = _workers(env, workers, f"{n}-w{workers}")
    print(f"N={n}: store, job tables, delete + gc ...", flush=True)
    result["measure"] = run_child(
        [PY, "-m", "bench.scale", "measure", "--per-subject", str(args.per_subject)],
        env=env, timeout=3600, log_name=f"scale-measure-{n}")
    return result


def report(results: list[dict[str, Any]]) -> str:
    """A Markdown table of the results."""
    rows = ["| N sessions | 1 worker (est./s) | 2 workers (est./s) | worker RSS (MiB) | "
            "store files / estimation | `Table.jobs` built / kept (ms) | "
            "store.delete of a subject | plain delete of a subject + store gc |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        m = r["measure"]
        rows.append(
            f"| {r['sessions']} | {r['workers_1']['jobs_per_s']:.1f} | "
            f"{r['workers_2']['jobs_per_s']:.1f} | {r['workers_2']['max_rss_mib']:.0f} | "
            f"{m['files_per_estimation']:.1f} ({m['store_files']} files, "
            f"{m['store_mib']:.0f} MiB) | {m['jobs_access_built_ms']:.1f} / "
            f"{m['jobs_access_cached_ms']:.1f} | {m['delete_subject_sessions']} sessions: "
            f"{m['delete_subject_s']:.2f} s, {m['delete_subject_files']} files freed | "
            f"{m['plain_delete_s']:.2f} s + "
            f"{m['gc_s']:.2f} s ({m['gc_removed']} of {m['gc_stored_files']} files) |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Run the scale benchmark (parent) or one of its child steps."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("step", nargs="?", choices=["setup", "measure"])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--half", choices=["a", "b"], default="a")
    parser.add_argument("--per-subject", type=int, default=20)
    parser.add_argument("--frames", type=int, default=18_000)  # 10 min at 30 fps
    parser.add_argument("--bodyparts", type=int, default=20)
    args = parser.parse_args(argv)
    if args.step == "setup":
        emit(cmd_setup(args))
        return 0
    if args.step == "measure":
        emit(cmd_measure(args))
        return 0
    from bench.run import stop_embedded

    TMP.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            results.append(run_size(n, args))
    finally:
        stop_embedded()
    (RESULTS / "scale.json").write_text(json.dumps(results, indent=2, default=str))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
