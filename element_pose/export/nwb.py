"""Pose data -> NWB (ndx-pose 0.4), with no database.

What a written file holds (one subject per file, as NWB and DANDI require)::

    /general/subject                     Subject (id, Latin species, sex, age or birth date)
    /general/devices/<camera>            the camera (added before anything links to it)
    /acquisition/<camera>_video          external ImageSeries of the recording's video files
    /processing/behavior/Skeletons       Skeleton "<subject>_skeleton": nodes = keypoints
    /processing/behavior/PoseEstimation  one PoseEstimationSeries per keypoint (float32,
                                         gzip), confidence, scorer, source software,
                                         links to device, skeleton and source video
    /processing/behavior/PoseTraining    optional: labelled frames + their source videos

Time is real: per-frame ``timestamps`` when the pose data has them, otherwise
``rate`` + ``starting_time``; frame indices are never written as seconds.

Entry points:

* :func:`check_dandi_metadata` - one :class:`MetadataError` listing every field to fix.
* :func:`build_nwbfile` / :func:`write_nwb` - a new file (atomic: temp file + rename).
* :func:`plan_individual_files` / :func:`write_nwb_per_individual` - multi-animal data,
  one file per individual.
* :func:`append_to_nwb` - add pose data to an existing file in place (HDF5 append).
* :func:`read_pose_from_nwb` - back to :class:`~element_pose.pose.PoseData`.
* :func:`inspect_nwb` / :func:`check_nwb` - NWB Inspector.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.pose import SINGLE_INDIVIDUAL, PoseData

log = logging.getLogger(__name__)

DEFAULT_NAME = "PoseEstimation"
BEHAVIOR_MODULE = "behavior"
TRAINING_NAME = "PoseTraining"
REFERENCE_FRAME_2D = "(0,0) is the top-left corner of the video frame"
REFERENCE_FRAME_3D = "origin and axes of the 3D calibration (world) frame"
CONFIDENCE_DEFINITION = (
    "Likelihood of the estimated position as reported by the pose estimation network "
    "(0 to 1; NaN where the keypoint was not detected)"
)
COMPRESSION = "gzip"
COMPRESSION_LEVEL = 4

#: A few common names mapped to the Latin binomials DANDI and NWB Inspector expect.
COMMON_SPECIES = {
    "mouse": "Mus musculus",
    "house mouse": "Mus musculus",
    "rat": "Rattus norvegicus",
    "norway rat": "Rattus norvegicus",
    "human": "Homo sapiens",
    "zebrafish": "Danio rerio",
    "fruit fly": "Drosophila melanogaster",
    "drosophila": "Drosophila melanogaster",
    "rhesus macaque": "Macaca mulatta",
    "macaque": "Macaca mulatta",
    "marmoset": "Callithrix jacchus",
    "c. elegans": "Caenorhabditis elegans",
}
_SEX = {"m": "M", "male": "M", "f": "F", "female": "F", "o": "O", "other": "O",
        "u": "U", "unknown": "U"}
_LATIN_RE = re.compile(r"^[A-Z][a-z]+ [a-z]+( [a-z]+)?$")
_NCBI_RE = re.compile(r"^https?://purl\.obolibrary\.org/obo/NCBITaxon_\d+$")
_DURATION = (r"P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
             r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?")
_AGE_RE = re.compile(rf"^{_DURATION}(/({_DURATION})?)?$")


class MetadataError(ValueError):
    """Metadata are missing or invalid; :attr:`problems` lists every field to fix."""

    def __init__(self, problems: Sequence[str], context: str = "NWB/DANDI export") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{context}: {len(self.problems)} metadata field(s) to fill in or fix "
            f"(nothing was written):\n{lines}"
        )


class NWBExportError(ValueError):
    """The pose data cannot be written as asked (name clash, layout, missing file)."""


class NWBInspectionError(ValueError):
    """NWB Inspector reported messages of CRITICAL (or worse) importance."""

    def __init__(self, path: str | Path, messages: Sequence[Any]) -> None:
        self.path = Path(path)
        self.messages = list(messages)
        lines = "\n".join(
            f"  - [{m.importance.name}] {m.check_function_name} at {m.location}: {m.message}"
            for m in self.messages
        )
        super().__init__(f"NWB Inspector found {len(self.messages)} critical issue(s) "
                         f"in {self.path}:\n{lines}")


# --------------------------------------------------------------------- metadata
@dataclasses.dataclass
class SubjectMetadata:
    """The animal a file describes (NWB holds one subject per file).

    Attributes:
        subject_id: Identifier; no ``/`` (it becomes part of DANDI paths).
        species: Latin binomial (``"Mus musculus"``) or NCBI taxonomy URL
            (``http://purl.obolibrary.org/obo/NCBITaxon_10090``); a few common
            names (:data:`COMMON_SPECIES`) are translated.
        sex: ``M``, ``F``, ``O`` (other) or ``U`` (unknown); ``male``/``female``
            are accepted.
        age: ISO-8601 duration at the session start, e.g. ``"P90D"`` (or a range
            ``"P90D/P120D"``). Either this or ``date_of_birth`` is required by DANDI.
        date_of_birth: Timezone-aware birth date (a plain ``date`` is taken as UTC).
        description: Free text.
        strain: Strain, e.g. ``"C57BL/6J"``.
        genotype: Genotype.
    """

    subject_id: str
    species: str | None = None
    sex: str | None = None
    age: str | None = None
    date_of_birth: dt.datetime | dt.date | None = None
    description: str | None = None
    strain: str | None = None
    genotype: str | None = None


@dataclasses.dataclass
class SessionMetadata:
    """The recording session.

    Attributes:
        session_id: Identifier; no ``/``.
        session_start_time: Timezone-aware start of the session.
        description: Session description (NWB requires one; a default is made).
        identifier: Globally unique file identifier; a UUID when ``None``.
        lab: Lab name.
        institution: Institution name.
        experimenters: Names, preferably ``"Last, First"``.
        experiment_description: Free text.
        keywords: Keywords.
    """

    session_id: str
    session_start_time: dt.datetime
    description: str | None = None
    identifier: str | None = None
    lab: str | None = None
    institution: str | None = None
    experimenters: Sequence[str] = ()
    experiment_description: str | None = None
    keywords: Sequence[str] = ()


@dataclasses.dataclass
class CameraMetadata:
    """The camera that recorded the video (written as an NWB ``Device``).

    Attributes:
        name: Device name, unique within the file (e.g. ``"camera_top"``).
        description: Free text (position, lens, ...).
        manufacturer: Manufacturer (stored on an NWB ``DeviceModel``).
        model: Model name/number.
    """

    name: str = "camera"
    description: str | None = None
    manufacturer: str | None = None
    model: str | None = None


@dataclasses.dataclass
class VideoMetadata:
    """The video file(s) of one recording, referenced as an external ``ImageSeries``.

    Attributes:
        paths: Files in recording order.
        fps: Frame rate; the pose data's ``fps`` when ``None``.
        frame_counts: Frames per file (required for more than one file).
        width: Frame width in pixels, when known.
        height: Frame height in pixels, when known.
        name: ImageSeries name; ``"<camera>_video"`` when ``None``.
    """

    paths: Sequence[str | Path]
    fps: float | None = None
    frame_counts: Sequence[int] | None = None
    width: int | None = None
    height: int | None = None
    name: str | None = None

    @classmethod
    def from_files(cls, paths: Sequence[str | Path], name: str | None = None) -> VideoMetadata:
        """Probe the files (PyAV) for rate, frame counts and size."""
        from element_pose.io.video import probe_recording

        info = probe_recording(list(paths))
        return cls(paths=[Path(p) for p in paths], fps=info.fps,
                   frame_counts=info.frame_counts, width=info.width, height=info.height,
                   name=name)


@dataclasses.dataclass
class TrainingData:
    """Labelled frames to store as ndx-pose ``PoseTraining``.

    Attributes:
        labels: DeepLabCut ``CollectedData_<scorer>.h5`` files (one per labelled video).
        videos: Video name (the ``labeled-data/<name>`` folder) -> video file.
        annotator: Who labelled; the h5 scorer when ``None``.
        name: Container name in the ``behavior`` module.
    """

    labels: Sequence[str | Path]
    videos: Mapping[str, str | Path]
    annotator: str | None = None
    name: str = TRAINING_NAME

    @classmethod
    def from_dlc_project(cls, config_path: str | Path, annotator: str | None = None,
                         ) -> TrainingData:
        """Collect the labelled-data h5 files and videos of a DeepLabCut project."""
        from element_pose.io import dlc

        config_path = Path(config_path)
        cfg = dlc.read_config(config_path)
        root = config_path.parent
        videos = {Path(v).stem: Path(v) for v in (cfg.get("video_sets") or {})}
        labels = sorted((root / "labeled-data").glob("*/CollectedData_*.h5"))
        return cls(labels=labels, videos=videos, annotator=annotator)


# ------------------------------------------------------------------- validation
def normalize_species(species: str | None) -> str | None:
    """Translate a few common names to Latin; other values are returned stripped."""
    if species is None:
        return None
    value = species.strip()
    return COMMON_SPECIES.get(value.lower(), value)


def normalize_sex(sex: str | None) -> str | None:
    """``male``/``m`` -> ``M`` and so on; unknown values are returned unchanged."""
    if sex is None:
        return None
    return _SEX.get(sex.strip().lower(), sex.strip())


def _is_aware(t: Any) -> bool:
    return isinstance(t, dt.datetime) and t.tzinfo is not None and t.utcoffset() is not None


def _as_aware_datetime(value: dt.datetime | dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def metadata_problems(
    subject: SubjectMetadata | None,
    session: SessionMetadata | None,
    pose: PoseData | None = None,
    video: VideoMetadata | None = None,
    *,
    dandi: bool = True,
) -> list[str]:
    """Every missing or invalid field, as human-readable lines (empty when all is well).

    Args:
        subject: Subject metadata.
        session: Session metadata.
        pose: The pose data to export (checked for a time base and a single individual).
        video: Source video metadata (files must exist; counts must match).
        dandi: Also apply DANDI's requirements (species, sex, age, ids without ``/``).
            Without it only what NWB itself needs is checked.
    """
    problems: list[str] = []
    if session is None:
        problems.append("session: missing (session_id, session_start_time)")
    else:
        if not session.session_id or not str(session.session_id).strip():
            problems.append("session.session_id: missing")
        elif "/" in str(session.session_id):
            problems.append(f"session.session_id {session.session_id!r}: must not contain '/'")
        if session.session_start_time is None:
            problems.append("session.session_start_time: missing")
        elif not _is_aware(session.session_start_time):
            problems.append(
                f"session.session_start_time {session.session_start_time!r}: must be a "
                "timezone-aware datetime (e.g. datetime(..., tzinfo=ZoneInfo('Europe/Berlin')))"
            )
        elif session.session_start_time > dt.datetime.now(dt.UTC):
            problems.append(
                f"session.session_start_time {session.session_start_time}: is in the future"
            )
    if subject is None:
        if dandi:
            problems.append("subject: missing (DANDI needs subject_id, species, sex, age)")
    else:
        if not subject.subject_id or not str(subject.subject_id).strip():
            problems.append("subject.subject_id: missing")
        elif "/" in str(subject.subject_id):
            problems.append(f"subject.subject_id {subject.subject_id!r}: must not contain '/'")
        if dandi:
            species = normalize_species(subject.species)
            if not species:
                problems.append(
                    "subject.species: missing (Latin binomial such as 'Mus musculus' or an "
                    "NCBI taxonomy URL)"
                )
            elif not (_LATIN_RE.match(species) or _NCBI_RE.match(species)):
                problems.append(
                    f"subject.species {subject.species!r}: use a Latin binomial such as "
                    "'Mus musculus' or an NCBI taxonomy URL "
                    "(http://purl.obolibrary.org/obo/NCBITaxon_<id>)"
                )
            sex = normalize_sex(subject.sex)
            if not sex:
                problems.append("subject.sex: missing (one of M, F, O, U)")
            elif sex not in ("M", "F", "O", "U"):
                problems.append(f"subject.sex {subject.sex!r}: must be one of M, F, O, U")
            if not subject.age and subject.date_of_birth is None:
                problems.append(
                    "subject.age / subject.date_of_birth: one is required (age as an "
                    "ISO-8601 duration such as 'P90D', or the date of birth)"
                )
        if subject.age and not _AGE_RE.match(str(subject.age)):
            problems.append(
                f"subject.age {subject.age!r}: must be an ISO-8601 duration such as 'P90D', "
                "'P12W' or 'P2Y3M' (or a range 'P90D/P120D')"
            )
        if subject.date_of_birth is not None:
            dob = subject.date_of_birth
            if isinstance(dob, dt.datetime) and not _is_aware(dob):
                problems.append(
                    f"subject.date_of_birth {dob!r}: must be timezone-aware (or a plain date)"
                )
            elif (session is not None and _is_aware(session.session_start_time)
                  and _as_aware_datetime(dob) > session.session_start_time):
                problems.append(
                    f"subject.date_of_birth {dob}: is after the session start "
                    f"{session.session_start_time}"
                )
    if pose is not None:
        if pose.timestamps is None and pose.fps is None:
            problems.append(
                "pose: neither timestamps nor fps are known (NWB needs real time; "
                "frame indices are not seconds)"
            )
        if len(pose.individuals) != 1:
            problems.append(
                f"pose: {len(pose.individuals)} individuals {pose.individuals}; an NWB file "
                "holds one subject: use write_nwb_per_individual / plan_individual_files"
            )
    if video is not None:
        problems.extend(_video_problems(video, pose))
    return problems


def _video_problems(video: VideoMetadata, pose: PoseData | None) -> list[str]:
    problems = []
    if not video.paths:
        problems.append("video.paths: empty")
    for p in video.paths:
        if not Path(p).is_file():
            problems.append(f"video.paths: file not found: {p}")
    if video.fps is None and (pose is None or pose.fps is None) and (
        pose is None or pose.timestamps is None
    ):
        problems.append("video.fps: missing (and the pose data have no fps)")
    if video.frame_counts is not None and len(video.frame_counts) != len(video.paths):
        problems.append(
            f"video.frame_counts: {len(video.frame_counts)} counts for {len(video.paths)} files"
        )
    if video.frame_counts is None and len(video.paths) > 1:
        problems.append("video.frame_counts: required when a recording has several files")
    return problems


def check_dandi_metadata(
    subject: SubjectMetadata | None,
    session: SessionMetadata | None,
    pose: PoseData | None = None,
    video: VideoMetadata | None = None,
    *,
    dandi: bool = True,
) -> None:
    """Raise one :class:`MetadataError` listing every problem (see :func:`metadata_problems`).

    Raises:
        MetadataError: with ``problems`` holding one line per field.
    """
    problems = metadata_problems(subject, session, pose, video, dandi=dandi)
    if problems:
        raise MetadataError(problems)


# ------------------------------------------------------------------- building
def _compressed(data: np.ndarray, compression: str | None = COMPRESSION):
    """Wrap data for HDF5 with a filter: ``"gzip"`` (portable, default), ``"lzf"`` (fast,
    h5py-only readers) or ``None`` (no filter, fastest).

    gzip: standard ``shuffle`` + ``deflate`` chunks that any HDF5 reader opens, made
    fast: chunks of up to 16384 rows keep x and y (all columns) together; each chunk
    is byte-shuffled and deflated (zlib-ng when installed: the same zlib streams, ~1.5x
    faster) in threads and stored with h5py's direct chunk write into an in-memory HDF5
    dataset, which hdmf then copies into the NWB file chunk by chunk (H5Ocopy: no second
    compression).
    """
    from hdmf.backends.hdf5.h5_utils import H5DataIO

    if compression is None:
        return data
    if compression not in ("gzip", "lzf"):
        raise NWBExportError(f"compression must be 'gzip', 'lzf' or None, not {compression!r}")
    if compression == "lzf":
        return H5DataIO(data=data, compression="lzf", shuffle=True)
    from concurrent.futures import ThreadPoolExecutor

    import h5py

    try:  # zlib-ng writes the same zlib streams ~1.5x faster
        from zlib_ng import zlib_ng as zlib
    except ImportError:  # pragma: no cover - the nwb extra installs it
        import zlib

    array = np.ascontiguousarray(data)
    if array.size == 0 or array.dtype.kind not in "fiu" or array.ndim not in (1, 2):
        return H5DataIO(data=data, compression="gzip", compression_opts=COMPRESSION_LEVEL,
                        shuffle=True)
    rows = min(len(array), 16384)
    chunk_shape = (rows, *array.shape[1:])
    item = array.dtype.itemsize

    def deflate(start: int) -> tuple[int, bytes]:
        block = array[start:start + rows]
        if len(block) < rows:  # HDF5 stores edge chunks at full size
            block = np.concatenate([block, np.zeros((rows - len(block), *array.shape[1:]),
                                                    array.dtype)])
        shuffled = np.frombuffer(block.tobytes(), np.uint8).reshape(-1, item).T.tobytes()
        return start, zlib.compress(shuffled, COMPRESSION_LEVEL)

    memory = h5py.File(f"element-pose-{uuid.uuid4().hex}.h5", "w", driver="core",
                       backing_store=False)
    dset = memory.create_dataset("data", shape=array.shape, dtype=array.dtype,
                                 chunks=chunk_shape, compression="gzip",
                                 compression_opts=COMPRESSION_LEVEL, shuffle=True)
    starts = range(0, len(array), rows)
    workers = min(len(starts), 4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start, payload in (pool.map(deflate, starts) if workers > 1
                               else map(deflate, starts)):
            dset.id.write_direct_chunk((start, *([0] * (array.ndim - 1))), payload)
    return H5DataIO(data=dset, link_data=False)  # the dataset keeps its file open


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


def _external_path(path: str | Path, relative_to: str | Path | None) -> str:
    path = Path(path).absolute()
    if relative_to is None:
        return str(path)
    try:
        return os.path.relpath(path, Path(relative_to).absolute())
    except ValueError:  # different drive (Windows)
        return str(path)


def _behavior_module(nwbfile):
    if BEHAVIOR_MODULE in nwbfile.processing:
        return nwbfile.processing[BEHAVIOR_MODULE]
    return nwbfile.create_processing_module(
        name=BEHAVIOR_MODULE, description="Behavioral data: pose estimation (ndx-pose)"
    )


def _get_or_create_skeleton(module, name: str, nodes: list[str], edges: np.ndarray, subject):
    from ndx_pose import Skeleton, Skeletons

    if "Skeletons" in module.data_interfaces:
        skeletons = module["Skeletons"]
    else:
        skeletons = Skeletons(name="Skeletons")
        module.add(skeletons)
    if name in skeletons.skeletons:
        existing = skeletons.skeletons[name]
        same_nodes = [str(n) for n in existing.nodes[:]] == nodes
        old_edges = np.asarray(existing.edges[:]).reshape(-1, 2)
        if same_nodes and np.array_equal(old_edges, edges.reshape(-1, 2)):
            return existing
        name = f"{name}_{len(skeletons.skeletons)}"
    skeleton = Skeleton(name=name, nodes=nodes, edges=edges, subject=subject)
    skeletons.add_skeletons(skeleton)
    return skeleton


def _skeleton_edges(pose: PoseData) -> np.ndarray:
    edges = [(pose.keypoints.index(a), pose.keypoints.index(b)) for a, b in pose.skeleton]
    dtype = np.uint8 if len(pose.keypoints) <= 255 else np.uint16
    return np.asarray(edges, dtype=dtype).reshape(-1, 2)


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

    Returns:
        The ``ndx_pose.PoseEstimation``.

    Raises:
        NWBExportError: several individuals, a name already used, no time base.
    """
    from ndx_pose import PoseEstimation, PoseEstimationSeries
    from pynwb.image import ImageSeries

    if len(pose.individuals) != 1:
        raise NWBExportError(
            f"an NWB file holds one subject but the pose data have {len(pose.individuals)} "
            f"individuals {pose.individuals}: use plan_individual_files / "
            "write_nwb_per_individual"
        )
    if pose.timestamps is None and pose.fps is None:
        raise NWBExportError("pose data have neither timestamps nor fps: cannot write time")
    module = _behavior_module(nwbfile)
    if name in module.data_interfaces:
        raise NWBExportError(
            f"processing/{BEHAVIOR_MODULE} already holds {name!r}; pass a distinct name= "
            "(e.g. 'PoseEstimation_<camera>') for another camera or model"
        )
    subject = nwbfile.subject
    device = _get_or_create_device(nwbfile, camera) if camera is not None else None
    skeleton_owner = subject.subject_id if subject is not None else pose.individuals[0]
    skeleton = _get_or_create_skeleton(
        module, f"{skeleton_owner}_skeleton", list(pose.keypoints), _skeleton_edges(pose),
        subject,
    )
    three_d = pose.n_space == 3
    unit = unit or ("a.u." if three_d else "pixels")
    reference_frame = reference_frame or (REFERENCE_FRAME_3D if three_d else REFERENCE_FRAME_2D)

    # regular sampling is written as rate + starting time (NWB best practice); only
    # irregular timestamps are stored, once, and linked from the other series
    timestamps = _irregular_timestamps(pose)
    time_kwargs: dict[str, Any]
    if timestamps is not None:
        time_kwargs = {"timestamps": _compressed(timestamps, compression)}
    else:
        time_kwargs = {"rate": float(pose.fps), "starting_time": float(pose.time()[0])}
    series = []
    for k, keypoint in enumerate(pose.keypoints):
        pes = PoseEstimationSeries(
            name=keypoint,
            description=f"Estimated position of {keypoint}.",
            data=_compressed(np.ascontiguousarray(pose.position[:, 0, k, :], np.float32),
                             compression),
            unit=unit,
            reference_frame=reference_frame,
            confidence=_compressed(np.ascontiguousarray(pose.confidence[:, 0, k], np.float32),
                                   compression),
            confidence_definition=confidence_definition,
            **time_kwargs,
        )
        series.append(pes)
        if timestamps is not None and k == 0 and link_timestamps:
            time_kwargs = {"timestamps": pes}  # link, do not duplicate

    source_video = None
    if video is not None:
        video_name = video.name or f"{camera.name if camera else 'camera'}_video"
        if video_name in nwbfile.acquisition:
            source_video = nwbfile.acquisition[video_name]
        else:
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
                "external_file": [_external_path(p, relative_to) for p in video.paths],
                "starting_frame": starting_frame,
                "device": device,
            }
            if video.width and video.height:
                kwargs["dimension"] = [int(video.width), int(video.height)]
            fps = video.fps or pose.fps
            if timestamps is not None and (n_samples == pose.n_frames or fps is None):
                # one frame per pose sample: share the times
                kwargs["timestamps"] = series[0] if link_timestamps else timestamps
            else:
                kwargs.update(rate=float(fps), starting_time=float(pose.time()[0]),
                              num_samples=n_samples)
            source_video = ImageSeries(**{k: v for k, v in kwargs.items() if v is not None})
            nwbfile.add_acquisition(source_video)

    software = pose.source_software or "unknown"
    if description is None:
        description = (f"Estimated positions of {len(pose.keypoints)} keypoints"
                       f"{' (3D)' if three_d else ''} by {software}"
                       f"{' model ' + pose.scorer if pose.scorer else ''}.")
        if pose.provenance:
            steps = ", ".join(str(s.get("step", s)) for s in pose.provenance)
            description += f" Processing steps: {steps}."
    pe_kwargs: dict[str, Any] = {
        "name": name,
        "pose_estimation_series": series,
        "description": description,
        "scorer": pose.scorer or None,
        "source_software": software,
        "source_software_version": pose.source_software_version,
        "skeleton": skeleton,
        "device": device,
        "source_video": source_video,
    }
    pose_estimation = PoseEstimation(**{k: v for k, v in pe_kwargs.items() if v is not None})
    module.add(pose_estimation)
    return pose_estimation


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
            io.write(nwbfile)
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
    from pynwb import NWBHDF5IO

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no NWB file to append to: {path}")
    if camera is None and video is not None:
        camera = CameraMetadata()
    problems = metadata_problems(None, None, pose, video, dandi=False)
    problems = [p for p in problems if not p.startswith("session")]
    if problems:
        raise MetadataError(problems, context=f"append to {path}")
    with NWBHDF5IO(str(path), mode="a") as io:
        nwbfile = io.read()
        # hdmf cannot link to a dataset created in the same append: store times per series
        add_pose_estimation(nwbfile, pose, camera=camera, video=video, name=name,
                            relative_to=path.parent, link_timestamps=False, **pose_kwargs)
        if training is not None:
            add_pose_training(nwbfile, training, pose, relative_to=path.parent)
        io.write(nwbfile)
    log.info("appended %s to %s", name, path)
    return path


# ---------------------------------------------------------------- multi-animal
@dataclasses.dataclass
class IndividualExport:
    """One file's worth of a multi-animal export (see :func:`plan_individual_files`).

    Attributes:
        individual: Individual name in the pose data.
        pose: The pose data of this individual only.
        subject: Subject metadata for this file.
        session: Session metadata for this file (a distinct identifier).
        relpath: Path inside a dandiset: ``sub-<id>/sub-<id>_ses-<id>_<suffix>.nwb``.
    """

    individual: str
    pose: PoseData
    subject: SubjectMetadata
    session: SessionMetadata
    relpath: str


def _safe_id(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", value).strip("-") or "x"


def plan_individual_files(
    pose: PoseData,
    subject: SubjectMetadata,
    session: SessionMetadata,
    subjects: Mapping[str, SubjectMetadata] | None = None,
    individuals: Sequence[str] | None = None,
) -> list[IndividualExport]:
    """Split pose data per individual, with a subject and file path for each.

    Subject ids come from ``subjects[individual]`` when given, otherwise
    ``"<subject.subject_id>-<individual>"`` (the individual name made safe for DANDI),
    inheriting species, sex, age and the rest from ``subject``. Single-individual data
    keep ``subject`` as is. Each file gets its own NWB identifier.

    Args:
        pose: Pose data with one or more individuals.
        subject: The session's subject (or the template for derived subjects).
        session: The session.
        subjects: Optional explicit subject per individual name.
        individuals: Which individuals to export (all by default), e.g. to leave out
            DeepLabCut's ``"single"`` (unique body parts).

    Returns:
        One :class:`IndividualExport` per individual, in order; loop and write each
        with :func:`write_nwb`.
    """
    from element_pose.export.dandi import dandi_relpath

    subjects = dict(subjects or {})
    names = list(individuals) if individuals is not None else list(pose.individuals)
    plans = []
    for individual in names:
        if individual in subjects:
            sub = subjects[individual]
        elif len(pose.individuals) == 1:
            sub = subject
        else:
            sub = dataclasses.replace(
                subject,
                subject_id=f"{subject.subject_id}-{_safe_id(individual)}",
                description=(subject.description + "; " if subject.description else "")
                + f"individual {individual!r} of a multi-animal recording",
            )
        ses = session
        if len(names) > 1 or len(pose.individuals) > 1:
            ses = dataclasses.replace(
                session,
                identifier=(f"{session.identifier}-{_safe_id(individual)}"
                            if session.identifier else None),
            )
        plans.append(IndividualExport(
            individual=individual,
            pose=pose.select(individuals=[individual]),
            subject=sub,
            session=ses,
            relpath=dandi_relpath(sub.subject_id, session.session_id),
        ))
    ids = [p.subject.subject_id for p in plans]
    if len(set(ids)) != len(ids):
        raise NWBExportError(f"individuals map to duplicate subject ids: {ids}")
    return plans


def write_nwb_per_individual(
    output_dir: str | Path,
    pose: PoseData,
    subject: SubjectMetadata,
    session: SessionMetadata,
    *,
    subjects: Mapping[str, SubjectMetadata] | None = None,
    individuals: Sequence[str] | None = None,
    overwrite: bool = False,
    **kwargs: Any,
) -> dict[str, Path]:
    """Write one NWB file per individual under ``output_dir`` in the DANDI layout.

    All files' metadata are checked before the first is written. Keyword arguments
    go to :func:`write_nwb` (camera, video, name, ...).

    Returns:
        Individual name -> written path.

    Raises:
        MetadataError: listing the problems of every file, before writing any.
    """
    plans = plan_individual_files(pose, subject, session, subjects, individuals)
    problems = []
    for plan in plans:
        problems += [f"[{plan.individual}] {p}" for p in metadata_problems(
            plan.subject, plan.session, plan.pose, kwargs.get("video"),
            dandi=kwargs.get("require_dandi", True))]
    if problems:
        raise MetadataError(problems)
    output_dir = Path(output_dir)
    return {
        plan.individual: write_nwb(output_dir / plan.relpath, plan.pose, plan.subject,
                                   plan.session, overwrite=overwrite, **kwargs)
        for plan in plans
    }


# -------------------------------------------------------------------- training
def read_dlc_labels(path: str | Path) -> tuple[str, list[dict[str, Any]]]:
    """Read a DeepLabCut ``CollectedData_<scorer>.h5`` (labelled frames).

    Returns:
        ``(scorer, rows)``; each row ``{"video", "image", "frame_index",
        "individual", "bodyparts": {name: (x, y)}}`` with NaN for unlabelled points.
    """
    import pandas as pd

    df = pd.read_hdf(path)
    names = list(df.columns.names)
    scorer = str(df.columns.get_level_values(0)[0])
    rows = []
    for index, values in df.iterrows():
        parts = list(index) if isinstance(index, tuple) else Path(str(index)).parts
        image = str(parts[-1])
        video = str(parts[-2]) if len(parts) >= 2 else Path(path).parent.name
        digits = re.findall(r"\d+", Path(image).stem)
        if not digits:
            raise NWBExportError(f"cannot read a frame number from image name {image!r}")
        per_individual: dict[str, dict[str, list[float]]] = {}
        for column, value in values.items():
            level = dict(zip(names, column, strict=True))
            individual = str(level.get("individuals", SINGLE_INDIVIDUAL))
            bodypart = str(level["bodyparts"])
            xy = per_individual.setdefault(individual, {}).setdefault(
                bodypart, [np.nan, np.nan])
            if level["coords"] in ("x", "y"):
                xy["xy".index(level["coords"])] = float(value)
        for individual, bodyparts in per_individual.items():
            rows.append({"video": video, "image": image, "frame_index": int(digits[-1]),
                         "individual": individual,
                         "bodyparts": {k: tuple(v) for k, v in bodyparts.items()}})
    return scorer, rows


def add_pose_training(nwbfile, training: TrainingData, pose: PoseData | None = None, *,
                      relative_to: str | Path | None = None):
    """Add ndx-pose ``PoseTraining`` from DeepLabCut labelled frames.

    Node order follows the skeleton written for ``pose`` (the file's first skeleton
    when ``pose`` is ``None``). Each labelled video becomes an external ImageSeries
    in ``SourceVideos``; each labelled image a ``TrainingFrame`` with one
    ``SkeletonInstance`` per labelled individual.

    Raises:
        NWBExportError: labels name body parts the skeleton lacks, or a video is missing.
    """
    from ndx_pose import (
        PoseTraining,
        SkeletonInstance,
        SkeletonInstances,
        SourceVideos,
        TrainingFrame,
        TrainingFrames,
    )
    from pynwb.image import ImageSeries

    from element_pose.io.video import probe_video

    module = _behavior_module(nwbfile)
    if training.name in module.data_interfaces:
        raise NWBExportError(f"processing/{BEHAVIOR_MODULE} already holds {training.name!r}")
    if "Skeletons" not in module.data_interfaces or not module["Skeletons"].skeletons:
        raise NWBExportError("add pose data (and its skeleton) before the training data")
    skeletons = module["Skeletons"].skeletons
    skeleton = next(iter(skeletons.values()))
    if pose is not None:
        owner = nwbfile.subject.subject_id if nwbfile.subject else pose.individuals[0]
        skeleton = skeletons.get(f"{owner}_skeleton", skeleton)
    nodes = [str(n) for n in skeleton.nodes[:]]

    videos: dict[str, Any] = {}
    frames = []
    for label_file in training.labels:
        scorer, rows = read_dlc_labels(label_file)
        annotator = training.annotator or scorer
        by_frame: dict[tuple[str, str], list[dict]] = {}
        for row in rows:
            by_frame.setdefault((row["video"], row["image"]), []).append(row)
        for (video_name, image), instances in by_frame.items():
            unknown = set().union(*(r["bodyparts"] for r in instances)) - set(nodes)
            if unknown:
                raise NWBExportError(
                    f"{label_file}: labelled body parts {sorted(unknown)} are not in the "
                    f"skeleton {nodes}"
                )
            if video_name not in videos:
                if video_name not in training.videos:
                    raise NWBExportError(
                        f"{label_file}: no video given for labelled video {video_name!r} "
                        f"(known: {sorted(training.videos)})"
                    )
                vpath = Path(training.videos[video_name])
                info = probe_video(vpath)
                videos[video_name] = ImageSeries(
                    name=video_name,
                    description=f"Training video {vpath.name} (external file)",
                    unit="n.a.",
                    format="external",
                    external_file=[_external_path(vpath, relative_to)],
                    starting_frame=[0],
                    rate=float(info.fps),
                    num_samples=int(info.n_frames),
                    dimension=[int(info.width), int(info.height)],
                )
            skeleton_instances = []
            for i, row in enumerate(instances):
                xy = np.array([row["bodyparts"].get(n, (np.nan, np.nan)) for n in nodes],
                              dtype=np.float64)
                visible = np.isfinite(xy).all(axis=1)
                if not visible.any():
                    continue
                skeleton_instances.append(SkeletonInstance(
                    name=row["individual"], id=np.uint8(i), node_locations=xy,
                    node_visibility=visible.tolist(), skeleton=skeleton,
                ))
            if not skeleton_instances:
                continue
            frames.append(TrainingFrame(
                name=f"{video_name}_{Path(image).stem}",
                annotator=annotator,
                skeleton_instances=SkeletonInstances(skeleton_instances=skeleton_instances),
                source_video=videos[video_name],
                source_video_frame_index=np.uint64(instances[0]["frame_index"]),
            ))
    training_container = PoseTraining(
        name=training.name,
        training_frames=TrainingFrames(training_frames=frames),
        source_videos=SourceVideos(image_series=list(videos.values())),
    )
    module.add(training_container)
    return training_container


# --------------------------------------------------------------------- reading
def _find_pose_estimation(nwbfile, name: str):
    modules = [nwbfile.processing[BEHAVIOR_MODULE]] if BEHAVIOR_MODULE in nwbfile.processing \
        else []
    modules += [m for k, m in nwbfile.processing.items() if k != BEHAVIOR_MODULE]
    for module in modules:
        if name in module.data_interfaces:
            return module[name]
    found = [f"{m.name}/{k}" for m in modules for k, v in m.data_interfaces.items()
             if v.neurodata_type == "PoseEstimation"]
    raise KeyError(f"no PoseEstimation named {name!r}; found {found or 'none'}")


def read_pose_from_nwb(path: str | Path, name: str = DEFAULT_NAME) -> PoseData:
    """Read one ``PoseEstimation`` back as :class:`PoseData` (one individual).

    Keypoints follow the skeleton's node order; the individual is named after the
    file's subject id.

    Raises:
        KeyError: no PoseEstimation of that name (the message lists those present).
    """
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), mode="r") as io:
        nwbfile = io.read()
        pe = _find_pose_estimation(nwbfile, name)
        series = pe.pose_estimation_series
        keypoints = ([str(n) for n in pe.skeleton.nodes[:]] if pe.skeleton is not None
                     else list(series))
        missing = [k for k in keypoints if k not in series]
        if missing:
            raise NWBExportError(f"{path}: skeleton nodes {missing} have no series")
        first = series[keypoints[0]]
        n_frames = first.data.shape[0]
        position = np.stack([np.asarray(series[k].data[:], np.float32) for k in keypoints],
                            axis=1)[:, None]
        confidence = np.stack([
            np.asarray(series[k].confidence[:], np.float32) if series[k].confidence is not None
            else np.full(n_frames, np.nan, np.float32) for k in keypoints], axis=1)[:, None]
        timestamps = np.asarray(first.timestamps[:], np.float64) \
            if first.timestamps is not None else None
        fps = float(first.rate) if first.rate is not None else None
        start = float(first.starting_time) if first.starting_time is not None else 0.0
        if fps is None and pe.source_video is not None and pe.source_video.rate is not None:
            fps = float(pe.source_video.rate)
        skeleton = []
        if pe.skeleton is not None and pe.skeleton.edges is not None:
            skeleton = [(keypoints[int(a)], keypoints[int(b)])
                        for a, b in np.asarray(pe.skeleton.edges[:]).reshape(-1, 2)]
        individual = nwbfile.subject.subject_id if nwbfile.subject is not None \
            else SINGLE_INDIVIDUAL
        return PoseData(
            position=position,
            confidence=confidence,
            keypoints=keypoints,
            individuals=[individual],
            fps=fps,
            timestamps=timestamps,
            start_time=start,
            skeleton=skeleton,
            scorer=pe.scorer or "",
            source_software=pe.source_software or "unknown",
            source_software_version=pe.source_software_version,
        )


def list_pose_estimations(path: str | Path) -> list[str]:
    """Names of the PoseEstimation containers in a file (``module/name``)."""
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), mode="r") as io:
        nwbfile = io.read()
        return [f"{m.name}/{k}" for m in nwbfile.processing.values()
                for k, v in m.data_interfaces.items() if v.neurodata_type == "PoseEstimation"]


# ------------------------------------------------------------------ inspection
def inspect_nwb(path: str | Path, importance_threshold: str = "BEST_PRACTICE_SUGGESTION",
                *, skip_validate: bool = False) -> list[Any]:
    """Run NWB Inspector on a file; messages are logged and returned.

    Args:
        path: The NWB file.
        importance_threshold: Lowest ``nwbinspector.Importance`` name reported.
        skip_validate: Skip the PyNWB schema validation step (it dominates the run
            time on files with many training frames).

    Returns:
        ``nwbinspector.InspectorMessage`` objects (attributes ``importance``,
        ``check_function_name``, ``message``, ``location``).
    """
    from nwbinspector import Importance, inspect_nwbfile

    messages = [m for m in inspect_nwbfile(
        nwbfile_path=str(path), importance_threshold=Importance[importance_threshold],
        skip_validate=skip_validate)
        if m is not None]
    for m in messages:
        level = logging.WARNING if m.importance.value >= Importance.CRITICAL.value \
            else logging.INFO
        log.log(level, "%s: [%s] %s at %s: %s", Path(path).name, m.importance.name,
                m.check_function_name, m.location, m.message)
    return messages


def check_nwb(path: str | Path, *, skip_validate: bool = False) -> list[Any]:
    """Inspect a file and raise when any message is CRITICAL or worse.

    Schema validation failures (``PYNWB_VALIDATION``) and checks that crashed
    (``ERROR``) count as worse than CRITICAL.

    Returns:
        The (non-critical) messages when the file passes.

    Raises:
        NWBInspectionError: listing the critical messages.
    """
    from nwbinspector import Importance

    messages = inspect_nwb(path, skip_validate=skip_validate)
    critical = [m for m in messages if m.importance.value >= Importance.CRITICAL.value]
    if critical:
        raise NWBInspectionError(path, critical)
    return messages
