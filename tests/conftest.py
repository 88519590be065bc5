"""Shared fixtures: a real database for every schema test, tiny generated data.

The database is chosen with ``--db`` (or ``ELEMENT_POSE_TEST_DB``):

* ``embedded`` (default): a fresh embedded PostgreSQL in a temporary home;
* ``mysql``: the MySQL/MariaDB server at ``ELEMENT_POSE_TEST_MYSQL``
  (default ``127.0.0.1:3306``, user root, no password); database tests are
  skipped, with the reason, when no server answers.

DataJoint binds the pipeline's tables to one connection per process, so the
test command (``make test``) runs the suite once per database.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

# Every test runs offline: a hub download must fail at once, not after retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="element-pose-tests-"))
os.environ["ELEMENT_POSE_ROOT_DIRS"] = str(_SESSION_DIR / "raw")
os.environ["ELEMENT_POSE_PROCESSED_DIR"] = str(_SESSION_DIR / "processed")
os.environ["ELEMENT_POSE_SCHEMA_PREFIX"] = f"t{uuid.uuid4().hex[:6]}_"
(_SESSION_DIR / "raw").mkdir()
(_SESSION_DIR / "processed").mkdir()


def pytest_addoption(parser):
    parser.addoption("--db", default=os.environ.get("ELEMENT_POSE_TEST_DB", "embedded"),
                     choices=["embedded", "mysql"], help="database for schema tests")


def _mysql_address() -> tuple[str, int]:
    host, _, port = os.environ.get("ELEMENT_POSE_TEST_MYSQL", "127.0.0.1:3306").partition(":")
    return host, int(port or 3306)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def pytest_configure(config):
    db = config.getoption("--db")
    os.environ["ELEMENT_POSE_TEST_DB"] = db
    if db == "embedded":
        # a home of our own: a fresh embedded server, never the user's
        os.environ["ELEMENT_POSE_HOME"] = str(_SESSION_DIR / "home")
        os.environ["ELEMENT_POSE_DATABASE"] = "embedded"
        os.environ.pop("DJ_HOST", None)
    else:
        host, port = _mysql_address()
        os.environ.update({
            "ELEMENT_POSE_DATABASE": "server",
            "DJ_HOST": host, "DJ_PORT": str(port), "DJ_USER": "root", "DJ_PASS": "",
            "DJ_BACKEND": "mysql", "DJ_USE_TLS": "false",
            "ELEMENT_POSE_STORE_DIR": str(_SESSION_DIR / "store"),
            "ELEMENT_POSE_HOME": str(_SESSION_DIR / "home"),
        })


def pytest_unconfigure(config):
    """Drop the test schemas, stop the test's embedded server, remove its files."""
    try:
        from element_pose.schemas import model

        if model.schema.is_activated():
            from workflow import pipeline

            for schema in pipeline.schemas_in_drop_order():
                schema.drop(prompt=False)
    except Exception:  # the session may never have connected
        pass
    if os.environ.get("ELEMENT_POSE_DATABASE") == "embedded":
        try:
            from element_pose.db import embedded

            embedded.stop()
        except Exception:
            pass
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def db_backend() -> str:
    """The database under test; skips (with the reason) when it is not there."""
    backend = os.environ["ELEMENT_POSE_TEST_DB"]
    if backend == "mysql":
        host, port = _mysql_address()
        if not _answers(host, port):
            pytest.skip(f"no MySQL/MariaDB server answers at {host}:{port}")
    return backend


@pytest.fixture(scope="session")
def pipeline(db_backend):
    """The activated workflow pipeline module on the database under test."""
    from workflow import pipeline as activated

    return activated


@pytest.fixture(scope="session")
def raw_root() -> Path:
    """The raw root directory of this test session."""
    return Path(os.environ["ELEMENT_POSE_ROOT_DIRS"])


@pytest.fixture(scope="session")
def processed_root() -> Path:
    """The processed root directory of this test session."""
    return Path(os.environ["ELEMENT_POSE_PROCESSED_DIR"])


@pytest.fixture
def unique() -> str:
    """A short unique token for keys of one test."""
    return uuid.uuid4().hex[:8]
