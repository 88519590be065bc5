"""Locomotion from pose estimates: centre of mass, speed, rest/movement states.

The "next steps" of the Inscopix bottom-view tool: average keypoints into a centre
of mass (COM), compute its instantaneous speed, and label frames as rest or
movement by a speed threshold, optionally ignoring bouts shorter than a minimum
duration.  Everything is on the recording's own time base (``PoseData.time()``),
so speed is in position units (pixels) per second even with uneven timestamps.

Velocity is ``numpy.gradient`` of position against time: second-order central
differences inside, first-order at the ends -- the same numbers as movement's
``compute_velocity``/``compute_speed`` (``xarray.DataArray.differentiate``), but
without building a dataset.  A frame next to a missing one has no speed (NaN).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from element_pose.core.pose import PoseData

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

__all__ = [
    "MOVING",
    "REST",
    "UNKNOWN",
    "Locomotion",
    "bouts",
    "centre_of_mass",
    "classify_states",
    "locomotion",
    "speed",
    "velocity",
]

REST = 0
MOVING = 1
UNKNOWN = -1
STATE_NAMES = {REST: "rest", MOVING: "moving", UNKNOWN: "unknown"}


def centre_of_mass(pose: PoseData, keypoints: Sequence[str] | None = None) -> np.ndarray:
    """Mean position of some body parts in every frame, ignoring missing ones.

    Args:
        pose: Pose data (2D or 3D).
        keypoints: Body parts to average (default: all).  Unknown names raise
            :class:`~element_pose.core.pose.PoseDataError` (a ``ValueError``).

    Returns:
        ``(n_frames, n_individuals, n_space)`` float64; NaN in frames where every
        chosen body part is missing.
    """
    idx = pose.keypoint_index(keypoints) if keypoints is not None else slice(None)
    xyz = pose.position[:, :, idx].astype(np.float64)
    present = np.isfinite(xyz).all(axis=-1, keepdims=True)
    count = present.sum(axis=2)
    total = np.where(present, xyz, 0.0).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def velocity(position: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Time derivative of positions ``(n_frames, ...)`` along the first axis.

    Args:
        position: Any array with frames first.
        time: Strictly increasing seconds, one per frame.

    Returns:
        Same shape as ``position``: units per second (NaN next to missing values).
    """
    position = np.asarray(position, dtype=np.float64)
    time = np.asarray(time, dtype=np.float64)
    if time.shape != position.shape[:1]:
        raise ValueError(f"{time.shape[0]} times for {position.shape[0]} frames")
    if len(time) < 2:
        return np.full_like(position, np.nan)
    if not np.all(np.diff(time) > 0):
        raise ValueError("time must be strictly increasing to compute a velocity")
    return np.gradient(position, time, axis=0)


def speed(position: np.ndarray, time: np.ndarray) -> np.ndarray:
    """Magnitude of :func:`velocity` over the last (space) axis of ``position``."""
    return np.linalg.norm(velocity(position, time), axis=-1)


def _runs(values: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of runs of equal values."""
    if values.size == 0:
        return []
    edges = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [values.size]])
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def _durations(time: np.ndarray, runs: list[tuple[int, int]]) -> list[float]:
    """Duration of each run: from its first frame to the first frame after it."""
    step = float(np.median(np.diff(time))) if len(time) > 1 else 0.0
    ends = np.append(time[1:], time[-1] + step)
    return [float(ends[stop - 1] - time[start]) for start, stop in runs]


def classify_states(
    speed_values: np.ndarray,
    time: np.ndarray,
    threshold: float,
    min_bout_duration: float = 0.0,
) -> np.ndarray:
    """Label frames as rest, moving or unknown by a speed threshold.

    A frame is :data:`MOVING` when its speed is above ``threshold``,
    :data:`REST` when at or below it, :data:`UNKNOWN` when the speed is NaN.  With
    ``min_bout_duration`` (seconds), a rest or moving bout shorter than that takes
    the state of the bout before it (the one after it when it starts the recording
    or follows an unknown bout), in one forward pass over the bouts of the
    unmerged labels; unknown bouts are left alone and never absorb others.

    Args:
        speed_values: ``(n_frames,)`` or ``(n_frames, n_individuals)``.
        time: Seconds per frame.
        threshold: Speed threshold, same unit as ``speed_values``.
        min_bout_duration: Shortest bout kept, in seconds (0 keeps all).

    Returns:
        int8 array shaped like ``speed_values``.
    """
    speed_values = np.asarray(speed_values, dtype=np.float64)
    time = np.asarray(time, dtype=np.float64)
    if threshold < 0 or min_bout_duration < 0:
        raise ValueError("threshold and min_bout_duration must be >= 0")
    states = np.full(speed_values.shape, UNKNOWN, dtype=np.int8)
    known = np.isfinite(speed_values)
    states[known & (speed_values > threshold)] = MOVING
    states[known & (speed_values <= threshold)] = REST
    if min_bout_duration <= 0:
        return states
    columns = states.reshape(len(states), -1)
    for j in range(columns.shape[1]):
        columns[:, j] = _merge_short_bouts(columns[:, j], time, min_bout_duration)
    return columns.reshape(states.shape)


def _merge_short_bouts(states: np.ndarray, time: np.ndarray, min_duration: float) -> np.ndarray:
    """One forward pass: each short known run takes the state the output has just before it."""
    out = states.copy()
    runs = _runs(states)
    for r, ((start, stop), duration) in enumerate(zip(runs, _durations(time, runs), strict=True)):
        if states[start] == UNKNOWN or duration >= min_duration:
            continue
        before = out[start - 1] if start > 0 else UNKNOWN
        after = states[runs[r + 1][0]] if r + 1 < len(runs) else UNKNOWN
        if before != UNKNOWN:
            out[start:stop] = before
        elif after != UNKNOWN:
            out[start:stop] = after
    return out


@dataclasses.dataclass(frozen=True)
class Locomotion:
    """Centre of mass, speed and rest/movement states of each individual.

    Attributes:
        time: ``(n_frames,)`` seconds, the recording's time base.
        centre: ``(n_frames, n_individuals, n_space)`` centre of mass (position units).
        velocity: ``(n_frames, n_individuals, n_space)`` units per second.
        speed: ``(n_frames, n_individuals)`` units per second.
        state: ``(n_frames, n_individuals)`` int8: :data:`REST`, :data:`MOVING` or
            :data:`UNKNOWN`.
        individuals: Names, in array order.
        keypoints: Body parts averaged into the centre.
        threshold: Speed threshold used for the states.
        min_bout_duration: Shortest bout kept, seconds.
    """

    time: np.ndarray
    centre: np.ndarray
    velocity: np.ndarray
    speed: np.ndarray
    state: np.ndarray
    individuals: list[str]
    keypoints: list[str]
    threshold: float
    min_bout_duration: float

    @property
    def moving(self) -> np.ndarray:
        """Boolean ``(n_frames, n_individuals)``: state is moving."""
        return self.state == MOVING

    @property
    def rest(self) -> np.ndarray:
        """Boolean ``(n_frames, n_individuals)``: state is rest."""
        return self.state == REST

    def fraction_moving(self) -> np.ndarray:
        """Per individual: moving frames over frames with a known state (NaN if none)."""
        known = (self.state != UNKNOWN).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(known > 0, self.moving.sum(axis=0) / np.maximum(known, 1), np.nan)


def locomotion(
    pose: PoseData,
    threshold: float,
    keypoints: Sequence[str] | None = None,
    min_bout_duration: float = 0.0,
) -> Locomotion:
    """Centre of mass, its speed and rest/movement states on the pose's time base.

    Args:
        pose: Pose data with timestamps or a frame rate (filter it first if noisy).
        threshold: Speed above which a frame counts as moving, position units per
            second (pixels/s for 2D).
        keypoints: Body parts averaged into the centre of mass (default: all).
        min_bout_duration: Bouts shorter than this (seconds) are merged, see
            :func:`classify_states`.

    Raises:
        PoseDataError: no time base, or unknown body parts.
    """
    time = pose.time()
    centre = centre_of_mass(pose, keypoints)
    vel = velocity(centre, time)
    spd = np.linalg.norm(vel, axis=-1)
    return Locomotion(
        time=np.asarray(time, dtype=np.float64),
        centre=centre,
        velocity=vel,
        speed=spd,
        state=classify_states(spd, time, threshold, min_bout_duration),
        individuals=list(pose.individuals),
        keypoints=list(keypoints) if keypoints is not None else list(pose.keypoints),
        threshold=float(threshold),
        min_bout_duration=float(min_bout_duration),
    )


def bouts(loco: Locomotion, individual: str | None = None) -> pd.DataFrame:
    """Bouts of constant state as a table.

    Args:
        loco: Result of :func:`locomotion`.
        individual: Which individual (default: all, with an ``individual`` column).

    Returns:
        Columns ``individual``, ``state`` (``rest``/``moving``/``unknown``),
        ``start_frame``, ``stop_frame`` (exclusive), ``start_time``, ``duration`` (s).
    """
    import pandas as pd

    names = [individual] if individual is not None else loco.individuals
    rows = []
    for name in names:
        if name not in loco.individuals:
            raise ValueError(f"unknown individual {name!r}; known: {loco.individuals}")
        states = loco.state[:, loco.individuals.index(name)]
        runs = _runs(states)
        for (start, stop), duration in zip(runs, _durations(loco.time, runs), strict=True):
            rows.append({
                "individual": name,
                "state": STATE_NAMES[int(states[start])],
                "start_frame": start,
                "stop_frame": stop,
                "start_time": float(loco.time[start]),
                "duration": duration,
            })
    columns = ["individual", "state", "start_frame", "stop_frame", "start_time", "duration"]
    return pd.DataFrame(rows, columns=columns)
