"""element-pose side of the benchmarks (a child process; see :mod:`bench.run`).

Usage: ``python -m bench.ours <command> [options]`` with the database chosen by the
environment the parent sets (``ELEMENT_POSE_DATABASE``, ``DJ_*``, a unique
``ELEMENT_POSE_SCHEMA_PREFIX``).  Commands:

* ``ingest``: load-mode ``PoseEstimation.populate`` of one dataset, repeated on
  fresh recordings; then ``get_trajectory`` / ``to_xarray`` and storage bytes;
  optionally the NWB export of the same estimation.
* ``scale-setup`` / ``scale-worker``: the queue and the workers of the scaling run.
* ``infer``: trigger-mode populate vs ``deeplabcut.analyze_videos`` on a tiny model.

Each prints one ``BENCH_RESULT`` JSON line and drops its schemas unless told not to.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import TMP, emit, folder_bytes, median_time, summarize
from bench.data import Dataset, make_dataset

SESSION_TIME = datetime.datetime(2026, 1, 2, 10, 0)


# ------------------------------------------------------------------ fixtures
def _pipeline():
    from workflow import pipeline

    return pipeline


def _session(pipeline, subject: str) -> dict:
    pipeline.lab.Device.insert1({"device": "cam0"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1(
        {"subject": subject, "sex": "M", "species": "Mus musculus",
         "subject_birth_date": datetime.date(2025, 10, 1)}, skip_duplicates=True)
    key = {"subject": subject, "session_id": 1}
    pipeline.session.Session.insert1({**key, "session_datetime": SESSION_TIME},
                                     skip_duplicates=True)
    return key


def _recording(pipeline, session_key: dict, recording_id: int, ds: Dataset) -> dict:
    """A recording of the dataset's video, with RecordingInfo inserted (not probed).

    The video on disk is a 2-frame placeholder; probing a real one-hour video is
    not what these benchmarks measure (element-deeplabcut's RecordingInfo is
    inserted the same way).
    """
    model = pipeline.model
    key = model.VideoRecording.insert_recording(session_key, recording_id, {"device": "cam0"},
                                                [ds.video])
    duration = ds.n_frames / 30.0
    model.RecordingInfo.insert1(
        {**key, "px_height": 120, "px_width": 160, "nframes": ds.n_frames, "fps": 30.0,
         "recording_duration": duration, "timestamps": None}, allow_direct_insert=True)
    model.RecordingInfo.File.insert1(
        {**key, "file_id": 0, "nframes": ds.n_frames, "frame_offset": 0},
        allow_direct_insert=True)
    return key


def _model(pipeline, ds: Dataset) -> dict:
    name = f"bench_{ds.name}"
    if pipeline.model.Model & {"model_name": name}:
        return {"model_name": name}
    return pipeline.model.Model.insert_new_model(name, ds.config, shuffle=1)


def _load_task(pipeline, key: dict, model_key: dict, ds: Dataset) -> dict:
    return pipeline.model.PoseEstimationTask.insert_estimation_task(
        {**key, **model_key}, "load", output_dir=ds.folder)


def _drop(pipeline) -> None:
    for schema in pipeline.schemas_in_drop_order():
        schema.drop(prompt=False)


# ------------------------------------------------------------------ storage
def _table_bytes(table) -> int:
    """Bytes the database uses for a table (data + indexes + TOAST / off-page blobs)."""
    conn = table.connection
    schema, name = table.database, table.table_name
    if _is_postgres(conn):
        conn.query("ANALYZE")
        row = conn.query(
            "SELECT pg_total_relation_size(%s::regclass)", args=(f'"{schema}"."{name}"',)
        ).fetchone()
        return int(row[0])
    conn.query(f"ANALYZE TABLE `{schema}`.`{name}`")
    row = conn.query(
        "SELECT data_length + index_length FROM information_schema.tables "
        "WHERE table_schema=%s AND table_name=%s", args=(schema, name)).fetchone()
    return int(row[0])


def _is_postgres(conn) -> bool:
    from datajoint import config

    return str(config["database.backend"]).startswith("postgres")


def _store_dir() -> Path:
    from datajoint import config

    return Path(config["stores"]["pose"]["location"])


def _db_version(conn) -> str:
    try:
        return str(conn.query("SELECT version()").fetchone()[0])
    except Exception as exc:  # pragma: no cover - informational only
        return f"unknown ({exc})"


# ------------------------------------------------------------------ commands
def cmd_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest ``reps`` fresh recordings of one dataset; fetch and size the last one."""
    ds = make_dataset(args.frames, args.bodyparts, args.individuals)
    pipeline = _pipeline()
    model = pipeline.model
    conn = model.schema.connection
    session_key = _session(pipeline, f"ing{ds.name}")
    model_key = _model(pipeline, ds)
    model.PoseEstimation.jobs.refresh()
    # warm the page cache and imports the way a second file would be read
    from element_pose.io import dlc

    dlc.read_dlc_h5(ds.h5)
    store = _store_dir()
    times, store_deltas, tasks = [], [], []
    for rep in range(args.reps + 1):  # rep 0 is the untimed warm-up
        key = _recording(pipeline, session_key, rep, ds)
        task = _load_task(pipeline, key, model_key, ds)
        before = folder_bytes(store)
        t0 = time.perf_counter()
        model.PoseEstimation.populate(task)
        elapsed = time.perf_counter() - t0
        if rep:
            times.append(elapsed)
            store_deltas.append(folder_bytes(store) - before)
        tasks.append(task)
        assert model.PoseEstimation & task, f"populate made no row for {task}"
    task = tasks[-1]
    result: dict[str, Any] = {
        "dataset": ds.name, "n_frames": ds.n_frames, "n_bodyparts": len(ds.bodyparts),
        "n_individuals": len(ds.individuals), "n_keypoints": ds.n_keypoints,
        "h5_bytes": ds.h5.stat().st_size, "db_version": _db_version(conn),
        "backend": "postgresql" if _is_postgres(conn) else "mysql",
        "ingest": summarize(times),
    }
    n_est = len(model.PoseEstimation & {"subject": session_key["subject"]})
    table_bytes = (_table_bytes(model.PoseEstimation)
                   + _table_bytes(model.PoseEstimation.BodyPartPosition))
    store_bytes = sorted(store_deltas)[len(store_deltas) // 2]
    result["storage"] = {
        "store_bytes_per_estimation": store_bytes,
        "table_bytes_all_estimations": table_bytes,
        "estimations": n_est,
        "table_bytes_per_estimation": table_bytes / n_est,
        "bytes_per_keypoint": (store_bytes + table_bytes / n_est) / ds.n_keypoints,
        "store_bytes_per_keypoint": store_bytes / ds.n_keypoints,
    }
    if args.fetch:
        df = model.PoseEstimation.get_trajectory(task)
        assert df.shape[0] == ds.n_frames
        result["get_trajectory"] = median_time(
            lambda: model.PoseEstimation.get_trajectory(task), args.reps)
        result["to_xarray"] = median_time(lambda: model.PoseEstimation.to_xarray(task),
                                          args.reps)
        result["fetch_pose"] = median_time(lambda: model.PoseEstimation.fetch_pose(task),
                                           args.reps)
    if args.nwb:
        result["nwb"] = _nwb(pipeline, task, ds, args.reps)
    if not args.keep:
        _drop(pipeline)
    return result


def _nwb(pipeline, task: dict, ds: Dataset, reps: int) -> dict[str, Any]:
    """export_nwb from the database, write_nwb from the h5, and validation, timed apart."""
    from element_pose.export.nwb import check_nwb, write_nwb
    from element_pose.io import dlc
    from element_pose.schemas import publish

    out = TMP / "nwb" / "ours"
    out.mkdir(parents=True, exist_ok=True)
    exported: list = []

    def export() -> None:
        exported[:] = publish.export_nwb(task, out, overwrite=True)

    result: dict[str, Any] = {"export_nwb": median_time(export, reps)}
    path = exported[0].path
    result["export_nwb_file_bytes"] = path.stat().st_size
    fast_out = TMP / "nwb" / "ours_uncompressed"

    def export_uncompressed() -> None:
        exported[:] = publish.export_nwb(task, fast_out, overwrite=True, compression=None)

    result["export_nwb_uncompressed"] = median_time(export_uncompressed, reps)
    result["export_nwb_uncompressed_file_bytes"] = exported[0].path.stat().st_size
    subject, session = publish.nwb_metadata({k: task[k] for k in ("subject", "session_id")})
    h5_target = out / "from_h5.nwb"

    def from_h5() -> None:
        pose = dlc.read_dlc_h5(ds.h5, fps=30.0)
        write_nwb(h5_target, pose, subject, session, overwrite=True)

    result["write_nwb_from_h5"] = median_time(from_h5, reps)
    result["write_nwb_file_bytes"] = h5_target.stat().st_size
    t0 = time.perf_counter()
    messages = check_nwb(path)
    result["validation_s"] = time.perf_counter() - t0
    result["validation_messages"] = [f"{m.importance.name}: {m.check_function_name}"
                                     for m in messages]
    return result


def cmd_scale_setup(args: argparse.Namespace) -> dict[str, Any]:
    """Insert ``tasks`` load tasks for subject ``args.subject`` (workers run them)."""
    ds = make_dataset(args.frames, args.bodyparts, 1)
    pipeline = _pipeline()
    model = pipeline.model
    session_key = _session(pipeline, args.subject)
    model_key = _model(pipeline, ds)
    for i in range(args.tasks):
        key = _recording(pipeline, session_key, i, ds)
        _load_task(pipeline, key, model_key, ds)
    model.PoseEstimation.jobs.refresh()
    return {"tasks": args.tasks, "n_frames": ds.n_frames, "n_keypoints": ds.n_keypoints}


def cmd_scale_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Connect, say READY, wait for a line on stdin, then populate with reserve_jobs."""
    pipeline = _pipeline()
    model = pipeline.model
    restriction = {"subject": args.subject}
    len(model.PoseEstimationTask & restriction)  # connect and load the heading now
    import pandas.io.pytables  # noqa: F401  (a long-running worker has these loaded)
    import tables  # noqa: F401
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    sys.stdin.readline()
    t0 = time.perf_counter()
    done = model.PoseEstimation.populate(restriction, reserve_jobs=True)
    return {"success_count": int(done["success_count"]), "wall_s": time.perf_counter() - t0}


def cmd_scale_count(args: argparse.Namespace) -> dict[str, Any]:
    """How many estimations of the subject exist (and drop the schemas when asked)."""
    pipeline = _pipeline()
    n = len(pipeline.model.PoseEstimation & {"subject": args.subject})
    if args.drop:
        _drop(pipeline)
    return {"estimations": n}


def _tiny_model(root: Path):
    """The tiny trained model of the tests, built once and cached under ``root``."""
    import importlib.util
    import pickle

    cache = root / "tiny_model.pickle"
    if cache.is_file():
        with open(cache, "rb") as f:
            return pickle.load(f)
    helper = Path(__file__).resolve().parents[1] / "tests" / "engines" / "tiny_model.py"
    spec = importlib.util.spec_from_file_location("tiny_model", helper)
    tiny_model = importlib.util.module_from_spec(spec)
    sys.modules["tiny_model"] = tiny_model
    spec.loader.exec_module(tiny_model)
    t0 = time.perf_counter()
    tiny = tiny_model.build_tiny_model(root)
    info = {"config": str(tiny.config), "build_s": time.perf_counter() - t0}
    with open(cache, "wb") as f:
        pickle.dump(info, f)
    return info


def cmd_infer(args: argparse.Namespace) -> dict[str, Any]:
    """Trigger-mode populate vs deeplabcut.analyze_videos, alternated, medians."""
    import shutil
    import tempfile

    from element_pose import sample
    from element_pose.engines import deeplabcut as engine
    from element_pose.engines.deeplabcut.engine import snapshot_argument
    from element_pose.engines.deeplabcut.layout import _dlc_snapshot_index

    raw = Path(os.environ["ELEMENT_POSE_ROOT_DIRS"].split(os.pathsep)[0])
    tiny = _tiny_model(raw / "tiny")
    config = Path(tiny["config"])
    video = raw / "infer" / f"infer{args.frames}.mp4"
    if not video.is_file():
        sample.make_video(video, n_frames=args.frames, seed=5)
    warm_video = raw / "infer" / "warmup.mp4"
    if not warm_video.is_file():
        sample.make_video(warm_video, n_frames=16, seed=6)
    pipeline = _pipeline()
    model = pipeline.model
    session_key = _session(pipeline, "infer")
    model_key = model.Model.insert_new_model("bench_tiny", config, shuffle=1,
                                             skip_duplicates=True)
    model.PoseEstimation.jobs.refresh()
    snapshot = (model.Model & model_key).fetch1("engine_options")["snapshot"]
    snap = engine.resolve_snapshot(config, 1, 0, snapshot_argument(snapshot))
    index = _dlc_snapshot_index(engine.snapshots(config, 1, 0), snap)

    t0 = time.perf_counter()
    import deeplabcut  # excluded from both timings

    import_s = time.perf_counter() - t0
    out_root = TMP / "infer_out"
    out_root.mkdir(parents=True, exist_ok=True)

    def direct(path: Path) -> float:
        dest = Path(tempfile.mkdtemp(dir=out_root))
        t = time.perf_counter()
        deeplabcut.analyze_videos(str(config), [str(path)], shuffle=1, trainingsetindex=0,
                                  snapshot_index=index, device="cpu", destfolder=str(dest),
                                  batch_size=args.batch_size, overwrite=True)
        elapsed = time.perf_counter() - t
        shutil.rmtree(dest)
        return elapsed

    counter = iter(range(1000))

    def trigger() -> tuple[float, dict]:
        rid = next(counter)
        key = model.VideoRecording.insert_recording(session_key, rid, {"device": "cam0"},
                                                    [video])
        model.RecordingInfo.populate(key)
        task = model.PoseEstimationTask.insert_estimation_task(
            {**key, **model_key}, "trigger",
            output_dir=Path(os.environ["ELEMENT_POSE_PROCESSED_DIR"]) / "infer" / f"r{rid}",
            params={"batch_size": args.batch_size, "device": "cpu"})
        t = time.perf_counter()
        model.PoseEstimation.populate(task)
        elapsed = time.perf_counter() - t
        row = (model.PoseEstimation & task).fetch1()
        return elapsed, row

    direct(warm_video)  # torch/DLC warm-up, untimed
    direct_times, trigger_times, inner = [], [], []
    for rep in range(args.reps):  # alternate the order: neither always runs first
        if rep % 2:
            elapsed, row = trigger()
            direct_times.append(direct(video))
        else:
            direct_times.append(direct(video))
            elapsed, row = trigger()
        trigger_times.append(elapsed)
        inner.append(float(row["run_duration"]))
    d, p = summarize(direct_times), summarize(trigger_times)
    result = {
        "frames": args.frames, "batch_size": args.batch_size, "device": "cpu",
        "deeplabcut_import_s": import_s, "tiny_model_build_s": tiny.get("build_s"),
        "direct": d, "populate": p, "engine_run_duration": summarize(inner),
        # element-pose's own time around analyze_videos inside populate
        "populate_minus_engine_s": p["median"] - summarize(inner)["median"],
        "overhead_fraction": p["median"] / d["median"] - 1,
        "direct_fps": args.frames / d["median"], "populate_fps": args.frames / p["median"],
    }
    if not args.keep:
        _drop(pipeline)
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(prog="python -m bench.ours")
    sub = parser.add_subparsers(dest="command", required=True)
    ingest = sub.add_parser("ingest")
    ingest.add_argument("--frames", type=int, default=108_000)
    ingest.add_argument("--bodyparts", type=int, default=20)
    ingest.add_argument("--individuals", type=int, default=1)
    ingest.add_argument("--reps", type=int, default=5)
    ingest.add_argument("--fetch", action="store_true")
    ingest.add_argument("--nwb", action="store_true")
    ingest.add_argument("--keep", action="store_true")
    setup = sub.add_parser("scale-setup")
    setup.add_argument("--subject", required=True)
    setup.add_argument("--tasks", type=int, default=40)
    setup.add_argument("--frames", type=int, default=18_000)
    setup.add_argument("--bodyparts", type=int, default=20)
    worker = sub.add_parser("scale-worker")
    worker.add_argument("--subject", required=True)
    count = sub.add_parser("scale-count")
    count.add_argument("--subject", required=True)
    count.add_argument("--drop", action="store_true")
    infer = sub.add_parser("infer")
    infer.add_argument("--frames", type=int, default=900)
    infer.add_argument("--reps", type=int, default=3)
    infer.add_argument("--batch-size", type=int, default=8)
    infer.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    commands = {"ingest": cmd_ingest, "scale-setup": cmd_scale_setup,
                "scale-worker": cmd_scale_worker, "scale-count": cmd_scale_count,
                "infer": cmd_infer}
    emit(commands[args.command](args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
