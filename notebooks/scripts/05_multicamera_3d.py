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
# # Multi-camera 3D: calibration and triangulation
#
# A synthetic scene with three known cameras: ChArUco board videos calibrate the
# cameras (aniposelib), 2D estimations of each camera are triangulated into 3D,
# and a joint angle is computed. With your data, only the inputs change.

# %%
# %matplotlib inline
import datetime

import numpy as np

from element_pose import sample
from element_pose.sample import threed as sample3d
from element_pose.ops.demo import prepare_environment
from element_pose.io import dlc
from element_pose.io.video import write_video
from workflow.pipeline import lab, model, multicam, session, subject

root = prepare_environment()
folder = root / "multicam"
cameras = sample3d.make_cameras(distortion=False)
lab.Device.insert(({"device": f"cam_{c.name}"} for c in cameras), skip_duplicates=True)
subject.Subject.insert1({"subject": "mc-mouse", "sex": "F", "species": "Mus musculus",
                         "subject_birth_date": datetime.date(2025, 1, 1)},
                        skip_duplicates=True)
session_key = {"subject": "mc-mouse", "session_id": 1}
session.Session.insert1({**session_key, "session_datetime": datetime.datetime(2026, 5, 1)},
                        skip_duplicates=True)

# %% [markdown]
# ## 1. Calibrate from board videos

# %%
videos = sample3d.render_board_videos(cameras, folder / "calibration")
board = multicam.CalibrationParamSet.insert_new_params("6x5 charuco", sample3d.BOARD)
calibration = {**session_key, "calibration_id": 1}
if not (multicam.CalibrationTask & calibration):
    multicam.CalibrationTask.insert_calibration_task(session_key, 1, videos, board)
multicam.Calibration.populate(calibration)
multicam.Calibration.Camera & calibration

# %% [markdown]
# ## 2. 2D estimations of each camera, a camera group, triangulation

# %%
parts = ["nose", "left_ear", "right_ear", "tail_base"]
truth = sample3d.make_trajectory(30, body=np.array(
    [[0, 0, 0], [30, 0, 0], [30, 0, 30], [80, 5, 10]], float))[:, None]
poses = sample3d.project_scene(cameras, truth, individuals=["individual_0"],
                               keypoints=parts)
project = sample.make_dlc_project(folder / "project", n_frames=10, n_labeled=2)
model_key = model.Model.insert_new_model("mc_model", project, skip_duplicates=True)
scorer = "DLC_Resnet50_demoJan1shuffle1_snapshot_best-10"
members = {}
for rid, (camera, pose) in enumerate(poses.items()):
    video = folder / f"{camera}.mp4"
    if not video.is_file():
        write_video(video, [np.zeros((sample3d.H, sample3d.W, 3), np.uint8)] * 30, fps=30.0)
    outputs = model.roots().processed_dir() / "multicam" / camera
    dlc.write_dlc_h5(pose, outputs / f"{video.stem}{scorer}.h5", scorer=scorer)
    key = model.VideoRecording.insert_recording(
        session_key, rid, {"device": f"cam_{camera}"}, [video], skip_duplicates=True)
    model.RecordingInfo.populate(key)
    model.PoseEstimationTask.insert_estimation_task(
        {**key, **model_key}, "load", output_dir=outputs, skip_duplicates=True)
    members[camera] = rid
model.PoseEstimation.populate(session_key)
if not (multicam.CameraGroup & session_key):
    multicam.CameraGroup.insert_camera_group(session_key, 1, 1, members)
params = multicam.TriangulationParamSet.insert_new_params("3d", {
    "score_threshold": 0.5, "angles": {"ear_angle": ["left_ear", "nose", "right_ear"]}})
task = {**session_key, "camera_group_id": 1, **model_key,
        "triangulation_paramset_id": params}
multicam.TriangulationTask.insert1(task, skip_duplicates=True)
multicam.Triangulation.populate(task)
multicam.Triangulation & task

# %%
import matplotlib.pyplot as plt

pose3d = multicam.Triangulation.fetch_pose3d(task)
angles = multicam.Triangulation.joint_angles(task)
fig = plt.figure(figsize=(8, 3))
ax = fig.add_subplot(1, 2, 1, projection="3d")
for k, name in enumerate(pose3d.keypoints):
    ax.plot(*pose3d.position[:, 0, k].T, label=name)
ax.legend(fontsize=6)
ax2 = fig.add_subplot(1, 2, 2)
ax2.plot(pose3d.time(), angles["ear_angle"][:, 0])
ax2.set(xlabel="time (s)", ylabel="ear angle (deg)")
plt.show()
error = np.linalg.norm(pose3d.position - truth, axis=-1)
print(f"median 3D error {np.nanmedian(error):.2f} mm (before aligning axes)")
