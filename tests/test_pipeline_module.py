"""Any pipeline module that activates the element works with the command line.

``tests/support/lab_pipeline.py`` is a lab's own pipeline (its own Session and
Device tables, only the model schema); it is named by ``--pipeline``, by
``ELEMENT_POSE_PIPELINE`` and by the settings file's ``pipeline`` entry, in
subprocesses of the real ``element-pose`` command on the database under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from element_pose.ops import pipeline as pipeline_module
from element_pose.sample import make_video

SUPPORT = Path(__file__).parent / "support"
SETUP = """
import sys, lab_pipeline as p
p.Rig.insert1({"rig": "rig1"}, skip_duplicates=True)
p.Experiment.insert1({"animal": "a1", "experiment": "e1"}, skip_duplicates=True)
key = {"animal": "a1", "experiment": "e1", "recording_id": 1}
p.model.VideoRecording.insert1({**key, "rig": "rig1"})
p.model.VideoRecording.File.insert1({**key, "file_id": 0, "file_path": sys.argv[1]})
"""
DROP = """
import lab_pipeline as p
p.model.schema.drop(prompt=False)
p.schema.drop(prompt=False)
"""


@pytest.fixture
def lab_env(db_backend, raw_root, tmp_path):
    """Environment of a lab's session: its own schema prefix, ``tests/support`` importable."""
    env = dict(os.environ)
    env["ELEMENT_POSE_SCHEMA_PREFIX"] = f"lab{uuid.uuid4().hex[:6]}_"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(SUPPORT), *filter(None, [env.get("PYTHONPATH")])])
    env["ELEMENT_POSE_CONFIG"] = str(tmp_path / "config.json")  # no settings file yet
    env.pop(pipeline_module.PIPELINE_ENV, None)
    video = raw_root / f"lab_{uuid.uuid4().hex[:6]}" / "cam.mp4"
    video.parent.mkdir(parents=True)
    make_video(video, n_frames=12)
    _python(env, "-c", SETUP, str(video.relative_to(raw_root)))
    yield env
    _python(env, "-c", DROP)


def _python(env: dict, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "element_pose.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _status(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cli_runs_a_labs_own_pipeline(lab_env):
    status = _status(_cli(lab_env, "--pipeline", "lab_pipeline", "status", "--json"))
    assert set(status) == {"model.RecordingInfo", "model.ModelEvaluation",
                           "model.PoseEstimation", "model.LabeledVideo"}
    assert status["model.RecordingInfo"]["remaining"] == 1

    work = _cli(lab_env, "--pipeline", "lab_pipeline", "worker", "--once",
                "--table", "model.RecordingInfo")
    assert work.returncode == 0, work.stderr
    assert "worker: 1 completed, 0 failed" in work.stdout

    by_env = {**lab_env, pipeline_module.PIPELINE_ENV: "lab_pipeline"}
    status = _status(_cli(by_env, "status", "--json"))
    assert status["model.RecordingInfo"]["done"] == 1

    Path(lab_env["ELEMENT_POSE_CONFIG"]).write_text(json.dumps({"pipeline": "lab_pipeline"}))
    status = _status(_cli(lab_env, "status", "--json"))
    assert status["model.RecordingInfo"] == {**status["model.RecordingInfo"], "done": 1,
                                             "remaining": 0}


def test_an_unimportable_pipeline_is_a_usage_error(lab_env):
    result = _cli(lab_env, "--pipeline", "no_such_lab_pipeline", "status")
    assert result.returncode == 2
    assert "no_such_lab_pipeline" in result.stderr and "not importable" in result.stderr
