"""Registration of the DeepLabCut pose outputs with the :mod:`element_pose.io` registry.

The readers themselves live in :mod:`element_pose.io.dlc` (the one DeepLabCut reader);
this module only adds the validators and detectors that :func:`element_pose.io.read_pose`
needs and registers them:

* ``dlc_h5``: ``<video><scorer>.h5`` written by ``analyze_videos`` (also ``_filtered``
  and tracked ``_el.h5`` files), key ``df_with_missing``; likelihood in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

from element_pose.io import dlc
from element_pose.io.registry import (
    PoseFormatError,
    check_scores,
    is_hdf5,
    present_mask,
    register_format,
    require_file,
)
from element_pose.pose import PoseData

__all__ = ["detect_dlc_h5", "read_dlc_h5_checked", "validate_dlc_h5"]


def _h5_keys(path: Path) -> list[str]:
    import pandas as pd

    with pd.HDFStore(path, mode="r") as store:
        return [k.lstrip("/") for k in store.keys()]


def validate_dlc_h5(path: Path) -> None:
    """Check that a file is a DeepLabCut pose ``.h5`` (HDF5 with ``df_with_missing``).

    Raises:
        PoseFormatError: naming the file and what is wrong.
    """
    path = require_file(path, "DeepLabCut output", dlc.DLCFormatError)
    if not is_hdf5(path):
        raise PoseFormatError(f"{path} is not an HDF5 file (DeepLabCut .h5 output expected)")
    try:
        keys = _h5_keys(path)
    except (OSError, ValueError) as exc:
        raise PoseFormatError(f"cannot open DeepLabCut output {path}: {exc}") from exc
    if dlc.H5_KEY not in keys:
        raise PoseFormatError(
            f"{path} is not a DeepLabCut pose output: no {dlc.H5_KEY!r} table (keys {keys})"
        )


def detect_dlc_h5(path: Path) -> bool:
    """Whether a file looks like a DeepLabCut pose ``.h5``."""
    if path.suffix.lower() not in (".h5", ".hdf5") or not is_hdf5(path):
        return False
    return dlc.H5_KEY in _h5_keys(path)


def read_dlc_h5_checked(path: Path, *, fps: float | None = None) -> PoseData:
    """:func:`element_pose.io.dlc.read_dlc_h5` plus a likelihood range check ([0, 1])."""
    pose = dlc.read_dlc_h5(path, fps=fps)
    check_scores(pose.confidence, path, "likelihood", 0.0, 1.0,
                 present=present_mask(pose), error=dlc.DLCFormatError)
    return pose


register_format(
    "dlc_h5",
    read_dlc_h5_checked,
    validator=validate_dlc_h5,
    detector=detect_dlc_h5,
    suffixes=(".h5",),
    software="DeepLabCut",
    description="DeepLabCut analyze_videos output (.h5, single- and multi-animal)",
)
