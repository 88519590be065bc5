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

import contextlib
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
    "release_dead_holders",
    "release_reservations",
    "requeue",
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


#: MySQL: whether the current user holds PROCESS (or SUPER), i.e. sees every session
_MYSQL_SEES_ALL = (
    "SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES "
    "WHERE PRIVILEGE_TYPE IN ('PROCESS', 'SUPER') AND GRANTEE = CONCAT('''', "
    "SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', "
    "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')")
_WARNED: set[str] = set()


def live_connection_ids(connection) -> set[int] | None:
    """Ids of the database server's current sessions, or ``None`` if they cannot all be read.

    On MySQL a user without the ``PROCESS`` privilege sees only its own sessions: a
    worker of another database user would look dead, so the list counts as unreadable.
    """
    backend = connection.adapter.backend
    query = ("SELECT pid FROM pg_stat_activity" if backend == "postgresql"
             else "SELECT ID FROM information_schema.PROCESSLIST")
    try:
        if backend != "postgresql" and not connection.query(_MYSQL_SEES_ALL).fetchone()[0]:
            raise PermissionError("no PROCESS privilege: only this user's sessions are visible")
        return {int(row[0]) for row in connection.query(query).fetchall()}
    except Exception as exc:  # no privilege, unknown backend: the caller decides
        if str(exc) not in _WARNED:
            log.warning("cannot list the database sessions (%s)", exc)
            _WARNED.add(str(exc))
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


# ------------------------------------------------------------ releasing
def release_reservations(selected: dict[str, Any], older_than_s: float | None,
                         check_connections: bool = True) -> dict[str, int]:
    """Release the reservations of dead holders in ``selected`` tables (name: instance).

    See :func:`element_pose.ops.worker.release_stale_jobs` for ``older_than_s`` and
    ``check_connections``.

    Returns:
        Number of jobs released per table (tables with none are omitted).
    """

    released: dict[str, int] = {}
    check: HolderCheck | None = None
    for name, table in selected.items():
        jobs = table.jobs
        rows = _reserved_rows(jobs, older_than_s)
        if not rows:
            continue
        if check is None:
            check = HolderCheck(jobs.connection)
        count = 0
        for row, old in rows:
            key = {k: row[k] for k in jobs.primary_key}
            if not _holder_gone(name, key, row, old, check if check_connections else None):
                continue
            if requeue(jobs, key, row["priority"]):
                count += 1
        if count:
            released[name] = count
    return released


def _reserved_rows(jobs, older_than_s: float | None) -> list[tuple[dict, bool]]:
    """Reserved rows, each with whether it is older than ``older_than_s``."""
    rows = jobs.reserved.to_dicts()
    if not rows or older_than_s is None:
        return [(row, False) for row in rows]
    interval = jobs.adapter.interval_expr(float(older_than_s), "second")
    old = {_frozen({k: r[k] for k in jobs.primary_key}) for r in (
        jobs.reserved & f"reserved_time <= CURRENT_TIMESTAMP(3) - {interval}").to_dicts()}
    # a minimum age, when given, applies to every release
    return [(row, True) for row in rows
            if _frozen({k: row[k] for k in jobs.primary_key}) in old]


def _holder_gone(name: str, key: dict, row: dict, old: bool, check) -> bool:
    """Whether to release a reservation: its holder is dead, or unknown and ``old``."""
    holder = f"host {row['host']} pid {row['pid']}"
    if check is None:  # age alone (the rows are already the old ones)
        log.warning("%s %s: releasing the reservation of %s by age (reserved %s)",
                    name, key, holder, row["reserved_time"])
        return True
    state, why = check.state(row)
    if state == "alive":
        log.debug("%s %s: kept, its holder (%s) is alive: %s", name, key, holder, why)
        return False
    if state == "unknown" and not old:
        log.info("%s %s: holder %s cannot be asked (%s); kept (release it by age with "
                 "`element-pose jobs release-stale --older-than S`)", name, key, holder, why)
        return False
    log.warning("%s %s: releasing the reservation of %s (reserved %s): %s", name, key,
                holder, row["reserved_time"], why if state == "dead" else "old enough")
    return True


def requeue(jobs, key: dict, priority) -> bool:
    """Make a reserved job pending again; False when it is no longer reserved."""
    from datajoint.errors import DuplicateError

    # the DELETE only matches while the job is still reserved (the owner may
    # just have finished); re-insert it as pending with its priority
    if not (jobs & key & "status='reserved'").delete_quick(get_count=True):
        return False
    with contextlib.suppress(DuplicateError):  # a refresh re-added it meanwhile
        jobs.insert1({**key, "status": "pending", "priority": priority,
                      "scheduled_time": _server_time(jobs.connection, -1)})
    return True


def _server_time(connection, offset_s: float = 0):
    interval = connection.adapter.interval_expr(float(offset_s), "second")
    return connection.query(f"SELECT CURRENT_TIMESTAMP(3) + {interval}").fetchone()[0]


def _frozen(key: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in key.items()))


def release_dead_holders(selected: dict[str, Any]) -> int:
    """At start: release the reservations whose holder is known to be dead (never by age)."""
    try:
        released = sum(release_reservations(selected, None).values())
    except Exception as exc:  # a worker starts anyway; the next pass works as usual
        log.warning("could not check the holders of reserved jobs (%s: %s)",
                    type(exc).__name__, exc)
        return 0
    if released:
        log.warning("released %d reservation(s) of dead workers", released)
    return released
