"""One settings object: defaults < settings file < environment, for every entry point.

The command line, ``from workflow.pipeline import ...`` in Python or a notebook,
and workers read the same :func:`element_pose.settings.get_settings`; the demo
writes the file; secrets never go in it.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from element_pose import settings as userconfig


def run_cli(*args, env, timeout=600):
    return subprocess.run([sys.executable, "-m", "element_pose.cli", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def _fresh_user_env(tmp_path):
    """The environment of a new user: nothing element-pose specific but a home of their own."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("ELEMENT_POSE_ROOT_DIRS", "ELEMENT_POSE_PROCESSED_DIR",
                        "ELEMENT_POSE_CONFIG")}
    env["ELEMENT_POSE_HOME"] = str(tmp_path / "home")
    env["ELEMENT_POSE_SCHEMA_PREFIX"] = f"u{uuid.uuid4().hex[:6]}_"
    env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), env.get("PYTHONPATH")] if p)
    if os.environ.get("ELEMENT_POSE_TEST_DB") == "mysql":
        env["ELEMENT_POSE_STORE_DIR"] = str(tmp_path / "store")
    return env


def test_export_right_after_demo_in_a_fresh_process(tmp_path, db_backend):
    """Issue 11 defect 8: `export` after `demo` failed with 'no root data directory'."""
    env = _fresh_user_env(tmp_path)
    try:
        demo = run_cli("demo", "--mode", "load", "--frames", "30", env=env)
        assert demo.returncode == 0, demo.stderr
        config_file = tmp_path / "home" / "config.json"
        stored = json.loads(config_file.read_text())
        assert stored["root_dirs"] == [str((tmp_path / "home" / "demo").resolve())]
        assert stored["schema_prefix"] == env["ELEMENT_POSE_SCHEMA_PREFIX"]

        exported = run_cli("export", str(tmp_path / "nwb"), env=env)
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout.strip().endswith(".nwb")

        shown = run_cli("config", env=env)
        assert shown.returncode == 0, shown.stderr
        assert str(config_file) in shown.stdout
        assert "[file: ELEMENT_POSE_ROOT_DIRS]" in shown.stdout

        # the environment wins over the file
        other = {**env, "ELEMENT_POSE_ROOT_DIRS": str(tmp_path / "elsewhere")}
        shown = run_cli("config", "show", "--json", env=other)
        rows = {r["setting"]: r for r in json.loads(shown.stdout)["settings"]}
        assert rows["root_dirs"]["source"] == "env"
        assert rows["root_dirs"]["value"] == str(tmp_path / "elsewhere")
    finally:
        if db_backend == "embedded":
            run_cli("db", "stop", env=env)


def test_secrets_are_masked_and_never_stored(tmp_path, monkeypatch):
    env = _fresh_user_env(tmp_path)
    env.update({"DJ_PASS": "hunter2-secret", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value"})
    shown = run_cli("config", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "hunter2" not in shown.stdout + shown.stderr
    assert "s3cr3t" not in shown.stdout + shown.stderr
    assert "****" in shown.stdout

    refused = run_cli("config", "set", "db_password", "hunter2", env=env)
    assert refused.returncode == 2 and "secret" in refused.stderr
    assert not (tmp_path / "home" / "config.json").exists()  # nothing half-written

    ok = run_cli("config", "set", "slurm_partition", "gpu", env=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "home" / "config.json").read_text()) == {
        "slurm_partition": "gpu"}

    # a secret put into the file by hand is refused, naming the file
    path = tmp_path / "home" / "config.json"
    path.write_text(json.dumps({"db_password": "x"}))
    bad = run_cli("config", env=env)
    assert bad.returncode == 2 and str(path) in bad.stderr and "secret" in bad.stderr


def test_environment_wins_over_the_file_which_wins_over_defaults(tmp_path, monkeypatch):
    """Formerly apply(): the file fills what the environment lacks, without touching it."""
    path = tmp_path / "c.json"
    userconfig.save({"root_dirs": [str(tmp_path / "a"), str(tmp_path / "b")],
                     "slurm_time": "01:00:00", "db_host": "db.example"}, path)
    monkeypatch.setenv("DJ_HOST", "mine")
    monkeypatch.delenv("ELEMENT_POSE_SLURM_TIME", raising=False)
    monkeypatch.delenv("ELEMENT_POSE_ROOT_DIRS", raising=False)
    before = dict(os.environ)
    current = userconfig.get_settings(path)
    assert current.db_host == "mine"
    assert current.slurm_time == "01:00:00"
    assert current.root_dirs == [tmp_path / "a", tmp_path / "b"]
    assert dict(os.environ) == before  # nothing copied into the process environment
    with pytest.raises(userconfig.UserConfigError, match="unknown setting"):
        userconfig.save({"no_such": 1}, path)
    path.write_text("{not json")
    with pytest.raises(userconfig.UserConfigError, match=str(path)):
        userconfig.load(path)


_PRECEDENCE = {  # setting: (environment variable, file value, environment value, expected)
    "database": ("ELEMENT_POSE_DATABASE", "server", "Embedded", "embedded"),
    "schema_prefix": ("ELEMENT_POSE_SCHEMA_PREFIX", "file_", "env_", "env_"),
    "db_port": ("DJ_PORT", 3306, "5432", 5432),
    "db_use_tls": ("DJ_USE_TLS", True, "false", False),
    "pipeline": ("ELEMENT_POSE_PIPELINE", "lab.file", "lab.env", "lab.env"),
    "slurm_mem": ("ELEMENT_POSE_SLURM_MEM", "4G", "8G", "8G"),
}


def test_precedence_defaults_file_environment(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    for env, *_ in _PRECEDENCE.values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv(userconfig.CONFIG_ENV, str(path))
    defaults = userconfig.get_settings()
    assert (defaults.database, defaults.schema_prefix, defaults.db_port, defaults.pipeline) == (
        "auto", "pose_", None, None)
    assert {userconfig.sources()[name] for name in _PRECEDENCE} == {"default"}

    userconfig.save({name: file_value for name, (_, file_value, _, _) in _PRECEDENCE.items()})
    from_file = userconfig.get_settings()  # re-read: the file changed
    for name, (_, file_value, _, _) in _PRECEDENCE.items():
        assert getattr(from_file, name) == file_value, name
        assert userconfig.sources()[name] == "file"

    for env, _, env_value, _ in _PRECEDENCE.values():
        monkeypatch.setenv(env, env_value)
    from_env = userconfig.get_settings()  # re-read: the environment changed
    for name, (_, _, _, expected) in _PRECEDENCE.items():
        assert getattr(from_env, name) == expected, name
        assert userconfig.sources()[name] == "env"
    rows = {r["setting"]: r for r in userconfig.effective()}
    assert rows["db_use_tls"] == {**rows["db_use_tls"], "value": "false", "source": "env",
                                  "env": "DJ_USE_TLS"}

    monkeypatch.delenv("ELEMENT_POSE_SLURM_MEM")
    assert userconfig.get_settings().slurm_mem == "4G"  # back to the file
    monkeypatch.setenv("ELEMENT_POSE_SLURM_MEM", "")  # empty: as if unset
    assert userconfig.get_settings().slurm_mem == "4G"


def test_file_values_are_checked_and_normalised(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    monkeypatch.chdir(tmp_path)
    userconfig.save({"root_dirs": f"raw{os.pathsep}more", "db_port": "3307",
                     "db_use_tls": "false", "processed_dir": "out"}, path)
    assert json.loads(path.read_text()) == {
        "root_dirs": [str(tmp_path / "raw"), str(tmp_path / "more")], "db_port": 3307,
        "db_use_tls": False, "processed_dir": str(tmp_path / "out")}
    for name, value, message in (("database", "sideways", "auto', 'embedded' or 'server"),
                                 ("db_backend", "oracle", "mysql' or 'postgresql"),
                                 ("db_port", "abc", "integer"),
                                 ("s3_secure", "maybe", "boolean")):
        with pytest.raises(userconfig.UserConfigError, match=message) as caught:
            userconfig.remember({name: value}, path)
        assert f"setting {name} (for the settings file {path})" in str(caught.value)
    assert json.loads(path.read_text())["db_port"] == 3307  # nothing written
    path.write_text(json.dumps({"database": "sideways"}))
    monkeypatch.delenv("ELEMENT_POSE_DATABASE", raising=False)
    with pytest.raises(userconfig.UserConfigError,
                       match=f"setting database \\(from the settings file {path}\\)"):
        userconfig.get_settings(path)


def test_secrets_only_from_the_environment_and_masked(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    for name in ("db_password", "s3_secret_key", "s3_access_key", "dandi_api_key", "DJ_PASS"):
        with pytest.raises(userconfig.UserConfigError, match="secret"):
            userconfig.save({name: "x"}, path)
        path.write_text(json.dumps({name: "x"}))
        with pytest.raises(userconfig.UserConfigError, match=f"{path}.*secret"):
            userconfig.get_settings(path)
    path.unlink()
    monkeypatch.setenv("DJ_PASS", "hunter2-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    monkeypatch.delenv("ELEMENT_POSE_S3_SECRET_KEY", raising=False)
    current = userconfig.get_settings(path)
    assert current.db_password.get_secret_value() == "hunter2-secret"
    assert "hunter2" not in repr(current) and "hunter2" not in str(current)
    rows = {r["setting"]: r for r in userconfig.effective(path)}
    assert rows["db_password"]["value"] == "****" and rows["db_password"]["source"] == "env"
    assert rows["s3_secret_key"] == {**rows["s3_secret_key"], "value": "****",
                                     "env": "AWS_SECRET_ACCESS_KEY"}
    assert "hunter2" not in json.dumps(rows) and "s3cr3t" not in json.dumps(rows)
    assert not set(userconfig.environment_values(path)) & {"db_password", "s3_secret_key"}


def _server_free_env(tmp_path: Path) -> dict[str, str]:
    """A new user's environment with no database variables at all (the password aside)."""
    env = _fresh_user_env(tmp_path)
    for name in list(env):
        if name.startswith("DJ_") or name in ("ELEMENT_POSE_DATABASE", "ELEMENT_POSE_STORE_DIR"):
            del env[name]
    env["ELEMENT_POSE_CONFIG"] = str(tmp_path / "settings.json")
    return env


_SHOW_CONNECTION = """
import json
from workflow.pipeline import model
import datajoint as dj
from workflow import pipeline
conn = model.schema.connection
shown = {key: str(dj.config["database." + key]) for key in ("host", "port", "user", "backend")}
shown["connection"] = repr(conn)
shown["answer"] = int(conn.query("select 41 + 1").fetchone()[0])
shown["schema_exists"] = model.schema.database in dj.list_schemas()
for schema in pipeline.schemas_in_drop_order():
    schema.drop(prompt=False)
print(json.dumps(shown))
"""


def _config_set(env: dict, *pairs: tuple[str, str]) -> None:
    for name, value in pairs:
        result = run_cli("config", "set", name, value, env=env, timeout=120)
        assert result.returncode == 0, result.stderr


def test_python_import_reads_server_settings_from_the_file(tmp_path):
    """Issue 27 defect 3: `config set` of the server was ignored by `from workflow.pipeline`."""
    host, _, port_text = os.environ.get("ELEMENT_POSE_TEST_MYSQL", "127.0.0.1:3306").partition(":")
    port = int(port_text or 3306)
    if not _answers(host, port):
        pytest.skip(f"no MySQL/MariaDB server answers at {host}:{port}")
    env = _server_free_env(tmp_path)
    _config_set(env, ("database", "server"), ("db_host", host), ("db_port", str(port)),
                ("db_user", "root"), ("db_backend", "mysql"), ("db_use_tls", "false"),
                ("store_dir", str(tmp_path / "store")))
    env["DJ_PASS"] = ""  # the password is a secret: the environment's, never the file's
    result = subprocess.run([sys.executable, "-c", _SHOW_CONNECTION], capture_output=True,
                            text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert (shown["host"], shown["port"], shown["user"], shown["backend"]) == (
        host, str(port), "root", "mysql")
    assert f"@{host}:{port}" in shown["connection"]
    assert shown["answer"] == 42 and shown["schema_exists"]


def test_python_import_reads_embedded_from_the_file(tmp_path):
    """The same through the embedded server when the file says so (over its own db_host)."""
    env = _server_free_env(tmp_path)
    home = Path(os.environ["ELEMENT_POSE_PROCESSED_DIR"]).parent / f"home_{uuid.uuid4().hex[:6]}"
    env["ELEMENT_POSE_HOME"] = str(home)
    _config_set(env, ("database", "embedded"), ("db_host", "db.example.org"))
    try:
        result = subprocess.run([sys.executable, "-c", _SHOW_CONNECTION], capture_output=True,
                                text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout.strip().splitlines()[-1])
        assert shown["backend"] == "postgresql" and shown["user"] == "postgres"
        assert Path(shown["host"]).is_relative_to(home)  # the embedded server's socket
        assert shown["answer"] == 42 and shown["schema_exists"]
    finally:
        run_cli("db", "stop", env=env, timeout=120)


def test_capital_schema_prefix_is_refused_at_config_set(tmp_path):
    """Issue 27 defect 6: a prefix with capitals broke `status` on PostgreSQL."""
    env = _fresh_user_env(tmp_path)
    result = run_cli("config", "set", "schema_prefix", "Lab_", env=env, timeout=120)
    assert result.returncode == 2
    assert "schema_prefix" in result.stderr and "lower-case" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one clear line
    assert not (tmp_path / "home" / "config.json").exists()
    assert run_cli("config", "set", "schema_prefix", "lab_", env=env).returncode == 0


def test_capital_schema_prefix_is_refused_at_connect(tmp_path, db_backend):
    """Issue 27 defect 6: from the environment or a hand-edited file, before any schema."""
    env = {**os.environ, "ELEMENT_POSE_SCHEMA_PREFIX": "Lab_"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in [os.getcwd(), env.get("PYTHONPATH")] if p)
    status = run_cli("status", env=env, timeout=300)
    assert status.returncode == 2, status.stderr
    assert "does not exist" not in status.stderr
    assert "ELEMENT_POSE_SCHEMA_PREFIX" in status.stderr and "lower-case" in status.stderr
    assert len(status.stderr.strip().splitlines()) == 1

    env.pop("ELEMENT_POSE_SCHEMA_PREFIX")
    env["ELEMENT_POSE_CONFIG"] = str(tmp_path / "c.json")
    (tmp_path / "c.json").write_text(json.dumps({"schema_prefix": "Lab_"}))
    code = "from workflow.pipeline import model"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=300)
    assert imported.returncode != 0
    last = imported.stderr.strip().splitlines()[-1]
    assert last.startswith("element_pose.db.config.ConfigError: setting schema_prefix")
    assert str(tmp_path / "c.json") in last and "lower-case" in last


def _answers(host: str, port: int) -> bool:
    """Whether a server accepts connections (no import of conftest: its name is ambiguous
    when tests/engines/ is collected in the same run)."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
