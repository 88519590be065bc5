"""Labelled frames, engine-neutral: what every engine trains on and is scored against.

A :class:`LabelSet` is a set of frames with human positions for some keypoints of
some individuals, whatever tool labelled them (DeepLabCut's ``CollectedData``,
SLEAP's user instances).  Frames are named by a *frame id*, the image's path
relative to the labelled set's root with ``/`` separators (DeepLabCut's
``labeled-data/<video>/img0042.png``; a SLEAP frame ``<video stem>/img0042.png``),
which is what the held-out split is keyed on: :func:`held_out` decides a frame's
split from its id alone, so the same frame is held out for every engine trained on
the set and stays held out when frames are added (the refinement loop's fixed
test set).

Layout::

    xy   float64 (n_frames, n_individuals, n_keypoints, 2); NaN where not labelled
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np

__all__ = [
    "DEFAULT_TEST_FRACTION",
    "LabelSet",
    "LabelSetError",
    "frame_number",
    "held_out",
]

#: Fraction of labelled frames held out for evaluation when nothing else is said.
DEFAULT_TEST_FRACTION = 0.2
_SALT = "element-pose/held-out/v1"


class LabelSetError(ValueError):
    """Labelled frames are inconsistent (shapes, names, mismatched body parts)."""


@dataclasses.dataclass
class LabelSet:
    """Human-labelled frames.

    Attributes:
        frames: Frame ids (image paths relative to the set's root, ``/``-separated).
        keypoints: Keypoint names, in array order.
        individuals: Individual names, in array order.
        xy: ``(n_frames, n_individuals, n_keypoints, 2)`` float64, NaN where unlabelled.
        skeleton: Edges as pairs of keypoint names.
        root: Folder the frame ids are relative to (where the images are), if any.
        scorer: Who labelled them (DeepLabCut's scorer), or ``""``.
    """

    frames: list[str]
    keypoints: list[str]
    individuals: list[str]
    xy: np.ndarray
    skeleton: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    root: Path | None = None
    scorer: str = ""

    def __post_init__(self) -> None:
        self.frames = [PurePosixPath(str(f).replace("\\", "/")).as_posix() for f in self.frames]
        self.keypoints = [str(k) for k in self.keypoints]
        self.individuals = [str(i) for i in self.individuals]
        self.xy = np.asarray(self.xy, dtype=np.float64)
        want = (len(self.frames), len(self.individuals), len(self.keypoints), 2)
        if self.xy.shape != want:
            raise LabelSetError(f"labelled positions have shape {self.xy.shape}; the frames, "
                                f"individuals and keypoints say {want}")
        if len(set(self.frames)) != len(self.frames):
            raise LabelSetError("a frame id appears twice in the labelled set")
        if len(set(self.keypoints)) != len(self.keypoints):
            raise LabelSetError(f"duplicate keypoint names: {self.keypoints}")
        unknown = {n for e in self.skeleton for n in e} - set(self.keypoints)
        if unknown:
            raise LabelSetError(f"skeleton names keypoints not labelled: {sorted(unknown)}")

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return len(self.frames)

    def image(self, frame: str) -> Path:
        """The image file of a frame (needs :attr:`root`)."""
        if self.root is None:
            raise LabelSetError("this labelled set has no root folder: its images are unknown")
        return Path(self.root) / frame

    def labelled(self) -> np.ndarray:
        """Boolean per frame: at least one point labelled."""
        return np.isfinite(self.xy).all(axis=-1).any(axis=(1, 2))

    def select(self, frames: Iterable[str]) -> LabelSet:
        """The subset of the given frame ids, in the given order.

        Raises:
            LabelSetError: naming frame ids not in the set.
        """
        frames = list(frames)
        index = {f: i for i, f in enumerate(self.frames)}
        missing = [f for f in frames if f not in index]
        if missing:
            raise LabelSetError(f"frames not in the labelled set: {missing[:5]}")
        rows = [index[f] for f in frames]
        return dataclasses.replace(self, frames=frames, xy=self.xy[rows])

    def check_keypoints(self, keypoints: Sequence[str], *, what: str = "the model") -> None:
        """Raise unless the set labels exactly these keypoints, in this order.

        Raises:
            LabelSetError: naming the missing, extra or reordered keypoints.
        """
        keypoints = [str(k) for k in keypoints]
        if keypoints == self.keypoints:
            return
        missing = [k for k in keypoints if k not in self.keypoints]
        extra = [k for k in self.keypoints if k not in keypoints]
        detail = (f"missing {missing}, extra {extra}" if missing or extra
                  else f"order {self.keypoints} vs {keypoints}")
        raise LabelSetError(f"the labelled body parts do not match {what}: {detail}")

    def split(self, fraction: float = DEFAULT_TEST_FRACTION,
              train_only: Iterable[str] = ()) -> tuple[list[str], list[str]]:
        """``(train, test)`` frame ids by :func:`held_out`."""
        test = held_out(self.frames, fraction, train_only=train_only)
        return ([f for f, t in zip(self.frames, test, strict=True) if not t],
                [f for f, t in zip(self.frames, test, strict=True) if t])


def _unit(frame: str) -> float:
    digest = hashlib.sha1(f"{_SALT}:{frame}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def held_out(frames: Sequence[str], fraction: float = DEFAULT_TEST_FRACTION, *,
             train_only: Iterable[str] = ()) -> list[bool]:
    """Which frames are held out for evaluation (True) and which are trained on.

    A frame is held out when a hash of its id falls below ``fraction``: the decision
    depends on the frame alone, so every engine trained on a set holds out the same
    frames, and a frame keeps its split when others are added.  Frames in
    ``train_only`` (e.g. frames added by a refinement iteration) are never held out.
    With ``fraction > 0`` and at least two eligible frames, at least one frame is held
    out and at least one is trained on (the extremes of the hash).

    Raises:
        ValueError: ``fraction`` outside ``[0, 1)``.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"the held-out fraction must be in [0, 1), got {fraction}")
    forced = {PurePosixPath(str(f)).as_posix() for f in train_only}
    ids = [PurePosixPath(str(f).replace("\\", "/")).as_posix() for f in frames]
    units = [_unit(f) for f in ids]
    out = [u < fraction and f not in forced for f, u in zip(ids, units, strict=True)]
    eligible = [i for i, f in enumerate(ids) if f not in forced]
    if fraction > 0 and len(eligible) >= 2:
        if not any(out[i] for i in eligible):
            out[min(eligible, key=lambda i: units[i])] = True
        if all(out[i] for i in eligible):
            out[max(eligible, key=lambda i: units[i])] = False
    return out


def frame_number(frame: str) -> int:
    """The frame index in an image name (``img0042.png`` -> 42).

    Raises:
        LabelSetError: the name holds no number.
    """
    digits = re.findall(r"\d+", PurePosixPath(frame).stem)
    if not digits:
        raise LabelSetError(f"cannot read a frame number from image name {frame!r}")
    return int(digits[-1])
