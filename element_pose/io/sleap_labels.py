"""SLEAP labels (``.slp``, ``.pkg.slp``) <-> :class:`~element_pose.core.labels.LabelSet`.

Reading (:func:`read_slp_label_set`, reached through
:func:`element_pose.io.labels.read_label_set`):

* User-labelled instances only (predictions are not labels); frames without one are
  left out.  One skeleton: a file whose user instances use several is refused, naming
  them.  Keypoints are the skeleton's nodes in order; its edges are the skeleton.
* Individuals are the tracks (in the file's order, those user instances use) when every
  user instance has a track, else ``individual_0``, ``individual_1``... by the
  instance's place in its frame.
* Frame ids: ``<video stem>/img<NNNNNN>.png`` (frame index, six digits) for a video
  file; for an image-sequence video (what :func:`write_slp` writes) the image's own
  name under its folder, ``labeled-data/`` kept when the folder sits in one, so a
  DeepLabCut set written to ``.slp`` reads back with its own frame ids.
* Images: each labelled frame's image is written (PNG) to ``images_to`` (default
  ``<file name less .slp/.pkg.slp>.images/`` beside the file) from the embedded frames
  of a ``.pkg.slp`` or from the video; the set's root is that folder.  When a frame's
  image cannot be read (an external video missing), the set has no root (logged).

Writing (:func:`write_slp`): a ``.slp`` SLEAP and sleap-nn train on, with user
instances from the set's positions, the skeleton, one track per individual, and
optionally predicted instances (a labelling set to correct); frames without a user
instance are suggestions.  ``embed=True`` embeds the images (a ``.pkg.slp``).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from element_pose.core.labels import LabelSet, LabelSetError
from element_pose.core.pose import SINGLE_INDIVIDUAL
from element_pose.core.util import atomic_write
from element_pose.io.registry import PoseFormatError, is_hdf5, reason
from element_pose.io.sleap import import_sleap_io

log = logging.getLogger(__name__)

__all__ = [
    "SlpLabelError",
    "check_slp",
    "default_images_folder",
    "read_slp_label_set",
    "slp_frame_id",
    "write_slp",
]


class SlpLabelError(PoseFormatError, LabelSetError):
    """SLEAP labels are missing, unreadable, foreign or not one labelled set."""


def default_images_folder(path: str | Path) -> Path:
    """Where :func:`read_slp_label_set` writes a file's images by default:
    ``<name less .slp/.pkg.slp>.images`` beside it."""
    path = Path(path)
    stem = re.sub(r"(\.pkg)?\.slp$", "", path.name, flags=re.IGNORECASE)
    return path.parent / f"{stem}.images"


# ------------------------------------------------------------------- reading
def check_slp(path: str | Path) -> list[Path]:
    """Check that a file is one labelled set and list the media it refers to.

    Returns:
        The external files its videos read (video files, or the images of an
        image-sequence video), as recorded; empty when every video is embedded.

    Raises:
        SlpLabelError: naming the file when it is not SLEAP labels, has no
            user-labelled frame or uses several skeletons.
    """
    labels = _load(Path(path), open_videos=False)
    frames = [lf for lf in labels.labeled_frames if lf.user_instances]
    if not frames:
        raise SlpLabelError(f"{path} has no user-labelled frames (only predictions or none)")
    _one_skeleton(path, [i for lf in frames for i in lf.user_instances])
    media: list[Path] = []
    for video in labels.videos:
        filename = video.filename
        if Path(str(filename)) == Path(path) or str(filename).endswith(".slp"):
            continue  # embedded frames
        names = filename if isinstance(filename, (list, tuple)) else [filename]
        media.extend(Path(str(n)) for n in names)
    return list(dict.fromkeys(media))


def read_slp_label_set(path: str | Path, *, images_to: str | Path | None = None) -> LabelSet:
    """Read the user-labelled frames of a SLEAP ``.slp`` / ``.pkg.slp``.

    Args:
        path: The labels file.
        images_to: Folder the frames' images are written to (default
            :func:`default_images_folder`).

    Raises:
        SlpLabelError: naming the file when it is missing, not SLEAP labels, has no
            user-labelled frame or uses several skeletons.
    """
    labels = _load(Path(path))
    frames = [lf for lf in labels.labeled_frames if lf.user_instances]
    if not frames:
        raise SlpLabelError(f"{path} has no user-labelled frames (only predictions or none)")
    skeleton = _one_skeleton(path, [i for lf in frames for i in lf.user_instances])
    keypoints = list(skeleton.node_names)
    individuals, slot_of = _individuals(labels, frames)
    ids = [slp_frame_id(lf.video, int(lf.frame_idx)) for lf in frames]
    xy = np.full((len(frames), len(individuals), len(keypoints), 2), np.nan)
    for f, lf in enumerate(frames):
        for slot, inst in enumerate(lf.user_instances):
            xy[f, slot_of(inst, slot)] = inst.numpy()
    root = _write_images(labels, frames, ids, Path(images_to or default_images_folder(path)))
    try:
        return LabelSet(frames=ids, keypoints=keypoints, individuals=individuals, xy=xy,
                        skeleton=[(str(a), str(b)) for a, b in skeleton.edge_names],
                        root=root, scorer="")
    except LabelSetError as exc:
        raise SlpLabelError(f"{path}: {exc}") from exc


def _load(path: Path, open_videos: bool = True):
    if not path.is_file():
        raise SlpLabelError(f"SLEAP labels not found: {path}")
    if not is_hdf5(path):
        raise SlpLabelError(f"{path} is not a SLEAP labels file (not HDF5)")
    sio = import_sleap_io()
    try:
        return sio.load_slp(str(path), open_videos=open_videos)
    except Exception as exc:
        raise SlpLabelError(f"cannot read SLEAP labels {path}: {reason(exc)}") from exc


def _one_skeleton(path: str | Path, instances: list[Any]):
    skeletons = list({id(i.skeleton): i.skeleton for i in instances}.values())
    if len(skeletons) != 1:
        names = [s.name or f"skeleton {k}" for k, s in enumerate(skeletons)]
        raise SlpLabelError(f"{path}: user instances use {len(skeletons)} skeletons {names}; "
                            "a labelled set has one")
    return skeletons[0]


def _individuals(labels, frames: list[Any]):
    """Individual names and ``slot_of(instance, slot) -> index``."""
    instances = [i for lf in frames for i in lf.user_instances]
    if all(i.track is not None for i in instances):
        used = {id(i.track) for i in instances}
        tracks = [t for t in labels.tracks if id(t) in used]
        tracks += [t for t in {id(i.track): i.track for i in instances}.values()
                   if t not in tracks]
        index = {id(t): k for k, t in enumerate(tracks)}
        names = [str(t.name) for t in tracks]
        if len(set(names)) == len(names):
            return names, lambda inst, slot: index[id(inst.track)]
        log.warning("tracks share names %s: individuals named by instance slot", names)
    elif any(i.track is not None for i in instances):
        log.warning("some user instances have no track: individuals named by instance slot")
    n = max(len(lf.user_instances) for lf in frames)
    names = [SINGLE_INDIVIDUAL] if n == 1 else [f"individual_{k}" for k in range(n)]
    return names, lambda inst, slot: slot


def _source(video):
    """The video an embedded one was made from (itself when not embedded: an image
    sequence's own ``source_video``, e.g. the one sleap-io's DeepLabCut reader links,
    is not what its frame indices count)."""
    filename = video.filename
    embedded = isinstance(filename, str) and filename.lower().endswith(".slp")
    return (getattr(video, "source_video", None) or video) if embedded else video


def slp_frame_id(video, frame_idx: int) -> str:
    """The frame id of a SLEAP video's frame (see the module's docstring)."""
    filename = _source(video).filename
    if isinstance(filename, (list, tuple)):
        image = PurePosixPath(str(filename[frame_idx]).replace("\\", "/"))
        parts = image.parts[-3:] if image.parent.parent.name == "labeled-data" else (
            image.parts[-2:])
        return "/".join(parts)
    stem = re.sub(r"(\.pkg)?\.slp$", "", PurePosixPath(str(filename).replace("\\", "/")).name)
    return f"{PurePosixPath(stem).stem}/img{frame_idx:06d}.png"


def _write_images(labels, frames: list[Any], ids: list[str], folder: Path) -> Path | None:
    """Write each frame's image under ``folder``; the folder, or None when unreadable."""
    from PIL import Image

    for lf, frame in zip(frames, ids, strict=True):
        try:
            image = np.asarray(lf.video[int(lf.frame_idx)])
        except Exception as exc:  # an external video missing or unreadable
            log.warning("the images of %s are not available (%s): the labelled set has "
                        "no root", lf.video.filename, reason(exc))
            return None
        image = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        atomic_write(folder / frame,
                     lambda tmp, im=image: Image.fromarray(im).save(tmp, format="PNG"))
    return folder


# ------------------------------------------------------------------- writing
def write_slp(labels: LabelSet, path: str | Path, *, predictions: np.ndarray | None = None,
              embed: bool = True) -> Path:
    """Write a labelled set as SLEAP labels (atomically).

    Each image folder of the set (``labeled-data/<video>``, ``<video stem>``) becomes
    one image-sequence video of its frames; each labelled individual of a frame a user
    instance (track = the individual); with ``predictions``, each predicted individual
    a predicted instance (point scores; instance score their mean).  Frames without a
    user instance are suggestions, so that they are embedded and offered for labelling.

    Args:
        labels: The set (needs its root: the images are read).
        path: The ``.slp`` (``.pkg.slp`` with ``embed``) to write.
        predictions: ``(n_frames, n_individuals, n_keypoints, 3)`` x, y, score; NaN
            where not predicted.
        embed: Embed the frames' images in the file (else it refers to the image files).

    Returns:
        ``path``.

    Raises:
        SlpLabelError: the set has no root, an image is missing, or the predictions'
            shape does not match the set.
    """
    sio = import_sleap_io()
    path = Path(path)
    if predictions is not None:
        predictions = np.asarray(predictions, dtype=np.float64)
        want = (*labels.xy.shape[:3], 3)
        if predictions.shape != want:
            raise SlpLabelError(f"predictions have shape {predictions.shape}; the labelled "
                                f"set needs {want} (x, y, score)")
    skeleton = sio.Skeleton(nodes=list(labels.keypoints),
                            edges=[list(e) for e in labels.skeleton], name="skeleton")
    tracks = [sio.Track(name=n) for n in labels.individuals]
    videos, where = _videos(sio, labels)
    out = sio.Labels(videos=list(videos.values()), skeletons=[skeleton], tracks=tracks)
    for f, frame in enumerate(labels.frames):
        video, idx = where[frame]
        instances = _instances(sio, labels.xy[f], None if predictions is None
                               else predictions[f], skeleton, tracks)
        if any(type(i) is sio.Instance for i in instances):
            out.append(sio.LabeledFrame(video=video, frame_idx=idx, instances=instances))
        else:
            if instances:
                out.append(sio.LabeledFrame(video=video, frame_idx=idx, instances=instances))
            out.suggestions.append(sio.SuggestionFrame(video=video, frame_idx=idx))

    def save(tmp: Path) -> None:
        target = tmp.with_name(tmp.name + ".slp")
        try:
            sio.save_slp(out, str(target), embed=True if embed else False, verbose=False)
            os.replace(target, tmp)
        finally:
            target.unlink(missing_ok=True)

    try:
        return atomic_write(path, save)
    except SlpLabelError:
        raise
    except Exception as exc:
        raise SlpLabelError(f"cannot write SLEAP labels {path}: {reason(exc)}") from exc


def _videos(sio, labels: LabelSet) -> tuple[dict[str, Any], dict[str, tuple[Any, int]]]:
    """One image-sequence video per image folder; ``frame -> (video, index)``."""
    if labels.root is None:
        raise SlpLabelError("the labelled set has no root folder: its images are unknown")
    groups: dict[str, list[str]] = {}
    for frame in labels.frames:
        groups.setdefault(str(PurePosixPath(frame).parent), []).append(frame)
    videos, where = {}, {}
    for folder, frames in groups.items():
        files = [labels.image(f) for f in frames]
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise SlpLabelError(f"images of the labelled set are missing: {missing[:3]}")
        videos[folder] = sio.Video.from_filename([str(p) for p in files])
        where.update({f: (videos[folder], k) for k, f in enumerate(frames)})
    return videos, where


def _instances(sio, xy: np.ndarray, predicted: np.ndarray | None, skeleton,
               tracks: list[Any]) -> list[Any]:
    """A frame's user instances (labelled individuals) and predicted instances."""
    out = []
    for k, track in enumerate(tracks):
        if np.isfinite(xy[k]).all(axis=-1).any():
            out.append(sio.Instance.from_numpy(xy[k], skeleton=skeleton, track=track))
    if predicted is None:
        return out
    for k, track in enumerate(tracks):
        seen = np.isfinite(predicted[k, :, :2]).all(axis=-1)
        if not seen.any():
            continue
        scores = np.where(seen, np.nan_to_num(predicted[k, :, 2]), 0.0)
        out.append(sio.PredictedInstance.from_numpy(
            predicted[k, :, :2], skeleton=skeleton, point_scores=scores,
            score=float(scores[seen].mean()), track=track))
    return out
