"""A real single-node Slurm cluster for tests and benchmarks (Debian's slurm-wlm + munge).

:func:`running_slurm_cluster` writes a ``slurm.conf`` into a temporary folder
(free ports, state and logs there, no cgroups), starts ``munged`` when it is not
running, then ``slurmctld`` and ``slurmd`` as root, and yields the environment
(``SLURM_CONF``) that makes ``sbatch``/``squeue``/``scancel`` talk to it.  The
daemons it started are stopped on exit.  :func:`unavailable_reason` says why no
cluster can be started here (not installed, not root), for a test skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["running_slurm_cluster", "unavailable_reason"]

DAEMONS = ("slurmctld", "slurmd", "sbatch", "squeue", "scancel", "munged")


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()),
        None)


def unavailable_reason() -> str | None:
    """Why a Slurm cluster cannot be started here, or ``None`` when it can."""
    missing = [name for name in DAEMONS if _which(name) is None]
    if missing:
        return (f"Slurm/munge not installed ({', '.join(missing)} missing): "
                f"apt-get install slurm-wlm munge (.ci/run does)")
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd needs root"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_munge() -> None:
    probe = subprocess.run(["munge", "-n"], capture_output=True)
    if probe.returncode == 0:
        return
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        subprocess.run(["mungekey", "--create"], check=True)
        shutil.chown(key, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", _which("munged")], check=True)
    deadline = time.monotonic() + 20
    while subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError("munged did not start")
        time.sleep(0.2)


def _config(folder: Path, cpus: int) -> str:
    host = socket.gethostname().split(".")[0]
    return f"""ClusterName=elementpose
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
KillWait=5
InactiveLimit=0
MinJobAge=300
SlurmdParameters=config_overrides
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""


@contextlib.contextmanager
def running_slurm_cluster(cpus: int = 2, timeout: float = 60) -> Iterator[dict[str, str]]:
    """Start a one-node cluster; yield the environment variables that reach it."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    _ensure_munge()
    folder = Path(tempfile.mkdtemp(prefix="element-pose-slurm-"))
    (folder / "state").mkdir()
    (folder / "spool").mkdir()
    conf = folder / "slurm.conf"
    conf.write_text(_config(folder, cpus))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs = []
    try:
        for daemon in ("slurmctld", "slurmd"):
            # -D: in the foreground, so that we own the process and stop it ourselves
            procs.append(subprocess.Popen([_which(daemon), "-D", "-f", str(conf)], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
        deadline = time.monotonic() + timeout
        while True:
            info = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True,
                                  text=True)
            if info.returncode == 0 and info.stdout.strip() in ("idle", "mix", "alloc"):
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                logs = "".join((folder / f).read_text()[-1500:] for f in
                               ("slurmctld.log", "slurmd.log") if (folder / f).exists())
                raise RuntimeError(f"the Slurm cluster did not come up: {info.stdout}"
                                   f"{info.stderr}\n{logs}")
            time.sleep(0.5)
        yield {"SLURM_CONF": str(conf)}
    finally:
        # end every job of this (private) cluster first, so that no job step outlives it
        if procs and all(p.poll() is None for p in procs):
            subprocess.run(["scancel", "--full", "--user", str(os.geteuid())], env=env,
                           capture_output=True)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and subprocess.run(
                    ["squeue", "-h"], env=env, capture_output=True, text=True).stdout.strip():
                time.sleep(0.5)
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
