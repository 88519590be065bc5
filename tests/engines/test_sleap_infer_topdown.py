"""Top-down SLEAP inference (centroid + centered-instance pair) with tracking.

Our inference runs :func:`sleap_nn.inference.predict`, the function behind
``sleap-nn predict``: its positions equal that command's exactly.  ``sleap-nn track``
runs sleap-nn's legacy pipeline, whose top-down crop arithmetic differs in the last
float32 bits (measured: up to 4e-6 px); single-instance and bottom-up models give
equal positions with both commands (tests/engines/test_sleap_infer.py,
tests/test_pipeline_sleap.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from support.sleap_models import HEIGHT, WIDTH, cli_track, slp_arrays, train_tiny_model

from element_pose import sample
from element_pose.engines import get_engine

pytestmark = pytest.mark.slow
N_FRAMES = 30


@pytest.fixture(scope="module")
def topdown(tmp_path_factory):
    """A tiny top-down model set (two model folders in one folder) and a video."""
    root = tmp_path_factory.mktemp("sleap_topdown")
    centroid = train_tiny_model(root, head="centroid", n_individuals=2, epochs=10)
    instance = train_tiny_model(root, head="centered_instance", n_individuals=2, epochs=10)
    assert centroid.parent == instance.parent
    video = root / "two.mp4"
    sample.make_video(video, n_frames=N_FRAMES, width=WIDTH, height=HEIGHT, n_individuals=2,
                      seed=3)
    return {"set": centroid.parent, "runs": [centroid, instance], "video": video}


def test_topdown_tracks_equal_sleap_nn_predict(topdown, tmp_path):
    engine = get_engine("sleap")
    model = engine.describe_model(topdown["set"])
    assert model.multi_animal and model.options["model_type"] == "topdown"
    result = engine.infer(model, [topdown["video"]], tmp_path / "out", device="cpu",
                          max_tracks=2)
    assert result.native["tracked"] and result.native["heads"] == ["centroid",
                                                                   "centered_instance"]
    pose = engine.read_outputs(result.outputs[0], model)
    assert pose.individuals == ["track_0", "track_1"] and pose.n_frames == N_FRAMES
    ours = pose.position.astype(np.float32)
    for command, tolerance in (("predict", 0.0), ("track", 1e-5)):
        cli = cli_track(topdown["video"], topdown["runs"], tmp_path / f"{command}.slp",
                        "-t", "--max_tracks", "2", command=command)
        xy, score = slp_arrays(cli, N_FRAMES)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(xy))
        assert np.nanmax(np.abs(ours - xy)) <= tolerance, command
        if command == "predict":
            np.testing.assert_array_equal(pose.confidence.astype(np.float32), score)
