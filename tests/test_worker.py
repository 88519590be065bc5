"""Populate workers on a real database: sharing a queue, signals, killed workers, the CLI.

Workers run as subprocesses (they inherit the test session's environment, set by
conftest) through a tiny argparse harness around :func:`element_pose.cli.worker.register_cli`,
the same code that ``element-pose worker`` runs once the CLI registers it.

To stall a job deterministically, a second database session locks the pose part
table (``LOCK TABLE ... IN SHARE MODE``): a worker then blocks inside ``make_insert``
after inserting the master row, holding its reservation and an open transaction.
The tests that stall jobs need PostgreSQL (the embedded database) and are skipped on
MySQL; the others also run with ``--db mysql``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from element_pose import sample
from element_pose.cli import worker as worker_cli
from element_pose.ops import worker

pytestmark = pytest.mark.usefixtures("pipeline")

HARNESS = """
import argparse, logging, sys
from element_pose.cli.worker import register_cli
logging.basicConfig(level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
parser = argparse.ArgumentParser(prog="element-pose")
register_cli(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""
POSE = "model.PoseEstimation"
INFO = "model.RecordingInfo"
DONE = re.compile(r"(model\.\w+) (\{.*?\}): done in")


# ----------------------------------------------------------------- helpers
def start_worker(*args: str) -> subprocess.Popen:
    """A worker process running ``element-pose <args>`` through the harness."""
    return subprocess.Popen([sys.executable, "-c", HARNESS, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def run_cli(*argv: str) -> int:
    """``element-pose <argv>`` in this process; argparse errors give their exit code."""
    parser = argparse.ArgumentParser(prog="element-pose")
    worker_cli.register_cli(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code)
    return args.func(args)


def done_keys(stderr: str) -> list[tuple[str, str]]:
    """(table, key) of every job a worker's log reports as done."""
    return DONE.findall(stderr)


def make_batch(pipeline, raw_root, processed_root, unique, n: int) -> dict:
    """``n`` recordings of one video with load-mode tasks, all under a fresh subject."""
    subject = f"wk{unique}"
    pipeline.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": subject, "sex": "F", "species": "Mus musculus",
                                      "subject_birth_date": datetime.date(2025, 1, 1)})
    session_key = {"subject": subject, "session_id": 1}
    pipeline.session.Session.insert1({**session_key,
                                      "session_datetime": datetime.datetime(2026, 1, 2)})
    folder = raw_root / f"worker_{unique}"
    video = folder / "cam.mp4"
    truth = sample.make_video(video, n_frames=20, seed=1)
    outputs = processed_root / f"worker_{unique}"
    sample.make_dlc_output(truth, video, outputs, seed=1)
    project = sample.make_dlc_project(folder / "project", n_frames=10, n_labeled=2)
    model_key = pipeline.model.Model.insert_new_model(f"wk_{unique}", project, shuffle=1)
    tasks = []
    for i in range(n):
        key = pipeline.model.VideoRecording.insert_recording(session_key, i, {"device": "cam0"},
                                                             [video])
        tasks.append(pipeline.model.PoseEstimationTask.insert_estimation_task(
            {**key, **model_key}, "load", output_dir=outputs))
    restriction = {"subject": subject}
    return {"tasks": tasks, "restriction": restriction, "restrict": json.dumps(restriction),
            "model": model_key, "session": session_key, "video": video, "truth": truth}


@pytest.fixture
def batch(pipeline, raw_root, processed_root, unique):
    return lambda n: make_batch(pipeline, raw_root, processed_root, unique, n)


def jobs_of(table, restriction):
    """The table's job rows for keys matching ``restriction``."""
    return table.jobs.restrict(table.key_source & restriction, semantic_check=False)


@pytest.fixture
def postgres(db_backend):
    if db_backend != "embedded":
        pytest.skip("stalls jobs with a PostgreSQL table lock")


class TableLock:
    """A second PostgreSQL session holding a SHARE lock: other sessions cannot insert."""

    def __init__(self, table) -> None:
        import datajoint as dj
        import psycopg2

        self.table = table
        self.conn = psycopg2.connect(
            host=dj.config["database.host"], port=dj.config["database.port"],
            user=dj.config["database.user"], dbname=dj.config["database.name"] or "postgres")
        self.conn.cursor().execute(f"LOCK TABLE {table.full_table_name} IN SHARE MODE")

    def waiting(self) -> list[int]:
        """Backend pids waiting to write to the locked table."""
        cur = self.conn.cursor()
        cur.execute("SELECT pid FROM pg_locks WHERE relation = %s::regclass AND NOT granted",
                    (self.table.full_table_name,))
        return sorted(row[0] for row in cur.fetchall())

    def wait_for(self, n: int, procs, timeout: float = 180) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.waiting()
            if len(pids) >= n:
                return pids
            for proc in procs:
                if proc.poll() is not None:
                    pytest.fail(f"worker exited early ({proc.returncode}): "
                                f"{proc.communicate()[1][-3000:]}")
            time.sleep(0.2)
        pytest.fail(f"{n} worker(s) did not reach the locked insert in {timeout} s")

    def holds_row_lock(self, pid: int, table) -> bool:
        """Whether backend ``pid`` has written to ``table`` in its open transaction."""
        cur = self.conn.cursor()
        cur.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND relation = %s::regclass "
                    "AND mode = 'RowExclusiveLock' AND granted", (pid, table.full_table_name))
        return cur.fetchone()[0] == 1

    def release(self) -> None:
        if self.conn is not None:
            self.conn.rollback()
            self.conn.close()
            self.conn = None


@contextlib.contextmanager
def locked(table):
    lock = TableLock(table)
    try:
        yield lock
    finally:
        lock.release()


def finish(procs, timeout: float = 300) -> list[tuple[int, str, str]]:
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        results.append((proc.returncode, out, err))
    return results


# ------------------------------------------------------------------- tests
def test_two_workers_share_the_queue_without_duplicates_or_losses(pipeline, batch, db_backend):
    model = pipeline.model
    n = 6
    b = batch(n)
    worker.prepare_job_queues([INFO, POSE], b["restriction"])  # once, before the workers
    args = ["worker", "--once", "--table", INFO, "--table", POSE, "--restrict", b["restrict"],
            "--order", "random", "--poll-interval", "0"]
    both_work = db_backend == "embedded"
    if both_work:
        with locked(model.PoseEstimation.BodyPartPosition) as lock:
            procs = [start_worker(*args) for _ in range(2)]
            # both workers are inside a pose job at the same time: both take part
            lock.wait_for(2, procs)
    else:  # no table lock on MySQL: the split between the workers is up to timing
        procs = [start_worker(*args) for _ in range(2)]
    results = finish(procs)
    for code, _, err in results:
        assert code == 0, err[-3000:]

    per_worker = [done_keys(err) for _, _, err in results]
    if both_work:
        assert all(any(table == POSE for table, _ in keys) for keys in per_worker)
    everything = per_worker[0] + per_worker[1]
    assert len(everything) == len(set(everything)) == 2 * n  # nothing twice, nothing lost
    r = b["restriction"]
    assert len(model.RecordingInfo & r) == n
    assert len(model.PoseEstimation & r) == n
    assert len(model.PoseEstimation.BodyPartPosition & r) == n * 4
    for table in (model.RecordingInfo, model.PoseEstimation):
        assert len(jobs_of(table, r)) == 0  # no pending, reserved or error jobs left


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_finishes_the_current_job_then_exits_0(pipeline, batch, postgres, sig):
    model = pipeline.model
    b = batch(2)
    r = b["restriction"]
    model.RecordingInfo.populate(r)
    worker.prepare_job_queues([POSE], r)
    with locked(model.PoseEstimation.BodyPartPosition) as lock:
        proc = start_worker("worker", "--table", POSE, "--restrict", b["restrict"],
                            "--poll-interval", "1")
        lock.wait_for(1, [proc])
        proc.send_signal(sig)
        time.sleep(1.0)
        assert proc.poll() is None  # the job is not aborted: still waiting on the lock
    (code, out, err), = finish([proc])
    assert code == 0, err[-3000:]
    assert f"{sig.name} received: stopping after the current job" in err
    assert "1 completed, 0 failed (signal)" in out
    assert len(model.PoseEstimation & r) == 1
    assert len(model.PoseEstimation.BodyPartPosition & r) == 4  # the whole job
    jobs = jobs_of(model.PoseEstimation, r)
    assert len(jobs.pending) == 1 and len(jobs) == 1  # the second job was left untouched
    report = worker.run_worker([POSE], once=True, restriction=r, poll_interval=0)
    assert report.completed == {POSE: 1} and report.stop_reason == "idle"


def test_killed_worker_leaves_no_partial_rows_and_its_job_is_recovered(
        pipeline, batch, postgres):
    model = pipeline.model
    b = batch(1)
    r = b["restriction"]
    model.RecordingInfo.populate(r)
    worker.prepare_job_queues([POSE], r)
    with locked(model.PoseEstimation.BodyPartPosition) as lock:
        proc = start_worker("worker", "--once", "--table", POSE, "--restrict", b["restrict"])
        (backend,) = lock.wait_for(1, [proc])
        # the master row is written in the worker's open transaction...
        assert lock.holds_row_lock(backend, model.PoseEstimation)
        proc.kill()
        proc.wait(timeout=60)
    # ...and is gone with it: no partial rows
    assert not (model.PoseEstimation & r)
    assert not (model.PoseEstimation.BodyPartPosition & r)
    jobs = jobs_of(model.PoseEstimation, r)
    assert len(jobs.reserved) == 1

    assert worker.release_stale_jobs(3600, [POSE]) == {}  # too young
    deadline = time.monotonic() + 60
    released: dict = {}
    while not released and time.monotonic() < deadline:  # until the server drops the session
        released = worker.release_stale_jobs(0, [POSE])
        time.sleep(0.2)
    assert released == {POSE: 1}
    assert len(jobs.pending) == 1 and not jobs.reserved

    report = worker.run_worker([POSE], once=True, restriction=r, poll_interval=0)
    assert report.completed == {POSE: 1} and report.ok
    assert len(model.PoseEstimation.BodyPartPosition & r) == 4
    assert len(jobs) == 0


def test_release_stale_spares_reservations_of_live_sessions(pipeline, batch):
    model = pipeline.model
    b = batch(1)
    r = b["restriction"]
    model.RecordingInfo.populate(r)
    worker.prepare_job_queues([POSE], r)
    (task,) = b["tasks"]
    assert model.PoseEstimation.jobs.reserve(task)  # reserved by this live connection
    assert worker.release_stale_jobs(0, [POSE]) == {}
    assert worker.release_stale_jobs(0, [POSE], check_connections=False) == {POSE: 1}
    assert run_cli("worker", "--once", "--table", POSE, "--restrict", b["restrict"]) == 0
    assert len(model.PoseEstimation & r) == 1


def test_cli_exit_codes_and_clear_errors(pipeline, batch, processed_root, unique, capsys):
    model = pipeline.model
    b = batch(1)
    r = b["restriction"]
    # a second task whose outputs are missing fails
    missing = processed_root / f"missing_{unique}"
    other = model.Model.insert_new_model(f"wk2_{unique}", b["video"].parent / "project",
                                         shuffle=1)
    bad = model.PoseEstimationTask.insert_estimation_task(
        {**b["session"], "recording_id": 0, **other}, "load", output_dir=missing)
    worker_args = ["worker", "--once", "--table", INFO, "--table", POSE, "--restrict",
                   b["restrict"], "--poll-interval", "0"]
    assert run_cli(*worker_args) == 1
    out = capsys.readouterr().out
    assert "2 completed, 1 failed (idle)" in out and "output folder not found" in out
    assert len(model.PoseEstimation.jobs.errors & bad) == 1

    assert run_cli(*worker_args) == 0  # errors are not retried
    assert "0 completed, 0 failed" in capsys.readouterr().out

    assert run_cli("jobs", "clear-errors", "--table", POSE, "--restrict", b["restrict"]) == 0
    assert "model.PoseEstimation: cleared 1" in capsys.readouterr().out
    assert not model.PoseEstimation.jobs.errors & bad
    sample.make_dlc_output(b["truth"], b["video"], missing, seed=1)  # fix the cause
    assert run_cli(*worker_args) == 0
    assert "1 completed, 0 failed" in capsys.readouterr().out
    assert len(model.PoseEstimation & r) == 2

    assert run_cli("jobs", "release-stale", "--older-than", "0", "--table", POSE) == 0
    assert "released 0 job(s)" in capsys.readouterr().out
    assert run_cli("worker", "--once", "--max-jobs", "1", "--table", POSE,
                   "--restrict", b["restrict"]) == 0

    # usage errors exit 2, before any work
    assert run_cli("worker", "--table", "model.NoSuchTable", "--once") == 2
    assert run_cli("worker", "--device", "banana", "--once") == 2
    assert run_cli("worker", "--order", "sideways") == 2
    assert run_cli("worker", "--max-jobs", "0") == 2
    assert run_cli("worker", "--once", "--restrict", "{not json") == 2
    assert run_cli("jobs") == 2
    assert run_cli("jobs", "release-stale") == 2  # --older-than is required
    assert run_cli("jobs", "clear-errors", "--table", "nope") == 2


def test_worker_honours_max_jobs_stop_event_and_order(pipeline, batch):
    import threading

    model = pipeline.model
    b = batch(3)
    r = b["restriction"]
    model.RecordingInfo.populate(r)
    report = worker.run_worker([POSE], max_jobs=1, order="reverse", restriction=r,
                               poll_interval=0)
    assert report.completed == {POSE: 1} and report.stop_reason == "max_jobs"
    # reverse: the newest job first (the last task inserted)
    assert (model.PoseEstimation & r).fetch1("recording_id") == 2
    stop = threading.Event()
    stop.set()
    report = worker.run_worker([POSE], restriction=r, stop_event=stop)
    assert report.jobs == 0 and report.stop_reason == "stop_event"
    report = worker.run_worker(["PoseEstimation"], restriction=r, once=True, priority=9)
    assert report.completed == {POSE: 2}


def test_set_device_exports_the_choice(monkeypatch):
    for name in ("CUDA_VISIBLE_DEVICES", worker.DEVICE_ENV):
        monkeypatch.delenv(name, raising=False)
    assert worker.set_device(None) is None and worker.DEVICE_ENV not in os.environ
    assert worker.set_device("cuda:1") == "cuda"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert worker.set_device("0, 2") == "cuda"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,2"
    assert worker.set_device("cpu") == "cpu"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "" and os.environ[worker.DEVICE_ENV] == "cpu"
    assert worker.set_device("auto") == "auto"
    with pytest.raises(worker.WorkerUsageError):
        worker.set_device("tpu")


# ------------------------------------------------- faults: orphans, exits, retries
EXIT_HARNESS = """
import sys, time
from element_pose.cli.app import main
code = main(sys.argv[1:])
sys.stderr.write("WORKER RETURNED\\n")
sys.stderr.flush()
time.sleep(2)  # a slow interpreter exit (atexit handlers, finalisers, closing files)
sys.exit(code)
"""


def store_files(token: str) -> list:
    """Files of the pose store whose path names ``token`` (e.g. a subject)."""
    from pathlib import Path

    import datajoint as dj

    location = Path(dj.config["stores"]["pose"]["location"])
    return [p for p in location.rglob("*") if p.is_file() and token in str(p)]


def test_killed_worker_leaves_orphan_files_that_release_stale_removes(
        pipeline, batch, postgres, capsys):
    model = pipeline.model
    b = batch(1)
    r = b["restriction"]
    subject = r["subject"]
    model.RecordingInfo.populate(r)
    worker.prepare_job_queues([POSE], r)
    before = len(store_files(subject))  # RecordingInfo's timestamps
    with locked(model.PoseEstimation.BodyPartPosition) as lock:
        proc = start_worker("worker", "--once", "--table", POSE, "--restrict", b["restrict"])
        lock.wait_for(1, [proc])  # the part rows' arrays are in the store, not committed
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    orphans = len(store_files(subject)) - before
    assert orphans >= 1  # the estimation's pose block (one file for all its arrays)
    deadline = time.monotonic() + 60
    code, out = 0, ""
    while "released 1 job(s)" not in out and time.monotonic() < deadline:
        code = run_cli("jobs", "release-stale", "--older-than", "0", "--table", POSE)
        out = capsys.readouterr().out
        time.sleep(0.2)
    assert code == 0 and "released 1 job(s)" in out, out
    assert "store gc: removed" in out
    assert len(store_files(subject)) == before  # the orphans are gone, live files kept
    assert len(model.RecordingInfo & r) == 1
    report = worker.run_worker([POSE], once=True, restriction=r, poll_interval=0)
    assert report.completed == {POSE: 1}
    pose = (model.PoseEstimation.BodyPartPosition & r).to_dicts()
    assert len(pose) == 4 and all(len(row["x"]) == 20 for row in pose)


def test_stop_signal_while_the_worker_exits_gives_exit_0(pipeline, batch):
    b = batch(1)
    proc = subprocess.Popen(
        [sys.executable, "-c", EXIT_HARNESS, "worker", "--once", "--table", INFO,
         "--restrict", b["restrict"], "--poll-interval", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "WORKER RETURNED" in line:
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + err
    assert "1 completed, 0 failed" in out


def failing_batch(pipeline, b, processed_root, unique, n_bad: int) -> dict:
    """``n_bad`` load tasks of a second model whose output folder does not exist."""
    model = pipeline.model
    missing = processed_root / f"missing_{unique}"
    other = model.Model.insert_new_model(f"wk2_{unique}", b["video"].parent / "project",
                                         shuffle=1)
    for task in b["tasks"][:n_bad]:
        model.PoseEstimationTask.insert_estimation_task(
            {**{k: task[k] for k in model.VideoRecording.primary_key}, **other}, "load",
            output_dir=missing)
    return {"model": other, "missing": missing}


def test_status_counts_hidden_errors_and_jobs_retry_requeues_only_errors(
        pipeline, batch, processed_root, unique, capsys):
    from element_pose import cli

    model = pipeline.model
    b = batch(7)
    r = b["restriction"]
    bad = failing_batch(pipeline, b, processed_root, unique, 7)
    worker_args = ["worker", "--once", "--table", INFO, "--table", POSE, "--restrict",
                   b["restrict"], "--poll-interval", "0"]
    assert run_cli(*worker_args) == 1
    out = capsys.readouterr().out
    assert "7 failed" in out
    assert "to retry model.PoseEstimation: " in out and "element-pose jobs retry" in out

    def pose_section(text: str) -> str:  # the table's row up to the next table's row
        lines = text[text.index("\nmodel.PoseEstimation") + 1:].splitlines()
        row = re.compile(r"^[a-z]+\.[A-Za-z]+ +\d+ +\d+ +\d+ +\d+$")  # messages span lines
        end = next((i for i, line in enumerate(lines[1:], 1) if row.match(line)
                    or line.startswith("reserved ") or line.startswith("  dandi ")), len(lines))
        return "\n".join(lines[:end])

    # other tests of the session may have left errors of their own in this table
    total = len(model.PoseEstimation.jobs.errors)
    assert total >= 7
    assert cli.main(["status"]) == 0
    section = pose_section(capsys.readouterr().out)
    assert section.count("    error {") == 5
    assert f"... and {total - 5} more error(s)" in section
    assert "to retry: fix the cause, then `element-pose jobs retry model.PoseEstimation`" \
        in section
    assert cli.main(["status", "--errors", str(total + 3)]) == 0
    assert pose_section(capsys.readouterr().out).count("    error {") == total

    # one more task, reserved by a live worker: retry must leave it alone
    jobs = jobs_of(model.PoseEstimation, r)
    extra = model.PoseEstimationTask.insert_estimation_task(
        {**{k: b["tasks"][0][k] for k in model.VideoRecording.primary_key},
         **model.Model.insert_new_model(f"wk3_{unique}", b["video"].parent / "project",
                                        shuffle=1)},
        "load", output_dir=processed_root / f"worker_{unique}")
    model.PoseEstimation.jobs.refresh(extra, delay=-1)
    assert model.PoseEstimation.jobs.reserve(extra)
    assert len(jobs.errors) == 7 and len(jobs.reserved) == 1

    sample.make_dlc_output(b["truth"], b["video"], bad["missing"], seed=1)  # fix the cause
    assert run_cli("jobs", "retry", POSE, "--restrict",
                   json.dumps({**r, "model_name": bad["model"]["model_name"]})) == 0
    assert "model.PoseEstimation: queued again 7" in capsys.readouterr().out
    assert not jobs.errors and len(jobs.pending) == 7 and len(jobs.reserved) == 1
    # a plain populate takes them now
    model.PoseEstimation.populate(r, reserve_jobs=True, suppress_errors=True)
    assert len(model.PoseEstimation & bad["model"] & r) == 7
    assert len(jobs.reserved) == 1  # still the live reservation's
    assert run_cli("jobs", "retry") == 2  # the table is required
    (model.PoseEstimation.jobs & extra).delete_quick()  # this session's reservation


def test_default_worker_on_load_only_data_exits_0(pipeline, batch, capsys):
    model = pipeline.model
    b = batch(2)
    r = b["restriction"]
    # a load-only model has no snapshot: its evaluation is never queued
    assert not (model.ModelEvaluation.key_source & b["model"])
    # a restriction string naming an attribute that some tables lack leaves them out
    subject = f"subject = '{r['subject']}'"
    assert run_cli("worker", "--once", "--restrict", subject, "--poll-interval", "0") == 0
    out = capsys.readouterr().out
    assert "4 completed, 0 failed" in out  # RecordingInfo and PoseEstimation, 2 each
    assert run_cli("worker", "--once", "--restrict", b["restrict"], "--poll-interval", "0") == 0
    assert "0 completed, 0 failed" in capsys.readouterr().out
    assert len(model.PoseEstimation & r) == 2
    assert not (model.ModelEvaluation.jobs & b["model"])
    analysis = pipeline.analysis
    assert not (analysis.PoseQC & r)  # QC figures are opt-in
    assert worker.select_tables(None, include_opt_in=False).keys().isdisjoint(
        {"analysis.PoseQC", "analysis.FilteredPoseQC"})
    # once the project holds a trained snapshot, the model's evaluation is queued
    from element_pose.engines import deeplabcut

    folder = deeplabcut.model_folder(model.Model.config_path(b["model"]), shuffle=1)
    folder.mkdir(parents=True)
    (folder / "snapshot-005.pt").write_bytes(b"")
    assert model.ModelEvaluation.key_source & b["model"]
    (folder / "snapshot-005.pt").unlink()  # no fake model for later tests' workers


def test_worker_builds_each_job_table_once(pipeline, batch, monkeypatch):
    from datajoint import jobs as dj_jobs

    model = pipeline.model
    b = batch(4)
    built: list[str] = []
    original = dj_jobs.Job.__init__

    def counting(self, target_table):
        built.append(target_table.table_name)
        original(self, target_table)

    monkeypatch.setattr(dj_jobs.Job, "__init__", counting)
    report = worker.run_worker([INFO, POSE], once=True, restriction=b["restriction"],
                               poll_interval=0)
    assert report.completed == {INFO: 4, POSE: 4}
    assert len(model.PoseEstimation & b["restriction"]) == 4
    assert sorted(built) == sorted(["_recording_info", "__pose_estimation"])  # not per job


def test_status_reads_each_job_table_once(pipeline, batch, monkeypatch, capsys):
    """`element-pose status` builds each job table once and reads it in one pass: its
    counts in one query, then its errors and its reservations only where there are any."""
    from datajoint import connection as dj_connection
    from datajoint import jobs as dj_jobs

    from element_pose import cli
    from element_pose.ops.jobs import populated_tables

    model = pipeline.model
    b = batch(2)
    r = b["restriction"]
    model.RecordingInfo.populate(r)
    jobs = model.PoseEstimation.jobs
    jobs.refresh(r, delay=-1)
    held, failed = jobs_of(model.PoseEstimation, r).keys()
    assert jobs.reserve(held) and jobs.reserve(failed)
    jobs.error(failed, "boom")
    names = {name: table().jobs.full_table_name for name, table in populated_tables().items()}
    targets = sorted(table.table_name for table in populated_tables().values())

    built: list[str] = []
    init = dj_jobs.Job.__init__

    def counting_init(self, target_table):
        built.append(target_table.table_name)
        init(self, target_table)

    sent: list[str] = []
    query = dj_connection.Connection.query

    def counting_query(self, sql, *args, **kwargs):
        sent.append(str(sql))
        return query(self, sql, *args, **kwargs)

    monkeypatch.setattr(dj_jobs.Job, "__init__", counting_init)
    monkeypatch.setattr(dj_connection.Connection, "query", counting_query)
    try:
        assert cli.main(["status"]) == 0
        monkeypatch.undo()
        out = capsys.readouterr().out
        assert f"reserved model.PoseEstimation {held}" in out
        # listed, or counted when other tests' errors fill the first max_errors lines
        assert "boom" in out or "more error(s)" in out
        assert sorted(built) == targets  # one job table object per table
        for name, full in names.items():
            state = populated_tables()[name].jobs.progress()
            expected = 1 + bool(state["error"]) + bool(state["reserved"])
            assert len([sql for sql in sent if full in sql]) == expected, name
        # read on its own, outside Slurm: the same reservation, held by no Slurm job
        from element_pose.ops import slurm

        mine = [h for h in slurm.reservations() if h["table"] == POSE and h["key"] == held]
        assert [h["slurm_job"] for h in mine] == [""]
    finally:
        monkeypatch.undo()
        (jobs & held).delete_quick()
        (jobs & failed).delete_quick()
