"""Fixtures for engine tests: a tiny DeepLabCut model trained once per session."""

from __future__ import annotations

import logging
import os
import time

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tiny_model import TinyModel, build_tiny_model  # same folder

log = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """A cspnext_s model trained on a synthetic 4-body-part project (CPU, offline)."""
    pytest.importorskip("deeplabcut")
    t0 = time.perf_counter()
    model = build_tiny_model(tmp_path_factory.mktemp("tiny_dlc"))
    log.info("tiny model trained in %.1f s", time.perf_counter() - t0)
    return model


@pytest.fixture
def sample_project(tmp_path):
    """A small labelled DeepLabCut project (no training), for error-case tests."""
    from element_pose import sample

    return sample.make_dlc_project(
        tmp_path / "project", n_frames=12, n_labeled=6, width=64, height=48
    )
