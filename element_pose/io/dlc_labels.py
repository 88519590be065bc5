"""DeepLabCut labelled frames (``labeled-data/<video>/CollectedData_<scorer>.h5``).

The one reader of DeepLabCut's labelled data: the engine checks them before
training (:func:`element_pose.engines.deeplabcut.validate_labeled_data`, which
``train.VideoSet`` and ``ModelTraining`` reach through the engine) and the NWB
export turns them into ndx-pose ``PoseTraining``
(:mod:`element_pose.export.nwb.training`).

Layout: rows indexed by the image path (a string ``labeled-data/<video>/imgNNN.png``
or a tuple of its parts); columns ``scorer/bodyparts/coords`` or, for multi-animal
projects, ``scorer/individuals/bodyparts/coords``; coords ``x, y``; NaN where a point
is not labelled.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.pose import SINGLE_INDIVIDUAL
from element_pose.io.dlc import DLCFormatError
from element_pose.io.registry import reason

__all__ = ["LabeledFrames", "read_labeled_data"]


@dataclasses.dataclass
class LabeledFrames:
    """One ``CollectedData_<scorer>.h5`` file.

    Attributes:
        path: The file.
        table: Its DataFrame, as DeepLabCut wrote it.
        scorers: The scorers of its columns (DeepLabCut writes one).
        bodyparts: Body parts labelled, in column order.
        individuals: Individuals (multi-animal projects), else empty.
    """

    path: Path
    table: Any
    scorers: list[str]
    bodyparts: list[str]
    individuals: list[str]

    @property
    def scorer(self) -> str:
        """The (first) scorer."""
        return self.scorers[0]

    def image_parts(self) -> list[tuple[str, ...]]:
        """Each row's image path as parts (``("labeled-data", video, image)``)."""
        return [tuple(str(p) for p in idx) if isinstance(idx, tuple) else Path(str(idx)).parts
                for idx in self.table.index]

    def labelled_rows(self) -> np.ndarray:
        """Boolean per row: at least one point labelled."""
        return np.isfinite(self.table.to_numpy(dtype=np.float64)).any(axis=1)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per image and individual.

        Returns:
            ``{"video", "image", "frame_index", "individual", "bodyparts": {name: (x, y)}}``
            with NaN for unlabelled points.

        Raises:
            DLCFormatError: an image name without a frame number.
        """
        names = list(self.table.columns.names)
        out = []
        for parts, (_, values) in zip(self.image_parts(), self.table.iterrows(), strict=True):
            image = str(parts[-1])
            video = str(parts[-2]) if len(parts) >= 2 else self.path.parent.name
            digits = re.findall(r"\d+", Path(image).stem)
            if not digits:
                raise DLCFormatError(
                    f"{self.path}: cannot read a frame number from image name {image!r}")
            per_individual: dict[str, dict[str, list[float]]] = {}
            for column, value in values.items():
                level = dict(zip(names, column, strict=True))
                individual = str(level.get("individuals", SINGLE_INDIVIDUAL))
                xy = per_individual.setdefault(individual, {}).setdefault(
                    str(level["bodyparts"]), [np.nan, np.nan])
                if level["coords"] in ("x", "y"):
                    xy["xy".index(level["coords"])] = float(value)
            for individual, bodyparts in per_individual.items():
                out.append({"video": video, "image": image, "frame_index": int(digits[-1]),
                            "individual": individual,
                            "bodyparts": {k: tuple(v) for k, v in bodyparts.items()}})
        return out


def read_labeled_data(path: str | Path) -> LabeledFrames:
    """Read a DeepLabCut ``CollectedData_<scorer>.h5``.

    Raises:
        DLCFormatError: naming the file when it is missing, unreadable or not a
            labelled-data table (a column MultiIndex with ``bodyparts`` and ``coords``).
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DLCFormatError(f"labelled data not found: {path}")
    try:
        table = pd.read_hdf(path)
    except Exception as exc:
        raise DLCFormatError(f"cannot read labelled data {path}: {reason(exc)}") from exc
    columns = getattr(table, "columns", None)
    if (not isinstance(columns, pd.MultiIndex) or "bodyparts" not in columns.names
            or "coords" not in columns.names):
        raise DLCFormatError(f"{path} is not a DeepLabCut labelled-data table")
    individuals = (list(dict.fromkeys(str(i) for i in columns.get_level_values("individuals")))
                   if "individuals" in columns.names else [])
    return LabeledFrames(
        path=path,
        table=table,
        scorers=[str(s) for s in dict.fromkeys(columns.get_level_values(0))],
        bodyparts=[str(b) for b in dict.fromkeys(columns.get_level_values("bodyparts"))],
        individuals=individuals,
    )
