"""The element-pose command line: help, exit codes, the demo."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def run_cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "element_pose.cli", *args], capture_output=True,
                          text=True, env=env or dict(os.environ), timeout=timeout)


def test_help_is_fast_and_imports_nothing_heavy():
    start = time.perf_counter()
    result = run_cli("--help")
    assert result.returncode == 0 and "demo" in result.stdout and "db" in result.stdout
    code = ("import sys, element_pose, element_pose.cli.app; "
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
    assert lines[0].split() == ["body_part", "frames", "mean_likelihood", "median_px",
                                "within_2px", "within_5px"]
    assert [line.split()[0] for line in lines[1:5]] == ["nose", "left_ear", "right_ear",
                                                        "tail_base"]
    assert all(line.split()[1] == "40" for line in lines[1:5])
    assert lines[5].startswith("accuracy against the generator's known positions")
    status = run_cli("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert '"model.PoseEstimation"' in status.stdout
    shown = run_cli("status", env=env)  # QC figures wait for a worker asked to draw them
    qc = [line for line in shown.stdout.splitlines() if line.startswith("analysis.PoseQC")]
    assert qc and "opt-in" in shown.stdout.split(qc[0], 1)[1].splitlines()[1], shown.stdout

    exported = run_cli("export", str(tmp_path / "nwb"), "--key", "subject=demo-mouse", env=env)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.strip().endswith("sub-demo-mouse_ses-1_behavior+image.nwb")
    again = run_cli("export", str(tmp_path / "nwb"), "--key", "subject=demo-mouse", env=env)
    assert again.returncode == 1 and "exists" in again.stderr  # never silently overwritten

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from support.dandi_server import LocalDandiArchive

    env = {**env, "DANDI_NO_ET": "1", "DANDI_CACHE": "ignore"}
    env.pop("DANDI_API_KEY", None)
    with LocalDandiArchive(api_key="cli-key-123456", dandisets=("000123",)) as archive:
        sync = ["dandi-sync", "--dandiset", "000123", "--dandiset-dir",
                str(tmp_path / "000123"), "--instance", archive.api_url]
        no_key = run_cli(*sync, env=env)
        assert no_key.returncode == 1 and "DANDI_API_KEY" in no_key.stderr
        nwb_rel = "sub-demo-mouse/sub-demo-mouse_ses-1_behavior+image.nwb"
        archive.invalidate(nwb_rel, "demo: the archive rejects this asset")
        archive.validation_delay = 3.0  # still Pending when the first run ends
        first = run_cli(*sync, env={**env, "DANDI_API_KEY": "cli-key-123456"})
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["uploaded"]
        archive.wait_validated()
        second = run_cli(*sync, env={**env, "DANDI_API_KEY": "cli-key-123456"})
        assert json.loads(second.stdout)["uploaded"] == []
        # the archive's verdict is recorded and shown, and makes the run fail
        assert second.returncode == 1 and "archive rejects this asset" in second.stderr
        shown = run_cli("status", env=env)
        assert "Invalid" in shown.stdout and "archive rejects this asset" in shown.stdout
        # a wrong key fails even when nothing is new (issue 11 defect 6)
        wrong = run_cli(*sync, env={**env, "DANDI_API_KEY": "cli-wrong-key"})
        assert wrong.returncode == 1 and "rejected the API key" in wrong.stderr
        assert "cli-key-123456" not in first.stderr + second.stderr + no_key.stderr
        assert "cli-wrong-key" not in wrong.stderr
    _drop(env)


def _drop(env):
    code = ("from workflow import pipeline as p\n"
            "for s in p.schemas_in_drop_order(): s.drop(prompt=False)")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)


def test_status_survives_a_dropped_slurm_worker_table(pipeline, capsys):
    """`status` reads the Slurm worker table only if it is there (never crashes on it)."""
    from element_pose import cli
    from element_pose.ops import slurm

    slurm.worker_table().drop_quick()  # e.g. a test or an admin removed it
    assert cli.main(["status"]) == 0
    assert "model.PoseEstimation" in capsys.readouterr().out


def test_submit_refuses_bad_numbers_at_parse_time():
    from element_pose import cli

    for argv in (["--workers", "0"], ["--max-jobs", "0"], ["--poll-interval", "-1"]):
        with pytest.raises(SystemExit) as info:
            cli.main(["submit", "--dry-run", *argv])
        assert info.value.code == 2, argv
