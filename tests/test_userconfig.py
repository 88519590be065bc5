"""The user's configuration file: written by the demo, read by every command, secrets never."""

import json
import os
import subprocess
import sys
import uuid

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


def test_apply_fills_only_what_the_environment_lacks(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    userconfig.save({"root_dirs": [str(tmp_path / "a"), str(tmp_path / "b")],
                     "slurm_time": "01:00:00", "db_host": "db.example"}, path)
    monkeypatch.setenv("DJ_HOST", "mine")
    monkeypatch.delenv("ELEMENT_POSE_SLURM_TIME", raising=False)
    monkeypatch.delenv("ELEMENT_POSE_ROOT_DIRS", raising=False)
    applied = userconfig.apply(path)
    assert os.environ["DJ_HOST"] == "mine"
    assert applied["ELEMENT_POSE_SLURM_TIME"] == "01:00:00"
    assert os.environ["ELEMENT_POSE_ROOT_DIRS"] == os.pathsep.join(
        [str(tmp_path / "a"), str(tmp_path / "b")])
    with pytest.raises(userconfig.UserConfigError, match="unknown setting"):
        userconfig.save({"no_such": 1}, path)
    path.write_text("{not json")
    with pytest.raises(userconfig.UserConfigError, match=str(path)):
        userconfig.load(path)
