"""Registration of the DeepLabCut pose outputs with the :mod:`element_pose.io` registry.

The readers themselves live in :mod:`element_pose.io.dlc` (the one DeepLabCut reader);
this module only adds the validators and detectors that :func:`element_pose.io.read_pose`
needs and registers them:

* ``dlc_h5``: ``<video><scorer>.h5`` written by ``analyze_videos`` (also ``_filtered``
  and tracked ``_el.h5`` files), key ``df_with_missing``;
* ``dlc_csv``: the same table saved as ``.csv`` (``save_as_csv=True``).

Values (likelihood in [0, 1], finite coordinates) are checked by the readers
themselves (:func:`element_pose.io.dlc.check_dlc_values`).
"""

from __future__ import annotations

from pathlib import Path

from element_pose.io import dlc
from element_pose.io.registry import (
    PoseFormatError,
    hdf5_keys,
    is_hdf5,
    register_format,
    require_file,
    require_hdf5_keys,
)

__all__ = ["detect_dlc_csv", "detect_dlc_h5", "validate_dlc_csv", "validate_dlc_h5"]


def validate_dlc_h5(path: Path) -> None:
    """Check that a file is a DeepLabCut pose ``.h5`` (HDF5 with ``df_with_missing``).

    Raises:
        DLCFormatError: naming the file and what is wrong.
    """
    require_hdf5_keys(path, "DeepLabCut pose output", (dlc.H5_KEY,), dlc.DLCFormatError)


def detect_dlc_h5(path: Path) -> bool:
    """Whether a file looks like a DeepLabCut pose ``.h5``."""
    if path.suffix.lower() not in (".h5", ".hdf5") or not is_hdf5(path):
        return False
    return dlc.H5_KEY in hdf5_keys(path)


def validate_dlc_csv(path: Path) -> None:
    """Check that a file is a DeepLabCut pose ``.csv`` (scorer/bodyparts/coords header).

    Raises:
        PoseFormatError: naming the file and what is wrong.
    """
    path = require_file(path, "DeepLabCut output", dlc.DLCFormatError)
    if not detect_dlc_csv(path):
        raise PoseFormatError(
            f"{path} is not a DeepLabCut pose table: its first column should read "
            "scorer, (individuals,) bodyparts, coords, with a DeepLabCut scorer (DLC...)")


def detect_dlc_csv(path: Path) -> bool:
    """Whether a file looks like a DeepLabCut pose ``.csv``."""
    if path.suffix.lower() != ".csv":
        return False
    try:
        with open(path) as f:
            rows = [f.readline().strip().split(",") for _ in range(3)]
    except (OSError, UnicodeDecodeError):
        return False
    # DeepLabCut scorers start with "DLC" (Lightning Pose writes the same header layout)
    return (rows[0][0] == "scorer" and rows[-1][0] in ("bodyparts", "coords")
            and len(rows[0]) > 1 and rows[0][1].startswith("DLC"))


register_format(
    "dlc_h5",
    dlc.read_dlc_h5,
    validator=validate_dlc_h5,
    detector=detect_dlc_h5,
    suffixes=(".h5",),
    software="DeepLabCut",
    description="DeepLabCut analyze_videos output (.h5, single- and multi-animal)",
)
register_format(
    "dlc_csv",
    dlc.read_dlc_csv,
    validator=validate_dlc_csv,
    detector=detect_dlc_csv,
    suffixes=(".csv",),
    software="DeepLabCut",
    description="DeepLabCut analyze_videos output saved as .csv",
)
