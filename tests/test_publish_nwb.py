"""NWB files from the database that readers read right (issue 11, NWB side).

Real database, real files, real readers: movement's ``load_poses.from_nwb_file`` with
default arguments in a fresh process, the structure keypoint-moseq's NWB loader needs,
nwbinspector and ``dandi validate``; ``element-pose export`` as a user runs it.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import element_pose
from element_pose import sample

pytestmark = pytest.mark.usefixtures("pipeline")
REPO = Path(element_pose.__file__).resolve().parents[1]


def _session(pipeline, raw_root, processed_root, name, recordings, *, n_individuals=1,
             engine_version=None):
    """A session whose recordings ``[(recording_id, camera), ...]`` are estimated by one
    model (load mode); returns ``(session key, task keys)``."""
    model = pipeline.model
    pipeline.lab.Lab.insert1({"lab": "plab", "lab_name": "Pose Lab", "institution": "Uni",
                              "time_zone": "Europe/Zurich"}, skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": name, "sex": "F", "species": "Mus musculus",
                                      "subject_birth_date": datetime.date(2025, 9, 1)})
    pipeline.subject.Subject.Lab.insert1({"subject": name, "lab": "plab"})
    session = {"subject": name, "session_id": 1}
    pipeline.session.Session.insert1({**session, "session_datetime":
                                      datetime.datetime(2026, 3, 1, 9, 30),
                                      "session_description": "open field"})
    folder = raw_root / f"nwb_{name}"
    project = sample.make_dlc_project(folder / "project", n_frames=10, n_labeled=2,
                                      n_individuals=n_individuals)
    model_key = model.Model.insert_new_model(f"nwb_{name}", project)
    tasks = []
    for recording_id, camera in recordings:
        pipeline.lab.Device.insert1({"device": camera, "description": "top view"},
                                    skip_duplicates=True)
        video = folder / f"rec{recording_id}" / f"{camera}.mp4"  # same name, other folder
        video.parent.mkdir(parents=True)
        truth = sample.make_video(video, n_frames=30, n_individuals=n_individuals,
                                  seed=recording_id)
        outputs = processed_root / f"nwb_{name}_{recording_id}"
        sample.make_dlc_output(truth, video, outputs)
        key = model.VideoRecording.insert_recording(session, recording_id,
                                                    {"device": camera}, [video])
        model.RecordingInfo.populate(key)
        tasks.append(model.PoseEstimationTask.insert_estimation_task(
            {**key, **model_key}, "load", output_dir=outputs))
    model.PoseEstimation.populate(session)
    if engine_version is not None:
        for task in tasks:
            model.PoseEstimation.update1({**task, "engine_version": engine_version})
    return session, tasks


def _run(args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, **kwargs)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    return done.stdout


# What movement's default loader and keypoint-moseq's NWB loader see, in a fresh process.
_READERS = """
import json, sys
import numpy as np
from movement.io import load_poses
from pynwb import NWBHDF5IO
from ndx_pose import PoseEstimation

path, out = sys.argv[1], sys.argv[2]
ds = load_poses.from_nwb_file(path)  # default arguments
position = ds.position.transpose("time", "individuals", "keypoints", "space")
confidence = ds.confidence.transpose("time", "individuals", "keypoints")
# keypoint-moseq (io._load_nwb_pose_obj / _nwb_loader): exactly one PoseEstimation among
# all objects, body parts from its nodes, one series per body part
with NWBHDF5IO(path, mode="r", load_namespaces=True) as io:
    objects = io.read().all_children()
    found = [o for o in objects if isinstance(o, PoseEstimation)]
    bodyparts = list(found[0].nodes[:])
    coords = np.stack([found[0].pose_estimation_series[b].data[()] for b in bodyparts], axis=1)
np.savez(out, position=position.values, confidence=confidence.values,
         time=ds.time.values, kpms_coords=coords)
print(json.dumps({"keypoints": [str(k) for k in ds.keypoints.values],
                  "individuals": [str(i) for i in ds.individuals.values],
                  "fps": ds.attrs.get("fps"), "n_pose_estimations": len(found),
                  "kpms_bodyparts": [str(b) for b in bodyparts]}))
"""


def test_two_recordings_of_one_camera_with_one_model_export(pipeline, raw_root,
                                                            processed_root, unique, tmp_path):
    """Defect 4: unique container names for every legal set of rows."""
    from element_pose.export.nwb import check_nwb, list_pose_estimations, read_pose_from_nwb

    session, tasks = _session(pipeline, raw_root, processed_root, f"twin{unique}",
                              [(0, "cam0"), (1, "cam0")])
    files = pipeline.publish.export_nwb(session, tmp_path)
    assert len(files) == 1
    model = f"nwb_twin{unique}"
    assert sorted(list_pose_estimations(files[0].path)) == [
        f"behavior/PoseEstimation_cam0_{model}_rec0", f"behavior/PoseEstimation_cam0_{model}_rec1"]
    for task in tasks:
        back = read_pose_from_nwb(files[0].path,
                                  f"PoseEstimation_cam0_{model}_rec{task['recording_id']}")
        stored = pipeline.model.PoseEstimation.fetch_pose(task)
        assert np.array_equal(back.position, stored.position, equal_nan=True)
    check_nwb(files[0].path)
    # the two videos share a file name: both are beside the file, under distinct names
    with h5py.File(files[0].path, "r") as h5:
        links = sorted(h5[f"acquisition/{name}/external_file"][0].decode()
                       for name in h5["acquisition"])
    assert len(set(links)) == 2
    assert all((files[0].path.parent / link).is_file() for link in links)
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(files[0].path), "r") as io:  # each estimation links its own video
        behavior = io.read().processing["behavior"]
        videos = {behavior[f"PoseEstimation_cam0_{model}_rec{r}"].source_video.name
                  for r in (0, 1)}
    assert len(videos) == 2

    # a failed export leaves nothing behind: no file, no placed video
    with pytest.raises(Exception, match="compression must be"):
        pipeline.publish.export_nwb(session, tmp_path / "bad", compression="zstd")
    assert [p for p in (tmp_path / "bad").rglob("*") if p.is_file()] == []

    # appending the same estimations to a lab's own file: unique names there too
    lab_file = tmp_path / "lab.nwb"
    shutil.copy(files[0].path, lab_file)
    added = pipeline.publish.append_nwb(session, lab_file)
    assert len(set(added)) == 2 and not set(added) & {
        n.split("/")[1] for n in list_pose_estimations(files[0].path)}
    with NWBHDF5IO(str(lab_file), "r") as io:
        behavior = io.read().processing["behavior"]
        assert len({behavior[name].source_video.name for name in added}) == 2


def test_export_cli_videos_beside_and_default_readers(pipeline, raw_root, processed_root,
                                                      unique, tmp_path):
    """Defect 8 (first half) and the round trip DB -> NWB -> movement with defaults.

    ``element-pose export`` in its own process; the export folder is then copied
    elsewhere and read there by movement (defaults) in a fresh process: values and
    time equal to the database; keypoint-moseq's loader finds exactly one
    PoseEstimation; nwbinspector and ``dandi validate`` are clean.
    """
    from element_pose.export import dandi
    from element_pose.export.nwb import check_nwb

    _, tasks = _session(pipeline, raw_root, processed_root, f"cli{unique}", [(0, "cam0")],
                              engine_version="deeplabcut 3.0.2")
    out = tmp_path / "export"
    printed = _run([sys.executable, "-m", "element_pose.cli", "export", str(out),
                    "--key", f"subject=cli{unique}"])
    path = Path(printed.strip().splitlines()[-1])
    relpath = path.relative_to(out)
    with h5py.File(path, "r") as h5:
        link = h5["acquisition/cam0_video/external_file"][0].decode()
        software = h5["processing/behavior/PoseEstimation/source_software"]
        assert software.attrs["version"] == "3.0.2"
    assert link == f"{path.stem}/cam0.mp4" and (path.parent / link).is_file()

    copied = Path(shutil.copytree(out, tmp_path / "elsewhere"))  # links must survive
    shutil.rmtree(out)
    moved = copied / relpath
    check_nwb(moved)  # no critical message; the external video is found
    dandi.write_dandiset_yaml(copied, "000123", "element-pose NWB readers test")
    assert dandi.validate(moved) == []

    seen = json.loads(_run([sys.executable, "-c", _READERS, str(moved),
                            str(tmp_path / "read.npz")]))
    read = np.load(tmp_path / "read.npz")
    stored = pipeline.model.PoseEstimation.fetch_pose(tasks[0])
    order = [seen["keypoints"].index(k) for k in stored.keypoints]
    np.testing.assert_array_equal(read["position"][:, :, order], stored.position)
    np.testing.assert_array_equal(read["confidence"][:, :, order], stored.confidence)
    np.testing.assert_allclose(read["time"], stored.time(), atol=1e-9)
    assert seen["fps"] == pytest.approx(stored.fps)
    assert seen["n_pose_estimations"] == 1
    assert seen["kpms_bodyparts"] == stored.keypoints
    np.testing.assert_array_equal(read["kpms_coords"], stored.position[:, 0])


_APPEND = """
import sys
from workflow import pipeline
print(pipeline.publish.append_nwb({"subject": sys.argv[1]}, sys.argv[2]))
"""


def test_append_nwb_in_a_fresh_process(pipeline, raw_root, processed_root, unique, tmp_path):
    """Defect 7: publish.append_nwb in a new process, then read with pynwb in another."""
    from pynwb import NWBHDF5IO, NWBFile

    _, tasks = _session(pipeline, raw_root, processed_root, f"fr{unique}", [(0, "cam0")])
    path = tmp_path / "session.nwb"
    with NWBHDF5IO(str(path), "w") as io:  # the lab's own file
        io.write(NWBFile(session_description="ephys", identifier=f"id-{unique}",
                         session_start_time=datetime.datetime(2026, 3, 1, 9, 30,
                                                              tzinfo=datetime.UTC)))
    _run([sys.executable, "-c", _APPEND, f"fr{unique}", str(path)])
    seen = json.loads(_run([sys.executable, "-c", _READERS, str(path),
                            str(tmp_path / "read.npz")]))
    assert seen["n_pose_estimations"] == 1
    stored = pipeline.model.PoseEstimation.fetch_pose(tasks[0])
    order = [seen["keypoints"].index(k) for k in stored.keypoints]
    np.testing.assert_array_equal(np.load(tmp_path / "read.npz")["position"][:, :, order],
                                  stored.position)


def test_multi_animal_export_names_the_individuals(pipeline, raw_root, processed_root, unique,
                                                   tmp_path):
    from pynwb import NWBHDF5IO

    session, _ = _session(pipeline, raw_root, processed_root, f"ma{unique}", [(0, "cam0")],
                          n_individuals=2)
    files = pipeline.publish.export_nwb(session, tmp_path)
    assert len(files) == 2
    for item in files:
        individual = item.relpath.split("/")[0].removeprefix(f"sub-ma{unique}-")
        with NWBHDF5IO(str(item.path), "r") as io:
            f = io.read()
            assert f.identifier == f"{individual}_sub-ma{unique}_ses-1"
            assert repr(individual) in f.subject.description
            assert repr(individual) in f.processing["behavior"]["PoseEstimation"].description
        seen = json.loads(_run([sys.executable, "-c", _READERS, str(item.path),
                                str(tmp_path / "read.npz")]))
        assert seen["individuals"] == [f"{individual}_sub-ma{unique}_ses-1"]
    # one individual's file alone (what dandi-sync re-exports): the other is not written
    one = files[1].relpath
    again = pipeline.publish.export_nwb(session, tmp_path / "one", only={one})
    assert [f.relpath for f in again] == [one]
    assert [p.name for p in (tmp_path / "one").rglob("*.nwb")] == [Path(one).name]


def _readme_snippet(marker: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"# {marker}")
    return text[start:text.index("```", start)]


def test_readme_snippet_reads_several_estimations(pipeline, raw_root, processed_root, unique,
                                                  tmp_path):
    """The README's snippet for files with several containers, run as written."""
    from element_pose.export.nwb import list_pose_estimations

    session, tasks = _session(pipeline, raw_root, processed_root, f"rd{unique}",
                              [(0, "cam0"), (1, "cam1")])
    path = pipeline.publish.export_nwb(session, tmp_path / "all")[0].path
    scope = {"path": path, "publish": pipeline.publish, "session_key": session,
             "model": f"nwb_rd{unique}", "out": tmp_path}
    exec(compile(_readme_snippet("nwb-readers snippet"), "README.md", "exec"), scope)
    views = scope["views"]
    assert sorted(views) == [f"PoseEstimation_cam0_nwb_rd{unique}",
                             f"PoseEstimation_cam1_nwb_rd{unique}"]
    for task, camera in zip(tasks, ("cam0", "cam1"), strict=True):
        ds = views[f"PoseEstimation_{camera}_nwb_rd{unique}"]
        stored = pipeline.model.PoseEstimation.fetch_pose(task)
        np.testing.assert_array_equal(
            ds.position.transpose("time", "individuals", "keypoints", "space")
            .sel(keypoints=stored.keypoints).values, stored.position)
    (one,) = scope["files"]
    assert list_pose_estimations(one.path) == ["behavior/PoseEstimation"]  # keypoint-moseq


def test_validate_cli_on_an_export_folder(pipeline, raw_root, processed_root, unique,
                                          tmp_path):
    """Issue 27 item 2: ``element-pose validate FOLDER`` runs nwbinspector and ``dandi
    validate`` on an ``element-pose export`` folder (``dandi validate`` alone stops there
    with NO_DANDISET_FOUND: the folder has no dandiset.yaml); a good export passes, a
    file without the subject's species is reported and the command exits 1."""
    from dandi.validate._core import validate as dandi_validate

    _session(pipeline, raw_root, processed_root, f"val{unique}", [(0, "cam0")])
    out = tmp_path / "export"
    path = Path(_run([sys.executable, "-m", "element_pose.cli", "export", str(out),
                      "--key", f"subject=val{unique}"]).strip().splitlines()[-1])
    assert "NO_DANDISET_FOUND" in {r.id.rsplit(".", 1)[-1] for r in dandi_validate(str(out))}

    printed = _run([sys.executable, "-m", "element_pose.cli", "validate", str(out)])
    assert "0 error(s)" in printed
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted(
        [path.name, "cam0.mp4"])  # nothing written into the folder

    bad = Path(shutil.copytree(out, tmp_path / "bad"))
    with h5py.File(bad / path.relative_to(out), "a") as h5:
        del h5["general/subject/species"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "element_pose.cli", "validate", str(bad),
                           "--json"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]
    findings = json.loads(done.stdout)
    errors = [f for f in findings if f["severity"] == "ERROR"]
    assert errors and all(f["path"] == path.relative_to(out).as_posix() for f in errors)
    assert any("species" in f["message"].lower() or "species" in f["check"].lower()
               for f in errors)
    assert {f["tool"] for f in findings} == {"nwbinspector", "dandi validate"}
