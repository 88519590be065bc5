"""Helpers the NWB writers share (2D poses, 3D poses, training data).

:mod:`.write`, :mod:`.three_d` and :mod:`.training` import these; this module imports
none of them, so the writers form no circle.  pynwb and ndx-pose are imported inside
the functions that need them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from element_pose.core.pose import PoseData
from element_pose.export.nwb.metadata import BEHAVIOR_MODULE

__all__ = [
    "behavior_module",
    "external_path",
    "get_or_create_skeleton",
    "skeleton_edges",
]


def external_path(path: str | Path, relative_to: str | Path | None) -> str:
    """The absolute path, or the path relative to ``relative_to`` when given (and possible)."""
    path = Path(path).absolute()
    if relative_to is None:
        return str(path)
    try:
        return os.path.relpath(path, Path(relative_to).absolute())
    except ValueError:  # different drive (Windows)
        return str(path)


def behavior_module(nwbfile):
    """The file's ``behavior`` processing module, made when missing."""
    if BEHAVIOR_MODULE in nwbfile.processing:
        return nwbfile.processing[BEHAVIOR_MODULE]
    return nwbfile.create_processing_module(
        name=BEHAVIOR_MODULE, description="Behavioral data: pose estimation (ndx-pose)"
    )


def get_or_create_skeleton(module, name: str, nodes: list[str], edges: np.ndarray, subject):
    """The skeleton ``name`` of the module (made when missing; renamed when one of that
    name has other nodes or edges)."""
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


def skeleton_edges(pose: PoseData) -> np.ndarray:
    """The pose's skeleton as ``(n_edges, 2)`` node indices (uint8, or uint16 past 255)."""
    edges = [(pose.keypoints.index(a), pose.keypoints.index(b)) for a, b in pose.skeleton]
    dtype = np.uint8 if len(pose.keypoints) <= 255 else np.uint16
    return np.asarray(edges, dtype=dtype).reshape(-1, 2)
