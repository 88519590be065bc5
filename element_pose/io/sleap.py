"""SLEAP predictions (``.slp``) and analysis files (``.h5``) -> :class:`PoseData`.

Read through sleap-io (imported inside the functions, never at module import):

* ``.slp``: a labels/predictions file (HDF5 with ``metadata``, ``frames``,
  ``instances``, ``points``/``pred_points`` ...).  One video is read (``video=``
  chooses when the file holds several).
* analysis ``.h5`` (``sleap-convert --format analysis`` or
  :func:`sleap_io.save_analysis_h5`): datasets ``tracks``, ``node_names``,
  ``track_names``, ``point_scores``, ``instance_scores`` ...

Mapping:

* Tracks become individuals, named after the tracks, in the file's track order;
  instances without a track in a tracked file are dropped (logged).  A file without
  tracks and at most one instance per frame gives one individual ``individual_0``;
  several untracked instances per frame become ``instance_0``, ``instance_1``...
  (identities are then not kept across frames; logged as a warning).
* Frame ``i`` of the arrays is frame index ``i`` of the video, from 0 to the video's
  last frame (its length as the ``.slp`` stores it, else as the video file says when
  it is at hand; else the last labelled frame); frames without instances are missing
  (NaN).
* Confidence is the point score (``confidence="point"``, the default; what
  movement does) or the instance score broadcast over the instance's visible
  points (``confidence="instance"``).  User-labelled instances have score 1.
  Scores must be finite and >= 0 (SLEAP's peak values may slightly exceed 1;
  that is logged, not refused).
* The skeleton's edges are kept; source software ``SLEAP`` with the version found in
  the file's provenance (``sleap_version``), when recorded.

Why not movement's loader (``movement.io.load_poses.from_file(path, "SLEAP")``,
movement 0.15; ``tests/io/test_movement_parity.py`` checks both read equal values):
it has no instance scores as confidence, no choice of video, no skeleton edges, scorer
or version in its result, keeps the point score of a point that has no position (we
leave it NaN), names an untracked animal ``id_0`` (``.slp``) or ``track_0`` (analysis
``.h5``) where every other reader here says ``individual_0``, and checks no score
range.  Speed (3,000 frames x 2 tracks x 10 nodes, best of 3 on the project's 2-core
machine): ``.slp`` 1.15 s here against 1.10 s; analysis ``.h5`` 0.94 s here against
0.06 s, because sleap-io builds a ``Labels`` object per instance where movement reads
the arrays with h5py -- the one case where movement is much faster.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from element_pose.core.pose import SINGLE_INDIVIDUAL, PoseData
from element_pose.io.registry import (
    PoseFormatError,
    check_scores,
    hdf5_keys,
    is_hdf5,
    reason,
    register_format,
    require_file,
    require_hdf5_keys,
)

log = logging.getLogger(__name__)

__all__ = [
    "CONFIDENCE_KINDS",
    "SleapFormatError",
    "detect_sleap_analysis_h5",
    "detect_slp",
    "import_sleap_io",
    "read_sleap",
    "validate_sleap_analysis_h5",
    "validate_slp",
]

CONFIDENCE_KINDS = ("point", "instance")
SLP_GROUPS = ("metadata", "frames", "instances")
ANALYSIS_DATASETS = ("tracks", "node_names")


class SleapFormatError(PoseFormatError):
    """A SLEAP file is missing, unreadable or not in the expected layout."""


def import_sleap_io():
    """Import sleap-io, with an install hint when it is missing."""
    try:
        import sleap_io
    except ImportError as exc:
        raise ImportError(
            "reading SLEAP files needs sleap-io: pip install 'element-pose[sleap]'"
        ) from exc
    return sleap_io


# ------------------------------------------------------------------ validators
def validate_slp(path: Path) -> None:
    """Check that a file is a SLEAP ``.slp`` labels file.

    Raises:
        SleapFormatError: naming the file and what is missing.
    """
    require_hdf5_keys(path, "SLEAP .slp file", SLP_GROUPS, SleapFormatError)


def validate_sleap_analysis_h5(path: Path) -> None:
    """Check that a file is a SLEAP analysis ``.h5`` (``tracks`` and ``node_names``).

    Raises:
        SleapFormatError: naming the file and what is missing.
    """
    require_hdf5_keys(path, "SLEAP analysis .h5 file", ANALYSIS_DATASETS, SleapFormatError)


def detect_slp(path: Path) -> bool:
    """Whether a file looks like a SLEAP ``.slp`` file."""
    return path.suffix.lower() == ".slp" and is_hdf5(path)


def detect_sleap_analysis_h5(path: Path) -> bool:
    """Whether a file looks like a SLEAP analysis ``.h5`` file."""
    if path.suffix.lower() not in (".h5", ".hdf5") or not is_hdf5(path):
        return False
    keys = hdf5_keys(path)
    return all(k in keys for k in ANALYSIS_DATASETS)


# ---------------------------------------------------------------------- reader
def _load_labels(path: Path):
    sio = import_sleap_io()

    try:
        if path.suffix.lower() == ".slp":
            return sio.load_slp(str(path), open_videos=False)
        return sio.load_analysis_h5(str(path))
    except Exception as exc:  # sleap-io/h5py raise many types on malformed files
        raise SleapFormatError(
            f"cannot read SLEAP file {path}: {reason(exc)}"
        ) from exc


def _choose_video(labels, path: Path, video: int | str | None):
    videos = list(labels.videos)
    if not videos:
        raise SleapFormatError(f"{path} holds no video")
    if video is None:
        if len(videos) > 1:
            names = [Path(str(v.filename)).name for v in videos]
            raise SleapFormatError(
                f"{path} holds {len(videos)} videos {names}; pass video= (index or file name)"
            )
        return videos[0]
    if isinstance(video, int):
        if not 0 <= video < len(videos):
            raise SleapFormatError(f"{path} has no video {video} (it holds {len(videos)})")
        return videos[video]
    for v in videos:
        if str(v.filename) == str(video) or Path(str(v.filename)).name == Path(video).name:
            return v
    raise SleapFormatError(
        f"{path} has no video {video!r}; videos: {[str(v.filename) for v in videos]}"
    )


def _track_names(tracks: list) -> list[str]:
    names = [str(t.name) if t.name not in (None, "") else f"track_{i}"
             for i, t in enumerate(tracks)]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate track names {names}")
    return names


def _frame_instances(lf, slot_of: dict[int, int] | None, user_instances: bool) -> list:
    """``[(slot, instance)]`` of one labelled frame (user labels override predictions)."""
    sio = import_sleap_io()

    if slot_of is not None:  # tracked: one instance per track
        chosen: dict[int, object] = {}
        for inst in lf.instances:
            if inst.track is None or id(inst.track) not in slot_of:
                continue
            if isinstance(inst, sio.PredictedInstance):
                chosen.setdefault(id(inst.track), inst)
            elif user_instances:
                chosen[id(inst.track)] = inst
        return [(slot_of[k], inst) for k, inst in chosen.items()]
    predicted = list(lf.predicted_instances)
    users = list(lf.user_instances) if user_instances else []
    linked = {id(getattr(u, "from_predicted", None)) for u in users}
    return list(enumerate(users + [p for p in predicted if id(p) not in linked]))


def _video_length(video) -> int:
    """Frames of the video: the shape the ``.slp`` stores (sleap-io's
    ``backend_metadata["shape"]``), else the video file's own length when it is at hand
    (probed); 0 when neither is known (an analysis ``.h5``, a missing video)."""
    shape = video.shape  # backend closed: the stored backend_metadata shape, or None
    if shape:
        return int(shape[0])
    filename = video.filename
    if isinstance(filename, list):  # an image sequence: one frame per image
        return len(filename)
    if not filename or not Path(str(filename)).is_file():
        return 0
    from element_pose.io.video import VideoError, probe_video

    try:
        return int(probe_video(filename).n_frames)
    except VideoError as exc:
        log.info("frame count of %s unknown: %s", filename, exc)
        return 0


def _fill(labels, video, keypoints: list[str], user_instances: bool):
    """Arrays ``(frames, slots, keypoints, 2)``, point and instance scores, slot names."""
    sio = import_sleap_io()

    frames = sorted(labels.find(video), key=lambda lf: lf.frame_idx)
    tracks = list(labels.tracks)
    slot_of = {id(t): i for i, t in enumerate(tracks)} if tracks else None
    per_frame = [(lf.frame_idx, _frame_instances(lf, slot_of, user_instances)) for lf in frames]
    n_frames = max(frames[-1].frame_idx + 1 if frames else 0, _video_length(video))
    n_slots = len(tracks) if tracks else max([len(i) for _, i in per_frame] + [1])
    position = np.full((n_frames, n_slots, len(keypoints), 2), np.nan)
    points = np.full((n_frames, n_slots, len(keypoints)), np.nan)
    instance = np.full((n_frames, n_slots), np.nan)
    for frame, items in per_frame:
        for slot, inst in items:
            predicted = isinstance(inst, sio.PredictedInstance)
            values = inst.numpy(scores=True) if predicted else inst.numpy()
            position[frame, slot] = values[:, :2]
            points[frame, slot] = values[:, 2] if predicted else 1.0
            instance[frame, slot] = float(inst.score) if predicted else 1.0
    if tracks:
        untracked = sum(1 for lf in frames for i in lf.instances if i.track is None)
        if untracked:
            log.info("%d instances without a track were not read", untracked)
        names = _track_names(tracks)
    elif n_slots == 1:
        names = [SINGLE_INDIVIDUAL]
    else:
        names = [f"instance_{i}" for i in range(n_slots)]
        log.warning("%d untracked instances per frame: identities are not kept across "
                    "frames", n_slots)
    return position, points, instance, names


def _software_version(labels) -> str | None:
    prov = dict(labels.provenance or {})
    for key in ("sleap_version", "sleap_io_version"):
        if prov.get(key):
            return str(prov[key])
    return None


def read_sleap(
    path: str | Path,
    *,
    video: int | str | None = None,
    fps: float | None = None,
    confidence: str = "point",
    user_instances: bool = True,
) -> PoseData:
    """Read a SLEAP ``.slp`` or analysis ``.h5`` file into :class:`PoseData`.

    Args:
        path: The file.
        video: Which video of a multi-video ``.slp`` (index or file name).
        fps: Frame rate to attach (SLEAP files do not store one).
        confidence: ``"point"`` (point scores) or ``"instance"`` (instance score).
        user_instances: Prefer user-labelled instances over predictions of the
            same track (sleap-io's rule); ``False`` reads predictions only.

    Returns:
        Pose data with one individual per track.

    Raises:
        SleapFormatError: naming the file when it cannot be read, has several
            videos and no choice, several skeletons, or scores out of range.
    """
    if confidence not in CONFIDENCE_KINDS:
        raise ValueError(f"confidence must be one of {CONFIDENCE_KINDS}, got {confidence!r}")
    path = require_file(path, "SLEAP file", SleapFormatError)
    labels = _load_labels(path)
    chosen = _choose_video(labels, path, video)
    if len(labels.skeletons) != 1:
        raise SleapFormatError(
            f"{path} holds {len(labels.skeletons)} skeletons; element-pose reads one per file"
        )
    skeleton = labels.skeletons[0]
    keypoints = [str(n) for n in skeleton.node_names]
    try:
        position, points, instance, individuals = _fill(labels, chosen, keypoints,
                                                         user_instances)
    except ValueError as exc:
        raise SleapFormatError(f"cannot read SLEAP file {path}: {reason(exc)}") from exc
    present = ~np.isnan(position).any(axis=-1)
    position = np.where(present[..., None], position, np.nan)
    if confidence == "instance":
        scores = np.where(present, instance[:, :, None], np.nan)
    else:
        scores = np.where(present, points, np.nan)
    check_scores(scores, path, f"{confidence} score", 0.0, None, error=SleapFormatError)
    with np.errstate(invalid="ignore"):
        above = int((scores > 1.0).sum())
    if above:
        log.info("%s: %d %s scores above 1 (SLEAP peak values)", path, above, confidence)
    edges = [(str(a), str(b)) for a, b in skeleton.edge_names]
    prov = dict(labels.provenance or {})
    model_paths = prov.get("model_paths") or []
    scorer = Path(str(model_paths[0])).name if model_paths else ""
    return PoseData(
        position=position,
        confidence=scores,
        keypoints=keypoints,
        individuals=individuals,
        fps=fps,
        skeleton=edges,
        scorer=scorer,
        source_software="SLEAP",
        source_software_version=_software_version(labels),
    )


register_format(
    "sleap_slp",
    read_sleap,
    validator=validate_slp,
    detector=detect_slp,
    suffixes=(".slp",),
    software="SLEAP",
    description="SLEAP predictions/labels (.slp), tracks as individuals",
)
register_format(
    "sleap_analysis_h5",
    read_sleap,
    validator=validate_sleap_analysis_h5,
    detector=detect_sleap_analysis_h5,
    suffixes=(".h5",),
    software="SLEAP",
    description="SLEAP analysis HDF5 (.h5: tracks, node_names, point/instance scores)",
)
