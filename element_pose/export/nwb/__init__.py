"""Pose data -> NWB (ndx-pose 0.4), with no database.

Modules: :mod:`.metadata` (what a file is described by, and the checks),
:mod:`.write` (build, write, append; the data-writing path is ``pose_series``),
:mod:`.individuals` (multi-animal: one file per individual), :mod:`.training`
(PoseTraining), :mod:`.read` (read back, NWB Inspector), :mod:`.layout` (container
names, videos beside the file, read-back check), :mod:`.three_d` (3D from calibrated
cameras).  Everything public is importable from ``element_pose.export.nwb``.

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
* :func:`read_pose_from_nwb` - back to :class:`~element_pose.core.pose.PoseData`.
* :func:`inspect_nwb` / :func:`check_nwb` - NWB Inspector.
"""

from __future__ import annotations

from element_pose.export.nwb.individuals import (
    IndividualExport,
    individual_metadata,
    plan_individual_files,
    write_nwb_per_individual,
)
from element_pose.export.nwb.layout import (
    DEFAULT_NAME,
    NWBReadBackError,
    container_names,
    open_nwb,
    place_videos,
    verify_pose_containers,
)
from element_pose.export.nwb.metadata import (
    BEHAVIOR_MODULE,
    COMMON_SPECIES,
    COMPRESSION,
    COMPRESSION_LEVEL,
    CONFIDENCE_DEFINITION,
    REFERENCE_FRAME_2D,
    REFERENCE_FRAME_3D,
    TRAINING_NAME,
    CameraMetadata,
    MetadataError,
    NWBExportError,
    NWBInspectionError,
    SessionMetadata,
    SubjectMetadata,
    TrainingData,
    VideoMetadata,
    check_dandi_metadata,
    metadata_problems,
    normalize_sex,
    normalize_species,
)
from element_pose.export.nwb.read import (
    check_nwb,
    inspect_nwb,
    list_pose_estimations,
    read_pose_from_nwb,
)
from element_pose.export.nwb.training import add_pose_training, read_dlc_labels
from element_pose.export.nwb.write import (
    add_pose_estimation,
    append_to_nwb,
    build_nwbfile,
    new_nwbfile,
    pose_series,
    write_nwb,
)

__all__ = [
    "BEHAVIOR_MODULE",
    "COMMON_SPECIES",
    "COMPRESSION",
    "COMPRESSION_LEVEL",
    "CONFIDENCE_DEFINITION",
    "DEFAULT_NAME",
    "REFERENCE_FRAME_2D",
    "REFERENCE_FRAME_3D",
    "TRAINING_NAME",
    "CameraMetadata",
    "IndividualExport",
    "MetadataError",
    "NWBExportError",
    "NWBInspectionError",
    "NWBReadBackError",
    "SessionMetadata",
    "SubjectMetadata",
    "TrainingData",
    "VideoMetadata",
    "add_pose_estimation",
    "add_pose_training",
    "append_to_nwb",
    "build_nwbfile",
    "check_dandi_metadata",
    "check_nwb",
    "container_names",
    "individual_metadata",
    "inspect_nwb",
    "list_pose_estimations",
    "metadata_problems",
    "new_nwbfile",
    "normalize_sex",
    "normalize_species",
    "open_nwb",
    "place_videos",
    "plan_individual_files",
    "pose_series",
    "read_dlc_labels",
    "read_pose_from_nwb",
    "verify_pose_containers",
    "write_nwb",
    "write_nwb_per_individual",
]
