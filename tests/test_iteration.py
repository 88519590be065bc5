"""The refinement loop in the database (issue 29 items 3, 4, 6): corrected labels into a
new VideoSet version, the next iteration fine-tuned from the last, the lineage, the
estimations a newer iteration superseded, their re-run and re-publication.

Training and inference here are a small engine of this module (real files, real
tables, no DeepLabCut): what the schemas hand an engine and record from it is what is
tested.  DeepLabCut itself runs the loop in ``tests/test_iteration_dlc.py`` (slow).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest

from element_pose import sample
from element_pose.core.params import ParamSet
from element_pose.core.pose import SINGLE_INDIVIDUAL, PoseData
from element_pose.engines import register_engine
from element_pose.engines.base import (
    LOAD_CAPABILITIES,
    FileEngine,
    InferenceResult,
    ModelDescription,
    SourceSoftware,
    TrainingResult,
    VideoOutputs,
)
from element_pose.io.labels import read_label_set
from element_pose.ops import iteration

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.dandi_server import LocalDandiArchive

pytestmark = pytest.mark.usefixtures("pipeline")
VIDEO = "demo_video0"
BODYPARTS = list(sample.DEFAULT_BODYPARTS)
API_KEY = "iteration-test-key-0123456789"


# ---------------------------------------------------------------- a small engine
class LoopToyParams(ParamSet):
    """Training parameters of the loop's test engine."""

    engine: Literal["looptoy"]
    epochs: int = 1
    weight_init: dict | str | None = None


class LoopToy(FileEngine):
    """Trains by counting the labelled frames; infers a constant pose per model."""

    name = "looptoy"
    software = "LoopToy"
    formats = ("dlc_h5",)
    capabilities = frozenset({*LOAD_CAPABILITIES, "train", "infer"})
    training_params = LoopToyParams

    def describe_model(self, source, **options):
        spec = json.loads(Path(source).read_text())
        return ModelDescription(
            engine=self.name, source=Path(source), keypoints=list(spec["keypoints"]),
            individuals=[SINGLE_INDIVIDUAL], skeleton=[], multi_animal=False,
            scorer=f"DLC_looptoy{spec['frames']}", software=SourceSoftware(self.software, "0.1"),
            options=dict(options))

    def train(self, source, workdir, params, *, device=None, train_only=None):
        labels = read_label_set(source)
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        spec = workdir / "looptoy.json"
        spec.write_text(json.dumps({"keypoints": labels.keypoints, "frames": labels.n_frames}))
        checkpoint = workdir / "step-1.ckpt"
        checkpoint.write_bytes(b"weights")
        details = {"frames": labels.n_frames, "train_only": sorted(train_only or []),
                   "weight_init": params.get("weight_init")}
        return TrainingResult(
            model=self.describe_model(spec), snapshots=["step-1"], best_snapshot="step-1",
            last_snapshot="step-1", learning_stats={"loss": np.array([1.0])}, wall_time=0.1,
            device=device or "cpu", software={"looptoy": "0.1"}, snapshot_epochs={"step-1": 1},
            snapshot_paths={"step-1": checkpoint}, training_config=dict(params),
            details=details)

    def snapshots(self, model):
        return ["step-1"]

    def snapshot_file(self, model, snapshot=None):
        return Path(model.source).parent / "step-1.ckpt"

    def find_outputs(self, video, output_dir, model=None):
        path = Path(output_dir) / f"{Path(video).stem}{model.scorer}.h5"
        return VideoOutputs(video=Path(video), pose_files=[path], files=[path], fmt="dlc_h5")

    def infer(self, model, videos, output_dir, *, snapshot=None, device=None, **options):
        from element_pose.io.dlc import write_dlc_h5
        from element_pose.io.video import probe_video

        outputs = []
        frames = int(model.scorer.removeprefix("DLC_looptoy"))
        for video in videos:
            n = probe_video(video).n_frames
            position = np.full((n, 1, len(model.keypoints), 2), float(frames), np.float32)
            pose = PoseData(position=position, confidence=np.ones(position.shape[:3], np.float32),
                            keypoints=list(model.keypoints), individuals=[SINGLE_INDIVIDUAL],
                            fps=30.0, scorer=model.scorer)
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            write_dlc_h5(pose, Path(output_dir) / f"{Path(video).stem}{model.scorer}.h5",
                         scorer=model.scorer)
            outputs.append(self.find_outputs(video, output_dir, model))
        return InferenceResult(outputs=outputs, scorer=model.scorer, snapshot="step-1",
                               run_time=0.1, frames_per_second=100.0, device=device or "cpu",
                               batch_size=None, software={"looptoy": "0.1"})


register_engine(LoopToy(), replace=True)


# ------------------------------------------------------------------ helpers
def _set_id(unique: str) -> int:
    return 20000 + int(unique, 16) % 100000


def _napari_labels(folder: Path, scorer: str, rows: dict[str, Any],
                   bodyparts: list[str] = BODYPARTS) -> Path:
    """``CollectedData_<scorer>.h5`` and ``.csv`` as napari-deeplabcut saves them."""
    columns = pd.MultiIndex.from_product([[scorer], bodyparts, ["x", "y"]],
                                         names=["scorer", "bodyparts", "coords"])
    index = pd.MultiIndex.from_tuples([("labeled-data", folder.name, image) for image in rows])
    table = pd.DataFrame(np.array([np.asarray(v, float).reshape(-1) for v in rows.values()]),
                         index=index, columns=columns)
    folder.mkdir(parents=True, exist_ok=True)
    table.to_hdf(folder / f"CollectedData_{scorer}.h5", key="df_with_missing", mode="w")
    table.to_csv(folder / f"CollectedData_{scorer}.csv")
    return folder / f"CollectedData_{scorer}.h5"


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def labelled(pipeline, raw_root, unique):
    """A project registered as a VideoSet, and a napari folder of corrections for it:
    its 5 frames (one moved by 3 px) and 2 new frames."""
    config = sample.make_dlc_project(raw_root / f"loop_{unique}", n_frames=30, n_labeled=5)
    project = config.parent
    set_id = _set_id(unique)
    pipeline.train.VideoSet.insert_from_project(set_id, config)
    parent = read_label_set(project)
    napari = raw_root / f"napari_{unique}" / "labeled-data" / VIDEO
    napari.mkdir(parents=True)
    rows = {}
    for frame, xy in zip(parent.frames, parent.xy[:, 0], strict=True):
        shutil.copy2(project / frame, napari / Path(frame).name)
        rows[Path(frame).name] = xy
    moved = Path(parent.frames[1]).name
    rows[moved] = rows[moved] + 3.0
    for new in ("img0001.png", "img0002.png"):
        shutil.copy2(project / parent.frames[0], napari / new)
        rows[new] = parent.xy[0, 0] + 1.0
    return {"project": project, "set": set_id, "parent": parent, "napari": napari,
            "rows": rows, "moved": f"labeled-data/{VIDEO}/{moved}",
            "added": [f"labeled-data/{VIDEO}/img0001.png", f"labeled-data/{VIDEO}/img0002.png"]}


# ------------------------------------------------------------ corrected labels in
def test_corrections_become_a_new_version(pipeline, labelled, processed_root):
    train = pipeline.train
    before = _digest(labelled["project"])
    corrected = _napari_labels(labelled["napari"], "sampler", labelled["rows"])
    key = iteration.import_corrections(labelled["set"], corrected, imported_by="tester")

    version = (train.VideoSetVersion & key).fetch1()
    assert version["parent_video_set_id"] == labelled["set"]
    assert version["imported_by"] == "tester" and version["source"] == str(corrected)
    assert abs((datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
                - version["imported_at"]).total_seconds()) < 120
    changes = {r["frame_id"]: r["change"] for r in (train.VideoSetVersion.Frame & key).to_dicts()}
    assert changes == {labelled["moved"]: "changed",
                       **{f: "added" for f in labelled["added"]}}

    # the merged project, in a folder of its own under the processed root
    folder = iteration.set_project(key["video_set_id"])
    assert folder == processed_root / "labels" / f"videoset{key['video_set_id']}"
    merged = read_label_set(folder)
    assert sorted(merged.frames) == sorted([*labelled["parent"].frames, *labelled["added"]])
    moved = merged.xy[merged.frames.index(labelled["moved"])]
    np.testing.assert_allclose(moved, labelled["parent"].xy[1] + 3.0)
    files = set((train.VideoSet.File & key).to_arrays("file_path"))
    assert f"labels/videoset{key['video_set_id']}/{labelled['added'][0]}" in files
    assert sum(f.endswith(".png") for f in files) == 7
    assert (train.VideoSet & key).fetch1("video_sets") == {
        f"videos/{VIDEO}.mp4": {"crop": "0, 160, 0, 120"}}
    assert _digest(labelled["project"]) == before  # the user's project is untouched
    assert train.added_frames(key["video_set_id"]) == labelled["added"]
    assert train.added_frames(labelled["set"]) == []

    # a version of the version: the added frames of both, the moved frame once more
    rows = {**labelled["rows"], "img0003.png": labelled["rows"]["img0001.png"]}
    shutil.copy2(labelled["napari"] / "img0001.png", labelled["napari"] / "img0003.png")
    again = iteration.import_corrections(key["video_set_id"],
                                         _napari_labels(labelled["napari"], "sampler", rows))
    assert train.added_frames(again["video_set_id"]) == [
        *labelled["added"], f"labeled-data/{VIDEO}/img0003.png"]
    assert (train.VideoSetVersion.Frame & again).to_arrays("change").tolist() == ["added"]


def test_sleap_user_instances_are_corrections_too(pipeline, labelled, raw_root, unique):
    """A SLEAP .pkg.slp of user instances (e.g. corrected in SLEAP): its frames of the
    project's images change the set; its images are read into the import's own folder."""
    from element_pose.io.sleap_labels import write_slp

    parent = labelled["parent"]
    fixed = parent.select(parent.frames[:3])  # a copy of those rows
    fixed.xy[2] += 2.0
    slp = write_slp(fixed, raw_root / f"fixed_{unique}.pkg.slp")
    key = iteration.import_corrections(labelled["set"], slp, imported_by="sleap")
    changes = {r["frame_id"]: r["change"]
               for r in (pipeline.train.VideoSetVersion.Frame & key).to_dicts()}
    assert changes == {parent.frames[2]: "changed"}
    merged = read_label_set(iteration.set_project(key["video_set_id"]))
    np.testing.assert_allclose(merged.xy[merged.frames.index(parent.frames[2])],
                               parent.xy[2] + 2.0)
    assert sorted(p.name for p in raw_root.glob(f"fixed_{unique}*")) == [slp.name]


def _nothing_imported(pipeline, processed_root, sets_before):
    assert len(pipeline.train.VideoSet()) == sets_before
    leftovers = [p.name for p in (processed_root / "labels").glob("*")
                 if p.name.startswith(".")] if (processed_root / "labels").is_dir() else []
    assert leftovers == []


def test_a_renamed_body_part_is_refused_whole(pipeline, labelled, processed_root):
    sets = len(pipeline.train.VideoSet())
    renamed = ["snout", *BODYPARTS[1:]]
    corrected = _napari_labels(labelled["napari"], "sampler", labelled["rows"], renamed)
    with pytest.raises(iteration.CorrectionsError, match=r"missing \['nose'\], extra \['snout'\]"):
        iteration.import_corrections(labelled["set"], corrected)
    _nothing_imported(pipeline, processed_root, sets)


def test_a_frame_left_unlabelled_is_refused_whole(pipeline, labelled, processed_root):
    sets = len(pipeline.train.VideoSet())
    rows = {**labelled["rows"], "img0002.png": np.full((len(BODYPARTS), 2), np.nan)}
    corrected = _napari_labels(labelled["napari"], "sampler", rows)
    with pytest.raises(iteration.CorrectionsError, match=r"unlabelled.*img0002\.png"):
        iteration.import_corrections(labelled["set"], corrected)
    _nothing_imported(pipeline, processed_root, sets)


def test_a_failed_insert_leaves_no_folder(pipeline, labelled, processed_root):
    """A frame id too long for the table fails inside the transaction: no row, no folder."""
    sets = len(pipeline.train.VideoSet())
    long_folder = labelled["napari"].parent / ("v" * 250)
    long_folder.mkdir()
    shutil.copy2(labelled["napari"] / "img0001.png", long_folder / "img0009.png")
    corrected = _napari_labels(long_folder, "sampler",
                               {"img0009.png": labelled["rows"]["img0001.png"]})
    with pytest.raises(Exception, match="too long"):  # PostgreSQL and MySQL say so
        iteration.import_corrections(labelled["set"], corrected, video_set_id=labelled["set"] + 7)
    _nothing_imported(pipeline, processed_root, sets)
    assert not (processed_root / "labels" / f"videoset{labelled['set'] + 7}").exists()


def test_nothing_new_is_refused(pipeline, labelled):
    parent = labelled["parent"]
    rows = {Path(f).name: xy for f, xy in zip(parent.frames, parent.xy[:, 0], strict=True)}
    corrected = _napari_labels(labelled["napari"], "sampler", rows)
    with pytest.raises(iteration.CorrectionsError, match="nothing to import"):
        iteration.import_corrections(labelled["set"], corrected)


# ------------------------------------------------- iterations, lineage, superseded
def _session(pipeline, name: str) -> dict:
    """A session with the DANDI metadata an NWB export needs."""
    pipeline.lab.Lab.insert1({"lab": "looplab", "lab_name": "Loop Lab", "institution": "Uni",
                              "time_zone": "Europe/Zurich"}, skip_duplicates=True)
    pipeline.lab.Device.insert1({"device": "cam0", "description": "top view"},
                                skip_duplicates=True)
    pipeline.subject.Subject.insert1({"subject": name, "sex": "F", "species": "Mus musculus",
                                      "subject_birth_date": datetime.date(2025, 9, 1)})
    pipeline.subject.Subject.Lab.insert1({"subject": name, "lab": "looplab"})
    key = {"subject": name, "session_id": 1}
    pipeline.session.Session.insert1({**key, "session_datetime":
                                      datetime.datetime(2026, 3, 1, 9, 30),
                                      "session_description": "open field"})
    return key


def _train(pipeline, task: dict) -> dict:
    pipeline.train.ModelTraining.populate(task, reserve_jobs=True, suppress_errors=True)
    assert pipeline.train.ModelTraining & task, \
        pipeline.train.ModelTraining.jobs.errors.to_dicts()
    return (pipeline.train.ModelTraining & task).fetch1()


def test_the_loop_iterates_and_supersedes(pipeline, labelled, raw_root, unique, tmp_path,
                                          monkeypatch):
    """Iteration 1 fine-tunes from iteration 0's model on the merged labels, the added
    frames only trained on; the lineage is walked from either end; iteration 0's
    estimation is listed as superseded, re-run with iteration 1's model, and the
    re-published file replaces the old one, naming the model and its iteration."""
    from element_pose.cli.app import main
    from element_pose.export.nwb import read_pose_from_nwb
    from element_pose.ops import dandi_sync

    monkeypatch.setenv("DANDI_NO_ET", "1")
    monkeypatch.setenv("DANDI_CACHE", "ignore")
    monkeypatch.delenv("ELEMENT_POSE_DEVICE", raising=False)
    train, model = pipeline.train, pipeline.model
    paramset = train.TrainingParamSet.insert_new_params(
        f"loop {unique}", {"engine": "looptoy", "epochs": 1, "weight_init": "random"})
    first = {"video_set_id": labelled["set"], "paramset_idx": paramset, "training_id": 0}
    train.TrainingTask.insert1({**first, "project_path": f"loop_{unique}"})
    assert _train(pipeline, first)["engine_details"]["train_only"] == []
    version = iteration.import_corrections(
        labelled["set"], _napari_labels(labelled["napari"], "sampler", labelled["rows"]))

    second = iteration.next_iteration(first, params={"epochs": 2},
                                      model_name=f"loop0_{unique}")
    assert second["video_set_id"] == version["video_set_id"]  # the newest version
    link = (train.TrainingIteration & second).fetch1()
    assert (link["iteration"], link["initial_model"]) == (1, f"loop0_{unique}")
    assert {k: link[f"parent_{k}"] for k in first} == first
    params = (train.TrainingParamSet & second).fetch1("params")
    assert params["weight_init"] == {"model": f"loop0_{unique}"} and params["epochs"] == 2
    details = _train(pipeline, second)["engine_details"]
    assert details["train_only"] == labelled["added"] and details["frames"] == 7
    assert details["weight_init"]["snapshot_path"].endswith("step-1.ckpt")
    with pytest.raises(ValueError, match=r"is not \d+ or a version"):
        iteration.next_iteration(second, labelled["set"])  # back to the older labels
    model1 = train.ModelTraining.register_model(second, f"loop1_{unique}")

    walked = [(r["iteration"], r["models"]) for r in iteration.lineage(second)]
    assert walked == [(0, [f"loop0_{unique}"]), (1, [f"loop1_{unique}"])]
    assert iteration.lineage(first) == iteration.lineage(second)
    assert iteration.newest_model(first) == (f"loop1_{unique}", 1)
    provenance = pipeline.publish.model_provenance(f"loop1_{unique}")
    assert provenance["iteration"] == 1 and provenance["fine_tuned_from"] == f"loop0_{unique}"

    # iteration 0's estimation of a session, published
    session = _session(pipeline, f"loop{unique}")
    video = raw_root / f"loop_{unique}_session" / "cam0.mp4"
    sample.make_video(video, n_frames=20, seed=3)
    recording = model.VideoRecording.insert_recording(session, 0, {"device": "cam0"}, [video])
    model.RecordingInfo.populate(recording)
    old = model.PoseEstimationTask.insert_estimation_task(
        {**recording, "model_name": f"loop0_{unique}"}, "trigger", params={"batch_size": 2})
    model.PoseEstimation.populate(old)
    dandiset = tmp_path / "000123"
    with LocalDandiArchive(api_key=API_KEY, dandisets=("000123",)) as archive:
        sync = {"instance": archive.api_url, "api_key": API_KEY}
        assert dandi_sync.sync("000123", dandiset, query=session, **sync).ok
        nwb_rel = f"sub-loop{unique}/sub-loop{unique}_ses-1_behavior+image.nwb"
        old_asset = archive.assets()[nwb_rel].asset_id

        listed = iteration.superseded_estimations(session)
        assert [(r["model_name"], r["iteration"], r["newest_model"], r["newest_iteration"],
                 r["rerun"]) for r in listed] == [
            (f"loop0_{unique}", 0, f"loop1_{unique}", 1, False)]
        assert main(["iteration", "superseded", "--key", f"subject=loop{unique}"]) == 0

        tasks = iteration.rerun_superseded(session)
        assert tasks == [{**{k: recording[k] for k in recording}, **model1}]
        task = (model.PoseEstimationTask & tasks[0]).fetch1()
        assert task["task_mode"] == "trigger"
        assert task["pose_estimation_params"] == {"batch_size": 2}
        assert np.all(model.PoseEstimation.fetch_pose(tasks[0]).position == 7.0)  # 7 frames
        assert iteration.superseded_estimations(session)[0]["rerun"] is True
        assert iteration.rerun_superseded(session) == []  # nothing left to run
        current = iteration.current_estimations(session)
        assert [k["model_name"] for k in current.keys()] == [f"loop1_{unique}"]

        # dandi-sync publishes the newest only (the Python API: query=current)
        monkeypatch.setenv("DANDI_API_KEY", API_KEY)
        assert main(["dandi-sync", "--dandiset", "000123", "--dandiset-dir", str(dandiset),
                     "--instance", archive.api_url, "--key", f"subject=loop{unique}"]) == 0
        assert archive.assets()[nwb_rel].asset_id != old_asset  # replaced in place
        record = (pipeline.publish.DandiUpload & {"asset_path": nwb_rel}).fetch1()
        assert [k["model_name"] for k in record["source_keys"]] == [f"loop1_{unique}"]
        remote = tmp_path / "remote.nwb"
        remote.write_bytes(archive.asset_bytes("000123", nwb_rel))
        assert np.all(read_pose_from_nwb(remote).position == 7.0)
        from pynwb import NWBHDF5IO

        with NWBHDF5IO(remote, "r") as io:
            container = io.read().processing["behavior"]["PoseEstimation"]
            assert f"model loop1_{unique}" in container.description
            assert "refinement iteration 1, fine-tuned from model " \
                   f"loop0_{unique}" in container.description


def test_lineage_scores_and_figure(pipeline):
    """The scores table of a lineage and its figure (error per iteration and body part)."""
    from element_pose.processing.refinement import lineage_figure

    scores = pd.DataFrame({
        "iteration": [0, 0, 0, 1, 1, 1], "model_name": ["a"] * 3 + ["b"] * 3,
        "body_part": ["", "nose", "tail"] * 2, "split": ["test"] * 6,
        "rmse": [9.0, 8.0, 10.0, 4.0, 3.0, 5.0]})
    fig = lineage_figure(scores)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["all body parts", "nose", "tail"]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [9.0, 4.0])
    with pytest.raises(ValueError, match="no 'train' rows"):
        lineage_figure(scores, split="train")


def test_the_iteration_commands(pipeline, labelled, unique, capsys, monkeypatch, tmp_path):
    """element-pose iteration import | next | lineage: the library's answers, as JSON."""
    from element_pose.cli.app import main

    monkeypatch.delenv("ELEMENT_POSE_DEVICE", raising=False)
    train = pipeline.train
    corrected = _napari_labels(labelled["napari"], "sampler", labelled["rows"])
    capsys.readouterr()
    assert main(["iteration", "import", str(labelled["set"]), str(corrected),
                 "--by", "cli-user"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert (made["added"], made["changed"]) == (2, 1)
    assert (train.VideoSetVersion & made).fetch1("imported_by") == "cli-user"
    renamed = _napari_labels(labelled["napari"], "sampler", labelled["rows"],
                             ["snout", *BODYPARTS[1:]])
    assert main(["iteration", "import", str(labelled["set"]), str(renamed)]) == 1

    paramset = train.TrainingParamSet.insert_new_params(
        f"loop cli {unique}", {"engine": "looptoy", "epochs": 1})
    first = {"video_set_id": labelled["set"], "paramset_idx": paramset, "training_id": 0}
    train.TrainingTask.insert1({**first, "project_path": f"loop_{unique}"})
    _train(pipeline, first)
    capsys.readouterr()
    assert main(["iteration", "next", *map(str, first.values()), "--params",
                 '{"epochs": 3}', "--model-name", f"cli0_{unique}"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["video_set_id"] == made["video_set_id"]
    assert main(["iteration", "lineage", *map(str, second.values())]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["iteration"], r["trained"]) for r in rows] == [(0, True), (1, False)]
    # not evaluated yet: no figure, said so
    assert main(["iteration", "lineage", *map(str, second.values()), "--figure",
                 str(tmp_path / "lineage.png")]) == 1
    assert not (tmp_path / "lineage.png").exists()


def test_sleap_frame_ids_match_their_labeled_data_form(tmp_path):
    """A set of SLEAP labels names a frame ``<video>/<image>``; corrections of the same
    frame, read as DeepLabCut names it (``labeled-data/<video>/<image>``), change it:
    they are not added a second time (before, every corrected frame was 'added')."""
    from element_pose.core.labels import LabelSet

    xy = np.arange(16, dtype=float).reshape(2, 1, 4, 2)
    parent = LabelSet(frames=["train/img000000.png", "train/img000002.png"],
                      keypoints=list(sample.DEFAULT_BODYPARTS), individuals=["individual_0"],
                      xy=xy, root=tmp_path)
    corrected = LabelSet(frames=["labeled-data/train/img000002.png"],
                         keypoints=list(sample.DEFAULT_BODYPARTS),
                         individuals=["individual_0"], xy=xy[1:] + 2.0, root=tmp_path)
    merged, added, changed, _ = iteration.merge_corrections(parent, corrected)
    assert (added, changed) == ([], ["train/img000002.png"])
    assert merged.frames == parent.frames
    np.testing.assert_allclose(merged.xy[1], xy[1] + 2.0)
    np.testing.assert_allclose(merged.xy[0], xy[0])
