"""NWB/DANDI metadata: the dataclasses a file is described by, and their checks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from element_pose.core.labels import LabelSet
from element_pose.core.pose import PoseData
from element_pose.io import dlc
from element_pose.io.video import probe_recording

__all__ = [
    "BEHAVIOR_MODULE",
    "COMMON_SPECIES",
    "COMPRESSION",
    "COMPRESSION_LEVEL",
    "CONFIDENCE_DEFINITION",
    "REFERENCE_FRAME_2D",
    "REFERENCE_FRAME_3D",
    "TRAINING_NAME",
    "CameraMetadata",
    "MetadataError",
    "NWBExportError",
    "NWBInspectionError",
    "SessionMetadata",
    "SubjectMetadata",
    "TrainingData",
    "VideoMetadata",
    "check_dandi_metadata",
    "metadata_problems",
    "normalize_sex",
    "normalize_species",
]


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
        info = probe_recording(list(paths))
        return cls(paths=[Path(p) for p in paths], fps=info.fps,
                   frame_counts=info.frame_counts, width=info.width, height=info.height,
                   name=name)


@dataclasses.dataclass
class TrainingData:
    """Labelled frames to store as ndx-pose ``PoseTraining``.

    Attributes:
        labels: DeepLabCut ``CollectedData_<scorer>.h5`` files (one per labelled video).
        videos: Video name (the ``labeled-data/<name>`` folder, or a frame id's folder)
            -> video file.  A folder without one refers to its image files instead.
        annotator: Who labelled; the h5 scorer (the set's scorer) when ``None``.
        name: Container name in the ``behavior`` module.
        label_set: Labelled frames of any engine (e.g. SLEAP labels read by
            :func:`element_pose.io.labels.read_label_set`), written besides ``labels``.
    """

    labels: Sequence[str | Path]
    videos: Mapping[str, str | Path]
    annotator: str | None = None
    name: str = TRAINING_NAME
    label_set: LabelSet | None = None

    @classmethod
    def from_label_set(cls, labels: LabelSet, videos: Mapping[str, str | Path] | None = None,
                       annotator: str | None = None) -> TrainingData:
        """Labelled frames of any engine (a DeepLabCut project's, SLEAP labels')."""
        return cls(labels=[], videos=dict(videos or {}), annotator=annotator,
                   label_set=labels)

    @classmethod
    def from_dlc_project(cls, config_path: str | Path, annotator: str | None = None,
                         ) -> TrainingData:
        """Collect the labelled-data h5 files and videos of a DeepLabCut project."""
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
    problems = _session_problems(session)
    if subject is None:
        if dandi:
            problems.append("subject: missing (DANDI needs subject_id, species, sex, age)")
    else:
        problems += _subject_id_problems(subject)
        if dandi:
            problems += _species_problems(subject) + _sex_problems(subject)
            problems += _age_required_problems(subject)
        problems += _age_problems(subject) + _birth_problems(subject, session)
    if pose is not None:
        problems += _pose_problems(pose)
    if video is not None:
        problems.extend(_video_problems(video, pose))
    return problems


def _session_problems(session: SessionMetadata | None) -> list[str]:
    """The session: present, an id without ``/``, an aware start time not in the future."""
    if session is None:
        return ["session: missing (session_id, session_start_time)"]
    problems = []
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
    return problems


def _subject_id_problems(subject: SubjectMetadata) -> list[str]:
    """The subject id: present, without ``/``."""
    if not subject.subject_id or not str(subject.subject_id).strip():
        return ["subject.subject_id: missing"]
    if "/" in str(subject.subject_id):
        return [f"subject.subject_id {subject.subject_id!r}: must not contain '/'"]
    return []


def _species_problems(subject: SubjectMetadata) -> list[str]:
    """DANDI: a Latin binomial or an NCBI taxonomy URL."""
    species = normalize_species(subject.species)
    if not species:
        return [
            "subject.species: missing (Latin binomial such as 'Mus musculus' or an "
            "NCBI taxonomy URL)"
        ]
    if not (_LATIN_RE.match(species) or _NCBI_RE.match(species)):
        return [
            f"subject.species {subject.species!r}: use a Latin binomial such as "
            "'Mus musculus' or an NCBI taxonomy URL "
            "(http://purl.obolibrary.org/obo/NCBITaxon_<id>)"
        ]
    return []


def _sex_problems(subject: SubjectMetadata) -> list[str]:
    """DANDI: one of M, F, O, U."""
    sex = normalize_sex(subject.sex)
    if not sex:
        return ["subject.sex: missing (one of M, F, O, U)"]
    if sex not in ("M", "F", "O", "U"):
        return [f"subject.sex {subject.sex!r}: must be one of M, F, O, U"]
    return []


def _age_required_problems(subject: SubjectMetadata) -> list[str]:
    """DANDI: an age or a date of birth."""
    if not subject.age and subject.date_of_birth is None:
        return [
            "subject.age / subject.date_of_birth: one is required (age as an "
            "ISO-8601 duration such as 'P90D', or the date of birth)"
        ]
    return []


def _age_problems(subject: SubjectMetadata) -> list[str]:
    """An age, when given, is an ISO-8601 duration (or a range of two)."""
    if subject.age and not _AGE_RE.match(str(subject.age)):
        return [
            f"subject.age {subject.age!r}: must be an ISO-8601 duration such as 'P90D', "
            "'P12W' or 'P2Y3M' (or a range 'P90D/P120D')"
        ]
    return []


def _birth_problems(subject: SubjectMetadata, session: SessionMetadata | None) -> list[str]:
    """A date of birth, when given, is aware (or a plain date) and before the session."""
    dob = subject.date_of_birth
    if dob is None:
        return []
    if isinstance(dob, dt.datetime) and not _is_aware(dob):
        return [f"subject.date_of_birth {dob!r}: must be timezone-aware (or a plain date)"]
    if (session is not None and _is_aware(session.session_start_time)
            and _as_aware_datetime(dob) > session.session_start_time):
        return [
            f"subject.date_of_birth {dob}: is after the session start "
            f"{session.session_start_time}"
        ]
    return []


def _pose_problems(pose: PoseData) -> list[str]:
    """The pose data: a time base, and one individual."""
    problems = []
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
