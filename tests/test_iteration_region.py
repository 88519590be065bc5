"""The refinement loop fixes what iteration 0 got wrong (issue 29's test): a generated
project whose labelled frames never show the animal under a lamp's glare (one region
of the arena, washed out; its labelled frames are all held out), so iteration 0 fails
there; the selection of its estimation of a session picks mostly frames in that
region; "relabelling" writes the generator's truth as napari-deeplabcut would
(``CollectedData_<scorer>.h5``); iteration 1, fine-tuned from iteration 0 on the
merged labels, scores clearly better on the same held-out frames (PCK@5 twice
iteration 0's; RMSE, over predicted points only, is no measure when iteration 0 finds
no point in the region) and on the session's glare frames once re-run.

SLEAP trains (a DeepLabCut-format project, tiny UNet, CPU, about a minute per
iteration); DeepLabCut runs the same loop in ``tests/test_iteration_e2e.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from element_pose import sample
from element_pose.core.labels import held_out
from element_pose.ops import iteration

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.relabel import make_session, relabel_as_napari

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("pipeline")]
WIDTH, HEIGHT = 128, 96
#: The right part of the arena, under a lamp (x0, y0, x1, y1).
GLARE = (80.0, 0.0, 128.0, 96.0)
PARAMS = {"engine": "sleap", "epochs": 6, "min_train_steps_per_epoch": 20, "filters": 16,
          "max_stride": 16, "learning_rate": 3e-3, "batch_size": 4, "device": "cpu",
          "seed": 0, "test_fraction": 0.2}


def _held_out_score(pipeline, model_name: str) -> dict:
    return (pipeline.model.ModelEvaluation.Accuracy
            & {"model_name": model_name, "split": "test", "body_part": ""}).fetch1()


def _within(pose, truth, frames: np.ndarray, px: float = 5.0) -> float:
    """Fraction of the points of ``frames`` estimated within ``px`` (missing: a miss)."""
    error = np.linalg.norm(pose.position[frames] - truth.position[frames], axis=-1)
    return float(np.mean(np.where(np.isfinite(error), error, np.inf) <= px))


def test_iteration_one_learns_the_region_iteration_zero_missed(pipeline, raw_root,
                                                               monkeypatch):
    monkeypatch.delenv("ELEMENT_POSE_DEVICE", raising=False)
    model, train, refine = pipeline.model, pipeline.train, pipeline.refine

    # iteration 0: labelled frames outside the glare; those inside are all held out
    config = sample.make_dlc_project(raw_root / "glare_loop", n_frames=90, n_labeled=16,
                                     width=WIDTH, height=HEIGHT, glare=GLARE,
                                     glare_labels="held_out")
    train.VideoSet.insert_from_project(980, config, engine="sleap")
    labels = train.VideoSet.label_set({"video_set_id": 980})
    inside = sample.in_region(labels.xy, GLARE)
    test = np.array(held_out(labels.frames, PARAMS["test_fraction"]))
    assert inside.sum() >= 5 and test[inside].all()
    paramset = train.TrainingParamSet.insert_new_params("glare loop 0", PARAMS)
    first = {"video_set_id": 980, "paramset_idx": paramset, "training_id": 0}
    train.TrainingTask.insert1({**first, "project_path": "glare_loop"})
    train.ModelTraining.populate(first, suppress_errors=False)
    train.ModelTraining.register_model(first, "glare_loop_0")

    # its estimation of a session under the same lamp: good outside, poor inside
    session = make_session(pipeline, "glare", "glarelab", "Glare Lab", "glarecam",
                           "open field, lamp")
    video = raw_root / "glare_loop_session" / "glarecam.mp4"
    truth = sample.make_video(video, n_frames=90, width=WIDTH, height=HEIGHT, seed=7,
                              glare=GLARE)
    glared = sample.in_region(truth.position, GLARE)
    recording = model.VideoRecording.insert_recording(session, 0, {"device": "glarecam"},
                                                      [video])
    model.RecordingInfo.populate(recording)
    old = model.PoseEstimationTask.insert_estimation_task(
        {**recording, "model_name": "glare_loop_0"}, "trigger", params={"device": "cpu"})
    model.PoseEstimation.populate(old, suppress_errors=False)
    pose = model.PoseEstimation.fetch_pose(old)
    quality = (_within(pose, truth, ~glared), _within(pose, truth, glared))
    assert quality[0] > 0.6 and quality[1] < 0.3, quality  # measured: 0.74, 0.09

    # the frames to relabel are mostly in the glare; relabelled; imported
    outliers = refine.OutlierParamSet.insert_new_params("glare loop", {"criteria": [
        {"criterion": "uncertain", "p_bound": 0.5, "missing": True}],
        "frames_per_video": 12, "min_gap": 1})
    selection = refine.FrameSelection.insert_selection(old, outliers, layout="deeplabcut")
    refine.SelectedFrames.populate(selection)
    chosen = (refine.SelectedFrames.Frame & selection).to_arrays("frame_index")
    assert len(chosen) == 12 and glared[chosen].mean() >= 0.75, (chosen, glared[chosen])
    refine.LabellingSet.populate(selection, suppress_errors=False)
    corrected = relabel_as_napari(pipeline, selection, truth)
    version = iteration.import_corrections(980, corrected, imported_by="glare")
    assert len(train.VideoSetVersion.Frame & version & {"change": "added"}) == 12

    # iteration 1, fine-tuned from iteration 0: clearly better on the same held-out frames
    second = iteration.next_iteration(first)
    train.ModelTraining.populate(second, suppress_errors=False)
    train.ModelTraining.register_model(second, "glare_loop_1")
    model.ModelEvaluation.populate([{"model_name": "glare_loop_0"},
                                    {"model_name": "glare_loop_1"}], suppress_errors=False)
    before, after = (_held_out_score(pipeline, m) for m in ("glare_loop_0", "glare_loop_1"))
    # the same held-out frames; iteration 0 found no point in the glare (SLEAP: below
    # its peak threshold), so its RMSE (over predicted points) covers the frames outside
    # only: PCK (a point not found is a miss) and the points found say what improved.
    # Measured: PCK@5 0.35 -> 0.70, points found 21 -> 49 of 60.
    assert after["n_labelled"] == before["n_labelled"]
    assert after["pck_5"] > before["pck_5"] + 0.25, (before, after)
    assert after["n_predicted"] > before["n_predicted"] + 15, (before, after)
    new = iteration.rerun_superseded(session)
    again = model.PoseEstimation.fetch_pose(new[0])
    assert _within(again, truth, glared) > quality[1] + 0.3, _within(again, truth, glared)
