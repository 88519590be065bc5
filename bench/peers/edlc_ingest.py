"""element-deeplabcut 0.2.8 load mode on MariaDB (run in ``bench/.venv-edlc``).

Usage: ``python -m bench.peers.edlc_ingest --dataset DIR --raw-root R --processed-root P
--frames N --bodyparts a,b,... [--reps N] [--multi-animal]``.

What the peer needs to run at all (platform notes): DataJoint < 0.15, ruamel.yaml
< 0.18, TLS off, a numbered snapshot scorer, and ``max_allowed_packet`` above its
16 MiB default because it sends all body parts in one INSERT: raised here with
``SET GLOBAL`` for this run and restored afterwards.  Its schemas live under a
unique prefix and are dropped at the end.  Model and RecordingInfo rows are
inserted directly (``Model.insert_new_model`` imports DeepLabCut, which a load
needs not; element-pose's RecordingInfo is inserted the same way).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
import types
import uuid
from pathlib import Path
from typing import Any

from bench.common import emit, median_time, summarize

PACKET = 1 << 30  # 1 GiB, the server's maximum


def _connect(host: str, port: int):
    import datajoint as dj

    dj.config["database.host"] = host
    dj.config["database.port"] = port
    dj.config["database.user"] = "root"
    dj.config["database.password"] = ""
    dj.config["database.use_tls"] = False
    dj.config["safemode"] = False
    dj.config["loglevel"] = "WARNING"
    return dj


def _table_bytes(conn, schema: str, table: str) -> int:
    conn.query(f"ANALYZE TABLE `{schema}`.`{table}`").fetchall()
    row = conn.query(
        "SELECT data_length + index_length FROM information_schema.tables "
        "WHERE table_schema=%s AND table_name=%s", args=(schema, table)).fetchone()
    return int(row[0])


def _drop_prefix(conn, prefix: str) -> None:
    """Drop every schema of this run (also after a failure half-way through activation)."""
    names = [r[0] for r in conn.query("SHOW DATABASES").fetchall() if r[0].startswith(prefix)]
    conn.query("SET FOREIGN_KEY_CHECKS=0")
    try:
        for name in names:
            conn.query(f"DROP DATABASE `{name}`")
    finally:
        conn.query("SET FOREIGN_KEY_CHECKS=1")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up the peer's pipeline, ingest, fetch, size, tear down."""
    dj = _connect(args.host, args.port)
    conn = dj.conn()
    old_packet = int(conn.query("SELECT @@GLOBAL.max_allowed_packet").fetchone()[0])
    conn.query(f"SET GLOBAL max_allowed_packet={PACKET}")
    conn = dj.conn(reset=True)  # the new value applies to new sessions
    prefix = f"bench_edlc_{uuid.uuid4().hex[:6]}_"
    try:
        return _run(args, dj, conn, prefix, old_packet)
    finally:
        _drop_prefix(dj.conn(), prefix)
        dj.conn().query(f"SET GLOBAL max_allowed_packet={old_packet}")


def _run(args, dj, conn, prefix: str, old_packet: int) -> dict[str, Any]:
    from element_deeplabcut import train  # isort: skip  (train first: circular import)
    from element_deeplabcut import model

    core = dj.Schema(f"{prefix}core")

    @core
    class Device(dj.Lookup):
        definition = """
        device: varchar(32)
        """

    @core
    class Session(dj.Manual):
        definition = """
        subject: varchar(32)
        session_id: int
        ---
        session_datetime: datetime
        """

    raw, processed = str(args.raw_root), str(args.processed_root)
    link = types.ModuleType("bench_edlc_link")
    link.Device, link.Session, link.train = Device, Session, train
    link.get_dlc_root_data_dir = lambda: [raw, processed]
    link.get_dlc_processed_data_dir = lambda: processed
    sys.modules[link.__name__] = link
    train.activate(f"{prefix}train", linking_module=link)
    model.activate(f"{prefix}model", linking_module=link)

    import yaml

    dataset = Path(args.dataset)
    cfg = yaml.safe_load((dataset / "dj_dlc_config.yaml").read_text())
    parts = args.bodyparts.split(",")
    Device.insert1({"device": "cam0"})
    session = {"subject": "edlc", "session_id": 1}
    Session.insert1({**session, "session_datetime": datetime.datetime(2026, 1, 2, 10)})
    key = {**session, "recording_id": 0}
    model.VideoRecording.insert1({**key, "device": "cam0"})
    model.VideoRecording.File.insert1({**key, "file_id": 0, "file_path": "videos/video.mp4"})
    model.RecordingInfo.insert1(
        {**key, "px_height": 120, "px_width": 160, "nframes": args.frames, "fps": 30,
         "recording_duration": args.frames / 30}, allow_direct_insert=True)
    model.BodyPart.insert(({"body_part": p} for p in parts), skip_duplicates=True)
    model_key = {"model_name": "bench"}
    model.Model.insert1({
        **model_key, "task": cfg["Task"], "date": cfg["date"], "iteration": 0,
        "snapshotindex": -1, "shuffle": 1, "trainingsetindex": 0,
        "scorer": "DLC_Resnet50_benchJan1shuffle1", "config_template": cfg,
        "project_path": f"projects/{dataset.name}"})
    model.Model.BodyPart.insert({**model_key, "body_part": p} for p in parts)
    task = {**key, **model_key}
    model.PoseEstimationTask.insert1(
        {**task, "task_mode": "load",
         "pose_estimation_output_dir": os.path.relpath(dataset, processed)})
    version = conn.query("SELECT version()").fetchone()[0]
    result: dict[str, Any] = {"db_version": version, "max_allowed_packet_restored_to": old_packet,
                              "datajoint": dj.__version__}
    from importlib.metadata import version as pkg_version

    result["element_deeplabcut"] = pkg_version("element-deeplabcut")

    if args.multi_animal:
        t0 = time.perf_counter()
        try:
            model.PoseEstimation.populate(task, suppress_errors=False)
            rows = len(model.PoseEstimation.BodyPartPosition & task)
            result["supported"] = rows == args.frames * 0 + len(parts) * args.individuals
            result["note"] = f"populate finished with {rows} body-part rows"
        except Exception as exc:
            result["supported"] = False
            result["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        result["attempt_s"] = time.perf_counter() - t0
        return result

    times = []
    t0 = time.perf_counter()  # the first populate of this process (lazy imports)
    model.PoseEstimation.populate(task)
    result["first_s"] = time.perf_counter() - t0
    if not model.PoseEstimation & task:
        raise RuntimeError("populate made no row")
    for _ in range(args.reps):
        (model.PoseEstimation & task).delete()
        t0 = time.perf_counter()
        model.PoseEstimation.populate(task)
        times.append(time.perf_counter() - t0)
    result["ingest"] = summarize(times)
    df = model.PoseEstimation.get_trajectory(task)
    result["trajectory_shape"] = list(df.shape)
    result["get_trajectory"] = median_time(lambda: model.PoseEstimation.get_trajectory(task),
                                           args.reps)
    db = model.schema.database
    table_bytes = (_table_bytes(conn, db, model.PoseEstimation.table_name)
                   + _table_bytes(conn, db, model.PoseEstimation.BodyPartPosition.table_name))
    n_keypoints = args.frames * len(parts)
    payload = conn.query(
        "SELECT SUM(LENGTH(frame_index) + LENGTH(x_pos) + LENGTH(y_pos) + LENGTH(likelihood)"
        " + IFNULL(LENGTH(z_pos), 0)) FROM "
        f"{model.PoseEstimation.BodyPartPosition.full_table_name}").fetchone()[0]
    result["storage"] = {"table_bytes_per_estimation": table_bytes,
                         "blob_payload_bytes": int(payload),
                         "payload_bytes_per_keypoint": int(payload) / n_keypoints,
                         "bytes_per_keypoint": table_bytes / n_keypoints}
    return result


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the result."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--raw-root", required=True)
    parser.add_argument("--processed-root", required=True)
    parser.add_argument("--frames", type=int, required=True)
    parser.add_argument("--bodyparts", required=True)
    parser.add_argument("--individuals", type=int, default=1)
    parser.add_argument("--multi-animal", action="store_true")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3306)
    emit(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
