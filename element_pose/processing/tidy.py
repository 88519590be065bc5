"""Per-frame tidy tables in the Inscopix "experiment annotations" layout.

One row per frame (per individual, see below) with the columns, in order:

* identifier columns, when given (e.g. ``subject``, ``session``, ``model``), so that
  several estimations can be stacked with :func:`concat_tidy`;
* ``Frame number`` -- frame index across all files of the recording (0-based);
* ``Movie number`` -- which file of a multi-file recording (0-based);
* ``Local frame number`` -- frame index within that file (0-based);
* ``Time since start (s)`` -- seconds since the first frame, from the pose's
  timestamps or frame rate (NaN when neither is known);
* ``individual`` -- multi-animal data only (see ``individual_layout``);
* for each body part: ``<bodypart> x``, ``<bodypart> y`` (``<bodypart> z`` for 3D)
  and ``<bodypart> likelihood``.

The capitalisation of the first four columns is the Inscopix tool's (constants
below).  Multi-animal data use the long layout by default: one row per frame and
individual with an ``individual`` column, so every table has the same body-part
columns whatever the number of animals.  ``individual_layout="prefix"`` keeps one
row per frame and prefixes the columns instead: ``<individual> <bodypart> x``.
The hardware-counter column of ``.isxb`` movies is not produced.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from element_pose.core.pose import PoseData, PoseDataError
from element_pose.core.util import atomic_write

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

__all__ = [
    "FRAME_NUMBER",
    "INDIVIDUAL",
    "LOCAL_FRAME_NUMBER",
    "MOVIE_NUMBER",
    "TIME_SINCE_START",
    "TidyError",
    "concat_tidy",
    "read_tidy",
    "to_tidy",
    "write_tidy",
]

FRAME_NUMBER = "Frame number"
MOVIE_NUMBER = "Movie number"
LOCAL_FRAME_NUMBER = "Local frame number"
TIME_SINCE_START = "Time since start (s)"
INDIVIDUAL = "individual"
FRAME_COLUMNS = (FRAME_NUMBER, MOVIE_NUMBER, LOCAL_FRAME_NUMBER, TIME_SINCE_START)
_ATTRS_KEY = "identifiers"


class TidyError(ValueError):
    """Bad arguments for a tidy table (frame counts, identifiers, file type)."""


def _movie_numbers(n_frames: int, frame_counts: Sequence[int] | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    if frame_counts is None:
        return np.zeros(n_frames, dtype=np.int64), np.arange(n_frames, dtype=np.int64)
    counts = list(frame_counts)
    if any(isinstance(c, bool) or int(c) != c or c < 0 for c in counts):
        raise TidyError(f"frame_counts must be non-negative integers, got {counts}")
    if sum(counts) != n_frames:
        raise TidyError(
            f"frame_counts {counts} add up to {sum(counts)} frames, the pose data have {n_frames}"
        )
    movie = np.repeat(np.arange(len(counts), dtype=np.int64), np.asarray(counts, dtype=np.int64))
    starts = np.repeat(np.cumsum([0, *counts[:-1]]), counts)
    return movie, np.arange(n_frames, dtype=np.int64) - starts


def _time_since_start(pose: PoseData) -> np.ndarray:
    try:
        t = pose.time()
    except PoseDataError:
        logger.warning("no timestamps or fps: '%s' will be NaN", TIME_SINCE_START)
        return np.full(pose.n_frames, np.nan)
    return t - t[0] if len(t) else t.astype(np.float64)


def _bodypart_columns(pose: PoseData, i: int, prefix: str = "") -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    for k, name in enumerate(pose.keypoints):
        for c, coord in enumerate(pose.space):
            columns[f"{prefix}{name} {coord}"] = pose.position[:, i, k, c]
        columns[f"{prefix}{name} likelihood"] = pose.confidence[:, i, k]
    return columns


def to_tidy(
    pose: PoseData,
    frame_counts: Sequence[int] | None = None,
    identifiers: Mapping[str, Any] | None = None,
    individual_layout: Literal["column", "prefix"] = "column",
) -> pd.DataFrame:
    """A per-frame tidy table of pose estimates (see the module docstring).

    Args:
        pose: Pose data (2D or 3D), possibly several files joined along time.
        frame_counts: Frames in each file of a multi-file recording, in order; they
            must add up to ``pose.n_frames``.  Default: one file.
        identifiers: Constant columns put first, e.g. ``{"subject": "m1",
            "session": 3, "model": "resnet50"}``; remembered in ``df.attrs`` for
            :func:`concat_tidy`.
        individual_layout: For multi-animal data, ``"column"`` (long: one row per
            frame and individual) or ``"prefix"`` (wide: ``<individual> <bodypart> x``).
            Single-animal data never get an individual column or prefix.

    Returns:
        A ``pandas.DataFrame``: integer frame columns, float64 time, float32 values.

    Raises:
        TidyError: frame counts that do not match, or identifier names that clash
            with the table's columns.
    """
    import pandas as pd

    if individual_layout not in ("column", "prefix"):
        raise TidyError(
            f"individual_layout must be 'column' or 'prefix', got {individual_layout!r}"
        )
    movie, local = _movie_numbers(pose.n_frames, frame_counts)
    frame_part = {
        FRAME_NUMBER: np.arange(pose.n_frames, dtype=np.int64),
        MOVIE_NUMBER: movie,
        LOCAL_FRAME_NUMBER: local,
        TIME_SINCE_START: _time_since_start(pose),
    }
    if not pose.is_multi_animal:
        df = pd.DataFrame({**frame_part, **_bodypart_columns(pose, 0)})
    elif individual_layout == "prefix":
        wide = {}
        for i, name in enumerate(pose.individuals):
            wide.update(_bodypart_columns(pose, i, prefix=f"{name} "))
        df = pd.DataFrame({**frame_part, **wide})
    else:
        parts = []
        for i, name in enumerate(pose.individuals):
            part = pd.DataFrame({**frame_part, INDIVIDUAL: name, **_bodypart_columns(pose, i)})
            part["_order"] = i
            parts.append(part)
        df = (pd.concat(parts, ignore_index=True)
              .sort_values([FRAME_NUMBER, "_order"], kind="stable")
              .drop(columns="_order")
              .reset_index(drop=True))

    identifiers = dict(identifiers or {})
    clash = [name for name in identifiers if name in df.columns]
    if clash:
        raise TidyError(f"identifier names {clash} clash with the table's columns")
    for position, (name, value) in enumerate(identifiers.items()):
        if not np.isscalar(value) and value is not None:
            raise TidyError(f"identifier {name!r} must be a single value, got {value!r}")
        df.insert(position, name, value)
    df.attrs[_ATTRS_KEY] = list(identifiers)
    return df


def _key_columns(df: pd.DataFrame, identifiers: Sequence[str]) -> list[str]:
    keys = [*identifiers, FRAME_NUMBER]
    if INDIVIDUAL in df.columns:
        keys.append(INDIVIDUAL)
    return keys


def concat_tidy(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Stack tidy tables of several estimations into one.

    Columns are the union in order of first appearance (a body part missing from
    one estimation is NaN there); identifier columns stay first.

    Raises:
        TidyError: no tables, or rows that cannot be told apart (same identifiers,
            frame number and individual) -- pass ``identifiers`` to :func:`to_tidy`.
    """
    import pandas as pd

    if not tables:
        raise TidyError("no tables to concatenate")
    identifiers: list[str] = []
    for table in tables:
        for name in table.attrs.get(_ATTRS_KEY, []):
            if name not in identifiers:
                identifiers.append(name)
    df = pd.concat(list(tables), ignore_index=True, sort=False)
    df = df[[*identifiers, *[c for c in df.columns if c not in identifiers]]]
    keys = _key_columns(df, identifiers)
    duplicated = df.duplicated(subset=keys)
    if duplicated.any():
        raise TidyError(
            f"{int(duplicated.sum())} rows repeat the same {keys}: give each estimation "
            "distinguishing identifiers (e.g. subject, session, model) in to_tidy"
        )
    df.attrs = {_ATTRS_KEY: identifiers}
    return df


def write_tidy(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a tidy table as ``.csv`` or ``.parquet`` (by suffix), atomically.

    Parquet needs ``pyarrow`` (or ``fastparquet``).

    Raises:
        TidyError: any other suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise TidyError(f"tidy tables are written as .csv or .parquet, not {path.name!r}")
    if suffix == ".csv":
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    logger.debug("wrote %d rows to %s", len(df), path)
    return path


def read_tidy(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`write_tidy`."""
    import pandas as pd

    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    raise TidyError(f"tidy tables are .csv or .parquet, not {path.name!r}")
