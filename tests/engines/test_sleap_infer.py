"""SLEAP inference (element_pose.engines.sleap.infer) with a tiny sleap-nn model.

The model is trained here (sleap-nn's own training, a few seconds on the CPU); the
reference is ``sleap-nn track``, sleap-nn's own command line, run as a subprocess.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from support.sleap_models import HEIGHT, WIDTH, cli_track, slp_arrays, train_tiny_model

from element_pose import sample
from element_pose.core.pose import SINGLE_INDIVIDUAL
from element_pose.engines import get_engine
from element_pose.engines.base import EngineError, ModelDescription, SourceSoftware
from element_pose.engines.sleap import infer as sleap_infer

N_FRAMES = 30


@pytest.fixture(scope="module")
def single_model(tmp_path_factory) -> Path:
    """A tiny single-instance model folder."""
    return train_tiny_model(tmp_path_factory.mktemp("sleap_single"))


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A generated video the model was not trained on."""
    path = tmp_path_factory.mktemp("sleap_video") / "session1.mp4"
    sample.make_video(path, n_frames=N_FRAMES, width=WIDTH, height=HEIGHT, seed=3)
    return path


def describe(folder: Path, individuals=(SINGLE_INDIVIDUAL,)) -> ModelDescription:
    """The model as the tables hand it to the engine (what describe_model gives)."""
    return ModelDescription(
        engine="sleap", source=folder, keypoints=list(sample.DEFAULT_BODYPARTS),
        individuals=list(individuals), skeleton=list(sample.DEFAULT_SKELETON),
        multi_animal=len(individuals) > 1, scorer="",
        software=SourceSoftware("SLEAP", None))


def test_infer_matches_the_command_line(single_model, video, tmp_path):
    """The engine's .slp, read by the engine, equals what ``sleap-nn track`` writes
    (positions and point scores; max abs diff 0 after float32)."""
    engine = get_engine("sleap")
    assert "infer" in engine.capabilities
    model = describe(single_model)
    result = engine.infer(model, [video], tmp_path / "out", device="cpu")
    (out,) = result.outputs
    assert out.pose_files == [tmp_path / "out" / "session1.predictions.slp"]
    assert out.fmt == "sleap_slp" and out.n_frames == N_FRAMES
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["session1.predictions.slp"]
    assert result.device == "cpu" and result.batch_size == 4
    assert result.software["sleap"] == result.software["sleap-nn"] != ""
    assert result.frames_per_second > 0 and result.scorer == single_model.name

    pose = engine.read_outputs(out, model)
    assert pose.n_frames == N_FRAMES and pose.individuals == [SINGLE_INDIVIDUAL]
    assert pose.keypoints == list(sample.DEFAULT_BODYPARTS)
    assert pose.source_software == "SLEAP"
    assert not np.isnan(pose.position).all(), "the tiny model found nothing"

    cli_xy, cli_score = slp_arrays(cli_track(video, [single_model], tmp_path / "cli.slp"),
                                   N_FRAMES)
    ours = pose.position.astype(np.float32)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(cli_xy))
    assert np.nanmax(np.abs(ours - cli_xy)) == 0.0
    np.testing.assert_array_equal(pose.confidence.astype(np.float32), cli_score)


def test_padding_after_the_last_predicted_frame(single_model, video, tmp_path):
    """A .slp that ends before its video (frames without instances at the end) is read
    padded with missing frames to the video's length when the frame count is known."""
    import sleap_io as sio

    engine = get_engine("sleap")
    model = describe(single_model)
    (out,) = engine.infer(model, [video], tmp_path, device="cpu").outputs
    labels = sio.load_slp(str(out.pose_files[0]))
    labels.labeled_frames = [lf for lf in labels.labeled_frames if lf.frame_idx < 20]
    labels.save(str(out.pose_files[0]))
    pose = engine.read_outputs(out, model)
    assert pose.n_frames == N_FRAMES
    assert np.isnan(pose.position[20:]).all() and np.isnan(pose.confidence[20:]).all()
    assert not np.isnan(pose.position[:20]).all()


def test_progress_is_logged(single_model, video, tmp_path, caplog, monkeypatch):
    """Progress records come at least every LOG_INTERVAL_S seconds (here 10 ms)."""
    monkeypatch.setattr(sleap_infer, "LOG_INTERVAL_S", 0.01)
    with caplog.at_level(logging.INFO, logger=sleap_infer.__name__):
        sleap_infer.infer(describe(single_model), [video], tmp_path, device="cpu",
                          batch_size=2)
    lines = [r.getMessage() for r in caplog.records if r.name == sleap_infer.__name__]
    assert any(line.startswith("SLEAP: predicting session1.mp4 (30 frames)") for line in lines)
    assert any(f"/{N_FRAMES} frames" in line and "elapsed" in line for line in lines), lines
    assert any(line.startswith("SLEAP: predicted 30 frame(s)") for line in lines)


def _nothing_written(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


def test_missing_and_corrupt_videos(single_model, video, tmp_path):
    model = describe(single_model)
    out = tmp_path / "out"
    with pytest.raises(EngineError, match=r"video not found: .*nowhere\.mp4"):
        sleap_infer.infer(model, [video, tmp_path / "nowhere.mp4"], out)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    with pytest.raises(EngineError, match=r"cannot run SLEAP on .*broken\.mp4"):
        sleap_infer.infer(model, [video, broken], out)
    with pytest.raises(EngineError, match="no videos"):
        sleap_infer.infer(model, [], out)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(video, other / video.name)
    with pytest.raises(EngineError, match="distinct names"):
        sleap_infer.infer(model, [video, other / video.name], out)
    assert _nothing_written(out)


def test_bad_model_folders(single_model, video, tmp_path):
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EngineError, match="no trained sleap-nn model folder"):
        sleap_infer.infer(describe(empty), [video], out)
    with pytest.raises(EngineError, match="not found"):
        sleap_infer.infer(describe(tmp_path / "absent"), [video], out)
    no_weights = tmp_path / "no_weights"
    shutil.copytree(single_model, no_weights, ignore=shutil.ignore_patterns("*.ckpt"))
    with pytest.raises(EngineError, match=r"no trained weights \(best\.ckpt"):
        sleap_infer.infer(describe(no_weights), [video], out)
    broken = tmp_path / "broken_config"
    shutil.copytree(single_model, broken)
    (broken / "training_config.yaml").write_text("model_config: [unclosed")
    with pytest.raises(EngineError, match=r"cannot read .*training_config\.yaml"):
        sleap_infer.infer(describe(broken), [video], out)
    with pytest.raises(EngineError, match="snapshot 'epoch7' not found"):
        sleap_infer.infer(describe(single_model), [video], out, snapshot="epoch7")
    with pytest.raises(EngineError, match="unknown SLEAP inference options"):
        sleap_infer.infer(describe(single_model), [video], out, shuffle=1)
    with pytest.raises(EngineError, match="batch_size must be a whole number"):
        sleap_infer.infer(describe(single_model), [video], out, batch_size=0)
    assert _nothing_written(out)


def test_failure_inside_sleap_nn_leaves_nothing(single_model, video, tmp_path):
    """Corrupt weights: sleap-nn fails; the error names the video and no file is left
    in the output folder (not even the temporary folder)."""
    corrupt = tmp_path / "corrupt"
    shutil.copytree(single_model, corrupt)
    (corrupt / "best.ckpt").write_bytes(b"\0" * 256)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier")
    with pytest.raises(EngineError, match=r"sleap-nn failed on .*session1.mp4"):
        sleap_infer.infer(describe(corrupt), [video], out, device="cpu")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_described_model_runs(single_model, video, tmp_path):
    """The engine's own description of the trained folder (what Model stores) runs."""
    engine = get_engine("sleap")
    model = engine.describe_model(single_model)
    assert model.keypoints == list(sample.DEFAULT_BODYPARTS) and not model.multi_animal
    (out,) = engine.infer(model, [video], tmp_path, device="cpu").outputs
    pose = engine.read_outputs(out, model)
    assert pose.n_frames == N_FRAMES and pose.individuals == [SINGLE_INDIVIDUAL]


def test_model_folders_resolution(single_model, tmp_path):
    """A model folder, a file in it, a folder of model folders, named model_paths."""
    assert sleap_infer.model_folders(describe(single_model)) == [single_model]
    assert sleap_infer.model_folders(
        describe(single_model / "training_config.yaml")) == [single_model]
    assert sleap_infer.model_folders(describe(single_model.parent)) == [single_model]
    named = describe(single_model.parent)
    named.options["model_paths"] = [single_model.name]
    assert sleap_infer.model_folders(named) == [single_model]
    assert sleap_infer.model_heads(single_model) == ["single_instance"]


def test_label_video(single_model, video, tmp_path):
    """sleap-io draws every frame; a missing output and ``filtered`` are clear errors."""
    from element_pose.engines.sleap import label
    from element_pose.io.video import probe_video, read_frames

    engine = get_engine("sleap")
    model = describe(single_model)
    with pytest.raises(EngineError, match=r"no SLEAP predictions of session1\.mp4"):
        engine.label_video(model, video, tmp_path / "labeled", analysis_dir=tmp_path)
    engine.infer(model, [video], tmp_path, device="cpu")
    with pytest.raises(EngineError, match="no filtered predictions"):
        engine.label_video(model, video, tmp_path / "labeled", analysis_dir=tmp_path,
                           filtered=True)
    drawn = engine.label_video(model, video, tmp_path / "labeled", analysis_dir=tmp_path,
                               dotsize=3, draw_skeleton=True, trailpoints=2,
                               keypoints_only=True, colormap="viridis")
    assert drawn == tmp_path / "labeled" / label.labeled_name(video)
    info = probe_video(drawn)
    assert (info.n_frames, info.width, info.height) == (N_FRAMES, WIDTH, HEIGHT)
    assert sorted(p.name for p in drawn.parent.iterdir()) == [drawn.name]
    # on black, only markers are drawn; a cut-off above every score hides them all
    assert max(f.max() for f in read_frames(drawn)) > 50
    hidden = engine.label_video(model, video, tmp_path / "none", analysis_dir=tmp_path,
                                keypoints_only=True, pcutoff=10.0, output_fps=15.0)
    assert max(f.max() for f in read_frames(hidden)) < 30
    assert probe_video(hidden).fps == pytest.approx(15.0)


def test_two_videos_in_order(single_model, video, tmp_path):
    """A recording of two files: one predictions file per video, in input order, each
    equal to the video predicted alone."""
    second = tmp_path / "part2.mp4"
    sample.make_video(second, n_frames=12, width=WIDTH, height=HEIGHT, seed=4)
    engine = get_engine("sleap")
    model = describe(single_model)
    both = engine.infer(model, [second, video], tmp_path / "both", device="cpu")
    assert [o.pose_files[0].name for o in both.outputs] == ["part2.predictions.slp",
                                                           "session1.predictions.slp"]
    assert [o.n_frames for o in both.outputs] == [12, N_FRAMES]
    (alone,) = engine.infer(model, [video], tmp_path / "alone", device="cpu").outputs
    a = engine.read_outputs(both.outputs[1], model).position
    b = engine.read_outputs(alone, model).position
    np.testing.assert_array_equal(a, b)
