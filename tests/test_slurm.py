"""Workers as Slurm job arrays on a real single-node cluster (Debian's slurm-wlm + munge).

The cluster is started by a fixture (root needed); where Slurm is not installed
the tests skip with the reason, unless ``ELEMENT_POSE_REQUIRE_SLURM=1`` (set by
``.ci/run``, which installs it), where that is a failure.  The jobs reach the
test's database (the embedded PostgreSQL, or the MariaDB server with ``--db mysql``)
through the environment that ``sbatch`` exports.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.slurm_cluster import running_slurm_cluster, unavailable_reason
from test_worker import INFO, POSE, done_keys, jobs_of, make_batch

from element_pose.ops import slurm, worker

pytestmark = pytest.mark.usefixtures("pipeline")


@pytest.fixture(scope="module")
def cluster():
    reason = unavailable_reason()
    if reason:
        if os.environ.get("ELEMENT_POSE_REQUIRE_SLURM") == "1":
            pytest.fail(f"ELEMENT_POSE_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    with running_slurm_cluster() as env:
        yield {**os.environ, **env,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(Path.cwd()),
                                                           os.environ.get("PYTHONPATH")]))}
    schema = slurm.cluster_schema()
    if schema is not None:
        schema.drop(prompt=False)


def submit(env, log_dir: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "element_pose.cli", "submit",
                             "--log-dir", str(log_dir), *args], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1]


def wait_gone(env, job_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "-h", "-j", job_id], env=env, capture_output=True,
                               text=True)
        if queue.returncode == 0 and not queue.stdout.strip():
            return
        if queue.returncode != 0 and "Invalid job id" in queue.stderr:
            return
        time.sleep(0.5)
    pytest.fail(f"Slurm job {job_id} still queued after {timeout} s")


def logs(log_dir: Path, job_id: str) -> list[str]:
    return [p.read_text() for p in sorted(log_dir.glob(f"*-{job_id}_*.log"))]


class PartLock:
    """A second database session that keeps every other session from writing ``table``."""

    def __init__(self, table, backend: str) -> None:
        import datajoint as dj

        self.table, self.backend = table, backend
        if backend == "embedded":
            import psycopg2

            self.conn = psycopg2.connect(
                host=dj.config["database.host"], port=dj.config["database.port"],
                user=dj.config["database.user"], dbname=dj.config["database.name"] or "postgres")
            self.conn.cursor().execute(f"LOCK TABLE {table.full_table_name} IN SHARE MODE")
        else:
            import pymysql

            self.conn = pymysql.connect(
                host=dj.config["database.host"], port=int(dj.config["database.port"]),
                user=dj.config["database.user"], password=dj.config["database.password"] or "")
            self.conn.cursor().execute(f"LOCK TABLES {table.full_table_name} WRITE")

    def waiting(self) -> int:
        cur = self.conn.cursor()
        if self.backend == "embedded":
            cur.execute("SELECT count(*) FROM pg_locks WHERE relation = %s::regclass "
                        "AND NOT granted", (self.table.full_table_name,))
        else:
            # MariaDB: the master's insert already waits (foreign key to the locked part)
            cur.execute("SELECT count(*) FROM information_schema.PROCESSLIST WHERE "
                        "STATE LIKE 'Waiting for table%%' AND INFO LIKE %s",
                        (f"%`{self.table.database}`%",))
        return int(cur.fetchone()[0])

    def sessions(self) -> list:
        """The server's sessions (for a failure message)."""
        cur = self.conn.cursor()
        cur.execute("SELECT * FROM pg_stat_activity" if self.backend == "embedded"
                    else "SELECT ID, STATE, INFO FROM information_schema.PROCESSLIST")
        return cur.fetchall()

    def release(self) -> None:
        if self.conn is not None:
            if self.backend == "embedded":
                self.conn.rollback()
            else:
                self.conn.cursor().execute("UNLOCK TABLES")
            self.conn.close()
            self.conn = None


@contextlib.contextmanager
def part_locked(table, backend):
    lock = PartLock(table, backend)
    try:
        yield lock
    finally:
        lock.release()


def test_array_of_two_workers_completes_every_key_once(pipeline, cluster, raw_root,
                                                       processed_root, unique, tmp_path):
    model = pipeline.model
    n = 6
    b = make_batch(pipeline, raw_root, processed_root, unique, n)
    worker.prepare_job_queues([INFO, POSE], b["restriction"])
    job = submit(cluster, tmp_path, "--workers", "2", "--once", "--table", INFO, "--table",
                 POSE, "--restrict", b["restrict"], "--poll-interval", "0")
    wait_gone(cluster, job)
    texts = logs(tmp_path, job)
    assert len(texts) == 2, texts
    for text in texts:
        assert "0 failed" in text and "Traceback" not in text, text[-3000:]
    everything = [key for text in texts for key in done_keys(text)]
    assert len(everything) == len(set(everything)) == 2 * n  # nothing twice, nothing lost
    r = b["restriction"]
    assert len(model.PoseEstimation & r) == n
    assert len(model.PoseEstimation.BodyPartPosition & r) == n * 4
    for table in (model.RecordingInfo, model.PoseEstimation):
        assert len(jobs_of(table, r)) == 0
    recorded = slurm.worker_table() & f"array_job_id = '{job}'"
    assert sorted(recorded.to_arrays("array_task_id")) == [0, 1]


def test_scancel_mid_make_leaves_no_partial_rows_and_a_later_job_completes_the_key(
        pipeline, cluster, raw_root, processed_root, unique, tmp_path, db_backend):
    model = pipeline.model
    b = make_batch(pipeline, raw_root, processed_root, unique, 1)
    r = b["restriction"]
    model.RecordingInfo.populate(r)
    worker.prepare_job_queues([POSE], r)
    args = ["--workers", "1", "--once", "--table", POSE, "--restrict", b["restrict"],
            "--poll-interval", "0"]
    with part_locked(model.PoseEstimation.BodyPartPosition, db_backend) as lock:
        job = submit(cluster, tmp_path, *args)
        deadline = time.monotonic() + 180
        while not lock.waiting():
            assert time.monotonic() < deadline, (logs(tmp_path, job), lock.sessions())
            time.sleep(0.3)
        # status shows which Slurm job holds the reservation
        held = [h for h in slurm.reservations() if h["table"] == POSE
                and h["key"]["subject"] == r["subject"]]
        assert [h["slurm_job"] for h in held] == [f"{job}_0"]
        status = subprocess.run([sys.executable, "-m", "element_pose.cli", "status"],
                                env=cluster, capture_output=True, text=True, timeout=300)
        assert f"slurm job {job}_0" in status.stdout, status.stdout + status.stderr
        subprocess.run(["scancel", job], env=cluster, check=True)
        wait_gone(cluster, job)
    # the cancelled job's transaction is rolled back: nothing of the key was written
    assert not (model.PoseEstimation & r)
    assert not (model.PoseEstimation.BodyPartPosition & r)
    (reserved,) = jobs_of(model.PoseEstimation, r).reserved.to_dicts()
    deadline = time.monotonic() + 120  # until the server has dropped the killed session
    while int(reserved["connection_id"]) in (worker.live_connection_ids(
            model.PoseEstimation.connection) or set()):
        assert time.monotonic() < deadline
        time.sleep(0.3)

    later = submit(cluster, tmp_path, *args)
    wait_gone(cluster, later)
    (text,) = logs(tmp_path, later)
    assert "released 1 reservation(s) of dead workers" in text, text[-3000:]
    assert "1 completed, 0 failed" in text, text[-3000:]
    assert len(model.PoseEstimation & r) == 1
    assert len(model.PoseEstimation.BodyPartPosition & r) == 4
    assert len(jobs_of(model.PoseEstimation, r)) == 0


def test_an_array_task_refreshes_each_job_queue_once(pipeline, raw_root, processed_root,
                                                     unique, tmp_path, monkeypatch):
    """An array task (``python -m element_pose.cli.submit run``, here in this process and
    outside Slurm) releases the dead's reservations and runs the worker, refreshing
    each job queue once a pass: not also before, when it prepares the queues."""
    from datajoint import jobs as dj_jobs

    from element_pose.cli.submit import run_array_task

    monkeypatch.setenv("ELEMENT_POSE_CONFIG", str(tmp_path / "none.json"))
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    b = make_batch(pipeline, raw_root, processed_root, unique, 1)
    args = ["--once", "--table", INFO, "--table", POSE, "--restrict", b["restrict"],
            "--poll-interval", "0"]
    assert run_array_task(args) == 0
    assert len(pipeline.model.PoseEstimation & b["restriction"]) == 1
    refreshed: list[str] = []
    original = dj_jobs.Job.refresh

    def counting(self, *restrictions, **options):
        refreshed.append(self.target.table_name)
        return original(self, *restrictions, **options)

    monkeypatch.setattr(dj_jobs.Job, "refresh", counting)
    assert run_array_task(args) == 0  # nothing left to do: one pass
    assert sorted(refreshed) == ["__pose_estimation", "_recording_info"]


def test_submit_script_asks_gpu_tables_for_gpus(monkeypatch, tmp_path):
    monkeypatch.setenv("ELEMENT_POSE_SLURM_GRES", "gpu:1")
    monkeypatch.setenv("ELEMENT_POSE_SLURM_PARTITION", "cpu")
    monkeypatch.setenv("ELEMENT_POSE_SLURM_GPU_PARTITION", "gpu")
    gpu = slurm.batch_script(slurm.SubmitOptions.from_settings(
        tables=["model.PoseEstimation"], workers=4, time="02:00:00", log_dir=tmp_path))
    assert "#SBATCH --array=0-3" in gpu and "#SBATCH --gres=gpu:1" in gpu
    assert "#SBATCH --partition=gpu" in gpu and "#SBATCH --time=02:00:00" in gpu
    cpu = slurm.batch_script(slurm.SubmitOptions.from_settings(
        tables=["model.RecordingInfo"], log_dir=tmp_path))
    assert "--gres" not in cpu and "#SBATCH --partition=cpu" in cpu
    assert "DJ_PASS" not in gpu + cpu  # secrets travel in the environment only


def test_per_table_arrays_run_one_after_the_other(pipeline, cluster, tmp_path):
    ids = subprocess.run(
        [sys.executable, "-m", "element_pose.cli", "submit", "--per-table", "--workers", "2",
         "--once", "--table", INFO, "--table", POSE, "--log-dir", str(tmp_path),
         "--sbatch-option=--hold"], env=cluster, capture_output=True, text=True, timeout=300)
    assert ids.returncode == 0, ids.stderr
    first, second = ids.stdout.split()
    try:
        queue = subprocess.run(["squeue", "-h", "-r", "-o", "%F %E", "-j", second], env=cluster,
                               capture_output=True, text=True, check=True).stdout
        assert f"afterany:{first}" in queue, queue
    finally:
        subprocess.run(["scancel", first, second], env=cluster, check=True)


# ---------------------------------------------------------------- issue 27.11-14
def state_folder(env) -> Path:
    return Path(env["SLURM_CONF"]).parent / "state"


def test_cpu_cluster_load_mode_estimation_asks_for_no_gpu_and_no_memory_it_lacks(
        pipeline, cluster, raw_root, processed_root, unique, tmp_path):
    """The test cluster has no GPU and no RealMemory: with the lab's defaults (gres gpu:1,
    mem 8G) a load-mode array must still be accepted, and say why it asks for neither."""
    b = make_batch(pipeline, raw_root, processed_root, unique, 1)
    env = {**cluster, "ELEMENT_POSE_SLURM_GRES": "gpu:1", "ELEMENT_POSE_SLURM_MEM": "8G",
           "ELEMENT_POSE_SLURM_GPU_PARTITION": "nosuchpartition"}
    args = ["--workers", "1", "--once", "--table", INFO, "--table", POSE, "--restrict",
            b["restrict"], "--poll-interval", "0"]
    dry = subprocess.run([sys.executable, "-m", "element_pose.cli", "submit", "--dry-run",
                          "--log-dir", str(tmp_path), *args], env=env, capture_output=True,
                         text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    assert "# element-pose: no GPU: no GPU work pending in model.PoseEstimation" in dry.stdout
    assert "# element-pose: no --mem: 8G asked" in dry.stdout, dry.stdout
    assert "--gres" not in dry.stdout.replace("# element-pose", "")
    assert "--mem" not in dry.stdout.replace("# element-pose: no --mem", "")
    assert "nosuchpartition" not in dry.stdout
    job = submit(env, tmp_path, *args)
    wait_gone(cluster, job)
    (text,) = logs(tmp_path, job)
    assert "2 completed, 0 failed" in text, text[-3000:]


def test_gpu_work_is_read_from_the_pending_keys_and_the_cluster(
        pipeline, cluster, raw_root, processed_root, unique, tmp_path, monkeypatch):
    model = pipeline.model
    b = make_batch(pipeline, raw_root, processed_root, unique, 2)
    r = b["restriction"]
    assert slurm.work_needs_gpu([POSE], r)[0] is False
    assert slurm.work_needs_gpu([INFO], r) == (False, "no GPU table in the array")
    task = b["tasks"][0]
    model.PoseEstimationTask.update1({**task, "task_mode": "trigger"})
    needed, why = slurm.work_needs_gpu([POSE], r)
    assert needed and "1 trigger-mode tasks" in why, why
    for name, value in cluster.items():
        monkeypatch.setenv(name, value)
    options = slurm.decide_resources(slurm.SubmitOptions(tables=[POSE], log_dir=tmp_path), r)
    assert options.gpu is False and "cluster has no GPU" in options.notes[0], options.notes
    assert "--gres" not in slurm.batch_script(options)
    # a cluster that cannot be asked (no sinfo): the work decides, gres defaults to gpu:1
    monkeypatch.setenv("PATH", str(tmp_path))
    options = slurm.decide_resources(slurm.SubmitOptions(tables=[POSE], log_dir=tmp_path), r)
    assert options.gpu is True and "#SBATCH --gres=gpu:1" in slurm.batch_script(options)


def test_secrets_never_reach_slurm_and_the_job_still_connects(
        pipeline, cluster, raw_root, processed_root, unique, tmp_path, db_backend):
    b = make_batch(pipeline, raw_root, processed_root, unique, 1)
    secrets = {"AWS_SECRET_ACCESS_KEY": f"awssecret-{unique}",
               "ELEMENT_POSE_S3_SECRET_KEY": f"s3secret-{unique}"}
    if db_backend == "embedded":  # no password there: any value passes
        secrets["DJ_PASS"] = f"dbpass-{unique}"
    elif cluster.get("DJ_PASS"):  # the server's real password
        secrets["DJ_PASS"] = cluster["DJ_PASS"]
    folder = tmp_path / "credentials"
    env = {**cluster, **secrets, "ELEMENT_POSE_CREDENTIALS_DIR": str(folder)}
    args = ["--workers", "1", "--once", "--table", INFO, "--restrict", b["restrict"],
            "--poll-interval", "0"]
    dry = subprocess.run([sys.executable, "-m", "element_pose.cli", "submit", "--dry-run",
                          *args], env=env, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0 and "#SBATCH" in dry.stdout, dry.stderr
    job = submit(env, tmp_path / "logs", *args)
    (written,) = folder.glob("*.json")
    assert written.stat().st_mode & 0o777 == 0o600 and folder.stat().st_mode & 0o777 == 0o700
    wait_gone(cluster, job)
    (text,) = logs(tmp_path / "logs", job)
    assert "1 completed, 0 failed" in text, text[-3000:]
    (read,) = [line for line in text.splitlines() if " read " in line and str(folder) in line]
    assert all(name in read for name in secrets), read
    assert not slurm.is_secret("ELEMENT_POSE_CREDENTIALS_DIR") and slurm.is_secret("PGPASSWORD")
    # Slurm's state (job scripts, environments) holds no secret value
    stored = b"".join(p.read_bytes() for p in state_folder(cluster).rglob("*") if p.is_file())
    assert stored and b"element_pose.cli.submit" in stored  # the job's script is there
    for value in secrets.values():
        assert value.encode() not in stored, value
    assert str(written).encode() in stored  # the file's name travels, not its content
    deadline = time.monotonic() + 180  # the clean-up job removes the file after the array
    while written.exists():
        assert time.monotonic() < deadline, "the credentials file was not removed"
        time.sleep(0.5)


def test_release_asks_slurm_whether_the_holder_still_runs(pipeline, cluster, monkeypatch):
    """A holder recorded as a Slurm worker: its Slurm job decides, whatever its database
    session says (here: a live session for an ended job, a dead one for a running job)."""
    from element_pose.ops import holders

    for name, value in cluster.items():
        monkeypatch.setenv(name, value)

    def sbatch(*command: str) -> str:
        return subprocess.run(["sbatch", "--parsable", "--output=/dev/null", "--wrap",
                               *command], env=cluster, capture_output=True, text=True,
                              check=True).stdout.strip().split(";")[0]

    ended, running = sbatch("true"), sbatch("sleep 120")
    try:
        wait_gone_or_ended(cluster, ended)
        live = int(pipeline.model.PoseEstimation.connection.connection_id)
        table = slurm.worker_table()
        rows = [{"host": "node-elsewhere", "pid": 1, "connection_id": live,
                 "slurm_job_id": ended},
                {"host": "node-elsewhere", "pid": 2, "connection_id": 2**40,
                 "slurm_job_id": running}]
        for row in rows:
            table.insert1({**row, "started": "2026-01-01 00:00:00"}, skip_duplicates=True)
        check = holders.HolderCheck(pipeline.model.PoseEstimation.connection)
        state, why = check.state(rows[0])
        assert state == holders.DEAD and f"Slurm job {ended}" in why, why
        state, why = check.state(rows[1])
        assert state == holders.ALIVE and ("RUNNING" in why or "PENDING" in why), why
    finally:
        subprocess.run(["scancel", running], env=cluster)
        (slurm.worker_table() & "host = 'node-elsewhere'").delete_quick()


def wait_gone_or_ended(env, job_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%T", "-j", job_id],
                               env=env, capture_output=True, text=True).stdout.strip()
        if state in ("", "COMPLETED", "FAILED", "CANCELLED"):
            return
        time.sleep(0.5)
    pytest.fail(f"Slurm job {job_id} did not end in {timeout} s")
