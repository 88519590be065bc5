"""Labelled frames of any engine (DeepLabCut CollectedData, SLEAP labels) -> ndx-pose
PoseTraining."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from element_pose.core.labels import LabelSet, frame_number
from element_pose.core.pose import PoseData
from element_pose.export.nwb.common import behavior_module, external_path
from element_pose.export.nwb.metadata import (
    BEHAVIOR_MODULE,
    NWBExportError,
    TrainingData,
)
from element_pose.io.dlc import DLCFormatError
from element_pose.io.dlc_labels import read_labeled_data
from element_pose.io.labels import LabelFormatError, read_collected_data
from element_pose.io.video import probe_video

__all__ = [
    "add_pose_training",
    "read_dlc_labels",
]


# -------------------------------------------------------------------- training
def read_dlc_labels(path: str | Path) -> tuple[str, list[dict[str, Any]]]:
    """Read a DeepLabCut ``CollectedData_<scorer>.h5`` (labelled frames).

    Returns:
        ``(scorer, rows)``; each row ``{"video", "image", "frame_index",
        "individual", "bodyparts": {name: (x, y)}}`` with NaN for unlabelled points
        (see :func:`element_pose.io.dlc_labels.read_labeled_data`).

    Raises:
        NWBExportError: the file is not readable labelled data.
    """
    try:
        labels = read_labeled_data(path)
        return labels.scorer, labels.rows()
    except DLCFormatError as exc:
        raise NWBExportError(str(exc)) from exc


def add_pose_training(nwbfile, training: TrainingData, pose: PoseData | None = None, *,
                      relative_to: str | Path | None = None):
    """Add ndx-pose ``PoseTraining`` from labelled frames of any engine.

    The labelled frames are DeepLabCut ``CollectedData`` files (``training.labels``)
    and/or a :class:`~element_pose.core.labels.LabelSet` (``training.label_set``, e.g.
    SLEAP labels).  Node order follows the skeleton written for ``pose`` (the file's
    first skeleton when ``pose`` is ``None``).  Each labelled video (a frame id's
    folder) becomes an ImageSeries in ``SourceVideos``: the external video given in
    ``training.videos`` (frame index from the image name), else the folder's image files
    (external, one frame each).  Each labelled image is a ``TrainingFrame`` named
    ``<folder>_<image stem>`` with one ``SkeletonInstance`` per labelled individual.

    Raises:
        NWBExportError: labels name body parts the skeleton lacks, or a frame has
            neither a video nor an image file.
    """
    from ndx_pose import PoseTraining, SourceVideos, TrainingFrame, TrainingFrames

    module = behavior_module(nwbfile)
    if training.name in module.data_interfaces:
        raise NWBExportError(f"processing/{BEHAVIOR_MODULE} already holds {training.name!r}")
    skeleton = _training_skeleton(nwbfile, module, pose)
    nodes = [str(n) for n in skeleton.nodes[:]]

    videos: dict[str, Any] = {}
    frames = []
    for source, labels in _label_sets(training):
        _check_labelled_parts(source, labels.keypoints, nodes)
        annotator = training.annotator or labels.scorer or "unknown"
        index = {k: i for i, k in enumerate(labels.keypoints)}
        columns = [index.get(n) for n in nodes]
        for folder, rows in _by_folder(labels.frames).items():
            if folder not in videos:
                videos[folder] = _training_video(source, folder, training, labels,
                                                 [labels.frames[r] for r in rows], relative_to)
            series, by_image = videos[folder]
            for r in rows:
                frame = labels.frames[r]
                instances = _skeleton_instances(labels, r, columns, skeleton)
                if instances is None:
                    continue
                frames.append(TrainingFrame(
                    name=f"{folder}_{PurePosixPath(frame).stem}",
                    annotator=annotator,
                    skeleton_instances=instances,
                    source_video=series,
                    source_video_frame_index=np.uint64(
                        by_image[frame] if by_image else frame_number(frame)),
                ))
    training_container = PoseTraining(
        name=training.name,
        training_frames=TrainingFrames(training_frames=frames),
        source_videos=SourceVideos(image_series=[v for v, _ in videos.values()]),
    )
    module.add(training_container)
    return training_container


def _label_sets(training: TrainingData) -> list[tuple[str, LabelSet]]:
    """``(source, LabelSet)`` of each ``CollectedData`` file, then the given set."""
    out = []
    for label_file in training.labels:
        try:
            out.append((str(label_file), read_collected_data(label_file)))
        except LabelFormatError as exc:
            raise NWBExportError(str(exc)) from exc
    if training.label_set is not None:
        out.append(("the labelled set", training.label_set))
    return out


def _by_folder(frames: list[str]) -> dict[str, list[int]]:
    """Rows by the folder of their frame id (``labeled-data/<video>`` -> ``video``)."""
    out: dict[str, list[int]] = {}
    for r, frame in enumerate(frames):
        out.setdefault(PurePosixPath(frame).parent.name or "frames", []).append(r)
    return out


def _training_skeleton(nwbfile, module, pose: PoseData | None):
    """The skeleton written for ``pose`` (the file's first when ``pose`` is ``None``)."""
    if "Skeletons" not in module.data_interfaces or not module["Skeletons"].skeletons:
        raise NWBExportError("add pose data (and its skeleton) before the training data")
    skeletons = module["Skeletons"].skeletons
    skeleton = next(iter(skeletons.values()))
    if pose is not None:
        owner = nwbfile.subject.subject_id if nwbfile.subject else pose.individuals[0]
        skeleton = skeletons.get(f"{owner}_skeleton", skeleton)
    return skeleton


def _check_labelled_parts(source: str, keypoints: list[str], nodes: list[str]) -> None:
    """Every labelled body part is a skeleton node."""
    unknown = set(keypoints) - set(nodes)
    if unknown:
        raise NWBExportError(
            f"{source}: labelled body parts {sorted(unknown)} are not in the "
            f"skeleton {nodes}"
        )


def _training_video(source: str, folder: str, training: TrainingData, labels: LabelSet,
                    frames: list[str], relative_to: str | Path | None):
    """The ``ImageSeries`` of one labelled folder and ``{frame: index}`` (empty for a
    video, whose frame index is the image name's): the external video given for the
    folder (probed for rate and size), else the frames' image files."""
    from pynwb.image import ImageSeries

    if folder in training.videos:
        vpath = Path(training.videos[folder])
        info = probe_video(vpath)
        return ImageSeries(
            name=folder,
            description=f"Training video {vpath.name} (external file)",
            unit="n.a.",
            format="external",
            external_file=[external_path(vpath, relative_to)],
            starting_frame=[0],
            rate=float(info.fps),
            num_samples=int(info.n_frames),
            dimension=[int(info.width), int(info.height)],
        ), {}
    images = [labels.image(f) if labels.root is not None else None for f in frames]
    if any(p is None or not p.is_file() for p in images):
        raise NWBExportError(
            f"{source}: no video given for labelled video {folder!r} "
            f"(known: {sorted(training.videos)}) and its images are not all at hand")
    return ImageSeries(
        name=folder,
        description=f"Labelled images of {folder} (external files, one frame each)",
        unit="n.a.",
        format="external",
        external_file=[external_path(p, relative_to) for p in images],
        starting_frame=list(range(len(images))),
        rate=1.0,
        num_samples=len(images),
        dimension=list(_image_size(images[0])),
    ), {f: i for i, f in enumerate(frames)}


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file."""
    from PIL import Image

    with Image.open(path) as im:
        return int(im.size[0]), int(im.size[1])


def _skeleton_instances(labels: LabelSet, row: int, columns: list[int | None], skeleton):
    """The frame's labelled individuals as ``SkeletonInstances`` (``None`` when none
    has a visible point)."""
    from ndx_pose import SkeletonInstance, SkeletonInstances

    skeleton_instances = []
    for i, individual in enumerate(labels.individuals):
        xy = np.array([labels.xy[row, i, c] if c is not None else (np.nan, np.nan)
                       for c in columns], dtype=np.float64).reshape(len(columns), 2)
        visible = np.isfinite(xy).all(axis=1)
        if not visible.any():
            continue
        skeleton_instances.append(SkeletonInstance(
            name=individual, id=np.uint8(i), node_locations=xy,
            node_visibility=visible.tolist(), skeleton=skeleton,
        ))
    if not skeleton_instances:
        return None
    return SkeletonInstances(skeleton_instances=skeleton_instances)
