"""NWB -> PoseData, container listing, NWB Inspector."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.pose import SINGLE_INDIVIDUAL, PoseData
from element_pose.export.nwb.layout import (
    DEFAULT_NAME,
    open_nwb,
)
from element_pose.export.nwb.metadata import (
    BEHAVIOR_MODULE,
    NWBExportError,
    NWBInspectionError,
)

__all__ = [
    "check_nwb",
    "inspect_nwb",
    "list_pose_estimations",
    "read_pose_from_nwb",
]

log = logging.getLogger(__name__)


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
    with open_nwb(path, mode="r") as io:
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
        source_video = getattr(pe, "source_video", None)  # MultiCameraPoseEstimation: none
        if fps is None and source_video is not None and source_video.rate is not None:
            fps = float(source_video.rate)
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
    with open_nwb(path, mode="r") as io:
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
