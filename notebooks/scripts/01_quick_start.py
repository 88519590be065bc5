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
# # element-pose quick start
#
# This notebook runs the pipeline on generated sample data, shows the pipeline's
# tables, adds a recording by hand, and plots a trajectory. It takes well under a
# minute and needs no GPU.
#
# It uses the database element-pose is configured for: the embedded PostgreSQL by
# default (started on first use), or a server given by `DJ_HOST` / `datajoint.json`.
# Data go to the first folder of `ELEMENT_POSE_ROOT_DIRS` (default:
# `<ELEMENT_POSE_HOME>/demo`). Re-running the notebook is safe.

# %%
# %matplotlib inline
import datetime
import logging

import matplotlib.pyplot as plt
import numpy as np

logging.basicConfig(level=logging.WARNING)

# %% [markdown]
# ## 1. Sample data through the whole pipeline
#
# `run_demo(mode="load")` generates a small DeepLabCut project, a session video and
# DeepLabCut-format pose outputs, fills lab/subject/session, registers the recording
# and a model, and ingests the outputs with `populate()` (load mode: what a lab with
# existing DeepLabCut results does). It returns a summary per body part.

# %%
from element_pose.ops.demo import run_demo

summary = run_demo(mode="load")
summary

# %% [markdown]
# ## 2. The pipeline
#
# Importing `workflow.pipeline` connects to the database and activates the schemas.
# The diagram is DataJoint's own where Graphviz's `dot` is installed; elsewhere
# `element_pose.ops.diagram.show()` shows a picture drawn from the same schemas
# (`docs/images/pipeline.png`, kept current by the tests).

# %%
from element_pose.ops import diagram
from workflow.pipeline import lab, model, session, subject, train

diagram.show()

# %% [markdown]
# ## 3. A subject, session and recording by hand
#
# With your own data, the video files must lie under one of the root folders
# (`ELEMENT_POSE_ROOT_DIRS`); the database stores paths relative to them. Here a
# second short video and its DeepLabCut outputs are generated first.

# %%
from element_pose import sample

roots = model.roots()  # ELEMENT_POSE_ROOT_DIRS and ELEMENT_POSE_PROCESSED_DIR
video = roots.root_dirs()[0] / "sessions" / "nb-mouse" / "session1" / "camera0.mp4"
outputs = roots.processed_dir() / "load_mode_outputs" / "nb-mouse_session1"
if not video.is_file():
    sample.make_video(video, n_frames=150, fps=30.0, seed=11)
if not any(outputs.glob("*.h5")):
    truth = sample.ground_truth(n_frames=150, fps=30.0, seed=11)
    sample.make_dlc_output(truth, video, outputs, seed=11)
video

# %%
subject.Subject.insert1(
    {"subject": "nb-mouse", "sex": "M", "species": "Mus musculus",
     "subject_birth_date": datetime.date(2025, 6, 1)},
    skip_duplicates=True)
session_key = {"subject": "nb-mouse", "session_id": 1}
session.Session.insert1(
    {**session_key, "session_datetime": datetime.datetime(2026, 2, 1, 10, 0),
     "session_description": "open field, by hand"},
    skip_duplicates=True)
recording = model.VideoRecording.insert_recording(
    session_key, 0, {"device": "camera0"}, [video], "added by hand",
    skip_duplicates=True)
model.RecordingInfo.populate(recording)
model.RecordingInfo & recording

# %% [markdown]
# A pose estimation task pairs a recording with a model. In `load` mode it reads
# existing DeepLabCut outputs from `output_dir`; in `trigger` mode `populate()` runs
# inference. Here the model `demo_load` registered by the demo is reused.

# %%
task = model.PoseEstimationTask.insert_estimation_task(
    {**recording, "model_name": "demo_load"}, "load", output_dir=outputs,
    skip_duplicates=True)
model.PoseEstimation.populate(task, reserve_jobs=True)
model.PoseEstimation & task

# %% [markdown]
# ## 4. Query and plot
#
# Each body part's x, y and likelihood are float32 arrays, one row per individual
# and body part. `get_trajectory` returns a DeepLabCut-style DataFrame;
# `fetch_pose` the in-memory pose model with its time base.

# %%
model.PoseEstimation.BodyPartPosition & task

# %%
trajectory = model.PoseEstimation.get_trajectory(task)
trajectory.head()

# %%
pose = model.PoseEstimation.fetch_pose(task)
seconds = pose.time()
fig, (ax_xy, ax_t) = plt.subplots(1, 2, figsize=(11, 4))
for k, part in enumerate(pose.keypoints):
    ax_xy.plot(pose.position[:, 0, k, 0], pose.position[:, 0, k, 1], lw=1, label=part)
ax_xy.set(xlabel="x (px)", ylabel="y (px)", title="trajectories")
ax_xy.invert_yaxis()  # image coordinates: (0, 0) is the top-left pixel
ax_xy.set_aspect("equal")
ax_xy.legend(fontsize="small")
nose = pose.keypoints.index("nose")
ax_t.plot(seconds, pose.position[:, 0, nose, 0], label="x")
ax_t.plot(seconds, pose.position[:, 0, nose, 1], label="y")
ax_t.set(xlabel="time (s)", ylabel="px", title="nose")
ax_t.legend()
fig.tight_layout()
plt.show()
print(f"{pose.n_frames} frames, mean likelihood {np.nanmean(pose.confidence):.3f}")

# %% [markdown]
# ## Next
#
# * `element-pose status`: what is done, to do, reserved or in error, per table.
# * `element-pose worker`: run the computations from the job queues (any number of
#   workers, on any number of machines, may share one database); see
#   `docker/compose.yaml` for a deployment with GPU workers.
