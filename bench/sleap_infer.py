"""SLEAP inference: trigger-mode ``PoseEstimation.populate`` vs sleap-nn on its own.

Same tiny single-instance model (trained here with sleap-nn, on the CPU), same video
(``--frames`` frames, 160x120), same batch size and device.  Three timings, alternated
over ``--reps`` repeats after an untimed warm-up:

* ``populate``: ``PoseEstimation.populate`` of a fresh trigger task (inference, reading
  the ``.slp``, validation, the insert), in this process;
* ``predict``: :func:`sleap_nn.inference.predict` writing the ``.slp``, in this process
  (what element-pose calls inside ``populate``);
* ``cli``: ``sleap-nn track -i video -m model -o out.slp --device cpu`` as a
  subprocess, start-up and imports included (what a user types).

Each timing also records CPU seconds (``time.process_time`` for the in-process ones,
the child's ``RUSAGE_CHILDREN`` for the command line) and the 1-minute load average:
on a shared machine the CPU seconds are the steadier measure of work.

Run: ``python -m bench.sleap_infer [--frames 300] [--reps 3]`` from the repository
root.  It makes its own embedded PostgreSQL and folders under a temporary folder and
removes them; prints one ``BENCH_RESULT <json>`` line.
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench.common import emit, scratch, summarize

__all__ = ["main"]

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "tests"))
    with scratch("sleap-bench-") as tmp:
        emit(_run(args, tmp))
    return 0


def _run(args: argparse.Namespace, tmp: Path) -> dict:
    from support.sleap_models import train_tiny_model

    from element_pose import sample

    raw = tmp / "raw"
    t0 = time.perf_counter()
    folder = train_tiny_model(raw / "model")
    train_s = time.perf_counter() - t0
    video = raw / "videos" / "bench.mp4"
    sample.make_video(video, n_frames=args.frames, seed=5)  # 160x120
    warm = raw / "videos" / "warm.mp4"
    sample.make_video(warm, n_frames=8, seed=6)

    from sleap_nn.inference import predict

    from workflow import pipeline

    model = pipeline.model
    pipeline.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": "bench", "sex": "M"})
    session = {"subject": "bench", "session_id": 1}
    pipeline.session.Session.insert1({**session, "session_datetime":
                                      datetime.datetime(2026, 1, 2, 10)})
    model_key = model.Model.insert_new_model("bench_sleap", folder, "sleap")
    model.PoseEstimation.jobs.refresh()
    counter = iter(range(1000))
    out = tmp / "direct"

    cpu: dict[str, list[float]] = {"populate": [], "predict": [], "cli": []}
    loads: list[float] = []

    def populate(path: Path) -> float:
        rid = next(counter)
        key = model.VideoRecording.insert_recording(session, rid, {"device": "cam0"}, [path])
        model.RecordingInfo.populate(key)
        task = model.PoseEstimationTask.insert_estimation_task(
            {**key, **model_key}, "trigger",
            params={"batch_size": args.batch_size, "device": "cpu"})
        t, c = time.perf_counter(), time.process_time()
        model.PoseEstimation.populate(task)
        elapsed = time.perf_counter() - t
        cpu["populate"].append(time.process_time() - c)
        assert (model.PoseEstimation & task).fetch1("nframes") > 0
        return elapsed

    def direct(path: Path) -> float:
        t, c = time.perf_counter(), time.process_time()
        predict(str(path), model_paths=[str(folder)], device="cpu",
                batch_size=args.batch_size, output_path=str(out / f"{path.stem}.slp"))
        elapsed = time.perf_counter() - t
        cpu["predict"].append(time.process_time() - c)
        return elapsed

    def cli(path: Path) -> float:
        exe = Path(sys.executable).with_name("sleap-nn")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run([str(exe), "track", "-i", str(path), "-m", str(folder), "-o",
                        str(out / f"{path.stem}.cli.slp"), "--device", "cpu",
                        "--batch_size", str(args.batch_size)],
                       check=True, capture_output=True)
        elapsed = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu["cli"].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        return elapsed

    out.mkdir()
    populate(warm), direct(warm)  # imports and torch warm-up, untimed
    cpu["populate"].clear(), cpu["predict"].clear()
    times: dict[str, list[float]] = {"populate": [], "predict": [], "cli": []}
    order = list(times)
    for rep in range(args.reps):  # rotate the order: none always runs first
        for name in order[rep % 3:] + order[:rep % 3]:
            times[name].append({"populate": populate, "predict": direct, "cli": cli}[name](video))
            loads.append(os.getloadavg()[0])
    rows = (model.PoseEstimation & {"model_name": "bench_sleap"}).to_dicts()
    inner = [float(r["run_duration"]) for r in rows if r["nframes"] == args.frames]
    result = {"frames": args.frames, "size": "160x120", "batch_size": args.batch_size,
              "device": "cpu", "train_s": train_s,
              **{k: summarize(v) for k, v in times.items()},
              "engine_run_duration": summarize(inner),
              "cpu": {k: summarize(v) for k, v in cpu.items()}, "load_1min": summarize(loads)}
    result["populate_over_predict"] = result["populate"]["median"] / result["predict"]["median"]
    result["cli_over_populate"] = result["cli"]["median"] / result["populate"]["median"]
    result["cpu_populate_over_predict"] = (result["cpu"]["populate"]["median"]
                                           / result["cpu"]["predict"]["median"])
    for name in times:
        result[f"{name}_fps"] = args.frames / result[name]["median"]
    for schema in pipeline.schemas_in_drop_order():
        schema.drop(prompt=False)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
