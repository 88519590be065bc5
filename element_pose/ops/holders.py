"""Who holds a job reservation, and whether that holder is still alive.

A reservation row of a job table names its holder: ``host``, ``pid`` and the
database session (``connection_id``).  :class:`HolderCheck` asks, in this order,
the one that can answer for sure:

1. **Slurm**: a holder recorded in ``<prefix>cluster.SlurmWorker`` (an array task
   of ``element-pose submit``) is alive while its Slurm job is pending or running
   (``squeue -t all -j ID``); a job that ended, was cancelled or is unknown to Slurm
   is dead.
2. **The process**: a holder on this host is alive while its pid exists (a dead pid
   whose database session is still open counts as alive: a container sharing the
   host name).
3. **The database session**: a holder on another host is alive while its session is
   in the server's session list (PostgreSQL ``pg_stat_activity``, MySQL
   ``information_schema.PROCESSLIST``).

A holder none of them can answer for (no Slurm record or no ``squeue``, another
host, and a session list that cannot be read) is ``unknown``: only the age of its
reservation can then decide (``element-pose jobs release-stale --older-than S``).

This module imports only the standard library at import time.
"""

from __future__ import annotations

import logging
import os
import platform
import random
import shutil
import subprocess
import time
from typing import Any

__all__ = [
    "ALIVE",
    "DEAD",
    "SLURM_WORKER_DEFINITION",
    "UNKNOWN",
    "HolderCheck",
    "cluster_schema",
    "live_connection_ids",
    "pid_alive",
    "slurm_job_state",
    "slurm_worker_rows",
    "worker_table",
]

log = logging.getLogger(__name__)

ALIVE, DEAD, UNKNOWN = "alive", "dead", "unknown"

#: Slurm job states of a job whose processes may still run
SLURM_LIVE_STATES = frozenset({"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED",
                               "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT", "REQUEUED",
                               "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})

_TABLE: dict[str, Any] = {}

SLURM_WORKER_DEFINITION = """
# A worker process started by Slurm: joins job reservations to Slurm job ids
host: varchar(255)               # as in the job tables (platform.node())
pid: int32
connection_id: int64             # database session id, as in the job tables
---
slurm_job_id: varchar(32)        # SLURM_JOB_ID
array_job_id = '': varchar(32)   # SLURM_ARRAY_JOB_ID
array_task_id = -1: int32        # SLURM_ARRAY_TASK_ID
started: datetime
"""


def worker_table():
    """The ``<prefix>cluster.SlurmWorker`` table (activated on first use)."""
    if "table" not in _TABLE:
        from element_pose.db.config import connect, import_datajoint, schema_prefix

        dj = import_datajoint()
        schema = dj.Schema(f"{schema_prefix()}cluster", connection=connect())

        class SlurmWorker(dj.Manual):
            definition = SLURM_WORKER_DEFINITION

        for attempt in range(5):  # array tasks may race to create it (PostgreSQL)
            try:
                _TABLE["table"] = schema(SlurmWorker)
                break
            except dj.DataJointError:
                if attempt == 4:
                    raise
                time.sleep(0.2 + random.random())
        _TABLE["schema"] = schema
    return _TABLE["table"]


def cluster_schema():
    """The activated ``<prefix>cluster`` schema, or ``None`` when not used in this process."""
    return _TABLE.get("schema")


def slurm_worker_rows() -> list[dict]:
    """The recorded Slurm workers; creates nothing where no Slurm worker ever ran."""
    from element_pose.db.config import connect, import_datajoint, schema_prefix

    dj = import_datajoint()
    try:
        if "table" in _TABLE or f"{schema_prefix()}cluster" in dj.list_schemas(
                connection=connect()):
            return worker_table().to_dicts()
    except dj.DataJointError as exc:  # a schema without the table, or dropped since
        log.debug("no Slurm worker table to read: %s", exc)
        _TABLE.clear()
    return []


def live_connection_ids(connection) -> set[int] | None:
    """Ids of the database server's current sessions, or ``None`` if they cannot be read."""
    backend = connection.adapter.backend
    query = ("SELECT pid FROM pg_stat_activity" if backend == "postgresql"
             else "SELECT ID FROM information_schema.PROCESSLIST")
    try:
        return {int(row[0]) for row in connection.query(query).fetchall()}
    except Exception as exc:  # no privilege, unknown backend: the caller decides
        log.warning("cannot list the database sessions (%s)", exc)
        return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def slurm_job_state(job_id: str) -> str | None:
    """Slurm's state of a job (``""`` when Slurm no longer knows it; ``None``: cannot ask)."""
    if shutil.which("squeue") is None:
        return None
    try:
        result = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%T", "-j", job_id],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("squeue failed: %s", exc)
        return None
    if result.returncode != 0:
        if "Invalid job id" in result.stderr:
            return ""
        log.debug("squeue -j %s: %s", job_id, result.stderr.strip())
        return None
    states = result.stdout.split()
    return states[0] if states else ""


class HolderCheck:
    """Liveness of reservation holders, each asked once.

    Args:
        connection: The DataJoint connection (for the server's session list).
    """

    def __init__(self, connection) -> None:
        self.connection = connection
        self.host = platform.node()
        self._sessions: set[int] | None = None
        self._sessions_read = False
        self._slurm: dict[tuple, str] | None = None
        self._states: dict[str, str | None] = {}

    def state(self, row: dict) -> tuple[str, str]:
        """``(ALIVE | DEAD | UNKNOWN, why)`` of the holder of a reservation row."""
        holder = (str(row["host"]), int(row["pid"]), int(row["connection_id"]))
        for check in (self._by_slurm, self._by_process, self._by_session):
            verdict = check(holder)
            if verdict is not None:
                return verdict
        return UNKNOWN, "no Slurm record, another host, session list unreadable"

    def sessions(self) -> set[int] | None:
        """The server's session ids (read once)."""
        if not self._sessions_read:
            self._sessions = live_connection_ids(self.connection)
            self._sessions_read = True
        return self._sessions

    def _by_slurm(self, holder: tuple) -> tuple[str, str] | None:
        if self._slurm is None:
            self._slurm = {(str(w["host"]), int(w["pid"]), int(w["connection_id"])):
                           str(w["slurm_job_id"]) for w in slurm_worker_rows()}
        job = self._slurm.get(holder)
        if job is None:
            return None
        if job not in self._states:
            self._states[job] = slurm_job_state(job)
        state = self._states[job]
        if state is None:
            return None
        if state.split()[0].rstrip("+") in SLURM_LIVE_STATES:
            return ALIVE, f"Slurm job {job} is {state}"
        return DEAD, f"Slurm job {job} {'is ' + state if state else 'is gone'}"

    def _by_process(self, holder: tuple) -> tuple[str, str] | None:
        host, pid, connection_id = holder
        if host != self.host:
            return None
        if pid_alive(pid):
            return ALIVE, f"process {pid} runs on this host"
        sessions = self.sessions()
        if sessions is not None and connection_id in sessions:
            return ALIVE, f"process {pid} is gone here but its database session is open"
        return DEAD, f"process {pid} is gone from this host"

    def _by_session(self, holder: tuple) -> tuple[str, str] | None:
        sessions = self.sessions()
        if sessions is None:
            return None
        if holder[2] in sessions:
            return ALIVE, f"database session {holder[2]} is open"
        return DEAD, f"database session {holder[2]} is gone"
