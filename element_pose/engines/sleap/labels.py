"""What SLEAP trains on: the labelled set ModelTraining gives, as a LabelSet and ``.slp``.

The source is a DeepLabCut project (``config.yaml`` or its folder, with
``labeled-data/``) or a folder holding one SLEAP ``.slp`` / ``.pkg.slp`` (a
SLEAP-labelled VideoSet's view), read by the one reader of labelled sets,
:func:`element_pose.io.labels.read_label_set`, so SLEAP holds out the same frame ids
as every engine.  Frames without a labelled point are left out.  Subsets are written
with :func:`element_pose.io.sleap_labels.write_slp` (images embedded: a trained
model set stands alone).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from element_pose.core.labels import LabelSet, LabelSetError
from element_pose.engines.base import EngineError

__all__ = ["find_labels", "read_labels", "write_frames"]

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
    return labels.select([f for f, k in zip(labels.frames, keep, strict=True) if k])


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
