"""The worker's database connection: waiting for it at start, settling a job when it drops.

* :func:`wait_for_database`: a worker (or Slurm array task) started before its
  database server retries for a bounded time, one log line per attempt, then fails
  with :class:`DatabaseUnavailable` (``element-pose worker --wait-for-db S``).
* :func:`after_lost_connection`: the connection dropped during a job's bookkeeping
  (e.g. right after its rows were committed): reconnect, then the job is marked
  complete when its rows are there, or put back in the queue when they are not.

This module imports only the standard library at import time.
"""

from __future__ import annotations

import contextlib
import logging
import time

from element_pose.ops.holders import requeue

__all__ = [
    "DEFAULT_WAIT_FOR_DB",
    "DatabaseUnavailable",
    "after_lost_connection",
    "connection_lost",
    "refresh_session_id",
    "session_token",
    "wait_for_database",
]

log = logging.getLogger("element_pose.ops.worker")  # the worker's log lines

DEFAULT_WAIT_FOR_DB = 90.0  # seconds a starting worker waits for its database


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached within the wait allowed."""


def wait_for_database(timeout_s: float = DEFAULT_WAIT_FOR_DB, interval_s: float = 5.0):
    """Connect, retrying while the database server is not up yet (a worker started with it).

    Every failed attempt logs one line (the attempt, the error, the time left).

    Args:
        timeout_s: Give up after this many seconds (0: one attempt).
        interval_s: Seconds between attempts.

    Returns:
        The DataJoint connection.

    Raises:
        DatabaseUnavailable: still unreachable after ``timeout_s`` seconds.
        element_pose.db.config.ConfigError: the configuration itself is unusable.
    """
    from datajoint.errors import DataJointError, LostConnectionError

    from element_pose.core.redact import redact_url
    from element_pose.db.config import ConfigError, connect

    deadline = time.monotonic() + max(timeout_s, 0.0)
    attempt = 0
    while True:
        attempt += 1
        try:
            connection = connect()
            connection.query("SELECT 1")
        except ConfigError:
            raise
        except Exception as exc:
            message = redact_url(f"{type(exc).__name__}: {exc}".strip())
            if isinstance(exc, DataJointError) and not isinstance(exc, LostConnectionError):
                # a configuration error (no password, ...): waiting cannot help
                raise DatabaseUnavailable(f"cannot connect to the database: {message}") from exc
            left = deadline - time.monotonic()
            if left <= 0:
                raise DatabaseUnavailable(
                    f"the database is not reachable after {attempt} attempt(s) in "
                    f"{timeout_s:.0f} s ({message}); is the server up, and are DJ_HOST/"
                    f"DJ_PORT right? (`--wait-for-db SECONDS` waits longer)") from exc
            log.warning("database not reachable (attempt %d, %.0f s left): %s; retrying in "
                        "%.0f s", attempt, left, message, min(interval_s, left))
            time.sleep(min(interval_s, left))
            continue
        if attempt > 1:
            log.info("database reachable after %d attempt(s)", attempt)
        return connection


def connection_lost(connection, error: Exception) -> bool:
    """Whether ``error`` came from a dropped database connection.

    DataJoint raises ``LostConnectionError`` on MySQL; on PostgreSQL the driver's
    ``OperationalError`` comes through as it is, so the connection itself is asked.
    """
    from datajoint.errors import LostConnectionError

    if isinstance(error, LostConnectionError):
        return True
    try:
        connection.query("SELECT 1", reconnect=False)
    except Exception:
        return True
    return False


def after_lost_connection(name: str, table, key: dict, error: Exception) -> dict:
    """The connection dropped during populate: reconnect and settle the job by its rows.

    The rows of a key are committed in one transaction, so the key is either complete
    (the drop came after the commit, before the job was marked) or absent (rolled
    back).  Complete: the job is marked done.  Absent: it is put back in the queue.

    Returns:
        A populate result: one success, or nothing done.

    Raises:
        LostConnectionError: when the database cannot be reached again.
    """
    log.warning("%s %s: the database connection was lost (%s); reconnecting", name, key, error)
    connection = table.connection
    with contextlib.suppress(Exception):
        connection.close()
    connection.connect()
    # DataJoint's connect() keeps the transaction flag (and the old session id, which
    # the worker records afterwards: refresh_session_id)
    connection._in_transaction = False
    jobs = table.jobs
    if table & key:
        jobs.complete(key)
        log.warning("%s %s: its rows were committed before the connection dropped: "
                    "marked complete", name, key)
        return {"success_count": 1, "error_list": []}
    reserved = (jobs & key & "status='reserved'").to_dicts()
    if reserved and requeue(jobs, key, reserved[0]["priority"]):
        log.warning("%s %s: nothing was committed; the job is back in the queue", name, key)
    return {"success_count": 0, "error_list": []}


def session_token(connection) -> int:
    """Identifies the connection's current driver session (changes when it reconnects)."""
    return id(getattr(connection, "_conn", None))


def refresh_session_id(connection, token: int) -> None:
    """After DataJoint reconnected on its own, record the new session id.

    DataJoint's automatic reconnect keeps the old ``connection_id``: the jobs this
    worker reserves next would name a dead session and look abandoned to others.
    """
    if session_token(connection) == token:
        return
    old = connection.connection_id
    connection.connection_id = connection.adapter.get_connection_id(connection._conn)
    log.warning("reconnected to the database: session %s replaces %s", connection.connection_id,
                old)
