"""Labelled sets of either engine -> LabelSet (DeepLabCut projects and CollectedData)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from element_pose import sample
from element_pose.core.labels import LabelSetError
from element_pose.io.labels import LabelFormatError, read_label_set


def _truth(project):
    """Positions as the sample wrote them, frame id -> (n_ind, n_kp, 2)."""
    out = {}
    for h5 in sorted(project.glob("labeled-data/*/CollectedData_*.h5")):
        df = pd.read_hdf(h5)
        for idx, row in df.iterrows():
            out["/".join(idx)] = row.to_numpy(dtype=float)
    return out


def test_dlc_project_reads_every_video_in_config_order(tmp_path):
    config = sample.make_dlc_project(tmp_path / "p", n_videos=2, n_frames=10, n_labeled=4)
    labels = read_label_set(config.parent)
    assert labels.keypoints == list(sample.DEFAULT_BODYPARTS)
    assert labels.individuals == ["individual_0"] and labels.scorer == "sampler"
    assert labels.n_frames == 8
    assert labels.frames[0] == "labeled-data/demo_video0/img0000.png"
    assert all(labels.image(f).is_file() for f in labels.frames)
    truth = _truth(config.parent)
    for i, frame in enumerate(labels.frames):
        assert np.array_equal(labels.xy[i].reshape(-1), truth[frame])
    assert labels.skeleton and all(len(e) == 2 for e in labels.skeleton)
    # config.yaml path gives the same
    again = read_label_set(config)
    assert again.frames == labels.frames and np.array_equal(again.xy, labels.xy, equal_nan=True)


def test_dlc_csv_reads_like_h5(tmp_path):
    config = sample.make_dlc_project(tmp_path / "p", n_frames=10, n_labeled=4,
                                     n_individuals=2)
    h5 = next(config.parent.glob("labeled-data/*/CollectedData_*.h5"))
    from_h5 = read_label_set(h5)
    from_csv = read_label_set(h5.with_suffix(".csv"))
    assert from_h5.individuals == ["animal0", "animal1"]
    assert from_csv.individuals == from_h5.individuals
    assert from_csv.keypoints == from_h5.keypoints and from_csv.frames == from_h5.frames
    assert np.array_equal(from_csv.xy, from_h5.xy, equal_nan=True)
    assert from_h5.root == config.parent and from_h5.image(from_h5.frames[0]).is_file()
    # project: the same positions, in the config's individual order
    project = read_label_set(config)
    assert project.individuals == ["animal0", "animal1"]
    assert np.array_equal(project.xy, from_h5.xy, equal_nan=True)
    # a project folder with only the .csv reads it
    h5.unlink()
    assert np.array_equal(read_label_set(config).xy, from_h5.xy, equal_nan=True)


def test_dlc_body_part_not_in_config_names_file(tmp_path):
    config = sample.make_dlc_project(tmp_path / "p", n_frames=10, n_labeled=3,
                                     bodyparts=("nose", "tail"))
    h5 = next(config.parent.glob("labeled-data/*/CollectedData_*.h5"))
    df = pd.read_hdf(h5)
    df.columns = df.columns.set_levels(["nose", "ear"], level="bodyparts")
    df.to_hdf(h5, key="df_with_missing", mode="w")
    with pytest.raises(LabelFormatError, match=r"CollectedData_sampler\.h5 labels body parts "
                                               r"\['ear'\]"):
        read_label_set(config)
    assert issubclass(LabelFormatError, LabelSetError)


def test_foreign_and_missing_inputs_name_the_file(tmp_path):
    with pytest.raises(LabelFormatError, match="labelled set not found"):
        read_label_set(tmp_path / "none.slp")
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(LabelFormatError, match=r"notes\.txt is not a labelled set"):
        read_label_set(other)
    bad = tmp_path / "CollectedData_x.h5"
    pd.DataFrame({"a": [1.0]}).to_hdf(bad, key="keypoints")
    with pytest.raises(LabelFormatError, match=r"CollectedData_x\.h5 is not a DeepLabCut"):
        read_label_set(bad)
    garbage = tmp_path / "CollectedData_y.h5"
    garbage.write_bytes(b"not hdf5")
    with pytest.raises(LabelFormatError, match=r"cannot read labelled data .*CollectedData_y"):
        read_label_set(garbage)
    with pytest.raises(LabelFormatError, match="cannot read the DeepLabCut project"):
        read_label_set(tmp_path)
