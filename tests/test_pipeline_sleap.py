"""One SLEAP estimation through the tables and everything downstream of them.

A tiny sleap-nn model is trained here (sleap-nn's own training, seconds on the CPU),
registered with ``Model.insert_new_model(name, folder, "sleap")`` and run in trigger
mode by ``PoseEstimation.populate``.  The stored positions are compared with what
``sleap-nn track`` (the real command line) writes for the same model and video; the
estimation then goes through filtering, QC, a labelled video, the tidy export, NWB and
a DANDI sync to the local test archive.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from support.dandi_server import LocalDandiArchive
from support.sleap_models import HEIGHT, WIDTH, cli_track, slp_arrays, train_tiny_model

from element_pose import sample

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("pipeline")]
N_FRAMES = 30
API_KEY = "sleap-publish-key-0123456789"


@pytest.fixture(scope="module")
def estimated(pipeline, raw_root):
    """A trained SLEAP model, registered, run on a session video through the tables."""
    model = pipeline.model
    folder = train_tiny_model(raw_root / "sleap_e2e")
    model_key = model.Model.insert_new_model("sleap_tiny", folder, "sleap")

    pipeline.lab.Lab.insert1({"lab": "slab", "lab_name": "SLEAP Lab", "institution": "Uni",
                              "time_zone": "Europe/Zurich"}, skip_duplicates=True)
    pipeline.lab.Device.insert1({"device": "sleapcam", "description": "top view"},
                                skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": "sleapmouse", "sex": "F",
                                      "species": "Mus musculus",
                                      "subject_birth_date": datetime.date(2025, 9, 1)})
    pipeline.subject.Subject.Lab.insert1({"subject": "sleapmouse", "lab": "slab"})
    session = {"subject": "sleapmouse", "session_id": 1}
    pipeline.session.Session.insert1({**session, "session_datetime":
                                      datetime.datetime(2026, 3, 1, 9, 30),
                                      "session_description": "open field"})
    video = raw_root / "sleap_e2e_session" / "sleapcam.mp4"
    sample.make_video(video, n_frames=N_FRAMES, width=WIDTH, height=HEIGHT, seed=3)
    recording = model.VideoRecording.insert_recording(session, 0, {"device": "sleapcam"},
                                                      [video])
    model.RecordingInfo.populate(recording)
    task = model.PoseEstimationTask.insert_estimation_task(
        {**recording, **model_key}, "trigger", params={"device": "cpu", "batch_size": 4})
    model.PoseEstimation.populate(task, reserve_jobs=True, suppress_errors=True)
    assert (model.PoseEstimation & task), model.PoseEstimation.jobs.errors.to_dicts()
    return {"task": task, "session": session, "folder": folder, "video": video,
            "model": model_key}


def test_registration_describes_the_trained_folder(pipeline, estimated):
    model = pipeline.model
    row = (model.Model & estimated["model"]).fetch1()
    assert row["engine"] == "sleap" and not row["multi_animal"]
    assert model.Model.body_parts(estimated["model"]) == list(sample.DEFAULT_BODYPARTS)


def test_stored_positions_equal_the_command_line(pipeline, estimated, tmp_path):
    """The stored positions equal what ``sleap-nn track`` writes for the same model and
    video: max abs diff 0 after float32 (and the likelihoods are its point scores)."""
    model = pipeline.model
    row = (model.PoseEstimation & estimated["task"]).fetch1()
    from importlib.metadata import version

    assert row["engine_version"] == f"sleap {version('sleap-nn')}"
    assert row["nframes"] == N_FRAMES and row["device"] == "cpu" and row["batch_size"] == 4
    assert row["output_files"] == [
        str(model.PoseEstimationTask.output_path(estimated["task"]).relative_to(
            model.roots().processed_dir()) / "sleapcam.predictions.slp")]
    pose = model.PoseEstimation.fetch_pose(estimated["task"])
    assert pose.individuals == ["individual_0"]
    assert pose.source_software == "SLEAP" and pose.source_software_version == version(
        "sleap-nn")
    assert not np.isnan(pose.position).all()

    cli = cli_track(estimated["video"], [estimated["folder"]], tmp_path / "cli.slp")
    xy, score = slp_arrays(cli, N_FRAMES)
    stored = pose.position.astype(np.float32)
    np.testing.assert_array_equal(np.isnan(stored), np.isnan(xy))
    assert np.nanmax(np.abs(stored - xy)) == 0.0
    np.testing.assert_array_equal(pose.confidence.astype(np.float32), score)


def test_filtering_and_qc(pipeline, estimated):
    analysis = pipeline.analysis
    idx = analysis.FilterParamSet.insert_new_params(
        "sleap smooth", {"steps": [{"step": "median", "window": 3},
                                   {"step": "interpolate", "max_gap": 5}]})
    key = {**estimated["task"], "filter_paramset_idx": idx}
    analysis.FilteringTask.insert1(key)
    analysis.FilteredPose.populate(key, reserve_jobs=True, suppress_errors=True)
    assert (analysis.FilteredPose & key), analysis.FilteredPose.jobs.errors.to_dicts()
    filtered = analysis.FilteredPose.fetch_pose(key)
    assert filtered.n_frames == N_FRAMES and filtered.source_software == "SLEAP"
    assert [s["step"] for s in filtered.provenance] == ["median", "interpolate"]

    analysis.PoseQC.populate(estimated["task"], reserve_jobs=True, suppress_errors=True)
    analysis.FilteredPoseQC.populate(key, reserve_jobs=True, suppress_errors=True)
    for table, k in ((analysis.PoseQC, estimated["task"]), (analysis.FilteredPoseQC, key)):
        assert (table & k), table.jobs.errors.to_dicts()
        paths = table.figure_paths(k)
        assert set(paths) == {"hist", "likelihood", "position", "trajectory"}
        assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths.values())


def test_labeled_video(pipeline, estimated):
    from element_pose.io.video import probe_video

    model = pipeline.model
    options = model.LabeledVideoParamSet.insert_new_params(
        "sleap dots", {"pcutoff": 0.1, "dotsize": 3, "draw_skeleton": True, "trailpoints": 2})
    model.LabeledVideoTask.insert1({**estimated["task"], "labeled_video_paramset_idx": options})
    model.LabeledVideo.populate(estimated["task"], reserve_jobs=True, suppress_errors=True)
    assert (model.LabeledVideo & estimated["task"]), model.LabeledVideo.jobs.errors.to_dicts()
    path = model.roots().processed(
        (model.LabeledVideo.File & estimated["task"]).fetch1("file_path"))
    info = probe_video(path)
    assert info.n_frames == N_FRAMES and (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.fps == pytest.approx(30.0)


def test_tidy_export(pipeline, estimated, tmp_path):
    analysis = pipeline.analysis
    df = analysis.tidy_table(estimated["task"])
    assert len(df) == N_FRAMES and {"nose x", "nose likelihood", "model_name"} <= set(df)
    stored = pipeline.model.PoseEstimation.fetch_pose(estimated["task"])
    assert np.allclose(df["nose x"], stored.position[:, 0, 0, 0], equal_nan=True)
    back = pd.read_csv(analysis.export_tidy(estimated["task"], tmp_path / "sleap.csv"))
    assert np.allclose(back["nose x"], df["nose x"], equal_nan=True)


_READ_NWB = """
import json, sys
from pynwb import NWBHDF5IO
with NWBHDF5IO(sys.argv[1], "r") as io:
    nwb = io.read()
    pe = nwb.processing["behavior"]["PoseEstimation"]
    series = [pe.pose_estimation_series[n] for n in sorted(pe.pose_estimation_series)]
    print(json.dumps({"software": pe.source_software, "version": pe.source_software__version,
                      "series": [s.name for s in series],
                      "frames": [int(s.data.shape[0]) for s in series]}))
"""


def test_nwb_export(pipeline, estimated, tmp_path):
    from importlib.metadata import version

    from element_pose.export.nwb import check_nwb, read_pose_from_nwb

    files = pipeline.publish.export_nwb(estimated["session"], tmp_path)
    assert [f.relpath for f in files] == ["sub-sleapmouse/sub-sleapmouse_ses-1_behavior+image.nwb"]
    done = subprocess.run([sys.executable, "-c", _READ_NWB, str(files[0].path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["software"] == "SLEAP" and facts["version"] == version("sleap-nn")
    assert len(facts["series"]) == 4 and set(facts["frames"]) == {N_FRAMES}
    check_nwb(files[0].path)  # no critical nwbinspector message
    back = read_pose_from_nwb(files[0].path)
    stored = pipeline.model.PoseEstimation.fetch_pose(estimated["task"])
    assert np.array_equal(back.position, stored.position, equal_nan=True)


def test_nwb_training_of_a_model_not_trained_here_is_refused(pipeline, estimated, tmp_path):
    """A SLEAP model registered from a folder has no known labels: a clear error, no file
    (a model trained through the tables exports them: test_publish_sleap_training)."""
    with pytest.raises(ValueError, match=r"sleap_tiny.*not trained here"):
        pipeline.publish.export_nwb(estimated["session"], tmp_path, include_training=True)
    assert not any(tmp_path.rglob("*.nwb"))


def test_dandi_sync(pipeline, estimated, tmp_path, monkeypatch):
    from element_pose.ops import dandi_sync

    monkeypatch.setenv("DANDI_NO_ET", "1")
    monkeypatch.setenv("DANDI_CACHE", "ignore")
    monkeypatch.delenv("DANDI_API_KEY", raising=False)
    pipeline.publish.DandiUpload.delete_quick()
    dandiset = tmp_path / "000123"
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        report = dandi_sync.sync("000123", dandiset, instance=archive.api_url,
                                 api_key=API_KEY, query=estimated["session"])
        nwb_rel = "sub-sleapmouse/sub-sleapmouse_ses-1_behavior+image.nwb"
        assert report.exported == [nwb_rel] and nwb_rel in report.uploaded
        assert archive.asset_bytes("000123", nwb_rel) == (dandiset / nwb_rel).read_bytes()
        row = (pipeline.publish.DandiUpload & {"asset_path": nwb_rel}).fetch1()
        assert row["status"] == "uploaded"


# ------------------------------------------------------------------ two animals
@pytest.fixture(scope="module")
def two_animals(pipeline, raw_root, estimated):
    """A tiny bottom-up model of two animals, run with tracking through the tables."""
    model = pipeline.model
    folder = train_tiny_model(raw_root / "sleap_e2e_two", head="bottomup", n_individuals=2,
                              epochs=10)
    model_key = model.Model.insert_new_model("sleap_tiny_two", folder, "sleap")
    video = raw_root / "sleap_e2e_session" / "two.mp4"
    sample.make_video(video, n_frames=N_FRAMES, width=WIDTH, height=HEIGHT, n_individuals=2,
                      seed=3)
    recording = model.VideoRecording.insert_recording(estimated["session"], 1,
                                                      {"device": "sleapcam"}, [video])
    model.RecordingInfo.populate(recording)
    task = model.PoseEstimationTask.insert_estimation_task(
        {**recording, **model_key}, "trigger", params={"device": "cpu", "max_tracks": 2})
    model.PoseEstimation.populate(task, reserve_jobs=True, suppress_errors=True)
    assert (model.PoseEstimation & task), model.PoseEstimation.jobs.errors.to_dicts()
    return {"task": task, "folder": folder, "video": video, "model": model_key}


def test_two_animals_are_tracked_into_two_individuals(pipeline, two_animals, tmp_path):
    """Tracks are the individuals; positions equal ``sleap-nn track -t --max_tracks 2``."""
    model = pipeline.model
    assert (model.Model & two_animals["model"]).fetch1("multi_animal")
    pose = model.PoseEstimation.fetch_pose(two_animals["task"])
    assert pose.individuals == ["track_0", "track_1"] and pose.n_frames == N_FRAMES
    individuals = set((model.PoseEstimation.BodyPartPosition & two_animals["task"])
                      .to_arrays("individual"))
    assert individuals == {"track_0", "track_1"}
    for i in range(2):
        assert not np.isnan(pose.position[:, i]).all(), f"track {i} is empty"
    cli = cli_track(two_animals["video"], [two_animals["folder"]], tmp_path / "cli.slp",
                    "-t", "--max_tracks", "2")
    xy, score = slp_arrays(cli, N_FRAMES)
    stored = pose.position.astype(np.float32)
    np.testing.assert_array_equal(np.isnan(stored), np.isnan(xy))
    assert np.nanmax(np.abs(stored - xy)) == 0.0
    np.testing.assert_array_equal(pose.confidence.astype(np.float32), score)
