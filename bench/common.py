"""Shared helpers of the benchmarks: paths, timing, sizes and the JSON hand-off.

Every measurement runs in a child process (DataJoint binds one connection per
process, and the peers live in their own virtual environments).  A child prints
one line ``BENCH_RESULT <json>`` on stdout; :func:`run_child` returns that object.
This module only uses the standard library, so the peers' environments can import
it by path.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
TMP = RESULTS / "tmp"
EDLC_VENV = BENCH_DIR / ".venv-edlc"
NEUROCONV_VENV = BENCH_DIR / ".venv-neuroconv"
RESULT_TAG = "BENCH_RESULT "


def median_time(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> dict[str, Any]:
    """Time ``fn`` ``repeat`` times after ``warmup`` untimed calls.

    Returns:
        ``{"median": s, "min": s, "max": s, "times": [...]}``.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return summarize(times)


def summarize(times: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and all samples of a list of durations (seconds)."""
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "times": [round(t, 4) for t in times]}


def folder_bytes(path: str | Path) -> int:
    """Sum of the file sizes (bytes, not disk blocks) under a folder."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def emit(result: dict[str, Any]) -> None:
    """Hand a child's result to the parent (one tagged JSON line on stdout)."""
    sys.stdout.write(RESULT_TAG + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


def run_child(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 900,
              cwd: str | Path = REPO, log_name: str | None = None) -> dict[str, Any]:
    """Run a child benchmark and return its tagged JSON result.

    The child's full output goes to ``bench/results/tmp/<log_name>.log``.

    Raises:
        RuntimeError: the child failed or printed no result (with the log's tail).
    """
    TMP.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    log = TMP / f"{log_name or Path(argv[1]).stem}.log"
    log.write_text(f"$ {' '.join(argv)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (proc.stderr or proc.stdout)[-3000:]
    raise RuntimeError(f"{' '.join(argv[:3])} failed (exit {proc.returncode}); log {log}\n{tail}")


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


def cpu_seconds() -> float:
    """CPU seconds of this process (every thread) and of its reaped child processes."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder with element-pose's roots, home and an embedded database of its
    own (a fresh schema prefix); the database is stopped and the folder removed after."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ.update({
        "ELEMENT_POSE_ROOT_DIRS": str(tmp / "raw"), "ELEMENT_POSE_PROCESSED_DIR":
        str(tmp / "processed"), "ELEMENT_POSE_SCHEMA_PREFIX": f"b{uuid.uuid4().hex[:6]}_",
        "ELEMENT_POSE_HOME": str(tmp / "home"), "ELEMENT_POSE_DATABASE": "embedded",
        "HF_HUB_OFFLINE": "1"})
    for name in ("raw", "processed"):
        (tmp / name).mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
    finally:
        try:
            from element_pose.db import embedded

            embedded.stop()
        except Exception:  # never connected
            pass
        shutil.rmtree(tmp, ignore_errors=True)
