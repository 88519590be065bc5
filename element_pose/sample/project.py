"""Generated sample data: tiny, real, DeepLabCut-format projects with ground truth.

Used by the demo, the tests, the notebooks and the benchmarks.  Everything is
made from a seed, so two calls with the same arguments give the same files.

A scene is a dark arena with one coloured disc per body part moving along
smooth, known trajectories.  From it we write:

* session videos (:func:`make_video`),
* a DeepLabCut 3 project with ``config.yaml`` and labelled frames in
  ``labeled-data/<video>/`` (:func:`make_dlc_project`),
* DeepLabCut-format pose outputs as ``analyze_videos`` writes them, with noise,
  for load mode and benchmarks (:func:`make_dlc_output`).

A scene may have a *glare* region (``glare=(x0, y0, x1, y1)``, pixels): a lamp
over that part of the arena washes the floor out and the markers' colours with
it (:func:`apply_glare`).  A project whose labelled frames never show the animal
there (``glare_labels="held_out"``: only frames held out for evaluation, or
``"none"``) gives a model that fails in that region: what a refinement iteration
corrects.

:func:`accuracy` scores estimated poses against that known truth.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from element_pose.core.pose import SINGLE_INDIVIDUAL, PoseData
from element_pose.io import dlc
from element_pose.io.video import write_video

__all__ = [
    "BODY_OFFSETS",
    "DEFAULT_BODYPARTS",
    "DEFAULT_SKELETON",
    "MARKER_COLOURS",
    "accuracy",
    "apply_glare",
    "ground_truth",
    "in_region",
    "make_dlc_output",
    "make_dlc_project",
    "make_video",
    "render",
    "trajectories",
]

DEFAULT_BODYPARTS = ("nose", "left_ear", "right_ear", "tail_base")
DEFAULT_SKELETON = (("nose", "left_ear"), ("nose", "right_ear"), ("left_ear", "tail_base"),
                    ("right_ear", "tail_base"))
# Distinct, saturated colours (RGB) so a tiny network can tell the markers apart.
MARKER_COLOURS = np.array(
    [(255, 60, 60), (60, 255, 60), (80, 120, 255), (255, 230, 40), (255, 60, 255),
     (40, 255, 255), (255, 150, 40), (200, 200, 200)],
    dtype=np.uint8,
)
BODY_OFFSETS = np.array([(0.0, -14.0), (-9.0, -4.0), (9.0, -4.0), (0.0, 14.0),
                         (-6.0, 8.0), (6.0, 8.0), (0.0, 0.0), (0.0, 20.0)])
#: How a glare region washes a pixel out: ``value * GLARE[0] + GLARE[1]``.
GLARE = (0.35, 130.0)

Region = tuple[float, float, float, float]


def in_region(positions: np.ndarray, region: Region) -> np.ndarray:
    """Per frame, whether the first individual's body centre (the mean of its
    markers) lies in ``region`` ``(x0, y0, x1, y1)``; ``positions`` as
    :func:`trajectories` gives them."""
    x0, y0, x1, y1 = region
    centre = np.nanmean(positions[:, 0], axis=1)
    return ((centre[:, 0] >= x0) & (centre[:, 0] < x1)
            & (centre[:, 1] >= y0) & (centre[:, 1] < y1))


def apply_glare(frames: np.ndarray, region: Region | None) -> np.ndarray:
    """Wash out ``region`` ``(x0, y0, x1, y1)`` of every frame (in place; returned):
    the floor turns light grey and the markers pale (:data:`GLARE`)."""
    if region is None:
        return frames
    x0, y0, x1, y1 = (max(0, round(v)) for v in region)
    patch = frames[:, y0:y1, x0:x1].astype(np.float32)
    frames[:, y0:y1, x0:x1] = np.clip(patch * GLARE[0] + GLARE[1], 0, 255).astype(np.uint8)
    return frames


def trajectories(
    n_frames: int,
    n_keypoints: int = len(DEFAULT_BODYPARTS),
    n_individuals: int = 1,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
) -> np.ndarray:
    """Smooth ground-truth positions, ``(n_frames, n_individuals, n_keypoints, 2)``.

    Each individual's body centre follows a Lissajous curve inside the arena and
    its markers sit at fixed offsets rotated with the heading.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames, dtype=np.float64)
    out = np.empty((n_frames, n_individuals, n_keypoints, 2))
    margin = 26.0
    offsets = BODY_OFFSETS[np.arange(n_keypoints) % len(BODY_OFFSETS)]
    for i in range(n_individuals):
        fx, fy = rng.uniform(0.01, 0.03, size=2)
        px, py = rng.uniform(0, 2 * np.pi, size=2)
        cx = width / 2 + (width / 2 - margin) * np.sin(2 * np.pi * fx * t + px)
        cy = height / 2 + (height / 2 - margin) * np.sin(2 * np.pi * fy * t + py)
        heading = np.arctan2(np.gradient(cy), np.gradient(cx)) + np.pi / 2
        cos, sin = np.cos(heading)[:, None], np.sin(heading)[:, None]
        out[:, i, :, 0] = cx[:, None] + cos * offsets[:, 0] - sin * offsets[:, 1]
        out[:, i, :, 1] = cy[:, None] + sin * offsets[:, 0] + cos * offsets[:, 1]
    return out


def render(positions: np.ndarray, width: int = 160, height: int = 120,
           radius: float = 3.5, glare: Region | None = None) -> np.ndarray:
    """Draw one frame per row of ``positions`` (n_frames, n_individuals, n_kp, 2),
    with a ``glare`` region washed out (:func:`apply_glare`) when given.

    Returns ``uint8`` RGB frames ``(n_frames, height, width, 3)``.
    """
    n_frames, n_individuals, n_keypoints, _ = positions.shape
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.full((n_frames, height, width, 3), 24, dtype=np.uint8)
    for f in range(n_frames):
        frame = frames[f]
        for i in range(n_individuals):
            for k in range(n_keypoints):
                x, y = positions[f, i, k]
                mask = (xx - x) ** 2 + (yy - y) ** 2 <= radius**2
                colour = MARKER_COLOURS[k % len(MARKER_COLOURS)]
                frame[mask] = (colour * (1.0 - 0.25 * i)).astype(np.uint8)
    return apply_glare(frames, glare)


def ground_truth(
    n_frames: int = 60,
    fps: float = 30.0,
    width: int = 160,
    height: int = 120,
    bodyparts: Sequence[str] = DEFAULT_BODYPARTS,
    n_individuals: int = 1,
    seed: int = 0,
) -> PoseData:
    """The known poses of a synthetic scene (what :func:`make_video` draws)."""
    truth = trajectories(n_frames, len(bodyparts), n_individuals, width, height, seed)
    individuals = ([SINGLE_INDIVIDUAL] if n_individuals == 1
                   else [f"animal{i}" for i in range(n_individuals)])
    return PoseData(
        position=truth,
        confidence=np.ones(truth.shape[:3], dtype=np.float32),
        keypoints=list(bodyparts),
        individuals=individuals,
        fps=fps,
        skeleton=[e for e in DEFAULT_SKELETON if e[0] in bodyparts and e[1] in bodyparts],
        scorer="ground_truth",
        source_software="element_pose.sample",
    )


def make_video(
    path: str | Path,
    n_frames: int = 60,
    fps: float = 30.0,
    width: int = 160,
    height: int = 120,
    bodyparts: Sequence[str] = DEFAULT_BODYPARTS,
    n_individuals: int = 1,
    seed: int = 0,
    glare: Region | None = None,
) -> PoseData:
    """Write a synthetic video and return its ground truth as :class:`PoseData`
    (``glare``: a washed-out region, see :func:`apply_glare`)."""
    truth = ground_truth(n_frames, fps, width, height, bodyparts, n_individuals, seed)
    write_video(path, render(truth.position, width, height, glare=glare), fps)
    return truth


def _picked(truth: np.ndarray, n_labeled: int, video: str, glare: Region | None,
            glare_labels: str, test_fraction: float) -> np.ndarray:
    """The frames to label: ``n_labeled`` spread over the video (over the frames
    outside the glare region unless ``glare_labels == "all"``), plus, for
    ``"held_out"``, every frame in the region that the per-frame split holds out."""
    from element_pose.core.labels import held_out

    n_frames = truth.shape[0]
    if glare is None or glare_labels == "all":
        return np.linspace(0, n_frames - 1, n_labeled).astype(int)
    if glare_labels not in ("held_out", "none"):
        raise ValueError(f"glare_labels must be 'all', 'held_out' or 'none', got "
                         f"{glare_labels!r}")
    inside = in_region(truth, glare)
    outside = np.flatnonzero(~inside)
    if len(outside) < n_labeled:
        raise ValueError(f"only {len(outside)} frames show the animal outside the glare "
                         f"region {glare}: fewer than n_labeled={n_labeled}")
    picked = outside[np.linspace(0, len(outside) - 1, n_labeled).astype(int)]
    if glare_labels == "held_out":  # each frame alone: its own hash decides
        test = [f for f in np.flatnonzero(inside)
                if held_out([f"labeled-data/{video}/img{f:04d}.png"], test_fraction)[0]]
        picked = np.union1d(picked, np.asarray(test, int))
    return np.asarray(picked, int)


def make_dlc_project(
    root: str | Path,
    task: str = "demo",
    scorer: str = "sampler",
    bodyparts: Sequence[str] = DEFAULT_BODYPARTS,
    n_videos: int = 1,
    n_frames: int = 60,
    n_labeled: int = 20,
    width: int = 160,
    height: int = 120,
    n_individuals: int = 1,
    seed: int = 0,
    glare: Region | None = None,
    glare_labels: str = "all",
    test_fraction: float = 0.2,
) -> Path:
    """Create a DeepLabCut 3 project with videos and labelled frames.

    Layout: ``<root>/config.yaml``, ``videos/<name>.mp4``,
    ``labeled-data/<name>/img0000.png`` and ``CollectedData_<scorer>.h5/.csv``.

    With a ``glare`` region ``(x0, y0, x1, y1)`` the videos have it washed out
    (:func:`apply_glare`) and ``glare_labels`` says which frames showing the animal
    there are labelled: ``"all"`` (as any other), ``"none"``, or ``"held_out"``: only
    those that the per-frame split (:func:`element_pose.core.labels.held_out` at
    ``test_fraction``) holds out, so a model trained on the set never sees the
    region but its evaluation does.  ``n_labeled`` frames are then spread over the
    frames outside the region.

    Returns:
        The path of ``config.yaml``.
    """
    import pandas as pd
    from PIL import Image

    root = Path(root)
    multi = n_individuals > 1
    individuals = [f"animal{i}" for i in range(n_individuals)]
    video_sets = {}
    for v in range(n_videos):
        name = f"{task}_video{v}"
        video = root / "videos" / f"{name}.mp4"
        truth = make_video(video, n_frames, 30.0, width, height, bodyparts, n_individuals,
                           seed=seed + v, glare=glare)
        video_sets[str(video)] = {"crop": f"0, {width}, 0, {height}"}
        frames = render(truth.position, width, height, glare=glare)
        picked = _picked(truth.position, n_labeled, name, glare, glare_labels, test_fraction)
        folder = root / "labeled-data" / name
        folder.mkdir(parents=True, exist_ok=True)
        index = []
        for f in picked:
            image = f"img{f:04d}.png"
            Image.fromarray(frames[f]).save(folder / image)
            index.append(("labeled-data", name, image))
        xy = truth.position[picked]  # (n_labeled, n_individuals, n_kp, 2)
        if multi:
            columns = pd.MultiIndex.from_product(
                [[scorer], individuals, list(bodyparts), ["x", "y"]],
                names=["scorer", "individuals", "bodyparts", "coords"],
            )
        else:
            columns = pd.MultiIndex.from_product(
                [[scorer], list(bodyparts), ["x", "y"]], names=["scorer", "bodyparts", "coords"]
            )
        df = pd.DataFrame(
            xy.reshape(len(picked), -1).astype(np.float64),
            index=pd.MultiIndex.from_tuples(index),
            columns=columns,
        )
        df.to_hdf(folder / f"CollectedData_{scorer}.h5", key="keypoints", mode="w")
        df.to_csv(folder / f"CollectedData_{scorer}.csv")

    cfg = {
        "Task": task,
        "scorer": scorer,
        "date": datetime.date(2026, 1, 1).strftime("%b%d"),
        "multianimalproject": multi,
        "identity": False if multi else None,
        "project_path": str(root),
        "engine": "pytorch",
        "video_sets": video_sets,
        "start": 0,
        "stop": 1,
        "numframes2pick": n_labeled,
        "skeleton": [list(e) for e in DEFAULT_SKELETON if e[0] in bodyparts and e[1] in bodyparts],
        "skeleton_color": "black",
        "pcutoff": 0.6,
        "dotsize": 4,
        "alphavalue": 0.7,
        "colormap": "rainbow",
        "TrainingFraction": [0.8],
        "iteration": 0,
        "default_net_type": "resnet_50",
        "default_augmenter": "default",
        "snapshotindex": -1,
        "detector_snapshotindex": -1,
        "batch_size": 8,
        "cropping": False,
        "x1": 0,
        "x2": width,
        "y1": 0,
        "y2": height,
        "corner2move2": [50, 50],
        "move2corner": True,
    }
    if multi:
        cfg.update(individuals=individuals, uniquebodyparts=[],
                   multianimalbodyparts=list(bodyparts), bodyparts="MULTI!")
    else:
        cfg["bodyparts"] = list(bodyparts)
    return dlc.write_config(cfg, root / "config.yaml")


def make_dlc_output(
    truth: PoseData,
    video_path: str | Path,
    output_dir: str | Path | None = None,
    scorer: str = "DLC_Resnet50_demoJan1shuffle1_snapshot_best-10",
    noise_px: float = 1.0,
    missing_fraction: float = 0.02,
    seed: int = 0,
    write_meta: bool = True,
) -> Path:
    """Write what ``analyze_videos`` would write for a video: ``.h5`` and ``_meta.pickle``.

    Positions are the ground truth plus Gaussian noise; a fraction of points get
    a low likelihood, as a real network reports for occluded markers.

    Returns:
        The ``.h5`` path (``<video stem><scorer>.h5`` in ``output_dir``).
    """
    rng = np.random.default_rng(seed)
    video_path = Path(video_path)
    output_dir = Path(output_dir) if output_dir is not None else video_path.parent
    position = truth.position + rng.normal(0, noise_px, truth.position.shape)
    confidence = rng.uniform(0.85, 1.0, truth.confidence.shape)
    low = rng.random(truth.confidence.shape) < missing_fraction
    confidence[low] = rng.uniform(0.0, 0.3, int(low.sum()))
    pose = truth.replace(position=position.astype(np.float32),
                         confidence=confidence.astype(np.float32), scorer=scorer)
    h5 = dlc.write_dlc_h5(pose, output_dir / f"{video_path.stem}{scorer}.h5", scorer=scorer)
    if write_meta:
        individuals = pose.individuals if pose.is_multi_animal else ["single"]
        dlc.write_dlc_meta(
            {
                "start": 0.0,
                "stop": 1.0,
                "run_duration": 1.0,
                "Scorer": scorer,
                "fps": truth.fps,
                "batch_size": 8,
                "frame_dimensions": None,
                "nframes": truth.n_frames,
                "iteration (active-learning)": 0,
                "cropping": False,
                "cropping_parameters": None,
                "bodyparts": list(pose.keypoints),
                "individuals": list(individuals),
            },
            output_dir / f"{video_path.stem}{scorer}_meta.pickle",
        )
    return h5


def accuracy(
    estimate: PoseData,
    truth: PoseData,
    thresholds: Sequence[float] = (2.0, 5.0),
):
    """Score estimated poses against the known truth, per body part and overall.

    Body parts are matched by name and individuals by position (the demo's scenes
    have one); frames by index, over the frames both have.  The error of a point is
    the Euclidean distance in pixels.  A point the estimate does not have (NaN)
    counts as a miss: it is left out of the median and counts as outside every
    threshold.

    Args:
        estimate: Estimated poses, e.g. ``model.PoseEstimation.fetch_pose(key)``.
        truth: Known poses, e.g. :func:`ground_truth` with the video's arguments.
        thresholds: Distances (px) for the "within" columns.

    Returns:
        A ``pandas.DataFrame`` with one row per body part of ``truth`` found in
        ``estimate`` and a last row ``"all"``; columns ``body_part``, ``points``
        (compared), ``median_px``, ``mean_px`` and ``within_<t>px`` (percent of the
        compared points, e.g. ``within_2px``).

    Raises:
        ValueError: no body part in common, or no frame in common.
    """
    import pandas as pd

    parts = [k for k in truth.keypoints if k in estimate.keypoints]
    if not parts:
        raise ValueError(f"no body part in common: estimate has {list(estimate.keypoints)}, "
                         f"truth has {list(truth.keypoints)}")
    n_frames = min(estimate.position.shape[0], truth.position.shape[0])
    n_ind = min(estimate.position.shape[1], truth.position.shape[1])
    if n_frames == 0 or n_ind == 0:
        raise ValueError("no frame (or individual) in common")
    n_space = min(estimate.position.shape[-1], truth.position.shape[-1])
    est_kp, ref_kp = list(estimate.keypoints), list(truth.keypoints)
    est = estimate.position[:n_frames, :n_ind, [est_kp.index(k) for k in parts], :n_space]
    ref = truth.position[:n_frames, :n_ind, [ref_kp.index(k) for k in parts], :n_space]
    err = np.linalg.norm(est.astype(np.float64) - ref.astype(np.float64), axis=-1)
    err = err.transpose(2, 0, 1).reshape(len(parts), -1)  # (body part, points)

    def row(name: str, e: np.ndarray) -> dict:
        found = e[np.isfinite(e)]
        out = {"body_part": name, "points": int(e.size),
               "median_px": float(np.median(found)) if found.size else float("nan"),
               "mean_px": float(np.mean(found)) if found.size else float("nan")}
        for t in thresholds:
            out[f"within_{t:g}px"] = float(100.0 * np.count_nonzero(found <= t) / e.size)
        return out

    rows = [row(name, err[i]) for i, name in enumerate(parts)] + [row("all", err.ravel())]
    return pd.DataFrame(rows)
