"""Growth benchmark: 10k / 108k / 1M frames, first call in a fresh process and warm calls.

Usage::

    python -m bench.growth                      # 10k, 108k, 1M frames x 20 body parts
    python -m bench.growth --sizes 108000 --reps 3 --db mysql

For each size, three children share one set of schemas (unique prefix):

* ``ingest``: the first load-mode ``PoseEstimation.populate`` of the process (what a
  worker pays: lazy imports included), then warm populates of fresh recordings;
  store objects and bytes per estimation; peak RSS of the first populate over the
  process's RSS before it (ratio to the float32 payload); float32 round-trip error
  against the float64 h5.
* ``fetch``: a fresh process: first ``get_trajectory`` (all body parts) and warm ones;
  one body part.
* ``nwb``: a fresh process: first ``publish.export_nwb`` (pynwb imports included) and
  warm ones; the neuroconv peer's first call in its own fresh process, same h5.

Results: ``bench/results/growth.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    EDLC_VENV,
    NEUROCONV_VENV,
    RESULTS,
    TMP,
    emit,
    folder_bytes,
    load_average,
    run_child,
)
from bench.data import make_dataset

PY = sys.executable


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _files(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


# ------------------------------------------------------------------ children
def child_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """First populate in this process, then warm ones; storage, RSS, round-trip error."""
    t0 = time.perf_counter()
    from bench import ours

    pipeline = ours._pipeline()
    model = pipeline.model
    ds = make_dataset(args.frames, 20, args.individuals)
    session_key = ours._session(pipeline, "growth")
    model_key = ours._model(pipeline, ds)
    model.PoseEstimation.jobs.refresh()
    setup_s = time.perf_counter() - t0
    store = ours._store_dir()
    times, tasks = [], []
    rss_before = peak = 0
    before_files: set[str] = set()
    new_files: set[str] = set()
    store_bytes = 0
    for rep in range(args.reps + 1):
        key = ours._recording(pipeline, session_key, rep, ds)
        task = ours._load_task(pipeline, key, model_key, ds)
        if rep == 0:
            # the imports of the reading stack are not payload
            import h5py
            import numcodecs.blosc  # noqa: F401
            import pandas  # noqa: F401

            before_files, before_bytes = _files(store), folder_bytes(store)
            rss_before = _status("VmRSS")
        t = time.perf_counter()
        model.PoseEstimation.populate(task)
        times.append(time.perf_counter() - t)
        if rep == 0:
            peak = _status("VmHWM")
            new_files = _files(store) - before_files
            store_bytes = folder_bytes(store) - before_bytes
        tasks.append(task)
    import numpy as np

    from element_pose.io.h5table import read_frame_table

    floors = {}  # reading the h5 alone (page cache warm), the floor of any ingest
    for name, reader in (("h5py_float32", lambda: read_frame_table(ds.h5)),
                         ("pandas_read_hdf", lambda: __import__("pandas").read_hdf(ds.h5))):
        reader()
        floors[name] = _timed(reader, max(args.reps, 1))["median"]
    # the floor of a worker's first ingest as the issue measured it: pd.read_hdf in a
    # fresh process (pandas imported first, PyTables imported by the call)
    floors["pandas_read_hdf_first_call"] = statistics.median(
        _first_read_hdf(ds.h5) for _ in range(3))
    truth = read_frame_table(ds.h5)  # float32; the float64 values for the error:
    import h5py

    with h5py.File(ds.h5) as f:
        raw64 = f["df_with_missing/table"]["values_block_0"]
    pose = model.PoseEstimation.fetch_pose(tasks[0])
    n = ds.n_frames
    stored = np.concatenate([pose.position, pose.confidence[..., None]], axis=-1)
    stored = stored.reshape(n, -1)
    exact = bool(stored.tobytes() == truth.values.tobytes())
    err = np.abs(stored.astype(np.float64) - raw64)
    rel = err / np.maximum(np.abs(raw64), 1e-30)
    payload = ds.n_keypoints * 3 * 4
    table_bytes = (ours._table_bytes(model.PoseEstimation)
                   + ours._table_bytes(model.PoseEstimation.BodyPartPosition))
    n_est = len(model.PoseEstimation & {"subject": "growth"})
    return {
        "frames": n, "n_keypoints": ds.n_keypoints, "h5_bytes": ds.h5.stat().st_size,
        "setup_s": setup_s, "first_s": times[0], "warm": _summ(times[1:]),
        "read_floor_s": floors,
        "store_objects_per_estimation": len(new_files),
        "store_bytes_per_estimation": store_bytes,
        "table_bytes_per_estimation": table_bytes / max(n_est, 1),
        "bytes_per_keypoint": (store_bytes + table_bytes / max(n_est, 1)) / ds.n_keypoints,
        "float32_payload_bytes": payload,
        "rss_before_first_populate": rss_before, "peak_rss": peak,
        "peak_over_payload": (peak - rss_before) / payload,
        "stored_equals_float32_of_h5": exact,
        "float32_roundtrip_max_abs_error": float(np.nanmax(err)),
        "float32_roundtrip_max_rel_error": float(np.nanmax(rel)),
        "task": {k: (str(v) if not isinstance(v, int) else v) for k, v in tasks[0].items()},
    }


def _first_read_hdf(h5: Path) -> float:
    code = ("import sys, time, pandas\nt = time.perf_counter()\npandas.read_hdf(sys.argv[1])\n"
            "print(time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code, str(h5)], capture_output=True,
                          text=True, check=True, timeout=300)
    return float(done.stdout.strip().splitlines()[-1])


def _task(args: argparse.Namespace, pipeline) -> dict:
    return (pipeline.model.PoseEstimation & {"subject": "growth", "recording_id": 0}).keys()[0]


def child_fetch(args: argparse.Namespace) -> dict[str, Any]:
    """get_trajectory: first call in this fresh process, then warm calls."""
    t0 = time.perf_counter()
    from bench import ours

    pipeline = ours._pipeline()
    model = pipeline.model
    task = _task(args, pipeline)
    setup_s = time.perf_counter() - t0
    t = time.perf_counter()
    df = model.PoseEstimation.get_trajectory(task)
    first = time.perf_counter() - t
    warm = _timed(lambda: model.PoseEstimation.get_trajectory(task), args.reps)
    part = df.columns.get_level_values("bodyparts")[0]
    one = _timed(lambda: model.PoseEstimation.get_trajectory(task, body_parts=[part]),
                 args.reps)
    return {"setup_s": setup_s, "first_s": first, "warm": warm, "one_body_part": one,
            "shape": list(df.shape)}


def child_nwb(args: argparse.Namespace) -> dict[str, Any]:
    """export_nwb: first call in this fresh process (pynwb imports included), then warm."""
    from bench import ours

    pipeline = ours._pipeline()
    task = _task(args, pipeline)
    from element_pose.schemas import publish

    out = TMP / "nwb" / "growth"
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    files = publish.export_nwb(task, out, overwrite=True)
    first = time.perf_counter() - t
    warm = _timed(lambda: publish.export_nwb(task, out, overwrite=True), args.reps)
    path = files[0].path
    result = {"first_s": first, "warm": warm, "file_bytes": path.stat().st_size}
    if args.check:
        from element_pose.export.nwb import check_nwb

        result["inspector"] = [f"{m.importance.name}: {m.check_function_name}"
                               for m in check_nwb(path)]
    if args.drop:
        ours._drop(pipeline)
    return result


def _timed(fn, reps: int) -> dict[str, Any]:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return _summ(times)


def _summ(times: list[float]) -> dict[str, Any]:
    if not times:
        return {"median": None, "times": []}
    return {"median": statistics.median(times), "times": [round(t, 4) for t in times]}


# ------------------------------------------------------------------ parent
def run_size(frames: int, reps: int, db: str, peer: bool, check: bool,
             individuals: int = 1) -> dict[str, Any]:
    """The three children (and the peer) for one size."""
    from bench.run import _prefix, our_env

    ds = make_dataset(frames, 20, individuals)
    env = our_env(db, _prefix(f"g{frames}"))
    base = [PY, "-m", "bench.growth", "child"]
    common = ["--frames", str(frames), "--reps", str(reps), "--individuals", str(individuals)]
    result: dict[str, Any] = {"frames": frames, "individuals": individuals,
                              "load_before": load_average()}
    result["ingest"] = run_child([*base, "ingest", *common], env=env, timeout=1800,
                                 log_name=f"growth-ingest-{frames}")
    result["fetch"] = run_child([*base, "fetch", *common], env=env,
                                log_name=f"growth-fetch-{frames}")
    result["nwb"] = run_child([*base, "nwb", *common, "--drop",
                               *(["--check"] if check else [])], env=env, timeout=1800,
                              log_name=f"growth-nwb-{frames}")
    if peer and (NEUROCONV_VENV / "bin" / "python").exists():
        result["neuroconv"] = run_child(
            [str(NEUROCONV_VENV / "bin" / "python"), "-m", "bench.peers.neuroconv_nwb",
             "--h5", str(ds.h5), "--out", str(TMP / "nwb" / "neuroconv"), "--reps",
             str(max(1, reps // 2))], timeout=1800, log_name=f"growth-neuroconv-{frames}")
    if peer and individuals == 1 and (EDLC_VENV / "bin" / "python").exists() and _mariadb():
        # element-deeplabcut's first populate in its own fresh process, then warm ones
        result["edlc"] = run_child(
            [str(EDLC_VENV / "bin" / "python"), "-m", "bench.peers.edlc_ingest",
             "--dataset", str(ds.folder), "--raw-root", str(TMP / "root"),
             "--processed-root", str(TMP / "processed"), "--frames", str(frames),
             "--bodyparts", ",".join(ds.bodyparts), "--reps", str(max(1, reps // 2))],
            timeout=1800, log_name=f"growth-edlc-{frames}")
    result["load_after"] = load_average()
    return result


def _mariadb() -> bool:
    """Whether the MariaDB server element-deeplabcut needs is at 127.0.0.1:3306."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", 3306), timeout=2).close()
    except OSError:
        return False
    return True


def table(results: list[dict[str, Any]]) -> str:
    """A markdown table of the growth results."""
    def f(v, unit="s", digits=3):
        return "-" if v is None else f"{v:.{digits}f}{unit}"

    head = ("| frames x 20 (x animals) | ingest first / warm (warm / h5py read floor; first / "
            "pandas' first read; element-deeplabcut first / warm: ratios) | "
            "store objects | B/keypoint | peak RSS / "
            "payload | get_trajectory first / warm | one body part | NWB first / warm | "
            "neuroconv first / warm | NWB ratio first |")
    lines = [head, "|" + "---|" * 10]
    for r in results:
        i, fe, nw, nc = r["ingest"], r["fetch"], r["nwb"], r.get("neuroconv") or {}
        nc_first = nc.get("first_s")
        ratio = (f"{nc_first / nw['first_s']:.1f}x" if nc_first else "-")
        grown = (i["peak_rss"] - i["rss_before_first_populate"]) / 2**20
        floors = i.get("read_floor_s") or {}
        floor = floors.get("h5py_float32")
        floor_ratio = f" ({i['warm']['median'] / floor:.1f}x)" if floor else ""
        first_floor = floors.get("pandas_read_hdf_first_call")
        if first_floor:
            floor_ratio += f"; first {i['first_s'] / first_floor:.1f}x pandas' first"
        edlc = r.get("edlc") or {}
        if edlc.get("first_s"):
            floor_ratio += (f"; element-deeplabcut {edlc['first_s']:.2f}s / "
                            f"{edlc['ingest']['median']:.2f}s: "
                            f"{edlc['first_s'] / i['first_s']:.0f}x / "
                            f"{edlc['ingest']['median'] / i['warm']['median']:.0f}x")
        n_animals = r.get("individuals", 1)
        animals = f" x {n_animals}" if n_animals > 1 else ""
        lines.append(
            f"| {r['frames']:,}{animals} | {f(i['first_s'])} / "
            f"{f(i['warm']['median'])}{floor_ratio} | "
            f"{i['store_objects_per_estimation']} | {i['bytes_per_keypoint']:.2f} | "
            f"{i['peak_over_payload']:.2f}x ({grown:.0f}"
            f" of {i['float32_payload_bytes']/2**20:.0f} MiB) | "
            f"{f(fe['first_s'])} / {f(fe['warm']['median'])} | {f(fe['one_body_part']['median'])}"
            f" | {f(nw['first_s'])} / {f(nw['warm']['median'])} | "
            f"{f(nc_first)} / {f((nc.get('convert') or {}).get('median'))} | {ratio} |")
    return "\n".join(lines)


def retable(path: Path) -> str:
    """Rebuild the table of a saved result file (``--table FILE``)."""
    return table(json.loads(Path(path).read_text())["results"])


def main(argv: list[str] | None = None) -> int:
    """Run the growth benchmark (parent) or one child."""
    parser = argparse.ArgumentParser(prog="python -m bench.growth")
    parser.add_argument("role", nargs="?", default="parent", choices=["parent", "child"])
    parser.add_argument("command", nargs="?", choices=["ingest", "fetch", "nwb"])
    parser.add_argument("--frames", type=int, default=108_000)
    parser.add_argument("--individuals", type=int, default=1,
                        help="animals per frame (3: multi-animal DeepLabCut output)")
    parser.add_argument("--sizes", default="10000,108000,1000000")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--db", default="embedded", choices=["embedded", "mysql"])
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--check", action="store_true", help="run NWB Inspector on the file")
    parser.add_argument("--drop", action="store_true")
    parser.add_argument("--table", type=Path, help="print the table of a saved result file")
    args = parser.parse_args(argv)
    if args.table:
        print(retable(args.table))
        return 0
    if args.role == "child":
        emit({"ingest": child_ingest, "fetch": child_fetch, "nwb": child_nwb}[args.command](args))
        return 0
    from bench.run import machine, stop_embedded

    info = machine()
    results = []
    try:
        for frames in (int(s) for s in args.sizes.split(",")):
            print(f"growth: {frames} frames x {args.individuals} animal(s) ...", flush=True)
            results.append(run_size(frames, args.reps, args.db, not args.no_peer, args.check,
                                    args.individuals))
    finally:
        if args.db == "embedded":
            stop_embedded()
    info["load_average_end"] = load_average()
    text = table(results)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = f"-{args.individuals}animals" if args.individuals > 1 else ""
    (RESULTS / f"growth-{args.db}{tag}.json").write_text(
        json.dumps({"machine": info, "db": args.db, "results": results, "table": text},
                   indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
