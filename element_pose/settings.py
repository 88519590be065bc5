"""The user's element-pose configuration file: settings that persist between commands.

The file is JSON at ``ELEMENT_POSE_CONFIG`` when that is set, else
``<ELEMENT_POSE_HOME>/config.json`` when ``ELEMENT_POSE_HOME`` is set, else
``$XDG_CONFIG_HOME/element-pose/config.json`` (``~/.config/element-pose/config.json``).
It maps setting names (see :data:`SETTINGS`) to values, e.g.::

    {"root_dirs": ["/data/videos"], "processed_dir": "/data/processed",
     "database": "server", "db_host": "db.lab.org", "db_backend": "postgresql",
     "s3_endpoint": "s3.lab.org", "s3_bucket": "pose", "s3_location": "element-pose",
     "slurm_partition": "gpu"}

Every setting has an environment variable; the environment always wins over the
file (:func:`apply` only fills variables that are not set).  Secrets (database
password, S3 keys, DANDI keys) are never read from or written to this file: they
come from the environment (or DataJoint's ``.secrets`` directory) only.

``element-pose demo`` writes the roots it used, so the README's next command
(``element-pose export``) finds the data; ``element-pose config`` shows the
effective settings and where each comes from.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_ENV",
    "SECRET_ENV",
    "SETTINGS",
    "UserConfigError",
    "apply",
    "config_path",
    "effective",
    "load",
    "remember",
    "save",
    "unset",
]

log = logging.getLogger(__name__)

CONFIG_ENV = "ELEMENT_POSE_CONFIG"

#: setting name -> (environment variable, description)
SETTINGS: dict[str, tuple[str, str]] = {
    "root_dirs": ("ELEMENT_POSE_ROOT_DIRS", "raw data root directories (list)"),
    "processed_dir": ("ELEMENT_POSE_PROCESSED_DIR", "processed data root directory"),
    "database": ("ELEMENT_POSE_DATABASE", "auto, embedded or server"),
    "schema_prefix": ("ELEMENT_POSE_SCHEMA_PREFIX", "prefix of every schema name"),
    "store_dir": ("ELEMENT_POSE_STORE_DIR", "folder of the file object store"),
    "db_host": ("DJ_HOST", "database server host"),
    "db_port": ("DJ_PORT", "database server port"),
    "db_user": ("DJ_USER", "database user"),
    "db_backend": ("DJ_BACKEND", "mysql or postgresql"),
    "db_use_tls": ("DJ_USE_TLS", "true or false"),
    "s3_endpoint": ("ELEMENT_POSE_S3_ENDPOINT", "S3 endpoint (host:port or URL)"),
    "s3_bucket": ("ELEMENT_POSE_S3_BUCKET", "S3 bucket of the pose store"),
    "s3_location": ("ELEMENT_POSE_S3_LOCATION", "folder inside the bucket"),
    "s3_secure": ("ELEMENT_POSE_S3_SECURE", "HTTPS to the endpoint (true/false)"),
    "slurm_partition": ("ELEMENT_POSE_SLURM_PARTITION", "Slurm partition for workers"),
    "slurm_gpu_partition": ("ELEMENT_POSE_SLURM_GPU_PARTITION",
                            "Slurm partition for GPU tables"),
    "slurm_time": ("ELEMENT_POSE_SLURM_TIME", "Slurm time limit per worker"),
    "slurm_mem": ("ELEMENT_POSE_SLURM_MEM", "Slurm memory per worker"),
    "slurm_gres": ("ELEMENT_POSE_SLURM_GRES", "Slurm --gres for GPU tables, e.g. gpu:1"),
    "pipeline": ("ELEMENT_POSE_PIPELINE", "pipeline module that activates the element"),
}

#: environment variables holding secrets: shown masked, never stored
SECRET_ENV = ("DJ_PASS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
              "ELEMENT_POSE_S3_ACCESS_KEY", "ELEMENT_POSE_S3_SECRET_KEY", "DANDI_API_KEY")
_SECRET_WORDS = ("pass", "secret", "token", "api_key", "access_key", "password")


_FROM_FILE: set[str] = set()  # environment variables that apply() took from the file


class UserConfigError(ValueError):
    """The configuration file or a setting is unusable."""


def config_path() -> Path:
    """Where the configuration file is (it need not exist)."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve()
    home = os.environ.get("ELEMENT_POSE_HOME")
    if home:
        return Path(home).expanduser().resolve() / "config.json"
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base).expanduser().resolve() / "element-pose" / "config.json"


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return name in SECRET_ENV or any(word in lowered for word in _SECRET_WORDS)


def load(path: Path | None = None) -> dict[str, Any]:
    """The settings in the file (empty when there is none).

    Raises:
        UserConfigError: naming the file when it is not a JSON object of known settings.
    """
    path = path or config_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserConfigError(f"{path}: not a readable JSON file: {exc}") from exc
    if not isinstance(data, dict):
        raise UserConfigError(f"{path}: expected a JSON object of settings")
    unknown = sorted(k for k in data if k not in SETTINGS)
    secrets = [k for k in unknown if _is_secret(k)]
    if secrets:
        raise UserConfigError(f"{path}: secrets do not belong in this file ({secrets}); "
                              f"set them in the environment")
    if unknown:
        raise UserConfigError(f"{path}: unknown settings {unknown}; known: {sorted(SETTINGS)}")
    return data


def _as_env(name: str, value: Any) -> str:
    if name == "root_dirs":
        items = [value] if isinstance(value, str) else list(value)
        return os.pathsep.join(str(v) for v in items)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def apply(path: Path | None = None) -> dict[str, str]:
    """Put the file's settings into the environment where it does not set them already.

    Returns:
        The environment variables that were set from the file.
    """
    applied: dict[str, str] = {}
    for name, value in load(path).items():
        env = SETTINGS[name][0]
        if value is None or env in os.environ:
            continue
        os.environ[env] = applied[env] = _as_env(name, value)
        _FROM_FILE.add(env)
    if applied:
        log.debug("settings from %s: %s", path or config_path(), sorted(applied))
    return applied


def _check(name: str, value: Any) -> Any:
    if _is_secret(name) or name not in SETTINGS:
        if _is_secret(name):
            raise UserConfigError(f"{name!r} is a secret: set it in the environment, "
                                  f"never in the configuration file")
        raise UserConfigError(f"unknown setting {name!r}; known: {sorted(SETTINGS)}")
    if name == "root_dirs":
        items = value.split(os.pathsep) if isinstance(value, str) else list(value)
        return [str(Path(v).expanduser().resolve()) for v in items if v]
    if name in ("processed_dir", "store_dir"):
        return str(Path(value).expanduser().resolve())
    return value


def save(settings: dict[str, Any], path: Path | None = None) -> Path:
    """Write the settings (replacing the file atomically); returns the file's path.

    Raises:
        UserConfigError: for an unknown setting or a secret (nothing is written).
    """
    path = path or config_path()
    checked = {name: _check(name, value) for name, value in settings.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".json")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(checked, stream, indent=2, sort_keys=True)
            stream.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remember(settings: dict[str, Any], path: Path | None = None) -> Path:
    """Merge settings into the file."""
    return save({**load(path), **settings}, path)


def unset(names: Iterable[str], path: Path | None = None) -> Path:
    """Remove settings from the file."""
    current = load(path)
    for name in names:
        if name not in SETTINGS:
            raise UserConfigError(f"unknown setting {name!r}; known: {sorted(SETTINGS)}")
        current.pop(name, None)
    return save(current, path)


def effective(path: Path | None = None) -> list[dict[str, str]]:
    """Every setting with its value and source (``env``, ``file`` or ``-``); secrets masked."""
    stored = load(path)
    rows = []
    for name, (env, description) in SETTINGS.items():
        if env in os.environ:
            value = os.environ[env]
            source = "file" if env in _FROM_FILE else "env"
        elif stored.get(name) is not None:
            value, source = _as_env(name, stored[name]), "file"
        else:
            value, source = "", "-"
        rows.append({"setting": name, "env": env, "value": value, "source": source,
                     "description": description})
    for env in SECRET_ENV:
        if os.environ.get(env):
            rows.append({"setting": env.lower(), "env": env, "value": "****",
                         "source": "env", "description": "secret (environment only)"})
    return rows
