"""The frame viewer draws keypoints where the data say, headless, from the database."""

from __future__ import annotations

import datetime

import matplotlib
import numpy as np
import pytest
from PIL import Image

from element_pose import sample
from element_pose.core.pose import PoseData
from element_pose.processing import viewer

matplotlib.use("Agg")


def _pixel_of(fig, ax, x: float, y: float) -> tuple[int, int]:
    """Row and column, in the saved PNG, of data point (x, y) of ``ax``."""
    fig.canvas.draw()
    px, py = ax.transData.transform((x, y))
    height = fig.canvas.get_width_height()[1]
    return round(height - py), round(px)


def _render(fig, path) -> np.ndarray:
    fig.savefig(path, dpi=fig.dpi)  # same dpi as the canvas: pixels match transData
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _pose(n_frames=10, width=160, height=120) -> PoseData:
    rng = np.random.default_rng(0)
    position = np.empty((n_frames, 1, 3, 2), np.float32)
    position[..., 0] = rng.uniform(20, width - 20, (n_frames, 1, 3))
    position[..., 1] = rng.uniform(20, height - 20, (n_frames, 1, 3))
    confidence = np.full((n_frames, 1, 3), 0.9, np.float32)
    confidence[4, 0, 1] = 0.05
    confidence[7, 0, :] = 0.2
    return PoseData(position, confidence, ["nose", "ear", "tail"], ["animal0"], fps=30.0,
                    skeleton=[("nose", "ear")])


def test_keypoints_are_drawn_at_their_pixels(tmp_path):
    pose = _pose()
    frames = {i: np.zeros((120, 160, 3), np.uint8) for i in (2, 5)}
    fig = viewer.show_frames(frames, pose, marker_size=60)
    png = _render(fig, tmp_path / "frames.png")
    ax = fig.axes[1]  # the panel of frame 5
    assert ax.get_title().startswith("frame 5")
    import matplotlib.pyplot as plt

    colours = [np.array(plt.get_cmap("tab10")(k)[:3]) * 255 for k in range(3)]
    for k in range(3):
        row, col = _pixel_of(fig, ax, *pose.position[5, 0, k])
        assert np.abs(png[row, col] - colours[k]).max() < 40, (k, png[row, col], colours[k])
    # far from every keypoint the (black) frame shows through
    row, col = _pixel_of(fig, ax, 2, 2)
    assert png[row, col].max() < 40


def test_lowest_confidence_frames_rank_the_worst_first():
    pose = _pose()
    assert viewer.lowest_confidence_frames(pose, 2) == [7, 4]
    assert viewer.lowest_confidence_frames(pose, 1, keypoint="ear") == [4]
    assert viewer.frames_to_show(pose, lowest=2) == [4, 7]
    with pytest.raises(ValueError, match="outside"):
        viewer.frames_to_show(pose, frames=[3, 99])


@pytest.mark.usefixtures("pipeline")
def test_show_frames_from_the_database(pipeline, raw_root, processed_root, unique, tmp_path):
    model = pipeline.model
    pipeline.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1(
        {"subject": f"v{unique}", "sex": "F", "species": "Mus musculus",
         "subject_birth_date": datetime.date(2025, 1, 1)})
    session_key = {"subject": f"v{unique}", "session_id": 1}
    pipeline.session.Session.insert1(
        {**session_key, "session_datetime": datetime.datetime(2026, 1, 3)})
    project = sample.make_dlc_project(raw_root / f"vproject_{unique}", n_frames=20, n_labeled=4)
    video = raw_root / f"vsession_{unique}" / "cam.mp4"
    truth = sample.make_video(video, n_frames=40, seed=3)
    outputs = processed_root / f"voutputs_{unique}"
    sample.make_dlc_output(truth, video, outputs, seed=3)
    recording = model.VideoRecording.insert_recording(session_key, 0, {"device": "cam0"},
                                                      [video])
    model.RecordingInfo.populate(recording)
    model_key = model.Model.insert_new_model(f"vmodel_{unique}", project, shuffle=1)
    task = model.PoseEstimationTask.insert_estimation_task(
        {**recording, **model_key}, "load", output_dir=outputs)
    model.PoseEstimation.populate(task)

    pose = model.PoseEstimation.fetch_pose(task)
    worst = viewer.lowest_confidence_frames(pose, 3, keypoint="nose")
    fig = model.PoseEstimation.show_frames(task, lowest=3, body_part="nose", marker_size=60)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert [int(t.split()[1]) for t in titles] == sorted(worst)
    png = _render(fig, tmp_path / "db.png")
    ax = fig.axes[0]
    frame = sorted(worst)[0]
    import matplotlib.pyplot as plt

    for k, part in enumerate(pose.keypoints):
        xy = pose.position[frame, 0, k]
        if not np.isfinite(xy).all() or pose.confidence[frame, 0, k] < 0.5:
            continue
        row, col = _pixel_of(fig, ax, *xy)
        colour = np.array(plt.get_cmap("tab10")(k)[:3]) * 255
        assert np.abs(png[row, col] - colour).max() < 40, part
    # the video shows under the markers: a corner pixel is the decoded frame's
    video_frame = viewer.read_recording_frames([video], [40], [frame])[frame]
    row, col = _pixel_of(fig, ax, 3, 3)
    assert np.abs(png[row, col] - video_frame[3, 3].astype(int)).max() < 40


def test_a_pose_without_time_base_still_draws():
    pose = _pose().replace(fps=None)
    fig = viewer.show_frames({3: np.zeros((120, 160, 3), np.uint8)}, pose)
    assert fig.axes[0].get_title() == "frame 3  (no time base)"


def test_show_frames_leaves_no_pyplot_figure():
    """A worker drawing many figures must not pile them up in pyplot's global registry."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    before = plt.get_fignums()
    fig = viewer.show_frames({3: np.zeros((120, 160, 3), np.uint8)}, _pose())
    assert isinstance(fig, Figure) and plt.get_fignums() == before
    # Jupyter shows it (a PNG) without pyplot's inline backend
    assert fig._repr_png_().startswith(b"\x89PNG\r\n\x1a\n")
