"""DataJoint schema ``multicam``: multi-camera calibration, triangulation and 3D poses.

Activate after :mod:`element_pose.schemas.model`.  The tables are thin: they fetch, call the
DB-free core :mod:`element_pose.processing.threed` (anipose-style calibration,
triangulation, 3D filtering, joint angles) and insert.  Calibration and
triangulation run outside the transaction (tripartite make); a failing job leaves an
error in the table's job list, with a message that names the problem, and no row.

Tables:

* :class:`CalibrationParamSet` -- board and calibration options, unique by content.
* :class:`CalibrationTask` -- synchronised calibration videos of a session's cameras.
* :class:`Calibration` -- calibrated cameras (and an anipose ``calibration.toml``).
* :class:`CameraGroup` -- which recording of a session each calibrated camera made.
* :class:`TriangulationParamSet` -- triangulation options, an optional ``filter_3d``
  sub-dict and anipose ``angles``, unique by content.
* :class:`TriangulationTask` -- a camera group, a model and a parameter set.
* :class:`Triangulation` -- 3D poses as float32 ``<poseblock@pose>`` arrays per individual
  and body part, with per-frame reprojection error and camera counts.

Linking module contract (passed to :func:`activate`): ``Session``, the table a
recording belongs to (the model schema's).  Root directories are the model schema's.
A camera group and its calibration belong to the same session.

Size: over 600 lines because it is one DataJoint schema: its tables are declared on one
``schema`` object and resolve their foreign keys in this module's namespace, so they stay
together (the anipose import/export methods included: they insert into several of the
tables); the computation lives in :mod:`element_pose.processing.threed`, the anipose
steps that need no table in :mod:`element_pose.schemas.multicam_anipose` and the shared
helpers in :mod:`element_pose.core.util`.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import json
import logging
import re
import shutil
import time
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from element_pose.core.params import DuplicateParamsError
from element_pose.core.pose import PoseData
from element_pose.core.util import plain_json, session_folder, software_versions
from element_pose.db import arrays
from element_pose.db.config import import_datajoint
from element_pose.io.anipose import anipose_3d_keypoints
from element_pose.processing.threed import (
    CalibrationResult,
    TriangulationError,
    calibrate,
    filter_3d,
    joint_angles,
    read_anipose_calibration,
    triangulate,
    write_anipose_calibration,
)
from element_pose.processing.tidy import to_tidy
from element_pose.schemas import model
from element_pose.schemas import multicam_anipose as anipose
from element_pose.schemas.paramsets import PARAMSET_DEFINITION, insert_params

__all__ = [
    "Calibration",
    "CalibrationParamSet",
    "CalibrationTask",
    "CameraGroup",
    "DuplicateParamsError",
    "Triangulation",
    "TriangulationParamSet",
    "TriangulationTask",
    "activate",
    "validate_triangulation_paramset",
]

dj = import_datajoint()
log = logging.getLogger(__name__)

schema = dj.Schema()

CALIBRATION_FILE = "calibration.toml"
#: packages whose versions a Triangulation row records (name -> distribution or module)
_SOFTWARE = {"numpy": "numpy", "opencv": "cv2", "aniposelib": "aniposelib"}


def activate(
    multicam_schema_name: str,
    *,
    create_schema: bool = True,
    create_tables: bool = True,
    linking_module: ModuleType | str | None = None,
) -> None:
    """Activate the ``multicam`` schema (after :func:`element_pose.schemas.model.activate`).

    Args:
        multicam_schema_name: Database schema name.
        create_schema: Create the schema if missing.
        create_tables: Create tables if missing.
        linking_module: Module (or its name) providing ``Session``; default: the
            model schema's linking module.

    Raises:
        RuntimeError: the model schema is not activated.
        AttributeError: the linking module lacks ``Session``.
    """
    if isinstance(linking_module, str):
        linking_module = importlib.import_module(linking_module)
    if linking_module is not None and not inspect.ismodule(linking_module):
        raise TypeError("linking_module must be a module (or a module name)")
    if not model.schema.is_activated():
        raise RuntimeError("activate element_pose.schemas.model before "
                           "element_pose.schemas.multicam")
    linking_module = linking_module or getattr(model, "_linking_module", None)
    if linking_module is None or not hasattr(linking_module, "Session"):
        raise AttributeError("the multicam linking module must provide Session")
    schema.activate(
        multicam_schema_name,
        create_schema=create_schema,
        create_tables=create_tables,
        add_objects=linking_module.__dict__,
    )


# ================================================================ helpers
def _session_attributes() -> list[str]:
    return [k for k in CalibrationTask.primary_key if k != "calibration_id"]


def _session_key(key: Mapping[str, Any]) -> dict[str, Any]:
    attrs = _session_attributes()
    missing = [k for k in attrs if k not in key]
    if missing:
        raise ValueError(f"session key lacks {missing}; a session is keyed by {attrs}")
    return {k: key[k] for k in attrs}


def _session_folder(key: Mapping[str, Any]) -> str:
    return session_folder(_session_key(key))


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _load(value: Any) -> np.ndarray:
    return np.asarray(value.load() if hasattr(value, "load") else value)


def _camera_name(name: Any) -> str:
    text = str(name)
    if not text or len(text) > 64:
        raise ValueError(f"camera names must have 1 to 64 characters, got {name!r}")
    return text


# ============================================================ calibration
@schema
class CalibrationParamSet(dj.Lookup):
    """Calibration board and options (see ``validate_calibration_params``), unique by content."""

    definition = """
    calibration_paramset_id: int16
    ---
    """ + PARAMSET_DEFINITION

    @classmethod
    def insert_new_params(cls, paramset_desc: str, params: Mapping[str, Any],
                          paramset_id: int | None = None) -> int:
        """Validate, normalise (defaults filled in) and insert; return the id.

        The same parameters again (whatever their key order or omitted defaults)
        return the existing id.

        Raises:
            element_pose.processing.threed.ThreeDParamsError: invalid parameters.
            DuplicateParamsError: the parameters exist under another id (named).
        """
        from element_pose.processing.threed.board import CalibrationParams

        return insert_params(cls, "calibration_paramset_id", paramset_desc, params,
                             paramset_id, model=CalibrationParams)


@schema
class CalibrationTask(dj.Manual):
    """Synchronised calibration-board videos of a session's cameras."""

    definition = """
    -> Session
    calibration_id: int32
    ---
    -> CalibrationParamSet
    calibration_description = '': varchar(1000)
    """

    class Video(dj.Part):
        """A calibration video of one camera; the n-th videos of all cameras are simultaneous."""

        definition = """
        -> master
        camera_name: varchar(64)
        file_id: int16
        ---
        camera_order: int16          # the first camera defines the initial world frame
        file_path: varchar(1000)     # relative to a root data directory
        """

    @classmethod
    def insert_calibration_task(
        cls,
        session_key: Mapping[str, Any],
        calibration_id: int,
        videos: Mapping[str, str | Path | Sequence[str | Path]],
        calibration_paramset_id: int,
        description: str = "",
        skip_duplicates: bool = False,
    ) -> dict[str, Any]:
        """Insert a task from ``{camera name: video or [videos]}`` (absolute or root-relative).

        Raises:
            ValueError: fewer than two cameras, or cameras with different numbers of videos.
            element_pose.core.paths.PathError: a video is missing or outside the roots.
        """
        if len(videos) < 2:
            raise ValueError(f"calibration needs at least two cameras, got {list(videos)}")
        lists = {
            _camera_name(name): [v] if isinstance(v, str | Path) else list(v)
            for name, v in videos.items()
        }
        counts = {name: len(v) for name, v in lists.items()}
        if len(set(counts.values())) != 1 or 0 in counts.values():
            raise ValueError(
                f"every camera needs the same (non-zero) number of calibration videos: {counts}"
            )
        if not (CalibrationParamSet & {"calibration_paramset_id": calibration_paramset_id}):
            raise ValueError(f"no CalibrationParamSet {calibration_paramset_id}")
        r = model.roots()
        rows = [
            {"camera_name": name, "file_id": i, "camera_order": order,
             "file_path": r.relative(r.find(path))}
            for order, (name, paths) in enumerate(lists.items())
            for i, path in enumerate(paths)
        ]
        key = {**_session_key(session_key), "calibration_id": int(calibration_id)}
        with cls.connection.transaction:
            cls.insert1({**key, "calibration_paramset_id": calibration_paramset_id,
                         "calibration_description": description},
                        skip_duplicates=skip_duplicates)
            cls.Video.insert(({**key, **row} for row in rows), skip_duplicates=skip_duplicates)
        return key

    @classmethod
    def video_paths(cls, key: Mapping[str, Any]) -> dict[str, list[Path]]:
        """``{camera name: [absolute video paths]}`` in camera order."""
        rows = (cls.Video & key).to_dicts(order_by=["camera_order", "file_id"])
        r = model.roots()
        out: dict[str, list[Path]] = {}
        for row in rows:
            out.setdefault(row["camera_name"], []).append(r.find(row["file_path"]))
        return out

    @classmethod
    def output_dir(cls, key: Mapping[str, Any]) -> Path:
        """``<processed>/<session>/multicam/calibration<id>``: where the TOML is written."""
        return (model.roots().processed_dir() / _session_folder(key) / "multicam"
                / f"calibration{int(key['calibration_id'])}")


@schema
class Calibration(dj.Computed):
    """Calibrated cameras of a calibration task (aniposelib bundle adjustment)."""

    definition = """
    -> CalibrationTask
    ---
    calibration: json                    # CalibrationResult.to_dict(): cameras, errors, params
    reprojection_error = null: float64   # mean px, board corners seen by >= 2 cameras
    reprojection_error_median = null: float64
    n_points: int32                      # board corners behind the errors
    units: varchar(16)                   # unit of translations and of triangulated points
    calibration_file: varchar(1000)      # anipose calibration.toml, relative to processed root
    calibration_duration: float64        # seconds
    """

    class Camera(dj.Part):
        """One calibrated camera (OpenCV model, anipose convention: x_cam = R x + t)."""

        definition = """
        -> master
        camera_name: varchar(64)
        ---
        camera_order: int16
        image_width: int32
        image_height: int32
        intrinsic_matrix: json       # 3x3, pixels
        distortion: json             # OpenCV coefficients (k1 k2 p1 p2 k3; fisheye k1..k4)
        rotation: json               # Rodrigues vector, world to camera
        translation: json            # world to camera, in units
        fisheye: bool
        camera_reprojection_error = null: float64  # mean px
        n_detections: int32          # usable board views
        """

    def make_fetch(self, key: dict):
        """Videos, parameters and output path (small and deterministic)."""
        params = (CalibrationParamSet * CalibrationTask & key).fetch1("params")
        videos = CalibrationTask.video_paths(key)
        if not videos:
            raise ValueError(f"CalibrationTask {key} has no videos (an imported calibration? "
                             "import it again with Calibration.insert_from_anipose)")
        return (
            json.dumps(params, sort_keys=True),
            tuple((name, tuple(str(p) for p in paths)) for name, paths in videos.items()),
            str(CalibrationTask.output_dir(key) / CALIBRATION_FILE),
        )

    def make_compute(self, key, params_json, videos, toml_path):
        """Detect the board and bundle-adjust (outside the transaction); write the TOML."""
        start = time.perf_counter()
        result = calibrate({name: list(paths) for name, paths in videos},
                           json.loads(params_json))
        path = result.write_toml(toml_path)
        log.info("calibration %s: mean reprojection error %.3f px; wrote %s", key,
                 result.reprojection_error, path)
        return result.to_dict(), str(path), time.perf_counter() - start

    def make_insert(self, key, result: dict, toml_path: str, duration: float):
        """Insert the calibration and one row per camera."""
        self._insert_result(key, result, toml_path, duration)

    @classmethod
    def _insert_result(cls, key, result: dict, toml_path: str, duration: float,
                       allow_direct_insert: bool = False) -> None:
        self = cls()
        self.insert1({
            **key,
            "calibration": result,
            "reprojection_error": result["reprojection_error"],
            "reprojection_error_median": result["reprojection_error_median"],
            "n_points": int(result["n_points"]),
            "units": result["units"],
            "calibration_file": model.roots().relative_to_processed(toml_path),
            "calibration_duration": float(duration),
        }, allow_direct_insert=allow_direct_insert)
        self.Camera.insert([
            {
                **key,
                "camera_name": cam["name"],
                "camera_order": order,
                "image_width": int(cam["size"][0]),
                "image_height": int(cam["size"][1]),
                "intrinsic_matrix": cam["matrix"],
                "distortion": cam["distortion"],
                "rotation": cam["rotation"],
                "translation": cam["translation"],
                "fisheye": bool(cam["fisheye"]),
                "camera_reprojection_error": result["camera_errors"].get(cam["name"]),
                "n_detections": int(result["n_detections"].get(cam["name"], 0)),
            }
            for order, cam in enumerate(result["cameras"])
        ], allow_direct_insert=allow_direct_insert)

    @classmethod
    def fetch_calibration(cls, key: Mapping[str, Any]) -> CalibrationResult:
        """The calibration of exactly one key as a :class:`CalibrationResult`."""
        return CalibrationResult.from_dict((cls & key).fetch1("calibration"))

    @classmethod
    def calibration_path(cls, key: Mapping[str, Any]) -> Path:
        """Absolute path of the anipose ``calibration.toml``."""
        return model.roots().processed((cls & key).fetch1("calibration_file"))

    @classmethod
    def insert_from_anipose(cls, session_key: Mapping[str, Any], calibration_id: int,
                            toml_path: str | Path, calibration_paramset_id: int | None = None,
                            description: str = "", units: str | None = None) -> dict[str, Any]:
        """Store an anipose ``calibration.toml`` as a calibration of a session.

        Inserts a :class:`CalibrationTask` without videos and its :class:`Calibration`
        (usable by :class:`CameraGroup` like a computed one); the file is copied to
        :meth:`CalibrationTask.output_dir` and its source path (relative to a root) kept
        in the ``calibration`` JSON under ``source``.

        Args:
            session_key: The session.
            calibration_id: The new calibration's id.
            toml_path: The file, absolute or relative to a root.
            calibration_paramset_id: The board; default: the file's ``[metadata]
                params`` (files written here), an error for files without them.
            description: Task description; default names the file.
            units: Length unit of the translations; default: the file's, else ``mm``.

        Returns:
            The calibration key.

        Raises:
            element_pose.io.anipose.AniposeFormatError: the file is not an anipose
                calibration (named).
            element_pose.core.paths.PathError: the file is missing or outside the roots.
            ValueError: the task exists, or no board is known.
        """
        r = model.roots()
        source = r.find(toml_path)
        relative = r.relative(source)
        result = read_anipose_calibration(source)
        if units is not None:
            result.units = str(units)
        key = {**_session_key(session_key), "calibration_id": int(calibration_id)}
        if CalibrationTask & key:
            raise ValueError(
                f"CalibrationTask {key} exists already; choose another calibration_id")
        paramset_id = cls._anipose_paramset(result, source, relative, calibration_paramset_id)
        stored = result.to_dict()
        stored["source"] = {"software": anipose.SOURCE, "file": relative}
        cls._store_anipose(key, source, stored, {
            "calibration_paramset_id": paramset_id,
            "calibration_description": description or f"anipose calibration {relative}"})
        log.info("imported anipose calibration %s (%d cameras) as %s", relative,
                 len(result.cameras), key)
        return key

    @staticmethod
    def _anipose_paramset(result: CalibrationResult, source: Path, relative: str,
                          calibration_paramset_id: int | None) -> int:
        """The board of an imported calibration: the one given, or the file's params."""
        if calibration_paramset_id is None:
            if result.params is None:
                raise ValueError(
                    f"{source} does not say which board made it: pass calibration_paramset_id "
                    "(a CalibrationParamSet describing the board of anipose's config.toml)")
            return CalibrationParamSet.insert_new_params(f"from {relative}"[:255], result.params)
        if not (CalibrationParamSet & {"calibration_paramset_id": calibration_paramset_id}):
            raise ValueError(f"no CalibrationParamSet {calibration_paramset_id}")
        return calibration_paramset_id

    @classmethod
    def _store_anipose(cls, key: dict[str, Any], source: Path, stored: dict,
                       task: dict[str, Any]) -> None:
        """Copy the file to the task's folder, insert the task and the calibration."""
        target = CalibrationTask.output_dir(key) / CALIBRATION_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        try:
            shutil.copyfile(source, tmp)
            tmp.replace(target)
            with CalibrationTask.connection.transaction:
                CalibrationTask.insert1({**key, **task})
                cls._insert_result(key, stored, str(target), 0.0, allow_direct_insert=True)
        except BaseException:
            tmp.unlink(missing_ok=True)
            target.unlink(missing_ok=True)
            raise

    @classmethod
    def to_anipose(cls, key: Mapping[str, Any], path: str | Path) -> Path:
        """Write one calibration as an anipose ``calibration.toml`` (aniposelib reads it)."""
        return write_anipose_calibration(cls.fetch_calibration(key), path)


# ========================================================== camera groups
@schema
class CameraGroup(dj.Manual):
    """Synchronised recordings of a session by calibrated cameras."""

    definition = """
    -> Session
    camera_group_id: int32
    ---
    -> Calibration
    camera_group_description = '': varchar(1000)
    """

    class Member(dj.Part):
        """The recording a calibrated camera made (cameras are matched by name)."""

        definition = """
        -> master
        camera_name: varchar(64)
        ---
        -> model.VideoRecording
        """

    @classmethod
    def insert_camera_group(
        cls,
        session_key: Mapping[str, Any],
        camera_group_id: int,
        calibration_id: int,
        members: Mapping[str, int | Mapping[str, Any]],
        description: str = "",
        skip_duplicates: bool = False,
    ) -> dict[str, Any]:
        """Insert a group from ``{camera name: recording_id (or recording key)}``.

        Raises:
            ValueError: the calibration is not computed, a camera is not in it, fewer
                than two members, a recording is missing or used twice.
        """
        session = _session_key(session_key)
        calib_key = {**session, "calibration_id": int(calibration_id)}
        if not (Calibration & calib_key):
            raise ValueError(
                f"calibration {calib_key} is not computed (populate Calibration first)"
            )
        calibrated = list((Calibration.Camera & calib_key).to_arrays(
            "camera_name", order_by="camera_order"))
        names = [_camera_name(n) for n in members]
        unknown = [n for n in names if n not in calibrated]
        if unknown:
            raise ValueError(
                f"cameras {unknown} are not in calibration {calibration_id} "
                f"(its cameras: {calibrated})"
            )
        if len(names) < 2:
            raise ValueError(f"a camera group needs at least two cameras, got {names}")
        recording_ids = {}
        for name, member in members.items():
            rid = member["recording_id"] if isinstance(member, Mapping) else member
            if isinstance(member, Mapping):
                other = {k: v for k, v in member.items() if k in session and v != session[k]}
                if other:
                    raise ValueError(
                        f"camera {name!r}: recording {dict(member)} is not of session {session}"
                    )
            rec_key = {**session, "recording_id": int(rid)}
            if not (model.VideoRecording & rec_key):
                raise ValueError(f"camera {name!r}: no VideoRecording {rec_key}")
            recording_ids[str(name)] = int(rid)
        if len(set(recording_ids.values())) != len(recording_ids):
            raise ValueError(f"a recording is used by two cameras: {recording_ids}")
        key = {**session, "camera_group_id": int(camera_group_id)}
        with cls.connection.transaction:
            cls.insert1({**key, "calibration_id": int(calibration_id),
                         "camera_group_description": description},
                        skip_duplicates=skip_duplicates)
            cls.Member.insert(
                ({**key, "camera_name": n, "recording_id": rid}
                 for n, rid in recording_ids.items()),
                skip_duplicates=skip_duplicates,
            )
        return key

    @classmethod
    def members(cls, key: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """``[(camera name, recording key)]`` of one group, in calibration order."""
        group = (cls & key).fetch1()
        order = {
            n: i for i, n in enumerate((Calibration.Camera & group).to_arrays(
                "camera_name", order_by="camera_order"))
        }
        session = _session_key(group)
        rows = (cls.Member & {k: group[k] for k in cls.primary_key}).to_dicts()
        rows.sort(key=lambda r: (order.get(r["camera_name"], len(order)), r["camera_name"]))
        return [(r["camera_name"], {**session, "recording_id": r["recording_id"]}) for r in rows]


# ========================================================== triangulation
def validate_triangulation_paramset(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a triangulation parameter set and return a normalised copy.

    The set holds the parameters of
    :func:`~element_pose.processing.threed.validate_triangulation_params` plus
    ``filter_3d`` (``null``/``false``: no filter; ``true`` or a dict: the filter of
    :func:`~element_pose.processing.threed.filter_3d` with these options) and
    ``angles`` (anipose ``{name: [a, b, c]}``).

    Raises:
        element_pose.processing.threed.ThreeDParamsError: naming the offending key.
    """
    from element_pose.processing.threed.triangulation import TriangulationSetParams

    return TriangulationSetParams.for_storage(params)


@schema
class TriangulationParamSet(dj.Lookup):
    """Triangulation, optional 3D filter and joint angles, unique by content."""

    definition = """
    triangulation_paramset_id: int16
    ---
    """ + PARAMSET_DEFINITION

    @classmethod
    def insert_new_params(cls, paramset_desc: str, params: Mapping[str, Any] | None = None,
                          paramset_id: int | None = None) -> int:
        """Validate, normalise and insert (see :func:`validate_triangulation_paramset`).

        Raises:
            element_pose.processing.threed.ThreeDParamsError: invalid parameters.
            DuplicateParamsError: the parameters exist under another id (named).
        """
        from element_pose.processing.threed.triangulation import TriangulationSetParams

        return insert_params(cls, "triangulation_paramset_id", paramset_desc, params,
                             paramset_id, model=TriangulationSetParams)


@schema
class TriangulationTask(dj.Manual):
    """Triangulate a camera group's estimations by one model with one parameter set."""

    definition = """
    -> CameraGroup
    -> model.Model
    -> TriangulationParamSet
    ---
    task_mode = 'trigger': enum('load', 'trigger')  # triangulate here, or load a 3D file
    triangulation_file = '': varchar(1000)  # load: anipose 3D CSV, relative to a root
    """

    @classmethod
    def insert_triangulation_task(cls, camera_group_key: Mapping[str, Any], model_name: str,
                                  triangulation_paramset_id: int, task_mode: str = "trigger",
                                  triangulation_file: str | Path | None = None,
                                  skip_duplicates: bool = False) -> dict[str, Any]:
        """Insert a task: triangulate here (``trigger``) or ``load`` an anipose 3D CSV.

        A load task needs the recordings' ``RecordingInfo`` (the time base), not their
        2D estimations; the CSV's body parts must be the model's, and the parameter
        set must have no ``filter_3d`` (the file is stored as anipose wrote it).

        Raises:
            ValueError: unknown group or parameter set, or a bad mode/file combination.
            element_pose.io.anipose.AniposeFormatError: the CSV is not anipose's (named).
            element_pose.core.paths.PathError: the CSV is missing or outside the roots.
            TriangulationError: the CSV has body parts the model lacks.
        """
        if not cls.has_load_mode():
            raise RuntimeError(
                "table multicam.TriangulationTask lacks task_mode and triangulation_file "
                "(made by an older element-pose): run multicam.TriangulationTask.alter() once")
        anipose.check_task_mode(task_mode)
        missing = [k for k in CameraGroup.primary_key if k not in camera_group_key]
        if missing:
            raise ValueError(f"camera group key {dict(camera_group_key)} lacks {missing}")
        group = {k: camera_group_key[k] for k in CameraGroup.primary_key}
        if not (CameraGroup & group):
            raise ValueError(f"no CameraGroup {group}")
        params_key = {"triangulation_paramset_id": int(triangulation_paramset_id)}
        if not (TriangulationParamSet & params_key):
            raise ValueError(f"no TriangulationParamSet {triangulation_paramset_id}")
        task = {**group, "model_name": model_name, **params_key}
        anipose.check_task_file(task_mode, triangulation_file)
        relative = ""
        if task_mode == "load":
            relative = cls._check_load_file(triangulation_file, model_name, params_key)
        cls.insert1({**task, "task_mode": task_mode, "triangulation_file": relative},
                    skip_duplicates=skip_duplicates)
        return task

    @staticmethod
    def _check_load_file(triangulation_file: str | Path, model_name: str,
                         params_key: dict[str, int]) -> str:
        """Check a load task's anipose CSV (its header line) and parameter set; the
        CSV's path relative to its root."""
        r = model.roots()
        path = r.find(triangulation_file)
        relative = r.relative(path)
        keypoints = anipose_3d_keypoints(path)  # the header line: the values load later
        if (TriangulationParamSet & params_key).fetch1("params").get("filter_3d"):
            raise ValueError(
                f"TriangulationParamSet {params_key['triangulation_paramset_id']} has a "
                "filter_3d; a loaded anipose CSV is stored as anipose wrote it: use a "
                "parameter set without one")
        anipose.check_body_parts(keypoints, model.Model.body_parts({"model_name": model_name}),
                                 path, model_name)
        return relative

    @classmethod
    def has_load_mode(cls) -> bool:
        """Whether the database table has ``task_mode`` (tables made before it lack it)."""
        return "task_mode" in cls.heading.names


@schema
class Triangulation(dj.Computed):
    """3D poses of a camera group: float32 arrays per individual and body part.

    ``make_fetch`` reads everything: the calibration, the parameters and each member
    estimation (its ``output_checksum`` and 2D poses); ``make_compute`` works on that
    alone (outside the transaction): it checks that the cameras agree in frames, rate,
    individuals and body parts, and triangulates (then filters, when the parameter set
    asks for it).  DataJoint fetches again before the insert and compares, so a
    re-ingested estimation fails the job.
    """

    definition = """
    -> TriangulationTask
    ---
    nframes: int64
    units: varchar(16)                   # the calibration's length unit
    cameras: json                        # camera names in calibration order; the first
                                         # camera's recording gives the time base
    summary: json                        # per body part: fraction triangulated, errors
    transform = null: json               # axes/reference_point: {rotation, origin}
    provenance: json                     # processing steps of the 3D poses
    input_checksums: json                # output_checksum per camera; load: CSV sha256
    software: json                       # versions used
    triangulation_duration: float64      # seconds
    """

    class BodyPart3D(dj.Part):
        """x, y, z (calibration units), score and diagnostics for every frame."""

        definition = """
        -> master
        individual: varchar(64)
        -> model.Model.BodyPart
        ---
        x: <poseblock@pose>             # float32 (nframes,)
        y: <poseblock@pose>             # float32 (nframes,)
        z: <poseblock@pose>             # float32 (nframes,)
        score: <poseblock@pose>         # float32: smallest 2D confidence used; 0 = interpolated
        reprojection_error: <poseblock@pose>  # float32 mean pixels over the cameras used
        n_cameras: <poseblock@pose>     # int16 cameras used
        """

    @property
    def key_source(self):
        """Trigger tasks whose every member recording has a PoseEstimation with the
        task's model; load tasks whose every member recording has its RecordingInfo."""
        if not TriangulationTask.has_load_mode():  # a table made by an older element-pose
            members = TriangulationTask.proj() * CameraGroup.Member
            return TriangulationTask - (members - model.PoseEstimation).proj()
        members = (TriangulationTask & "task_mode = 'trigger'").proj() * CameraGroup.Member
        missing = members - model.PoseEstimation
        loads = (TriangulationTask & "task_mode = 'load'").proj() * CameraGroup.Member
        no_info = loads - model.RecordingInfo
        return TriangulationTask - missing.proj() - no_info.proj()

    # ---- tripartite make: triangulation runs outside any transaction
    def make_fetch(self, key: dict):
        """Everything the triangulation needs, read in one place (deterministic).

        Returns the calibration and parameters (as JSON text) and, per camera, its
        estimation key, ``output_checksum``, recording geometry, the estimated
        ``(individual, body part)`` pairs and the 2D poses of the model's body parts.
        """
        if TriangulationTask.has_load_mode() and (
                TriangulationTask & key).fetch1("task_mode") == "load":
            return self._load_fetch(key)
        group = (CameraGroup & key).fetch1()
        calibration = (Calibration & group).fetch1("calibration")
        params = (TriangulationParamSet & key).fetch1("params")
        members = []
        for camera, rec_key in CameraGroup.members(key):
            est_key = {**rec_key, "model_name": key["model_name"]}
            checksum = (model.PoseEstimation & est_key).fetch1("output_checksum")
            nframes, fps = (model.RecordingInfo & est_key).fetch1("nframes", "fps")
            rows = (model.PoseEstimation.BodyPartPosition & est_key).proj().to_dicts()
            pairs = tuple(sorted((r["individual"], r["body_part"]) for r in rows))
            pose = model.PoseEstimation.fetch_pose(est_key)
            members.append(_Member(camera, tuple(sorted(est_key.items())), checksum,
                                   int(est_key["recording_id"]), int(nframes), float(fps),
                                   pairs, _Packed.of(pose.position),
                                   _Packed.of(pose.confidence),
                                   tuple(pose.keypoints), tuple(pose.individuals), pose.fps,
                                   None if pose.timestamps is None
                                   else _Packed.of(pose.timestamps), tuple(pose.skeleton)))
        return (json.dumps(calibration, sort_keys=True), json.dumps(params, sort_keys=True),
                tuple(members))

    @staticmethod
    def _load_fetch(key: Mapping[str, Any]) -> tuple:
        """What a load task needs to read its anipose CSV (read in one place).

        Returns:
            ``(calibration_json, params_json, (), load)`` where ``load`` holds the CSV's
            absolute and relative paths, its sha256, the camera names in calibration
            order, the time-base recording's frame count and rate, and the model's
            body parts.
        """
        group = (CameraGroup & key).fetch1()
        calibration = (Calibration & group).fetch1("calibration")
        params = (TriangulationParamSet & key).fetch1("params")
        relative = (TriangulationTask & key).fetch1("triangulation_file")
        path = model.roots().find(relative)
        members = CameraGroup.members(key)
        nframes, fps = (model.RecordingInfo & members[0][1]).fetch1("nframes", "fps")
        load = (str(path), relative, anipose.file_sha256(path), tuple(c for c, _ in members),
                int(nframes), float(fps), tuple(model.Model.body_parts(key)))
        return (json.dumps(calibration, sort_keys=True), json.dumps(params, sort_keys=True),
                (), load)

    def make_compute(self, key, calibration_json, params_json, members, load=None):
        """Read each camera's 2D poses, check they agree, triangulate, filter.

        A load task (``load`` given) reads its anipose 3D CSV instead.
        """
        if load is not None:
            return anipose.load_compute(calibration_json, params_json, load)
        start = time.perf_counter()
        params = json.loads(params_json)
        poses, present = _member_poses(members)
        tri_params = {k: v for k, v in params.items() if k not in ("filter_3d", "angles")}
        result = triangulate(poses, json.loads(calibration_json), tri_params)
        pose3d = result.pose
        summary = result.summary()
        if params.get("filter_3d") is not None:
            pose3d = filter_3d(pose3d, params["filter_3d"])
            step = pose3d.provenance[-1]
            summary["filter_3d"] = {k: step[k] for k in
                                    ("n_removed_score", "n_removed_offset", "n_interpolated")}
        if params.get("angles"):
            joint_angles(pose3d, params["angles"])  # fail now on unknown body parts
        checksums = {m.camera: m.checksum for m in members}
        return (pose3d, result.reprojection_error, result.n_cameras, sorted(present),
                plain_json(summary), plain_json(result.transform),
                json.loads(calibration_json).get("units") or "mm", checksums,
                time.perf_counter() - start)

    def make_insert(self, key, pose3d: PoseData, reprojection_error, n_cameras, present,
                    summary, transform, units, checksums, duration, cameras=None):
        """Insert the master row and one part row per individual and body part."""
        self.insert1({
            **key,
            "nframes": pose3d.n_frames,
            "units": units,
            "cameras": list(checksums) if cameras is None else list(cameras),
            "summary": summary,
            "transform": transform,
            "provenance": plain_json(pose3d.provenance),
            "input_checksums": checksums,
            "software": software_versions(_SOFTWARE),
            "triangulation_duration": float(duration),
        })
        i_pos = {n: i for i, n in enumerate(pose3d.individuals)}
        k_pos = {n: k for k, n in enumerate(pose3d.keypoints)}
        rows = []
        for individual, body_part in present:
            i, k = i_pos[individual], k_pos[body_part]
            xyz = pose3d.position[:, i, k]
            rows.append({
                **key,
                "individual": individual,
                "body_part": body_part,
                "x": np.ascontiguousarray(xyz[:, 0], dtype=np.float32),
                "y": np.ascontiguousarray(xyz[:, 1], dtype=np.float32),
                "z": np.ascontiguousarray(xyz[:, 2], dtype=np.float32),
                "score": np.ascontiguousarray(pose3d.confidence[:, i, k], dtype=np.float32),
                "reprojection_error": np.ascontiguousarray(reprojection_error[:, i, k],
                                                           dtype=np.float32),
                "n_cameras": np.ascontiguousarray(n_cameras[:, i, k], dtype=np.int16),
            })
        self.BodyPart3D.insert(arrays.pack_rows(
            self.BodyPart3D, rows, ("x", "y", "z", "score", "reprojection_error", "n_cameras"),
            key))

    # ---- reading back
    @classmethod
    def _rows(cls, key: Mapping[str, Any]) -> tuple[dict, dict, list[dict]]:
        master = (cls & key).fetch1()
        pk = {k: master[k] for k in cls.primary_key}
        return master, pk, (cls.BodyPart3D & pk).to_dicts()

    @classmethod
    def reference_recording(cls, key: Mapping[str, Any]) -> dict[str, Any]:
        """Key of the recording whose time base the 3D poses use (first camera's)."""
        master = (cls & key).fetch1()
        camera = master["cameras"][0]
        rid = (CameraGroup.Member & {k: master[k] for k in CameraGroup.primary_key}
               & {"camera_name": camera}).fetch1("recording_id")
        return {**_session_key(master), "recording_id": rid}

    @classmethod
    def fetch_pose3d(cls, key: Mapping[str, Any], body_parts: Sequence[str] | None = None,
                     individuals: Sequence[str] | None = None) -> PoseData:
        """The 3D poses of exactly one key, on the first camera's recording time base.

        Raises:
            datajoint.DataJointError: when ``key`` does not select exactly one row.
            ValueError: unknown body parts or individuals.
        """
        master, pk, rows = cls._rows(key)
        present_parts = {r["body_part"] for r in rows}
        keypoints = (list(body_parts) if body_parts is not None
                     else [b for b in model.Model.body_parts(pk) if b in present_parts])
        present_individuals = sorted({r["individual"] for r in rows}, key=_natural_key)
        individual_names = (list(individuals) if individuals is not None
                            else present_individuals)
        unknown = ([b for b in keypoints if b not in present_parts]
                   + [i for i in individual_names if i not in present_individuals])
        if unknown:
            raise ValueError(
                f"{unknown} not in this triangulation (body parts {sorted(present_parts)}, "
                f"individuals {present_individuals})"
            )
        info = (model.RecordingInfo & cls.reference_recording(pk)).fetch1()
        pose = PoseData.empty_like(
            int(master["nframes"]), keypoints, individual_names, n_space=3,
            fps=float(info["fps"]),
            timestamps=(_load(info["timestamps"]) if info["timestamps"] is not None
                        else None),
            skeleton=[e for e in model.Model.skeleton(pk)
                      if e[0] in keypoints and e[1] in keypoints],
            scorer=str(pk["model_name"]),
            source_software="element-pose",
            provenance=list(master["provenance"] or []),
        )
        k_pos = {b: i for i, b in enumerate(keypoints)}
        i_pos = {n: i for i, n in enumerate(individual_names)}
        for row in rows:
            if row["body_part"] in k_pos and row["individual"] in i_pos:
                i, k = i_pos[row["individual"]], k_pos[row["body_part"]]
                for c, coord in enumerate("xyz"):
                    pose.position[:, i, k, c] = _load(row[coord])
                pose.confidence[:, i, k] = _load(row["score"])
        return pose

    @classmethod
    def fetch_diagnostics(cls, key: Mapping[str, Any]) -> dict[str, Any]:
        """Per-frame ``reprojection_error`` (float32) and ``n_cameras`` (int16) arrays.

        Returns:
            ``{"keypoints", "individuals", "reprojection_error", "n_cameras"}``; arrays
            are ``(n_frames, n_individuals, n_keypoints)`` in the order of
            :meth:`fetch_pose3d`.
        """
        pose = cls.fetch_pose3d(key)
        _, _, rows = cls._rows(key)
        shape = pose.confidence.shape
        error = np.full(shape, np.nan, dtype=np.float32)
        n_cams = np.zeros(shape, dtype=np.int16)
        for row in rows:
            i, k = pose.individuals.index(row["individual"]), pose.keypoints.index(row["body_part"])
            error[:, i, k] = _load(row["reprojection_error"])
            n_cams[:, i, k] = _load(row["n_cameras"])
        return {"keypoints": pose.keypoints, "individuals": pose.individuals,
                "reprojection_error": error, "n_cameras": n_cams}

    @classmethod
    def joint_angles(cls, key: Mapping[str, Any],
                     angles: Mapping[str, Sequence[str]] | None = None) -> dict[str, np.ndarray]:
        """Joint angles in degrees, ``{name: (n_frames, n_individuals)}``.

        Args:
            key: Selects exactly one triangulation.
            angles: ``{name: [a, b, c]}``; default: the parameter set's ``angles``.
        """
        if angles is None:
            angles = (TriangulationParamSet & (cls & key).proj()).fetch1("params").get(
                "angles") or {}
        if not angles:
            return {}
        return joint_angles(cls.fetch_pose3d(key), angles)

    @classmethod
    def to_tidy(cls, key: Mapping[str, Any], identifiers: Mapping[str, Any] | None = None,
                individual_layout: str = "column"):
        """Per-frame tidy table with ``<body part> x/y/z/likelihood`` columns.

        See :func:`element_pose.processing.tidy.to_tidy`; ``Movie number`` and
        ``Local frame number`` follow the files of the time-base recording
        (:meth:`reference_recording`), and ``likelihood`` is the 3D score.

        Args:
            key: Selects exactly one triangulation.
            identifiers: Constant columns put first (e.g. subject, session).
            individual_layout: ``"column"`` or ``"prefix"`` for multi-animal data.
        """
        pose = cls.fetch_pose3d(key)
        counts = (model.RecordingInfo.File & cls.reference_recording(key)).to_arrays(
            "nframes", order_by="file_id")
        frame_counts = [int(n) for n in counts] if sum(counts) == pose.n_frames else None
        return to_tidy(pose, frame_counts=frame_counts, identifiers=identifiers,
                       individual_layout=individual_layout)


class _Packed(typing.NamedTuple):
    """An array as base64 text: DataJoint hashes ``make_fetch``'s result twice with
    deepdiff, which walks a numpy array value by value (seconds per camera for a
    10-minute recording) but hashes a string at C speed."""

    data: str
    dtype: str
    shape: tuple[int, ...]

    @classmethod
    def of(cls, array: np.ndarray) -> _Packed:
        array = np.ascontiguousarray(array)
        return cls(base64.b64encode(array.tobytes()).decode("ascii"), array.dtype.str,
                   tuple(array.shape))

    def array(self) -> np.ndarray:
        return np.frombuffer(base64.b64decode(self.data), self.dtype).reshape(self.shape)


class _Member(typing.NamedTuple):
    """One camera of a triangulation, as read by ``Triangulation.make_fetch``."""

    camera: str
    est_items: tuple
    checksum: str
    recording_id: int
    nframes: int
    fps: float
    pairs: tuple[tuple[str, str], ...]
    position: _Packed
    confidence: _Packed
    keypoints: tuple[str, ...]
    individuals: tuple[str, ...]
    pose_fps: float | None
    timestamps: _Packed | None
    skeleton: tuple[tuple[str, str], ...]


def _member_poses(members: Sequence[_Member]
                  ) -> tuple[dict[str, PoseData], set[tuple[str, str]]]:
    """2D poses per camera, checked to agree in frames, rate, individuals and body parts.

    Pure: works on what ``make_fetch`` read.

    Returns:
        ``{camera: PoseData}`` restricted to the shared body parts (model order), and
        the ``(individual, body part)`` pairs that were estimated.

    Raises:
        TriangulationError: frame counts or rates differ (naming cameras and
            recordings), or a camera lacks body parts or individuals another has.
    """
    infos = {m.camera: (m.recording_id, m.nframes, m.fps) for m in members}
    for what, index in (("number of frames", 1), ("frame rate", 2)):
        values = {info[index] for info in infos.values()}
        if max(values) - min(values) > (1e-3 * max(values) if index == 2 else 0):
            listed = ", ".join(f"{c!r} (recording {info[0]}): {info[index]:g}"
                               for c, info in infos.items())
            raise TriangulationError(
                f"cameras disagree on the {what}: {listed}; the recordings of a camera group "
                "must be synchronised (frame i of every camera taken at the same time)"
            )
    pairs = {m.camera: set(m.pairs) for m in members}
    cameras = list(pairs)
    union = set().union(*pairs.values())
    problems = []
    for camera in cameras:
        lacking = union - pairs[camera]
        if not lacking:
            continue
        others = [c for c in cameras if c != camera and pairs[c] & lacking]
        rid = infos[camera][0]
        by_individual: dict[str, list[str]] = {}
        for individual, part in sorted(lacking):
            by_individual.setdefault(individual, []).append(part)
        what = "; ".join(f"individual {i!r}: body parts {parts}"
                         for i, parts in by_individual.items())
        problems.append(f"camera {camera!r} (recording {rid}) has no estimates of {what} "
                        f"that cameras {others} have")
    if problems:
        raise TriangulationError(
            "; ".join(problems) + ". Every camera must track the same body parts and "
            "individuals (check the model outputs of these recordings)"
        )
    model_parts = members[0].keypoints  # the model's body parts, in its order
    body_parts = [b for b in model_parts if any(p == b for _, p in union)]
    individuals = sorted({i for i, _ in union}, key=_natural_key)
    poses = {}
    for m in members:
        full = PoseData(m.position.array(), m.confidence.array(), list(m.keypoints),
                        list(m.individuals), fps=m.pose_fps,
                        timestamps=None if m.timestamps is None else m.timestamps.array(),
                        skeleton=list(m.skeleton))
        poses[m.camera] = full.select(keypoints=body_parts, individuals=individuals)
    return poses, union
