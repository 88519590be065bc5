"""NWB PoseTraining of a SLEAP model trained through the tables (issue 28 item 5).

A tiny SLEAP model is trained on a VideoSet of SLEAP labels and registered
(``train.TrainedModel`` links it to its run); its estimation is exported with
``include_training``: the PoseTraining frames are the set's labels (read back with
pynwb in a fresh process), nwbinspector finds nothing critical, and dandi-sync with
training uploads the file to the local test archive.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import numpy as np
import pytest
from support.dandi_server import LocalDandiArchive
from support.sleap_models import HEIGHT, WIDTH, make_labels

from element_pose import sample

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("pipeline")]
API_KEY = "sleap-training-key-0123456789"
TINY = {"engine": "sleap", "epochs": 2, "min_train_steps_per_epoch": 3, "filters": 8,
        "max_stride": 8, "batch_size": 4, "device": "cpu"}

#: Run in a fresh process: every PoseTraining frame's instances as JSON.
_READ_TRAINING = r"""
import json, sys
from pynwb import NWBHDF5IO
with NWBHDF5IO(sys.argv[1], "r", load_namespaces=True) as io:
    behavior = io.read().processing["behavior"]
    training = [c for c in behavior.data_interfaces.values()
                if type(c).__name__ == "PoseTraining"][0]
    out = {}
    for name, frame in training.training_frames.training_frames.items():
        out[name] = {
            "index": int(frame.source_video_frame_index),
            "video": frame.source_video.name,
            "external": [str(f) for f in frame.source_video.external_file[:]],
            "instances": {i.name: {"nodes": [str(n) for n in i.skeleton.nodes[:]],
                                   "xy": [[None if v != v else float(v) for v in p]
                                          for p in i.node_locations[:]]}
                          for i in frame.skeleton_instances.skeleton_instances.values()}}
    print(json.dumps(out))
"""


def test_sleap_model_exports_its_labels_as_pose_training(pipeline, raw_root, unique,
                                                          tmp_path, monkeypatch):
    from element_pose.export.nwb import check_nwb
    from element_pose.ops import dandi_sync

    monkeypatch.delenv("ELEMENT_POSE_DEVICE", raising=False)
    monkeypatch.setenv("DANDI_NO_ET", "1")
    monkeypatch.setenv("DANDI_CACHE", "ignore")
    monkeypatch.delenv("DANDI_API_KEY", raising=False)
    train, model = pipeline.train, pipeline.model
    slp = make_labels(raw_root / f"sleaptr_{unique}", n_frames=20, step=2)
    set_id = int(unique, 16) % 100000 + 7
    train.VideoSet.insert_from_slp(set_id, slp)
    idx = train.TrainingParamSet.insert_new_params(f"sleap training nwb {unique}", TINY)
    task = {"video_set_id": set_id, "paramset_idx": idx, "training_id": 0}
    train.TrainingTask.insert1({**task, "project_path": f"sleaptr_{unique}"})
    train.ModelTraining.populate(task, suppress_errors=False)
    model_key = train.ModelTraining.register_model(task, f"sleaptr_{unique}")

    name = f"st{unique}"
    pipeline.lab.Lab.insert1({"lab": "trlab", "lab_name": "Training Lab", "institution": "Uni",
                              "time_zone": "Europe/Zurich"}, skip_duplicates=True)
    pipeline.lab.Device.insert1({"device": "trcam", "description": "top view"},
                                skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": name, "sex": "F", "species": "Mus musculus",
                                      "subject_birth_date": datetime.date(2025, 9, 1)})
    pipeline.subject.Subject.Lab.insert1({"subject": name, "lab": "trlab"})
    session = {"subject": name, "session_id": 1}
    pipeline.session.Session.insert1({**session, "session_datetime":
                                      datetime.datetime(2026, 3, 1, 9, 30),
                                      "session_description": "open field"})
    video = raw_root / f"sleaptr_{unique}_session" / "trcam.mp4"
    sample.make_video(video, n_frames=10, width=WIDTH, height=HEIGHT, seed=3)
    recording = model.VideoRecording.insert_recording(session, 0, {"device": "trcam"}, [video])
    model.RecordingInfo.populate(recording)
    est = model.PoseEstimationTask.insert_estimation_task(
        {**recording, **model_key}, "trigger", params={"device": "cpu", "batch_size": 4})
    model.PoseEstimation.populate(est, suppress_errors=False)

    files = pipeline.publish.export_nwb(session, tmp_path / "export", include_training=True)
    assert len(files) == 1
    done = subprocess.run([sys.executable, "-c", _READ_TRAINING, str(files[0].path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    frames = json.loads(done.stdout.strip().splitlines()[-1])

    labels = train.VideoSet.label_set({"video_set_id": set_id})
    assert len(labels.frames) == 10
    expected = {f"{f.split('/')[0]}_{f.split('/')[-1][:-4]}": r
                for r, f in enumerate(labels.frames)}
    assert set(frames) == set(expected)
    for frame_name, r in expected.items():
        frame = frames[frame_name]
        assert frame["video"] == "train" and frame["external"][0].endswith("train.mp4")
        assert frame["index"] == int(labels.frames[r].split("img")[-1][:-4])
        (instance,) = frame["instances"].values()
        assert instance["nodes"] == list(labels.keypoints)
        assert np.allclose(np.array(instance["xy"], float), labels.xy[r, 0])
    check_nwb(files[0].path)  # no critical nwbinspector message

    pipeline.publish.DandiUpload.delete_quick()
    dandiset = tmp_path / "000123"
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        report = dandi_sync.sync("000123", dandiset, instance=archive.api_url,
                                 api_key=API_KEY, query=session, include_training=True)
        nwb_rel = f"sub-{name}/sub-{name}_ses-1_behavior+image.nwb"
        assert report.ok, "\n".join([*report.failed.values(), str(report.invalid)])
        assert report.exported == [nwb_rel] and nwb_rel in report.uploaded
        assert archive.asset_bytes("000123", nwb_rel) == (dandiset / nwb_rel).read_bytes()
        done = subprocess.run([sys.executable, "-c", _READ_TRAINING, str(dandiset / nwb_rel)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        synced = json.loads(done.stdout.strip().splitlines()[-1])
        assert set(synced) == set(expected)
        (external,) = {f["external"][0] for f in synced.values()}  # placed beside the file
        assert external == (f"sub-{name}_ses-1_behavior+image/"
                            "source_videos-train_external_file_0.mp4")
        assert f"sub-{name}/{external}" in archive.assets("000123")
        assert (dandiset / f"sub-{name}" / external).is_file()
