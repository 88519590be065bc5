"""Helpers for the DB-free processing tests: small pose data with known truth."""

from __future__ import annotations

import numpy as np

from element_pose.core.pose import PoseData

FPS = 30.0


def smooth_truth(n_frames: int = 200, n_individuals: int = 1, n_keypoints: int = 2,
                 n_space: int = 2) -> np.ndarray:
    """Slow, smooth traces (a few px per frame at most), distinct per keypoint/individual."""
    f = np.arange(n_frames, dtype=np.float64)
    out = np.empty((n_frames, n_individuals, n_keypoints, n_space))
    for i in range(n_individuals):
        for k in range(n_keypoints):
            for c in range(n_space):
                phase = 0.7 * i + 0.3 * k + 1.1 * c
                out[:, i, k, c] = 60 + 40 * i + 5 * k + 20 * np.sin(2 * np.pi * f / 150 + phase)
    return out


def make_pose(position: np.ndarray, confidence: np.ndarray | None = None,
              fps: float | None = FPS, **fields) -> PoseData:
    n_individuals, n_keypoints = position.shape[1:3]
    if confidence is None:
        confidence = np.full(position.shape[:3], 0.95)
    individuals = ["individual_0"] if n_individuals == 1 else [
        f"animal{i}" for i in range(n_individuals)]
    keypoints = ["nose", "tail_base", "left_ear", "right_ear"][:n_keypoints]
    return PoseData(position=position, confidence=confidence, keypoints=keypoints,
                    individuals=individuals, fps=fps, **fields)
