"""element-pose scores every engine's evaluation itself and ranks the models of a
labelled set (issue 28 item 3).

The fast tests use a toy engine in this module (its predictions are the labels moved
by a known offset, so every score is known); the slow ones train two real DeepLabCut
models of different quality on one VideoSet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from pydantic import Field

from element_pose import sample
from element_pose.core.labels import LabelSet, held_out
from element_pose.core.params import ParamSet
from element_pose.core.pose import SINGLE_INDIVIDUAL
from element_pose.engines import get_engine, register_engine
from element_pose.engines.base import (
    EvaluationResult,
    FileEngine,
    ModelDescription,
    SourceSoftware,
    TrainingResult,
)
from element_pose.ops.demo import QUICK_TRAINING_PARAMS
from element_pose.processing.accuracy import score_predictions

pytestmark = pytest.mark.usefixtures("pipeline")

KEYPOINTS = ["a", "b"]
FRAMES = [f"labeled-data/v/img{i:04d}.png" for i in range(20)]


def _truth() -> LabelSet:
    rng = np.random.default_rng(0)
    return LabelSet(frames=FRAMES, keypoints=KEYPOINTS, individuals=[SINGLE_INDIVIDUAL],
                    xy=rng.uniform(10, 90, size=(len(FRAMES), 1, 2, 2)))


class ToyScorerParams(ParamSet):
    """The toy engine's training parameters: how far its predictions miss."""

    engine: Literal["toyscorer"]
    offset: float | None = Field(1.0, description="pixels; null: reports no predictions")
    epochs: int = Field(1, ge=1)


class ToyScorer(FileEngine):
    """Trains in no time; predicts keypoint ``a`` ``offset`` px right of its label and
    ``b`` ``2 * offset`` px below it (``offset: null``: reports no predictions)."""

    name = "toyscorer"
    software = "ToyScorer"
    capabilities = frozenset({"describe", "find_outputs", "read_outputs", "train", "evaluate"})
    training_params = ToyScorerParams

    def describe_model(self, source, **options):
        spec = json.loads(Path(source).read_text())
        return ModelDescription(
            engine=self.name, source=Path(source), keypoints=KEYPOINTS,
            individuals=[SINGLE_INDIVIDUAL], skeleton=[], multi_animal=False,
            scorer="toy", software=SourceSoftware(self.software, "0.1"),
            options={**options, "offset": spec["offset"], "epochs": spec["epochs"]})

    def train(self, source, workdir, params, *, device=None, train_only=()):
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        spec = workdir / "toy_model.json"
        spec.write_text(json.dumps({"offset": params.get("offset", 1.0),
                                    "epochs": params.get("epochs", 1)}))
        (workdir / "step-1.ckpt").write_bytes(b"weights")
        return TrainingResult(
            model=self.describe_model(spec), snapshots=["step-1"], best_snapshot="step-1",
            last_snapshot="step-1", learning_stats={"loss": np.array([1.0])}, wall_time=0.1,
            device="cpu", software={"toyscorer": "0.1"},
            snapshot_epochs={"step-1": params.get("epochs", 1)},
            snapshot_paths={"step-1": workdir / "step-1.ckpt"}, training_config={},
            details={})

    def snapshots(self, model):
        return ["step-1"]

    def snapshot_file(self, model, snapshot=None):
        return Path(model.source).parent / "step-1.ckpt"

    def evaluate(self, model, *, snapshot=None, device=None):
        offset = model.options["offset"]
        results = Path(model.source).parent / "results.json"
        results.write_text("{}")
        out = EvaluationResult(
            snapshot="step-1", epochs=model.options["epochs"],
            metrics={"test_rmse": 99.0, "pcutoff": 0.6}, per_keypoint={}, files=[results],
            device="cpu", wall_time=0.01, software={"toyscorer": "0.1"})
        if offset is None:
            return out
        truth = _truth()
        predictions = np.concatenate([truth.xy, np.ones((*truth.xy.shape[:3], 1))], axis=-1)
        predictions[:, :, 0, 0] += offset
        predictions[:, :, 1, 1] += 2 * offset
        predictions[3, 0, 1] = np.nan  # one point not predicted
        out.labels, out.predictions, out.test = truth, predictions, held_out(FRAMES, 0.25)
        return out


register_engine(ToyScorer(), replace=True)


def _train(pipeline, raw_root, unique, offsets: dict[str, float | None]) -> int:
    """One VideoSet, one toy model trained per offset and registered under its name."""
    train = pipeline.train
    project = raw_root / f"toyscore_{unique}"
    project.mkdir(parents=True, exist_ok=True)
    (project / "frames.labels").write_text("a b")
    set_id = int(unique, 16) % 100000
    train.VideoSet.insert1({"video_set_id": set_id})
    train.VideoSet.File.insert1({"video_set_id": set_id,
                                 "file_path": f"toyscore_{unique}/frames.labels"})
    for n, (name, offset) in enumerate(offsets.items()):
        idx = train.TrainingParamSet.insert_new_params(
            f"toy score {unique} {n}", {"engine": "toyscorer", "offset": offset, "epochs": n + 1})
        task = {"video_set_id": set_id, "paramset_idx": idx, "training_id": 0}
        train.TrainingTask.insert1({**task, "project_path": f"toyscore_{unique}"})
        train.ModelTraining.populate(task)
        train.ModelTraining.register_model(task, f"{name}_{unique}")
    pipeline.model.ModelEvaluation.populate(
        [{"model_name": f"{name}_{unique}"} for name in offsets])
    return set_id


def test_reported_predictions_are_scored_per_split_and_body_part(pipeline, raw_root, unique):
    model = pipeline.model
    _train(pipeline, raw_root, unique, {"off3": 3.0})
    key = {"model_name": f"off3_{unique}"}
    overall = {r["split"]: r for r in (model.ModelEvaluation.Accuracy & key).to_dicts()}
    parts = {(r["split"], r["body_part"]): r
             for r in (model.ModelEvaluation.BodyPartAccuracy & key).to_dicts()}
    test = np.array(held_out(FRAMES, 0.25))
    assert set(overall) == {"train", "test"} and len(parts) == 4
    assert overall["test"]["n_frames"] == test.sum()
    assert overall["train"]["n_frames"] == (~test).sum()
    for split in ("train", "test"):
        a, b = parts[(split, "a")], parts[(split, "b")]
        assert a["rmse"] == pytest.approx(3.0) and b["rmse"] == pytest.approx(6.0)
        assert (a["pck_2"], a["pck_5"], a["pck_10"]) == (0.0, 1.0, 1.0)
        assert b["pck_5"] == 0.0 and b["pck_10"] == b["n_predicted"] / b["n_labelled"]
    # frame 3 lost one point of b: counted as labelled, not predicted, a PCK miss
    split3 = "test" if test[3] else "train"
    b3 = parts[(split3, "b")]
    assert b3["n_labelled"] == b3["n_predicted"] + 1
    assert b3["pck_10"] == pytest.approx(1 - 1 / b3["n_labelled"])
    # the stored rows are score_predictions' scores
    ev = pipeline.model.ModelEvaluation & key
    assert (ev.fetch1("test_rmse"), ev.fetch1("evaluated_snapshot")) == (99.0, "step-1")
    result = get_engine("toyscorer").evaluate(model.Model.description(key))
    for s in score_predictions(result.labels, result.predictions, result.test):
        row = overall[s.split] if not s.body_part else parts[(s.split, s.body_part)]
        assert row["rmse"] == pytest.approx(s.rmse) and row["n_predicted"] == s.n_predicted


def test_an_engine_without_predictions_is_evaluated_without_scores(pipeline, raw_root, unique):
    model = pipeline.model
    _train(pipeline, raw_root, unique, {"silent": None})
    key = {"model_name": f"silent_{unique}"}
    assert model.ModelEvaluation & key
    assert not model.ModelEvaluation.Accuracy & key
    assert not model.ModelEvaluation.BodyPartAccuracy & key


def test_a_reused_evaluation_copies_the_scores(pipeline, raw_root, unique):
    model = pipeline.model
    _train(pipeline, raw_root, unique, {"first": 2.0})
    first = {"model_name": f"first_{unique}"}
    second = model.Model.insert_new_model(f"again_{unique}", model.Model.source_path(first),
                                          "toyscorer")
    model.ModelEvaluation.populate(second)

    def scores(key, table):
        return sorted(({k: v for k, v in r.items() if k != "model_name"}
                       for r in (table & key).to_dicts()), key=str)

    for table in (model.ModelEvaluation.Accuracy, model.ModelEvaluation.BodyPartAccuracy):
        assert scores(second, table) == scores(first, table) != []


def test_rank_models_of_a_labelled_set(pipeline, raw_root, unique):
    from element_pose.processing.ranking import plot_model_ranking
    from element_pose.schemas.compare import body_part_scores, rank_models

    set_id = _train(pipeline, raw_root, unique,
                    {"good": 0.5, "bad": 4.0, "silent": None, "fair": 1.5})
    ranking = rank_models(set_id)
    names = [n.rsplit("_", 1)[0] for n in ranking["model_name"]]
    assert names == ["good", "fair", "bad", "silent"]
    assert list(ranking["rank"][:3]) == [1, 2, 3] and ranking["rank"].isna().iloc[3]
    assert set(ranking["engine"]) == {"toyscorer"}
    assert list(ranking["epochs"][:3]) == [1, 4, 2]
    assert (ranking["split"] == "test").all()
    assert ranking["rmse"].iloc[0] < ranking["rmse"].iloc[1] < ranking["rmse"].iloc[2]
    assert ranking["engine_test_rmse"].iloc[0] == 99.0  # the engine's own figure, beside
    # PCK: larger is better; the train split; a restriction instead of an id
    by_pck = rank_models({"video_set_id": set_id}, split="train", metric="pck_2")
    assert [n.rsplit("_", 1)[0] for n in by_pck["model_name"]][:2] == ["good", "fair"]
    assert (by_pck["split"] == "train").all()
    assert rank_models(pipeline.train.VideoSet & {"video_set_id": set_id}).equals(ranking)
    assert rank_models(-1).empty
    with pytest.raises(ValueError, match="metric"):
        rank_models(set_id, metric="map")

    parts = body_part_scores(set_id)
    assert set(parts["body_part"]) == {"a", "b"} and len(parts) == 6  # silent: none
    fig = plot_model_ranking(ranking, parts)
    assert len(fig.axes) == 3
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights[:3], ranking["rmse"].iloc[:3])
    assert heights[3] == 0  # no scores, no bar
    assert len(plot_model_ranking(ranking).axes) == 2


# --------------------------------------------------------- real DeepLabCut models
QUICK = {**QUICK_TRAINING_PARAMS, "device": "cpu"}


@pytest.mark.slow
def test_two_deeplabcut_models_ranked_and_scores_recomputed(pipeline, raw_root):
    """1 epoch against 20 on the same tiny VideoSet: the longer training ranks first,
    and each BodyPartAccuracy RMSE is recomputed from DeepLabCut's stored predictions."""
    import pandas as pd

    from element_pose.engines.deeplabcut.split import dataset_split
    from element_pose.io.labels import read_label_set
    from element_pose.schemas.compare import rank_models

    model, train = pipeline.model, pipeline.train
    project = sample.make_dlc_project(raw_root / "dlc_rank", n_frames=40, n_labeled=20)
    train.VideoSet.insert_from_project(920, project)
    names = {}
    for epochs in (1, 20):
        params = {**QUICK, "epochs": epochs, "save_epochs": epochs,
                  "eval_interval": min(5, epochs)}
        idx = train.TrainingParamSet.insert_new_params(f"rank {epochs} epochs", params)
        task = {"video_set_id": 920, "paramset_idx": idx, "training_id": 0}
        train.TrainingTask.insert1({**task, "project_path": "dlc_rank"})
        train.ModelTraining.populate(task, reserve_jobs=True, suppress_errors=True)
        assert train.ModelTraining & task, train.ModelTraining.jobs.errors.to_dicts()
        names[epochs] = train.ModelTraining.register_model(task, f"rank_e{epochs}",
                                                           snapshot="last")["model_name"]
    model.ModelEvaluation.populate([{"model_name": n} for n in names.values()],
                                   reserve_jobs=True, suppress_errors=True)
    assert not model.ModelEvaluation.jobs.errors.to_dicts()

    ranking = rank_models(920)
    assert list(ranking["model_name"]) == [names[20], names[1]], ranking
    assert list(ranking["epochs"]) == [20, 1]
    assert ranking["rmse"].iloc[0] < ranking["rmse"].iloc[1]
    assert (ranking["engine"] == "deeplabcut").all()

    # recompute one model's per-body-part RMSE from the predictions DeepLabCut stored
    key = {"model_name": names[20]}
    results = model.roots().find((model.ModelEvaluation & key).fetch1("results_file"))
    scorer = results.name.removesuffix("-results.csv")
    predicted = pd.read_hdf(results.with_name(f"{scorer}.h5"))
    config = model.Model.config_path(key)
    train_ids, test_ids = dataset_split(config)
    everything = read_label_set(config).select(sorted([*train_ids, *test_ids]))
    assert sorted(test_ids) == [f for f, t in zip(everything.frames,
                                                  held_out(everything.frames, 0.2),
                                                  strict=True) if t]
    labels = everything.select(sorted(test_ids))
    rows = {"/".join(i): r for r, i in enumerate(predicted.index)}
    stored = {r["body_part"]: r["rmse"] for r in (model.ModelEvaluation.BodyPartAccuracy
                                                  & key & {"split": "test"}).to_dicts()}
    assert set(stored) == set(labels.keypoints)
    for k, bp in enumerate(labels.keypoints):
        levels = [dict(zip(predicted.columns.names, c, strict=True))
                  for c in predicted.columns]
        columns = [next(i for i, c in enumerate(levels)
                        if c["bodyparts"] == bp and c["coords"] == xy) for xy in ("x", "y")]
        guess = predicted.to_numpy()[[rows[f] for f in labels.frames]][:, columns]
        d = np.linalg.norm(guess - labels.xy[:, 0, k], axis=-1)
        d = d[np.isfinite(d)]
        assert stored[bp] == pytest.approx(float(np.sqrt(np.mean(d ** 2))), rel=1e-9)
