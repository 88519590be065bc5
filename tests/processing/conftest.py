"""Fixtures for the DB-free processing tests: small pose data with known truth."""

from __future__ import annotations

import numpy as np
import pytest
from processing_testdata import make_pose, smooth_truth

from element_pose.core.pose import PoseData


@pytest.fixture
def truth() -> np.ndarray:
    return smooth_truth()


@pytest.fixture
def pose(truth) -> PoseData:
    return make_pose(truth)
