"""The lab's loop end to end with real DeepLabCut (issue 29 item 7): iteration 0 trained
on a few labelled frames, run on a session; outlier frames of that estimation selected
and written for relabelling (``refine``); the generator's truth saved into the
labelling set as napari-deeplabcut saves it; imported into a new VideoSet version;
iteration 1 fine-tuned from iteration 0 on the merged labels; its error on the same
held-out frames lower; iteration 0's estimation listed as superseded, re-run with
iteration 1's model, and the published file replaced.

CPU, offline, tiny generated data; slow (two trainings, two inferences, a DANDI sync
against the local test archive).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from element_pose import sample
from element_pose.ops import dandi_sync, iteration
from element_pose.ops.demo import QUICK_TRAINING_PARAMS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.dandi_server import LocalDandiArchive
from support.relabel import make_session, relabel_as_napari

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("pipeline")]
PARAMS = {**QUICK_TRAINING_PARAMS, "device": "cpu"}
API_KEY = "iteration-e2e-key-0123456789"


def _test_rmse(pipeline, model_name: str) -> float:
    row = (pipeline.model.ModelEvaluation.Accuracy
           & {"model_name": model_name, "split": "test"}).fetch1()
    return float(row["rmse"])


def test_the_loop_end_to_end(pipeline, raw_root, tmp_path, monkeypatch):
    monkeypatch.delenv("ELEMENT_POSE_DEVICE", raising=False)
    monkeypatch.setenv("DANDI_NO_ET", "1")
    monkeypatch.setenv("DANDI_CACHE", "ignore")
    model, train, refine = pipeline.model, pipeline.train, pipeline.refine

    # iteration 0: a few labelled frames
    config = sample.make_dlc_project(raw_root / "e2e_loop", n_frames=60, n_labeled=12)
    train.VideoSet.insert_from_project(960, config)
    paramset = train.TrainingParamSet.insert_new_params("e2e loop 0", PARAMS)
    first = {"video_set_id": 960, "paramset_idx": paramset, "training_id": 0}
    train.TrainingTask.insert1({**first, "project_path": "e2e_loop"})
    train.ModelTraining.populate(first, reserve_jobs=True, suppress_errors=True)
    assert train.ModelTraining & first, train.ModelTraining.jobs.errors.to_dicts()
    train.ModelTraining.register_model(first, "e2e_loop_0")

    # its estimation of a session, published
    session = make_session(pipeline, "loope2e", "e2elab", "Loop Lab", "cam0")
    video = raw_root / "e2e_loop_session" / "cam0.mp4"
    truth = sample.make_video(video, n_frames=90, seed=7)
    recording = model.VideoRecording.insert_recording(session, 0, {"device": "cam0"}, [video])
    model.RecordingInfo.populate(recording)
    old = model.PoseEstimationTask.insert_estimation_task(
        {**recording, "model_name": "e2e_loop_0"}, "trigger",
        params={"batch_size": 8, "device": "cpu"})
    model.PoseEstimation.populate(old, reserve_jobs=True, suppress_errors=True)
    assert model.PoseEstimation & old, model.PoseEstimation.jobs.errors.to_dicts()

    # frames to relabel, relabelled, imported
    outliers = refine.OutlierParamSet.insert_new_params("e2e loop", {"criteria": [
        {"criterion": "fitting", "threshold": 3.0}, {"criterion": "kmeans", "n_clusters": 12}],
        "frames_per_video": 16, "min_gap": 2})
    selection = refine.FrameSelection.insert_selection(old, outliers, description="round 1")
    refine.SelectedFrames.populate(selection)
    refine.LabellingSet.populate(selection)
    assert refine.LabellingSet & selection, refine.LabellingSet.jobs.errors.to_dicts()
    corrected = relabel_as_napari(pipeline, selection, truth)
    version = iteration.import_corrections(960, corrected, imported_by="e2e")
    n_added = len(train.VideoSetVersion.Frame & version & {"change": "added"})
    assert n_added == (refine.SelectedFrames & selection).fetch1("n_frames") >= 8

    # iteration 1, fine-tuned on the merged labels, scored on the same held-out frames
    second = iteration.next_iteration(first, params={"epochs": 20})
    train.ModelTraining.populate(second, reserve_jobs=True, suppress_errors=True)
    assert train.ModelTraining & second, train.ModelTraining.jobs.errors.to_dicts()
    train.ModelTraining.register_model(second, "e2e_loop_1")
    model.ModelEvaluation.populate([{"model_name": "e2e_loop_0"}, {"model_name": "e2e_loop_1"}],
                                   reserve_jobs=True, suppress_errors=True)
    assert not model.ModelEvaluation.jobs.errors.to_dicts()
    before, after = _test_rmse(pipeline, "e2e_loop_0"), _test_rmse(pipeline, "e2e_loop_1")
    assert after < 0.85 * before, (before, after)  # measured: 16.0 -> 11.7 px
    scores = iteration.lineage_scores(second)
    assert sorted(scores["iteration"].unique()) == [0, 1]

    # iteration 0's estimation superseded, re-run, re-published
    dandiset = tmp_path / "000123"
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        sync = {"instance": archive.api_url, "api_key": API_KEY}
        assert dandi_sync.sync("000123", dandiset, query=session, **sync).ok
        nwb_rel = "sub-loope2e/sub-loope2e_ses-1_behavior+image.nwb"
        published = archive.assets()[nwb_rel].asset_id
        listed = iteration.superseded_estimations(session)
        assert [(r["model_name"], r["newest_model"]) for r in listed] == [
            ("e2e_loop_0", "e2e_loop_1")]
        new = iteration.rerun_superseded(session)
        errors = [np.nanmedian(np.linalg.norm(
            model.PoseEstimation.fetch_pose(k).position - truth.position, axis=-1))
            for k in (old, new[0])]
        assert errors[1] < errors[0], errors  # measured: 12.0 -> 7.0 px median
        report = dandi_sync.sync("000123", dandiset,
                                 query=iteration.current_estimations(session), **sync)
        assert report.ok and nwb_rel in report.uploaded
        assert archive.assets()[nwb_rel].asset_id != published
