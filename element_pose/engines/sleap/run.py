"""Train a SLEAP model with sleap-nn's own training API, into a model set element-pose reads.

:func:`train` reads the labelled set (:mod:`~element_pose.engines.sleap.labels`),
holds out the same frames every engine holds out
(:meth:`element_pose.core.labels.LabelSet.split`), writes them as ``train.slp`` and
``test.slp`` (images embedded) with ``labels.json`` (the frame ids and their split),
and trains each network of the model type with
``sleap_nn.training.model_trainer.ModelTrainer`` (the held-out frames are its
validation set, which picks ``best.ckpt``; with ``test_fraction: 0`` it validates on
the training frames).  The model set is built in a temporary folder and renamed into
place when every network is trained, so a failed run leaves no partial model.

sleap-nn logs through loguru to standard output; while it trains, its records go to
the logger ``sleap_nn`` instead (library code does not print).  Each epoch is reported
as an INFO record of ``element_pose.engines.sleap.progress`` (network, epoch/total,
losses, elapsed, estimated time left; the values also as the record's attributes) and
drawn as a tqdm bar when standard error is a terminal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.labels import LabelSet
from element_pose.engines.base import EngineError
from element_pose.engines.sleap import model as sm
from element_pose.engines.sleap.labels import read_labels, write_frames
from element_pose.engines.sleap.params import SleapTrainingParams

__all__ = ["LABELS_JSON", "TrainedSet", "accelerator", "resolve_device", "train"]

log = logging.getLogger(__name__)
progress_log = logging.getLogger("element_pose.engines.sleap.progress")

#: The labelled frames of a trained model set and their split.
LABELS_JSON = "labels.json"
#: Networks of each model type, in inference order.
RUNS = {"single_instance": ("single_instance",), "bottomup": ("bottomup",),
        "topdown": ("centroid", "centered_instance")}
#: Network -> the networks of its model type.
RUNS_OF = {run: runs for runs in RUNS.values() for run in runs}


class TrainedSet:
    """What :func:`train` made: the model set folder and how it was trained.

    Attributes:
        folder: The model set.
        model_type: ``single_instance``, ``topdown`` or ``bottomup``.
        runs: Its model folders, in inference order.
        configs: The effective sleap-nn configuration of each network, by run name.
        test: The held-out frame ids.
        wall_time: Seconds spent training.
        device: The device trained on (``cpu``, ``cuda``, ``cuda:N``).
    """

    def __init__(self, folder: Path, model_type: str, runs: list[Path],
                 configs: dict[str, Any], test: list[str], wall_time: float,
                 device: str) -> None:
        self.folder, self.model_type, self.runs = folder, model_type, runs
        self.configs, self.test = configs, test
        self.wall_time, self.device = wall_time, device


def resolve_device(device: str | None) -> str:
    """The torch device to use: the one given, else ``cuda`` when torch sees one, else
    ``cpu``."""
    if device and device != "auto":
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def accelerator(device: str | None) -> tuple[str, list[int] | None]:
    """sleap-nn's ``trainer_accelerator`` and device indices for a torch device name."""
    if not device or device == "auto":
        return "auto", None
    name, _, index = str(device).partition(":")
    if name == "cuda":
        return "gpu", [int(index)] if index else None
    if name in ("cpu", "mps"):
        return name, None
    raise EngineError(f"device {device!r} is not cpu, mps, cuda or cuda:N")


def _choose_model_type(params: SleapTrainingParams, labels: LabelSet) -> str:
    width = int(np.isfinite(labels.xy).all(axis=-1).any(axis=-1).sum(axis=1).max())
    if params.model_type == "auto":
        return "single_instance" if width <= 1 else "topdown"
    if params.model_type == "single_instance" and width > 1:
        raise EngineError(f"model_type single_instance, but frames label up to {width} "
                          "animals: train topdown or bottomup")
    return params.model_type


def _head(run: str, params: SleapTrainingParams, edges: list[tuple[str, str]]) -> dict:
    confmaps: dict[str, Any] = {"sigma": params.sigma, "output_stride": params.output_stride}
    if run == "centroid":
        confmaps["anchor_part"] = params.anchor_part
    elif run != "bottomup":
        confmaps["part_names"] = None
    if run == "bottomup":
        if not edges:
            raise EngineError("bottomup needs a skeleton with edges (part affinity fields)")
        return {"bottomup": {"confmaps": {**confmaps, "part_names": None, "loss_weight": 1.0},
                             "pafs": {"edges": None, "sigma": params.sigma * 2,
                                      "output_stride": max(params.output_stride, 4),
                                      "loss_weight": 1.0}}}
    if run == "centered_instance" and params.anchor_part:
        confmaps["anchor_part"] = params.anchor_part
    return {run: {"confmaps": confmaps}}


def _config(run: str, params: SleapTrainingParams, files: dict[str, Path], folder: Path,
            device: str | None, edges: list[tuple[str, str]]):
    """sleap-nn's training configuration (an OmegaConf ``DictConfig``) of one network."""
    from omegaconf import OmegaConf
    from sleap_nn.config.get_config import get_data_config, get_model_config, get_trainer_config
    from sleap_nn.config.training_job_config import TrainingJobConfig

    accel, indices = accelerator(device)
    data = get_data_config(
        train_labels_path=[str(files["train"])], val_labels_path=[str(files["val"])],
        use_same_data_for_val=files["val"] == files["train"],
        scale=params.scale, crop_size=params.crop_size if run == "centered_instance" else None,
        use_augmentations_train=params.augmentation,
        geometry_aug="rotation" if params.augmentation else None)
    weights = _initial_weights(run, params)
    model = get_model_config(
        pretrained_backbone_weights=weights,
        pretrained_head_weights=weights if params.weight_init != "random"
        and params.weight_init.with_heads else None,
        backbone_config={"unet": {"filters": params.filters, "filters_rate": params.filters_rate,
                                  "max_stride": params.max_stride,
                                  "output_stride": params.output_stride}},
        head_configs=_head(run, params, edges))
    trainer = get_trainer_config(
        batch_size=params.batch_size, max_epochs=params.epochs, seed=params.seed,
        learning_rate=params.learning_rate,
        min_train_steps_per_epoch=params.min_train_steps_per_epoch,
        trainer_accelerator=accel, trainer_device_indices=indices,
        trainer_num_devices=1 if accel != "auto" or indices else None,
        enable_progress_bar=False, save_ckpt=True, ckpt_save_last=len(RUNS_OF[run]) == 1,
        ckpt_dir=str(folder), run_name=run,
        use_wandb=False)
    config = TrainingJobConfig(data_config=data, model_config=model,
                               trainer_config=trainer).to_sleap_nn_cfg()
    for key, value in (params.config_overrides or {}).items():
        OmegaConf.update(config, str(key), value, force_add=True)
    return config


def _initial_weights(run: str, params: SleapTrainingParams) -> str | None:
    """The checkpoint a network starts from: the same network of the model set named.

    Raises:
        EngineError: the checkpoint does not exist (named).
    """
    init = params.weight_init
    if init == "random":
        return None
    if not init.snapshot_path:
        raise EngineError("weight_init names a model, but no snapshot_path was resolved "
                          "from it (ModelTraining resolves it)")
    given = Path(init.snapshot_path)
    sibling = given.parent.parent / run / given.name  # a top-down pair: each its own
    path = sibling if sibling.is_file() else given
    if not path.is_file():
        raise EngineError(f"weight_init snapshot not found: {path}")
    log.info("the %s network starts from %s", run, path)
    return str(path)


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(max(0, round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _metric(metrics: Mapping[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _progress_callback(run: str, stream):
    """A Lightning callback that reports each finished epoch (see the module docstring)."""
    from lightning.pytorch.callbacks import Callback

    class EpochProgress(Callback):
        def __init__(self) -> None:
            self.t0 = time.perf_counter()
            self.bar = None
            self.losses: list[float] = []
            self.epochs: list[dict[str, Any]] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            # the epoch's logged train loss is aggregated only after the epoch-end hooks
            with contextlib.suppress(Exception):
                loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
                self.losses.append(float(loss.detach() if hasattr(loss, "detach") else loss))

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            with contextlib.suppress(Exception):  # progress must never break training
                self._report(trainer)

        def _report(self, trainer) -> None:
            epoch, total = int(trainer.current_epoch) + 1, int(trainer.max_epochs)
            loss = float(np.mean(self.losses)) if self.losses else None
            self.losses = []
            valid = _metric(trainer.callback_metrics, "val/loss")
            elapsed = time.perf_counter() - self.t0
            eta = elapsed / epoch * (total - epoch)
            self.epochs.append({"epoch": epoch, "train_loss": loss, "valid_loss": valid,
                                "elapsed": elapsed})
            progress_log.info(
                "training %s epoch %d/%d: train loss %s%s, %s elapsed, about %s left", run,
                epoch, total, f"{loss:.5f}" if loss is not None else "?",
                f", valid loss {valid:.5f}" if valid is not None else "",
                _duration(elapsed), _duration(eta),
                extra={"progress": "training", "network": run, "epoch": epoch,
                       "epochs": total, "loss": loss, "valid_loss": valid,
                       "elapsed": elapsed, "eta": eta})
            if stream is not None:
                if self.bar is None:
                    from tqdm import tqdm

                    self.bar = tqdm(total=total, desc=f"training {run}", file=stream,
                                    leave=False, mininterval=0)
                self.bar.update(1)

        def on_train_end(self, trainer, pl_module) -> None:
            if self.bar is not None:
                self.bar.close()

    return EpochProgress()


def _terminal():
    try:
        return sys.stderr if sys.stderr.isatty() else None
    except (AttributeError, ValueError):
        return None


@contextlib.contextmanager
def sleap_logging() -> Iterator[None]:
    """Send sleap-nn's loguru records to the logger ``sleap_nn`` (not standard output)."""
    import sleap_nn
    from loguru import logger

    target = logging.getLogger("sleap_nn")
    logger.remove()
    sink = logger.add(lambda message: target.log(
        message.record["level"].no, "%s", message.record["message"]),
        level="INFO", format="{message}")
    try:
        yield
    finally:
        logger.remove(sink)
        with contextlib.suppress(Exception):
            sleap_nn._add_default_sink("stdout")


def _train_network(config, run: str) -> list[dict[str, Any]]:
    """Train one network; its epochs as reported (epoch, train_loss, valid_loss, elapsed)."""
    from sleap_nn.training.model_trainer import ModelTrainer

    callback = _progress_callback(run, _terminal())

    class ReportingTrainer(ModelTrainer):
        """sleap-nn's trainer with the epoch progress callback added."""

        def _setup_loggers_callbacks(self, *args, **kwargs):
            loggers, callbacks = super()._setup_loggers_callbacks(*args, **kwargs)
            from lightning.pytorch.callbacks import ModelSummary

            # max_depth 0: Lightning's summary table (printed) is not drawn
            return loggers, [*callbacks, callback, ModelSummary(max_depth=0)]

    try:
        ReportingTrainer.get_model_trainer_from_config(config).train()
    except Exception as exc:
        raise EngineError(f"sleap-nn failed to train the {run} network: "
                          f"{type(exc).__name__}: {exc}") from exc
    return callback.epochs


def _write_labels(labels: LabelSet, source: str | Path, train: list[str], test: list[str],
                  folder: Path, test_fraction: float) -> dict[str, Path]:
    files = {"train": write_frames(labels, train, folder / "train.slp")}
    files["val"] = write_frames(labels, test, folder / "test.slp") if test else files["train"]
    held = set(test)
    (folder / LABELS_JSON).write_text(json.dumps({
        "source": str(source), "frames": labels.frames, "keypoints": labels.keypoints,
        "individuals": labels.individuals, "skeleton": [list(e) for e in labels.skeleton],
        "root": str(labels.root) if labels.root is not None else None,
        "scorer": labels.scorer, "test_fraction": test_fraction,
        "test": [f in held for f in labels.frames],
        "xy": np.where(np.isfinite(labels.xy), labels.xy, None).tolist()}))
    return files


def train(source: str | Path, workdir: str | Path, params: Mapping[str, Any], *,
          device: str | None = None, train_only: Iterable[str] = ()) -> TrainedSet:
    """Train a model set from labelled frames into ``workdir/model``.

    Args:
        source: A DeepLabCut project (``config.yaml`` or folder) or a ``.slp`` (or a
            folder holding one).
        workdir: The run's folder; ``model/`` in it is replaced.
        params: :class:`SleapTrainingParams` keys (validated here).
        device: ``cpu``, ``cuda``, ``cuda:N`` (default: the parameters', else auto).
        train_only: Frame ids never held out (frames a refinement iteration added).

    Raises:
        EngineError: no labelled frames, bad labels, a model type the labels do not
            fit, or sleap-nn failing (its message).
        element_pose.core.params.ParamsError: invalid parameters.
    """
    p = SleapTrainingParams.check(dict(params))
    device = resolve_device(device or p.device)
    workdir = Path(workdir)
    labels = read_labels(source, images_to=workdir / "images")
    model_type = _choose_model_type(p, labels)
    train_ids, test_ids = labels.split(p.test_fraction, train_only=train_only)
    if not train_ids:
        raise EngineError(f"no labelled frame of {source} is left to train on")
    workdir.mkdir(parents=True, exist_ok=True)
    final = workdir / "model"
    tmp = workdir / ".model.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    t0 = time.perf_counter()
    try:
        files = _write_labels(labels, source, train_ids, test_ids, tmp, p.test_fraction)
        configs = {}
        for run in RUNS[model_type]:
            config = _config(run, p, files, tmp, device, labels.skeleton)
            log.info("training the sleap-nn %s network on %d frames (%d held out)", run,
                     len(train_ids), len(test_ids))
            with sleap_logging():
                epochs = _train_network(config, run)
            (tmp / run / sm.EPOCHS).write_text(json.dumps(epochs))
            configs[run] = sm.read_config(tmp / run)
        (tmp / sm.MANIFEST).write_text(json.dumps({
            "model_type": model_type, "runs": list(RUNS[model_type]),
            "individuals": labels.individuals, "labels": LABELS_JSON,
            "train": "train.slp", "test": "test.slp" if test_ids else None}))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return TrainedSet(final, model_type, [final / r for r in RUNS[model_type]],
                      _rebase(configs, tmp, final), test_ids, time.perf_counter() - t0,
                      device)


def _rebase(value: Any, old: Path, new: Path) -> Any:
    """Paths of the temporary folder in a configuration, moved to the model set's."""
    return json.loads(json.dumps(value, default=str).replace(str(old), str(new)))
