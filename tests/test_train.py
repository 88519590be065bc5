"""The train schema's bookkeeping (training itself is tested with the engine)."""

import pytest

from element_pose import sample

pytestmark = pytest.mark.usefixtures("pipeline")


def test_params_are_keyed_by_hash(pipeline, unique):
    train = pipeline.train
    params = {"net_type": "resnet_50", "epochs": 3, "seed": int(unique, 16)}
    idx = train.TrainingParamSet.insert_new_params("first", params)
    assert train.TrainingParamSet.insert_new_params("again", dict(reversed(params.items()))) == idx
    with pytest.raises(train.DuplicateParamsError, match=f"paramset_idx={idx}"):
        train.TrainingParamSet.insert_new_params("copy", params, paramset_idx=idx + 100)
    assert len(train.TrainingParamSet & {"paramset_desc": "copy"}) == 0


def test_video_set_from_project(pipeline, raw_root, unique):
    train = pipeline.train
    config = sample.make_dlc_project(raw_root / f"vs_{unique}", n_frames=10, n_labeled=3)
    set_id = int(unique, 16) % 100000
    key = train.VideoSet.insert_from_project(set_id, config)
    files = (train.VideoSet.File & key).to_arrays("file_path")
    assert any(f.endswith(".h5") and "CollectedData_" in f for f in files)
    assert sum(f.endswith(".png") for f in files) == 3
    assert any(f.endswith(".mp4") for f in files)
    empty = raw_root / f"empty_{unique}"
    empty.mkdir()
    (empty / "config.yaml").write_text(config.read_text())
    with pytest.raises(ValueError, match="no labelled frames"):
        train.VideoSet.insert_from_project(set_id + 1, empty / "config.yaml")
    assert not (train.VideoSet & {"video_set_id": set_id + 1})
