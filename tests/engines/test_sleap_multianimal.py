"""Multi-animal SLEAP training from a ``.slp``: bottom-up and top-down (CPU, tiny).

Two tracked animals on 64 x 48 frames (tests/support/sleap_models.make_labels),
labelled every other frame of a generated video; the source is the folder holding
the ``.slp`` (what ModelTraining passes for a SLEAP-labelled VideoSet).  The tracks
are the model's individuals; predictions come back per individual slot.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from support.sleap_models import make_labels

from element_pose.engines import get_engine

QUICK = {"engine": "sleap", "epochs": 6, "min_train_steps_per_epoch": 20, "filters": 16,
         "max_stride": 16, "learning_rate": 3e-3}


@pytest.fixture(scope="module")
def two_animals(tmp_path_factory) -> Path:
    """The folder of a ``.slp`` labelling two tracked animals."""
    return make_labels(tmp_path_factory.mktemp("sleap_two") / "labels", n_individuals=2,
                       n_frames=40, step=2).parent


def _check(result, evaluation, model_type: str, runs: list[str]) -> None:
    model = result.model
    assert model.multi_animal and model.individuals == ["animal0", "animal1"]
    assert model.options["model_type"] == model_type and model.options["runs"] == runs
    assert all((Path(model.source) / r / "best.ckpt").is_file() for r in runs)
    # a top-down pair is chosen only by its best checkpoints
    assert result.snapshots == (["best", "last"] if len(runs) == 1 else ["best"])
    assert evaluation.predictions.shape == (20, 2, len(model.keypoints), 3)
    assert evaluation.labels.individuals == ["animal0", "animal1"]
    assert np.isfinite(evaluation.predictions[..., :2]).any()
    scores = evaluation.predictions[..., 2]
    assert np.nanmin(scores) >= 0.2  # points under sleap-nn's peak threshold are missing


def test_bottomup_on_two_animals(two_animals, tmp_path, caplog):
    engine = get_engine("sleap")
    with caplog.at_level(logging.INFO, logger="element_pose.engines.sleap.progress"):
        result = engine.train(two_animals, tmp_path / "work",
                              {**QUICK, "model_type": "bottomup"}, device="cpu")
    epochs = [r for r in caplog.records if getattr(r, "progress", None) == "training"]
    assert [(r.network, r.epoch) for r in epochs] == [("bottomup", e) for e in range(1, 7)]
    evaluation = engine.evaluate(result.model, device="cpu")
    _check(result, evaluation, "bottomup", ["bottomup"])
    # half of the matched points within ~1 px on the frames it trained on (measured 1.2 px)
    assert evaluation.metrics["train_sleap_dist_p50"] < 4
    assert result.learning_stats["val/loss"][-1] < result.learning_stats["val/loss"][0]


@pytest.mark.slow
def test_topdown_on_two_animals_trains_both_networks(two_animals, tmp_path, caplog):
    engine = get_engine("sleap")
    with caplog.at_level(logging.INFO, logger="element_pose.engines.sleap.progress"):
        result = engine.train(two_animals, tmp_path / "work", QUICK, device="cpu")  # auto
    networks = [r.network for r in caplog.records if getattr(r, "progress", None)]
    assert networks == ["centroid"] * 6 + ["centered_instance"] * 6
    assert {"centroid.val/loss", "centered_instance.val/loss"} <= set(result.learning_stats)
    assert set(result.training_config) == {"centroid", "centered_instance"}
    evaluation = engine.evaluate(result.model, device="cpu")
    _check(result, evaluation, "topdown", ["centroid", "centered_instance"])
    assert evaluation.metrics["train_sleap_dist_p50"] < 20  # 64 x 48 frames, 6 short epochs
