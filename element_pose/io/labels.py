"""Labelled sets of either engine -> :class:`~element_pose.core.labels.LabelSet`.

:func:`read_label_set` reads what a person labelled, whatever tool they used:

* a DeepLabCut project (its folder or its ``config.yaml``): every
  ``labeled-data/<video>/CollectedData_<scorer>.h5`` (``.csv`` where there is no
  ``.h5``); body-part order from the config's ``bodyparts`` (``multianimalbodyparts``
  then ``uniquebodyparts`` for multi-animal projects), individuals from its
  ``individuals`` (plus ``single`` when there are unique body parts), skeleton from
  its ``skeleton``.  Frame ids ``labeled-data/<video>/imgNNNN.png``; root the project
  folder.
* one ``CollectedData_<scorer>.h5`` or ``.csv`` (as DeepLabCut or napari-deeplabcut
  write them): body parts and individuals in column order; root the project folder
  above ``labeled-data/<video>/`` (the skeleton from its ``config.yaml`` when there is
  one).
* a SLEAP ``.slp`` or ``.pkg.slp`` (see :mod:`element_pose.io.sleap_labels`).

A file labelling body parts its project does not declare is refused, naming the file
and the parts; body parts the project declares but a file does not label are NaN.
The writers of the other direction (DeepLabCut ``CollectedData`` and projects, SLEAP
``.slp``) are :func:`element_pose.io.dlc_labels_write.write_dlc_labels` and
:func:`element_pose.io.sleap_labels.write_slp`.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from element_pose.core.labels import LabelSet, LabelSetError
from element_pose.core.pose import SINGLE_INDIVIDUAL
from element_pose.io.dlc import (
    DLCFormatError,
    config_bodyparts,
    config_individuals,
    config_skeleton,
    is_multi_animal,
    read_config,
)
from element_pose.io.registry import PoseFormatError, reason

log = logging.getLogger(__name__)

__all__ = [
    "LabelFormatError",
    "collected_data_files",
    "label_set_from_table",
    "read_collected_data",
    "read_dlc_label_set",
    "read_label_set",
]


class LabelFormatError(PoseFormatError, LabelSetError):
    """A labelled set is missing, unreadable, foreign or inconsistent (names the file)."""


def read_label_set(path: str | Path, *, images_to: str | Path | None = None) -> LabelSet:
    """Read a labelled set of either engine.

    Args:
        path: A DeepLabCut project folder or its ``config.yaml``, one
            ``CollectedData_*.h5``/``.csv``, or a SLEAP ``.slp``/``.pkg.slp``.
        images_to: SLEAP only: the folder the labelled frames' images are written to
            (default: a folder beside the file named after it, ``<name>.images``).

    Returns:
        The labelled set; ``labels.image(frame)`` is each frame's image file.

    Raises:
        LabelFormatError: naming the file when it is missing, unreadable or not a
            labelled set of a known kind, or its body parts do not match its project.
    """
    path = Path(path)
    if not path.exists():
        raise LabelFormatError(f"labelled set not found: {path}")
    name = path.name.lower()
    if path.is_dir() or name.endswith((".yaml", ".yml")):
        return read_dlc_label_set(path)
    if name.endswith(".slp"):
        from element_pose.io.sleap_labels import read_slp_label_set

        return read_slp_label_set(path, images_to=images_to)
    if name.endswith((".h5", ".hdf5", ".csv")):
        return read_collected_data(path)
    raise LabelFormatError(
        f"{path} is not a labelled set: expected a DeepLabCut project (folder or "
        "config.yaml), a CollectedData .h5/.csv or a SLEAP .slp/.pkg.slp")


# ------------------------------------------------------------------ DeepLabCut
def collected_data_files(project: Path) -> list[Path]:
    """Each ``labeled-data/<video>/CollectedData_*.h5`` of a project (the ``.csv``
    where a folder has no ``.h5``), sorted by video folder."""
    out = []
    for folder in sorted(p for p in (project / "labeled-data").glob("*") if p.is_dir()):
        h5 = sorted(folder.glob("CollectedData_*.h5"))
        out.extend(h5 or sorted(folder.glob("CollectedData_*.csv"))[:1])
    return out


def read_dlc_label_set(project: str | Path) -> LabelSet:
    """Read every labelled frame of a DeepLabCut project.

    Raises:
        LabelFormatError: the project has no readable config, no labelled data, or a
            file labels body parts or individuals the config does not declare.
    """
    project = Path(project)
    config = project if project.is_file() else project / "config.yaml"
    project = config.parent
    try:
        cfg = read_config(config)
    except (DLCFormatError, OSError) as exc:
        raise LabelFormatError(f"cannot read the DeepLabCut project {config}: "
                               f"{reason(exc)}") from exc
    keypoints = config_bodyparts(cfg)
    individuals = config_individuals(cfg)
    files = collected_data_files(project)
    if not files:
        raise LabelFormatError(f"{project}: no labeled-data/*/CollectedData_*.h5 or .csv")
    frames: list[str] = []
    blocks: list[np.ndarray] = []
    scorer = str(cfg.get("scorer") or "")
    for file in files:
        table = _read_table(file)
        ids = _frame_ids(table, file)
        blocks.append(_positions(table, file, keypoints, individuals, is_multi_animal(cfg)))
        frames.extend(ids)
    xy = (np.concatenate(blocks) if blocks
          else np.empty((0, len(individuals), len(keypoints), 2)))
    return _label_set(frames, keypoints, individuals, xy, config_skeleton(cfg), project,
                      scorer, config)


def read_collected_data(path: str | Path) -> LabelSet:
    """Read one ``CollectedData_<scorer>.h5`` or ``.csv``.

    Body parts and individuals follow the file's columns; the root is the folder above
    ``labeled-data`` and the skeleton its ``config.yaml``'s, when there is one.

    Raises:
        LabelFormatError: naming the file when it is not a labelled-data table.
    """
    path = Path(path)
    table = _read_table(path)
    columns = table.columns
    keypoints = [str(b) for b in dict.fromkeys(columns.get_level_values("bodyparts"))]
    multi = "individuals" in columns.names
    individuals = ([str(i) for i in dict.fromkeys(columns.get_level_values("individuals"))]
                   if multi else [SINGLE_INDIVIDUAL])
    frames = _frame_ids(table, path)
    root = path.parent.parent.parent
    skeleton: list[tuple[str, str]] = []
    config = root / "config.yaml"
    if config.is_file():
        try:
            skeleton = [e for e in config_skeleton(read_config(config))
                        if e[0] in keypoints and e[1] in keypoints]
        except DLCFormatError as exc:
            log.warning("ignoring the skeleton of %s: %s", config, exc)
    xy = _positions(table, path, keypoints, individuals, multi)
    scorer = str(columns.get_level_values(0)[0]) if len(columns) else ""
    return _label_set(frames, keypoints, individuals, xy, skeleton, root, scorer, path)


def label_set_from_table(table: Any, source: str | Path, *, root: str | Path | None = None,
                         keypoints: list[str] | None = None,
                         individuals: list[str] | None = None) -> LabelSet:
    """A :class:`LabelSet` from a DeepLabCut labelled-data DataFrame already in memory.

    Raises:
        LabelFormatError: naming ``source`` when the table is not labelled data.
    """
    _check_table(table, Path(source))
    multi = "individuals" in table.columns.names
    keypoints = keypoints or [str(b) for b in
                              dict.fromkeys(table.columns.get_level_values("bodyparts"))]
    individuals = individuals or (
        [str(i) for i in dict.fromkeys(table.columns.get_level_values("individuals"))]
        if multi else [SINGLE_INDIVIDUAL])
    xy = _positions(table, Path(source), keypoints, individuals, multi)
    return _label_set(_frame_ids(table, Path(source)), keypoints, individuals, xy, [],
                      None if root is None else Path(root), "", source)


def _label_set(frames: list[str], keypoints: list[str], individuals: list[str],
               xy: np.ndarray, skeleton: list[tuple[str, str]], root: Path | None,
               scorer: str, source: str | Path) -> LabelSet:
    try:
        return LabelSet(frames=frames, keypoints=keypoints, individuals=individuals, xy=xy,
                        skeleton=skeleton, root=root, scorer=scorer)
    except LabelSetError as exc:
        raise LabelFormatError(f"{source}: {exc}") from exc


def _read_table(path: Path):
    """A ``CollectedData`` file's DataFrame (``.h5`` any key, or DeepLabCut's ``.csv``)."""
    import pandas as pd

    if not path.is_file():
        raise LabelFormatError(f"labelled data not found: {path}")
    try:
        table = (_read_csv(path) if path.suffix.lower() == ".csv"
                 else pd.read_hdf(path))
    except LabelFormatError:
        raise
    except Exception as exc:
        raise LabelFormatError(f"cannot read labelled data {path}: {reason(exc)}") from exc
    _check_table(table, path)
    return table


def _check_table(table: Any, path: Path) -> None:
    import pandas as pd

    columns = getattr(table, "columns", None)
    if (not isinstance(columns, pd.MultiIndex) or "bodyparts" not in columns.names
            or "coords" not in columns.names):
        raise LabelFormatError(f"{path} is not a DeepLabCut labelled-data table "
                               "(columns scorer/[individuals/]bodyparts/coords)")


_HEADER_ROWS = ("scorer", "individuals", "bodyparts", "coords")


def _read_csv(path: Path):
    """DeepLabCut's ``CollectedData`` ``.csv``: header rows ``scorer``,
    [``individuals``,] ``bodyparts``, ``coords``; one or three index columns."""
    import pandas as pd

    raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    n_header = 0
    while n_header < len(raw) and raw.iat[n_header, 0] in _HEADER_ROWS:
        n_header += 1
    names = list(raw.iloc[:n_header, 0])
    if "bodyparts" not in names or "coords" not in names:
        raise LabelFormatError(f"{path} is not a DeepLabCut labelled-data table "
                               "(no bodyparts and coords header rows)")
    first = list(raw.iloc[0])
    n_index = 1
    while n_index < len(first) and first[n_index] == "":
        n_index += 1
    columns = pd.MultiIndex.from_arrays(
        [list(raw.iloc[r, n_index:]) for r in range(n_header)], names=names)
    body = raw.iloc[n_header:]
    index = ([str(v) for v in body.iloc[:, 0]] if n_index == 1 else
             pd.MultiIndex.from_arrays([list(body.iloc[:, c]) for c in range(n_index)]))
    values = body.iloc[:, n_index:].replace("", "nan").to_numpy(dtype=np.float64)
    return pd.DataFrame(values, index=index, columns=columns)


def _frame_ids(table: Any, path: Path) -> list[str]:
    """Frame ids ``labeled-data/<video>/<image>`` of a table's rows (the video folder is
    the file's own when a row names only the image)."""
    ids = []
    for idx in table.index:
        parts = ([str(p) for p in idx] if isinstance(idx, tuple)
                 else list(PurePosixPath(str(idx).replace("\\", "/")).parts))
        if len(parts) < 3:
            parts = ["labeled-data", path.parent.name, parts[-1]]
        ids.append("/".join(parts[-3:]))
    return ids


def _positions(table: Any, path: Path, keypoints: list[str], individuals: list[str],
               multi: bool) -> np.ndarray:
    """``(n_rows, n_individuals, n_keypoints, 2)`` from a table's columns, NaN where a
    column is absent.

    Raises:
        LabelFormatError: a column names a body part or individual not in the lists.
    """
    names = list(table.columns.names)
    values = table.to_numpy(dtype=np.float64)
    xy = np.full((len(table), len(individuals), len(keypoints), 2), np.nan)
    kp_index = {k: i for i, k in enumerate(keypoints)}
    ind_index = {k: i for i, k in enumerate(individuals)}
    unknown_kp: set[str] = set()
    unknown_ind: set[str] = set()
    for c, column in enumerate(table.columns):
        level = dict(zip(names, column, strict=True))
        coord = str(level["coords"])
        if coord not in ("x", "y"):
            continue
        bodypart = str(level["bodyparts"])
        individual = str(level["individuals"]) if multi else individuals[0]
        if bodypart not in kp_index:
            unknown_kp.add(bodypart)
        elif individual not in ind_index:
            unknown_ind.add(individual)
        else:
            xy[:, ind_index[individual], kp_index[bodypart], "xy".index(coord)] = values[:, c]
    if unknown_kp or unknown_ind:
        raise LabelFormatError(
            f"{path} labels body parts {sorted(unknown_kp)} / individuals "
            f"{sorted(unknown_ind)} its project does not declare (body parts {keypoints}, "
            f"individuals {individuals})")
    return xy
