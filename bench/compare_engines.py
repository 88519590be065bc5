"""DeepLabCut and SLEAP on one generated labelled set, through the tables.

One generated DeepLabCut project (``element_pose.sample.make_dlc_project``:
``--videos`` videos of ``--frames`` 160x120 frames, ``--labeled`` labelled frames
each) is one ``train.VideoSet``; both engines train on it through
``ModelTraining.populate`` (SLEAP reads the DeepLabCut labels through
``element_pose.io.labels``), with tiny CPU settings of the same size: the same labelled
frames and held-out split (``core.labels.held_out``: every engine holds out the same
frames), the same epochs, batch size and learning rate, no augmentation; SLEAP's steps
per epoch are set to DeepLabCut's (one pass over the training frames).

Then, for each model:

* ``ModelEvaluation.populate``: element-pose's own scores on the shared held-out
  frames (``ModelEvaluation.Accuracy``, ranked by ``schemas.compare.rank_models``);
* a trigger-mode ``PoseEstimation.populate`` on a generated session video
  (``--session-frames`` frames, seed 7, the demo's) scored against the generator's
  known positions (``element_pose.sample.accuracy``).

CPU time is the process's own (``time.process_time``: every thread) plus that of
reaped child processes (``resource.getrusage(RUSAGE_CHILDREN)``), around each
populate; wall time beside it.

Run: ``python -m bench.compare_engines [--epochs 20]`` from the repository root.
It makes its own embedded PostgreSQL and folders under a temporary folder and removes
them; prints one ``BENCH_RESULT <json>`` line.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import cpu_seconds, emit, scratch

__all__ = ["main"]


def _timed(call: Callable[[], object]) -> dict:
    wall, cpu = time.perf_counter(), cpu_seconds()
    call()
    return {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu,
            "load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print its result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--labeled", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--session-frames", type=int, default=300)
    parser.add_argument("--engines", default="deeplabcut,sleap")
    parser.add_argument("--keep", help="copy the result JSON here as well")
    args = parser.parse_args(argv)
    with scratch("compare-engines-") as tmp:
        result = _run(args, tmp)
        emit(result)
        if args.keep:
            Path(args.keep).write_text(json.dumps(result, indent=1))
    return 0


def _params(args: argparse.Namespace, n_train: int) -> dict[str, dict]:
    common = {"epochs": args.epochs, "batch_size": args.batch_size,
              "learning_rate": args.learning_rate, "device": "cpu", "seed": 0}
    return {
        "deeplabcut": {
            "engine": "deeplabcut", **common, "net_type": "cspnext_s",
            "weight_init": "random", "train_fraction": 0.8, "save_epochs": args.epochs,
            "eval_interval": args.epochs, "key_metric": "test.rmse",
            "key_metric_asc": False, "scheduler": False, "dataloader_workers": 0,
            "augmentation": {"affine": None, "motion_blur": False,
                             "gaussian_noise": False}},
        "sleap": {
            "engine": "sleap", **common, "model_type": "single_instance", "filters": 16,
            "max_stride": 16, "output_stride": 2, "augmentation": False,
            "min_train_steps_per_epoch": max(1, math.ceil(n_train / args.batch_size))},
    }


def _session(pipeline, tmp: Path, n_frames: int):
    from element_pose import sample

    model = pipeline.model
    video = tmp / "raw" / "session" / "session.mp4"
    sample.make_video(video, n_frames=n_frames, fps=30.0, seed=7)
    pipeline.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": "bench", "sex": "M"})
    session = {"subject": "bench", "session_id": 1}
    pipeline.session.Session.insert1({**session, "session_datetime":
                                      datetime.datetime(2026, 1, 2, 10)})
    recording = model.VideoRecording.insert_recording(session, 0, {"device": "cam0"},
                                                      [video])
    model.RecordingInfo.populate(recording)
    return recording, sample.ground_truth(n_frames=n_frames, fps=30.0, seed=7)


def _one_engine(pipeline, engine: str, params: dict, recording: dict, truth) -> dict:
    from element_pose import sample
    from element_pose.schemas.model import PoseEstimationError

    train, model = pipeline.train, pipeline.model
    idx = train.TrainingParamSet.insert_new_params(f"compare {engine}", params)
    task = {"video_set_id": 1, "paramset_idx": idx, "training_id": 0}
    train.TrainingTask.insert1({**task, "project_path": "project"})
    out: dict = {"params": params}
    out["train"] = _timed(lambda: train.ModelTraining.populate(task, suppress_errors=False))
    name = {"model_name": f"compare_{engine}"}
    train.ModelTraining.register_model(task, name["model_name"])
    out["evaluate"] = _timed(lambda: model.ModelEvaluation.populate(
        name, suppress_errors=False))
    estimation = model.PoseEstimationTask.insert_estimation_task(
        {**recording, **name}, "trigger", params={"device": "cpu"})
    out["train_time_s"] = float((train.ModelTraining & task).fetch1("train_time"))
    try:
        out["infer"] = _timed(lambda: model.PoseEstimation.populate(
            estimation, suppress_errors=False))
    except PoseEstimationError as exc:  # e.g. no point above the threshold in any frame
        out["infer"] = {"error": str(exc)}
        return out
    row = (model.PoseEstimation & estimation).fetch1()
    out["infer"].update(run_duration_s=float(row["run_duration"]),
                        frames=int(row["nframes"]))
    out["infer"]["cpu_ms_per_frame"] = 1000 * out["infer"]["cpu_s"] / row["nframes"]
    scores = sample.accuracy(model.PoseEstimation.fetch_pose(estimation), truth)
    out["session_accuracy"] = scores.round(3).to_dict(orient="records")
    return out


def _run(args: argparse.Namespace, tmp: Path) -> dict:
    from element_pose import sample
    from element_pose.core.labels import DEFAULT_TEST_FRACTION
    from element_pose.schemas.compare import body_part_scores, rank_models
    from workflow import pipeline

    project = tmp / "raw" / "project"
    sample.make_dlc_project(project, task="cmp", seed=1, n_videos=args.videos,
                            n_frames=args.frames, n_labeled=args.labeled)
    pipeline.train.VideoSet.insert_from_project(1, project / "config.yaml")
    n_labelled = args.videos * args.labeled
    n_train = round(n_labelled * (1 - DEFAULT_TEST_FRACTION))
    recording, truth = _session(pipeline, tmp, args.session_frames)
    engines = [e for e in args.engines.split(",") if e]
    params = _params(args, n_train)
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "load_start": os.getloadavg(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                    "python": sys.version.split()[0]},
        "labelled_set": {"videos": args.videos, "frames_per_video": args.frames,
                         "labelled_per_video": args.labeled, "size": "160x120",
                         "test_fraction": DEFAULT_TEST_FRACTION},
        "session": {"frames": args.session_frames, "seed": 7},
        "engines": {}}
    for engine in engines:
        result["engines"][engine] = _one_engine(pipeline, engine, params[engine],
                                                recording, truth)
    for split in ("test", "train"):
        ranking = rank_models(1, split=split)
        result[f"ranking_{split}"] = json.loads(ranking.to_json(orient="records"))
    result["body_parts_test"] = json.loads(body_part_scores(1).to_json(orient="records"))
    result["machine"]["load_end"] = os.getloadavg()
    for schema in pipeline.schemas_in_drop_order():
        schema.drop(prompt=False)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
