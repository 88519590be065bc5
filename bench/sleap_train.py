"""SLEAP training: ``ModelTraining.populate`` vs sleap-nn on its own, same labels.

One generated DeepLabCut project (20 labelled 128x96 frames), the same sleap-nn
configuration (single-instance UNet, filters 16, max stride 16, ``--epochs`` epochs of
20 batches of 4, CPU).  Three timings, alternated over ``--reps`` repeats after an
untimed warm-up (imports, torch):

* ``populate``: ``ModelTraining.populate`` of a fresh TrainingTask (reading the
  labelled set, the held-out split, writing train/test ``.slp``, training, the insert),
  in this process;
* ``api``: :func:`sleap_nn.train.train` on the ``train.slp``/``test.slp`` that the
  first populate wrote, with the same settings, in this process (it also predicts and
  scores both splits after training, as sleap-nn does);
* ``trainer``: sleap-nn's ``ModelTrainer.get_model_trainer_from_config(config).train()``
  on the populated run's ``training_config.yaml`` (paths moved), in this process: the
  one call ``populate`` makes inside (training only; no predicting or scoring of the
  splits afterwards, which ``ModelEvaluation`` does);
* ``cli``: ``sleap-nn train --config <the populated run's training_config.yaml>`` as a
  subprocess, start-up and imports included (what a user types; it also predicts and
  scores both splits).

Run: ``python -m bench.sleap_train [--epochs 6] [--reps 2]`` from the repository root.
It makes its own embedded PostgreSQL and folders under a temporary folder and removes
them; prints one ``BENCH_RESULT <json>`` line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import cpu_seconds, emit, scratch, summarize

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args(argv)
    with scratch("sleap-train-bench-") as tmp:
        emit(_run(args, tmp))
    return 0


def _run(args: argparse.Namespace, tmp: Path) -> dict:
    from sleap_nn.train import train as sleap_train

    from element_pose import sample
    from workflow import pipeline

    train = pipeline.train
    sample.make_dlc_project(tmp / "raw" / "project", n_frames=40, n_labeled=20, width=128,
                            height=96)
    train.VideoSet.insert_from_project(1, tmp / "raw" / "project" / "config.yaml",
                                       engine="sleap")
    params = {"engine": "sleap", "epochs": args.epochs, "min_train_steps_per_epoch": 20,
              "filters": 16, "max_stride": 16, "learning_rate": 3e-3, "batch_size": 4,
              "device": "cpu"}
    idx = train.TrainingParamSet.insert_new_params("bench", params)
    counter = iter(range(1000))
    model_sets: list[Path] = []

    def populate() -> float:
        task = {"video_set_id": 1, "paramset_idx": idx, "training_id": next(counter)}
        train.TrainingTask.insert1({**task, "project_path": "project"})
        t = time.perf_counter()
        train.ModelTraining.populate(task, suppress_errors=False)
        elapsed = time.perf_counter() - t
        model_sets.append(train.TrainingTask.training_dir(task) / "model")
        return elapsed

    def api() -> float:
        labels = model_sets[0]
        out = tmp / "api"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        sleap_train(
            train_labels_path=[str(labels / "train.slp")],
            val_labels_path=[str(labels / "test.slp")],
            backbone_config={"unet": {"filters": 16, "filters_rate": 1.5, "max_stride": 16,
                                      "output_stride": 2}},
            head_configs={"single_instance": {"confmaps": {
                "part_names": None, "sigma": 2.5, "output_stride": 2}}},
            max_epochs=args.epochs, min_train_steps_per_epoch=20, batch_size=4,
            learning_rate=3e-3, seed=42, save_ckpt=True, ckpt_dir=str(out), run_name="run",
            trainer_accelerator="cpu", enable_progress_bar=False,
            use_augmentations_train=False, geometry_aug=None)
        return time.perf_counter() - t

    def trainer() -> float:
        from omegaconf import OmegaConf
        from sleap_nn.training.model_trainer import ModelTrainer

        labels = model_sets[0]
        out = tmp / "trainer"
        shutil.rmtree(out, ignore_errors=True)
        config = OmegaConf.load(labels / "single_instance" / "training_config.yaml")
        OmegaConf.update(config, "data_config.train_labels_path", [str(labels / "train.slp")])
        OmegaConf.update(config, "data_config.val_labels_path", [str(labels / "test.slp")])
        OmegaConf.update(config, "trainer_config.ckpt_dir", str(out))
        OmegaConf.update(config, "trainer_config.run_name", "run")
        t = time.perf_counter()
        ModelTrainer.get_model_trainer_from_config(config).train()
        return time.perf_counter() - t

    def cli() -> float:
        labels = model_sets[0]
        exe = Path(sys.executable).with_name("sleap-nn")
        out = tmp / "cli"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        subprocess.run([str(exe), "train", "--config",
                        str(labels / "single_instance" / "training_config.yaml"),
                        f"data_config.train_labels_path=[{labels / 'train.slp'}]",
                        f"data_config.val_labels_path=[{labels / 'test.slp'}]",
                        f"trainer_config.ckpt_dir={out}", "trainer_config.run_name=run"],
                       check=True, capture_output=True)
        return time.perf_counter() - t

    populate(), api()  # imports and torch warm-up, untimed
    calls = {"populate": populate, "trainer": trainer, "api": api, "cli": cli}
    times: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    loads: list[float] = []
    order = list(times)
    for rep in range(args.reps):  # rotate the order: none always runs first
        for name in order[rep % 4:] + order[:rep % 4]:
            before = cpu_seconds()  # this process (every thread) and its reaped children
            times[name].append(calls[name]())
            cpu[name].append(cpu_seconds() - before)
            loads.append(os.getloadavg()[0])
    rows = (train.ModelTraining & {"paramset_idx": idx}).to_dicts()
    result = {"frames": 20, "size": "128x96", "epochs": args.epochs,
              "steps_per_epoch": 20, "device": "cpu",
              **{k: summarize(v) for k, v in times.items()},
              "engine_train_time": summarize([float(r["train_time"]) for r in rows[1:]])}
    result["cpu"] = {k: summarize(v) for k, v in cpu.items()}
    result["load_1min"] = summarize(loads)
    result["populate_over_trainer"] = (result["populate"]["median"]
                                       / result["trainer"]["median"])
    result["populate_over_api"] = result["populate"]["median"] / result["api"]["median"]
    result["cli_over_populate"] = result["cli"]["median"] / result["populate"]["median"]
    for schema in pipeline.schemas_in_drop_order():
        schema.drop(prompt=False)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
