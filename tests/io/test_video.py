"""Video probing with PyAV."""

import numpy as np
import pytest

from element_pose import sample
from element_pose.io.video import VideoError, probe_recording, probe_video, read_frames


def test_probe_counts_frames_and_timestamps(tmp_path):
    sample.make_video(tmp_path / "a.mp4", n_frames=25, fps=25.0)
    info = probe_video(tmp_path / "a.mp4")
    assert (info.width, info.height, info.n_frames) == (160, 120, 25)
    assert info.fps == pytest.approx(25.0)
    assert info.timestamps is not None and np.allclose(np.diff(info.timestamps), 0.04)


def test_recording_joins_files_and_rejects_mismatch(tmp_path):
    sample.make_video(tmp_path / "a.mp4", n_frames=10)
    sample.make_video(tmp_path / "b.mp4", n_frames=5)
    info = probe_recording([tmp_path / "a.mp4", tmp_path / "b.mp4"])
    assert info.n_frames == 15 and info.frame_counts == [10, 5]
    assert np.all(np.diff(info.timestamps) > 0)
    sample.make_video(tmp_path / "c.mp4", n_frames=5, fps=60.0)
    with pytest.raises(VideoError, match=r"c\.mp4 runs at 60 fps"):
        probe_recording([tmp_path / "a.mp4", tmp_path / "c.mp4"])


def test_missing_and_corrupt_videos(tmp_path):
    with pytest.raises(VideoError, match="video not found"):
        probe_video(tmp_path / "nope.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoError, match="cannot open video"):
        probe_video(tmp_path / "bad.mp4")


def test_rendered_markers_are_where_the_truth_says(tmp_path):
    truth = sample.make_video(tmp_path / "a.mp4", n_frames=3)
    frame = read_frames(tmp_path / "a.mp4", [1])[0]
    x, y = truth.position[1, 0, 0].round().astype(int)
    assert frame[y, x, 0] > 150  # nose marker is red
    assert frame[5, 5].max() < 60  # background is dark


def test_set_frame_rate_of_a_broken_file_leaves_nothing_beside_it(tmp_path):
    from element_pose.io.video import set_frame_rate

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(VideoError, match=r"broken\.mp4"):
        set_frame_rate(broken, 30.0003)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]
