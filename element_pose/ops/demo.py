"""The README's main job: the whole pipeline on generated sample data.

:func:`run_demo` generates a tiny DeepLabCut project and a session video, fills
lab/subject/session, registers the recording and a model, and estimates poses:

* ``mode="load"``: ingest DeepLabCut-format outputs written next to the video
  (what a lab with existing DeepLabCut results does);
* ``mode="full"``: train a small network on the labelled frames (CPU, offline),
  evaluate it, register it and run inference on the session video, all through
  ``populate()``.

It returns a per body part summary; the CLI prints it.  Re-running is safe: rows
that exist are kept.
"""

from __future__ import annotations

import datetime
import logging
import os
from pathlib import Path

import numpy as np

__all__ = [
    "DEMO_TRAINING_PARAMS",
    "SESSION_TIME",
    "SUBJECT",
    "default_demo_root",
    "make_sample_data",
    "prepare_environment",
    "run_demo",
]

log = logging.getLogger(__name__)

SUBJECT = {"subject": "demo-mouse"}
SESSION_TIME = datetime.datetime(2026, 1, 1, 12, 0, 0)
#: Training that learns the synthetic markers on a CPU in a minute or two, offline.
DEMO_TRAINING_PARAMS = {
    "net_type": "cspnext_s",
    "weight_init": "random",  # offline: no hub download
    "train_fraction": 0.8,
    "epochs": 20,
    "batch_size": 8,
    "save_epochs": 10,
    "eval_interval": 5,
    # test mAP stays 0 for such small objects early on; pick the best by test RMSE
    "key_metric": "test.rmse",
    "key_metric_asc": False,
    "learning_rate": 2e-3,
    "scheduler": False,
    # synthetic discs need no augmentation, and learn much faster without it
    "augmentation": {"affine": None, "motion_blur": False, "gaussian_noise": False},
    "seed": 0,
}


def default_demo_root() -> Path:
    """Where demo data go: the first ``root_dirs`` entry, else ``<home>/demo``."""
    from element_pose.db import embedded
    from element_pose.db.config import current_settings

    roots = current_settings().root_dirs
    return roots[0] if roots else embedded.home() / "demo"


def prepare_environment(root: Path | None = None) -> Path:
    """Point element-pose's root directories at the demo folder (before the pipeline loads)."""
    root = (root or default_demo_root()).resolve()
    root.mkdir(parents=True, exist_ok=True)
    from element_pose.db.config import current_settings

    settings = current_settings()
    if not settings.root_dirs:
        os.environ["ELEMENT_POSE_ROOT_DIRS"] = str(root)
    if settings.processed_dir is None:
        os.environ["ELEMENT_POSE_PROCESSED_DIR"] = str(root / "processed")
    return root


def make_sample_data(root: Path, processed: Path, n_frames: int = 300) -> dict[str, Path]:
    """Generate the demo project, session video and load-mode outputs (once).

    Load-mode outputs go under the processed root, where task output folders live.
    """
    from element_pose import sample

    project = root / "dlc_project"
    config = project / "config.yaml"
    if not config.is_file():
        log.info("generating a sample DeepLabCut project in %s", project)
        sample.make_dlc_project(project, task="demo", n_frames=120, n_labeled=24, seed=1)
    video = root / "sessions" / "demo-mouse" / "session1" / "camera0.mp4"
    outputs = processed / "load_mode_outputs" / "demo-mouse_session1"
    if not video.is_file():
        log.info("generating a sample session video %s", video)
        sample.make_video(video, n_frames=n_frames, fps=30.0, seed=7)
    if not any(outputs.glob("*.h5")):
        truth = sample.ground_truth(n_frames=n_frames, fps=30.0, seed=7)
        sample.make_dlc_output(truth, video, outputs, seed=7)
    return {"config": config, "video": video, "outputs": outputs}


def run_demo(mode: str = "load", root: Path | None = None, n_frames: int = 300):
    """Run the pipeline end to end and return a per body part summary DataFrame.

    Args:
        mode: ``"load"`` (ingest outputs) or ``"full"`` (train, evaluate, infer).
        root: Demo data folder (default :func:`default_demo_root`).
        n_frames: Frames of the generated session video.
    """
    import pandas as pd

    if mode not in ("load", "full"):
        raise ValueError(f"mode must be 'load' or 'full', not {mode!r}")
    root = prepare_environment(root)
    from element_pose.core.paths import default_processed_dir

    processed = default_processed_dir()
    files = make_sample_data(root, processed, n_frames)

    from workflow.pipeline import lab, model, session, subject, train

    lab.Lab.insert1({"lab": "demo", "lab_name": "Demo lab", "institution": "element-pose"},
                    skip_duplicates=True)
    lab.Device.insert1({"device": "camera0", "description": "top camera, 160x120, 30 fps"},
                       skip_duplicates=True)
    subject.Subject.insert1({**SUBJECT, "sex": "F", "species": "Mus musculus",
                             "subject_birth_date": datetime.date(2025, 10, 1)},
                            skip_duplicates=True)
    session_key = {**SUBJECT, "session_id": 1}
    session.Session.insert1({**session_key, "session_datetime": SESSION_TIME,
                             "session_description": "open field"},
                            skip_duplicates=True)
    recording = model.VideoRecording.insert_recording(
        session_key, 0, {"device": "camera0"}, [files["video"]], "demo recording",
        skip_duplicates=True)
    model.RecordingInfo.populate(recording)

    if mode == "load":
        model_key = model.Model.insert_new_model(
            "demo_load", files["config"], shuffle=1, model_description="demo (load mode)",
            skip_duplicates=True)
        task = model.PoseEstimationTask.insert_estimation_task(
            {**recording, **model_key}, "load", output_dir=files["outputs"],
            skip_duplicates=True)
    else:
        model_key, task = _train_and_infer(train, model, files, recording)

    model.PoseEstimation.populate(task, reserve_jobs=True)
    pose = model.PoseEstimation.fetch_pose(task)
    return pd.DataFrame({
        "body_part": pose.keypoints,
        "frames": [int(np.isfinite(pose.position[:, 0, k, 0]).sum())
                   for k in range(len(pose.keypoints))],
        "mean_likelihood": np.nanmean(pose.confidence[:, 0, :], axis=0).round(3),
    })


def _train_and_infer(train, model, files, recording):
    video_set = {"video_set_id": 0}
    if not (train.VideoSet & video_set):
        train.VideoSet.insert_from_project(0, files["config"], "demo labelled frames")
    paramset_idx = train.TrainingParamSet.insert_new_params("demo: tiny CPU training",
                                                            DEMO_TRAINING_PARAMS)
    project_rel = model.roots().relative(files["config"].parent)
    task = {**video_set, "paramset_idx": paramset_idx, "training_id": 0}
    train.TrainingTask.insert1({**task, "project_path": project_rel}, skip_duplicates=True)
    train.ModelTraining.populate(task, reserve_jobs=True)
    if not (train.ModelTraining & task):
        raise RuntimeError(f"training failed: {train.ModelTraining.jobs.errors.to_dicts()}")
    model_key = {"model_name": "demo_trained"}
    if not (model.Model & model_key):
        train.ModelTraining.register_model(task, "demo_trained")
    model.ModelEvaluation.populate(model_key)
    estimation = model.PoseEstimationTask.insert_estimation_task(
        {**recording, **model_key}, "trigger", skip_duplicates=True)
    return model_key, estimation
