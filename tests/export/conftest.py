"""Fixtures for the DB-free NWB / DANDI export tests.

A small sample recording (video + ground-truth pose), metadata, and a local DANDI
archive server that the real ``dandi`` client uploads to over HTTP.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path

import pytest

# tests/ on the path so that ``support`` imports (a site-packages ``tests`` package
# can shadow ``tests.support``).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

pytest.importorskip("ndx_pose")
pytest.importorskip("dandi")

from support.dandi_server import LocalDandiArchive

from element_pose import sample
from element_pose.export.nwb import (
    CameraMetadata,
    SessionMetadata,
    SubjectMetadata,
    VideoMetadata,
)

API_KEY = "local-test-key-0123456789"
DANDISET_ID = "000123"


@pytest.fixture(autouse=True)
def _dandi_env(monkeypatch, tmp_path_factory):
    """No telemetry, no shared digest cache, no API keys from the developer's shell."""
    monkeypatch.setenv("DANDI_NO_ET", "1")
    monkeypatch.setenv("DANDI_CACHE", "ignore")
    for var in list(os.environ):
        if var.endswith("_API_KEY") and ("DANDI" in var or ":" in var):
            monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def recording(tmp_path_factory):
    """``(video path, ground-truth PoseData)``: 60 frames, 4 keypoints, 30 fps."""
    folder = tmp_path_factory.mktemp("recording")
    video = folder / "session1_cam0.mp4"
    truth = sample.make_video(video, n_frames=60, fps=30.0)
    rng = __import__("numpy").random.default_rng(1)
    truth = truth.replace(confidence=rng.uniform(0, 1, truth.confidence.shape)
                          .astype("float32"), scorer="DLC_resnet50_demo_snapshot_10",
                          source_software="DeepLabCut", source_software_version="3.0.2")
    return video, truth


@pytest.fixture
def subject():
    return SubjectMetadata("mouse1", species="Mus musculus", sex="F", age="P90D",
                           description="test mouse")


@pytest.fixture
def session():
    return SessionMetadata(
        "session1",
        dt.datetime(2026, 1, 2, 10, 30, tzinfo=dt.UTC),
        description="open field, pose estimation test",
        lab="Pose Lab",
        institution="Test Institute",
        experimenters=["Doe, Jane"],
        experiment_description="Synthetic recording for element-pose tests",
        keywords=["pose estimation"],
    )


@pytest.fixture
def camera():
    return CameraMetadata("camera_top", description="top view", manufacturer="Basler",
                          model="acA1300")


@pytest.fixture(scope="session")
def video_meta(recording):
    return VideoMetadata.from_files([recording[0]])


@pytest.fixture
def dandi_archive():
    """A local DANDI archive (real HTTP) with the empty dandiset 000123."""
    with LocalDandiArchive(api_key=API_KEY, dandisets=(DANDISET_ID,)) as server:
        yield server


@pytest.fixture(scope="session")
def organized_dandiset(tmp_path_factory, recording):
    """A dandiset folder (``dandiset.yaml`` + one organized NWB file with its video)."""
    from element_pose.export import dandi, nwb

    video, truth = recording
    root = tmp_path_factory.mktemp("organized")
    subject = SubjectMetadata("mouse1", species="Mus musculus", sex="F", age="P90D")
    session = SessionMetadata("session1", dt.datetime(2026, 1, 2, 10, 30, tzinfo=dt.UTC),
                              description="upload test")
    src = nwb.write_nwb(root / "raw" / "session1.nwb", truth, subject, session,
                        camera=CameraMetadata("camera_top"),
                        video=VideoMetadata.from_files([video]))
    ds = root / DANDISET_ID
    dandi.write_dandiset_yaml(ds, DANDISET_ID, "element-pose upload test")
    dandi.organize([src], ds)
    return ds


@pytest.fixture
def dandiset_copy(tmp_path, organized_dandiset):
    """A private copy of :func:`organized_dandiset` that a test may modify."""
    import shutil

    return Path(shutil.copytree(organized_dandiset, tmp_path / DANDISET_ID))
