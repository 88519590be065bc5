"""A :class:`~element_pose.core.labels.LabelSet` -> DeepLabCut labelled data and project.

* :func:`write_dlc_labels`: ``labeled-data/<video>/CollectedData_<scorer>.h5`` (key
  ``df_with_missing``) and ``.csv`` per image folder of the set, the images beside them
  (hard-linked where the file system allows, else copied), and, with ``machine=``
  predictions, ``machinelabels-iter<N>.h5`` (x, y, likelihood) and ``machinelabels.csv``
  as DeepLabCut's ``extract_outlier_frames`` writes them, which napari-deeplabcut shows
  as initial guesses.
* :func:`write_dlc_project`: the same plus a minimal DeepLabCut 3 ``config.yaml`` (body
  parts, individuals, skeleton, video sets), so that a SLEAP-labelled set trains
  DeepLabCut.

Image folders: a frame ``labeled-data/<video>/<image>`` keeps its folder; any other
frame ``.../<folder>/<image>`` goes to ``labeled-data/<folder>/<image>``.  One
individual gives a single-animal table (``scorer/bodyparts/coords``), several a
multi-animal one (``scorer/individuals/bodyparts/coords``), unless the project's
``config.yaml`` says otherwise (``multianimalproject``: a multi-animal project of one
animal gets the multi-animal table, its individual named as the config names it; a
single-animal project refuses several individuals); a multi-animal set's
``single`` individual labelling only the last body parts (as a DeepLabCut project with
``uniquebodyparts`` reads) writes them as unique body parts again
(:func:`unique_bodyparts`).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from element_pose.core.labels import LabelSet
from element_pose.core.util import atomic_write
from element_pose.io.dlc import UNIQUE_INDIVIDUAL, read_config, write_config
from element_pose.io.labels import LabelFormatError

log = logging.getLogger(__name__)

__all__ = [
    "dlc_frame_id",
    "unique_bodyparts",
    "write_dlc_labels",
    "write_dlc_project",
]

H5_KEY = "df_with_missing"


def dlc_frame_id(frame: str) -> str:
    """The DeepLabCut frame id of a frame: ``labeled-data/<folder>/<image>``."""
    parts = PurePosixPath(frame).parts
    if len(parts) >= 3 and parts[-3] == "labeled-data":
        return "/".join(parts[-3:])
    folder = parts[-2] if len(parts) >= 2 else "frames"
    return f"labeled-data/{folder}/{parts[-1]}"


def write_dlc_labels(labels: LabelSet, project_folder: str | Path, scorer: str, *,
                     machine: np.ndarray | None = None, machine_scorer: str = "machine",
                     iteration: int | None = None) -> LabelSet:
    """Write a labelled set as DeepLabCut labelled data under ``project_folder``.

    Args:
        labels: The set (with its root, for the images).
        project_folder: The DeepLabCut project (``labeled-data/`` is written in it).
        scorer: The labeller's name (``CollectedData_<scorer>``; the config's ``scorer``).
        machine: Predictions ``(n_frames, n_individuals, n_keypoints, 3)`` (x, y,
            likelihood; NaN where not predicted) written as ``machinelabels-iter<N>.h5``.
        machine_scorer: The scorer level of the machine labels.
        iteration: ``N`` (default: the project config's ``iteration``, else 0).

    Returns:
        The set as written: DeepLabCut frame ids (same order), root ``project_folder``.

    Raises:
        LabelFormatError: the set has no root, an image is missing, two frames map to one
            DeepLabCut image, ``machine`` does not match the set's shape, or the set has
            several individuals for a single-animal project's ``config.yaml``.
    """
    project = Path(project_folder)
    ids = [dlc_frame_id(f) for f in labels.frames]
    if len(set(ids)) != len(ids):
        raise LabelFormatError("two frames of the labelled set map to one DeepLabCut image")
    if machine is not None:
        machine = np.asarray(machine, dtype=np.float64)
        if machine.shape != (*labels.xy.shape[:3], 3):
            raise LabelFormatError(f"machine labels have shape {machine.shape}; the set "
                                   f"needs {(*labels.xy.shape[:3], 3)} (x, y, likelihood)")
        if iteration is None:
            iteration = _iteration(project)
    _copy_images(labels, ids, project)
    multi, labels = _layout(labels, project)
    unique = unique_bodyparts(labels)
    for folder, rows in _by_folder(ids).items():
        out = project / "labeled-data" / folder
        table = _table(labels.xy[rows], [ids[r] for r in rows], scorer, labels, multi,
                       unique)
        atomic_write(out / f"CollectedData_{scorer}.h5",
                     lambda tmp, t=table: t.to_hdf(tmp, key=H5_KEY, mode="w"))
        atomic_write(out / f"CollectedData_{scorer}.csv", lambda tmp, t=table: t.to_csv(tmp))
        if machine is not None:
            guess = machine[rows]
            keep = np.isfinite(guess[..., :2]).all(axis=-1).any(axis=(1, 2))
            if keep.any():
                table = _table(guess[keep], [ids[r] for r, k in zip(rows, keep, strict=True)
                                             if k], machine_scorer, labels, multi, unique)
                atomic_write(out / f"machinelabels-iter{iteration}.h5",
                             lambda tmp, t=table: t.to_hdf(tmp, key=H5_KEY, mode="w"))
                atomic_write(out / "machinelabels.csv", lambda tmp, t=table: t.to_csv(tmp))
    return LabelSet(frames=ids, keypoints=labels.keypoints, individuals=labels.individuals,
                    xy=labels.xy, skeleton=labels.skeleton, root=project, scorer=scorer)


def _layout(labels: LabelSet, project: Path) -> tuple[bool, LabelSet]:
    """Multi-animal or not, as the project's ``config.yaml`` says
    (``multianimalproject``; without a config: several individuals), and the set with
    a lone individual named as the config's lone individual (DeepLabCut's tools match
    the ``individuals`` level with the config)."""
    config = project / "config.yaml"
    cfg = read_config(config) if config.is_file() else {}
    stated = cfg.get("multianimalproject")
    if stated is None:
        return len(labels.individuals) > 1, labels
    if not stated and len(labels.individuals) > 1:
        raise LabelFormatError(f"{config} is a single-animal project; the labelled set has "
                               f"{len(labels.individuals)} individuals {labels.individuals}")
    named = list(cfg.get("individuals") or [])
    if stated and len(labels.individuals) == 1 and len(named) == 1 \
            and labels.individuals != named:
        labels = dataclasses.replace(labels, individuals=named)
    return bool(stated), labels


def write_dlc_project(labels: LabelSet, folder: str | Path, scorer: str, *,
                      task: str = "labels",
                      videos: dict[str, str | Path] | None = None) -> Path:
    """Write a DeepLabCut 3 project for a labelled set: labelled data and ``config.yaml``.

    Args:
        labels: The set.
        folder: The project folder to write.
        scorer: The labeller's name.
        task: The config's ``Task``.
        videos: Image folder name -> its video file, for the config's ``video_sets``
            (default: ``<folder>/videos/<name>.mp4``, which need not exist to train).

    Returns:
        The ``config.yaml``.

    Raises:
        LabelFormatError: as :func:`write_dlc_labels`.
    """
    folder = Path(folder)
    written = write_dlc_labels(labels, folder, scorer)
    videos = videos or {}
    video_sets = {}
    width = height = 0
    for name in _by_folder(written.frames):
        width, height = _image_size(written.image(next(
            f for f in written.frames if f.split("/")[1] == name)))
        video = Path(videos.get(name, folder / "videos" / f"{name}.mp4"))
        video_sets[str(video)] = {"crop": f"0, {width}, 0, {height}"}
    cfg = _config(labels, folder, scorer, task, video_sets)
    if video_sets:
        cfg.update(x2=width, y2=height)
    return write_config(cfg, folder / "config.yaml")


def _config(labels: LabelSet, folder: Path, scorer: str, task: str,
            video_sets: dict[str, Any]) -> dict[str, Any]:
    multi = len(labels.individuals) > 1
    cfg: dict[str, Any] = {
        "Task": task, "scorer": scorer,
        "date": datetime.date.today().strftime("%b%d"),
        "multianimalproject": multi, "identity": False if multi else None,
        "project_path": str(folder), "engine": "pytorch", "video_sets": video_sets,
        "start": 0, "stop": 1, "numframes2pick": max(labels.n_frames, 1),
        "skeleton": [list(e) for e in labels.skeleton], "skeleton_color": "black",
        "pcutoff": 0.6, "dotsize": 4, "alphavalue": 0.7, "colormap": "rainbow",
        "TrainingFraction": [0.8], "iteration": 0, "default_net_type": "resnet_50",
        "default_augmenter": "default", "snapshotindex": -1, "detector_snapshotindex": -1,
        "batch_size": 8, "cropping": False, "x1": 0, "x2": 0, "y1": 0, "y2": 0,
        "corner2move2": [50, 50], "move2corner": True,
    }
    if multi:
        unique = unique_bodyparts(labels)
        cfg.update(individuals=[i for i in labels.individuals
                                if not unique or i != UNIQUE_INDIVIDUAL],
                   uniquebodyparts=unique, bodyparts="MULTI!",
                   multianimalbodyparts=[k for k in labels.keypoints if k not in unique])
    else:
        cfg["bodyparts"] = list(labels.keypoints)
    return cfg


def _iteration(project: Path) -> int:
    config = project / "config.yaml"
    if not config.is_file():
        return 0
    return int(read_config(config).get("iteration") or 0)


def _by_folder(ids: list[str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for r, frame in enumerate(ids):
        groups.setdefault(frame.split("/")[1], []).append(r)
    return groups


def unique_bodyparts(labels: LabelSet) -> list[str]:
    """DeepLabCut's unique body parts of a multi-animal set: those of its ``single``
    individual (the last body parts, labelled for no other individual), else ``[]``
    (``single`` is then an individual like the others)."""
    if len(labels.individuals) < 2 or UNIQUE_INDIVIDUAL not in labels.individuals:
        return []
    u = labels.individuals.index(UNIQUE_INDIVIDUAL)
    seen = np.isfinite(labels.xy).all(axis=-1)
    others = np.delete(seen, u, axis=1).any(axis=(0, 1))
    unique = [k for k, mine, other in zip(labels.keypoints, seen[:, u].any(axis=0), others,
                                          strict=True) if mine and not other]
    tail = labels.keypoints[len(labels.keypoints) - len(unique):]
    return unique if unique and tail == unique and len(unique) < len(labels.keypoints) else []


def _table(values: np.ndarray, ids: list[str], scorer: str, labels: LabelSet, multi: bool,
           unique: list[str]):
    """A DeepLabCut table of ``(rows, n_ind, n_kp, 2|3)`` values (unique body parts
    only for the ``single`` individual, and only there)."""
    import pandas as pd

    coords = ["x", "y", "likelihood"][: values.shape[-1]]
    if not multi:
        columns = pd.MultiIndex.from_product(
            [[scorer], labels.keypoints, coords], names=["scorer", "bodyparts", "coords"])
        data = values[:, 0].reshape(len(ids), -1)
    else:
        pairs = [(i, k) for i, ind in enumerate(labels.individuals)
                 for k, kp in enumerate(labels.keypoints)
                 if not unique or (kp in unique) == (ind == UNIQUE_INDIVIDUAL)]
        columns = pd.MultiIndex.from_tuples(
            [(scorer, labels.individuals[i], labels.keypoints[k], c) for i, k in pairs
             for c in coords], names=["scorer", "individuals", "bodyparts", "coords"])
        data = np.stack([values[:, i, k] for i, k in pairs], axis=1).reshape(len(ids), -1)
    index = pd.MultiIndex.from_tuples([tuple(f.split("/")) for f in ids])
    return pd.DataFrame(data, index=index, columns=columns)


def _copy_images(labels: LabelSet, ids: list[str], project: Path) -> None:
    if labels.root is None:
        raise LabelFormatError("the labelled set has no root folder: its images are unknown")
    for frame, target in zip(labels.frames, ids, strict=True):
        source = labels.image(frame)
        destination = project / target
        if not source.is_file():
            raise LabelFormatError(f"image of frame {frame!r} is missing: {source}")
        if destination.exists() and os.path.samefile(source, destination):
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        tmp = destination.with_name(f".{destination.name}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copy2(source, tmp)
        os.replace(tmp, destination)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size

