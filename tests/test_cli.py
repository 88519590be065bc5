"""The element-pose command line: help, exit codes, the demo."""

import os
import subprocess
import sys
import time

import pytest


def run_cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "element_pose.cli", *args], capture_output=True,
                          text=True, env=env or dict(os.environ), timeout=timeout)


def test_help_is_fast_and_imports_nothing_heavy():
    start = time.perf_counter()
    result = run_cli("--help")
    assert result.returncode == 0 and "demo" in result.stdout and "db" in result.stdout
    code = ("import sys, element_pose, element_pose.cli; "
            "print(sorted(m for m in ('datajoint','deeplabcut','torch','pynwb','dandi') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip() == "[]"
    assert time.perf_counter() - start < 30  # generous: a cold interpreter on a busy machine


def test_bad_usage_exits_2():
    assert run_cli("no-such-command").returncode == 2
    assert run_cli("db", "explode").returncode == 2
    env = {**os.environ, "ELEMENT_POSE_DATABASE": "sideways"}
    result = run_cli("status", env=env)
    assert result.returncode == 2 and "ELEMENT_POSE_DATABASE" in result.stderr


@pytest.mark.usefixtures("pipeline")
def test_demo_load_mode_and_status(tmp_path):
    env = {**os.environ, "ELEMENT_POSE_ROOT_DIRS": str(tmp_path),
           "ELEMENT_POSE_PROCESSED_DIR": str(tmp_path / "processed"),
           "ELEMENT_POSE_SCHEMA_PREFIX": os.environ["ELEMENT_POSE_SCHEMA_PREFIX"] + "cli"}
    result = run_cli("demo", "--mode", "load", "--frames", "40", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["body_part", "frames", "mean_likelihood"]
    assert [line.split()[0] for line in lines[1:]] == ["nose", "left_ear", "right_ear",
                                                       "tail_base"]
    assert all(line.split()[1] == "40" for line in lines[1:])
    status = run_cli("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert '"model.PoseEstimation"' in status.stdout
    _drop(env)


def _drop(env):
    code = ("from workflow import pipeline as p\n"
            "for s in p.schemas_in_drop_order(): s.drop(prompt=False)")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
