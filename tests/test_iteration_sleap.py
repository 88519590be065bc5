"""The refinement loop for a SLEAP lineage (issue 29): a VideoSet of SLEAP labels
trains iteration 0; corrections as a ``.slp`` of user instances (frames of another
video added, one frame of the set moved) become a VideoSet version written as one
``.pkg.slp``; ``next_iteration`` fine-tunes iteration 1 from iteration 0's checkpoint
(sleap-nn's pretrained backbone and head weights), the added frames trained on and
never held out; the lineage and the superseded estimation follow.

CPU, tiny generated labels (64 x 48 px), seconds of sleap-nn training.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest
import sleap_io as sio
from support.sleap_models import HEIGHT, WIDTH, make_labels

from element_pose import sample
from element_pose.ops import iteration, versions

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("pipeline")]
QUICK = {"engine": "sleap", "epochs": 4, "min_train_steps_per_epoch": 10, "filters": 16,
         "max_stride": 16, "learning_rate": 3e-3, "batch_size": 4, "device": "cpu",
         "seed": 0}


def _corrections(root: Path, parent_frame: int, truth) -> Path:
    """A ``.slp`` of user instances: frames 4, 8, ... 28 of another video (added) and
    ``parent_frame`` of the set's video moved by 2 px (changed)."""
    extra = root / "extra.mp4"
    other = sample.make_video(extra, n_frames=30, width=WIDTH, height=HEIGHT, seed=5)
    skeleton = sio.Skeleton(nodes=list(other.keypoints),
                            edges=[list(e) for e in other.skeleton])
    frames = []
    video = sio.load_video(str(extra))
    for f in range(4, 30, 4):
        frames.append(sio.LabeledFrame(video=video, frame_idx=f, instances=[
            sio.Instance.from_numpy(np.asarray(other.position[f, 0], float),
                                    skeleton=skeleton)]))
    source = sio.load_video(str(root / "train.mp4"))
    moved = np.asarray(truth.position[parent_frame, 0], float) + 2.0
    frames.append(sio.LabeledFrame(video=source, frame_idx=parent_frame, instances=[
        sio.Instance.from_numpy(moved, skeleton=skeleton)]))
    path = root / "corrected.slp"
    sio.Labels(labeled_frames=frames, videos=[video, source], skeletons=[skeleton]).save(
        str(path))
    return path


def _weights(checkpoint: Path) -> dict[str, np.ndarray]:
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    return {k: v.float().numpy() for k, v in state.items()
            if v.is_floating_point() and "running_" not in k}  # batch norm statistics move


def _first_loss(row: dict) -> float:
    stats = row["learning_stats"]
    return float(stats["train_loss"][0])


def test_a_sleap_lineage_fine_tunes_from_its_previous_iteration(pipeline, raw_root,
                                                                  monkeypatch):
    monkeypatch.delenv("ELEMENT_POSE_DEVICE", raising=False)
    train, model = pipeline.train, pipeline.model
    root = raw_root / "sleap_loop"
    slp = make_labels(root, n_frames=40, step=2)
    truth = sample.ground_truth(40, width=WIDTH, height=HEIGHT)
    train.VideoSet.insert_from_slp(970, slp)
    assert iteration.set_project(970) == slp.parent

    idx = train.TrainingParamSet.insert_new_params("sleap loop 0", QUICK)
    first = {"video_set_id": 970, "paramset_idx": idx, "training_id": 0}
    train.TrainingTask.insert1({**first, "project_path": "sleap_loop"})
    train.ModelTraining.populate(first, suppress_errors=False)

    # corrections in: a version written as one .pkg.slp, same frame ids
    version = iteration.import_corrections(970, _corrections(root, 6, truth),
                                           imported_by="loop")
    frames = {r["frame_id"]: r["change"]
              for r in (train.VideoSetVersion.Frame & version).to_dicts()}
    added = sorted(f for f, c in frames.items() if c == "added")
    assert added == [f"labeled-data/extra/img{f:06d}.png" for f in range(4, 30, 4)]
    assert [f for f, c in frames.items() if c == "changed"] == ["train/img000006.png"]
    files = list((train.VideoSet.File & version).to_arrays("file_path"))
    assert len(files) == 1 and files[0].endswith(versions.VERSION_FILE)
    merged = train.VideoSet.label_set(version)
    parent = train.VideoSet.label_set({"video_set_id": 970})
    assert merged.frames == [*parent.frames, *added]
    np.testing.assert_allclose(merged.xy[merged.frames.index("train/img000006.png"), 0],
                               truth.position[6, 0] + 2.0, atol=1e-3)

    # iteration 1 fine-tuned from iteration 0's checkpoint: with a negligible learning
    # rate its weights are iteration 0's (backbone and head), far from a fresh start's
    second = iteration.next_iteration(first, params={"epochs": 1, "learning_rate": 1e-8})
    assert second["video_set_id"] == version["video_set_id"]
    train.ModelTraining.populate(second, suppress_errors=False)
    rows = [(train.ModelTraining & k).fetch1() for k in (first, second)]
    best = [model.roots().processed((train.ModelTraining.Snapshot & k
                                     & {"snapshot_name": "best"}).fetch1("snapshot_path"))
            for k in (first, second)]
    config = rows[1]["training_config"]["single_instance"]["model_config"]
    assert config["pretrained_backbone_weights"] == config["pretrained_head_weights"]
    assert best[0].as_posix().endswith(config["pretrained_head_weights"])
    weights = [_weights(b) for b in best]
    assert weights[0].keys() == weights[1].keys() and any("head" in k for k in weights[0])
    for name, tensor in weights[0].items():
        assert np.abs(weights[1][name] - tensor).max() < 1e-4, name
    assert _first_loss(rows[1]) < _first_loss(rows[0]), (rows[0]["learning_stats"],
                                                        rows[1]["learning_stats"])
    # the added frames are trained on, never held out; the held-out frames are the same
    tests = [set(r["engine_details"]["test_frames"]) for r in rows]
    assert tests[0] and tests[0] == tests[1] and not tests[1] & set(added)
    trained_on = sio.load_slp(model.roots().processed(
        rows[1]["engine_details"]["labels_file"])).labeled_frames
    assert len(trained_on) == len(merged.frames) - len(tests[1])

    # the lineage, and iteration 0's estimation superseded by iteration 1
    train.ModelTraining.register_model(second, "sleap_loop_1")
    assert [(r["iteration"], r["initial_model"]) for r in iteration.lineage(second)] == [
        (0, None), (1, (train.TrainedModel & first).fetch1("model_name"))]
    old_model = (train.TrainedModel & first).fetch1("model_name")
    session = _session(pipeline)
    video = raw_root / "sleap_loop_session" / "cam.mp4"
    sample.make_video(video, n_frames=12, width=WIDTH, height=HEIGHT, seed=9)
    recording = model.VideoRecording.insert_recording(session, 0, {"device": "sloopcam"},
                                                      [video])
    model.RecordingInfo.populate(recording)
    old = model.PoseEstimationTask.insert_estimation_task(
        {**recording, "model_name": old_model}, "trigger", params={"device": "cpu"})
    model.PoseEstimation.populate(old, suppress_errors=False)
    listed = iteration.superseded_estimations(session)
    assert [(r["model_name"], r["newest_model"], r["rerun"]) for r in listed] == [
        (old_model, "sleap_loop_1", False)]
    new = iteration.rerun_superseded(session)
    assert len(new) == 1 and model.PoseEstimation & new[0]
    assert iteration.superseded_estimations(session)[0]["rerun"]


def _session(pipeline) -> dict:
    pipeline.lab.Lab.insert1({"lab": "sloop", "lab_name": "Loop Lab", "institution": "Uni",
                              "time_zone": "Europe/Zurich"}, skip_duplicates=True)
    pipeline.lab.Device.insert1({"device": "sloopcam", "description": "top view"},
                                skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": "sloop", "sex": "F",
                                      "species": "Mus musculus",
                                      "subject_birth_date": datetime.date(2025, 9, 1)})
    pipeline.subject.Subject.Lab.insert1({"subject": "sloop", "lab": "sloop"})
    key = {"subject": "sloop", "session_id": 1}
    pipeline.session.Session.insert1({**key, "session_datetime":
                                      datetime.datetime(2026, 3, 1, 9, 30),
                                      "session_description": "open field"})
    return key
