"""Camera model, projection, undistortion and linear (DLT) triangulation.

One :class:`CameraParams` per camera holds the OpenCV pinhole (or fisheye) model in
anipose's convention: ``rotation`` (Rodrigues vector) and ``translation`` map world
points into the camera frame, ``x_cam = R @ x_world + t``; ``matrix`` is the 3x3
intrinsic matrix and ``distortion`` the OpenCV distortion coefficients
(``k1, k2, p1, p2, k3``, or ``k1..k4`` for fisheye).

The triangulation here is the same linear least-squares (DLT on undistorted,
normalised image coordinates) as aniposelib's ``CameraGroup.triangulate``, written
in NumPy and vectorised, so that no JAX is needed and camera subsets (RANSAC) can be
evaluated for all points at once.  :func:`align_axes` rotates and shifts 3D points into
a body-defined frame (anipose's ``axes`` and ``reference_point``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import ThreeDParamsError, TriangulationError

__all__ = [
    "CameraParams",
    "align_axes",
    "matrix_to_rodrigues",
    "reprojection_errors",
    "rodrigues_to_matrix",
    "triangulate_dlt",
    "triangulate_points",
]

_CHUNK = 200_000  # points per batched SVD


@dataclasses.dataclass
class CameraParams:
    """Intrinsics and extrinsics of one camera.

    Attributes:
        name: Camera name (unique within a calibration).
        size: Image size ``(width, height)`` in pixels.
        matrix: 3x3 intrinsic matrix.
        distortion: OpenCV distortion coefficients (5 for pinhole, 4 for fisheye).
        rotation: Rodrigues rotation vector, world to camera.
        translation: Translation, world to camera, in the calibration unit.
        fisheye: Whether the OpenCV fisheye model applies.
    """

    name: str
    size: tuple[int, int]
    matrix: np.ndarray
    distortion: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    fisheye: bool = False

    def __post_init__(self) -> None:
        self.name = str(self.name)
        self.size = (int(self.size[0]), int(self.size[1]))
        self.matrix = np.asarray(self.matrix, dtype=np.float64).reshape(3, 3)
        self.distortion = np.asarray(self.distortion, dtype=np.float64).ravel()
        self.rotation = np.asarray(self.rotation, dtype=np.float64).reshape(3)
        self.translation = np.asarray(self.translation, dtype=np.float64).reshape(3)
        self.fisheye = bool(self.fisheye)
        for field in ("matrix", "distortion", "rotation", "translation"):
            if not np.all(np.isfinite(getattr(self, field))):
                raise ThreeDParamsError(f"camera {self.name!r}: {field} is not finite")

    # ------------------------------------------------------------ derived
    @property
    def rotation_matrix(self) -> np.ndarray:
        """3x3 rotation matrix, world to camera."""
        return rodrigues_to_matrix(self.rotation)

    @property
    def extrinsics(self) -> np.ndarray:
        """3x4 ``[R | t]`` matrix, world to camera."""
        return np.hstack([self.rotation_matrix, self.translation[:, None]])

    @property
    def position(self) -> np.ndarray:
        """Camera centre in world coordinates, ``-R^T t``."""
        return -self.rotation_matrix.T @ self.translation

    @property
    def focal_length(self) -> float:
        """Mean of ``fx`` and ``fy`` in pixels."""
        return float((self.matrix[0, 0] + self.matrix[1, 1]) / 2)

    # ------------------------------------------------------------ plain forms
    def to_dict(self) -> dict[str, Any]:
        """JSON-able plain form (lists of floats)."""
        return {
            "name": self.name,
            "size": [int(self.size[0]), int(self.size[1])],
            "matrix": self.matrix.tolist(),
            "distortion": self.distortion.tolist(),
            "rotation": self.rotation.tolist(),
            "translation": self.translation.tolist(),
            "fisheye": self.fisheye,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CameraParams:
        """Build from :meth:`to_dict` output or an anipose ``[cam_N]`` table."""
        try:
            dist = d["distortion"] if "distortion" in d else d["distortions"]
            return cls(
                name=d["name"],
                size=tuple(d["size"]),
                matrix=d["matrix"],
                distortion=dist,
                rotation=d["rotation"],
                translation=d["translation"],
                fisheye=bool(d.get("fisheye", False)),
            )
        except KeyError as exc:
            raise ThreeDParamsError(f"camera entry lacks {exc.args[0]!r}: {dict(d)}") from None

    def to_anipose_dict(self) -> dict[str, Any]:
        """The dict aniposelib's ``Camera.load_dict`` / ``CameraGroup.from_dicts`` read."""
        d = {
            "name": self.name,
            "size": [int(self.size[0]), int(self.size[1])],
            "matrix": self.matrix.tolist(),
            "distortions": self.distortion.tolist(),
            "rotation": self.rotation.tolist(),
            "translation": self.translation.tolist(),
        }
        if self.fisheye:
            d["fisheye"] = True
        return d

    # ------------------------------------------------------------ geometry
    def project(self, points: np.ndarray) -> np.ndarray:
        """Project world points ``(..., 3)`` to pixels ``(..., 2)`` (NaN stays NaN)."""
        import cv2

        points = np.asarray(points, dtype=np.float64)
        shape = points.shape[:-1]
        flat = points.reshape(-1, 3)
        out = np.full((flat.shape[0], 2), np.nan)
        ok = np.all(np.isfinite(flat), axis=1)
        if ok.any():
            obj = np.ascontiguousarray(flat[ok].reshape(-1, 1, 3))
            if self.fisheye:
                img, _ = cv2.fisheye.projectPoints(
                    obj, self.rotation, self.translation, self.matrix, self.distortion[:4]
                )
            else:
                img, _ = cv2.projectPoints(
                    obj, self.rotation, self.translation, self.matrix, self.distortion
                )
            out[ok] = img.reshape(-1, 2)
        return out.reshape(*shape, 2)

    def undistort(self, points: np.ndarray) -> np.ndarray:
        """Pixels ``(..., 2)`` to undistorted normalised image coordinates (NaN stays NaN)."""
        import cv2

        points = np.asarray(points, dtype=np.float64)
        shape = points.shape
        flat = points.reshape(-1, 2)
        out = np.full_like(flat, np.nan)
        ok = np.all(np.isfinite(flat), axis=1)
        if ok.any():
            src = np.ascontiguousarray(flat[ok].reshape(-1, 1, 2))
            if self.fisheye:
                und = cv2.fisheye.undistortPoints(src, self.matrix, self.distortion[:4])
            else:
                und = cv2.undistortPoints(src, self.matrix, self.distortion)
            out[ok] = und.reshape(-1, 2)
        return out.reshape(shape)


def rodrigues_to_matrix(rvec: Sequence[float] | np.ndarray) -> np.ndarray:
    """Rotation vector to 3x3 rotation matrix (NumPy, no OpenCV)."""
    r = np.asarray(rvec, dtype=np.float64).reshape(3)
    theta = float(np.linalg.norm(r))
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * (kx @ kx)


def matrix_to_rodrigues(rotation: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix to rotation vector."""
    import cv2

    return cv2.Rodrigues(np.asarray(rotation, dtype=np.float64))[0].ravel()


def triangulate_dlt(
    normalized: np.ndarray, extrinsics: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Linear triangulation of undistorted, normalised observations.

    Args:
        normalized: ``(n_cameras, n_points, 2)`` normalised image coordinates.
        extrinsics: ``(n_cameras, 3, 4)`` world-to-camera matrices.
        valid: ``(n_cameras, n_points)`` which observations to use.

    Returns:
        ``(n_points, 3)`` points; NaN where fewer than two cameras are valid.
    """
    n_points = normalized.shape[1]
    valid = valid & np.all(np.isfinite(normalized), axis=2)
    out = np.full((n_points, 3), np.nan)
    enough = valid.sum(axis=0) >= 2
    idx = np.flatnonzero(enough)
    for start in range(0, idx.size, _CHUNK):
        sel = idx[start : start + _CHUNK]
        pts = np.where(valid[:, sel, None], normalized[:, sel], 0.0)  # (C, n, 2)
        w = valid[:, sel].astype(np.float64)  # (C, n)
        # rows: x * P[2] - P[0] and y * P[2] - P[1], zeroed for unused cameras
        rows_x = pts[:, :, 0, None] * extrinsics[:, None, 2] - extrinsics[:, None, 0]
        rows_y = pts[:, :, 1, None] * extrinsics[:, None, 2] - extrinsics[:, None, 1]
        a = np.concatenate([rows_x * w[..., None], rows_y * w[..., None]], axis=0)
        a = np.transpose(a, (1, 0, 2))  # (n, 2C, 4)
        _, _, vh = np.linalg.svd(a)
        hom = vh[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            p = hom[:, :3] / hom[:, 3:4]
        out[sel] = p
    out[~np.all(np.isfinite(out), axis=1)] = np.nan
    return out


def reprojection_errors(
    cameras: Sequence[CameraParams], points3d: np.ndarray, points2d: np.ndarray
) -> np.ndarray:
    """Per-camera pixel distance between projections and observations.

    Args:
        cameras: The cameras, in the order of ``points2d``.
        points3d: ``(n_points, 3)``.
        points2d: ``(n_cameras, n_points, 2)`` pixel observations (NaN where missing).

    Returns:
        ``(n_cameras, n_points)`` distances; NaN where either side is missing.
    """
    out = np.full(points2d.shape[:2], np.nan)
    for c, cam in enumerate(cameras):
        proj = cam.project(points3d)
        out[c] = np.linalg.norm(proj - points2d[c], axis=-1)
    return out


def triangulate_points(
    cameras: Sequence[CameraParams], points2d: np.ndarray, valid: np.ndarray | None = None
) -> np.ndarray:
    """Triangulate pixel observations ``(n_cameras, n_points, 2)`` to ``(n_points, 3)``."""
    if valid is None:
        valid = np.all(np.isfinite(points2d), axis=2)
    normalized = np.stack([cam.undistort(points2d[c]) for c, cam in enumerate(cameras)])
    extrinsics = np.stack([cam.extrinsics for cam in cameras])
    return triangulate_dlt(normalized, extrinsics, valid)


# ---------------------------------------------------------------------- axes
def align_axes(
    points: np.ndarray,
    keypoints: Sequence[str],
    axes: Sequence[Sequence[str]] | None,
    reference_point: str | None,
) -> tuple[np.ndarray, dict[str, list] | None]:
    """Rotate and shift 3D points into a body-defined frame (anipose's algorithm).

    The first axis points from the median position of its first body part to that of
    its second; the second is orthogonalised against the first; the third completes a
    right-handed frame.  The reference point's median position becomes the origin.

    Args:
        points: ``(n_frames, n_individuals, n_keypoints, 3)``; medians pool all
            individuals, so every individual shares one frame.
        keypoints: Names of the keypoint axis.
        axes: ``[[axis, from, to], [axis, from, to]]`` or empty for no rotation.
        reference_point: Body part placed at the origin, or ``None``.

    Returns:
        The aligned points and ``{"rotation", "origin"}`` (``None`` if nothing to do).
    """
    if not axes and not reference_point:
        return points, None
    keypoints = list(keypoints)

    def median_of(pts: np.ndarray, name: str) -> np.ndarray:
        flat = pts[:, :, keypoints.index(name)].reshape(-1, 3)
        flat = flat[np.isfinite(flat).all(axis=1)]
        if flat.size == 0:
            raise TriangulationError(
                f"body part {name!r} was never triangulated: cannot use it for axes/reference_point"
            )
        return np.median(flat, axis=0)

    rotation = np.eye(3)
    if axes:
        letters = {"x": 0, "y": 1, "z": 2}
        (a_ax, a_from, a_to), (b_ax, b_from, b_to) = axes
        a, b = letters[a_ax], letters[b_ax]
        c = 3 - a - b
        a_vec = median_of(points, a_to) - median_of(points, a_from)
        b_vec = median_of(points, b_to) - median_of(points, b_from)
        if np.linalg.norm(a_vec) == 0:
            raise TriangulationError(f"axis {a_ax}: {a_from!r} and {a_to!r} coincide")
        rotation[a] = a_vec / np.linalg.norm(a_vec)
        b_orth = b_vec - rotation[a] * np.dot(b_vec, rotation[a])
        if np.linalg.norm(b_orth) < 1e-9 * max(np.linalg.norm(b_vec), 1e-300):
            raise TriangulationError(f"axes {a_ax} and {b_ax} are parallel: cannot build a frame")
        rotation[b] = b_orth / np.linalg.norm(b_orth)
        rotation[c] = np.cross(rotation[a], rotation[b])
        if (a, b) not in {(0, 1), (1, 2), (2, 0)}:
            rotation[c] = -rotation[c]
    aligned = points @ rotation.T
    offset = median_of(aligned, reference_point) if reference_point else np.zeros(3)
    aligned = aligned - offset
    origin = rotation.T @ offset
    return aligned, {"rotation": rotation.tolist(), "origin": origin.tolist()}
