"""Benchmark data: DeepLabCut-format outputs as ``analyze_videos`` writes them.

A dataset is a folder with ``<video stem><scorer>.h5`` (key ``df_with_missing``),
``<video stem><scorer>_meta.pickle`` (the fields DeepLabCut 3 writes, including
``training set fraction`` which element-deeplabcut reads) and the project's
``config.yaml`` (also saved as ``dj_dlc_config.yaml``, which element-deeplabcut
reads from the output folder).  Positions come from
:func:`element_pose.sample.ground_truth` plus noise, so the same arguments give
the same files (float64 values, as DeepLabCut writes them); datasets are cached
under ``bench/results/tmp/processed/datasets``.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np

from bench.common import TMP

#: A numbered snapshot: element-deeplabcut 0.2.8 does ``int(scorer.split("_")[-1])``.
SCORER = "DLC_Resnet50_benchJan1shuffle1_snapshot_030"
VIDEO_STEM = "video"
TASK = "bench"
FPS = 30.0
RAW_ROOT = TMP / "root"
PROCESSED_ROOT = TMP / "processed"


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One generated DeepLabCut output folder."""

    name: str
    folder: Path
    h5: Path
    config: Path
    video: Path
    n_frames: int
    bodyparts: tuple[str, ...]
    individuals: tuple[str, ...]

    @property
    def n_keypoints(self) -> int:
        """Frames x body parts x individuals (one x, y, likelihood each)."""
        return self.n_frames * len(self.bodyparts) * len(self.individuals)

    @property
    def multi_animal(self) -> bool:
        """Whether the output is in DeepLabCut's multi-animal layout."""
        return len(self.individuals) > 1


def bodyparts(n: int) -> tuple[str, ...]:
    """``n`` body part names."""
    return tuple(f"bodypart{i:02d}" for i in range(n))


def _config(parts: tuple[str, ...], individuals: tuple[str, ...], project: Path) -> dict:
    cfg = {
        "Task": TASK, "scorer": "bench", "date": "Jan1", "project_path": str(project),
        "engine": "pytorch", "video_sets": {}, "TrainingFraction": [0.95], "iteration": 0,
        "default_net_type": "resnet_50", "snapshotindex": -1, "batch_size": 8,
        "multianimalproject": len(individuals) > 1,
        "skeleton": [[parts[0], parts[1]], [parts[1], parts[2]]], "pcutoff": 0.6,
    }
    if len(individuals) > 1:
        cfg.update(individuals=list(individuals), uniquebodyparts=[],
                   multianimalbodyparts=list(parts), bodyparts="MULTI!")
    else:
        cfg["bodyparts"] = list(parts)
    return cfg


def make_dataset(n_frames: int, n_bodyparts: int = 20, n_individuals: int = 1,
                 seed: int = 0) -> Dataset:
    """Write (or reuse) a DeepLabCut output of ``n_frames`` x body parts x individuals."""
    from element_pose import sample
    from element_pose.core.pose import SINGLE_INDIVIDUAL
    from element_pose.io import dlc

    name = f"{'ma' if n_individuals > 1 else 'sa'}{n_individuals}_{n_frames}x{n_bodyparts}_f64"
    folder = PROCESSED_ROOT / "datasets" / name
    project = RAW_ROOT / "projects" / name
    video = RAW_ROOT / "videos" / f"{VIDEO_STEM}.mp4"
    parts = bodyparts(n_bodyparts)
    truth_individuals = ((SINGLE_INDIVIDUAL,) if n_individuals == 1
                         else tuple(f"animal{i}" for i in range(n_individuals)))
    h5 = folder / f"{VIDEO_STEM}{SCORER}.h5"
    config = project / "config.yaml"
    ds = Dataset(name, folder, h5, config, video, n_frames, parts, truth_individuals)
    if h5.is_file() and config.is_file() and video.is_file():
        return ds
    if not video.is_file():  # a placeholder: RecordingInfo is inserted, not probed
        sample.make_video(video, n_frames=2, seed=seed)
    truth = sample.ground_truth(n_frames=n_frames, fps=FPS, bodyparts=parts,
                                n_individuals=n_individuals, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    sample.make_dlc_output(truth, video, folder, scorer=SCORER, seed=seed, write_meta=False)
    _as_float64(h5, seed)
    meta = {
        "start": 0.0, "stop": 1.0, "run_duration": 1.0, "Scorer": SCORER,
        "DLC-model-config file": {}, "fps": FPS, "batch_size": 8,
        "frame_dimensions": (120, 160), "nframes": n_frames,
        "iteration (active-learning)": 0, "training set fraction": 0.95,
        "cropping": False, "cropping_parameters": [0, 160, 0, 120],
        "bodyparts": list(parts),
        "individuals": list(truth.individuals) if n_individuals > 1 else ["single"],
    }
    with open(folder / f"{VIDEO_STEM}{SCORER}_meta.pickle", "wb") as f:
        pickle.dump({"data": meta}, f, pickle.HIGHEST_PROTOCOL)
    cfg = _config(parts, tuple(truth.individuals), project)
    dlc.write_config(cfg, config)
    dlc.write_config(cfg, folder / "dj_dlc_config.yaml")
    return ds


def _as_float64(h5: Path, seed: int = 0) -> None:
    """Rewrite an h5 with full-precision float64 values, as DeepLabCut writes them.

    ``sample`` writes float32; float32 values merely widened to float64 would
    flatter any compression, so sub-pixel float64 noise is added to x and y and a
    float64 jitter to the likelihood (kept in [0, 1]).
    """
    import pandas as pd

    df = pd.read_hdf(h5).astype(np.float64)
    rng = np.random.default_rng(seed + 1000)
    coords = df.columns.get_level_values(-1)
    xy = np.asarray(coords != "likelihood")
    values = df.to_numpy()
    values[:, xy] += rng.normal(0, 0.05, (len(df), int(xy.sum())))
    like = values[:, ~xy] + rng.uniform(-1e-4, 1e-4, (len(df), int((~xy).sum())))
    values[:, ~xy] = np.clip(like, 0.0, 1.0)
    df = pd.DataFrame(values, index=df.index, columns=df.columns)
    tmp = h5.with_name(h5.name + ".tmp")
    df.to_hdf(tmp, key="df_with_missing", format="table", mode="w")
    tmp.replace(h5)


def positions_checksum(h5: Path) -> float:
    """A cheap fingerprint of an h5's values (to check a round trip)."""
    import pandas as pd

    return float(np.nansum(pd.read_hdf(h5).to_numpy(dtype=np.float64)))
