"""Where the first NWB export's import time goes (``python -m bench.nwb_imports``).

An ``export_nwb`` in a fresh process pays for importing pynwb and ndx-pose once.  This
measures that import in fresh processes that have already imported what an export's
process has anyway (numpy, pandas, h5py, DataJoint, element-pose's pipeline modules), with
``python -X importtime``, and splits it into the parts named in bench/README.md: zarr
(imported by ``hdmf.utils`` when installed; the dandi client needs it), ``scipy.sparse``
(``hdmf.common.sparse``), ndx-pose's own module (its ``load_namespaces`` parses its YAML
and registers every core type again into its namespace) and the rest of pynwb + hdmf.
Medians of ``--reps`` processes; result in ``bench/results/nwb-imports.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from typing import Any

from bench.common import RESULTS

PRELUDE = ("import numpy, pandas, h5py, datajoint, element_pose.schemas.model, "
           "element_pose.schemas.publish")
MARK = "-- the prelude is imported --"


def one_process() -> dict[str, float]:
    """Seconds per part of ``import pynwb, ndx_pose`` in one fresh process."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c",
         f"{PRELUDE}\nimport sys\nsys.stderr.write('{MARK}\\n')\nimport pynwb, ndx_pose"],
        capture_output=True, text=True, check=True, timeout=300)
    cumulative: dict[str, int] = {}
    self_time: dict[str, int] = {}
    after_prelude = False
    for line in done.stderr.splitlines():
        if line == MARK:
            after_prelude = True
        if not line.startswith("import time:") or "|" not in line:
            continue
        own, total, name = line.split(":", 1)[1].split("|")
        if own.strip() == "self [us]":
            continue
        name = name.strip()
        if after_prelude:
            cumulative.setdefault(name, int(total))
            self_time.setdefault(name, int(own))
    total = (cumulative.get("pynwb", 0) + cumulative.get("ndx_pose", 0)) / 1e6
    result = {"pynwb_and_ndx_pose": total}
    result["zarr"] = cumulative.get("zarr", 0) / 1e6
    result["scipy.sparse"] = cumulative.get("scipy.sparse", 0) / 1e6
    result["ndx_pose_namespace"] = self_time.get("ndx_pose", 0) / 1e6
    result["rest"] = total - result["zarr"] - result["scipy.sparse"] - result[
        "ndx_pose_namespace"]
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure, print a table, save the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.nwb_imports")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    runs = [one_process() for _ in range(args.reps)]
    medians: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    lines = ["| part of `import pynwb, ndx_pose` | seconds (median) | share |", "|---|---:|---:|"]
    whole = medians["pynwb_and_ndx_pose"]
    for name, label in (("zarr", "zarr (via hdmf.utils)"),
                        ("scipy.sparse", "scipy.sparse (via hdmf.common.sparse)"),
                        ("ndx_pose_namespace", "ndx-pose's namespace (YAML + core types again)"),
                        ("rest", "the rest of pynwb + hdmf"),
                        ("pynwb_and_ndx_pose", "all")):
        lines.append(f"| {label} | {medians[name]:.3f} | {medians[name] / whole:.0%} |")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "nwb-imports.json").write_text(json.dumps(
        {"prelude": PRELUDE, "medians": medians, "runs": runs, "table": text}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
