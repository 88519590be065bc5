"""DeepLabCut files <-> :class:`~element_pose.pose.PoseData`, with no database.

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
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.pose import SINGLE_INDIVIDUAL, PoseData

log = logging.getLogger(__name__)

H5_KEY = "df_with_missing"
FILTERED_SUFFIX = "_filtered"
UNIQUE_INDIVIDUAL = "single"


class DLCFormatError(ValueError):
    """A DeepLabCut file is missing, unreadable or not in the expected layout."""


# ---------------------------------------------------------------- config.yaml
def read_config(config_path: str | Path) -> dict[str, Any]:
    """Read a DeepLabCut ``config.yaml`` and check the keys element-pose relies on.

    Raises:
        DLCFormatError: if the file is missing, is not YAML, or lacks body parts.
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
    if not isinstance(cfg, dict):
        raise DLCFormatError(f"DeepLabCut config {path} is not a mapping")
    if not config_bodyparts(cfg):
        raise DLCFormatError(
            f"DeepLabCut config {path} names no body parts "
            "(bodyparts or multianimalbodyparts/uniquebodyparts)"
        )
    for key in ("Task", "scorer"):
        if key not in cfg:
            raise DLCFormatError(f"DeepLabCut config {path} lacks the key {key!r}")
    return cfg


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
def read_dlc_h5(path: str | Path, *, fps: float | None = None) -> PoseData:
    """Read a DeepLabCut pose output (``.h5``) into :class:`PoseData`.

    Single-animal files get one individual, ``individual_0``.  Multi-animal
    files keep their individuals; unique body parts (individual ``single``) are
    placed on their own individual with the other body parts missing.

    Args:
        path: The ``.h5`` file.
        fps: Frame rate to attach, when known.

    Raises:
        DLCFormatError: if the file is missing, truncated or not a pose table.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DLCFormatError(f"DeepLabCut output not found: {path}")
    try:
        df = pd.read_hdf(path)
    except Exception as exc:  # pytables/h5py raise many different types
        raise DLCFormatError(
            f"cannot read DeepLabCut output {path}: {type(exc).__name__}: {exc}"
        ) from exc
    return _pose_from_dataframe(df, source=str(path), fps=fps)


def _pose_from_dataframe(df, *, source: str, fps: float | None) -> PoseData:
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
    by_scorer: dict[str, Path] = {}
    for p in found:
        if p.suffix in (".h5", ".csv") and not p.stem.endswith(FILTERED_SUFFIX):
            name = p.stem[len(stem):]
            if name not in by_scorer or p.suffix == ".h5":
                by_scorer[name] = p
    candidates = sorted(by_scorer)
    if scorer:  # the exact scorer first: "..._snapshot_10" is a prefix of "..._snapshot_100"
        candidates = ([c for c in candidates if c == scorer]
                      or [c for c in candidates if c.startswith(scorer)])
    if snapshot is not None:
        candidates = [c for c in candidates if output_snapshot(c) == str(snapshot)]

    def listing() -> str:
        if not found:
            return f"no file starting with {stem}DLC"
        raw = ", ".join(f"{p.name} (snapshot {output_snapshot(n) or '?'})"
                        for n, p in sorted(by_scorer.items()))
        other = [p.name for p in found if p not in by_scorer.values()]
        return f"found {raw or 'no raw output'}; other files {other}"

    if not candidates:
        wanted = " ".join(filter(None, [f"from scorer {scorer}" if scorer else "",
                                        f"of snapshot {snapshot}" if snapshot is not None else ""]))
        raise DLCFormatError(
            f"no DeepLabCut output for video {video_path.name} in {output_dir}"
            + (f" {wanted}" if wanted else "") + f": {listing()}; accepted: {ACCEPTED_OUTPUTS}"
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


def read_dlc_output(path: str | Path, *, fps: float | None = None) -> PoseData:
    """Read a DeepLabCut pose output, ``.h5`` or ``.csv``, into :class:`PoseData`.

    Raises:
        DLCFormatError: if the file is missing, unreadable or not a pose table.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_dlc_csv(path, fps=fps)
    return read_dlc_h5(path, fps=fps)


def read_dlc_csv(path: str | Path, *, fps: float | None = None) -> PoseData:
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
            f"cannot read DeepLabCut output {path}: {type(exc).__name__}: {exc}"
        ) from exc
    return _pose_from_dataframe(df, source=str(path), fps=fps)


def check_keypoints(pose: PoseData, expected: Sequence[str], source: str) -> PoseData:
    """Check that output body parts are the model's, and return them in model order.

    Raises:
        DLCFormatError: naming the missing and unexpected body parts.
    """
    missing = [k for k in expected if k not in pose.keypoints]
    extra = [k for k in pose.keypoints if k not in expected]
    if missing or extra:
        raise DLCFormatError(
            f"body parts in {source} do not match the model: "
            f"missing {missing}, unexpected {extra}"
        )
    return pose if list(expected) == pose.keypoints else pose.select(keypoints=list(expected))
