"""neuroconv's ``DeepLabCutInterface``: DeepLabCut h5 -> NWB (run in ``bench/.venv-neuroconv``).

Usage: ``python -m bench.peers.neuroconv_nwb --h5 FILE --out DIR [--reps N]``.
One interface per individual (neuroconv writes one subject's pose per interface).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

from bench.common import emit, median_time


def convert(h5: Path, target: Path, individuals: list[str], fps: float) -> None:
    """Write one NWB file holding every individual of ``h5`` with neuroconv."""
    from neuroconv import ConverterPipe
    from neuroconv.datainterfaces import DeepLabCutInterface

    interfaces = {
        f"dlc_{name}": DeepLabCutInterface(file_path=h5, subject_name=name,
                                           sampling_frequency=fps,
                                           metadata_key=f"PoseEstimation_{name}")
        for name in individuals
    }
    converter = ConverterPipe(data_interfaces=interfaces)
    metadata = converter.get_metadata()
    if len(individuals) > 1:  # one container per individual, each under its own name
        for name in individuals:
            key = f"PoseEstimation_{name}"
            metadata["Pose"]["PoseEstimations"][key]["name"] = key
    metadata["NWBFile"]["session_start_time"] = datetime.datetime(
        2026, 1, 2, 10, tzinfo=datetime.UTC)
    metadata.setdefault("Subject", {}).update(
        subject_id="bench", species="Mus musculus", sex="M", age="P90D")
    converter.run_conversion(nwbfile_path=target, metadata=metadata, overwrite=True)


def main(argv: list[str] | None = None) -> int:
    """Time the conversion (median of ``reps`` after one warm-up)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--h5", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--individuals", default="")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    t_import = time.perf_counter()  # a user's first conversion pays the imports too
    from neuroconv.datainterfaces import DeepLabCutInterface

    import_s = time.perf_counter() - t_import

    individuals = ([s for s in args.individuals.split(",") if s]
                   or DeepLabCutInterface.get_available_subjects(args.h5))
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "neuroconv.nwb"
    t0 = time.perf_counter()
    convert(args.h5, target, individuals, args.fps)  # the first call of a fresh process
    first = time.perf_counter() - t0 + import_s
    timing = median_time(lambda: convert(args.h5, target, individuals, args.fps), args.reps,
                         warmup=0)
    from importlib.metadata import version

    emit({"convert": timing, "first_s": first, "import_s": import_s,
          "file_bytes": target.stat().st_size,
          "individuals": individuals,
          "versions": {p: version(p) for p in ("neuroconv", "pynwb", "hdmf", "ndx-pose")},
          "total_s": time.perf_counter() - t0})
    return 0


if __name__ == "__main__":
    sys.exit(main())
