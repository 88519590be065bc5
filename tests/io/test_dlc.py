"""The one DeepLabCut reader, against files in DeepLabCut 3's exact layouts."""

import numpy as np
import pandas as pd
import pytest

from element_pose import sample
from element_pose.io import dlc


def test_single_animal_h5_round_trip(tmp_path):
    truth = sample.ground_truth(n_frames=20, fps=30)
    h5 = sample.make_dlc_output(truth, tmp_path / "v.mp4", tmp_path, scorer="DLC_x_snapshot_5")
    raw = pd.read_hdf(h5, key="df_with_missing")
    assert raw.columns.names == ["scorer", "bodyparts", "coords"]
    pose = dlc.read_dlc_h5(h5, fps=30)
    assert pose.scorer == "DLC_x_snapshot_5" and pose.individuals == ["individual_0"]
    assert np.allclose(pose.position[:, 0, :, 0],
                       raw.xs("x", level="coords", axis=1).to_numpy(), atol=1e-4)
    meta = dlc.read_dlc_meta(h5.with_name(h5.stem + "_meta.pickle"))
    assert meta["nframes"] == 20 and meta["bodyparts"] == list(sample.DEFAULT_BODYPARTS)


def test_multi_animal_with_unique_bodyparts(tmp_path):
    truth = sample.ground_truth(n_frames=10, n_individuals=2)
    df = truth.to_dlc_dataframe(scorer="s")
    unique = pd.DataFrame(np.ones((10, 3)), columns=pd.MultiIndex.from_product(
        [["s"], ["single"], ["led"], ["x", "y", "likelihood"]],
        names=df.columns.names))
    pd.concat([df, unique], axis=1).to_hdf(tmp_path / "m.h5", key="df_with_missing")
    pose = dlc.read_dlc_h5(tmp_path / "m.h5")
    assert pose.individuals == ["animal0", "animal1", "single"]
    assert pose.keypoints == [*sample.DEFAULT_BODYPARTS, "led"]
    assert np.isnan(pose.position[:, 0, -1]).all()  # animal0 has no 'led'
    assert (pose.position[:, 2, -1] == 1).all()


def test_unreadable_and_wrong_files(tmp_path):
    with pytest.raises(dlc.DLCFormatError, match="not found"):
        dlc.read_dlc_h5(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(dlc.DLCFormatError, match="cannot read DeepLabCut output"):
        dlc.read_dlc_h5(tmp_path / "junk.h5")
    pd.DataFrame({"a": [1.0]}).to_hdf(tmp_path / "flat.h5", key="df_with_missing")
    with pytest.raises(dlc.DLCFormatError, match="not a DeepLabCut pose table"):
        dlc.read_dlc_h5(tmp_path / "flat.h5")


def test_find_outputs_ignores_filtered_and_needs_scorer_when_ambiguous(tmp_path):
    truth = sample.ground_truth(n_frames=5)
    video = tmp_path / "cam.mp4"
    a = sample.make_dlc_output(truth, video, tmp_path, scorer="DLC_A_snapshot_1")
    a.with_name(a.stem + "_filtered.h5").write_bytes(a.read_bytes())
    assert dlc.find_outputs(video, tmp_path)[0] == a
    sample.make_dlc_output(truth, video, tmp_path, scorer="DLC_B_snapshot_2")
    with pytest.raises(dlc.DLCFormatError, match="several DeepLabCut outputs"):
        dlc.find_outputs(video, tmp_path)
    assert dlc.find_outputs(video, tmp_path, scorer="DLC_A")[0] == a
    ten = sample.make_dlc_output(truth, video, tmp_path, scorer="DLC_C_snapshot_10")
    sample.make_dlc_output(truth, video, tmp_path, scorer="DLC_C_snapshot_100")
    assert dlc.find_outputs(video, tmp_path, scorer="DLC_C_snapshot_10")[0] == ten
    with pytest.raises(dlc.DLCFormatError, match=r"no DeepLabCut output for video other\.mp4"):
        dlc.find_outputs(tmp_path / "other.mp4", tmp_path)


def test_config_helpers(tmp_path):
    config = sample.make_dlc_project(tmp_path / "p", n_frames=10, n_labeled=3, n_individuals=2)
    cfg = dlc.read_config(config)
    assert dlc.is_multi_animal(cfg)
    assert dlc.config_individuals(cfg) == ["animal0", "animal1"]
    assert dlc.config_bodyparts(cfg) == list(sample.DEFAULT_BODYPARTS)
    (tmp_path / "bad.yaml").write_text("a: [unclosed")
    with pytest.raises(dlc.DLCFormatError, match="not valid YAML"):
        dlc.read_config(tmp_path / "bad.yaml")


def test_an_unreadable_h5_is_one_line_that_names_the_file(tmp_path):
    """Not HDF5's multi-line back trace (it reached job errors and `element-pose status`)."""
    bad = tmp_path / "videoDLC_resnet50.h5"
    bad.write_bytes(b"not an hdf5 file\x00\x01" * 10)
    with pytest.raises(dlc.DLCFormatError) as info:
        dlc.read_dlc_h5(bad)
    message = str(info.value)
    assert "\n" not in message and str(bad) in message, message
    assert "signature" in message or "not an HDF5" in message, message
