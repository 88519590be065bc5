"""What SLEAP trains on: the labelled set ModelTraining gives, as a LabelSet and ``.slp``.

The source is a DeepLabCut project (``config.yaml`` or its folder, with
``labeled-data/``) or a folder holding one SLEAP ``.slp`` / ``.pkg.slp`` (a
SLEAP-labelled VideoSet's view), read by the one reader of labelled sets,
:func:`element_pose.io.labels.read_label_set`, so SLEAP holds out the same frame ids
as every engine.  Frames without a labelled point are left out; of a DeepLabCut
project, SLEAP trains on the labelled folders its ``video_sets`` name, as DeepLabCut
does (all of them when they name none).  Subsets are written
with :func:`element_pose.io.sleap_labels.write_slp` (images embedded: a trained
model set stands alone).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from element_pose.core.labels import LabelSet, LabelSetError
from element_pose.engines.base import EngineError

__all__ = ["check_video_sets", "find_labels", "read_labels", "write_frames"]

log = logging.getLogger(__name__)


def find_labels(source: str | Path) -> Path:
    """The labelled set in a training source: a DeepLabCut project or one ``.slp``.

    Raises:
        EngineError: none, or several ``.slp`` files to choose from.
    """
    path = Path(source)
    if path.is_file():
        return path
    if (path / "config.yaml").is_file() or (path / "labeled-data").is_dir():
        return path
    slps = sorted(path.rglob("*.slp")) if path.is_dir() else []
    if len(slps) == 1:
        return slps[0]
    if slps:
        raise EngineError(f"{path} holds several .slp files {[p.name for p in slps]}: "
                          "a SLEAP training source holds one")
    raise EngineError(f"no labelled frames in {source}: neither a DeepLabCut project "
                      "(config.yaml, labeled-data/) nor a SLEAP .slp labels file")


def check_video_sets(source: str | Path) -> tuple[list[str], list[str]]:
    """Labelled folders of a DeepLabCut project and the names its ``video_sets`` expect.

    What ``train.VideoSet.insert_from_project`` checks (the same answer as
    DeepLabCut's engine gives).

    Raises:
        EngineError: the project's ``config.yaml`` cannot be read.
    """
    from element_pose.io import dlc

    path = Path(source)
    config = path / "config.yaml" if path.is_dir() else path
    try:
        cfg = dlc.read_config(config)
    except dlc.DLCFormatError as exc:
        raise EngineError(str(exc)) from exc
    folder = config.parent / "labeled-data"
    found = sorted(p.name for p in folder.iterdir()
                   if p.is_dir() and any(p.glob("CollectedData_*.h5"))) if folder.is_dir() else []
    return found, [Path(str(v)).stem for v in (cfg.get("video_sets") or {})]


def _in_video_sets(labels: LabelSet, path: Path) -> list[str]:
    """The frames of the folders a DeepLabCut project's ``video_sets`` name (all when none
    is named, or the source is no project)."""
    config = path / "config.yaml" if path.is_dir() else path
    if config.name != "config.yaml" or not config.is_file():
        return labels.frames
    found, expected = check_video_sets(config)
    chosen = set(found) & set(expected)
    if not chosen:
        return labels.frames
    if set(found) - chosen:
        log.warning("labelled folders %s of %s are not in its video_sets and are not "
                    "trained on", sorted(set(found) - chosen), config)
    return [f for f in labels.frames if PurePosixPath(f).parent.name in chosen]


def read_labels(source: str | Path, *, images_to: str | Path | None = None) -> LabelSet:
    """The labelled frames of a training source (frames with a labelled point).

    Args:
        source: See :func:`find_labels`.
        images_to: Where the frames of a ``.slp`` are written as images (default:
            beside it).

    Raises:
        EngineError: no labelled frame, or labels that cannot be read (the reader's
            message, naming the file).
    """
    from element_pose.io.labels import read_label_set

    path = find_labels(source)
    try:
        labels = read_label_set(path, images_to=images_to)
    except (LabelSetError, OSError) as exc:
        raise EngineError(f"cannot train on {path}: {exc}") from exc
    keep = labels.labelled()
    if not keep.any():
        raise EngineError(f"no labelled point in {path}: nothing to train on")
    if labels.root is None:
        raise EngineError(f"the images of {path} cannot be read (a video is missing)")
    labels = labels.select([f for f, k in zip(labels.frames, keep, strict=True) if k])
    return labels.select(_in_video_sets(labels, path))


def write_frames(labels: LabelSet, frames: Sequence[str], path: Path) -> Path:
    """Write some frames of the set as a ``.slp`` with their images embedded.

    Raises:
        EngineError: an image is missing (named).
    """
    from element_pose.io.sleap_labels import write_slp

    try:
        return write_slp(labels.select(list(frames)), path, embed=True)
    except LabelSetError as exc:
        raise EngineError(f"cannot write the labelled frames to {path}: {exc}") from exc
