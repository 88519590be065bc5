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
# # Export to NWB and publish on DANDI
#
# Query results become NWB files (ndx-pose): one per subject and session, with the
# camera, the skeleton, the source video and real time. They pass nwbinspector and
# `dandi validate`, and `dandi_sync.sync` uploads only what is new.
#
# To upload, set `DANDI_INSTANCE` (`dandi-sandbox`, `dandi` or an API URL) and
# `DANDI_API_KEY` before starting Jupyter; without them the upload cell only says so.

# %%
import os
import tempfile
from pathlib import Path

from element_pose.ops.demo import run_demo

run_demo(mode="load")
from workflow.pipeline import publish

query = {"subject": "demo-mouse", "model_name": "demo_load"}
out = Path(tempfile.mkdtemp(prefix="element-pose-nwb-"))
files = publish.export_nwb(query, out)
files[0].relpath

# %%
from element_pose.export.nwb import check_nwb, read_pose_from_nwb

check_nwb(files[0].path)  # raises on any critical nwbinspector message
pose = read_pose_from_nwb(files[0].path)  # what movement reads by default
print(pose.keypoints, pose.position.shape, f"{pose.time()[-1]:.2f} s")

# %%
from element_pose.export.dandi import check_folder

# nwbinspector + dandi validate on the export folder (`element-pose validate FOLDER`)
for finding in check_folder(out):
    print(finding)

# %% [markdown]
# ## Publish
#
# `dandi_sync.sync` exports what is new into a local dandiset folder (DANDI layout,
# videos beside the files), validates it, uploads new or changed files and records
# each upload in `publish.DandiUpload`. The same runs from cron as
# `element-pose dandi-sync --dandiset 000123`.

# %%
instance = os.environ.get("DANDI_INSTANCE")
if instance and os.environ.get("DANDI_API_KEY"):
    dandiset_id = os.environ.get("DANDISET_ID", "000123")
    from element_pose.ops import dandi_sync

    report = dandi_sync.sync(dandiset_id, out / dandiset_id, instance=instance, query=query)
    print("uploaded:", report.uploaded)
    display(publish.DandiUpload & {"dandiset_id": dandiset_id})
else:
    print("set DANDI_INSTANCE and DANDI_API_KEY to upload")
