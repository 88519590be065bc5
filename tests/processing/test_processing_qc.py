"""QC figures: written as real, non-empty PNGs; Figure objects for notebooks."""

from __future__ import annotations

import numpy as np
from processing_testdata import make_pose, smooth_truth

from element_pose.processing.qc import (
    FIGURE_NAMES,
    difference_histogram_figure,
    likelihood_figure,
    position_figure,
    trajectory_figure,
    write_qc_figures,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path, min_bytes=5_000):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes


def test_write_qc_figures_single_animal(tmp_path, pose):
    position = pose.position.copy()
    position[10:20, 0, 0] = np.nan  # gaps are fine
    written = write_qc_figures(pose.replace(position=position), tmp_path / "qc", width=160,
                               height=120, prefix="raw_", pcutoff=0.6)
    assert set(written) == set(FIGURE_NAMES)
    for name, path in written.items():
        assert path == tmp_path / "qc" / f"raw_{name}.png"
        _assert_png(path)
    assert sorted(p.name for p in (tmp_path / "qc").iterdir()) == sorted(
        f"raw_{n}.png" for n in FIGURE_NAMES)  # no temporary files left


def test_write_qc_figures_multi_animal_and_3d(tmp_path):
    pose = make_pose(smooth_truth(n_individuals=2, n_space=3), fps=None)
    written = write_qc_figures(pose, tmp_path, dpi=50)
    assert set(written) == {f"{n}_{i}" for n in FIGURE_NAMES for i in ("animal0", "animal1")}
    for path in written.values():
        _assert_png(path, min_bytes=2_000)


def test_figure_functions_return_figures(pose):
    from matplotlib.figure import Figure

    figures = [difference_histogram_figure(pose), likelihood_figure(pose, pcutoff=0.6),
               position_figure(pose), trajectory_figure(pose, 160, 120)]
    assert all(isinstance(f, Figure) for f in figures)
    assert len(figures[0].axes) == 2  # one panel per body part
    assert len(figures[2].axes) == 2  # x and y


def test_trajectory_y_axis_points_down(pose):
    ax = trajectory_figure(pose, width=160, height=120).axes[0]
    assert ax.get_ylim() == (120, 0)
    assert ax.get_xlim() == (0, 160)
    ax = trajectory_figure(pose).axes[0]
    low, high = ax.get_ylim()
    assert low > high


def test_written_files_follow_the_umask_like_any_other_file(tmp_path, pose):
    """QC figures and tidy tables are written atomically (a temporary file renamed), but
    readable like any file the user writes: not only by their owner (mkstemp's 0600)."""
    import os

    from element_pose.processing.tidy import to_tidy, write_tidy

    old = os.umask(0o022)
    try:
        figures = write_qc_figures(pose, tmp_path / "qc", dpi=40)
        table = write_tidy(to_tidy(pose), tmp_path / "tidy.csv")
    finally:
        os.umask(old)
    for path in [*figures.values(), table]:
        assert path.stat().st_mode & 0o777 == 0o644, (path, oct(path.stat().st_mode))
