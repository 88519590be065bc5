"""The DeepLabCut adapter's train/evaluate/infer, run for real on a tiny CPU model.

The conformance test covers describe/find/read for every engine; this test covers the
capabilities only DeepLabCut declares, through the neutral results.
"""

import numpy as np
import pytest
from tiny_model import BODYPARTS, TINY_PARAMS  # same folder

from element_pose import sample
from element_pose.engines.base import get_engine


@pytest.mark.slow
def test_train_evaluate_infer_through_the_contract(tmp_path):
    engine = get_engine("deeplabcut")
    assert {"train", "evaluate", "infer"} <= engine.capabilities
    source = sample.make_dlc_project(tmp_path / "user", bodyparts=BODYPARTS, n_frames=60,
                                     n_labeled=24, width=160, height=120)
    trained = engine.train(source, tmp_path / "work", dict(TINY_PARAMS), device="cpu")
    model = trained.model
    assert model.engine == "deeplabcut" and model.keypoints == list(BODYPARTS)
    assert model.scorer.startswith("DLC_") and trained.last_snapshot in trained.snapshots
    assert trained.device == "cpu" and "deeplabcut" in trained.software
    assert trained.learning_stats and all(
        isinstance(v, np.ndarray) for v in trained.learning_stats.values())

    evaluation = engine.evaluate(model, device="cpu")
    assert set(evaluation.metrics) >= {"train_rmse", "test_rmse", "test_map"}
    assert all(f.is_file() for f in evaluation.files)
    assert set(evaluation.per_keypoint) <= set(BODYPARTS)

    video = source.parent / "videos" / "demo_video0.mp4"
    inference = engine.infer(model, [video], tmp_path / "out", device="cpu")
    assert inference.scorer == model.scorer and inference.frames_per_second > 0
    found = engine.find_outputs(video, tmp_path / "out", model)
    assert found.pose_files == inference.outputs[0].pose_files
    pose = engine.read_outputs(found, model)
    assert pose.n_frames == 60 and pose.keypoints == list(BODYPARTS)
    assert pose.fps == pytest.approx(inference.outputs[0].fps)
