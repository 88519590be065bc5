"""DeepLabCut files <-> :class:`~element_pose.core.pose.PoseData`, with no database.

The one reader of DeepLabCut outputs in element-pose: load mode, trigger mode,
tests and benchmarks all come through :func:`read_dlc_output` (``.h5`` through
:func:`read_dlc_h5`, ``.csv`` through :func:`read_dlc_csv`).

Formats (DeepLabCut 3, PyTorch engine):

* ``<video><scorer>.h5``: key ``df_with_missing``; columns
  ``scorer/bodyparts/coords`` (single animal) or
  ``scorer/individuals/bodyparts/coords`` (multi-animal; unique body parts sit
  under the individual ``single``); coords ``x, y, likelihood``.
* ``<video><scorer>_meta.pickle``: ``{"data": {fps, nframes, frame_dimensions,
  Scorer, bodyparts, individuals, cropping, run_duration, ...}}``.
* ``<video><scorer>.csv`` (``save_as_csv``): the same table as text, header rows
  ``scorer``, (``individuals``,) ``bodyparts``, ``coords``.
* ``<video><scorer>_filtered.h5``: same layout; never picked up as raw output.
* ``config.yaml``: the project configuration.

Labelled frames (``CollectedData``) have their own reader, :mod:`element_pose.io.dlc_labels`.

Why not movement's loader (``movement.io.load_poses.from_file(path, "DeepLabCut")``,
movement 0.15; ``tests/io/test_movement_parity.py`` checks both read equal values):
it reshapes a multi-animal file with unique body parts (individual ``single``) without
aligning them, so 10 frames come back as 6 with scrambled values; it accepts
likelihoods outside [0, 1] (we refuse them, naming body part, individual and frame);
it reads CSVs as float64 (we keep float32, the ingest path's dtype); and it is slower:
0.14 s against 0.07 s here for an ``.h5``, 2.4 s against 2.2 s for a ``.csv``
(54,000 frames x 20 body parts, best of 3 on the project's 2-core machine).

Size: over 600 lines because it is the one DeepLabCut output reader (config, h5, csv,
meta, output discovery); the ``config.yaml`` section is the next to move out.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.pose import SINGLE_INDIVIDUAL, PoseData
from element_pose.io.h5table import read_frame_table
from element_pose.io.registry import PoseFormatError, reason

__all__ = [
    "ACCEPTED_OUTPUTS",
    "FILTERED_SUFFIX",
    "H5_KEY",
    "LIKELIHOOD_TOLERANCE",
    "MAX_ABS_COORDINATE",
    "NAME_MAX_LENGTH",
    "UNIQUE_INDIVIDUAL",
    "DLCFormatError",
    "DLCValueError",
    "check_dlc_values",
    "config_bodyparts",
    "config_individuals",
    "config_skeleton",
    "coordinate_bounds",
    "find_outputs",
    "is_multi_animal",
    "meta_engine_version",
    "output_snapshot",
    "pose_from_dataframe",
    "read_config",
    "read_dlc_csv",
    "read_dlc_h5",
    "read_dlc_meta",
    "read_dlc_output",
    "validate_config",
    "write_config",
    "write_dlc_h5",
    "write_dlc_meta",
]

log = logging.getLogger(__name__)

H5_KEY = "df_with_missing"
FILTERED_SUFFIX = "_filtered"
UNIQUE_INDIVIDUAL = "single"


#: Largest |x| or |y| (pixels) accepted when the frame size is not known.
MAX_ABS_COORDINATE = 100_000.0
#: Tolerance on DeepLabCut's likelihood range [0, 1] (float32 rounding).
LIKELIHOOD_TOLERANCE = 1e-6


class DLCFormatError(PoseFormatError):
    """A DeepLabCut file is missing, unreadable or not in the expected layout."""


class DLCValueError(DLCFormatError):
    """A DeepLabCut output holds values that cannot be poses (likelihood or x/y range)."""


# ---------------------------------------------------------------- config.yaml
def read_config(config_path: str | Path) -> dict[str, Any]:
    """Read a DeepLabCut ``config.yaml`` and validate it (:func:`validate_config`).

    Every reader of a config in element-pose comes through here.

    Raises:
        DLCFormatError: if the file is missing, is not YAML, or is not a valid
            config (the message names the file and the key).
    """
    import yaml

    path = Path(config_path)
    if not path.is_file():
        raise DLCFormatError(f"DeepLabCut config not found: {path}")
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise DLCFormatError(f"DeepLabCut config {path} is not valid YAML: {exc}") from exc
    return validate_config(cfg, path)


#: Longest body part, individual or Task name (the database columns are varchar(64)).
NAME_MAX_LENGTH = 64


def validate_config(cfg: Any, source: str | Path = "config.yaml") -> dict[str, Any]:
    """Check the keys of a DeepLabCut config that element-pose relies on.

    Checked: a mapping; ``Task`` (text of at most 64 characters) and ``scorer``
    present; single-animal ``bodyparts`` a non-empty list; multi-animal
    (``multianimalproject: true``) ``individuals`` and ``multianimalbodyparts``
    non-empty lists, ``uniquebodyparts`` a list; every name a non-empty text of
    at most :data:`NAME_MAX_LENGTH` characters, without duplicates; ``skeleton``
    a list of pairs; ``TrainingFraction`` numbers in (0, 1]; ``pcutoff`` in [0, 1].

    Args:
        cfg: The parsed YAML.
        source: The file, for messages.

    Returns:
        ``cfg`` itself.

    Raises:
        DLCFormatError: naming the file and the key.
    """
    where = f"DeepLabCut config {source}"
    if not isinstance(cfg, dict):
        raise DLCFormatError(f"{where} is not a mapping of keys to values")
    _check_task(cfg, where)
    multi = cfg.get("multianimalproject")
    if multi not in (None, True, False):
        raise DLCFormatError(f"{where}: 'multianimalproject' must be true or false, got {multi!r}")
    if multi:
        _check_multi_animal_names(cfg, where)
    else:
        _check_single_animal_names(cfg, where)
    _check_numbers_and_skeleton(cfg, where)
    return cfg


def _check_task(cfg: dict[str, Any], where: str) -> None:
    """``Task`` and ``scorer`` present; ``Task`` a short text."""
    for key in ("Task", "scorer"):
        if cfg.get(key) in (None, ""):
            raise DLCFormatError(f"{where} lacks the key {key!r}")
    task = cfg["Task"]
    if not isinstance(task, str) or len(task) > NAME_MAX_LENGTH:
        raise DLCFormatError(
            f"{where}: 'Task' must be a text of at most {NAME_MAX_LENGTH} characters, "
            f"got {str(task)[:80]!r}")


def _check_multi_animal_names(cfg: dict[str, Any], where: str) -> None:
    """Multi-animal: individuals (not DeepLabCut's reserved one) and body parts, the
    multi-animal and unique ones disjoint."""
    individuals = _names(cfg, "individuals", where, required=True)
    if not individuals:
        raise DLCFormatError(f"{where} is a multi-animal project (multianimalproject: true) "
                             "but lists no individuals ('individuals')")
    if UNIQUE_INDIVIDUAL in individuals:
        raise DLCFormatError(f"{where}: 'individuals': {UNIQUE_INDIVIDUAL!r} is reserved by "
                             "DeepLabCut for unique body parts")
    multi_parts = _names(cfg, "multianimalbodyparts", where, required=True)
    unique_parts = _names(cfg, "uniquebodyparts", where, required=False)
    if not multi_parts:
        raise DLCFormatError(f"{where} is a multi-animal project but 'multianimalbodyparts' "
                             "is empty: it names no body parts")
    both = sorted(set(multi_parts) & set(unique_parts))
    if both:
        raise DLCFormatError(f"{where}: body parts {both} are in both 'multianimalbodyparts' "
                             "and 'uniquebodyparts'")


def _check_single_animal_names(cfg: dict[str, Any], where: str) -> None:
    """Single-animal: a non-empty ``bodyparts`` list (not the multi-animal marker)."""
    if cfg.get("bodyparts") == "MULTI!":
        raise DLCFormatError(f"{where}: 'bodyparts' is 'MULTI!' (a multi-animal project) but "
                             "'multianimalproject' is not true")
    if not _names(cfg, "bodyparts", where, required=False):
        raise DLCFormatError(f"{where} names no body parts ('bodyparts' is missing or "
                             "empty; multi-animal projects: multianimalbodyparts)")


def _check_numbers_and_skeleton(cfg: dict[str, Any], where: str) -> None:
    """``skeleton`` pairs, ``TrainingFraction`` in (0, 1], ``pcutoff`` in [0, 1]."""
    skeleton = cfg.get("skeleton")
    if skeleton is not None and (not isinstance(skeleton, list) or not all(
            isinstance(e, list | tuple) and len(e) == 2 for e in skeleton)):
        raise DLCFormatError(f"{where}: 'skeleton' must be a list of [body part, body part] "
                             f"pairs, got {str(skeleton)[:200]}")
    fractions = cfg.get("TrainingFraction")
    if fractions is not None and (not isinstance(fractions, list) or not all(
            _is_number(f) and 0 < f <= 1 for f in fractions)):
        raise DLCFormatError(f"{where}: 'TrainingFraction' must be a list of numbers in (0, 1], "
                             f"got {fractions!r}")
    pcutoff = cfg.get("pcutoff")
    if pcutoff is not None and not (_is_number(pcutoff) and 0 <= pcutoff <= 1):
        raise DLCFormatError(f"{where}: 'pcutoff' must be a number in [0, 1], got {pcutoff!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _names(cfg: dict[str, Any], key: str, where: str, required: bool) -> list[str]:
    """The list of names under ``key``, checked (type, null, length, duplicates)."""
    if key not in cfg:
        if required:
            raise DLCFormatError(f"{where} lacks the key {key!r}")
        return []
    value = cfg[key]
    if value is None:
        return []
    if isinstance(value, str):
        raise DLCFormatError(f"{where}: {key!r} must be a list of names, got the text {value!r}"
                             f" (write it as [{value}] or one '- {value}' line per name)")
    if not isinstance(value, list):
        raise DLCFormatError(f"{where}: {key!r} must be a list of names, got {value!r}")
    for i, name in enumerate(value):
        _check_name(name, i, key, where)
    duplicates = sorted({n for n in value if value.count(n) > 1})
    if duplicates:
        raise DLCFormatError(f"{where}: {key!r} lists {duplicates} more than once")
    return list(value)


def _check_name(name: Any, i: int, key: str, where: str) -> None:
    """Entry ``i`` of the list ``key``: a non-empty text of at most NAME_MAX_LENGTH."""
    if name is None or (isinstance(name, str) and not name.strip()):
        raise DLCFormatError(f"{where}: {key!r} entry {i} is empty (null); every entry "
                             "must be a name")
    if not isinstance(name, str):
        raise DLCFormatError(f"{where}: {key!r} entry {i} must be a text name, "
                             f"got {name!r}")
    if len(name) > NAME_MAX_LENGTH:
        raise DLCFormatError(f"{where}: {key!r} entry {i} ({name[:40]!r}...) has {len(name)} "
                             f"characters; names are at most {NAME_MAX_LENGTH}")


def write_config(cfg: dict[str, Any], config_path: str | Path) -> Path:
    """Write a DeepLabCut ``config.yaml`` (used for the copies a task owns)."""
    import yaml

    path = Path(config_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    with open(tmp, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    tmp.replace(path)
    return path


def is_multi_animal(cfg: dict[str, Any]) -> bool:
    """Whether a config describes a multi-animal project."""
    return bool(cfg.get("multianimalproject"))


def config_bodyparts(cfg: dict[str, Any]) -> list[str]:
    """All body parts of a project, in the order DeepLabCut writes them."""
    if is_multi_animal(cfg):
        multi = cfg.get("multianimalbodyparts") or []
        unique = cfg.get("uniquebodyparts") or []
        return [*multi, *unique]
    bodyparts = cfg.get("bodyparts") or []
    return [] if bodyparts == "MULTI!" else list(bodyparts)


def config_individuals(cfg: dict[str, Any]) -> list[str]:
    """Individuals of a project (``[individual_0]`` for single-animal projects)."""
    if not is_multi_animal(cfg):
        return [SINGLE_INDIVIDUAL]
    individuals = list(cfg.get("individuals") or [])
    if cfg.get("uniquebodyparts"):
        individuals.append(UNIQUE_INDIVIDUAL)
    return individuals


def config_skeleton(cfg: dict[str, Any]) -> list[tuple[str, str]]:
    """Skeleton edges of a project, keeping only edges between known body parts."""
    known = set(config_bodyparts(cfg))
    edges = []
    for edge in cfg.get("skeleton") or []:
        if len(edge) == 2 and edge[0] in known and edge[1] in known:
            edges.append((str(edge[0]), str(edge[1])))
    return edges


# ------------------------------------------------------------- pose h5 files
def read_dlc_h5(path: str | Path, *, fps: float | None = None,
                frame_size: tuple[int, int] | None = None) -> PoseData:
    """Read a DeepLabCut pose output (``.h5``) into :class:`PoseData`.

    Single-animal files get one individual, ``individual_0``.  Multi-animal
    files keep their individuals; unique body parts (individual ``single``) are
    placed on their own individual with the other body parts missing.  Values
    are checked with :func:`check_dlc_values`.

    Args:
        path: The ``.h5`` file.
        fps: Frame rate to attach, when known.
        frame_size: ``(width, height)`` of the video in pixels, when known: x/y
            are then checked against the frame rather than an absolute bound.

    Raises:
        DLCFormatError: if the file is missing, truncated or not a pose table.
        DLCValueError: a likelihood outside [0, 1] or an impossible x/y (named).
    """
    path = Path(path)
    if not path.is_file():
        raise DLCFormatError(f"DeepLabCut output not found: {path}")
    try:
        df = _read_h5_frame(path)
    except Exception as exc:  # pytables/h5py raise many different types
        raise DLCFormatError(
            f"cannot read DeepLabCut output {path}: {reason(exc)}"
        ) from exc
    pose = pose_from_dataframe(df, source=str(path), fps=fps)
    return check_dlc_values(pose, str(path), frame_size=frame_size)


def coordinate_bounds(frame_size: tuple[int, int] | None) -> list[tuple[float, float]]:
    """The accepted range of each coordinate (x, y[, z]) of a DeepLabCut output.

    With a known frame of ``width x height`` pixels, x must lie in
    ``[-width, 2 * width]`` and y in ``[-height, 2 * height]`` (one frame beyond
    every edge: DeepLabCut's predictions lie inside the frame or a few pixels
    outside it).  Otherwise every coordinate must satisfy
    ``|value| <= MAX_ABS_COORDINATE`` (100,000 pixels).
    """
    if frame_size and all(frame_size):
        width, height = (float(v) for v in frame_size)
        return [(-width, 2 * width), (-height, 2 * height),
                (-MAX_ABS_COORDINATE, MAX_ABS_COORDINATE)]
    return [(-MAX_ABS_COORDINATE, MAX_ABS_COORDINATE)] * 3


def check_dlc_values(pose: PoseData, source: str,
                     frame_size: tuple[int, int] | None = None) -> PoseData:
    """Refuse DeepLabCut values that cannot be poses; return ``pose`` unchanged.

    NaN is legal everywhere (a point not detected).  Refused: a likelihood
    outside [0, 1] (including +/-inf), and x/y that are infinite or outside
    :func:`coordinate_bounds`.  The score range is DeepLabCut's: other
    formats' readers apply their own.

    Raises:
        DLCValueError: naming the file, the body part (and individual), the
            first bad frame and its value.
    """
    confidence = pose.confidence
    bad = _outside(confidence, -LIKELIHOOD_TOLERANCE, 1 + LIKELIHOOD_TOLERANCE)
    if bad is not None:
        frame, individual, keypoint = _first(bad)
        raise DLCValueError(
            f"{source}: likelihood {confidence[frame, individual, keypoint]!r} of body part "
            f"{pose.keypoints[keypoint]!r}{_who(pose, individual)} at frame {frame} is outside "
            "[0, 1] (NaN is the only other value allowed)")
    bounds = coordinate_bounds(frame_size)
    for axis in range(pose.position.shape[-1]):
        values = pose.position[..., axis]
        low, high = bounds[axis]
        bad = _outside(values, low, high)
        if bad is not None:
            frame, individual, keypoint = _first(bad)
            where = (f"the {frame_size[0]} x {frame_size[1]} frame" if frame_size
                     and all(frame_size) else "the absolute bound")
            raise DLCValueError(
                f"{source}: {'xyz'[axis]} = {values[frame, individual, keypoint]!r} of body part "
                f"{pose.keypoints[keypoint]!r}{_who(pose, individual)} at frame {frame} is "
                f"outside [{low:g}, {high:g}] ({where}); coordinates must be finite pixels")
    return pose


def _outside(values: np.ndarray, low: float, high: float) -> np.ndarray | None:
    """The mask of values outside ``[low, high]`` (NaN is not outside), or None when
    there are none; without NaN and out-of-range values, two reductions and no mask."""
    if values.size == 0:
        return None
    lowest, highest = values.min(), values.max()  # NaN when any value is NaN
    if not (np.isnan(lowest) or np.isnan(highest)) and lowest >= low and highest <= high:
        return None
    with np.errstate(invalid="ignore"):
        bad = ~np.isnan(values) & ((values < low) | (values > high))
    return bad if bad.any() else None


def _first(mask: np.ndarray) -> tuple[int, int, int]:
    """(frame, individual, keypoint) of the first True, earliest frame first."""
    frame = int(np.argmax(mask.any(axis=(1, 2))))
    individual, keypoint = np.argwhere(mask[frame])[0]
    return frame, int(individual), int(keypoint)


def _who(pose: PoseData, individual: int) -> str:
    return f" of individual {pose.individuals[individual]!r}" if pose.is_multi_animal else ""


def _read_h5_frame(path: Path):
    """The pose table: h5py straight to float32 (fast), ``pandas.read_hdf`` as fallback."""
    import pandas as pd

    try:
        table = read_frame_table(path, H5_KEY)
    except Exception as exc:  # e.g. a filter h5py lacks (PyTables' blosc): pandas reads it
        log.debug("%s: h5py read failed (%s); reading with pandas", path, exc)
        table = None
    if table is not None:
        return table.to_dataframe()
    log.debug("%s: not a plain pandas frame table; reading with pandas", path)
    return pd.read_hdf(path)


def pose_from_dataframe(df, *, source: str, fps: float | None) -> PoseData:
    """A DeepLabCut-layout pose table (scorer/[individuals/]bodyparts/coords columns)
    as :class:`PoseData`; the values are not range-checked here.

    Raises:
        DLCFormatError: naming ``source`` when the columns are not DeepLabCut's.
    """
    import pandas as pd

    columns = df.columns
    names = list(columns.names) if columns.nlevels > 1 else []
    if names[-1:] != ["coords"] or columns.nlevels not in (3, 4):
        raise DLCFormatError(
            f"{source} is not a DeepLabCut pose table: column levels {names}; expected "
            "scorer/bodyparts/coords or scorer/individuals/bodyparts/coords"
        )
    scorers = columns.get_level_values(0).unique()
    if len(scorers) != 1:
        raise DLCFormatError(f"{source} holds several scorers: {list(scorers)}")
    bodyparts_level = columns.get_level_values(-2)
    coord_level = columns.get_level_values(-1)
    keypoints = list(dict.fromkeys(bodyparts_level))
    if columns.nlevels == 4:
        individual_level = columns.get_level_values(1)
        individuals = list(dict.fromkeys(individual_level))
    else:
        individual_level = None
        individuals = [SINGLE_INDIVIDUAL]
    coords = list(dict.fromkeys(coord_level))
    space = [c for c in ("x", "y", "z") if c in coords]
    if space not in (["x", "y"], ["x", "y", "z"]) or "likelihood" not in coords:
        raise DLCFormatError(f"{source}: coords {coords} lack x, y or likelihood")
    fields = dict(fps=fps, scorer=str(scorers[0]), source_software="DeepLabCut")

    # fast path: the full grid in DeepLabCut's own order is a plain reshape
    names_grid = [list(scorers), *([individuals] if individual_level is not None else []),
                  keypoints, [*space, "likelihood"]]
    if columns.equals(pd.MultiIndex.from_product(names_grid)):
        grid = df.to_numpy(dtype=np.float32).reshape(
            len(df), len(individuals), len(keypoints), len(space) + 1)
        return PoseData(position=grid[..., : len(space)], confidence=grid[..., len(space)],
                        keypoints=keypoints, individuals=individuals, **fields)

    keypoint_pos = {k: i for i, k in enumerate(keypoints)}
    individual_pos = {k: i for i, k in enumerate(individuals)}
    coord_pos = {c: i for i, c in enumerate([*space, "likelihood"])}
    known = [c in coord_pos for c in coord_level]
    ki = np.array([keypoint_pos[k] for k in bodyparts_level])[known]
    ci = np.array([coord_pos[c] for c in coord_level if c in coord_pos])
    if individual_level is None:
        ii = np.zeros(len(ci), dtype=int)
    else:
        ii = np.array([individual_pos[i] for i in individual_level])[known]

    values = df.to_numpy(dtype=np.float32)[:, np.asarray(known)]
    n_frames = values.shape[0]
    out = np.full(
        (n_frames, len(individuals), len(keypoints), len(space) + 1), np.nan, dtype=np.float32
    )
    out[:, ii, ki, ci] = values
    return PoseData(position=out[..., : len(space)], confidence=out[..., len(space)],
                    keypoints=keypoints, individuals=individuals, **fields)


def write_dlc_h5(pose: PoseData, path: str | Path, scorer: str | None = None) -> Path:
    """Write pose data as a DeepLabCut ``.h5`` output (atomically).

    Multi-animal layout is used when the data hold several individuals.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df = pose.to_dlc_dataframe(scorer=scorer)
    tmp = path.with_name(path.name + ".tmp")
    df.to_hdf(tmp, key=H5_KEY, format="table", mode="w")
    tmp.replace(path)
    return path


# -------------------------------------------------------------- meta pickles
def read_dlc_meta(path: str | Path) -> dict[str, Any]:
    """Read the ``data`` dict of a ``_meta.pickle`` written by ``analyze_videos``."""
    path = Path(path)
    if not path.is_file():
        raise DLCFormatError(f"DeepLabCut metadata not found: {path}")
    try:
        with open(path, "rb") as f:
            meta = pickle.load(f)
    except Exception as exc:
        raise DLCFormatError(f"cannot read DeepLabCut metadata {path}: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("data"), dict):
        raise DLCFormatError(f"{path} is not a DeepLabCut _meta.pickle (no 'data' dict)")
    return meta["data"]


def meta_engine_version(meta: dict[str, Any] | None) -> str:
    """The DeepLabCut version behind an output, from its ``_meta.pickle`` data.

    DeepLabCut 3.0 records no version number: outputs of its PyTorch engine (a
    ``pytorch-config`` entry) give ``"3.x"``; without metadata, ``"unknown"``.
    """
    if not meta:
        return "unknown"
    for key in ("deeplabcut_version", "dlc_version", "version"):
        if meta.get(key):
            return str(meta[key])
    return "3.x" if "pytorch-config" in meta else "unknown"


def write_dlc_meta(data: dict[str, Any], path: str | Path) -> Path:
    """Write a ``_meta.pickle`` in DeepLabCut's layout (``{"data": data}``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"data": data}, f)
    return path


# ------------------------------------------------------------ finding outputs
#: What :func:`find_outputs` accepts, for error messages.
ACCEPTED_OUTPUTS = "<video stem>DLC_<scorer>.h5 or .csv (raw outputs; _filtered files are not read)"
_HEADER_LEVELS = ("scorer", "individuals", "bodyparts", "coords")


def output_snapshot(scorer: str) -> str | None:
    """The snapshot uid in a DeepLabCut 3 scorer (``..._snapshot_best-10`` -> ``best-10``)."""
    import re

    match = re.search(r"_snapshot_((?:best-)?\d+)", scorer)
    return match.group(1) if match else None


def find_outputs(
    video_path: str | Path,
    output_dir: str | Path,
    scorer: str | None = None,
    snapshot: str | None = None,
) -> tuple[Path, Path | None]:
    """Locate the raw ``.h5`` or ``.csv`` (and ``_meta.pickle``) of one video in a folder.

    ``_filtered`` files are ignored; of an ``.h5`` and a ``.csv`` of the same scorer the
    ``.h5`` is read.  When outputs of several scorers are present, ``scorer`` (or a
    prefix of it) or ``snapshot`` (a scorer uid such as ``"3"`` or ``"best-3"``) must
    choose one.

    Returns:
        ``(output_path, meta_path_or_None)``.

    Raises:
        DLCFormatError: no output, or several candidates and no way to choose; the
            message lists the files found and their snapshots.
    """
    video_path, output_dir = Path(video_path), Path(output_dir)
    stem = video_path.stem
    found = []
    if output_dir.is_dir():
        found = sorted(p for p in output_dir.iterdir()
                       if p.is_file() and p.name.startswith(stem + "DLC"))
    by_scorer = _raw_outputs(found, stem)
    candidates = _choose_scorer(sorted(by_scorer), scorer, snapshot)
    if not candidates:
        wanted = " ".join(filter(None, [f"from scorer {scorer}" if scorer else "",
                                        f"of snapshot {snapshot}" if snapshot is not None else ""]))
        raise DLCFormatError(
            f"no DeepLabCut output for video {video_path.name} in {output_dir}"
            + (f" {wanted}" if wanted else "")
            + f": {_listing(found, by_scorer, stem)}; accepted: {ACCEPTED_OUTPUTS}"
        )
    if len(candidates) > 1:
        raise DLCFormatError(
            f"several DeepLabCut outputs for {video_path.name} in {output_dir}: "
            f"{[by_scorer[c].name for c in candidates]}; register the model's snapshot "
            "(or scorer) to choose"
        )
    path = by_scorer[candidates[0]]
    meta = path.with_name(path.stem + "_meta.pickle")
    return path, (meta if meta.is_file() else None)


def _raw_outputs(found: list[Path], stem: str) -> dict[str, Path]:
    """Scorer -> its raw (not ``_filtered``) output; the ``.h5`` over the ``.csv``."""
    by_scorer: dict[str, Path] = {}
    for p in found:
        if p.suffix in (".h5", ".csv") and not p.stem.endswith(FILTERED_SUFFIX):
            name = p.stem[len(stem):]
            if name not in by_scorer or p.suffix == ".h5":
                by_scorer[name] = p
    return by_scorer


def _choose_scorer(candidates: list[str], scorer: str | None,
                   snapshot: str | None) -> list[str]:
    """The scorers left after choosing by ``scorer`` (exact, else prefix) and snapshot."""
    if scorer:  # the exact scorer first: "..._snapshot_10" is a prefix of "..._snapshot_100"
        candidates = ([c for c in candidates if c == scorer]
                      or [c for c in candidates if c.startswith(scorer)])
    if snapshot is not None:
        candidates = [c for c in candidates if output_snapshot(c) == str(snapshot)]
    return candidates


def _listing(found: list[Path], by_scorer: dict[str, Path], stem: str) -> str:
    """What the folder holds for the video, for the message when nothing matches."""
    if not found:
        return f"no file starting with {stem}DLC"
    raw = ", ".join(f"{p.name} (snapshot {output_snapshot(n) or '?'})"
                    for n, p in sorted(by_scorer.items()))
    other = [p.name for p in found if p not in by_scorer.values()]
    return f"found {raw or 'no raw output'}; other files {other}"


def read_dlc_output(path: str | Path, *, fps: float | None = None,
                    frame_size: tuple[int, int] | None = None) -> PoseData:
    """Read a DeepLabCut pose output, ``.h5`` or ``.csv``, into :class:`PoseData`.

    Values are checked (:func:`check_dlc_values`; ``frame_size`` is the video's
    ``(width, height)`` when known).

    Raises:
        DLCFormatError: if the file is missing, unreadable or not a pose table.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_dlc_csv(path, fps=fps, frame_size=frame_size)
    return read_dlc_h5(path, fps=fps, frame_size=frame_size)


def read_dlc_csv(path: str | Path, *, fps: float | None = None,
                 frame_size: tuple[int, int] | None = None) -> PoseData:
    """Read a DeepLabCut ``.csv`` output (``save_as_csv=True``) into :class:`PoseData`.

    The header rows are ``scorer``, (``individuals``,) ``bodyparts``, ``coords``.

    Raises:
        DLCFormatError: if the file is missing, unreadable or not a pose table.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DLCFormatError(f"DeepLabCut output not found: {path}")
    try:
        with open(path) as f:
            first = [f.readline().split(",", 1)[0].strip() for _ in range(4)]
        n_levels = 0
        while n_levels < 4 and first[n_levels] in _HEADER_LEVELS:
            n_levels += 1
        if n_levels not in (3, 4):
            raise DLCFormatError(
                f"{path} is not a DeepLabCut pose table: header rows {first[:n_levels + 1]}; "
                f"expected {list(_HEADER_LEVELS)} (individuals only for multi-animal)"
            )
        df = pd.read_csv(path, header=list(range(n_levels)), index_col=0)
    except DLCFormatError:
        raise
    except Exception as exc:
        raise DLCFormatError(
            f"cannot read DeepLabCut output {path}: {reason(exc)}"
        ) from exc
    return check_dlc_values(pose_from_dataframe(df, source=str(path), fps=fps), str(path),
                            frame_size=frame_size)
