"""The SLEAP engine trains and evaluates for real with sleap-nn (tiny data, CPU, offline).

A single-instance UNet is trained once per module on a generated DeepLabCut project
(128 x 96 frames); the tests check what the engine returns (the model set, snapshots,
learning curves, per-epoch progress records), that the held-out frames are the shared
split, that evaluation predicts within a few pixels (an untrained or broken model
predicts nothing or tens of pixels off) and the clear errors for bad inputs.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio

from element_pose import sample
from element_pose.core.labels import held_out
from element_pose.core.params import ParamsError
from element_pose.engines import get_engine
from element_pose.engines.base import EngineError
from element_pose.engines.sleap.params import SleapTrainingParams

#: Quick but learning parameters (about 20-40 s on one CPU core).
QUICK = {"engine": "sleap", "epochs": 6, "min_train_steps_per_epoch": 20, "filters": 16,
         "max_stride": 16, "learning_rate": 3e-3, "batch_size": 4}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``(project config, TrainingResult, progress records)`` of one tiny training."""
    root = tmp_path_factory.mktemp("sleap_engine")
    config = sample.make_dlc_project(root / "project", n_frames=40, n_labeled=20, width=128,
                                     height=96)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    progress = logging.getLogger("element_pose.engines.sleap.progress")
    handler, level = Keep(level=logging.INFO), progress.level
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    try:
        result = get_engine("sleap").train(config, root / "work", QUICK, device="cpu")
    finally:
        progress.removeHandler(handler)
        progress.setLevel(level)
    return config, result, records


def test_training_returns_a_described_model_set(trained):
    _, result, _ = trained
    model = result.model
    folder = Path(model.source)
    assert folder.name == "model" and (folder / "single_instance" / "best.ckpt").is_file()
    assert model.engine == "sleap" and not model.multi_animal
    assert model.keypoints == list(sample.DEFAULT_BODYPARTS)
    assert ("nose", "left_ear") in model.skeleton
    assert model.options["model_type"] == "single_instance"
    # describe_model finds it again from its folder and options
    again = get_engine("sleap").describe_model(folder, **result.model_options())
    assert again.to_dict() == model.to_dict()
    assert result.snapshots == ["best", "last"]
    assert result.best_snapshot == "best" and result.last_snapshot == "last"
    assert result.snapshot_paths["best"] == folder / "single_instance" / "best.ckpt"
    assert result.snapshot_paths["last"] == folder / "single_instance" / "last.ckpt"
    assert 1 <= result.snapshot_epochs["best"] <= QUICK["epochs"]
    assert result.snapshot_epochs["last"] == QUICK["epochs"]
    assert get_engine("sleap").snapshots(model) == ["best", "last"]
    assert get_engine("sleap").snapshot_file(model) == result.snapshot_paths["best"]
    stats = result.learning_stats
    assert list(stats["epoch"]) == list(range(1, QUICK["epochs"] + 1))
    assert "val/loss" in stats and "learning_rate" in stats  # sleap-nn's own columns too
    assert np.isfinite(stats["train_loss"]).all()
    assert stats["train_loss"][-1] < stats["train_loss"][0]  # it learned
    np.testing.assert_allclose(stats["valid_loss"], stats["val/loss"], rtol=1e-5)
    unet = result.training_config["single_instance"]["model_config"]["backbone_config"]
    assert unet["unet"]["filters"] == QUICK["filters"]
    json.dumps(result.training_config), json.dumps(result.details)  # JSON-able
    assert result.device == "cpu" and "sleap-nn" in result.software


def test_the_held_out_frames_are_the_shared_split(trained):
    _, result, _ = trained
    labels = json.loads((Path(result.model.source) / "labels.json").read_text())
    expected = held_out(labels["frames"], SleapTrainingParams().test_fraction)
    assert labels["test"] == expected and any(expected)
    held = [f for f, t in zip(labels["frames"], expected, strict=True) if t]
    assert result.details["test_frames"] == held
    test = sio.load_slp(str(Path(result.model.source) / "test.slp"))
    assert len(test.labeled_frames) == len(held)  # embedded: the file stands alone


def test_frames_added_by_a_refinement_iteration_are_never_held_out(trained, tmp_path):
    config, result, _ = trained
    added = result.details["test_frames"][0]  # held out without train_only
    again = get_engine("sleap").train(
        config, tmp_path / "iteration", {**QUICK, "epochs": 1, "min_train_steps_per_epoch": 1},
        device="cpu", train_only=[added])
    assert again.details["test_frames"] == result.details["test_frames"][1:]
    labels = json.loads((Path(again.model.source) / "labels.json").read_text())
    assert labels["test"][labels["frames"].index(added)] is False


def test_each_epoch_is_a_progress_record(trained):
    _, _, records = trained
    epochs = [r for r in records if getattr(r, "progress", None) == "training"]
    assert [r.epoch for r in epochs] == list(range(1, QUICK["epochs"] + 1))
    assert all(r.epochs == QUICK["epochs"] and r.network == "single_instance" for r in epochs)
    assert all(np.isfinite(r.loss) and r.eta >= 0 for r in epochs)
    assert "training single_instance epoch 1/6: train loss" in epochs[0].getMessage()
    # the learning curve holds what was reported
    np.testing.assert_allclose(trained[1].learning_stats["train_loss"],
                               [r.loss for r in epochs])


def test_evaluation_predicts_the_labelled_frames_within_pixels(trained):
    _, result, _ = trained
    evaluation = get_engine("sleap").evaluate(result.model)  # no device: cpu here
    assert evaluation.device == "cpu"
    assert evaluation.snapshot == "best" and evaluation.epochs == result.snapshot_epochs["best"]
    labels, predictions, test = evaluation.labels, evaluation.predictions, evaluation.test
    assert predictions.shape == (labels.n_frames, 1, len(labels.keypoints), 3)
    assert test == json.loads((Path(result.model.source) / "labels.json").read_text())["test"]
    error = np.linalg.norm(predictions[..., :2] - labels.xy, axis=-1)
    # a trained model: every point found, within a few pixels (measured ~0.6 px)
    assert np.isfinite(error).all() and np.median(error) < 3
    m = evaluation.metrics
    assert m["test_rmse"] < 5 and m["train_rmse"] < 5 and m["pcutoff"] == 0.2
    assert m["test_sleap_pck10"] > 0.9 and 0 < m["test_sleap_oks_map"] <= 1
    assert m["test_sleap_dist_p50"] == pytest.approx(
        np.median(error[np.asarray(test)]), abs=1e-3)
    assert set(evaluation.per_keypoint) == set(labels.keypoints)
    assert all(v["test_rmse"] < 5 for v in evaluation.per_keypoint.values())
    assert evaluation.files[0].name == "scores.json" and evaluation.files[0].is_file()


def test_the_last_snapshot_is_evaluated_too(trained):
    _, result, _ = trained
    last = get_engine("sleap").describe_model(result.model.source, snapshot="last")
    assert last.options["snapshot"] == "last"
    evaluation = get_engine("sleap").evaluate(last, device="cpu")
    assert evaluation.snapshot == "last" and evaluation.epochs == QUICK["epochs"]
    assert evaluation.metrics["test_rmse"] < 5
    assert evaluation.files[0].parent.name == "last"


def test_a_missing_snapshot_is_named(trained):
    _, result, _ = trained
    with pytest.raises(EngineError, match=r"no snapshot 'epoch-3'.*found: \['best', 'last'\]"):
        get_engine("sleap").describe_model(result.model.source, snapshot="epoch-3")
    with pytest.raises(EngineError, match="no snapshot 'epoch-3'"):
        get_engine("sleap").evaluate(result.model, snapshot="epoch-3")


def test_fine_tuning_starts_from_the_trained_weights(trained, tmp_path):
    config, result, _ = trained
    snapshot = get_engine("sleap").snapshot_file(result.model)
    tuned = get_engine("sleap").train(
        config, tmp_path / "tuned",
        {**QUICK, "epochs": 1, "min_train_steps_per_epoch": 2,
         "weight_init": {"snapshot_path": str(snapshot)}}, device="cpu")
    model_config = tuned.training_config["single_instance"]["model_config"]
    assert model_config["pretrained_backbone_weights"] == str(snapshot)
    assert model_config["pretrained_head_weights"] == str(snapshot)
    # after two batches it is already better than the first epoch from scratch
    assert tuned.learning_stats["valid_loss"][0] < result.learning_stats["valid_loss"][0] / 2
    with pytest.raises(EngineError, match="weight_init snapshot not found"):
        get_engine("sleap").train(config, tmp_path / "none",
                                  {**QUICK, "weight_init": {"snapshot_path": "/no/best.ckpt"}},
                                  device="cpu")


def test_a_project_trains_on_the_folders_its_video_sets_name(tmp_path, caplog):
    from element_pose.engines.sleap.labels import read_labels
    from element_pose.io import dlc

    config = sample.make_dlc_project(tmp_path / "two", n_videos=2, n_frames=8, n_labeled=4,
                                     width=64, height=48)
    engine = get_engine("sleap")
    assert engine.check_video_sets(config) == (["demo_video0", "demo_video1"],
                                               ["demo_video0", "demo_video1"])
    assert {f.split("/")[1] for f in read_labels(config).frames} == {"demo_video0",
                                                                     "demo_video1"}
    cfg = dlc.read_config(config)
    cfg["video_sets"] = {k: v for k, v in cfg["video_sets"].items() if "video0" in k}
    dlc.write_config(cfg, config)
    assert engine.check_video_sets(config) == (["demo_video0", "demo_video1"],
                                               ["demo_video0"])
    with caplog.at_level(logging.WARNING):
        labels = read_labels(config)
    assert {f.split("/")[1] for f in labels.frames} == {"demo_video0"}  # as DeepLabCut
    assert "['demo_video1'] of" in caplog.text and "not trained on" in caplog.text


# ------------------------------------------------------------------ refusals
def test_no_labelled_frames_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError, match="no labelled frames in"):
        get_engine("sleap").train(tmp_path / "empty", tmp_path / "work", QUICK, device="cpu")
    assert not (tmp_path / "work" / "model").exists()


def test_mismatched_body_parts_are_refused(tmp_path):
    one = sample.make_dlc_project(tmp_path / "one", n_frames=8, n_labeled=4, width=64,
                                  height=48)
    other = sample.make_dlc_project(tmp_path / "other", task="other", n_frames=8, n_labeled=4,
                                    width=64, height=48, bodyparts=["head", "tail"])
    shutil.copytree(other.parent / "labeled-data" / "other_video0",
                    one.parent / "labeled-data" / "other_video0")
    with pytest.raises(EngineError, match=r"labels body parts \['head', 'tail'\]"):
        get_engine("sleap").train(one, tmp_path / "work", QUICK, device="cpu")


def test_single_instance_on_two_animals_is_refused(tmp_path):
    config = sample.make_dlc_project(tmp_path / "two", n_frames=8, n_labeled=4, width=64,
                                     height=48, n_individuals=2)
    with pytest.raises(EngineError, match="frames label up to 2 animals"):
        get_engine("sleap").train(config, tmp_path / "work",
                                  {**QUICK, "model_type": "single_instance"}, device="cpu")


def test_bad_parameters_are_refused_naming_the_key(tmp_path):
    with pytest.raises(ParamsError, match="model_type"):
        SleapTrainingParams.check({"model_type": "centroid_only"})
    with pytest.raises(ParamsError, match="epochs"):
        SleapTrainingParams.check({"epochs": 0})
    with pytest.raises(ParamsError, match="output_stride"):
        SleapTrainingParams.check({"max_stride": 4, "output_stride": 8})
    with pytest.raises(ParamsError, match="snapshot_path"):
        SleapTrainingParams.check({"weight_init": {"with_heads": False}})
    with pytest.raises(ParamsError, match="unknown_key"):
        SleapTrainingParams.check({"unknown_key": 1})
    assert get_engine("sleap").training_params is SleapTrainingParams


def test_a_file_model_has_no_snapshots_and_cannot_be_evaluated(tmp_path):
    skeleton = sio.Skeleton(["a", "b"], edges=[["a", "b"]])
    labels = sio.Labels(skeletons=[skeleton])
    sio.save_slp(labels, str(tmp_path / "labels.slp"))
    model = get_engine("sleap").describe_model(tmp_path / "labels.slp")
    assert get_engine("sleap").snapshots(model) == []
    with pytest.raises(EngineError, match="no SLEAP model folder in"):
        get_engine("sleap").evaluate(model)
