"""A labelling set a person opens: chosen frames with the model's predictions as guesses.

DB-free: give it, per recording, the video files, their frame counts, the chosen
(recording-wide) frame indices and the estimation's :class:`PoseData`.
:func:`write_labelling_set` writes, into a folder of its own (never a user's project):

``deeplabcut`` layout (what ``extract_outlier_frames`` writes, without touching a project)
    ``config.yaml`` (a copy of the model's config with ``project_path`` set to this
    folder and ``video_sets`` to the recordings' videos, or a minimal one), and per
    video file ``labeled-data/<video stem>/img<NNN>.png`` (the frame index in the file,
    zero-padded as DeepLabCut pads it; two videos of one stem: ``<stem>_2``..., linked
    to its video by ``videos/<stem>_2<suffix>``, a link in the set listed in
    ``video_sets``, since DeepLabCut finds a video's folder by its stem) with
    ``machinelabels-iter<N>.h5`` (key
    ``df_with_missing``, the model's scorer, x, y and likelihood) and an empty
    ``CollectedData_<config scorer>.h5``/``.csv`` (nothing labelled yet).  Drop the
    ``labeled-data/<video>`` folder on napari-deeplabcut: the machine labels open as
    points to correct; saving writes ``CollectedData_<config scorer>.h5``.
``sleap`` layout
    ``<folder name>.pkg.slp``: the frames embedded, one image-sequence video per video
    file, the predictions as predicted instances (one track per individual) and every
    frame a suggestion, which SLEAP opens for correction.

The folder is written beside its final place and renamed into it: a failure (a missing
video, an unreadable frame) leaves nothing, and an earlier set in the folder is only
replaced once the new one is complete.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.labels import LabelSet
from element_pose.core.pose import PoseData
from element_pose.io.video import VideoError, read_frames

__all__ = [
    "LAYOUTS",
    "LabellingError",
    "LabellingSet",
    "RecordingFrames",
    "image_name",
    "write_labelling_set",
]

log = logging.getLogger(__name__)

LAYOUTS = ("deeplabcut", "sleap")


class LabellingError(ValueError):
    """A labelling set cannot be written (missing videos, frames, mismatched body parts)."""


@dataclasses.dataclass
class RecordingFrames:
    """The chosen frames of one recording and the estimation that predicts them.

    Attributes:
        files: The recording's video files, in order.
        frame_counts: Frames of each file.
        frames: Chosen frame indices, recording-wide (file offsets added).
        pose: The estimation's poses (all frames of the recording).
    """

    files: list[Path]
    frame_counts: list[int]
    frames: list[int]
    pose: PoseData

    def locate(self, frame: int) -> tuple[int, int]:
        """``(file number, frame index in that file)`` of a recording-wide frame index."""
        offset = 0
        for i, count in enumerate(self.frame_counts):
            if frame < offset + count:
                return i, frame - offset
            offset += count
        raise LabellingError(f"frame {frame} is beyond the {offset} frames of "
                             f"{[str(f) for f in self.files]}")


@dataclasses.dataclass
class LabellingSet:
    """What :func:`write_labelling_set` wrote.

    Attributes:
        folder: The set's folder.
        layout: ``deeplabcut`` or ``sleap``.
        files: Every file written, relative to ``folder`` (``/``-separated).
        images: Per chosen frame, ``(recording number, frame index, frame id)`` where the
            frame id is the image's path relative to ``folder`` (DeepLabCut) or its
            name inside the ``.pkg.slp`` (SLEAP), as :class:`LabelSet` names frames.
    """

    folder: Path
    layout: str
    files: list[str]
    images: list[tuple[int, int, str]]


def image_name(index: int, n_frames: int) -> str:
    """DeepLabCut's image name of a frame: ``img`` + the index zero-padded to the digits
    of the file's frame count (``extract_frames``' ``strwidth``)."""
    width = max(1, math.ceil(math.log10(max(n_frames, 1))))
    return f"img{index:0{width}d}.png"


def _folder_names(recordings: Sequence[RecordingFrames]) -> dict[tuple[int, int], str]:
    """A distinct ``labeled-data`` folder per video file: its stem (``_2``... if taken)."""
    names: dict[tuple[int, int], str] = {}
    taken: set[str] = set()
    for r, rec in enumerate(recordings):
        for i, path in enumerate(rec.files):
            name, n = Path(path).stem, 1
            while name in taken:
                n += 1
                name = f"{Path(path).stem}_{n}"
            taken.add(name)
            names[r, i] = name
    return names


def _check(recordings: Sequence[RecordingFrames]) -> tuple[list[str], list[str]]:
    """Videos present, frames inside them, one list of body parts: ``(keypoints, individuals)``."""
    if not recordings or not any(rec.frames for rec in recordings):
        raise LabellingError("no frames to write: the selection chose none")
    missing = [str(f) for rec in recordings for f in rec.files if not Path(f).is_file()]
    if missing:
        raise LabellingError(f"video files not found: {missing}; nothing was written")
    keypoints = recordings[0].pose.keypoints
    individuals: list[str] = []
    for rec in recordings:
        if rec.pose.keypoints != keypoints:
            raise LabellingError(f"the estimations do not predict the same body parts: "
                                 f"{rec.pose.keypoints} vs {keypoints}")
        if rec.pose.n_frames != sum(rec.frame_counts):
            raise LabellingError(f"an estimation has {rec.pose.n_frames} frames, its videos "
                                 f"{sum(rec.frame_counts)}")
        individuals += [i for i in rec.pose.individuals if i not in individuals]
        for frame in rec.frames:
            rec.locate(frame)
    return list(keypoints), individuals


def _predictions(rec: RecordingFrames, frames: Sequence[int], individuals: list[str]
                 ) -> np.ndarray:
    """``(n, n_individuals, n_keypoints, 3)`` x, y, likelihood at the frames (NaN: none)."""
    pose = rec.pose
    out = np.full((len(frames), len(individuals), len(pose.keypoints), 3), np.nan)
    for j, name in enumerate(pose.individuals):
        k = individuals.index(name)
        out[:, k, :, :2] = pose.position[frames, j, :, :2]
        out[:, k, :, 2] = pose.confidence[frames, j]
    return out


def _write_images(staging: Path, recordings: Sequence[RecordingFrames]
                  ) -> tuple[list[tuple[int, int, str]], dict[str, tuple[int, int]]]:
    """Decode and save every chosen frame; ``(images, (width, height) of each video)``."""
    from PIL import Image

    names = _folder_names(recordings)
    images: list[tuple[int, int, str]] = []
    sizes: dict[str, tuple[int, int]] = {}
    for r, rec in enumerate(recordings):
        by_file: dict[int, list[tuple[int, int]]] = {}
        for frame in sorted(set(rec.frames)):
            file, local = rec.locate(frame)
            by_file.setdefault(file, []).append((frame, local))
        for file, pairs in by_file.items():
            locals_ = [local for _, local in pairs]
            decoded = read_frames(rec.files[file], locals_)
            if len(decoded) != len(pairs):
                raise LabellingError(f"{rec.files[file]} has no frame "
                                     f"{locals_[len(decoded)]}; nothing was written")
            sizes[str(Path(rec.files[file]).resolve())] = (decoded[0].shape[1],
                                                           decoded[0].shape[0])
            for (frame, local), pixels in zip(pairs, decoded, strict=True):
                frame_id = (f"labeled-data/{names[r, file]}/"
                            f"{image_name(local, rec.frame_counts[file])}")
                target = staging / frame_id
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(target)
                images.append((r, frame, frame_id))
    return images, sizes


def _minimal_config(keypoints: list[str], individuals: list[str], skeleton, scorer: str
                    ) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "Task": "refine", "scorer": scorer,
        "date": datetime.date.today().strftime("%b%d"), "multianimalproject":
        len(individuals) > 1, "identity": None, "engine": "pytorch", "iteration": 0,
        "skeleton": [list(e) for e in skeleton], "skeleton_color": "black",
        "pcutoff": 0.6, "dotsize": 6, "alphavalue": 0.7, "colormap": "rainbow",
        "TrainingFraction": [0.95], "default_net_type": "resnet_50", "numframes2pick": 20,
    }
    if len(individuals) > 1:
        cfg.update(individuals=individuals, uniquebodyparts=[],
                   multianimalbodyparts=keypoints, bodyparts="MULTI!")
    else:
        cfg["bodyparts"] = keypoints
    return cfg


def _label_set(staging: Path, images, recordings, keypoints, individuals
               ) -> tuple[LabelSet, np.ndarray]:
    """The chosen frames as an unlabelled :class:`LabelSet` and the predictions at them."""
    frames = [i for _, _, i in images]
    predictions = np.concatenate([_predictions(recordings[r], [f], individuals)
                                  for r, f, _ in images])
    labels = LabelSet(frames=frames, keypoints=keypoints, individuals=individuals,
                      xy=np.full((len(frames), len(individuals), len(keypoints), 2), np.nan),
                      skeleton=recordings[0].pose.skeleton, root=staging)
    return labels, predictions


def _write_deeplabcut(staging: Path, folder: Path, images, sizes, recordings, config,
                      scorer: str, keypoints: list[str], individuals: list[str]) -> None:
    """``config.yaml``, and per ``labeled-data`` folder ``machinelabels-iter<N>.h5`` with an
    empty ``CollectedData_<config scorer>`` (:func:`~element_pose.io.dlc_labels_write.
    write_dlc_labels`)."""
    from element_pose.io.dlc import write_config
    from element_pose.io.dlc_labels_write import write_dlc_labels

    cfg = dict(config) if config else _minimal_config(
        keypoints, individuals, recordings[0].pose.skeleton, "element-pose")
    cfg["project_path"] = str(folder)
    cfg["video_sets"] = _video_sets(staging, folder, recordings, sizes)
    write_config(cfg, staging / "config.yaml")
    labels, predictions = _label_set(staging, images, recordings, keypoints, individuals)
    write_dlc_labels(labels, staging, str(cfg.get("scorer") or "element-pose"),
                     machine=predictions, machine_scorer=scorer,
                     iteration=int(cfg.get("iteration") or 0))


def _video_sets(staging: Path, folder: Path, recordings: Sequence[RecordingFrames],
                sizes: dict[str, tuple[int, int]]) -> dict[str, dict[str, str]]:
    """The config's ``video_sets``: per ``labeled-data`` folder a video whose stem is the
    folder's name, as DeepLabCut links them (``labeled-data/<video stem>``).  A folder
    renamed because two videos share a stem (``<stem>_2``) gets a link
    ``videos/<stem>_2<suffix>`` in the set to its video (a copy where the file system
    has no links)."""
    out: dict[str, dict[str, str]] = {}
    for (r, i), name in _folder_names(recordings).items():
        video = Path(recordings[r].files[i]).resolve()
        if str(video) not in sizes:  # no frame chosen from this file
            continue
        width, height = sizes[str(video)]
        path = video
        if video.stem != name:
            link = staging / "videos" / f"{name}{video.suffix}"
            link.parent.mkdir(parents=True, exist_ok=True)
            try:
                link.symlink_to(video)
            except OSError:
                shutil.copy2(video, link)
            path = folder / "videos" / link.name
        out[str(path)] = {"crop": f"0, {width}, 0, {height}"}
    return out


def _write_sleap(staging: Path, folder: Path, images, recordings, keypoints, individuals
                 ) -> None:
    """``<folder name>.pkg.slp`` with the frames embedded and the predictions."""
    from element_pose.io.sleap_labels import write_slp

    labels, predictions = _label_set(staging, images, recordings, keypoints, individuals)
    write_slp(labels, staging / f"{folder.name}.pkg.slp", predictions=predictions, embed=True)
    shutil.rmtree(staging / "labeled-data")


def write_labelling_set(folder: str | Path, recordings: Sequence[RecordingFrames], *,
                        layout: str = "deeplabcut", config: dict[str, Any] | None = None,
                        scorer: str = "") -> LabellingSet:
    """Write the chosen frames and their predictions as a labelling set (atomically).

    Args:
        folder: The set's folder (replaced if it exists; never a user's project).
        recordings: The chosen frames of each recording with its estimation.
        layout: ``deeplabcut`` or ``sleap``.
        config: The model's DeepLabCut config (copied, with this folder as project
            path); ``None``: a minimal one from the body parts (DeepLabCut layout only).
        scorer: The scorer of the machine labels (the model's); default ``machine``.

    Returns:
        What was written.

    Raises:
        LabellingError: unknown layout, no frames, a video missing or too short, or
            estimations of different body parts; nothing is written then.
    """
    if layout not in LAYOUTS:
        raise LabellingError(f"unknown labelling layout {layout!r}; one of {list(LAYOUTS)}")
    folder = Path(folder)
    keypoints, individuals = _check(recordings)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        images, sizes = _write_images(staging, recordings)
        if layout == "deeplabcut":
            _write_deeplabcut(staging, folder, images, sizes, recordings, config,
                              scorer or "machine", keypoints, individuals)
        else:
            _write_sleap(staging, folder, images, recordings, keypoints, individuals)
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*")
                       if p.is_file())
        _replace(staging, folder)
    except VideoError as exc:
        raise LabellingError(f"{exc}; nothing was written") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("wrote a %s labelling set of %d frames in %s", layout, len(images), folder)
    return LabellingSet(folder=folder, layout=layout, files=files, images=images)


def _replace(staging: Path, folder: Path) -> None:
    """Put the staged set in place; an earlier set goes only once the new one is there."""
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
        folder.rename(old)
    staging.rename(folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
