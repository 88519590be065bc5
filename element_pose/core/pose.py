"""The in-memory pose model shared by every part of element-pose.

One canonical container, :class:`PoseData`, carries keypoint positions and their
confidence for every frame, individual and keypoint, together with the time base
and skeleton.  Readers (``element_pose.io``) produce it, the DataJoint tables
store and fetch it, and the processing and export modules consume it.  It holds
no database handle and imports nothing heavy.

Layout (the same order as DeepLabCut's columns, frames first)::

    position    float32 (n_frames, n_individuals, n_keypoints, n_space)
    confidence  float32 (n_frames, n_individuals, n_keypoints)

Missing points are ``NaN`` in ``position``; their confidence is ``NaN`` or the
value the estimator reported.  Coordinates are pixels with (0, 0) at the centre
of the top-left pixel, as DeepLabCut writes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SINGLE_INDIVIDUAL",
    "SPACE_2D",
    "SPACE_3D",
    "PoseData",
    "PoseDataError",
    "all_missing",
    "check_keypoints",
    "concatenate",
]

SPACE_2D = ("x", "y")
SPACE_3D = ("x", "y", "z")
SINGLE_INDIVIDUAL = "individual_0"


class PoseDataError(ValueError):
    """Raised when pose data are inconsistent (shapes, names, time base)."""


@dataclasses.dataclass
class PoseData:
    """Keypoint positions and confidence over time.

    Attributes:
        position: ``(n_frames, n_individuals, n_keypoints, n_space)`` float32.
        confidence: ``(n_frames, n_individuals, n_keypoints)`` float32.
        keypoints: Keypoint (body part) names, in array order.
        individuals: Individual names, in array order.
        fps: Frame rate in frames per second, or ``None`` when unknown.
        timestamps: Per-frame times in seconds (float64), or ``None`` to derive
            them from ``fps`` and ``start_time``.
        start_time: Time of frame 0 in seconds when ``timestamps`` is ``None``.
        skeleton: Edges as pairs of keypoint names.
        scorer: Name of the model that produced the data (the name its outputs
            carry), or ``""``.
        source_software: Software that produced the data; ``None`` when unknown
            (every reader sets it).
        source_software_version: Its version, when known.
        provenance: Processing steps applied so far, oldest first; each a dict
            with at least ``{"step": name}`` and the step's parameters.
    """

    position: np.ndarray
    confidence: np.ndarray
    keypoints: list[str]
    individuals: list[str]
    fps: float | None = None
    timestamps: np.ndarray | None = None
    start_time: float = 0.0
    skeleton: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    scorer: str = ""
    source_software: str | None = None
    source_software_version: str | None = None
    provenance: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.position = np.asarray(self.position, dtype=np.float32)
        self.confidence = np.asarray(self.confidence, dtype=np.float32)
        self.keypoints = [str(k) for k in self.keypoints]
        self.individuals = [str(i) for i in self.individuals]
        self.skeleton = [(str(a), str(b)) for a, b in self.skeleton]
        self._check_arrays()
        self._check_names()
        self._check_time_base()

    def _check_arrays(self) -> None:
        """Position is (frame, individual, keypoint, 2 or 3); confidence matches it."""
        if self.position.ndim != 4:
            raise PoseDataError(
                f"position must have 4 dimensions (frame, individual, keypoint, space), "
                f"got shape {self.position.shape}"
            )
        n_space = self.position.shape[3]
        if n_space not in (2, 3):
            raise PoseDataError(f"position must have 2 or 3 spatial coordinates, got {n_space}")
        if self.confidence.shape != self.position.shape[:3]:
            raise PoseDataError(
                f"confidence shape {self.confidence.shape} does not match position "
                f"shape {self.position.shape[:3]}"
            )

    def _check_names(self) -> None:
        """Distinct keypoint and individual names, one per array entry; a known skeleton."""
        _, n_individuals, n_keypoints, _ = self.position.shape
        if len(self.keypoints) != n_keypoints or len(set(self.keypoints)) != n_keypoints:
            raise PoseDataError(
                f"expected {n_keypoints} distinct keypoint names, got {self.keypoints}"
            )
        if len(self.individuals) != n_individuals or len(set(self.individuals)) != n_individuals:
            raise PoseDataError(
                f"expected {n_individuals} distinct individual names, got {self.individuals}"
            )
        unknown = {name for edge in self.skeleton for name in edge} - set(self.keypoints)
        if unknown:
            raise PoseDataError(f"skeleton names unknown keypoints: {sorted(unknown)}")

    def _check_time_base(self) -> None:
        """One float64 timestamp per frame, when given; a positive finite fps."""
        n_frames = self.position.shape[0]
        if self.timestamps is not None:
            self.timestamps = np.asarray(self.timestamps, dtype=np.float64)
            if self.timestamps.shape != (n_frames,):
                raise PoseDataError(
                    f"{self.timestamps.shape[0] if self.timestamps.ndim else 0} timestamps "
                    f"for {n_frames} frames"
                )
        if self.fps is not None:
            self.fps = float(self.fps)
            if not np.isfinite(self.fps) or self.fps <= 0:
                raise PoseDataError(f"fps must be a positive number, got {self.fps}")

    # ------------------------------------------------------------------ shape
    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return self.position.shape[0]

    @property
    def n_space(self) -> int:
        """2 for image coordinates, 3 for triangulated poses."""
        return self.position.shape[3]

    @property
    def space(self) -> tuple[str, ...]:
        """Names of the spatial coordinates."""
        return SPACE_2D if self.n_space == 2 else SPACE_3D

    @property
    def is_multi_animal(self) -> bool:
        """Whether more than one individual is present."""
        return len(self.individuals) > 1

    def time(self) -> np.ndarray:
        """Seconds for every frame: the timestamps, or ``start_time + frame / fps``.

        Raises:
            PoseDataError: when neither timestamps nor a frame rate is known.
        """
        if self.timestamps is not None:
            return self.timestamps
        if self.fps is None:
            raise PoseDataError("neither timestamps nor fps are known: cannot derive time")
        return self.start_time + np.arange(self.n_frames, dtype=np.float64) / self.fps

    # -------------------------------------------------------------- selection
    def keypoint_index(self, names: Sequence[str]) -> list[int]:
        """Array indices of keypoints by name, with a clear error for unknown names."""
        unknown = [n for n in names if n not in self.keypoints]
        if unknown:
            raise PoseDataError(f"unknown body parts {unknown}; known: {self.keypoints}")
        return [self.keypoints.index(n) for n in names]

    def individual_index(self, names: Sequence[str]) -> list[int]:
        """Array indices of individuals by name, with a clear error for unknown names."""
        unknown = [n for n in names if n not in self.individuals]
        if unknown:
            raise PoseDataError(f"unknown individuals {unknown}; known: {self.individuals}")
        return [self.individuals.index(n) for n in names]

    def select(
        self,
        keypoints: Sequence[str] | None = None,
        individuals: Sequence[str] | None = None,
    ) -> PoseData:
        """A copy restricted to some keypoints and/or individuals (in the given order)."""
        k_idx = self.keypoint_index(keypoints) if keypoints is not None else slice(None)
        i_idx = self.individual_index(individuals) if individuals is not None else slice(None)
        kept = set(keypoints) if keypoints is not None else set(self.keypoints)
        return self.replace(
            position=self.position[:, i_idx][:, :, k_idx],
            confidence=self.confidence[:, i_idx][:, :, k_idx],
            keypoints=list(keypoints) if keypoints is not None else list(self.keypoints),
            individuals=list(individuals) if individuals is not None else list(self.individuals),
            skeleton=[e for e in self.skeleton if e[0] in kept and e[1] in kept],
        )

    def replace(self, **changes: Any) -> PoseData:
        """A copy with some fields changed (arrays are shared unless replaced)."""
        changes.setdefault("provenance", [dict(s) for s in self.provenance])
        return dataclasses.replace(self, **changes)

    def with_step(self, position: np.ndarray, confidence: np.ndarray, step: dict) -> PoseData:
        """A copy with new arrays and one more provenance entry describing the step."""
        return self.replace(
            position=position,
            confidence=confidence,
            provenance=[*[dict(s) for s in self.provenance], dict(step)],
        )

    # ----------------------------------------------------------- conversions
    def to_dlc_dataframe(self, scorer: str | None = None, multi_animal: bool | None = None):
        """A DataFrame with DeepLabCut's column layout.

        Args:
            scorer: Top column level; defaults to :attr:`scorer`.
            multi_animal: Write the 4-level ``scorer/individuals/bodyparts/coords``
                layout. Defaults to ``True`` when there is more than one individual.

        Returns:
            ``pandas.DataFrame`` indexed by frame number, float32 values.  When
            :attr:`position` and :attr:`confidence` are views of one C-ordered
            ``(individual, keypoint, coordinate, frame)`` grid (as
            :meth:`element_pose.schemas.model.PoseEstimation.fetch_pose` decodes them), that
            memory, read column-major, is the table: the frame is built on it without a
            copy and shares it with this object.
        """
        import pandas as pd

        scorer = scorer if scorer is not None else (self.scorer or "scorer")
        multi_animal = self.is_multi_animal if multi_animal is None else multi_animal
        coords = [*self.space, "likelihood"]
        grid = self._part_grid()
        if grid is not None and (multi_animal or len(self.individuals) == 1):
            levels = [[scorer], *([self.individuals] if multi_animal else []),
                      self.keypoints, coords]
            names = ["scorer", *(["individuals"] if multi_animal else []), "bodyparts", "coords"]
            flat = grid.reshape(-1, self.n_frames).T  # (frame, column), column-major: no copy
            return pd.DataFrame(flat, columns=pd.MultiIndex.from_product(levels, names=names),
                                index=pd.RangeIndex(self.n_frames), copy=False)
        values = np.concatenate([self.position, self.confidence[..., None]], axis=3)
        if multi_animal:
            columns = pd.MultiIndex.from_product(
                [[scorer], self.individuals, self.keypoints, coords],
                names=["scorer", "individuals", "bodyparts", "coords"],
            )
            flat = values.reshape(self.n_frames, -1)
        else:
            if len(self.individuals) != 1:
                raise PoseDataError("single-animal layout needs exactly one individual")
            columns = pd.MultiIndex.from_product(
                [[scorer], self.keypoints, coords], names=["scorer", "bodyparts", "coords"]
            )
            flat = values[:, 0].reshape(self.n_frames, -1)
        return pd.DataFrame(flat, columns=columns, index=pd.RangeIndex(self.n_frames))

    def _part_grid(self) -> np.ndarray | None:
        """The ``(individual, keypoint, coordinate, frame)`` grid both arrays view, if any.

        ``None`` unless :attr:`position` is exactly ``grid[:, :, :n_space]`` and
        :attr:`confidence` exactly ``grid[:, :, n_space]`` (frames last), of one
        C-contiguous grid: same memory, offsets and strides, not merely the same base.
        """
        grid = self.confidence.base
        if (grid is None or self.position.base is not grid or not grid.flags.c_contiguous
                or grid.size == 0):
            return None
        n_space = self.n_space
        if grid.shape != (len(self.individuals), len(self.keypoints), n_space + 1,
                          self.n_frames) or grid.dtype != np.float32:
            return None
        views = ((self.position, grid[:, :, :n_space].transpose(3, 0, 1, 2)),
                 (self.confidence, grid[:, :, n_space].transpose(2, 0, 1)))
        for array, view in views:
            if (array.__array_interface__["data"][0] != view.__array_interface__["data"][0]
                    or array.strides != view.strides):
                return None
        return grid

    def to_xarray(self, source_file: str | None = None):
        """An ``xarray.Dataset`` in movement's poses layout.

        Variables ``position`` (time, space, keypoints, individuals) and
        ``confidence`` (time, keypoints, individuals); ``time`` in seconds when the
        time base is known, frame numbers otherwise (``time_unit`` says which).
        """
        import xarray as xr

        try:
            time, time_unit = self.time(), "seconds"
        except PoseDataError:
            time, time_unit = np.arange(self.n_frames), "frames"
        position = np.transpose(self.position, (0, 3, 2, 1))
        confidence = np.transpose(self.confidence, (0, 2, 1))
        attrs = {
            "ds_type": "poses",
            "source_software": self.source_software,
            "fps": self.fps,
            "time_unit": time_unit,
            "source_file": source_file,
            "scorer": self.scorer,
        }
        return xr.Dataset(
            data_vars={
                "position": (("time", "space", "keypoints", "individuals"), position),
                "confidence": (("time", "keypoints", "individuals"), confidence),
            },
            coords={
                "time": time,
                "space": list(self.space),
                "keypoints": self.keypoints,
                "individuals": self.individuals,
            },
            attrs=attrs,
        )

    @classmethod
    def from_xarray(cls, ds, **fields: Any) -> PoseData:
        """Build from a movement-style poses ``xarray.Dataset``."""
        position = ds["position"].transpose("time", "individuals", "keypoints", "space").values
        confidence = ds["confidence"].transpose("time", "individuals", "keypoints").values
        fps = ds.attrs.get("fps")
        timestamps = None
        if ds.attrs.get("time_unit") == "seconds":
            timestamps = np.asarray(ds["time"].values, dtype=np.float64)
        fields.setdefault("source_software", ds.attrs.get("source_software") or "unknown")
        return cls(
            position=position,
            confidence=confidence,
            keypoints=[str(k) for k in ds["keypoints"].values],
            individuals=[str(i) for i in ds["individuals"].values],
            fps=fps,
            timestamps=timestamps,
            **fields,
        )

    @classmethod
    def empty_like(cls, n_frames: int, keypoints: Sequence[str], individuals: Sequence[str],
                   n_space: int = 2, **fields: Any) -> PoseData:
        """All-missing data of a given size (useful for assembling by parts)."""
        shape = (n_frames, len(individuals), len(keypoints))
        return cls(
            position=np.full((*shape, n_space), np.nan, dtype=np.float32),
            confidence=np.full(shape, np.nan, dtype=np.float32),
            keypoints=list(keypoints),
            individuals=list(individuals),
            **fields,
        )


def all_missing(*values: np.ndarray) -> bool:
    """Whether every value of the arrays is NaN: one ``fmax`` reduction each (NaN only
    when every value is NaN; no mask, no copy of a strided column)."""
    return all(a.size == 0 or bool(np.isnan(np.fmax.reduce(a, axis=None))) for a in values)


def concatenate(parts: Sequence[PoseData]) -> PoseData:
    """Join pose data of consecutive files of one recording along time.

    Keypoints and individuals must agree; the time base is taken from the first part
    (timestamps are joined when every part has them).
    """
    if not parts:
        raise PoseDataError("nothing to concatenate")
    first = parts[0]
    for p in parts[1:]:
        if p.keypoints != first.keypoints or p.individuals != first.individuals:
            raise PoseDataError(
                "cannot join pose data with different keypoints or individuals: "
                f"{first.keypoints}/{first.individuals} vs {p.keypoints}/{p.individuals}"
            )
    timestamps = None
    if all(p.timestamps is not None for p in parts):
        timestamps = np.concatenate([p.timestamps for p in parts])
    return first.replace(
        position=np.concatenate([p.position for p in parts]),
        confidence=np.concatenate([p.confidence for p in parts]),
        timestamps=timestamps,
    )


def check_keypoints(pose: PoseData, expected: Sequence[str], source: str | Path, *,
                    model: str | Path | None = None,
                    error: type[Exception] = PoseDataError) -> PoseData:
    """The pose with exactly a model's keypoints, in the model's order.

    The one check of an output's keypoints against its model, for every engine.

    Args:
        pose: Pose data read from ``source``.
        expected: The model's keypoints (body parts), in output order.
        source: The file the pose was read from, for the message.
        model: The model (e.g. its file), for the message.
        error: The exception class to raise (the caller's error type).

    Returns:
        ``pose`` itself when already in model order, else a reordered copy.

    Raises:
        error: naming ``source``, the model's missing and the unexpected keypoints.
    """
    expected = list(expected)
    missing = [k for k in expected if k not in pose.keypoints]
    extra = [k for k in pose.keypoints if k not in expected]
    if missing or extra:
        of_model = f"the model {model}" if model is not None else "the model"
        raise error(f"keypoints (body parts) in {source} do not match {of_model}: "
                    f"missing {missing}, unexpected {extra}")
    return pose if pose.keypoints == expected else pose.select(keypoints=expected)
