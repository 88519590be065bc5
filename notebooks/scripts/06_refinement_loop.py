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
# # The refinement loop: train, estimate, correct, retrain
#
# A lab's loop, end to end, on a generated project:
#
# 1. **iteration 0**: a model trained on a few labelled frames;
# 2. its **estimation** of a session video;
# 3. the frames it got most wrong **selected** (`refine.FrameSelection`,
#    `SelectedFrames`) and written as a **labelling set** (`LabellingSet`) that
#    napari-deeplabcut opens;
# 4. the **corrections** (here: the generator's known truth written where a person would
#    correct the labels) imported as a new version of the labelled set;
# 5. **iteration 1** fine-tuned from iteration 0 on the merged labels, evaluated on the
#    *same* held-out frames: did the loop help?
# 6. iteration 0's estimation listed as **superseded** and re-run with the new model.
#
# Everything runs on the CPU in a few minutes (tiny networks, few epochs): a model that
# runs, not an accurate one.

# %%
# %matplotlib inline
import datetime
import logging

import numpy as np
import pandas as pd

from element_pose import sample
from element_pose.ops.demo import QUICK_TRAINING_PARAMS, prepare_environment

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
root = prepare_environment()
from element_pose.ops import iteration
from element_pose.processing.refinement import lineage_figure
from workflow.pipeline import lab, model, refine, session, subject, train

# %% [markdown]
# ## 1. Iteration 0: a few labelled frames
#
# A generated DeepLabCut project (12 labelled frames of coloured markers) becomes
# VideoSet 60; a quick CPU training (`QUICK_TRAINING_PARAMS`, 20 epochs) runs through
# `ModelTraining.populate` and is registered as a model.

# %%
SET = 60
config = root / "nb06_project" / "config.yaml"
if not config.is_file():
    config = sample.make_dlc_project(root / "nb06_project", n_frames=60, n_labeled=12)
if not (train.VideoSet & {"video_set_id": SET}):
    train.VideoSet.insert_from_project(SET, config, "notebook 06: iteration 0 labels")
paramset = train.TrainingParamSet.insert_new_params(
    "notebook 06: quick CPU", {**QUICK_TRAINING_PARAMS, "device": "cpu"})
first = {"video_set_id": SET, "paramset_idx": paramset, "training_id": 0}
train.TrainingTask.insert1({**first, "project_path": model.roots().relative(config.parent)},
                           skip_duplicates=True)
train.ModelTraining.populate(first, reserve_jobs=True)
if not (model.Model & {"model_name": "nb06_iter0"}):
    train.ModelTraining.register_model(first, "nb06_iter0")
train.ModelTraining & first

# %% [markdown]
# ## 2. Its estimation of a session
#
# A session video whose true positions we know (`sample.make_video` returns them).

# %%
lab.Lab.insert1({"lab": "nb06lab", "lab_name": "Loop Lab", "institution": "Uni",
                 "time_zone": "Europe/Zurich"}, skip_duplicates=True)
lab.Device.insert1({"device": "nb06cam", "description": "top view"}, skip_duplicates=True)
subject.Subject.insert1({"subject": "nb06-mouse", "sex": "F", "species": "Mus musculus",
                         "subject_birth_date": datetime.date(2025, 9, 1)},
                        skip_duplicates=True)
session_key = {"subject": "nb06-mouse", "session_id": 1}
session.Session.insert1({**session_key, "session_datetime": datetime.datetime(2026, 3, 1, 9),
                         "session_description": "open field"}, skip_duplicates=True)
video = root / "nb06_session" / "cam0.mp4"
truth = sample.make_video(video, n_frames=90, seed=7)  # the video and its known truth
recording = {**session_key, "recording_id": 0}
if not (model.VideoRecording & recording):
    model.VideoRecording.insert_recording(session_key, 0, {"device": "nb06cam"}, [video])
model.RecordingInfo.populate(recording)
old = model.PoseEstimationTask.insert_estimation_task(
    {**recording, "model_name": "nb06_iter0"}, "trigger",
    params={"batch_size": 8, "device": "cpu"}, skip_duplicates=True)
model.PoseEstimation.populate(old, reserve_jobs=True)
model.PoseEstimation & old

# %% [markdown]
# ## 3. Frames to relabel
#
# An `OutlierParamSet` names the criteria (here: frames where the estimate lies far from a
# filtered trajectory, and k-means clusters of the poses for variety); `FrameSelection`
# picks the estimations; `SelectedFrames` scores and chooses the frames;
# `LabellingSet` writes them as a DeepLabCut `labeled-data` folder with the model's
# guesses (`machinelabels-iter<N>.h5`) for napari-deeplabcut.

# %%
outliers = refine.OutlierParamSet.insert_new_params("notebook 06", {"criteria": [
    {"criterion": "fitting", "threshold": 3.0}, {"criterion": "kmeans", "n_clusters": 12}],
    "frames_per_video": 16, "min_gap": 2})
chosen = (refine.FrameSelection.Estimation & old).to_dicts()  # made by an earlier run?
selection = ({"frame_selection_id": chosen[0]["frame_selection_id"]} if chosen else
             refine.FrameSelection.insert_selection(old, outliers, description="round 1"))
refine.SelectedFrames.populate(selection)
refine.LabellingSet.populate(selection)
refine.SelectedFrames.Frame & selection

# %%
folder = refine.LabellingSet.folder_path(selection)
files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
print(f"{sum(f.endswith('.png') for f in files)} images, and:")
[f for f in files if not f.endswith(".png")]

# %% [markdown]
# ## 4. The corrections
#
# A person would open the folder in napari (`napari-deeplabcut`), move the points and
# save: napari-deeplabcut writes `CollectedData_<scorer>.h5` (key `df_with_missing`,
# columns `scorer / bodyparts / coords`, one row per image). Here the generator's truth
# of each chosen frame is written into that file instead, exactly where the person's
# corrections would go.

# %%
images = (refine.LabellingSet.Image & selection).to_dicts(order_by="frame_index")
corrected = next(folder.glob("labeled-data/*/CollectedData_*.h5"))
scorer = corrected.stem.removeprefix("CollectedData_")
columns = pd.MultiIndex.from_product([[scorer], truth.keypoints, ["x", "y"]],
                                     names=["scorer", "bodyparts", "coords"])
index = pd.MultiIndex.from_tuples([tuple(i["frame_id"].split("/")) for i in images])
rows = np.array([truth.position[i["frame_index"], 0].reshape(-1) for i in images])
table = pd.DataFrame(rows.astype(float), index=index, columns=columns)
table.to_hdf(corrected, key="df_with_missing", mode="w")
table.to_csv(corrected.with_suffix(".csv"))
table.head(3)

# %% [markdown]
# `import_corrections` merges them into a new **version** of the labelled set (its
# parent kept, every added or changed frame listed in `VideoSetVersion.Frame`).
# Frames an iteration adds are always training frames: the held-out frames stay the
# same in every iteration, so the scores compare.

# %%
NEW_SET = 61
if not (train.VideoSet & {"video_set_id": NEW_SET}):
    iteration.import_corrections(SET, corrected, video_set_id=NEW_SET,
                                 description="notebook 06: round 1 corrections")
version = {"video_set_id": NEW_SET}
dj_changes = train.VideoSetVersion.Frame & version
print(f"{len(dj_changes & {'change': 'added'})} frames added, "
      f"{len(dj_changes & {'change': 'changed'})} changed")
train.VideoSetVersion & version

# %% [markdown]
# ## 5. Iteration 1, fine-tuned from iteration 0
#
# `next_iteration` makes the training task on the newest version of the set, with the
# previous run's parameters and `weight_init: {"model": "nb06_iter0"}`.

# %%
later = [r for r in iteration.lineage(first) if r["iteration"] == 1]
second = ({k: later[0][k] for k in first} if later
          else iteration.next_iteration(first, params={"epochs": 20}))
train.ModelTraining.populate(second, reserve_jobs=True)
if not (model.Model & {"model_name": "nb06_iter1"}):
    train.ModelTraining.register_model(second, "nb06_iter1")
model.ModelEvaluation.populate([{"model_name": "nb06_iter0"}, {"model_name": "nb06_iter1"}],
                               reserve_jobs=True)
train.TrainingIteration & second

# %% [markdown]
# ### Did the loop help?
#
# One query: the scores of every iteration of the lineage, on the same held-out frames
# (element-pose's own RMSE and PCK, `ModelEvaluation.Accuracy` / `BodyPartAccuracy`).

# %%
scores = iteration.lineage_scores(second)
scores[(scores["split"] == "test") & (scores["body_part"] == "")]

# %%
lineage_figure(scores)

# %% [markdown]
# ## 6. Superseded estimations, re-run
#
# The session's estimation by iteration 0 is now superseded by iteration 1's model;
# `rerun_superseded` runs it again with the newest model (trigger mode, the same
# options). `current_estimations` is what to publish (e.g. to DANDI) from now on.

# %%
pd.DataFrame(iteration.superseded_estimations(session_key))

# %%
new = iteration.rerun_superseded(session_key)
estimations = model.PoseEstimation & session_key
for key in estimations.keys():
    pose = model.PoseEstimation.fetch_pose(key)
    error = np.nanmedian(np.linalg.norm(pose.position - truth.position, axis=-1))
    print(f"{key['model_name']}: median error {error:.1f} px against the truth")
iteration.current_estimations(session_key)
