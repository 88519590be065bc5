"""Tiny sleap-nn models trained on generated labelled sets (CPU, seconds).

The labelled set is drawn by :mod:`element_pose.sample` (coloured discs on a dark
arena, known positions) and written as a SLEAP ``.slp`` with sleap-io; training is
sleap-nn's own :func:`sleap_nn.train.train`.  Models are small UNets: they predict
poorly, but deterministically, which is all that inference tests need.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

__all__ = ["cli_track", "make_labels", "slp_arrays", "train_tiny_model"]

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 64, 48


def make_labels(root: Path, n_individuals: int = 1, n_frames: int = 40, step: int = 2,
                seed: int = 0) -> Path:
    """A generated video and a ``.slp`` labelling every ``step``-th frame of it."""
    import sleap_io as sio

    from element_pose import sample

    root.mkdir(parents=True, exist_ok=True)
    video_path = root / "train.mp4"
    truth = sample.make_video(video_path, n_frames=n_frames, width=WIDTH, height=HEIGHT,
                              n_individuals=n_individuals, seed=seed)
    skeleton = sio.Skeleton(nodes=list(truth.keypoints),
                            edges=[list(e) for e in truth.skeleton])
    video = sio.load_video(str(video_path))
    tracks = [sio.Track(name=n) for n in truth.individuals] if n_individuals > 1 else []
    frames = []
    for f in range(0, n_frames, step):
        instances = [sio.Instance.from_numpy(np.asarray(truth.position[f, i], np.float64),
                                             skeleton=skeleton,
                                             track=tracks[i] if tracks else None)
                     for i in range(n_individuals)]
        frames.append(sio.LabeledFrame(video=video, frame_idx=f, instances=instances))
    labels = sio.Labels(labeled_frames=frames, videos=[video], skeletons=[skeleton],
                        tracks=tracks)
    path = root / "labels.slp"
    labels.save(str(path))
    return path


def train_tiny_model(root: Path, head: str = "single_instance", n_individuals: int = 1,
                     epochs: int = 8) -> Path:
    """Train one tiny model (``single_instance``, ``bottomup``...); its folder.

    sleap-nn's training logs through loguru and prints; both are kept off the test's
    output.
    """
    from sleap_nn.train import train

    labels = make_labels(root / "data", n_individuals=n_individuals)
    with contextlib.redirect_stdout(io.StringIO()):
        train(train_labels_path=[str(labels)], validation_fraction=0.2,
              backbone_config={"unet": {"filters": 8, "filters_rate": 1.5, "max_stride": 8,
                                        "output_stride": 2}},
              head_configs=head, max_epochs=epochs, min_train_steps_per_epoch=5,
              save_ckpt=True, ckpt_dir=str(root / "models"), run_name=head,
              trainer_accelerator="cpu", enable_progress_bar=False,
              use_augmentations_train=False, seed=0)
    folder = root / "models" / head
    assert (folder / "best.ckpt").is_file(), sorted(p.name for p in folder.iterdir())
    return folder


def cli_track(video: Path, model_folders: list[Path], output: Path, *extra: str,
              command: str = "track") -> Path:
    """``sleap-nn track`` (or ``predict``: the real command line) on the CPU."""
    exe = Path(sys.executable).with_name("sleap-nn")
    cmd = [str(exe), command, "-i", str(video), "-o", str(output), "--device", "cpu"]
    for folder in model_folders:
        cmd += ["-m", str(folder)]
    # the same number of torch threads as this process: CPU kernels sum in an order that
    # depends on it, so exact parity needs both sides to run alike
    import torch

    threads = str(torch.get_num_threads())
    done = subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": threads,
                               "MKL_NUM_THREADS": threads})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return output


def slp_arrays(path: Path, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames, instances, nodes, 2) positions and point scores read with sleap-io
    alone (by track when tracked, else in instance order)."""
    import sleap_io as sio

    labels = sio.load_slp(str(path), open_videos=False)
    n_nodes = len(labels.skeletons[0].nodes)
    slots = max(len(labels.tracks), max(len(lf.instances) for lf in labels.labeled_frames))
    xy = np.full((n_frames, slots, n_nodes, 2), np.nan, np.float32)
    score = np.full((n_frames, slots, n_nodes), np.nan, np.float32)
    for lf in labels.labeled_frames:
        for i, inst in enumerate(lf.instances):
            slot = labels.tracks.index(inst.track) if inst.track is not None else i
            values = inst.numpy(scores=True)
            xy[lf.frame_idx, slot] = values[:, :2]
            score[lf.frame_idx, slot] = np.where(np.isnan(values[:, 0]), np.nan, values[:, 2])
    return xy, score
