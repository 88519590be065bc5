"""element-pose's settings: one object for the command line, Python imports, workers, notebooks.

:func:`get_settings` returns the current :class:`Settings` (a pydantic-settings
model).  Each value comes from, lowest to highest priority:

1. the built-in default;
2. the settings file: JSON at ``ELEMENT_POSE_CONFIG`` when that is set, else
   ``<ELEMENT_POSE_HOME>/config.json`` when ``ELEMENT_POSE_HOME`` is set, else
   ``$XDG_CONFIG_HOME/element-pose/config.json`` (``~/.config/element-pose/config.json``),
   mapping setting names (see :data:`SETTINGS`) to values, e.g.::

       {"root_dirs": ["/data/videos"], "processed_dir": "/data/processed",
        "database": "server", "db_host": "db.lab.org", "db_backend": "postgresql",
        "s3_endpoint": "s3.lab.org", "s3_bucket": "pose", "slurm_partition": "gpu"}

3. the setting's environment variable (``ELEMENT_POSE_ROOT_DIRS``, ``DJ_HOST``, ...).

Nothing is copied into ``os.environ``: every process (a worker, a Slurm task, a
notebook kernel) reads the same file and its own environment.  Secrets (database
password, S3 keys, DANDI key) come from the environment only: the file refuses
them, and :func:`effective` (``element-pose config``) masks them.

Values are checked when read, from whichever source: e.g. ``database`` is
``auto``, ``embedded`` or ``server``; ``schema_prefix`` holds lower-case letters,
digits and underscores only (PostgreSQL folds unquoted names to lower case, so a
prefix with capitals names schemas that later lookups do not find).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_PREFIX",
    "SECRET_ENV",
    "SETTINGS",
    "Settings",
    "UserConfigError",
    "config_path",
    "effective",
    "environment_values",
    "get_settings",
    "load",
    "remember",
    "save",
    "sources",
    "unset",
]

log = logging.getLogger(__name__)

CONFIG_ENV = "ELEMENT_POSE_CONFIG"
HOME_ENV = "ELEMENT_POSE_HOME"
DEFAULT_PREFIX = "pose_"
_PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
_SECRET_WORDS = ("pass", "secret", "token", "api_key", "access_key", "password")


class UserConfigError(ValueError):
    """The settings file or a setting's value is unusable."""


def _setting(env: str, description: str, default: Any = None) -> Any:
    return Field(default, validation_alias=env, description=description)


def _secret(description: str, *envs: str) -> Any:
    alias = AliasChoices(*envs) if len(envs) > 1 else envs[0]
    return Field(None, validation_alias=alias, description=description,
                 json_schema_extra={"secret": True})


class _EnvSource(EnvSettingsSource):
    """The environment, with ``ELEMENT_POSE_ROOT_DIRS`` as an ``os.pathsep`` list (not JSON)."""

    def prepare_field_value(self, field_name: str, field: Any, value: Any,
                            value_is_complex: bool) -> Any:
        if field_name == "root_dirs":
            return value
        return super().prepare_field_value(field_name, field, value, value_is_complex)


class Settings(BaseSettings):
    """Every element-pose setting, validated (see the module docstring for the sources)."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True,
                                      extra="forbid", populate_by_name=True, frozen=True)

    root_dirs: list[Path] = _setting("ELEMENT_POSE_ROOT_DIRS",
                                     "raw data root directories (list)", [])
    processed_dir: Path | None = _setting("ELEMENT_POSE_PROCESSED_DIR",
                                          "processed data root directory")
    database: Literal["auto", "embedded", "server"] = _setting(
        "ELEMENT_POSE_DATABASE", "auto, embedded or server", "auto")
    schema_prefix: str = _setting("ELEMENT_POSE_SCHEMA_PREFIX",
                                  "prefix of every schema name", DEFAULT_PREFIX)
    store_dir: Path | None = _setting("ELEMENT_POSE_STORE_DIR", "folder of the file object store")
    db_host: str | None = _setting("DJ_HOST", "database server host")
    db_port: int | None = Field(None, validation_alias="DJ_PORT", ge=1, le=65535,
                                description="database server port")
    db_user: str | None = _setting("DJ_USER", "database user")
    db_backend: Literal["mysql", "postgresql"] | None = _setting("DJ_BACKEND",
                                                                 "mysql or postgresql")
    db_use_tls: bool | None = _setting("DJ_USE_TLS", "true or false")
    s3_endpoint: str | None = _setting("ELEMENT_POSE_S3_ENDPOINT",
                                       "S3 endpoint (host:port or URL)")
    s3_bucket: str | None = _setting("ELEMENT_POSE_S3_BUCKET", "S3 bucket of the pose store")
    s3_location: str | None = _setting("ELEMENT_POSE_S3_LOCATION", "folder inside the bucket")
    s3_secure: bool | None = _setting("ELEMENT_POSE_S3_SECURE",
                                      "HTTPS to the endpoint (true/false)")
    slurm_partition: str | None = _setting("ELEMENT_POSE_SLURM_PARTITION",
                                           "Slurm partition for workers")
    slurm_gpu_partition: str | None = _setting("ELEMENT_POSE_SLURM_GPU_PARTITION",
                                               "Slurm partition for GPU tables")
    slurm_time: str | None = _setting("ELEMENT_POSE_SLURM_TIME", "Slurm time limit per worker")
    slurm_mem: str | None = _setting("ELEMENT_POSE_SLURM_MEM", "Slurm memory per worker")
    slurm_gres: str | None = _setting("ELEMENT_POSE_SLURM_GRES",
                                      "Slurm --gres for GPU tables, e.g. gpu:1")
    weights_cache: Path | None = _setting("ELEMENT_POSE_WEIGHTS_CACHE",
                                          "shared cache of pretrained weights")
    pipeline: str | None = _setting("ELEMENT_POSE_PIPELINE",
                                    "pipeline module that activates the element")
    db_password: SecretStr | None = _secret("database password", "DJ_PASS")
    s3_access_key: SecretStr | None = _secret("S3 access key", "ELEMENT_POSE_S3_ACCESS_KEY",
                                              "AWS_ACCESS_KEY_ID")
    s3_secret_key: SecretStr | None = _secret("S3 secret key", "ELEMENT_POSE_S3_SECRET_KEY",
                                              "AWS_SECRET_ACCESS_KEY")
    dandi_api_key: SecretStr | None = _secret("DANDI API key", "DANDI_API_KEY")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):
        """The environment wins over the values given (the settings file)."""
        return (_EnvSource(settings_cls), init_settings)

    @field_validator("root_dirs", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str | Path):
            value = str(value).split(os.pathsep)
        return [v for v in value if str(v)]

    @field_validator("root_dirs")
    @classmethod
    def _resolve_roots(cls, value: list[Path]) -> list[Path]:
        return [v.expanduser().resolve() for v in value]

    @field_validator("processed_dir", "store_dir")
    @classmethod
    def _resolve_dir(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().resolve()

    @field_validator("database", "db_backend", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("schema_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _PREFIX_PATTERN.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a schema prefix: use lower-case letters, digits and "
                f"underscores, starting with a letter (e.g. {value.lower()!r}); PostgreSQL "
                f"folds capitals to lower case, so such schemas would not be found")
        return value


class _FileSettings(Settings):
    """The model without the environment: checks what a settings file holds."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                   dotenv_settings, file_secret_settings):
        """Only the values given."""
        return (init_settings,)


def _field_names(secret: bool) -> list[str]:
    return [name for name, info in Settings.model_fields.items()
            if bool((info.json_schema_extra or {}).get("secret")) == secret]


def _env_names(name: str) -> list[str]:
    alias = Settings.model_fields[name].validation_alias
    return list(alias.choices) if isinstance(alias, AliasChoices) else [alias]


#: setting name -> (environment variable, description), secrets excluded
SETTINGS: dict[str, tuple[str, str]] = {
    name: (_env_names(name)[0], Settings.model_fields[name].description or "")
    for name in _field_names(secret=False)}

#: environment variables holding secrets: shown masked, never stored
SECRET_ENV: tuple[str, ...] = tuple(env for name in _field_names(secret=True)
                                    for env in _env_names(name))

_ENV_OF_ALIAS = {env: name for name in Settings.model_fields for env in _env_names(name)}
_CACHE: dict[tuple, Settings] = {}


def _unresolved_config_path() -> Path:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / "config.json"
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base).expanduser() / "element-pose" / "config.json"


def config_path() -> Path:
    """Where the settings file is (it need not exist)."""
    return _unresolved_config_path().resolve()


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return (name in SECRET_ENV or lowered in _field_names(secret=True)
            or any(word in lowered for word in _SECRET_WORDS))


def _check_names(names: Iterable[str], where: str) -> None:
    names = sorted(names)
    secrets = [n for n in names if _is_secret(n)]
    if secrets:
        raise UserConfigError(f"{where}secrets do not belong in the settings file ({secrets}): "
                              f"set them in the environment")
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        raise UserConfigError(f"{where}unknown setting(s) {unknown}; known: {sorted(SETTINGS)}")


def load(path: Path | None = None) -> dict[str, Any]:
    """The settings in the file, as written (empty when there is none).

    Raises:
        UserConfigError: naming the file when it is not a JSON object of known settings
            or when it holds a secret.
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
    _check_names(data, f"{path}: ")
    return {k: v for k, v in data.items() if v is not None}


def _origin(alias: str, path: Path, with_env: bool) -> str:
    if with_env and os.environ.get(alias):
        return f"from the environment variable {alias}"
    return f"from the settings file {path}" if with_env else f"for the settings file {path}"


def _error(exc: ValidationError, path: Path, with_env: bool = True) -> UserConfigError:
    """One line naming each bad setting, where its value came from and what is allowed."""
    parts = []
    for err in exc.errors():
        alias = str(err["loc"][0]) if err["loc"] else ""
        name = _ENV_OF_ALIAS.get(alias, alias)
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"setting {name} ({_origin(alias, path, with_env)}): {message}")
    return UserConfigError("; ".join(parts))


def _build(path: Path, file_values: dict[str, Any]) -> Settings:
    try:
        return Settings(**{_env_names(name)[0]: value for name, value in file_values.items()})
    except ValidationError as exc:
        raise _error(exc, path) from None


def _cache_key(path: Path) -> tuple:
    try:
        stat = path.stat()
        stamp: tuple = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = ()
    env = tuple(os.environ.get(alias) for alias in _ENV_OF_ALIAS)
    return (str(path), stamp, env, os.getcwd())  # relative paths resolve against the cwd


def get_settings(path: Path | None = None) -> Settings:
    """The current settings: defaults < file < environment.

    Cheap to call often: the result is reused while the file and the environment
    variables of the settings are unchanged.

    Args:
        path: The settings file (default :func:`config_path`).

    Raises:
        UserConfigError: a one-line message naming each bad setting and its source.
    """
    path = path or _unresolved_config_path()
    key = _cache_key(path)
    cached = _CACHE.get(key)
    if cached is None:
        path = path.resolve()
        cached = _build(path, load(path))
        _CACHE.clear()
        _CACHE[key] = cached
    return cached


def sources(path: Path | None = None) -> dict[str, str]:
    """Where each setting comes from: ``env``, ``file`` or ``default``."""
    stored = load(path)
    result = {}
    for name in Settings.model_fields:
        if any(os.environ.get(env) for env in _env_names(name)):
            result[name] = "env"
        elif name in stored:
            result[name] = "file"
        else:
            result[name] = "default"
    return result


def _text(value: Any) -> str:
    """A setting's value as its environment variable would spell it."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return "****"
    if isinstance(value, list):
        return os.pathsep.join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _validated(settings: dict[str, Any], path: Path) -> dict[str, Any]:
    """The file's settings checked by the model and normalised (paths resolved, types)."""
    _check_names(settings, "")
    given = {k: v for k, v in settings.items() if v is not None}
    try:
        model = _FileSettings(**{_env_names(n)[0]: v for n, v in given.items()})
    except ValidationError as exc:
        raise _error(exc, path, with_env=False) from None
    return {name: _json_value(getattr(model, name)) for name in given}


def save(settings: dict[str, Any], path: Path | None = None) -> Path:
    """Write the settings (replacing the file atomically); returns the file's path.

    Raises:
        UserConfigError: for an unknown setting, a secret or a bad value (nothing is written).
    """
    path = path or config_path()
    checked = _validated(settings, path)
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
    _check_names(settings, "")
    return save({**load(path), **settings}, path)


def unset(names: Iterable[str], path: Path | None = None) -> Path:
    """Remove settings from the file."""
    names = list(names)
    _check_names(names, "")
    current = load(path)
    for name in names:
        current.pop(name, None)
    return save(current, path)


def environment_values(path: Path | None = None) -> dict[str, Any]:
    """The (validated, non-secret) settings that the environment sets, as the file stores them."""
    current, origin = get_settings(path), sources(path)
    return {name: _json_value(getattr(current, name)) for name in SETTINGS
            if origin[name] == "env"}


def effective(path: Path | None = None) -> list[dict[str, str]]:
    """Every setting with its value and source (``env``, ``file`` or ``default``).

    Secrets are listed with their value masked (``****``) when set.
    """
    current, origin = get_settings(path), sources(path)
    rows = []
    for name in Settings.model_fields:
        envs = _env_names(name)
        env = next((e for e in envs if os.environ.get(e)), envs[0])
        description = Settings.model_fields[name].description or ""
        if name not in SETTINGS:
            description += " (secret: environment only)"
        rows.append({"setting": name, "env": env, "value": _text(getattr(current, name)),
                     "source": origin[name], "description": description})
    return rows
