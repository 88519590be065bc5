"""The io registry: read_pose, detection, validators, and registering a new format."""

import re
import subprocess
import sys

import numpy as np
import pytest

from element_pose import sample
from element_pose.core.pose import PoseData
from element_pose.io import (
    PoseFormatError,
    available_formats,
    detect_format,
    read_pose,
    register_format,
    validate_pose_file,
)
from element_pose.io.dlc import DLCFormatError
from element_pose.io.registry import _FORMATS, get_format, require_hdf5_keys
from element_pose.io.sleap import SleapFormatError


def test_builtin_formats_are_registered():
    assert {"dlc_h5", "sleap_slp", "sleap_analysis_h5", "lightning_pose_csv",
            "anipose_3d_csv"} <= set(available_formats())


def test_dlc_h5_through_the_registry(tmp_path):
    truth = sample.ground_truth(n_frames=8, fps=30)
    h5 = sample.make_dlc_output(truth, tmp_path / "v.mp4", tmp_path, scorer="DLC_x_snapshot_5")
    assert detect_format(h5) == "dlc_h5"
    pose = read_pose(h5, fps=30)
    assert pose.source_software == "DeepLabCut" and pose.n_frames == 8
    bad = truth.replace(confidence=truth.confidence + 2)
    from element_pose.io.dlc import write_dlc_h5

    write_dlc_h5(bad, tmp_path / "bad.h5")
    with pytest.raises(DLCFormatError, match=r"bad\.h5.*likelihood.*outside \[0, 1\]"):
        read_pose(tmp_path / "bad.h5")


def test_dlc_csv_through_the_registry(tmp_path):
    truth = sample.ground_truth(n_frames=8, fps=30)
    csv = tmp_path / "vDLC_x_snapshot_5.csv"
    truth.to_dlc_dataframe(scorer="DLC_x_snapshot_5").to_csv(csv)
    assert detect_format(csv) == "dlc_csv"
    pose = read_pose(csv, fps=30)
    assert pose.n_frames == 8 and pose.keypoints == truth.keypoints
    assert np.array_equal(pose.position, truth.position, equal_nan=True)


def test_unknown_and_missing_files_are_named(tmp_path):
    with pytest.raises(PoseFormatError, match=r"not found: .*nothing\.slp"):
        read_pose(tmp_path / "nothing.slp")
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    with pytest.raises(PoseFormatError, match=r"notes\.txt: not a known pose file format"):
        read_pose(odd)
    with pytest.raises(PoseFormatError, match="unknown pose format 'nope'"):
        read_pose(odd, fmt="nope")


def test_a_new_format_is_one_reader_and_one_validator(tmp_path):
    def read_npz(path, fps=None):
        data = np.load(path)
        return PoseData(position=data["position"], confidence=data["confidence"],
                        keypoints=["a"], individuals=["i"], fps=fps, source_software="npz")

    def validate_npz(path):
        if "position" not in np.load(path):
            raise PoseFormatError(f"{path}: no position array")

    try:
        register_format("test_npz", read_npz, validator=validate_npz, suffixes=(".npz",))
        with pytest.raises(ValueError, match="already registered"):
            register_format("test_npz", lambda p: None, validator=validate_npz)
        good = tmp_path / "p.npz"
        np.savez(good, position=np.ones((3, 1, 1, 2)), confidence=np.ones((3, 1, 1)))
        assert read_pose(good, fps=10).source_software == "npz"
        bad = tmp_path / "q.npz"
        np.savez(bad, other=np.ones(2))
        with pytest.raises(PoseFormatError, match=r"q\.npz: no position"):
            read_pose(bad)
    finally:
        _FORMATS.pop("test_npz", None)


def test_import_element_pose_stays_light():
    code = ("import element_pose, element_pose.io, element_pose.engines.base, sys;"
            "element_pose.io.available_formats();"
            "print([m for m in sys.modules if m.split('.')[0] in "
            "('deeplabcut', 'sleap_io', 'torch')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_wrong_hdf5_for_the_format_is_named(tmp_path):
    import sleap_io as sio

    skeleton = sio.Skeleton(["a", "b"])
    video = sio.Video(filename="v.mp4", open_backend=False)
    labels = sio.Labels([sio.LabeledFrame(video=video, frame_idx=0, instances=[
        sio.PredictedInstance.from_numpy(np.ones((2, 2)), skeleton=skeleton,
                                         point_scores=np.ones(2), score=1.0)])])
    path = tmp_path / "sleap.h5"
    sio.save_analysis_h5(labels, str(path))
    assert detect_format(path) == "sleap_analysis_h5"
    with pytest.raises(PoseFormatError, match=r"sleap\.h5 is not a DeepLabCut pose output"):
        read_pose(path, fmt="dlc_h5")


@pytest.mark.parametrize(("fmt", "error", "what", "key"), [
    ("dlc_h5", DLCFormatError, "DeepLabCut pose output", "df_with_missing"),
    ("sleap_slp", SleapFormatError, "SLEAP .slp file", "metadata"),
    ("sleap_analysis_h5", SleapFormatError, "SLEAP analysis .h5 file", "tracks"),
])
def test_hdf5_validators_share_their_checks_and_messages(tmp_path, fmt, error, what, key):
    """One check of HDF5 keys for every format: the same messages, naming file and key."""
    import h5py

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_group("something_else")
    with pytest.raises(error, match=rf"other\.h5 is not a {re.escape(what)}: it lacks "
                                    rf"\[.*'{key}'.*\] \(has \['something_else'\]\)"):
        validate_pose_file(other, fmt)
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(error, match=rf"text\.h5 is not an HDF5 file \({re.escape(what)} "):
        validate_pose_file(text, fmt)
    with pytest.raises(error, match=rf"{re.escape(what)} not found: .*missing\.h5"):
        get_format(fmt).validator(tmp_path / "missing.h5")
    assert require_hdf5_keys(other, what, ("something_else",), error) == ["something_else"]
