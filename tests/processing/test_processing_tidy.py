"""Tidy tables: Inscopix column layout, time base, movie numbering, stacking, files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from processing_testdata import FPS, make_pose, smooth_truth

from element_pose.processing.tidy import (
    FRAME_NUMBER,
    INDIVIDUAL,
    LOCAL_FRAME_NUMBER,
    MOVIE_NUMBER,
    TIME_SINCE_START,
    TidyError,
    concat_tidy,
    read_tidy,
    to_tidy,
    write_tidy,
)

FRAME_COLUMNS = ["Frame number", "Movie number", "Local frame number", "Time since start (s)"]


def test_columns_and_values(pose):
    df = to_tidy(pose)
    assert [FRAME_NUMBER, MOVIE_NUMBER, LOCAL_FRAME_NUMBER, TIME_SINCE_START] == FRAME_COLUMNS
    assert list(df.columns) == [*FRAME_COLUMNS, "nose x", "nose y", "nose likelihood",
                                "tail_base x", "tail_base y", "tail_base likelihood"]
    assert len(df) == pose.n_frames
    np.testing.assert_array_equal(df["Frame number"], np.arange(pose.n_frames))
    np.testing.assert_array_equal(df["Local frame number"], np.arange(pose.n_frames))
    assert (df["Movie number"] == 0).all()
    np.testing.assert_allclose(df["Time since start (s)"], np.arange(pose.n_frames) / FPS)
    np.testing.assert_array_equal(df["tail_base y"], pose.position[:, 0, 1, 1])
    np.testing.assert_array_equal(df["nose likelihood"], pose.confidence[:, 0, 0])


def test_time_since_start_uses_the_time_base(pose):
    df = to_tidy(pose.replace(start_time=12.5))
    assert df["Time since start (s)"].iloc[0] == 0.0
    np.testing.assert_allclose(df["Time since start (s)"].iloc[30], 1.0)
    stamps = 100.0 + np.cumsum(np.full(pose.n_frames, 0.05))
    df = to_tidy(pose.replace(timestamps=stamps, fps=None))
    np.testing.assert_allclose(df["Time since start (s)"], stamps - stamps[0])
    assert to_tidy(pose.replace(fps=None))["Time since start (s)"].isna().all()


def test_movie_numbering_for_two_files(pose):
    df = to_tidy(pose, frame_counts=[120, 80])
    assert df["Movie number"].tolist() == [0] * 120 + [1] * 80
    assert df["Local frame number"].tolist() == [*range(120), *range(80)]
    assert df["Frame number"].tolist() == list(range(200))
    with pytest.raises(TidyError, match="add up to 190"):
        to_tidy(pose, frame_counts=[120, 70])


def test_multi_animal_individual_column_and_prefix():
    pose = make_pose(smooth_truth(n_frames=5, n_individuals=2))
    long = to_tidy(pose)
    assert list(long.columns[:5]) == [*FRAME_COLUMNS, INDIVIDUAL]
    assert len(long) == 10
    assert long["individual"].tolist() == ["animal0", "animal1"] * 5
    assert long["Frame number"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    np.testing.assert_array_equal(long.loc[long.individual == "animal1", "nose x"],
                                  pose.position[:, 1, 0, 0])
    wide = to_tidy(pose, individual_layout="prefix")
    assert len(wide) == 5
    assert "animal1 tail_base likelihood" in wide.columns
    np.testing.assert_array_equal(wide["animal1 nose x"], pose.position[:, 1, 0, 0])


def test_3d_has_z_columns():
    df = to_tidy(make_pose(smooth_truth(n_frames=4, n_space=3)))
    assert list(df.columns[4:8]) == ["nose x", "nose y", "nose z", "nose likelihood"]


def test_identifiers_and_concat(pose):
    a = to_tidy(pose, identifiers={"subject": "m1", "session": 1})
    b = to_tidy(pose.select(keypoints=["nose"]), identifiers={"subject": "m1", "session": 2})
    assert list(a.columns[:2]) == ["subject", "session"]
    both = concat_tidy([a, b])
    assert len(both) == 2 * pose.n_frames
    assert list(both.columns[:3]) == ["subject", "session", "Frame number"]
    assert both.loc[both.session == 2, "tail_base x"].isna().all()  # absent body part
    with pytest.raises(TidyError, match="repeat the same"):
        concat_tidy([to_tidy(pose), to_tidy(pose)])
    with pytest.raises(TidyError, match="clash"):
        to_tidy(pose, identifiers={"nose x": 1})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_and_read_back(tmp_path, pose, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    df = to_tidy(pose, frame_counts=[100, 100], identifiers={"subject": "m1"})
    path = write_tidy(df, tmp_path / "out" / f"annotations{suffix}")
    assert path.exists() and [p.name for p in path.parent.iterdir()] == [path.name]
    back = read_tidy(path)
    assert list(back.columns) == list(df.columns)
    pd.testing.assert_frame_equal(back, df, check_dtype=False, atol=1e-4, rtol=0)


def test_bad_suffix(tmp_path, pose):
    with pytest.raises(TidyError, match=r"\.csv or \.parquet"):
        write_tidy(to_tidy(pose), tmp_path / "x.xlsx")
