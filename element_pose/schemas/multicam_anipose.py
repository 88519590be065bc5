"""anipose files into and out of the ``multicam`` tables.

The table methods that call these functions are the public interface:

* :meth:`element_pose.schemas.multicam.Calibration.insert_from_anipose` -- an anipose
  ``calibration.toml`` as a ``CalibrationTask`` (without videos) and its ``Calibration``;
  the file is copied to the task's output folder, the source path kept relative to a root.
* :meth:`element_pose.schemas.multicam.Calibration.to_anipose` -- a stored calibration as a
  ``calibration.toml`` that anipose / aniposelib ``CameraGroup.load`` read.
* :meth:`element_pose.schemas.multicam.TriangulationTask.insert_triangulation_task` with
  ``task_mode="load"`` -- an anipose 3D CSV (``anipose triangulate`` output) that
  ``Triangulation.populate`` stores like a computed triangulation.

The file readers and writers are the DB-free :mod:`element_pose.io.anipose`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.util import plain_json
from element_pose.io.anipose import (
    anipose_3d_keypoints,
    read_anipose_3d,
    read_anipose_calibration,
    write_anipose_calibration,
)
from element_pose.processing.threed import TriangulationError
from element_pose.schemas import model

__all__ = [
    "import_calibration",
    "insert_triangulation_task",
    "load_compute",
    "load_fetch",
    "write_calibration",
]

log = logging.getLogger(__name__)

SOURCE = "anipose"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ============================================================ calibration
def import_calibration(session_key: Mapping[str, Any], calibration_id: int,
                       toml_path: str | Path, calibration_paramset_id: int | None = None,
                       description: str = "", units: str | None = None) -> dict[str, Any]:
    """Store an anipose ``calibration.toml`` (see ``Calibration.insert_from_anipose``)."""
    from element_pose.schemas import multicam as mc

    r = model.roots()
    source = r.find(toml_path)
    relative = r.relative(source)
    result = read_anipose_calibration(source)
    if units is not None:
        result.units = str(units)
    key = {**mc._session_key(session_key), "calibration_id": int(calibration_id)}
    if mc.CalibrationTask & key:
        raise ValueError(f"CalibrationTask {key} exists already; choose another calibration_id")
    if calibration_paramset_id is None:
        if result.params is None:
            raise ValueError(
                f"{source} does not say which board made it: pass calibration_paramset_id "
                "(a CalibrationParamSet describing the board of anipose's config.toml)")
        calibration_paramset_id = mc.CalibrationParamSet.insert_new_params(
            f"from {relative}"[:255], result.params)
    elif not (mc.CalibrationParamSet & {"calibration_paramset_id": calibration_paramset_id}):
        raise ValueError(f"no CalibrationParamSet {calibration_paramset_id}")
    stored = result.to_dict()
    stored["source"] = {"software": SOURCE, "file": relative}
    target = mc.CalibrationTask.output_dir(key) / mc.CALIBRATION_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    try:
        shutil.copyfile(source, tmp)
        tmp.replace(target)
        with mc.CalibrationTask.connection.transaction:
            mc.CalibrationTask.insert1({
                **key, "calibration_paramset_id": calibration_paramset_id,
                "calibration_description": description or f"anipose calibration {relative}"})
            mc.Calibration._insert_result(key, stored, str(target), 0.0,
                                          allow_direct_insert=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        target.unlink(missing_ok=True)
        raise
    log.info("imported anipose calibration %s (%d cameras) as %s", relative,
             len(result.cameras), key)
    return key


def write_calibration(key: Mapping[str, Any], path: str | Path) -> Path:
    """Write one stored calibration as an anipose ``calibration.toml``."""
    from element_pose.schemas import multicam as mc

    return write_anipose_calibration(mc.Calibration.fetch_calibration(key), path)


# ========================================================== triangulation
def insert_triangulation_task(camera_group_key: Mapping[str, Any], model_name: str,
                              triangulation_paramset_id: int, task_mode: str = "trigger",
                              triangulation_file: str | Path | None = None,
                              skip_duplicates: bool = False) -> dict[str, Any]:
    """Insert a triangulation task (see ``TriangulationTask.insert_triangulation_task``)."""
    from element_pose.schemas import multicam as mc

    if task_mode not in ("load", "trigger"):
        raise ValueError(f"task_mode must be 'load' or 'trigger', got {task_mode!r}")
    missing = [k for k in mc.CameraGroup.primary_key if k not in camera_group_key]
    if missing:
        raise ValueError(f"camera group key {dict(camera_group_key)} lacks {missing}")
    group = {k: camera_group_key[k] for k in mc.CameraGroup.primary_key}
    if not (mc.CameraGroup & group):
        raise ValueError(f"no CameraGroup {group}")
    params_key = {"triangulation_paramset_id": int(triangulation_paramset_id)}
    if not (mc.TriangulationParamSet & params_key):
        raise ValueError(f"no TriangulationParamSet {triangulation_paramset_id}")
    task = {**group, "model_name": model_name, **params_key}
    relative = ""
    if task_mode == "load":
        if triangulation_file is None:
            raise ValueError("task_mode 'load' needs triangulation_file (an anipose 3D CSV)")
        r = model.roots()
        path = r.find(triangulation_file)
        relative = r.relative(path)
        keypoints = anipose_3d_keypoints(path)  # the header line: the values load later
        if (mc.TriangulationParamSet & params_key).fetch1("params").get("filter_3d"):
            raise ValueError(
                f"TriangulationParamSet {triangulation_paramset_id} has a filter_3d; a loaded "
                "anipose CSV is stored as anipose wrote it: use a parameter set without one")
        _check_body_parts(keypoints, model.Model.body_parts({"model_name": model_name}),
                          path, model_name)
    elif triangulation_file is not None:
        raise ValueError("triangulation_file is only for task_mode 'load'")
    mc.TriangulationTask.insert1({**task, "task_mode": task_mode,
                                  "triangulation_file": relative},
                                 skip_duplicates=skip_duplicates)
    return task


def _check_body_parts(keypoints: Sequence[str], model_parts: Sequence[str], path: Path | str,
                      model_name: str) -> None:
    unknown = [k for k in keypoints if k not in model_parts]
    if unknown:
        raise TriangulationError(
            f"{path}: body parts {unknown} are not body parts of model {model_name!r} "
            f"({list(model_parts)})")


def load_fetch(key: Mapping[str, Any]) -> tuple:
    """What ``Triangulation`` needs to load an anipose CSV (read in one place).

    Returns:
        ``(calibration_json, params_json, (), load)`` where ``load`` holds the CSV's
        absolute and relative paths, its sha256, the camera names in calibration
        order, the time-base recording's frame count and rate, and the model's
        body parts.
    """
    from element_pose.schemas import multicam as mc

    group = (mc.CameraGroup & key).fetch1()
    calibration = (mc.Calibration & group).fetch1("calibration")
    params = (mc.TriangulationParamSet & key).fetch1("params")
    relative = (mc.TriangulationTask & key).fetch1("triangulation_file")
    path = model.roots().find(relative)
    members = mc.CameraGroup.members(key)
    nframes, fps = (model.RecordingInfo & members[0][1]).fetch1("nframes", "fps")
    load = (str(path), relative, _file_sha256(path), tuple(c for c, _ in members),
            int(nframes), float(fps), tuple(model.Model.body_parts(key)))
    return (json.dumps(calibration, sort_keys=True), json.dumps(params, sort_keys=True), (),
            load)


def load_compute(calibration_json: str, params_json: str, load: tuple) -> tuple:
    """Read the anipose CSV into what ``Triangulation.make_insert`` stores.

    Raises:
        element_pose.io.anipose.AniposeFormatError: the CSV is not a valid anipose file.
        TriangulationError: more frames than the recordings, unknown body parts, or a
            parameter set that asks for a 3D filter.
    """
    from element_pose.processing.threed import joint_angles

    start = time.perf_counter()
    path, relative, checksum, cameras, nframes, fps, body_parts = load
    params = json.loads(params_json)
    if params.get("filter_3d"):
        raise TriangulationError(f"{relative}: a loaded anipose CSV is not filtered again; "
                                 "use a parameter set without filter_3d")
    result = read_anipose_3d(path, fps=fps)
    pose = result.pose
    _check_body_parts(pose.keypoints, body_parts, relative, "of this task")
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
