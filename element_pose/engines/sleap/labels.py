"""Labelled frames for sleap-nn: a :class:`~element_pose.core.labels.LabelSet` and its ``.slp``.

What SLEAP trains on is read as a ``LabelSet`` (the engine-neutral form every engine is
split and scored on) from the source ``ModelTraining`` gives: a DeepLabCut project
(``config.yaml`` + ``labeled-data/<video>/CollectedData_*.h5``) or a folder holding one
SLEAP ``.slp`` labels file (user instances).  :func:`to_sleap` turns a subset of its
frames back into ``sio.Labels`` (images of DeepLabCut frames as one image-sequence video
per labelled folder; frames of a ``.slp`` as they were), which :func:`save_slp` writes
with the images embedded, so a trained model set is self-contained.

Frame ids: DeepLabCut's ``labeled-data/<video>/img0042.png``; a ``.slp`` frame is
``<video stem>/img0042.png`` (the frame index), or the image's folder and name for
image-sequence videos.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from element_pose.core.labels import LabelSet
from element_pose.core.pose import SINGLE_INDIVIDUAL
from element_pose.engines.base import EngineError

__all__ = ["SleapLabels", "read_labels", "save_slp"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class SleapLabels:
    """A labelled set, with what turns its frames into ``sio.Labels``.

    Attributes:
        labels: The frames, keypoints, individuals and positions.
        source: The file or folder they were read from.
        frames: For a ``.slp`` source, ``{frame id: sio.LabeledFrame}``; else empty
            (images are ``labels.root / frame id``).
    """

    labels: LabelSet
    source: Path
    frames: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_sleap(self, frame_ids: list[str]):
        """``sio.Labels`` of these frames (user instances; unlabelled individuals left out).

        Raises:
            EngineError: a frame's image is missing.
        """
        import sleap_io as sio

        labels = self.labels
        skeleton = sio.Skeleton(list(labels.keypoints), edges=[list(e) for e in labels.skeleton])
        index = {f: i for i, f in enumerate(labels.frames)}
        videos: dict[str, Any] = {}
        if not self.frames:
            videos = _image_videos(labels, frame_ids)
        out = []
        for frame in frame_ids:
            xy = labels.xy[index[frame]]
            instances = [sio.Instance.from_numpy(points, skeleton=skeleton)
                         for points in xy if np.isfinite(points).all(axis=-1).any()]
            if self.frames:
                video, frame_idx = self.frames[frame].video, self.frames[frame].frame_idx
            else:
                video, folder_frames = videos[_folder(frame)]
                frame_idx = folder_frames.index(frame)
            out.append(sio.LabeledFrame(video=video, frame_idx=int(frame_idx),
                                        instances=instances))
        used = (list(dict.fromkeys(lf.video for lf in out)) if self.frames
                else [video for video, _ in videos.values()])
        return sio.Labels(out, videos=used, skeletons=[skeleton])


def _folder(frame: str) -> str:
    return PurePosixPath(frame).parent.as_posix()


def _image_videos(labels: LabelSet, frame_ids: list[str]) -> dict[str, tuple[Any, list[str]]]:
    """One image-sequence video per labelled folder: ``{folder: (video, its frame ids)}``."""
    import sleap_io as sio

    by_folder: dict[str, list[str]] = {}
    for frame in frame_ids:
        by_folder.setdefault(_folder(frame), []).append(frame)
    out = {}
    for folder, frames in by_folder.items():
        images = [labels.image(f) for f in frames]
        missing = [str(p) for p in images if not p.is_file()]
        if missing:
            raise EngineError(f"labelled images not found: {missing[:3]}")
        out[folder] = (sio.Video.from_filename([str(p) for p in images]), frames)
    return out


def save_slp(labels, path: Path) -> Path:
    """Write ``sio.Labels`` with their images embedded (the file stands alone).

    sleap-io draws progress bars on standard error while it embeds; they are dropped.
    """
    import sleap_io as sio

    with contextlib.redirect_stderr(io.StringIO()):
        sio.save_slp(labels, str(path), embed="user")
    return path


def read_labels(source: str | Path) -> SleapLabels:
    """The labelled frames of a DeepLabCut project or of a ``.slp`` (file or folder).

    Raises:
        EngineError: no labelled frame, an unreadable file, body parts that differ
            between labelled folders, or several ``.slp`` files to choose from.
    """
    path = Path(source)
    folder = path.parent if path.is_file() and path.name == "config.yaml" else path
    if path.suffix.lower() == ".slp":
        return _read_slp(path)
    if folder.is_dir() and (folder / "labeled-data").is_dir():
        return _read_dlc(folder)
    slps = sorted(folder.rglob("*.slp")) if folder.is_dir() else []
    if len(slps) == 1:
        return _read_slp(slps[0])
    if slps:
        raise EngineError(f"{folder} holds several .slp files {[p.name for p in slps]}: "
                          "give one")
    raise EngineError(f"no labelled frames in {source}: neither a DeepLabCut project "
                      "(labeled-data/) nor a SLEAP .slp labels file")


def _read_dlc(project: Path) -> SleapLabels:
    from element_pose.io.dlc import DLCFormatError
    from element_pose.io.dlc_labels import read_labeled_data

    files = sorted(project.glob("labeled-data/*/CollectedData_*.h5"))
    if not files:
        raise EngineError(f"no labelled frames (labeled-data/*/CollectedData_*.h5) in {project}")
    frames: list[str] = []
    blocks: list[np.ndarray] = []
    keypoints: list[str] | None = None
    individuals: list[str] | None = None
    scorer = ""
    for file in files:
        try:
            data = read_labeled_data(file)
        except DLCFormatError as exc:
            raise EngineError(str(exc)) from exc
        inds = data.individuals or [SINGLE_INDIVIDUAL]
        if keypoints is None:
            keypoints, individuals, scorer = data.bodyparts, inds, data.scorer
        elif data.bodyparts != keypoints or inds != individuals:
            raise EngineError(f"{file} labels body parts {data.bodyparts} of {inds}; "
                              f"the project's other folders label {keypoints} of {individuals}")
        values = data.table.to_numpy(dtype=np.float64)
        blocks.append(_dlc_positions(data, values, inds))
        frames += ["/".join(("labeled-data", file.parent.name, parts[-1]))
                   for parts in data.image_parts()]
    xy = np.concatenate(blocks)
    return SleapLabels(_label_set(frames, keypoints or [], individuals or [], xy,
                                  _dlc_skeleton(project, keypoints or []), project, scorer),
                       source=project)


def _dlc_positions(data, values: np.ndarray, individuals: list[str]) -> np.ndarray:
    """``(rows, individuals, keypoints, 2)`` from the table's columns (by name)."""
    names = list(data.table.columns.names)
    out = np.full((len(values), len(individuals), len(data.bodyparts), 2), np.nan)
    for c, column in enumerate(data.table.columns):
        level = dict(zip(names, column, strict=True))
        if level["coords"] not in ("x", "y"):
            continue
        i = individuals.index(str(level.get("individuals", SINGLE_INDIVIDUAL)))
        k = data.bodyparts.index(str(level["bodyparts"]))
        out[:, i, k, "xy".index(level["coords"])] = values[:, c]
    return out


def _dlc_skeleton(project: Path, keypoints: list[str]) -> list[tuple[str, str]]:
    from element_pose.io import dlc

    try:
        edges = dlc.config_skeleton(dlc.read_config(project / "config.yaml"))
    except Exception as exc:  # the skeleton is optional: a missing config has none
        log.debug("no skeleton read from %s: %s", project, exc)
        return []
    return [(a, b) for a, b in edges if a in keypoints and b in keypoints]


def _label_set(frames, keypoints, individuals, xy, skeleton, root, scorer) -> LabelSet:
    labels = LabelSet(frames=frames, keypoints=keypoints, individuals=individuals, xy=xy,
                      skeleton=skeleton, root=root, scorer=scorer)
    keep = labels.labelled()
    if not keep.any():
        raise EngineError(f"no labelled point in {root}: nothing to train on")
    return labels.select([f for f, k in zip(labels.frames, keep, strict=True) if k])


def _slp_frame_id(lf) -> str:
    video = lf.video
    filename = video.filename
    if isinstance(filename, list):  # an image sequence: the image's folder and name
        image = Path(filename[lf.frame_idx])
        return f"{image.parent.name}/{image.name}"
    source = getattr(video, "source_video", None)
    name = Path(str(source.filename if source is not None else filename)).stem
    return f"{name}/img{int(lf.frame_idx):04d}.png"


def _read_slp(path: Path) -> SleapLabels:
    import sleap_io as sio

    try:
        labels = sio.load_slp(str(path))
    except Exception as exc:  # sleap-io raises many types on foreign files
        raise EngineError(f"cannot read SLEAP labels {path}: {type(exc).__name__}: "
                          f"{exc}") from exc
    if len(labels.skeletons) != 1:
        raise EngineError(f"{path} holds {len(labels.skeletons)} skeletons; one is needed")
    skeleton = labels.skeletons[0]
    user = [(lf, list(lf.user_instances)) for lf in labels.labeled_frames if lf.user_instances]
    if not user:
        raise EngineError(f"{path} holds no user-labelled instance: nothing to train on")
    width = max(len(inst) for _, inst in user)
    tracks = [t.name for t in labels.tracks]
    tracked = bool(tracks) and all(i.track is not None for _, inst in user for i in inst)
    individuals = (tracks if tracked else
                   [SINGLE_INDIVIDUAL] if width == 1 else [f"instance_{i}" for i in range(width)])
    xy = np.full((len(user), len(individuals), len(skeleton.node_names), 2), np.nan)
    frames, originals = [], {}
    for row, (lf, instances) in enumerate(user):
        for slot, inst in enumerate(instances):
            where = tracks.index(inst.track.name) if tracked else slot
            xy[row, where] = inst.numpy()[:, :2]
        frame = _slp_frame_id(lf)
        frames.append(frame)
        originals[frame] = lf
    label_set = _label_set(frames, list(skeleton.node_names), individuals, xy,
                           [tuple(e) for e in skeleton.edge_names], path.parent, "")
    return SleapLabels(label_set, source=path,
                       frames={f: originals[f] for f in label_set.frames})
