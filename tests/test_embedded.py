"""The embedded PostgreSQL: start on demand, shared by processes, stop on request."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from element_pose.db import embedded


@pytest.fixture
def own_home(monkeypatch):
    """A home of its own (inside the session folder, which the server's user can reach)."""
    home = Path(os.environ["ELEMENT_POSE_PROCESSED_DIR"]).parent / f"home_{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("ELEMENT_POSE_HOME", str(home))
    yield home
    embedded.stop()


def test_start_is_shared_and_stop_stops(own_home):
    assert embedded.status() is None
    info = embedded.start()
    assert info.pgdata == own_home / "pgdata"
    assert (info.socket_dir / f".s.PGSQL.{info.port}").exists()
    # another process attaches to the same server instead of starting a second one
    code = ("from element_pose.db import embedded; i = embedded.start(); print(i.pid)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ), check=True).stdout
    assert int(out.split()[-1]) == info.pid
    assert embedded.status().pid == info.pid  # still running after that process exited
    assert embedded.stop() is True
    assert embedded.status() is None
    assert embedded.stop() is False


def test_connect_uses_embedded_server_without_any_config(own_home, monkeypatch):
    monkeypatch.setenv("ELEMENT_POSE_DATABASE", "auto")
    monkeypatch.delenv("DJ_HOST", raising=False)
    monkeypatch.chdir(own_home.parent)
    code = ("from element_pose.db import config; conn = config.connect(); "
            "print(conn.query('select 41 + 1').fetchone()[0])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "42"
    assert "No datajoint.json" not in result.stderr
