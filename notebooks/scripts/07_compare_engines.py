# ---
# jupyter:
#   jupytext:
#     formats: ipynb,scripts//py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Compare engines: DeepLabCut and SLEAP on one labelled set
#
# One labelled set, two engines, the same tables: a `TrainingParamSet` says which
# engine trains (`"engine": "sleap"`; DeepLabCut is the default), `ModelTraining`
# trains, `register_model` registers, `ModelEvaluation` evaluates. Every evaluation
# also stores element-pose's **own** scores of the predictions
# (`ModelEvaluation.Accuracy`, `.BodyPartAccuracy`: RMSE and PCK at 2, 5 and 10 px) on
# the **same held-out frames** for every engine, so `rank_models` can rank models
# whatever engine made them.
#
# Tiny networks and few epochs on the CPU (a minute or two each): the point is the
# comparison, not the accuracy.

# %%
# %matplotlib inline
import logging

from element_pose import sample
from element_pose.ops.demo import QUICK_TRAINING_PARAMS, prepare_environment

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
root = prepare_environment()
from element_pose.processing.ranking import plot_model_ranking
from element_pose.schemas.compare import body_part_scores, rank_models
from workflow.pipeline import model, train

# %% [markdown]
# ## 1. One labelled set
#
# A generated DeepLabCut project: 20 labelled frames of coloured markers
# (128 x 96 px). Either engine reads it; SLEAP labels (`VideoSet.insert_from_slp`)
# would do as well.

# %%
SET = 70
config = root / "nb07_project" / "config.yaml"
if not config.is_file():
    config = sample.make_dlc_project(root / "nb07_project", n_frames=40, n_labeled=20,
                                     width=128, height=96)
if not (train.VideoSet & {"video_set_id": SET}):
    train.VideoSet.insert_from_project(SET, config, "notebook 07: one labelled set")
train.VideoSet.File & {"video_set_id": SET}

# %% [markdown]
# ## 2. Two parameter sets, one per engine
#
# Each engine checks its own parameters at insert (a wrong key or value is refused,
# named). `element-pose params deeplabcut` and `element-pose params sleap` list them.

# %%
engines = {
    "dlc": {**QUICK_TRAINING_PARAMS, "device": "cpu", "seed": 7},  # cspnext_s, 20 epochs
    "sleap": {"engine": "sleap", "epochs": 6, "min_train_steps_per_epoch": 20,
              "filters": 16, "max_stride": 16, "learning_rate": 3e-3, "batch_size": 4,
              "device": "cpu"},  # a small sleap-nn UNet, single instance
}
tasks = {}
for name, params in engines.items():
    idx = train.TrainingParamSet.insert_new_params(f"notebook 07: {name} quick CPU", params)
    tasks[name] = {"video_set_id": SET, "paramset_idx": idx, "training_id": 0}
    train.TrainingTask.insert1({**tasks[name], "project_path": model.roots().relative(
        config.parent)}, skip_duplicates=True)
train.TrainingParamSet & list(tasks.values())

# %% [markdown]
# ## 3. Train, register, evaluate: the same calls for both

# %%
for name, task in tasks.items():
    train.ModelTraining.populate(task, reserve_jobs=True)
    if not (model.Model & {"model_name": f"nb07_{name}"}):
        train.ModelTraining.register_model(task, f"nb07_{name}")
model.ModelEvaluation.populate([{"model_name": f"nb07_{name}"} for name in tasks],
                               reserve_jobs=True)
train.ModelTraining.proj("engine", "device", "train_time", "best_snapshot") & list(
    tasks.values())

# %% [markdown]
# ## 4. The comparison
#
# `rank_models` walks from the labelled set to every model trained on it, best first by
# element-pose's scores on the held-out frames (`split="train"` and `metric="pck_5"`
# rank otherwise). The engines' own figures stay beside them (`engine_test_rmse`).

# %%
ranking = rank_models(SET)
ranking[["rank", "model_name", "engine", "epochs", "rmse", "pck_2", "pck_5", "pck_10",
         "n_labelled", "n_predicted", "engine_test_rmse"]]

# %%
parts = body_part_scores(SET)
parts.pivot_table(index="body_part", columns="model_name", values="rmse")

# %%
plot_model_ranking(ranking, parts)
