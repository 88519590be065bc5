"""The one reader of DeepLabCut labelled frames (CollectedData), for the engine and NWB."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from element_pose import sample
from element_pose.engines.deeplabcut import validate_labeled_data
from element_pose.export.nwb import NWBExportError, read_dlc_labels
from element_pose.io.dlc import DLCFormatError
from element_pose.io.dlc_labels import read_labeled_data


def test_labelled_frames_read_once_for_engine_and_nwb(tmp_path):
    config = sample.make_dlc_project(tmp_path / "p", n_frames=12, n_labeled=5)
    project = config.parent
    h5 = sorted(project.glob("labeled-data/*/CollectedData_*.h5"))[0]
    labels = read_labeled_data(h5)
    df = pd.read_hdf(h5)
    assert labels.scorers == [df.columns.get_level_values(0)[0]]
    assert labels.bodyparts == list(sample.DEFAULT_BODYPARTS) and labels.individuals == []
    assert labels.labelled_rows().sum() == 5
    rows = labels.rows()
    assert len(rows) == 5 and rows[0]["image"].endswith(".png")
    first = df.iloc[0]
    x = first.xs("x", level="coords").to_numpy(dtype=float)
    assert np.allclose([rows[0]["bodyparts"][b][0] for b in labels.bodyparts], x,
                       equal_nan=True)
    # the NWB export and the engine read through it
    scorer, nwb_rows = read_dlc_labels(h5)
    assert scorer == labels.scorer and nwb_rows == rows
    assert validate_labeled_data(config).n_images == 5


def test_bad_labelled_data_name_the_file(tmp_path):
    bad = tmp_path / "CollectedData_x.h5"
    pd.DataFrame({"a": [1.0]}).to_hdf(bad, key="keypoints")
    with pytest.raises(DLCFormatError, match=r"CollectedData_x\.h5 is not a DeepLabCut"):
        read_labeled_data(bad)
    with pytest.raises(NWBExportError, match=r"CollectedData_x\.h5"):
        read_dlc_labels(bad)
    with pytest.raises(DLCFormatError, match="labelled data not found"):
        read_labeled_data(tmp_path / "nothing.h5")
