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
# # Train and evaluate a DeepLabCut 3 model
#
# Labelled frames in, a trained and evaluated model out, all through `populate()`.
# The sample project has 200 labelled frames of coloured markers from four videos; a
# small network (`cspnext_s`, random initialisation, so no download) trained for 10
# epochs here learns them roughly on a CPU in a minute or two (`make demo` trains 40). With your own project, use `"weight_init": "pretrained"` (online)
# or `{"model": "<a registered model>"}` to fine-tune.

# %%
import logging

from element_pose.ops.demo import DEMO_TRAINING_PARAMS, make_sample_data, prepare_environment

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
root = prepare_environment()
files = make_sample_data(root, root / "processed")
from workflow.pipeline import model, train

# %% [markdown]
# ## 1. Labelled data and parameters

# %%
if not (train.VideoSet & {"video_set_id": 2}):
    train.VideoSet.insert_from_project(2, files["config"], "notebook 02 labelled frames")
params = {**DEMO_TRAINING_PARAMS, "epochs": 10, "save_epochs": 5}
paramset_idx = train.TrainingParamSet.insert_new_params("notebook: tiny CPU", params)
task = {"video_set_id": 2, "paramset_idx": paramset_idx, "training_id": 0}
train.TrainingTask.insert1({**task, "project_path": model.roots().relative(
    files["config"].parent)}, skip_duplicates=True)
train.TrainingParamSet & {"paramset_idx": paramset_idx}

# %% [markdown]
# ## 2. Train
#
# Training runs outside any database transaction (DataJoint's tripartite make) on a
# copy of the project that the task owns; your `config.yaml` is never rewritten.

# %%
train.ModelTraining.populate(task, reserve_jobs=True)
row = (train.ModelTraining & task).fetch1()
print(f"trained on {row['device']} in {row['train_time']:.0f} s, "
      f"best snapshot {row['best_snapshot']}, versions {row['engine_versions']}")
train.ModelTraining.Snapshot & task

# %%
import matplotlib.pyplot as plt

stats = row["learning_stats"]
loss = [v for k, v in stats.items() if "loss" in k]
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(loss[0])
ax.set(xlabel="epoch", ylabel="train loss", title="learning curve")
plt.show()

# %% [markdown]
# ## 3. Register and evaluate

# %%
model_key = {"model_name": "notebook_model"}
if not (model.Model & model_key):
    train.ModelTraining.register_model(task, "notebook_model")
model.ModelEvaluation.populate(model_key)
model.ModelEvaluation & model_key

# %%
model.ModelEvaluation.BodyPartError & model_key
