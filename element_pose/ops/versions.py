"""The folder of a new version of a VideoSet (issue 29), written by
:func:`element_pose.ops.iteration.import_corrections` from merged labels.

A version of a set of DeepLabCut labelled folders is a DeepLabCut project: the
parent project's ``config.yaml``, the images and ``CollectedData``
(:func:`write_dlc_version`).  A set registered with
:meth:`~element_pose.schemas.train.VideoSet.insert_from_slp` holds a ``.slp``; its
version is one self-contained :data:`VERSION_FILE` (frames embedded), which the SLEAP
engine trains on (:func:`write_slp_version`).  Each frame keeps its id: its image is
written under its frame id before embedding, and SLEAP labels read the id back from
the image's name (:func:`element_pose.io.sleap_labels.slp_frame_id`), so the
per-frame held-out split (:func:`element_pose.core.labels.held_out`) holds out the
same frames in every iteration.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from element_pose.core.labels import LabelSet
from element_pose.schemas import model, train

__all__ = ["VERSION_FILE", "crop", "set_slp", "write_dlc_version", "write_slp_version"]

#: The labels file of a version of a SLEAP set, in the version's folder.
VERSION_FILE = "labels.pkg.slp"


def write_dlc_version(merged: LabelSet, project: Path, images: dict[str, Path],
                      folder: Path) -> None:
    """Write merged labels into ``folder`` as a DeepLabCut project: ``project``'s
    config, the images (an added frame's from ``images``, the others from
    ``project``) and ``CollectedData``."""
    from element_pose.io.dlc_labels_write import write_dlc_labels

    shutil.copy2(project / "config.yaml", folder / "config.yaml")
    for frame in merged.frames:
        target = folder / frame
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(images.get(frame, project / frame), target)
    write_dlc_labels(dataclasses.replace(merged, root=folder), folder,
                     merged.scorer or "corrected")


def crop(folder: Path) -> str:
    """A ``video_sets`` crop (``"0, width, 0, height"``) from a labelled folder's image."""
    from PIL import Image

    image = next(p for p in sorted(folder.iterdir()) if p.suffix in (".png", ".jpg"))
    with Image.open(image) as im:
        return f"0, {im.size[0]}, 0, {im.size[1]}"


def set_slp(video_set_id: int) -> Path | None:
    """The ``.slp`` of a VideoSet of SLEAP labels (absolute), or None for a set of
    DeepLabCut labelled folders."""
    files = (train.VideoSet.File & {"video_set_id": int(video_set_id)}).to_arrays("file_path")
    slp = sorted(str(f) for f in files if str(f).lower().endswith(".slp"))
    return model.roots().find(slp[0]) if slp else None


def write_slp_version(merged: LabelSet, images: dict[str, Path], folder: Path) -> Path:
    """Write merged labels into ``folder`` as :data:`VERSION_FILE` (frames embedded).

    Args:
        merged: The merged set; frames not in ``images`` are read from its root.
        images: The image file of each added frame.
        folder: The version's (temporary) folder.

    Returns:
        The written file.
    """
    from element_pose.io.sleap_labels import write_slp

    staging = folder / ".images"
    for frame in merged.frames:
        target = staging / frame
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(images.get(frame) or merged.image(frame), target)
    path = write_slp(dataclasses.replace(merged, root=staging), folder / VERSION_FILE,
                     embed=True)
    shutil.rmtree(staging, ignore_errors=True)
    return path
