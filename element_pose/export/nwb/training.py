"""Labelled frames (DeepLabCut CollectedData) -> ndx-pose PoseTraining."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.pose import PoseData
from element_pose.export.nwb.common import behavior_module, external_path
from element_pose.export.nwb.metadata import (
    BEHAVIOR_MODULE,
    NWBExportError,
    TrainingData,
)
from element_pose.io.dlc import DLCFormatError
from element_pose.io.dlc_labels import read_labeled_data
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
    """Add ndx-pose ``PoseTraining`` from DeepLabCut labelled frames.

    Node order follows the skeleton written for ``pose`` (the file's first skeleton
    when ``pose`` is ``None``). Each labelled video becomes an external ImageSeries
    in ``SourceVideos``; each labelled image a ``TrainingFrame`` with one
    ``SkeletonInstance`` per labelled individual.

    Raises:
        NWBExportError: labels name body parts the skeleton lacks, or a video is missing.
    """
    from ndx_pose import PoseTraining, SourceVideos, TrainingFrame, TrainingFrames

    module = behavior_module(nwbfile)
    if training.name in module.data_interfaces:
        raise NWBExportError(f"processing/{BEHAVIOR_MODULE} already holds {training.name!r}")
    skeleton = _training_skeleton(nwbfile, module, pose)
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
            _check_labelled_parts(label_file, instances, nodes)
            if video_name not in videos:
                videos[video_name] = _training_video(label_file, video_name, training,
                                                     relative_to)
            skeleton_instances = _skeleton_instances(instances, nodes, skeleton)
            if skeleton_instances is None:
                continue
            frames.append(TrainingFrame(
                name=f"{video_name}_{Path(image).stem}",
                annotator=annotator,
                skeleton_instances=skeleton_instances,
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


def _check_labelled_parts(label_file: str | Path, instances: list[dict],
                          nodes: list[str]) -> None:
    """Every labelled body part of a frame is a skeleton node."""
    unknown = set().union(*(r["bodyparts"] for r in instances)) - set(nodes)
    if unknown:
        raise NWBExportError(
            f"{label_file}: labelled body parts {sorted(unknown)} are not in the "
            f"skeleton {nodes}"
        )


def _training_video(label_file: str | Path, video_name: str, training: TrainingData,
                    relative_to: str | Path | None):
    """The external ``ImageSeries`` of one labelled video (probed for rate and size)."""
    from pynwb.image import ImageSeries

    if video_name not in training.videos:
        raise NWBExportError(
            f"{label_file}: no video given for labelled video {video_name!r} "
            f"(known: {sorted(training.videos)})"
        )
    vpath = Path(training.videos[video_name])
    info = probe_video(vpath)
    return ImageSeries(
        name=video_name,
        description=f"Training video {vpath.name} (external file)",
        unit="n.a.",
        format="external",
        external_file=[external_path(vpath, relative_to)],
        starting_frame=[0],
        rate=float(info.fps),
        num_samples=int(info.n_frames),
        dimension=[int(info.width), int(info.height)],
    )


def _skeleton_instances(instances: list[dict], nodes: list[str], skeleton):
    """The frame's labelled individuals as ``SkeletonInstances`` (``None`` when none
    has a visible point)."""
    from ndx_pose import SkeletonInstance, SkeletonInstances

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
        return None
    return SkeletonInstances(skeleton_instances=skeleton_instances)
