"""A tiny DeepLabCut 3 model trained for real on CPU, offline: shared test helper.

Reusable outside ``tests/engines`` (e.g. from schema tests)::

    import importlib.util, pathlib
    spec = importlib.util.spec_from_file_location(
        "tiny_model", pathlib.Path(__file__).parents[1] / "engines" / "tiny_model.py")
    tiny_model = importlib.util.module_from_spec(spec); spec.loader.exec_module(tiny_model)
    model = tiny_model.build_tiny_model(tmp_path_factory.mktemp("dlc"))

:func:`build_tiny_model` makes a synthetic labelled project
(:func:`element_pose.sample.make_dlc_project`, 160x120 frames, coloured discs),
prepares a work copy, trains ``cspnext_s`` from a random initialisation and
returns everything a test needs.  It takes roughly a minute on 2 CPU cores.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from element_pose.ops.demo import QUICK_TRAINING_PARAMS

# Hub downloads must fail at once: tests are offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BODYPARTS = ("nose", "left_ear", "right_ear", "tail_base")
N_FRAMES = 60
N_LABELED = 24
WIDTH, HEIGHT = 160, 120

#: Training parameters of the tiny model (keys of ``TRAINING_DEFAULTS``).
TINY_PARAMS: dict[str, Any] = {**QUICK_TRAINING_PARAMS, "device": "cpu"}


@dataclasses.dataclass
class TinyModel:
    """A trained tiny model and its data.

    Attributes:
        source_config: The user's (sample) project ``config.yaml``; never modified.
        config: The prepared work copy's ``config.yaml`` that was trained.
        params: Training parameters used.
        training: The :class:`~element_pose.engines.deeplabcut.ShuffleTraining`.
        video: The project's video (its frames were labelled).
        truth: Ground truth of ``video`` (:class:`~element_pose.core.pose.PoseData`).
        root: Folder holding everything.
    """

    source_config: Path
    config: Path
    params: dict[str, Any]
    training: Any
    video: Path
    truth: Any
    root: Path


def build_tiny_model(root: str | Path, params: dict[str, Any] | None = None) -> TinyModel:
    """Make a sample project under ``root`` and train the tiny model on it (CPU)."""
    from element_pose import sample
    from element_pose.engines import deeplabcut as dlc_engine

    root = Path(root)
    params = {**TINY_PARAMS, **(params or {})}
    source_config = sample.make_dlc_project(
        root / "user_project",
        bodyparts=BODYPARTS,
        n_frames=N_FRAMES,
        n_labeled=N_LABELED,
        width=WIDTH,
        height=HEIGHT,
    )
    video = root / "user_project" / "videos" / "demo_video0.mp4"
    # Same seed as the project's first video: the same trajectories.
    truth = sample.make_video(
        root / "truth" / "demo_video0.mp4",
        n_frames=N_FRAMES,
        width=WIDTH,
        height=HEIGHT,
        bodyparts=BODYPARTS,
        seed=0,
    )
    config = dlc_engine.prepare_training_project(source_config, root / "work", params)
    training = dlc_engine.train(config, params, device="cpu")
    return TinyModel(
        source_config=source_config,
        config=config,
        params=params,
        training=training,
        video=video,
        truth=truth,
        root=root,
    )
