"""h5py read path of DeepLabCut's .h5 (values_block_0) and the pandas fallback."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from element_pose import sample
from element_pose.io import dlc
from element_pose.io.h5table import read_frame_table


def _full_precision_h5(path: Path, n_frames: int = 500, n_individuals: int = 1,
                       fmt: str = "table", **kwargs) -> pd.DataFrame:
    """A DeepLabCut output with full-precision float64 values (as DeepLabCut writes)."""
    truth = sample.ground_truth(n_frames=n_frames, n_individuals=n_individuals)
    df = truth.to_dlc_dataframe(scorer="DLC_s", multi_animal=n_individuals > 1)
    rng = np.random.default_rng(3)
    df = df.astype(np.float64) + rng.normal(0, 0.7, df.shape)
    likelihood = df.columns.get_level_values("coords") == "likelihood"
    df.loc[:, likelihood] = df.loc[:, likelihood].clip(0, 1)  # a score stays a score
    df.iloc[5:9, :3] = np.nan
    df.to_hdf(path, key="df_with_missing", format=fmt, mode="w", **kwargs)
    return df


@pytest.mark.parametrize("n_individuals", [1, 3])
def test_h5py_path_equals_pandas_exactly(tmp_path, n_individuals):
    df = _full_precision_h5(tmp_path / "v.h5", n_individuals=n_individuals)
    table = read_frame_table(tmp_path / "v.h5", chunk_rows=64)  # several chunks
    assert table is not None
    assert table.values.dtype == np.float32 and table.values.flags.c_contiguous
    assert table.names == list(df.columns.names)
    assert table.columns == list(df.columns)
    assert table.values.tobytes() == df.to_numpy(np.float32).tobytes()  # NaN included
    pose = dlc.read_dlc_h5(tmp_path / "v.h5")
    assert pose.n_frames == 500 and len(pose.individuals) == n_individuals


def test_layouts_h5py_does_not_know_fall_back_to_pandas(tmp_path):
    # fixed format, a second value block and PyTables' own blosc filter are pandas' business
    df = _full_precision_h5(tmp_path / "fixed.h5", fmt="fixed")
    assert read_frame_table(tmp_path / "fixed.h5") is None
    _full_precision_h5(tmp_path / "blosc.h5", complib="blosc:zstd", complevel=5)
    mixed = df.copy()
    mixed[("DLC_s", "nose", "likelihood")] = mixed[("DLC_s", "nose", "likelihood")].astype(
        np.float32)
    mixed.to_hdf(tmp_path / "mixed.h5", key="df_with_missing", format="table", mode="w")
    assert read_frame_table(tmp_path / "mixed.h5") is None
    for name in ("fixed.h5", "blosc.h5", "mixed.h5"):
        pose = dlc.read_dlc_h5(tmp_path / name)
        assert pose.position[:, 0, 0, 0].tobytes() == (
            df[("DLC_s", "nose", "x")].to_numpy(np.float32).tobytes())


def test_h5py_path_needs_no_pytables(tmp_path):
    _full_precision_h5(tmp_path / "v.h5")
    code = textwrap.dedent(f"""
        import sys
        from element_pose.io import dlc
        pose = dlc.read_dlc_h5({str(tmp_path / "v.h5")!r})
        assert pose.n_frames == 500
        print("tables" in sys.modules)
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_truncated_file_is_a_clear_error(tmp_path):
    _full_precision_h5(tmp_path / "v.h5")
    data = (tmp_path / "v.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(dlc.DLCFormatError, match=r"cut\.h5"):
        dlc.read_dlc_h5(tmp_path / "cut.h5")
