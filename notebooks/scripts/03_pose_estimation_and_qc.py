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
# # Pose estimation, filtering and quality control
#
# Poses of a session (here ingested from DeepLabCut outputs; trigger mode runs
# inference instead), filtered beside the raw estimates, checked with QC figures,
# exported as a tidy table, and turned into speed and rest/movement states.

# %%
# %matplotlib inline
from IPython.display import Image, display

from element_pose.ops.demo import run_demo

run_demo(mode="load")
from workflow.pipeline import analysis, model

key = (model.PoseEstimation & {"model_name": "demo_load"}).keys()[0]
key

# %% [markdown]
# ## 1. Filter (raw poses stay untouched)

# %%
idx = analysis.FilterParamSet.insert_new_params("clean", {"steps": [
    {"step": "confidence_threshold", "threshold": 0.6},
    {"step": "median", "window": 5},
    {"step": "offset_threshold", "window": 7, "threshold": 10},
    {"step": "interpolate", "max_gap": 5},
]})
filtered_key = {**key, "filter_paramset_idx": idx}
analysis.FilteringTask.insert1(filtered_key, skip_duplicates=True)
analysis.FilteredPose.populate(filtered_key)
[step["step"] for step in (analysis.FilteredPose & filtered_key).fetch1("provenance")]

# %% [markdown]
# ## 2. QC figures (PNG files under the processed root, recorded in a table)

# %%
analysis.PoseQC.populate(key)
analysis.FilteredPoseQC.populate(filtered_key)
for name, path in analysis.FilteredPoseQC.figure_paths(filtered_key).items():
    print(name, path)
    display(Image(filename=str(path), width=480))

# %% [markdown]
# ## 3. Poses on the video
#
# `show_frames` draws the keypoints and skeleton on the video's frames: a chosen
# frame range, or (`lowest=N`) the N frames where a body part's likelihood is
# lowest, the frames worth relabelling. Hollow circles mark keypoints below
# `min_confidence`.

# %%
model.PoseEstimation.show_frames(key, lowest=3, body_part="nose")

# %%
model.PoseEstimation.show_frames(key, frames=range(0, 100, 20), columns=5,
                                 panel_width=2.6)

# %% [markdown]
# ## 4. Tidy table and kinematics

# %%
table = analysis.tidy_table(key, filter_paramset_idx=idx)
table.head()

# %%
import matplotlib.pyplot as plt

loco = analysis.locomotion(key, threshold=40.0, keypoints=["left_ear", "right_ear"],
                           filter_paramset_idx=idx)
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(loco.time, loco.speed[:, 0], label="speed (px/s)")
ax.fill_between(loco.time, 0, loco.speed.max(), where=loco.moving[:, 0], alpha=0.2,
                label="moving")
ax.set(xlabel="time (s)")
ax.legend()
plt.show()
print(f"moving {100 * loco.fraction_moving()[0]:.0f}% of the time")
