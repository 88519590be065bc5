"""anipose files for the ``multicam`` tables: the parts that need no table.

The table methods are the public interface, in :mod:`element_pose.schemas.multicam`
(which imports this module; this module imports no table):

* :meth:`element_pose.schemas.multicam.Calibration.insert_from_anipose` -- an anipose
  ``calibration.toml`` as a ``CalibrationTask`` (without videos) and its ``Calibration``;
  the file is copied to the task's output folder, the source path kept relative to a root.
* :meth:`element_pose.schemas.multicam.Calibration.to_anipose` -- a stored calibration as a
  ``calibration.toml`` that anipose / aniposelib ``CameraGroup.load`` read.
* :meth:`element_pose.schemas.multicam.TriangulationTask.insert_triangulation_task` with
  ``task_mode="load"`` -- an anipose 3D CSV (``anipose triangulate`` output) that
  ``Triangulation.populate`` stores like a computed triangulation
  (:func:`load_compute` is its compute step).

The file readers and writers are the DB-free :mod:`element_pose.io.anipose` and
:mod:`element_pose.processing.threed.anipose`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from element_pose.core.util import plain_json
from element_pose.processing.threed import TriangulationError, joint_angles, read_anipose_3d

__all__ = [
    "SOURCE",
    "check_body_parts",
    "check_task_file",
    "check_task_mode",
    "file_sha256",
    "load_compute",
]

log = logging.getLogger(__name__)

SOURCE = "anipose"


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_task_mode(task_mode: str) -> None:
    """Check a triangulation task's mode.

    Raises:
        ValueError: an unknown mode.
    """
    if task_mode not in ("load", "trigger"):
        raise ValueError(f"task_mode must be 'load' or 'trigger', got {task_mode!r}")


def check_task_file(task_mode: str, triangulation_file: str | Path | None) -> None:
    """Check a triangulation task's mode and file go together.

    Raises:
        ValueError: a load task without a file, or a trigger task with one.
    """
    if task_mode == "load" and triangulation_file is None:
        raise ValueError("task_mode 'load' needs triangulation_file (an anipose 3D CSV)")
    if task_mode != "load" and triangulation_file is not None:
        raise ValueError("triangulation_file is only for task_mode 'load'")


def check_body_parts(keypoints: Sequence[str], model_parts: Sequence[str], path: Path | str,
                     model_name: str) -> None:
    """Check that a 3D file's body parts are all the model's.

    Raises:
        TriangulationError: naming the file, the unknown parts and the model's.
    """
    unknown = [k for k in keypoints if k not in model_parts]
    if unknown:
        raise TriangulationError(
            f"{path}: body parts {unknown} are not body parts of model {model_name!r} "
            f"({list(model_parts)})")


def load_compute(calibration_json: str, params_json: str, load: tuple) -> tuple:
    """Read the anipose CSV into what ``Triangulation.make_insert`` stores.

    Raises:
        element_pose.io.anipose.AniposeFormatError: the CSV is not a valid anipose file.
        TriangulationError: more frames than the recordings, unknown body parts, or a
            parameter set that asks for a 3D filter.
    """
    start = time.perf_counter()
    path, relative, checksum, cameras, nframes, fps, body_parts = load
    params = json.loads(params_json)
    if params.get("filter_3d"):
        raise TriangulationError(f"{relative}: a loaded anipose CSV is not filtered again; "
                                 "use a parameter set without filter_3d")
    result = read_anipose_3d(path, fps=fps)
    pose = result.pose
    check_body_parts(pose.keypoints, body_parts, relative, "of this task")
    if pose.n_frames > nframes:
        raise TriangulationError(
            f"{relative}: {pose.n_frames} frames, but the camera group's recordings have "
            f"{nframes}")
    pad = nframes - pose.n_frames
    error, ncams = result.reprojection_error, result.n_cameras
    if pad:
        def padded(a: np.ndarray, fill: float) -> np.ndarray:
            extra = np.full((pad, *a.shape[1:]), fill, dtype=a.dtype)
            return np.concatenate([a, extra])

        pose = pose.replace(position=padded(pose.position, np.nan),
                            confidence=padded(pose.confidence, np.nan))
        error, ncams = padded(error, np.nan), padded(ncams, 0)
        result = type(result)(pose=pose, reprojection_error=error, n_cameras=ncams,
                              cameras=[], params=result.params, transform=result.transform)
    pose = pose.replace(provenance=[*pose.provenance, {
        "step": "load", "software": SOURCE, "file": relative, "sha256": checksum}])
    if params.get("angles"):
        joint_angles(pose, params["angles"])  # fail now on unknown body parts
    present = sorted((pose.individuals[0], k) for k in pose.keypoints)
    units = json.loads(calibration_json).get("units") or "mm"
    return (pose, error, ncams, present, plain_json(result.summary()),
            plain_json(result.transform), units, {relative: checksum},
            time.perf_counter() - start, list(cameras))
