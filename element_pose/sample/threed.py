"""Generated multi-camera sample data: scenes with known 3D geometry.

Cameras, 3D trajectories and ChArUco board poses are known; 2D points are projected
with OpenCV (plus noise) and board views are rendered with ``cv2.warpPerspective``
and written as short videos.  Used by the 3D tutorial notebook and the tests
(``tests/processing/test_threed.py``, ``tests/test_multicam.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from element_pose.core.pose import PoseData
from element_pose.io.video import write_video
from element_pose.processing.threed import CameraParams, draw_board

__all__ = [
    "BOARD",
    "BODY",
    "FOCAL",
    "KEYPOINTS",
    "H",
    "W",
    "errors_mm",
    "make_cameras",
    "make_trajectory",
    "project_scene",
    "relative_pose",
    "render_board_videos",
    "rotation",
]

W, H, FOCAL = 640, 480, 800.0
KEYPOINTS = ["snout", "neck", "hip", "tail"]
BODY = np.array([[0.0, 0.0, 0.0], [30.0, 0.0, 0.0], [60.0, 5.0, 0.0], [100.0, 0.0, 10.0]])
BOARD = {
    "type": "charuco",
    "squares_x": 6,
    "squares_y": 5,
    "square_length": 25.0,
    "marker_length": 18.75,
    "frame_step": 1,
    "min_detections": 3,
}


def _look_at(centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = -centre / np.linalg.norm(centre)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    rotation = np.stack([x, y, z])
    return rotation, -rotation @ centre


def make_cameras(distortion: bool = True) -> list[CameraParams]:
    """Three cameras 500 mm from the origin, looking at it."""
    import cv2

    cams = []
    for i, (name, theta, phi) in enumerate([("left", -30, 8), ("centre", 0, -5), ("right", 35, 5)]):
        th, ph = math.radians(theta), math.radians(phi)
        centre = 500 * np.array(
            [math.sin(th) * math.cos(ph), math.sin(ph), -math.cos(th) * math.cos(ph)]
        )
        rotation, translation = _look_at(centre)
        matrix = np.array([[FOCAL, 0, (W - 1) / 2], [0, FOCAL, (H - 1) / 2], [0, 0, 1]])
        dist = np.array([-0.05 * (i + 1), 0.01, 0, 0, 0]) if distortion else np.zeros(5)
        cams.append(
            CameraParams(
                name, (W, H), matrix, dist, cv2.Rodrigues(rotation)[0].ravel(), translation
            )
        )
    return cams


def make_trajectory(n_frames: int, phase: float = 0.0, body: np.ndarray = BODY) -> np.ndarray:
    """A rigid body walking on a circle: (n_frames, n_points, 3) in mm."""
    t = np.linspace(0, 2 * np.pi, n_frames) + phase
    out = np.empty((n_frames, len(body), 3))
    for f, a in enumerate(t):
        heading = a + np.pi / 2
        rot = np.array(
            [
                [np.cos(heading), 0, np.sin(heading)],
                [0, 1, 0],
                [-np.sin(heading), 0, np.cos(heading)],
            ]
        )
        centre = np.array([60 * np.cos(a), 10 * np.sin(2 * a), 60 * np.sin(a)])
        out[f] = (rot @ (body - body.mean(axis=0)).T).T + centre
    return out


def project_scene(
    cameras: list[CameraParams],
    points: np.ndarray,
    noise: float = 0.3,
    seed: int = 0,
    individuals: list[str] | None = None,
    fps: float = 30.0,
    keypoints: Sequence[str] = KEYPOINTS,
) -> dict[str, PoseData]:
    """2D PoseData per camera of ``points`` (n_frames, n_individuals, n_keypoints, 3)."""
    rng = np.random.default_rng(seed)
    individuals = individuals or [f"animal{i}" for i in range(points.shape[1])]
    out = {}
    for cam in cameras:
        xy = cam.project(points) + rng.normal(0, noise, (*points.shape[:-1], 2))
        out[cam.name] = PoseData(
            position=xy,
            confidence=np.full(points.shape[:-1], 0.95),
            keypoints=list(keypoints),
            individuals=individuals,
            fps=fps,
        )
    return out


def errors_mm(pose3d: PoseData, truth: np.ndarray) -> np.ndarray:
    """Euclidean distance of every 3D point to the truth."""
    return np.linalg.norm(pose3d.position.astype(np.float64) - truth, axis=-1)


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation matrix of successive rotations about x, y and z (radians)."""
    import cv2

    return (
        cv2.Rodrigues(np.array([ax, 0.0, 0.0]))[0]
        @ cv2.Rodrigues(np.array([0.0, ay, 0.0]))[0]
        @ cv2.Rodrigues(np.array([0.0, 0.0, az]))[0]
    )


def render_board_videos(
    cameras: list[CameraParams], folder: Path, n_views: int = 10, blank: tuple[str, ...] = ()
) -> dict[str, Path]:
    """Videos of the BOARD at random poses near the origin, as each camera sees it.

    Cameras named in ``blank`` get grey frames (the board is never visible).
    """
    import cv2

    scale, margin = 4.0, 40  # texture pixels per mm, white margin in pixels
    texture = draw_board(BOARD, scale, margin)
    th, tw = texture.shape
    corners = np.array([[0, 0], [tw - 1, 0], [tw - 1, th - 1], [0, th - 1]], dtype=np.float64)
    half = np.array([BOARD["squares_x"], BOARD["squares_y"]]) * BOARD["square_length"] / 2
    board_xy = (corners - margin) / scale - half
    rng = np.random.default_rng(1)
    poses = [
        (
            rotation(*rng.uniform(-0.45, 0.45, 2), rng.uniform(-0.3, 0.3)),
            rng.uniform([-40, -40, -40], [40, 40, 60]),
        )
        for _ in range(n_views)
    ]
    videos = {}
    for cam in cameras:
        frames = []
        for rot, translation in poses:
            if cam.name in blank:
                image = np.full((H, W), 110, dtype=np.uint8)
            else:
                world = (rot @ np.c_[board_xy, np.zeros(4)].T).T + translation
                homography = cv2.getPerspectiveTransform(
                    corners.astype(np.float32), cam.project(world).astype(np.float32)
                )
                image = cv2.warpPerspective(texture, homography, (W, H), borderValue=110)
            frames.append(np.repeat(image[:, :, None], 3, axis=2))
        videos[cam.name] = write_video(Path(folder) / f"calib_{cam.name}.mp4", frames, fps=10)
    return videos


def relative_pose(a: CameraParams, b: CameraParams) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation of camera ``b`` relative to camera ``a``."""
    rot = b.rotation_matrix @ a.rotation_matrix.T
    return rot, b.translation - rot @ a.translation
