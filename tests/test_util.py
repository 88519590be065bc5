"""The shared helpers of element_pose.core.util, and that their call sites agree."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import pytest

from element_pose.core import util as _util


def test_model_and_multicam_name_a_session_folder_alike(pipeline):
    """One session, one folder name: PoseEstimation outputs and multicam files agree."""
    from element_pose.schemas import model, multicam

    when = datetime.datetime(2024, 1, 2, 3, 4, 5)
    key = {"subject": "m 1", "session_id": when, "recording_id": 3, "model_name": "net"}
    pose_dir = model.PoseEstimationTask.infer_output_dir(key)
    session_part = pose_dir.relative_to(model.roots().processed_dir()).parts[0]
    assert multicam._session_folder(key) == session_part
    assert session_part == "session_id-20240102T030405_subject-m_1"
    assert _util.session_folder({"subject": "m 1", "session_id": when}) == session_part


def test_path_safe():
    assert _util.path_safe(datetime.datetime(2024, 1, 2, 3, 4, 5)) == "20240102T030405"
    assert _util.path_safe("a/b c:d") == "a_b_c_d"
    assert _util.path_safe(datetime.date(2024, 1, 2)) == "2024-01-02"
    assert _util.session_folder({}) == "session"


def test_plain_json_makes_numpy_and_paths_plain():
    value = {"a": np.float32(1.5), "b": np.arange(3), "c": (Path("x/y"), np.int64(2)),
             "d": {"e": np.bool_(True)}, "t": datetime.date(2024, 1, 2)}
    plain = _util.plain_json(value)
    assert plain == {"a": 1.5, "b": [0, 1, 2], "c": ["x/y", 2], "d": {"e": True},
                     "t": "2024-01-02"}
    json.dumps(plain)


def test_software_versions():
    from element_pose.version import __version__

    versions = _util.software_versions({"numpy": "numpy", "opencv": "cv2",
                                        "missing": "no_such_package_xyz"})
    assert versions["element-pose"] == __version__
    assert versions["numpy"] == np.__version__
    import cv2

    assert versions["opencv"] == cv2.__version__
    assert "missing" not in versions
    assert _util.package_version("no_such_package_xyz") is None


def test_devices(monkeypatch):
    for name in ("CUDA_VISIBLE_DEVICES", _util.DEVICE_ENV):
        monkeypatch.delenv(name, raising=False)
    assert _util.worker_device() is None
    assert _util.set_device("cuda:1") == "cuda"
    assert _util.worker_device() == "cuda"
    assert _util.worker_device({"device": "cpu"}) == "cpu"
    with pytest.raises(_util.DeviceError, match="tpu"):
        _util.set_device("tpu")
