"""Tests of the DeepLabCut 3 engine adapter, with real DeepLabCut on CPU (offline).

The ``tiny_model`` fixture (conftest.py) trains one small model for the whole
session; tests marked ``slow`` use it.  The others check input validation and
run in seconds without importing DeepLabCut.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from element_pose.engines import deeplabcut as engine
from element_pose.engines import get_engine
from element_pose.io import dlc as dlc_io

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ registry
def test_importing_engines_imports_no_deep_learning():
    code = (
        "import sys, element_pose.engines, element_pose.engines.deeplabcut as e;"
        "assert e.ENGINE_NAME == 'deeplabcut';"
        "bad = [m for m in ('deeplabcut', 'torch') if m in sys.modules];"
        "assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)


def test_get_engine():
    adapter = get_engine()
    assert adapter.name == "deeplabcut" and adapter.software == "DeepLabCut"
    assert get_engine("DLC") is adapter
    with pytest.raises(ValueError, match="unknown pose engine"):
        get_engine("sleap-ish")


def test_training_params_reject_unknown_keys():
    with pytest.raises(engine.EngineError, match="epoch"):
        engine.training_params({"epoch": 3})
    with pytest.raises(engine.EngineError, match="weight_init"):
        engine.training_params({"weight_init": "imagenet-please"})
    p = engine.training_params({"epochs": 3, "weight_init": {"snapshot_path": "/x.pt"}})
    assert p["epochs"] == 3 and p["shuffle"] == 1


def test_snapshot_names():
    s = engine.SnapshotInfo.from_path(Path("/m/snapshot-best-010.pt"))
    assert (s.epoch, s.best, s.uid, s.name) == (10, True, "best-10", "snapshot-best-010")
    assert engine.SnapshotInfo.from_path(Path("snapshot-100.pt")).uid == "100"
    with pytest.raises(engine.EngineError, match="not a DeepLabCut snapshot"):
        engine.SnapshotInfo.from_path(Path("detector-010.pt"))


def test_the_package_exports_public_names_only():
    """Private helpers are imported from their module, never through the package."""
    private = sorted(n for n in vars(engine) if n.startswith("_") and not n.startswith("__"))
    assert not private, private
    assert all(not n.startswith("_") and hasattr(engine, n) for n in engine.__all__)


# --------------------------------------------------- config.yaml parsed once
_OPENED: list[list[str]] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _OPENED:
        _OPENED[-1].append(str(args[0]))


@contextlib.contextmanager
def _opened_files():
    """The files Python opens inside the block (its ``open`` audit events: nothing patched)."""
    if not getattr(_audit, "installed", False):
        sys.addaudithook(_audit)  # for the rest of the process; it records only in a block
        _audit.installed = True
    _OPENED.append([])
    try:
        yield _OPENED[-1]
    finally:
        _OPENED.pop()


def test_a_model_description_reads_its_config_once(sample_project):
    """Describing a trained shuffle (snapshot, scorer) parses ``config.yaml`` once."""
    folder = engine.model_folder(sample_project, shuffle=1)
    folder.mkdir(parents=True)
    (folder / "snapshot-005.pt").write_bytes(b"")  # a trained shuffle's files
    (folder / engine.PYTORCH_CONFIG).write_text("net_type: resnet_50\n")
    with _opened_files() as opened:
        model = get_engine("deeplabcut").describe_model(sample_project, shuffle=1)
    assert model.options["snapshot"] == "snapshot-005"
    assert model.scorer.startswith("DLC_Resnet50_") and model.scorer.endswith("_snapshot_5")
    assert model.keypoints == dlc_io.config_bodyparts(dlc_io.read_config(sample_project))
    configs = [p for p in opened if Path(p).name == "config.yaml"]
    assert len(configs) == 1, configs
    assert engine.registered_snapshot(sample_project, 1, 0, "last") == (
        "snapshot-005", model.scorer)


# ---------------------------------------------------------------- error cases
def _rewrite_labels(config: Path, change) -> Path:
    cfg = dlc_io.read_config(config)
    h5 = next((config.parent / "labeled-data").glob(f"*/CollectedData_{cfg['scorer']}.h5"))
    df = change(pd.read_hdf(h5))
    df.to_hdf(h5, key="keypoints", mode="w")
    return h5


def test_labels_with_body_part_missing_from_config(sample_project, tmp_path):
    def add_part(df):
        scorer = df.columns.get_level_values(0)[0]
        for coord in ("x", "y"):
            df[(scorer, "tail_tip", coord)] = 1.0
        return df

    h5 = _rewrite_labels(sample_project, add_part)
    with pytest.raises(engine.EngineError) as err:
        engine.prepare_training_project(sample_project, tmp_path / "work", {})
    assert str(h5) in str(err.value) and "tail_tip" in str(err.value)
    assert not (tmp_path / "work").exists()


def test_config_body_part_not_labelled(sample_project, tmp_path):
    h5 = _rewrite_labels(sample_project, lambda df: df.drop(columns="nose", level="bodyparts"))
    with pytest.raises(engine.EngineError, match=r"\['nose'\] are not labelled") as err:
        engine.validate_labeled_data(sample_project)
    assert str(h5) in str(err.value)


def test_empty_labelled_set(sample_project, tmp_path):
    _rewrite_labels(sample_project, lambda df: df * np.nan)
    with pytest.raises(engine.EngineError, match="empty"):
        engine.prepare_training_project(sample_project, tmp_path / "work", {})
    shutil.rmtree(sample_project.parent / "labeled-data")
    with pytest.raises(engine.EngineError, match="no labelled data"):
        engine.prepare_training_project(sample_project, tmp_path / "work", {})
    assert not (tmp_path / "work").exists()


def test_training_preparation_reads_the_users_config_once(sample_project, tmp_path,
                                                         monkeypatch):
    """validate_labeled_data takes the config already read; prepare_training_project
    reads the user's config.yaml once (then DeepLabCut's own reads of the copy)."""
    from element_pose.io import dlc as dlc_io

    reads = []
    read = dlc_io.read_config

    def counting(path, *args, **kwargs):
        reads.append(Path(path).resolve())
        return read(path, *args, **kwargs)

    monkeypatch.setattr(dlc_io, "read_config", counting)
    cfg = engine.read_project_config(sample_project)
    reads.clear()
    summary = engine.validate_labeled_data(sample_project, cfg)
    assert reads == [] and summary.n_images > 0
    engine.prepare_training_project(sample_project, tmp_path / "work", {})
    assert reads.count(Path(sample_project).resolve()) == 1, reads


def test_labelled_image_missing(sample_project):
    next((sample_project.parent / "labeled-data").glob("*/img*.png")).unlink()
    with pytest.raises(engine.EngineError, match="missing image"):
        engine.validate_labeled_data(sample_project)


def test_workdir_must_be_free(sample_project, tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "someone_elses.txt").write_text("keep me")
    with pytest.raises(engine.EngineError, match="not empty"):
        engine.prepare_training_project(sample_project, tmp_path / "work", {}, overwrite=True)
    assert (tmp_path / "work" / "someone_elses.txt").is_file()


def test_corrupt_video(sample_project, tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x01 not a video at all" * 100)
    with pytest.raises(engine.EngineError, match=r"corrupt\.mp4"):
        engine.infer(sample_project, [bad], tmp_path / "out")
    with pytest.raises(engine.EngineError, match=r"missing\.mp4"):
        engine.infer(sample_project, [tmp_path / "missing.mp4"], tmp_path / "out")


def test_missing_snapshot_untrained(sample_project):
    with pytest.raises(engine.EngineError, match=r"no snapshots in .*dlc-models-pytorch"):
        engine.resolve_snapshot(sample_project, 1, 0)


# ------------------------------------------------------------ with a real model
@pytest.mark.slow
def test_training_result(tiny_model):
    tr = tiny_model.training
    epochs = tiny_model.params["epochs"]
    assert tr.snapshots, "no snapshots returned"
    assert all(s.path.is_file() for s in tr.snapshots)
    assert {s.path for s in tr.new_snapshots} == {s.path for s in tr.snapshots}
    assert tr.last_snapshot.epoch == epochs
    assert tr.best_snapshot is not None and tr.best_snapshot.best
    assert [s.epoch for s in tr.snapshots if not s.best] == sorted(
        s.epoch for s in tr.snapshots if not s.best
    )
    assert tr.snapshots == engine.snapshots(tiny_model.config, tr.shuffle, tr.trainingsetindex)
    assert tr.bodyparts == list(tiny_model.truth.keypoints)
    assert tr.net_type == "cspnext_s" and tr.device == "cpu"
    assert tr.versions["deeplabcut"].startswith("3.") and "torch" in tr.versions
    assert tr.wall_time > 0
    stats = tr.learning_stats
    assert isinstance(stats, pd.DataFrame) and len(stats) == epochs
    arrays = tr.learning_stats_arrays()
    loss = next(v for k, v in arrays.items() if "train" in k and "loss" in k)
    assert np.isfinite(loss).all() and loss[-5:].mean() < loss[:5].mean()
    # the parameters made it into the effective configuration
    pt = tr.pytorch_config
    assert pt["train_settings"]["epochs"] == epochs
    assert pt["runner"]["snapshots"]["save_epochs"] == tiny_model.params["save_epochs"]
    assert pt["data"]["train"]["crop_sampling"]["width"] == 160
    assert pt["data"]["train"]["crop_sampling"]["height"] == 128
    assert Path(pt["train_settings"]["weight_init"]["snapshot_path"]).is_file()
    # the user's project was not touched
    assert not (tiny_model.source_config.parent / "dlc-models-pytorch").exists()
    assert dlc_io.read_config(tiny_model.source_config)["project_path"] == str(
        tiny_model.source_config.parent
    )


@pytest.mark.slow
def test_resolve_snapshot(tiny_model):
    tr = tiny_model.training
    cfg = tiny_model.config
    assert engine.resolve_snapshot(cfg) == tr.best_snapshot
    assert engine.resolve_snapshot(cfg, snapshot="last").epoch == tr.last_snapshot.epoch
    assert engine.resolve_snapshot(cfg, snapshot=tr.snapshots[0].name) == tr.snapshots[0]
    assert engine.resolve_snapshot(cfg, snapshot=tr.snapshots[0].path) == tr.snapshots[0]
    with pytest.raises(engine.EngineError, match=r"no snapshot of epoch 999 in .*train"):
        engine.resolve_snapshot(cfg, snapshot=999)
    with pytest.raises(engine.EngineError, match=r"snapshot-777\.pt does not exist"):
        engine.resolve_snapshot(cfg, snapshot="snapshot-777")
    with pytest.raises(engine.EngineError, match="does not exist"):
        engine.evaluate(cfg, snapshot=tr.model_folder / "snapshot-778.pt")


@pytest.mark.slow
def test_evaluate(tiny_model):
    result = engine.evaluate(tiny_model.config, 1, 0, device="cpu")
    assert result.snapshot == tiny_model.training.best_snapshot
    assert result.results_csv.is_file() and result.snapshot.uid in result.results_csv.name
    for name in ("train_rmse", "test_rmse", "train_map", "test_map", "train_mar", "test_mar"):
        assert np.isfinite(getattr(result, name)), name
    assert 0 <= result.test_map <= 100
    assert result.pcutoff == pytest.approx(0.6)
    assert result.per_bodypart is not None
    assert list(result.per_bodypart.index) == list(tiny_model.truth.keypoints)
    assert np.isfinite(result.per_bodypart.to_numpy()).all()
    assert result.predictions_h5 is not None and result.predictions_h5.is_file()


@pytest.mark.slow
def test_infer_and_label(tiny_model, tmp_path):
    out_dir = tmp_path / "analysis"
    truth = tiny_model.truth
    best = tiny_model.training.best_snapshot
    # a stale, broken output of the same snapshot must not be reused or returned
    scorer = engine.scorer_name(tiny_model.config, 1, 0, best)
    out_dir.mkdir()
    (out_dir / f"{tiny_model.video.stem}{scorer}_full.pickle").write_bytes(b"stale")
    (out_dir / f"{tiny_model.video.stem}{scorer}.h5").write_bytes(b"stale")

    result = engine.infer(tiny_model.config, [tiny_model.video], out_dir, batch_size=8)
    assert result.scorer == scorer and result.snapshot == best
    assert result.device == "cpu" and result.batch_size == 8
    assert result.frames_per_second > 0 and result.n_frames == truth.n_frames
    out = result.outputs[0]
    assert out.h5.parent == out_dir and out.meta is not None and out.meta.is_file()
    assert not list(out_dir.glob(".infer-*")), "temporary folder left behind"
    pose = result.read_pose(0)
    assert pose.n_frames == truth.n_frames == out.n_frames
    assert pose.keypoints == tiny_model.training.bodyparts
    assert pose.scorer == scorer
    meta = dlc_io.read_dlc_meta(out.meta)
    assert meta["nframes"] == truth.n_frames

    # predictions beat a constant guess (each body part's mean position)
    pred = pose.position[:, 0]
    gt = truth.position[:, 0]
    err = np.linalg.norm(pred - gt, axis=-1)
    const = np.linalg.norm(gt - gt.mean(axis=0, keepdims=True), axis=-1)
    assert np.isfinite(err).all()
    assert np.median(err) < 0.5 * np.median(const), (np.median(err), np.median(const))

    # another snapshot into the same folder: separate files, each result its own
    other = next(s for s in tiny_model.training.snapshots if not s.best)
    result2 = engine.infer(tiny_model.config, [tiny_model.video], out_dir, snapshot=other)
    assert result2.scorer != result.scorer and other.uid in result2.scorer
    assert result2.outputs[0].h5 != out.h5 and out.h5.is_file()
    assert result2.read_pose(0).scorer == result2.scorer

    # labelled video from the first analysis, written elsewhere
    labelled = engine.label_video(
        tiny_model.config,
        tiny_model.video,
        tmp_path / "labelled",
        analysis_dir=out_dir,
        draw_skeleton=True,
        dotsize=3,
    )
    assert labelled.is_file() and labelled.stat().st_size > 1000
    assert scorer in labelled.name
    from element_pose.io.video import probe_video

    assert probe_video(labelled).n_frames == truth.n_frames
    assert not list((tmp_path / "labelled").glob(".label-*"))
    with pytest.raises(engine.EngineError, match="run infer"):
        engine.label_video(tiny_model.config, tiny_model.video, tmp_path / "nothing_here")


@pytest.mark.slow
def test_fine_tune_from_snapshot_and_failing_run(tiny_model, tmp_path):
    best = tiny_model.training.best_snapshot
    params = {
        **tiny_model.params,
        "epochs": 1,
        "save_epochs": 1,
        "weight_init": {"snapshot_path": str(best.path), "with_decoder": True},
    }
    config = engine.prepare_training_project(tiny_model.source_config, tmp_path / "ft", params)
    pt = engine.read_pytorch_config(config)
    assert pt["train_settings"]["weight_init"]["snapshot_path"] == str(best.path)
    result = engine.train(config, params, device="cpu")
    assert [s.epoch for s in result.snapshots if not s.best] == [1]
    assert result.learning_stats is not None and len(result.learning_stats) == 1

    # a training run that dies inside DeepLabCut is reported with context
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"this is not a torch file")
    params["weight_init"] = {"snapshot_path": str(broken)}
    engine.patch_pytorch_config(config, params)
    handlers = list(logging.getLogger().handlers)
    with pytest.raises(engine.EngineError, match="DeepLabCut failed training shuffle 1") as err:
        engine.train(config, params, device="cpu")
    assert err.value.__cause__ is not None
    # and the root logger is left as it was (DeepLabCut reconfigures it)
    assert logging.getLogger().handlers == handlers
