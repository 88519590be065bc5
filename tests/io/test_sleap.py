"""SLEAP reader, against .slp and analysis .h5 files written by sleap-io itself."""

import h5py
import numpy as np
import pytest
import sleap_io as sio

from element_pose.io import detect_format, read_pose, validate_pose_file
from element_pose.io.sleap import SleapFormatError, read_sleap

NODES = ["nose", "ear", "tail"]
N_FRAMES = 12  # frames 0..11; frame 0 and 1 unlabelled, mouse_b absent in frame 6


def _position(frame: int, track: int) -> np.ndarray:
    base = np.arange(len(NODES) * 2, dtype=float).reshape(len(NODES), 2)
    return base + 100 * track + frame + 0.25


def _point_scores(frame: int, track: int) -> np.ndarray:
    return np.array([0.5, 0.75, 0.9]) - 0.01 * frame - 0.1 * track


def _labels(*, tracked: bool = True, n_tracks: int = 2, score_offset: float = 0.0):
    skeleton = sio.Skeleton(list(NODES), edges=[("nose", "ear"), ("ear", "tail")])
    video = sio.Video(filename="session1.mp4", open_backend=False)
    tracks = [sio.Track("mouse_a"), sio.Track("mouse_b")][:n_tracks]
    frames = []
    for f in range(2, N_FRAMES):
        instances = []
        for t, track in enumerate(tracks):
            if t == 1 and f == 6:
                continue
            pts = _position(f, t)
            if f == 4 and t == 0:
                pts[1] = np.nan  # ear not found
            instances.append(sio.PredictedInstance.from_numpy(
                pts, skeleton=skeleton, point_scores=_point_scores(f, t) + score_offset,
                score=0.8 - 0.01 * f + 0.1 * t, track=track if tracked else None))
        frames.append(sio.LabeledFrame(video=video, frame_idx=f, instances=instances))
    return sio.Labels(frames, videos=[video], skeletons=[skeleton],
                      tracks=tracks if tracked else [])


def _check_multi_animal(pose):
    assert pose.individuals == ["mouse_a", "mouse_b"]
    assert pose.keypoints == NODES
    assert pose.skeleton == [("nose", "ear"), ("ear", "tail")]
    assert pose.source_software == "SLEAP"
    assert pose.n_frames == N_FRAMES
    assert np.isnan(pose.position[:2]).all() and np.isnan(pose.confidence[:2]).all()
    for f in range(2, N_FRAMES):
        for t in range(2):
            if t == 1 and f == 6:
                assert np.isnan(pose.position[f, 1]).all()
                continue
            expected = _position(f, t)
            scores = _point_scores(f, t)
            if f == 4 and t == 0:
                assert np.isnan(pose.position[f, 0, 1]).all()
                assert np.isnan(pose.confidence[f, 0, 1])
                expected, scores = expected[[0, 2]], scores[[0, 2]]
                got, got_scores = pose.position[f, 0, [0, 2]], pose.confidence[f, 0, [0, 2]]
            else:
                got, got_scores = pose.position[f, t], pose.confidence[f, t]
            np.testing.assert_allclose(got, expected, rtol=1e-6)
            np.testing.assert_allclose(got_scores, scores, rtol=1e-6)


def test_slp_multi_animal_tracks_become_individuals(tmp_path):
    path = tmp_path / "preds.slp"
    sio.save_slp(_labels(), str(path))
    assert detect_format(path) == "sleap_slp"
    pose = read_pose(path, fps=30)
    _check_multi_animal(pose)
    assert pose.fps == 30


def test_analysis_h5_reads_the_same_values(tmp_path):
    path = tmp_path / "preds.analysis.h5"
    sio.save_analysis_h5(_labels(), str(path))
    assert detect_format(path) == "sleap_analysis_h5"
    _check_multi_animal(read_pose(path))


@pytest.mark.parametrize("name", ["preds.slp", "preds.analysis.h5"])
def test_instance_scores_as_confidence(tmp_path, name):
    path = tmp_path / name
    (sio.save_slp if name.endswith(".slp") else sio.save_analysis_h5)(_labels(), str(path))
    pose = read_sleap(path, confidence="instance")
    np.testing.assert_allclose(pose.confidence[5, 0], [0.75] * 3, rtol=1e-6)
    np.testing.assert_allclose(pose.confidence[5, 1], [0.85] * 3, rtol=1e-6)
    assert np.isnan(pose.confidence[4, 0, 1])  # missing point keeps no score
    assert np.isnan(pose.confidence[6, 1]).all()


def test_single_animal_untracked_and_user_instances(tmp_path):
    labels = _labels(tracked=False, n_tracks=1)
    user = sio.Instance.from_numpy(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
                                   skeleton=labels.skeletons[0])
    labels.append(sio.LabeledFrame(video=labels.videos[0], frame_idx=0, instances=[user]))
    path = tmp_path / "single.slp"
    sio.save_slp(labels, str(path))
    pose = read_pose(path)
    assert pose.individuals == ["individual_0"]
    np.testing.assert_allclose(pose.position[0, 0], [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_allclose(pose.confidence[0, 0], [1, 1, 1])  # user labels
    np.testing.assert_allclose(pose.position[3, 0], _position(3, 0), rtol=1e-6)


def test_negative_scores_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "bad.slp"
    sio.save_slp(_labels(score_offset=-0.7), str(path))
    with pytest.raises(SleapFormatError, match=r"bad\.slp.*outside"):
        read_pose(path)


def test_validators_name_the_file(tmp_path):
    fake = tmp_path / "fake.slp"
    fake.write_text("not hdf5")
    with pytest.raises(SleapFormatError, match=r"fake\.slp is not an HDF5 file"):
        read_pose(fake, fmt="sleap_slp")
    empty = tmp_path / "empty.slp"
    with h5py.File(empty, "w") as f:
        f.create_group("other")
    with pytest.raises(SleapFormatError, match=r"empty\.slp.*lacks"):
        validate_pose_file(empty)
    with pytest.raises(SleapFormatError, match="not found"):
        read_sleap(tmp_path / "missing.slp")


def test_several_videos_need_a_choice(tmp_path):
    labels = _labels()
    other = sio.Video(filename="session2.mp4", open_backend=False)
    labels.videos.append(other)
    labels.append(sio.LabeledFrame(video=other, frame_idx=0, instances=[
        sio.PredictedInstance.from_numpy(_position(0, 0), skeleton=labels.skeletons[0],
                                         point_scores=np.ones(3), score=1.0,
                                         track=labels.tracks[0])]))
    path = tmp_path / "two.slp"
    sio.save_slp(labels, str(path))
    with pytest.raises(SleapFormatError, match="2 videos"):
        read_pose(path)
    _check_multi_animal(read_sleap(path, video="session1.mp4"))
    second = read_sleap(path, video=1)
    assert second.n_frames == 1
    np.testing.assert_allclose(second.position[0, 0], _position(0, 0))


def test_one_instance_per_frame_keeps_its_track(tmp_path):
    """A tracked file with one animal in view still places it on its own track."""
    labels = _labels()
    for lf in labels.labeled_frames:
        lf.instances = [i for i in lf.instances if i.track.name == "mouse_b"]
    path = tmp_path / "b_only.slp"
    sio.save_slp(labels, str(path))
    pose = read_pose(path)
    assert pose.individuals == ["mouse_a", "mouse_b"]
    assert np.isnan(pose.position[:, 0]).all()
    np.testing.assert_allclose(pose.position[3, 1], _position(3, 1), rtol=1e-6)


# --------------------------------------------- frames after the last labelled frame
def _short_labels(tmp_path, *, stored_shape: bool):
    """A 20-frame video whose .slp labels frames 0..11 only (the last 8 have no
    labelled frame); the file stores the video's shape or not."""
    from element_pose import sample

    video_path = tmp_path / "clip.mp4"
    sample.make_video(video_path, n_frames=20, width=64, height=48, seed=1)
    video = sio.load_video(str(video_path))
    assert video.shape[0] == 20
    skeleton = sio.Skeleton(list(NODES))
    frames = [sio.LabeledFrame(video=video, frame_idx=f, instances=[
        sio.PredictedInstance.from_numpy(_position(f, 0), skeleton=skeleton,
                                         point_scores=_point_scores(f, 0), score=0.9)])
              for f in range(12)]
    path = tmp_path / "short.slp"
    sio.Labels(labeled_frames=frames, videos=[video], skeletons=[skeleton]).save(str(path))
    if not stored_shape:  # as a file written without the video at hand
        with h5py.File(path, "r+") as f:
            import json

            videos = [json.loads(v) for v in f["videos_json"][:]]
            for v in videos:
                v.get("backend", {}).pop("shape", None)
            del f["videos_json"]
            f["videos_json"] = np.array([json.dumps(v).encode() for v in videos])
    return path, video_path


@pytest.mark.parametrize("stored_shape", [True, False])
def test_frames_after_the_last_labelled_frame_are_kept(tmp_path, stored_shape):
    """The frame count is the video's (the shape the .slp stores, else the video's own
    length), not the last labelled frame's: the last frames are NaN."""
    path, _ = _short_labels(tmp_path, stored_shape=stored_shape)
    pose = read_sleap(path)
    assert pose.position.shape[0] == 20
    assert np.isfinite(pose.position[:12]).all()
    assert np.isnan(pose.position[12:]).all() and np.isnan(pose.confidence[12:]).all()
    assert np.allclose(pose.position[5, 0], _position(5, 0))


def test_frame_count_unknown_without_shape_or_video(tmp_path):
    """Neither a stored shape nor the video: the labelled frames are all that is known."""
    path, video_path = _short_labels(tmp_path, stored_shape=False)
    video_path.unlink()
    assert read_sleap(path).position.shape[0] == 12
