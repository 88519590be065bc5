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
    "DEMO_PROJECT",
    "DEMO_TRAINING_PARAMS",
    "QUICK_TRAINING_PARAMS",
    "SESSION_TIME",
    "SUBJECT",
    "default_demo_root",
    "make_sample_data",
    "prepare_environment",
    "run_demo",
]

log = logging.getLogger(__name__)

SUBJECT = {"subject": "demo-mouse"}
DEMO_VIDEO_SET = 0
DEMO_VIDEO_SET_DESCRIPTION = "demo labelled frames"
SESSION_TIME = datetime.datetime(2026, 1, 1, 12, 0, 0)
#: Quick training (about 15 s on 2 CPU cores, offline): a model that runs, not an
#: accurate one (it misses the demo's markers by a median 11-16 px).  For tests and
#: examples that need *a* trained model; the demo uses :data:`DEMO_TRAINING_PARAMS`.
QUICK_TRAINING_PARAMS = {
    "net_type": "cspnext_s",
    "weight_init": "random",  # offline: no hub download
    "train_fraction": 0.8,
    "epochs": 20,
    "batch_size": 8,
    "save_epochs": 10,
    "eval_interval": 5,
    # test mAP stays 0 for such small objects early on; pick the best by test RMSE
    # (DeepLabCut's key_metric_asc: True when larger is better; RMSE: lower is better)
    "key_metric": "test.rmse",
    "key_metric_asc": False,
    "learning_rate": 2e-3,
    "scheduler": False,
    # synthetic discs need no augmentation, and learn much faster without it
    "augmentation": {"affine": None, "motion_blur": False, "gaussian_noise": False},
    "seed": 0,
}
#: Labelled data of the demo project (:func:`make_sample_data`): videos, frames per
#: video and labelled frames per video.
DEMO_PROJECT = {"n_videos": 4, "n_frames": 200, "n_labeled": 50}
#: The demo's training: 200 labelled frames (:data:`DEMO_PROJECT`), 40 epochs on 96x96
#: crops, learning rate 2e-3 to 1e-5 (cosine), best snapshot by test RMSE.  Measured
#: (bench/README.md, "Demo accuracy"): median error 2.1 px on the session video,
#: ~4.5 CPU minutes for the whole demo on one thread (~2-3 min on 2 idle cores).
DEMO_TRAINING_PARAMS = {
    **QUICK_TRAINING_PARAMS,
    # element-pose's held-out split (a hash of each frame's id, about 20%): the same
    # frames every engine holds out, whatever ran before (DeepLabCut's own split draws
    # from numpy's global random state)
    "train_fraction": 0.8,
    "epochs": 40,
    "save_epochs": 40,
    "eval_interval": 10,
    "crop_size": [96, 96],
    "scheduler": {"type": "CosineAnnealingLR", "params": {"T_max": 40, "eta_min": 1e-5}},
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

    paths = _demo_paths(root, processed)
    project = paths["project"]
    config = project / "config.yaml"
    if not config.is_file():
        log.info("generating a sample DeepLabCut project in %s", project)
        sample.make_dlc_project(project, task="demo", seed=1, **DEMO_PROJECT)
    video, outputs = paths["video"], paths["outputs"]
    if not video.is_file():
        log.info("generating a sample session video %s", video)
        sample.make_video(video, n_frames=n_frames, fps=30.0, seed=7)
    if not any(outputs.glob("*.h5")):
        truth = sample.ground_truth(n_frames=n_frames, fps=30.0, seed=7)
        sample.make_dlc_output(truth, video, outputs, seed=7)
    return {"config": config, "video": video, "outputs": outputs}


def run_demo(mode: str = "load", root: Path | None = None, n_frames: int = 300,
             fresh: bool = False):
    """Run the pipeline end to end and return a per body part summary DataFrame.

    The summary has, per body part, the frames with a position, the mean
    likelihood and the accuracy against the generator's known positions
    (:func:`element_pose.sample.accuracy`: ``median_px``, ``within_2px`` and
    ``within_5px`` in percent).  ``summary.attrs`` holds ``"accuracy"`` (the same
    over all body parts, a dict) and ``"reused"`` (one sentence per earlier
    result this run reused instead of making it again; also logged).

    Args:
        mode: ``"load"`` (ingest outputs) or ``"full"`` (train, evaluate, infer).
        root: Demo data folder (default :func:`default_demo_root`).
        n_frames: Frames of the generated session video.
        fresh: Delete the demo's earlier results first (its rows in the database, its
            generated data and load-mode outputs) and make everything again.
    """
    import pandas as pd

    from element_pose import sample

    if mode not in ("load", "full"):
        raise ValueError(f"mode must be 'load' or 'full', not {mode!r}")
    root = prepare_environment(root)
    from element_pose.core.paths import default_processed_dir

    processed = default_processed_dir()

    from workflow.pipeline import lab, model, session, subject, train

    session_key = {**SUBJECT, "session_id": 1}
    stale = _stale_project(root, processed)
    if stale and not fresh:
        log.warning("%s: deleting the demo's earlier results and making everything again",
                    stale)
    if fresh or stale:
        _delete_demo_results(root, processed, session, model, train, session_key)
    reused: list[str] = []
    reused += _reused_sample_data(root, processed, n_frames)
    files = make_sample_data(root, processed, n_frames)

    lab.Lab.insert1({"lab": "demo", "lab_name": "Demo lab", "institution": "element-pose"},
                    skip_duplicates=True)
    lab.Device.insert1({"device": "camera0", "description": "top camera, 160x120, 30 fps"},
                       skip_duplicates=True)
    subject.Subject.insert1({**SUBJECT, "sex": "F", "species": "Mus musculus",
                             "subject_birth_date": datetime.date(2025, 10, 1)},
                            skip_duplicates=True)
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
        model_key, task, notes = _train_and_infer(train, model, files, recording)
        reused += notes

    if model.PoseEstimation & task:
        when = (model.PoseEstimation & task).fetch1("pose_estimation_time")
        reused.append(f"reusing the pose estimates of {_when(when)} "
                      f"(model {model_key['model_name']!r})")
    model.PoseEstimation.populate(task, reserve_jobs=True)
    pose = model.PoseEstimation.fetch_pose(task)
    truth = sample.ground_truth(n_frames=n_frames, fps=30.0, seed=7)
    scores = sample.accuracy(pose, truth).set_index("body_part")
    summary = pd.DataFrame({
        "body_part": pose.keypoints,
        "frames": [int(np.isfinite(pose.position[:, 0, k, 0]).sum())
                   for k in range(len(pose.keypoints))],
        "mean_likelihood": np.nanmean(pose.confidence[:, 0, :], axis=0).round(3),
    })
    for column in ("median_px", "within_2px", "within_5px"):
        summary[column] = [round(float(scores.loc[k, column]), 2) if k in scores.index
                           else float("nan") for k in pose.keypoints]
    overall = {k: float(v) for k, v in scores.loc["all"].items()}
    for note in reused:
        log.info("%s; pass fresh=True (element-pose demo --fresh) to make it again", note)
    log.info("demo accuracy against the known positions: median %.2f px, %.1f%% within "
             "2 px, %.1f%% within 5 px", overall["median_px"], overall["within_2px"],
             overall["within_5px"])
    summary.attrs.update(accuracy=overall, reused=reused, mode=mode)
    return summary


def _when(value) -> str:
    """A date and time to the minute, for messages."""
    if isinstance(value, (int, float)):
        value = datetime.datetime.fromtimestamp(value)
    return value.strftime("%Y-%m-%d %H:%M")


def _demo_paths(root: Path, processed: Path) -> dict[str, Path]:
    return {"project": root / "dlc_project",
            "video": root / "sessions" / "demo-mouse" / "session1" / "camera0.mp4",
            "outputs": processed / "load_mode_outputs" / "demo-mouse_session1"}


def _reused_sample_data(root: Path, processed: Path, n_frames: int) -> list[str]:
    """Sentences naming the generated files that exist already (and will be kept)."""
    paths = _demo_paths(root, processed)
    notes = []
    config = paths["project"] / "config.yaml"
    if config.is_file():
        notes.append(f"reusing the sample DeepLabCut project generated "
                     f"{_when(config.stat().st_mtime)} in {paths['project']}")
    video = paths["video"]
    if video.is_file():
        notes.append(f"reusing the session video generated {_when(video.stat().st_mtime)} "
                     f"({video}; a different number of frames does not remake it)")
    return notes


def _stale_project(root: Path, processed: Path) -> str:
    """Why the generated project is not the one :data:`DEMO_PROJECT` describes ('' if it is).

    An older element-pose generated a smaller project; training it with
    :data:`DEMO_TRAINING_PARAMS` would train on other frames than this version's.
    """
    project = _demo_paths(root, processed)["project"]
    if not (project / "config.yaml").is_file():
        return ""
    found = len(list((project / "labeled-data").glob("*/img*.png")))
    expected = DEMO_PROJECT["n_videos"] * DEMO_PROJECT["n_labeled"]
    if found != expected:
        return (f"the sample project {project} has {found} labelled frames, not the "
                f"{expected} this version of the demo generates")
    return ""


def _delete_demo_results(root, processed, session, model, train, session_key) -> None:
    """Delete what earlier demo runs made: database rows and generated files."""
    import shutil

    paths = _demo_paths(root, processed)
    queries = [session.Session & session_key]
    names = [n for n in model.Model.to_arrays("model_name")
             if n == "demo_load" or str(n).startswith("demo_trained")]
    if names:
        queries.append(model.Model & [{"model_name": n} for n in names])
    demo_sets = [k for k in (train.VideoSet & {"video_set_id": DEMO_VIDEO_SET}).to_dicts()
                 if k["video_set_description"] == DEMO_VIDEO_SET_DESCRIPTION]
    if demo_sets:
        queries.append(train.VideoSet & {"video_set_id": DEMO_VIDEO_SET})
    for query in queries:
        if query:
            log.info("--fresh: deleting %s and what depends on it", query.table_name)
            query.delete(prompt=False)
    for path in paths.values():
        if path.is_dir():
            log.info("--fresh: removing %s", path)
            shutil.rmtree(path)
        elif path.exists():
            log.info("--fresh: removing %s", path)
            path.unlink()


def _train_and_infer(train, model, files, recording):
    notes = []
    video_set = {"video_set_id": DEMO_VIDEO_SET}
    if not (train.VideoSet & video_set):
        train.VideoSet.insert_from_project(DEMO_VIDEO_SET, files["config"],
                                           DEMO_VIDEO_SET_DESCRIPTION)
    paramset_idx = train.TrainingParamSet.insert_new_params("demo: tiny CPU training",
                                                            DEMO_TRAINING_PARAMS)
    project_rel = model.roots().relative(files["config"].parent)
    task = {**video_set, "paramset_idx": paramset_idx, "training_id": 0}
    train.TrainingTask.insert1({**task, "project_path": project_rel}, skip_duplicates=True)
    if train.ModelTraining & task:
        notes.append(_reused_training(train, task))
    train.ModelTraining.populate(task, reserve_jobs=True)
    if not (train.ModelTraining & task):
        raise RuntimeError(f"training failed: {train.ModelTraining.jobs.errors.to_dicts()}")
    # one model per parameter set: a demo run after the parameters changed trains and
    # uses a new model instead of inferring with the one trained before
    model_key = {"model_name": f"demo_trained_p{paramset_idx}"}
    if not (model.Model & model_key):
        train.ModelTraining.register_model(task, model_key["model_name"])
    model.ModelEvaluation.populate(model_key)
    estimation = model.PoseEstimationTask.insert_estimation_task(
        {**recording, **model_key}, "trigger", skip_duplicates=True)
    return model_key, estimation, notes


def _reused_training(train, task: dict) -> str:
    row = (train.ModelTraining & task).fetch1()
    when = ""
    snapshot = (train.ModelTraining.Snapshot & task
                & {"snapshot_name": row["best_snapshot"]}).to_dicts()
    if snapshot:
        from element_pose.schemas import model as model_module

        path = model_module.roots().processed(snapshot[0]["snapshot_path"])
        if path.is_file():
            when = f" on {_when(path.stat().st_mtime)}"
    return (f"reusing the model trained{when} ({row['train_time']:.0f} s, snapshot "
            f"{row['best_snapshot']}, paramset {task['paramset_idx']})")
