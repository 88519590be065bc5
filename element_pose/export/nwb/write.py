"""Pose data -> NWBFile -> file: subject, devices, skeleton, pose series, videos; append."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.pose import SINGLE_INDIVIDUAL, PoseData
from element_pose.export.nwb import deflate
from element_pose.export.nwb.common import (
    behavior_module,
    external_path,
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
    BEHAVIOR_MODULE,
    COMPRESSION,
    CONFIDENCE_DEFINITION,
    REFERENCE_FRAME_2D,
    REFERENCE_FRAME_3D,
    CameraMetadata,
    MetadataError,
    NWBExportError,
    SessionMetadata,
    SubjectMetadata,
    TrainingData,
    VideoMetadata,
    _as_aware_datetime,
    check_dandi_metadata,
    metadata_problems,
    normalize_sex,
    normalize_species,
)
from element_pose.export.nwb.training import add_pose_training

__all__ = [
    "add_pose_estimation",
    "append_to_nwb",
    "build_nwbfile",
    "new_nwbfile",
    "pose_series",
    "write_nwb",
]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------- building
def _make_subject(subject: SubjectMetadata):
    from pynwb.file import Subject

    kwargs: dict[str, Any] = {
        "subject_id": str(subject.subject_id),
        "species": normalize_species(subject.species),
        "sex": normalize_sex(subject.sex),
        "age": subject.age,
        "description": subject.description,
        "strain": subject.strain,
        "genotype": subject.genotype,
    }
    if subject.date_of_birth is not None:
        kwargs["date_of_birth"] = _as_aware_datetime(subject.date_of_birth)
    return Subject(**{k: v for k, v in kwargs.items() if v is not None})


def new_nwbfile(subject: SubjectMetadata | None, session: SessionMetadata):
    """An empty ``NWBFile`` with session and subject metadata (no pose data yet)."""
    from pynwb import NWBFile

    kwargs: dict[str, Any] = {
        "session_description": session.description
        or f"Behavioral session {session.session_id} with pose estimation",
        "identifier": session.identifier or str(uuid.uuid4()),
        "session_start_time": session.session_start_time,
        "session_id": str(session.session_id),
        "lab": session.lab,
        "institution": session.institution,
        "experimenter": list(session.experimenters) or None,
        "experiment_description": session.experiment_description,
        "keywords": list(session.keywords) or None,
    }
    nwbfile = NWBFile(**{k: v for k, v in kwargs.items() if v is not None})
    if subject is not None:
        nwbfile.subject = _make_subject(subject)
    return nwbfile


def _get_or_create_device(nwbfile, camera: CameraMetadata):
    if camera.name in nwbfile.devices:
        return nwbfile.devices[camera.name]
    model = None
    if camera.manufacturer or camera.model:
        model_name = camera.model or f"{camera.manufacturer} camera"
        if model_name in nwbfile.device_models:
            model = nwbfile.device_models[model_name]
        else:
            model = nwbfile.create_device_model(
                name=model_name,
                manufacturer=camera.manufacturer or "unknown",
                model_number=camera.model,
                description=f"Camera model of {camera.name}",
            )
    return nwbfile.create_device(
        name=camera.name,
        description=camera.description or "Camera recording the behavior video",
        model=model,
    )


def _irregular_timestamps(pose: PoseData) -> np.ndarray | None:
    """The pose's timestamps, or ``None`` when they are regular at its frame rate."""
    if pose.timestamps is None:
        return None
    timestamps = np.asarray(pose.timestamps, np.float64)
    if pose.fps and len(timestamps) > 1 and np.allclose(
            np.diff(timestamps), 1.0 / pose.fps, rtol=1e-6, atol=1e-9):
        return None
    return timestamps


def add_pose_estimation(
    nwbfile,
    pose: PoseData,
    *,
    camera: CameraMetadata | None = None,
    video: VideoMetadata | None = None,
    name: str = DEFAULT_NAME,
    description: str | None = None,
    confidence_definition: str = CONFIDENCE_DEFINITION,
    unit: str | None = None,
    reference_frame: str | None = None,
    relative_to: str | Path | None = None,
    link_timestamps: bool = True,
    compression: str | None = COMPRESSION,
    device: Any = None,
    parent: Any = None,
):
    """Add one ``PoseEstimation`` (and its device, skeleton, video) to an ``NWBFile``.

    Works on a new file and on one read in append mode. The device, skeleton and
    source-video ImageSeries are reused when the file already has them by name.

    Args:
        nwbfile: The ``pynwb.NWBFile``.
        pose: Single-individual pose data (2D or 3D).
        camera: The camera; ``None`` links no device (e.g. triangulated 3D data).
        video: The source video files; ``None`` links no source video.
        name: Container name; keep ``"PoseEstimation"`` (what movement and
            keypoint-moseq read by default) unless a session has several cameras
            or models, then use distinct names.
        description: Free text; a default naming scorer and software is made.
        confidence_definition: How the confidence was computed.
        unit: Unit of the positions; ``"pixels"`` for 2D, ``"a.u."`` for 3D.
        reference_frame: What (0, 0) means; a default per dimensionality.
        relative_to: Directory the NWB file will live in: external video paths are
            written relative to it (absolute when ``None``).
        link_timestamps: Link the series' timestamps to the first series' (set False
            when appending: hdmf cannot link to a dataset created in the same write).
        compression: HDF5 filter of the arrays: ``"gzip"`` (default; readable
            everywhere), ``"lzf"`` or ``None`` (several times faster to write).
        device: A device already in the file (e.g. an ndx-pose ``CalibratedCamera``)
            to link instead of one made from ``camera``.
        parent: A ``MultiCameraPoseEstimation`` that holds this (per camera view)
            PoseEstimation instead of the ``behavior`` module.

    Returns:
        The ``ndx_pose.PoseEstimation``.

    Raises:
        NWBExportError: several individuals, a name already used, no time base.
    """
    from ndx_pose import PoseEstimation

    _check_addable(pose)
    module = behavior_module(nwbfile)
    if name in (module.data_interfaces if parent is None else parent.pose_estimations):
        raise NWBExportError(
            f"processing/{BEHAVIOR_MODULE} already holds {name!r}; pass a distinct name= "
            "(e.g. 'PoseEstimation_<camera>') for another camera or model"
        )
    subject = nwbfile.subject
    if device is None and camera is not None:
        device = _get_or_create_device(nwbfile, camera)
    skeleton_owner = subject.subject_id if subject is not None else pose.individuals[0]
    skeleton = get_or_create_skeleton(
        module, f"{skeleton_owner}_skeleton", list(pose.keypoints), skeleton_edges(pose),
        subject,
    )
    three_d = pose.n_space == 3
    unit = unit or ("a.u." if three_d else "pixels")
    reference_frame = reference_frame or (REFERENCE_FRAME_3D if three_d else REFERENCE_FRAME_2D)

    series, timestamps = pose_series(pose, unit=unit, reference_frame=reference_frame,
                                     confidence_definition=confidence_definition,
                                     link_timestamps=link_timestamps, compression=compression)
    source_video = None
    if video is not None:
        shared = (series, link_timestamps, timestamps)
        source_video = _source_video(nwbfile, video, camera, device, pose, relative_to, shared)
    software = pose.source_software or "unknown"
    if description is None:
        description = _default_description(pose, software)
    pe_kwargs: dict[str, Any] = {
        "name": name,
        "pose_estimation_series": series,
        "description": description,
        "scorer": pose.scorer or None,
        "source_software": software,
        "source_software_version": pose.source_software_version or None,
        "skeleton": skeleton,
        "device": device,
        "source_video": source_video,
    }
    pose_estimation = PoseEstimation(**{k: v for k, v in pe_kwargs.items() if v is not None})
    if parent is None:
        module.add(pose_estimation)
    else:
        parent.add_pose_estimation(pose_estimation)
    return pose_estimation


def _check_addable(pose: PoseData) -> None:
    """One individual and a time base, or an :class:`NWBExportError`."""
    if len(pose.individuals) != 1:
        raise NWBExportError(
            f"an NWB file holds one subject but the pose data have {len(pose.individuals)} "
            f"individuals {pose.individuals}: use plan_individual_files / "
            "write_nwb_per_individual"
        )
    if pose.timestamps is None and pose.fps is None:
        raise NWBExportError("pose data have neither timestamps nor fps: cannot write time")


def _source_video(nwbfile, video: VideoMetadata, camera: CameraMetadata | None, device: Any,
                  pose: PoseData, relative_to: str | Path | None, shared: tuple):
    """The recording's external ``ImageSeries`` in ``acquisition`` (added when missing).

    ``shared`` is ``(series, link_timestamps, timestamps)`` of :func:`pose_series`: when
    the video has one frame per pose sample its timestamps are the first series' (linked)
    or the times themselves.
    """
    from pynwb.image import ImageSeries

    video_name = video.name or f"{camera.name if camera else 'camera'}_video"
    if video_name in nwbfile.acquisition:
        return nwbfile.acquisition[video_name]
    counts = list(video.frame_counts) if video.frame_counts is not None else None
    starting_frame = [0] if counts is None else [int(c) for c in
                                                 np.cumsum([0, *counts[:-1]])]
    n_samples = int(sum(counts)) if counts is not None else pose.n_frames
    kwargs: dict[str, Any] = {
        "name": video_name,
        "description": f"Behavior video{'s' if len(video.paths) > 1 else ''} of "
                       f"{camera.name if camera else 'the camera'} (external files)",
        "unit": "n.a.",
        "format": "external",
        "external_file": [external_path(p, relative_to) for p in video.paths],
        "starting_frame": starting_frame,
        "device": device,
    }
    if video.width and video.height:
        kwargs["dimension"] = [int(video.width), int(video.height)]
    fps = video.fps or pose.fps
    series, link_timestamps, timestamps = shared
    if timestamps is not None and (n_samples == pose.n_frames or fps is None):
        # one frame per pose sample: share the times
        kwargs["timestamps"] = series[0] if link_timestamps else timestamps
    else:
        kwargs.update(rate=float(fps), starting_time=float(pose.time()[0]),
                      num_samples=n_samples)
    source_video = ImageSeries(**{k: v for k, v in kwargs.items() if v is not None})
    nwbfile.add_acquisition(source_video)
    return source_video


def _default_description(pose: PoseData, software: str) -> str:
    """What a PoseEstimation holds: keypoints, software, model, individual, steps."""
    three_d = pose.n_space == 3
    description = (f"Estimated positions of {len(pose.keypoints)} keypoints"
                   f"{' (3D)' if three_d else ''} by {software}"
                   f"{' model ' + pose.scorer if pose.scorer else ''}.")
    if pose.individuals[0] != SINGLE_INDIVIDUAL:
        description += (f" Individual {pose.individuals[0]!r} of the pose estimation "
                        "(its name in the original tracking output).")
    if pose.provenance:
        steps = ", ".join(str(s.get("step", s)) for s in pose.provenance)
        description += f" Processing steps: {steps}."
    return description


def _columns(view: np.ndarray) -> np.ndarray:
    """A contiguous float32 copy of a (frames, space) view, column by column: fetched
    poses keep each coordinate in its own row, where numpy's element-order copy is ~6x
    slower."""
    out = np.empty(view.shape, np.float32)
    for c in range(view.shape[1]):
        out[:, c] = view[:, c]
    return out


def pose_series(pose: PoseData, *, unit: str, reference_frame: str,
                confidence_definition: str = CONFIDENCE_DEFINITION,
                link_timestamps: bool = True, compression: str | None = COMPRESSION,
                ) -> tuple[list[Any], np.ndarray | None]:
    """The data-writing path: one ``PoseEstimationSeries`` per keypoint (float32 arrays).

    Regular sampling is written as rate + starting time (NWB best practice); only
    irregular timestamps are stored, once, and linked from the other series.

    Returns:
        The series (in keypoint order) and the irregular timestamps (``None`` when
        the sampling is regular).
    """
    from ndx_pose import PoseEstimationSeries

    timestamps = _irregular_timestamps(pose)
    time_kwargs: dict[str, Any]
    if timestamps is not None:
        time_kwargs = {"timestamps": deflate.wrap(timestamps, compression)}
    else:
        time_kwargs = {"rate": float(pose.fps), "starting_time": float(pose.time()[0])}
    series = []
    for k, keypoint in enumerate(pose.keypoints):
        pes = PoseEstimationSeries(
            name=keypoint,
            description=f"Estimated position of {keypoint}.",
            data=deflate.wrap(_columns(pose.position[:, 0, k, :]), compression),
            unit=unit,
            reference_frame=reference_frame,
            confidence=deflate.wrap(np.ascontiguousarray(pose.confidence[:, 0, k], np.float32),
                                   compression),
            confidence_definition=confidence_definition,
            **time_kwargs,
        )
        series.append(pes)
        if timestamps is not None and k == 0 and link_timestamps:
            time_kwargs = {"timestamps": pes}  # link, do not duplicate
    return series, timestamps


def build_nwbfile(
    pose: PoseData,
    subject: SubjectMetadata | None,
    session: SessionMetadata,
    *,
    camera: CameraMetadata | None = None,
    video: VideoMetadata | None = None,
    training: TrainingData | None = None,
    name: str = DEFAULT_NAME,
    require_dandi: bool = True,
    relative_to: str | Path | None = None,
    **pose_kwargs: Any,
):
    """An in-memory ``NWBFile`` with subject, camera, skeleton, pose and optional training.

    Args:
        pose: Single-individual pose data.
        subject: Subject metadata (required when ``require_dandi``).
        session: Session metadata.
        camera: Camera written as a Device and linked from the PoseEstimation.
        video: Source video files, linked as an external ImageSeries.
        training: Labelled frames to store as ``PoseTraining``.
        name: PoseEstimation container name.
        require_dandi: Check DANDI's metadata requirements first.
        relative_to: Directory external file paths are written relative to.
        **pose_kwargs: Passed to :func:`add_pose_estimation` (description, unit, ...).

    Raises:
        MetadataError: listing every missing/invalid field.
    """
    if camera is None and video is not None:
        camera = CameraMetadata()
    check_dandi_metadata(subject, session, pose, video, dandi=require_dandi)
    nwbfile = new_nwbfile(subject, session)
    add_pose_estimation(nwbfile, pose, camera=camera, video=video, name=name,
                        relative_to=relative_to, **pose_kwargs)
    if training is not None:
        add_pose_training(nwbfile, training, pose, relative_to=relative_to)
    return nwbfile


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def write_nwb(
    path: str | Path,
    pose: PoseData,
    subject: SubjectMetadata | None,
    session: SessionMetadata,
    *,
    camera: CameraMetadata | None = None,
    video: VideoMetadata | None = None,
    training: TrainingData | None = None,
    name: str = DEFAULT_NAME,
    overwrite: bool = False,
    require_dandi: bool = True,
    **pose_kwargs: Any,
) -> Path:
    """Write a new NWB file atomically (temp file in the same folder, then rename).

    External video paths are written relative to the file's folder. See
    :func:`build_nwbfile` for the arguments.

    Returns:
        The written path.

    Raises:
        MetadataError: before anything is written, listing every field to fix.
        FileExistsError: when ``path`` exists and ``overwrite`` is false.
    """
    from pynwb import NWBHDF5IO

    path = Path(path)
    if path.suffix != ".nwb":
        raise NWBExportError(f"NWB file names end in .nwb: {path}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True or use append_to_nwb")
    nwbfile = build_nwbfile(pose, subject, session, camera=camera, video=video,
                            training=training, name=name, require_dandi=require_dandi,
                            relative_to=path.parent, **pose_kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        with NWBHDF5IO(str(tmp), mode="w") as io:
            deflate.write(io, nwbfile)
        verify_pose_containers(tmp, [_expected(name, pose)])
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    log.info("wrote %s (%d frames, %d keypoints)", path, pose.n_frames, len(pose.keypoints))
    return path


def append_to_nwb(
    path: str | Path,
    pose: PoseData,
    *,
    camera: CameraMetadata | None = None,
    video: VideoMetadata | None = None,
    training: TrainingData | None = None,
    name: str = DEFAULT_NAME,
    **pose_kwargs: Any,
) -> Path:
    """Add pose data to an existing NWB file in place (HDF5 append; nothing is rewritten).

    The file's subject is used for the skeleton; the device, skeleton and video are
    reused when present by name. All checks run before the file is modified; an
    error during the HDF5 write itself can leave the new objects half written, so
    keep a copy of irreplaceable files.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        NWBExportError: name already used, several individuals, no time base.
        MetadataError: invalid video metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no NWB file to append to: {path}")
    if camera is None and video is not None:
        camera = CameraMetadata()
    problems = metadata_problems(None, None, pose, video, dandi=False)
    problems = [p for p in problems if not p.startswith("session")]
    if problems:
        raise MetadataError(problems, context=f"append to {path}")
    with open_nwb(path, mode="a") as io:  # ndx-pose registered before the file is read
        nwbfile = io.read()
        # hdmf cannot link to a dataset created in the same append: store times per series
        add_pose_estimation(nwbfile, pose, camera=camera, video=video, name=name,
                            relative_to=path.parent, link_timestamps=False, **pose_kwargs)
        if training is not None:
            add_pose_training(nwbfile, training, pose, relative_to=path.parent)
        deflate.write(io, nwbfile)
    verify_pose_containers(path, [_expected(name, pose)])
    log.info("appended %s to %s", name, path)
    return path


def _expected(name: str, pose: PoseData) -> ExpectedContainer:
    return ExpectedContainer(name=name, keypoints=list(pose.keypoints),
                             n_frames=pose.n_frames, n_space=pose.n_space)
