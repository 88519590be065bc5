"""3D poses triangulated from calibrated cameras -> NWB (ndx-pose 0.4), with no database.

What a written file holds::

    /general/devices/<camera>            CalibratedCamera per camera: intrinsic matrix,
                                         rotation (world -> camera), translation,
                                         distortion coefficients
    /acquisition/<camera>_video          external ImageSeries of each view (optional)
    /processing/behavior/Skeletons       the skeleton
    /processing/behavior/PoseEstimation  MultiCameraPoseEstimation: one 3D
                                         PoseEstimationSeries per keypoint (x, y, z in a
                                         length unit NWB Inspector accepts; confidence =
                                         triangulation score) and one PoseEstimation per
                                         camera view (its 2D poses, linking the
                                         CalibratedCamera and the view's video)

The 3D container is named ``PoseEstimation`` so that movement's
``load_poses.from_nwb_file(path)`` reads the 3D poses with its default arguments.
keypoint-moseq's NWB loader wants exactly one ``PoseEstimation`` object and finds one per
camera view here: it does not read these files.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.pose import PoseData
from element_pose.export.nwb import deflate
from element_pose.export.nwb.common import (
    behavior_module,
    get_or_create_skeleton,
    skeleton_edges,
)
from element_pose.export.nwb.layout import (
    DEFAULT_NAME,
    ExpectedContainer,
    open_nwb,
    verify_pose_containers,
)
from element_pose.export.nwb.metadata import (
    COMPRESSION,
    CameraMetadata,
    NWBExportError,
    SessionMetadata,
    SubjectMetadata,
    VideoMetadata,
    check_dandi_metadata,
)
from element_pose.export.nwb.write import (
    add_pose_estimation,
    new_nwbfile,
    pose_series,
)

__all__ = [
    "LENGTH_UNITS",
    "TRIANGULATION_CONFIDENCE",
    "CalibratedCameraMetadata",
    "CameraView",
    "build_nwbfile_3d",
    "nwb_length_unit",
    "views_from_calibration",
    "write_nwb_3d",
]

log = logging.getLogger(__name__)

#: Short length units -> the names NWB Inspector accepts for spatial series.
LENGTH_UNITS = {"m": "meters", "cm": "centimeters", "mm": "millimeters", "um": "micrometers",
                "µm": "micrometers", "meter": "meters", "metre": "meters", "metres": "meters"}
TRIANGULATION_CONFIDENCE = (
    "Triangulation score: the smallest 2D confidence (network likelihood) among the "
    "cameras used to triangulate the point, as anipose computes it (0 to 1; NaN where "
    "the point was not triangulated)"
)
REFERENCE_FRAME_WORLD = (
    "world frame of the camera calibration (the cameras' rotation and translation map "
    "it to each camera's frame)"
)


@dataclasses.dataclass
class CalibratedCameraMetadata:
    """One calibrated camera (OpenCV model: ``x_cam = R x_world + t``).

    Attributes:
        name: Device name (unique within the file).
        intrinsic_matrix: 3x3 camera matrix in pixels.
        rotation_matrix: 3x3 world-to-camera rotation.
        translation_vector: World-to-camera translation, in the 3D poses' unit.
        distortion_coefficients: OpenCV coefficients, when known.
        description: Free text (e.g. fisheye model, reprojection error).
    """

    name: str
    intrinsic_matrix: Any
    rotation_matrix: Any
    translation_vector: Any
    distortion_coefficients: Any = None
    description: str | None = None


@dataclasses.dataclass
class CameraView:
    """One camera's view: the camera, its 2D poses and its video (both optional)."""

    camera: CalibratedCameraMetadata
    pose: PoseData | None = None
    video: VideoMetadata | None = None


def nwb_length_unit(unit: str | None) -> str:
    """``mm`` -> ``millimeters`` and so on; names NWB Inspector knows pass unchanged.

    Raises:
        NWBExportError: no unit, or one that is not a length.
    """
    value = (unit or "").strip()
    if value in LENGTH_UNITS.values():
        return value
    if value.lower() in LENGTH_UNITS:
        return LENGTH_UNITS[value.lower()]
    raise NWBExportError(f"3D unit {unit!r} is not a length unit NWB knows "
                         f"(one of {sorted(set(LENGTH_UNITS.values()))})")


def _calibrated_camera(nwbfile, camera: CalibratedCameraMetadata):
    from ndx_pose import CalibratedCamera

    if camera.name in nwbfile.devices:
        return nwbfile.devices[camera.name]
    kwargs: dict[str, Any] = {
        "name": camera.name,
        "description": camera.description or f"Calibrated camera {camera.name}",
        "intrinsic_matrix": np.asarray(camera.intrinsic_matrix, np.float32).reshape(3, 3),
        "rotation_matrix": np.asarray(camera.rotation_matrix, np.float32).reshape(3, 3),
        "translation_vector": np.asarray(camera.translation_vector, np.float32).reshape(3),
    }
    if camera.distortion_coefficients is not None:
        kwargs["distortion_coefficients"] = np.asarray(camera.distortion_coefficients,
                                                       np.float32).ravel()
    device = CalibratedCamera(**kwargs)
    nwbfile.add_device(device)
    return device


def build_nwbfile_3d(
    pose: PoseData,
    subject: SubjectMetadata | None,
    session: SessionMetadata,
    views: Sequence[CameraView],
    *,
    unit: str = "millimeters",
    name: str = DEFAULT_NAME,
    description: str | None = None,
    reference_frame: str = REFERENCE_FRAME_WORLD,
    require_dandi: bool = True,
    relative_to: str | Path | None = None,
    compression: str | None = COMPRESSION,
):
    """An in-memory ``NWBFile`` with the 3D poses in a ``MultiCameraPoseEstimation``.

    Args:
        pose: Single-individual 3D pose data (``n_space == 3``).
        subject: Subject metadata (required when ``require_dandi``).
        session: Session metadata.
        views: The cameras, in calibration order, with their 2D poses and videos.
        unit: Length unit of the positions (``mm`` is written as ``millimeters``).
        name: Container name; ``PoseEstimation`` is what movement reads by default.
        description: Free text; a default names the cameras and the software.
        reference_frame: What the origin and axes are.
        require_dandi: Check DANDI's metadata requirements first.
        relative_to: Directory external video paths are written relative to.
        compression: HDF5 filter of the arrays (see :func:`~element_pose.export.nwb.write_nwb`).

    Raises:
        MetadataError: listing every missing or invalid field.
        NWBExportError: not 3D, several individuals, no cameras, a non-length unit.
    """
    from ndx_pose import MultiCameraPoseEstimation

    if pose.n_space != 3:
        raise NWBExportError(f"3D export needs x, y, z; the pose data have {pose.n_space} axes")
    if not views:
        raise NWBExportError("3D export needs the calibrated cameras (views=)")
    unit = nwb_length_unit(unit)
    check_dandi_metadata(subject, session, pose, dandi=require_dandi)
    nwbfile = new_nwbfile(subject, session)
    module = behavior_module(nwbfile)
    owner = nwbfile.subject.subject_id if nwbfile.subject is not None else pose.individuals[0]
    skeleton = get_or_create_skeleton(module, f"{owner}_skeleton", list(pose.keypoints),
                                       skeleton_edges(pose), nwbfile.subject)
    series, _ = pose_series(pose, unit=unit, reference_frame=reference_frame,
                            confidence_definition=TRIANGULATION_CONFIDENCE,
                            compression=compression)
    software = pose.source_software or "element-pose"
    cameras = [v.camera.name for v in views]
    if description is None:
        description = (f"3D positions of {len(pose.keypoints)} keypoints triangulated by "
                       f"{software} from the calibrated cameras {cameras}"
                       f"{' (2D model ' + pose.scorer + ')' if pose.scorer else ''}.")
        if pose.provenance:
            steps = ", ".join(str(s.get("step", s)) for s in pose.provenance)
            description += f" Processing steps: {steps}."
    kwargs = {"name": name, "pose_estimation_series": series, "description": description,
              "scorer": pose.scorer or None, "source_software": software,
              "source_software_version": pose.source_software_version or None,
              "skeleton": skeleton}
    container = MultiCameraPoseEstimation(**{k: v for k, v in kwargs.items() if v is not None})
    module.add(container)
    for view in views:
        device = _calibrated_camera(nwbfile, view.camera)
        if view.pose is None:
            continue
        add_pose_estimation(
            nwbfile, view.pose, camera=CameraMetadata(view.camera.name), device=device,
            video=view.video, name=view.camera.name, parent=container,
            relative_to=relative_to, link_timestamps=False, compression=compression,
            description=f"2D poses of camera {view.camera.name} that the 3D poses were "
                        "triangulated from.")
    return nwbfile


def write_nwb_3d(path: str | Path, pose: PoseData, subject: SubjectMetadata | None,
                 session: SessionMetadata, views: Sequence[CameraView], *,
                 overwrite: bool = False, **kwargs: Any) -> Path:
    """Write a new 3D NWB file atomically and read it back (see :func:`build_nwbfile_3d`).

    Raises:
        MetadataError: before anything is written.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
        element_pose.export.nwb.layout.NWBReadBackError: the file does not hold the poses.
    """
    path = Path(path)
    if path.suffix != ".nwb":
        raise NWBExportError(f"NWB file names end in .nwb: {path}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True")
    nwbfile = build_nwbfile_3d(pose, subject, session, views, relative_to=path.parent,
                               **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        with open_nwb(tmp, mode="w") as io:
            deflate.write(io, nwbfile)
        verify_pose_containers(tmp, [ExpectedContainer(
            kwargs.get("name", DEFAULT_NAME), list(pose.keypoints), pose.n_frames, 3,
            neurodata_type="MultiCameraPoseEstimation")])
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    log.info("wrote %s (3D, %d frames, cameras %s)", path, pose.n_frames,
             [v.camera.name for v in views])
    return path


def views_from_calibration(cameras: Sequence[Mapping[str, Any]]) -> list[CameraView]:
    """Views (cameras only) from calibration rows with ``camera_name``,
    ``intrinsic_matrix``, ``rotation`` (Rodrigues), ``translation`` and ``distortion``."""
    from element_pose.processing.threed.geometry import rodrigues_to_matrix

    return [CameraView(CalibratedCameraMetadata(
        name=str(c["camera_name"]),
        intrinsic_matrix=c["intrinsic_matrix"],
        rotation_matrix=rodrigues_to_matrix(c["rotation"]),
        translation_vector=c["translation"],
        distortion_coefficients=c.get("distortion"),
        description=(f"{'fisheye' if c.get('fisheye') else 'pinhole'} camera "
                     f"{c['camera_name']}, calibrated with OpenCV/aniposelib"),
    )) for c in cameras]
