"""Pose-array codec on trajectories of several smoothness (``python -m bench.codec``).

The growth benchmark's data carry 1 px of independent noise per point and frame; real
trajectories are often smoother.  This compares, per float32 value, the byte-plane codec
(:func:`element_pose.db.arrays.encode_array`) with the Blosc format it replaced (bit-shuffle
+ zstd level 6 after the best of the same difference filters, chosen on the whole array:
a bound on what that format stored) on :func:`element_pose.sample.ground_truth` x/y
with added Gaussian noise of 0 to 1 px, and on likelihoods bunched near 1.  Writes
``bench/results/codec.json``.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from bench.common import RESULTS

FRAMES = 108_000
NOISE_PX = (0.0, 0.05, 0.3, 1.0)


def _blosc_bound(values: np.ndarray) -> int:
    from element_pose.db import arrays

    return min(len(arrays._compress(arrays._forward(values, f, np.int32)))
               for f in arrays.FILTERS)


def _sizes(series: list[np.ndarray]) -> dict[str, float]:
    from element_pose.db import arrays

    n = sum(s.size for s in series)
    t = time.perf_counter()
    planes = sum(len(arrays.encode_array(s)[0]) for s in series)
    encode_s = time.perf_counter() - t
    return {"byte_planes_B_per_value": planes / n,
            "blosc_bitshuffle_B_per_value": sum(_blosc_bound(s) for s in series) / n,
            "byte_planes_encode_s_per_1M_values": encode_s / n * 1e6}


def main() -> int:
    """Print and save the comparison."""
    from element_pose import sample

    truth = sample.ground_truth(n_frames=FRAMES, bodyparts=[f"b{i}" for i in range(6)])
    rng = np.random.default_rng(4)
    rows = {}
    for noise in NOISE_PX:
        series = []
        for k in range(len(truth.keypoints)):
            for c in range(2):
                x = truth.position[:, 0, k, c].astype(np.float64)
                if noise:
                    x = x + rng.normal(0, noise, FRAMES)
                series.append(np.ascontiguousarray(x.astype(np.float32)))
        rows[f"x/y, {noise} px noise"] = _sizes(series)
    like = np.clip(1 - np.abs(rng.normal(0, 0.02, (6, FRAMES))), 0, 1).astype(np.float32)
    rows["likelihood near 1"] = _sizes([np.ascontiguousarray(v) for v in like])
    print("| data | byte planes (B/value) | Blosc bit-shuffle bound (B/value) |")
    print("|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['byte_planes_B_per_value']:.3f} | "
              f"{r['blosc_bitshuffle_B_per_value']:.3f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "codec.json").write_text(json.dumps({"frames": FRAMES, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
