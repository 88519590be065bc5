"""DataJoint schema ``publish``: NWB export of query results and DANDI uploads.

* :func:`export_nwb` maps PoseEstimation keys to NWB files (ndx-pose 0.4), one
  per subject and session (one per individual for multi-animal data), from the
  database, not by re-reading DeepLabCut files.
* :class:`DandiUpload` records each asset of a dandiset (local file state, upload,
  the archive's validation). The incremental sync that fills it reads these tables
  and lives above them: :func:`element_pose.ops.dandi_sync.sync` (``element-pose
  dandi-sync``); :func:`plan_export`, :func:`session_metadata` and :func:`session_id`
  are what it uses from here.

Linking module contract (optional): ``get_nwb_metadata(session_key) ->
(SubjectMetadata, SessionMetadata)``; without it, ids come from the key and the
export refuses to write until DANDI's required fields are given.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from element_pose.db.config import import_datajoint
from element_pose.db.query import as_restriction
from element_pose.schemas import model

__all__ = [
    "DandiUpload",
    "ExportedFile",
    "activate",
    "append_nwb",
    "export_nwb",
    "export_triangulation_nwb",
    "model_provenance",
    "nwb_metadata",
    "nwb_metadata_many",
    "plan_export",
    "session_id",
    "session_metadata",
]

dj = import_datajoint()
log = logging.getLogger(__name__)

schema = dj.Schema()
#: File suffixes of a VideoSet's videos (what PoseTraining links as source videos).
_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg")
_linking_module: ModuleType | None = None


def activate(schema_name: str, *, create_schema: bool = True, create_tables: bool = True,
             linking_module: ModuleType | None = None) -> None:
    """Activate the ``publish`` schema (after :func:`element_pose.schemas.model.activate`)."""
    if not model.schema.is_activated():
        raise RuntimeError("activate element_pose.schemas.model before "
                           "element_pose.schemas.publish")
    global _linking_module
    _linking_module = linking_module
    schema.activate(schema_name, create_schema=create_schema, create_tables=create_tables)


@schema
class DandiUpload(dj.Manual):
    """Each asset of a dandiset: local file state, last upload, the archive's validation."""

    definition = """
    dandiset_id: varchar(16)
    asset_path: varchar(500)          # path inside the dandiset
    ---
    local_path: varchar(1000)         # the file, relative to the dandiset folder
    sha256: char(64)
    dandi_etag: varchar(64)
    asset_id = '': varchar(64)        # the archive's asset id
    size: int64                       # bytes
    mtime_ns = 0: int64               # the file's mtime when checksummed (skip if same)
    content_hash = '': varchar(64)    # sha256 of the estimations + metadata exported into it
    status: enum('pending', 'uploaded', 'replaced', 'unchanged', 'failed', 'invalid')
    archive_status = '': varchar(16)  # the archive's validation: Pending, Valid, Invalid
    archive_errors = null: json       # the archive's validation messages
    message = '': varchar(2000)
    uploaded_at = null: datetime
    source_keys = null: json          # PoseEstimation keys exported into this file
    """


# ------------------------------------------------------------------- metadata
def nwb_metadata(session_key: dict):
    """(SubjectMetadata, SessionMetadata) of a session, from the linking module."""
    from element_pose.export.nwb import SessionMetadata, SubjectMetadata

    getter = getattr(_linking_module, "get_nwb_metadata", None)
    if getter is not None:
        return getter(session_key)
    subject_id = str(session_key.get("subject", "unknown"))
    session_id = "_".join(str(v) for k, v in session_key.items() if k != "subject")
    return (SubjectMetadata(subject_id=subject_id),
            SessionMetadata(session_id=session_id or "0",
                            session_start_time=datetime.datetime.now(datetime.UTC)))


def nwb_metadata_many(session_keys: list[dict]) -> list:
    """:func:`nwb_metadata` of many sessions: the linking module's
    ``get_nwb_metadata_many(keys)`` when it has one (a few queries in all), else one
    call per session."""
    getter = getattr(_linking_module, "get_nwb_metadata_many", None)
    if getter is not None:
        return list(getter(session_keys))
    return [nwb_metadata(key) for key in session_keys]


def _session_key(key: dict) -> dict:
    names = [k for k in model.VideoRecording.primary_key if k != "recording_id"]
    return {k: key[k] for k in names}


def session_id(key: dict) -> str:
    """The session of a key as a string: the key of the metadata cache of
    :func:`session_metadata`; the same for a key as fetched and for its plain form in a
    plan (:func:`plan_export`)."""
    return json.dumps(_plain(_session_key(key)), sort_keys=True, default=str)


def session_metadata(keys: list[dict], metadata: dict | None = None) -> dict:
    """:func:`session_id` -> (SubjectMetadata, SessionMetadata) for the sessions of ``keys``.

    Sessions missing from ``metadata`` (a cache; a new one when None) are fetched in one
    :func:`nwb_metadata_many` call and added to it; the cache is returned.
    """
    cache = {} if metadata is None else metadata
    missing: dict[str, dict] = {}
    for key in keys:
        sid = session_id(key)
        if sid not in cache:
            missing.setdefault(sid, _session_key(key))
    if missing:
        cache.update(zip(missing, nwb_metadata_many(list(missing.values())), strict=True))
    return cache


def _camera_and_video(key: dict):
    from element_pose.export.nwb import CameraMetadata, VideoMetadata

    recording = (model.VideoRecording & key).fetch1()
    device_attrs = [k for k in model.VideoRecording.heading.secondary_attributes
                    if k in model.linked("Device").primary_key]
    device_table = model.linked("Device")
    device = (device_table & {k: recording[k] for k in device_attrs}).fetch1()
    name = "_".join(str(device[k]) for k in device_table.primary_key)
    camera = CameraMetadata(name=name, description=device.get("description") or None,
                            manufacturer=device.get("manufacturer") or None)
    info = (model.RecordingInfo & key).fetch1()
    counts = [int(n) for n in (model.RecordingInfo.File & key).to_arrays(
        "nframes", order_by="file_id")]
    video = VideoMetadata(paths=model.VideoRecording.file_paths(key), fps=float(info["fps"]),
                          frame_counts=counts, width=int(info["px_width"]),
                          height=int(info["px_height"]), name=f"{name}_video")
    return camera, video


# --------------------------------------------------------------------- export
@dataclasses.dataclass
class ExportedFile:
    """One NWB file written by :func:`export_nwb`."""

    path: Path
    relpath: str                 # DANDI layout path: sub-<id>/sub-<id>_ses-<id>_...nwb
    source_keys: list[dict]      # PoseEstimation keys it holds


def plan_export(query, filter_paramset_idx: int | None = None, *,
                metadata: dict | None = None) -> dict[str, list[dict]]:
    """DANDI path -> PoseEstimation keys that go into it (no file is written).

    Args:
        query: PoseEstimation restriction.
        filter_paramset_idx: Not used: raw and filtered poses have the same plan.
        metadata: A session metadata cache (a dict, opaque keys) that this call uses
            and fills: pass the same dict to :func:`export_nwb` (and
            :func:`element_pose.ops.dandi_sync.content_hashes`) so that the metadata of a
            session is fetched once.
    """
    from element_pose.export.dandi import dandi_relpath

    query = as_restriction(query)
    keys = (model.PoseEstimation & query).keys(order_by=model.PoseEstimation.primary_key)
    plan: dict[str, list[dict]] = {}
    # metadata and individuals of all keys in a few queries (not a few per key)
    metadata = session_metadata(keys, metadata)
    pk = model.PoseEstimation.primary_key
    found: dict[tuple, set] = {}
    for row in (model.PoseEstimation.BodyPartPosition & query).proj("individual").to_dicts():
        found.setdefault(tuple(row[k] for k in pk), set()).add(str(row["individual"]))
    for key in keys:
        subject, session = metadata[session_id(key)]
        individuals = sorted(found.get(tuple(key[k] for k in pk), ()))
        if len(individuals) == 1:
            paths = [dandi_relpath(subject.subject_id, session.session_id)]
        else:
            paths = [dandi_relpath(f"{subject.subject_id}-{i}", session.session_id)
                     for i in individuals]
        for relpath in paths:
            plan.setdefault(relpath, []).append(_plain(key))
    return plan


def _plain(key: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else
                v.item() if hasattr(v, "item") else v) for k, v in key.items()}


def export_nwb(query, output_dir: str | Path, *, filter_paramset_idx: int | None = None,
               include_training: bool = False, overwrite: bool = False,
               compression: str | None = "gzip", videos: str = "hardlink",
               only: set[str] | None = None, metadata: dict | None = None
               ) -> list[ExportedFile]:
    """Write NWB files for PoseEstimation keys, one per subject and session.

    Files go to ``output_dir/<DANDI path>``, their videos beside them
    (``sub-<id>/<file stem>/<video>``, linked by relative path), so the export folder
    can be copied or moved as a whole.  Within a session, one estimation is named
    ``PoseEstimation`` (what movement and keypoint-moseq read by default); several
    get unique names (:func:`element_pose.export.nwb.layout.container_names`:
    ``PoseEstimation_<camera>_<model>``, plus ``_rec<recording_id>`` for several
    recordings of one camera with one model).  Multi-animal estimations give one
    file per individual (NWB holds one subject).  Every file is read back before
    it takes its name.

    Args:
        query: PoseEstimation restriction (dict, list of dicts or query).
        output_dir: Folder for the files.
        filter_paramset_idx: Export filtered poses of this pipeline instead of raw.
        include_training: Add the model's labelled frames as ndx-pose PoseTraining:
            those of the VideoSet it was trained on (any engine; ``train.TrainedModel``),
            else those of the DeepLabCut project it was registered from.
        overwrite: Replace existing files.
        compression: ``"gzip"`` (default, for archives), ``"lzf"`` or ``None`` (faster).
        videos: How videos go beside the files: ``"hardlink"`` (default; a copy
            across file systems), ``"copy"``, ``"symlink"`` or ``"none"`` (link the
            originals by relative path; the folder then cannot be moved alone).
        only: Write only these DANDI paths of the plan (e.g. one individual's file of
            a multi-animal session); default all.
        metadata: A session metadata cache (see :func:`plan_export`); by default one
            of this call's own, so that each session's metadata is fetched once.

    Raises:
        element_pose.export.nwb.MetadataError: DANDI metadata missing (listed), before
            any file is written.
        FileExistsError: a file exists and ``overwrite`` is false.
    """
    from element_pose.export.nwb import check_dandi_metadata
    from element_pose.export.nwb.layout import preload

    preload()  # pynwb's ~1 s import overlaps the queries below
    output_dir = Path(output_dir)
    metadata = {} if metadata is None else metadata
    plan = plan_export(query, filter_paramset_idx, metadata=metadata)
    if only is not None:
        plan = {rel: keys for rel, keys in plan.items() if rel in only}
    if not plan:
        raise ValueError(f"no pose estimation matches {query}")
    # all metadata problems first, before any file is written
    problems = []
    for keys in plan.values():
        subject, session = metadata[session_id(keys[0])]
        try:
            check_dandi_metadata(subject, session)
        except Exception as exc:  # MetadataError lists every field
            problems.append(exc)
    if problems:
        raise problems[0]
    exported = []
    for relpath, keys in plan.items():
        target = output_dir / relpath
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} exists; pass overwrite=True")
        exported.append(ExportedFile(target, relpath, keys))
    for item in exported:
        _write_file(item, metadata[session_id(item.source_keys[0])], filter_paramset_idx,
                    include_training, compression, videos)
    return exported


def _own_individual(key: dict, subject_id: str, session_id: str, relpath: str
                    ) -> str | None:
    """The individual of a multi-animal estimation that the file at ``relpath`` holds
    (``None`` for a single-animal estimation); one query, no array read."""
    from element_pose.export.dandi import dandi_relpath

    individuals = sorted(set(
        (model.PoseEstimation.BodyPartPosition & key).to_arrays("individual").tolist()))
    if len(individuals) < 2:
        return None
    for individual in individuals:
        if dandi_relpath(f"{subject_id}-{individual}", session_id) == relpath:
            return individual
    raise ValueError(f"no individual of {individuals} belongs in {relpath}")


def _write_file(item: ExportedFile, metadata: tuple, filter_paramset_idx: int | None,
                include_training: bool, compression: str | None, videos: str) -> None:
    from element_pose.export.nwb import (
        TrainingData,
        append_to_nwb,
        individual_metadata,
        write_nwb,
    )
    from element_pose.export.nwb.layout import (
        ExpectedContainer,
        container_names,
        place_videos,
        verify_pose_containers,
    )

    keys = item.source_keys
    subject, session = metadata
    media = [_camera_and_video(key) for key in keys]
    names = container_names([{"camera": camera.name, "model": key["model_name"],
                              "recording": key["recording_id"]}
                             for key, (camera, _) in zip(keys, media, strict=True)])
    tmp = item.path.with_name(f".tmp-{item.path.name}")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    placed, expected, done = [], [], False
    try:
        for n, (key, (camera, video), name) in enumerate(zip(keys, media, names, strict=True)):
            individual = _own_individual(key, subject.subject_id, session.session_id,
                                         item.relpath)
            pose = _fetch(key, filter_paramset_idx,  # only this file's individual is read
                          None if individual is None else [individual])
            this_subject, this_session = subject, session
            if individual is not None:
                this_subject, this_session = individual_metadata(
                    subject, session, individual,
                    subject_id=f"{subject.subject_id}-{individual}")
            placed.append(place_videos(video.paths, item.path, videos, prefix=camera.name))
            video = dataclasses.replace(video, paths=placed[-1].paths)
            if sum(c.name == camera.name for c, _ in media) > 1:  # one series per recording
                video.name = f"{video.name}_rec{key['recording_id']}"
            training = None
            if include_training and n == 0:
                training = _training_data(key, TrainingData)
                training.videos = {
                    k: place_videos([v], item.path, videos, prefix="training").paths[0]
                    for k, v in training.videos.items()}
            if n == 0:
                write_nwb(tmp, pose, this_subject, this_session, camera=camera, video=video,
                          training=training, name=name, overwrite=True,
                          compression=compression)
            else:
                append_to_nwb(tmp, pose, camera=camera, video=video, name=name,
                              compression=compression)
            expected.append(ExpectedContainer(name, list(pose.keypoints), pose.n_frames,
                                              pose.n_space))
        verify_pose_containers(tmp, expected)  # all of them, in a fresh read
        os.replace(tmp, item.path)
        done = True
    finally:
        if tmp.exists():
            tmp.unlink()
        if not done:
            for p in placed:
                p.remove_created()


def _training_data(key: dict, training_data: type):
    """The model's labelled frames as ``TrainingData``: the VideoSet it was trained on
    (``train.TrainedModel``; any engine), else the DeepLabCut project it was registered
    from.

    Raises:
        ValueError: a model of another engine registered without its training (its
            labelled frames are not known here).
    """
    from element_pose.schemas import train

    name = {"model_name": key["model_name"]}
    if train.schema.is_activated() and train.TrainedModel & name:
        set_key = {"video_set_id": (train.TrainedModel & name).fetch1("video_set_id")}
        r = model.roots()
        files = (train.VideoSet.File & set_key).to_arrays("file_path")
        videos = {Path(f).stem: r.find(f) for f in files
                  if Path(f).suffix.lower() in _VIDEO_SUFFIXES}
        return training_data.from_label_set(
            train.VideoSet.label_set(set_key, keypoints=None), videos=videos)
    engine = (model.Model & name).fetch1("engine")
    if engine != "deeplabcut":
        raise ValueError(
            f"model {key['model_name']!r} ({engine}) was not trained here "
            "(no train.TrainedModel row): its labelled frames are unknown, so no training "
            "data can be exported; export without include_training")
    return training_data.from_dlc_project(model.Model.config_path(key))


def append_nwb(query, nwb_path: str | Path, *, filter_paramset_idx: int | None = None
               ) -> list[str]:
    """Add the estimations of a query to an existing NWB file (nothing is rewritten).

    One estimation is named ``PoseEstimation`` when that name is free in the file;
    otherwise every name is unique in the file
    (:func:`element_pose.export.nwb.layout.container_names`).  Videos are linked where
    they are (relative to the file); each recording gets its own video series.
    Multi-animal estimations must be restricted to one individual's file (NWB holds
    one subject per file).

    Returns:
        The names of the containers added.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no estimation matches, or an estimation has several individuals.
    """
    from element_pose.export.nwb import append_to_nwb, list_pose_estimations
    from element_pose.export.nwb.layout import container_names

    nwb_path = Path(nwb_path)
    if not nwb_path.is_file():
        raise FileNotFoundError(f"no NWB file to append to: {nwb_path}")
    query = as_restriction(query)
    keys = (model.PoseEstimation & query).keys(order_by=model.PoseEstimation.primary_key)
    if not keys:
        raise ValueError(f"no pose estimation matches {query}")
    poses = [(key, _fetch(key, filter_paramset_idx)) for key in keys]
    several = [key for key, pose in poses if len(pose.individuals) > 1]
    if several:
        raise ValueError(f"{several[0]} holds several individuals; NWB holds one subject "
                         "per file: use export_nwb for multi-animal data")
    media = [_camera_and_video(key) for key, _ in poses]
    present = [name.rsplit("/", 1)[-1] for name in list_pose_estimations(nwb_path)]
    names = container_names([{"camera": camera.name, "model": key["model_name"],
                              "recording": key["recording_id"]}
                             for (key, _), (camera, _) in zip(poses, media, strict=True)],
                            taken=present)
    import h5py

    with h5py.File(nwb_path, "r") as h5:
        series = set(h5["acquisition"]) if "acquisition" in h5 else set()
    for (key, pose), (camera, video), name in zip(poses, media, names, strict=True):
        if video.name in series or sum(c.name == camera.name for c, _ in media) > 1:
            video.name = f"{video.name}_rec{key['recording_id']}"  # never another's video
        append_to_nwb(nwb_path, pose, camera=camera, video=video, name=name)
    return names


def export_triangulation_nwb(key: dict, output_dir: str | Path, *, overwrite: bool = False,
                             videos: str = "hardlink") -> ExportedFile:
    """Write one triangulation's 3D poses to an NWB file (ndx-pose ``MultiCameraPoseEstimation``).

    The file follows the DANDI layout with the suffix ``behavior``.  The 3D container
    is ``behavior/PoseEstimation`` (movement reads it with default arguments): x, y, z
    in the calibration's length unit (``mm`` -> ``millimeters``), confidence = the
    triangulation score, source software ``element-pose`` with its version; each
    camera is a ``CalibratedCamera`` device and has a per-view ``PoseEstimation``
    child with its 2D poses and its video (placed beside the file, see
    :func:`export_nwb`).  See :mod:`element_pose.export.nwb.three_d`.

    Raises:
        element_pose.export.nwb.MetadataError: DANDI metadata missing (listed).
        FileExistsError: the file exists and ``overwrite`` is false.
    """
    from element_pose.export.dandi import dandi_relpath
    from element_pose.export.nwb.layout import place_videos
    from element_pose.export.nwb.three_d import (
        REFERENCE_FRAME_WORLD,
        views_from_calibration,
        write_nwb_3d,
    )
    from element_pose.schemas import multicam

    row = (multicam.Triangulation & key).fetch1()
    key = {k: row[k] for k in multicam.Triangulation.primary_key}
    pose = multicam.Triangulation.fetch_pose3d(key)
    version = (row.get("software") or {}).get("element-pose")
    pose = pose.replace(source_software="element-pose", source_software_version=version)
    subject, session = nwb_metadata(_session_key(multicam.Triangulation.reference_recording(key)))
    relpath = dandi_relpath(subject.subject_id, session.session_id, suffix="behavior")
    path = Path(output_dir) / relpath
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True")
    group = (multicam.CameraGroup & key).fetch1()
    calibrated = {c["camera_name"]: c for c in (multicam.Calibration.Camera & group).to_dicts()}
    views = views_from_calibration([calibrated[c] for c in row["cameras"]])
    recordings = dict(multicam.CameraGroup.members(key))
    placed = []
    try:
        for view in views:
            est_key = {**recordings[view.camera.name], "model_name": key["model_name"]}
            if model.PoseEstimation & est_key:  # a loaded (anipose) triangulation has none
                view.pose = _fetch(est_key, None)
            _, video = _camera_and_video(est_key)
            placed.append(place_videos(video.paths, path, videos, prefix=view.camera.name))
            view.video = dataclasses.replace(video, paths=placed[-1].paths,
                                             name=f"{view.camera.name}_video")
        frame = REFERENCE_FRAME_WORLD
        if row.get("transform"):
            frame = (f"calibration world frame moved by the transform {row['transform']} "
                     "(the cameras' rotation and translation are in the calibration frame "
                     "before it)")
        write_nwb_3d(path, pose, subject, session, views, overwrite=overwrite,
                     unit=str(row.get("units") or "mm"), reference_frame=frame)
    except BaseException:
        for item in placed:
            item.remove_created()
        raise
    return ExportedFile(path, relpath, [_plain(key)])


def _fetch(key: dict, filter_paramset_idx: int | None,
           individuals: Sequence[str] | None = None):
    if filter_paramset_idx is None:
        pose = model.PoseEstimation.fetch_pose(key, individuals=individuals)
    else:
        from element_pose.schemas import analysis

        pose = analysis.FilteredPose.fetch_pose(
            {**key, "filter_paramset_idx": filter_paramset_idx}, individuals=individuals)
    return _with_model_provenance(pose, str(key["model_name"]))


def model_provenance(model_name: str) -> dict[str, Any] | None:
    """Which training run (and refinement iteration) a registered model came from.

    Returns:
        ``{"step", "model", "training", "iteration", "fine_tuned_from"}`` (``step``: one
        line for a description) or ``None`` for a model not trained here.
    """
    from element_pose.schemas import train

    rows = (train.TrainedModel & {"model_name": model_name}).to_dicts()
    if not rows:
        return None
    training = {k: int(rows[0][k]) for k in train.ModelTraining.primary_key}
    it = (train.TrainingIteration & training).to_dicts()
    iteration = int(it[0]["iteration"]) if it else 0
    parent = str(it[0]["initial_model"]) if it else None
    step = (f"estimated by model {model_name} (training video_set_id="
            f"{training['video_set_id']}, paramset_idx={training['paramset_idx']}, "
            f"training_id={training['training_id']}; refinement iteration {iteration}"
            + (f", fine-tuned from model {parent})" if parent else ")"))
    return {"step": step, "model": model_name, "training": training,
            "iteration": iteration, "fine_tuned_from": parent}


def _with_model_provenance(pose, model_name: str):
    """The pose with a first provenance step naming the model, its training run and
    refinement iteration (the NWB description lists the steps), for trained models."""
    from element_pose.schemas import train

    if not train.schema.is_activated():
        return pose
    step = model_provenance(model_name)
    if step is None:
        return pose
    return pose.replace(provenance=[step, *pose.provenance])
