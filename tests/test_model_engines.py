"""Models of every engine through the schemas, on a real database.

SLEAP and Lightning Pose models are registered from their own files (no DeepLabCut
project) and their outputs, written by the tools' own writers (sleap-io; movement's
Lightning Pose saver), are loaded into the same PoseEstimation tables and fetched
back equal.  A toy engine and format defined in this module, registered without any
edit of a schema, run register -> load-mode populate -> fetch: adding an engine is
one module.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import pytest
import sleap_io as sio
import yaml
from movement.io import load_poses, save_poses
from pydantic import Field

from element_pose import sample
from element_pose.core.params import ParamSet
from element_pose.core.pose import SINGLE_INDIVIDUAL, PoseData
from element_pose.engines import register_engine
from element_pose.engines.base import (
    EngineError,
    FileEngine,
    ModelDescription,
    SourceSoftware,
    TrainingResult,
    VideoOutputs,
)
from element_pose.io import read_pose, register_format
from element_pose.io.registry import PoseFormatError

pytestmark = pytest.mark.usefixtures("pipeline")

N_FRAMES = 12
NODES = ["nose", "ear", "tail"]
EDGES = [("nose", "ear"), ("ear", "tail")]


# ------------------------------------------------------------------ fixtures
@pytest.fixture
def session(pipeline, unique) -> dict:
    """A session with the DANDI metadata an NWB export needs."""
    pipeline.lab.Lab.insert1({"lab": "elab", "lab_name": "Engine Lab", "institution": "Uni",
                              "time_zone": "Europe/Zurich"}, skip_duplicates=True)
    pipeline.lab.Device.insert1({"device": "cam0", "description": "top view"},
                                skip_duplicates=True)
    name = f"e{unique}"
    pipeline.subject.Subject.insert1({"subject": name, "sex": "F", "species": "Mus musculus",
                                      "subject_birth_date": datetime.date(2025, 9, 1)})
    pipeline.subject.Subject.Lab.insert1({"subject": name, "lab": "elab"})
    key = {"subject": name, "session_id": 1}
    pipeline.session.Session.insert1({**key, "session_datetime":
                                      datetime.datetime(2026, 3, 1, 9, 30),
                                      "session_description": "open field"})
    return key


def _recording(pipeline, session, folder: Path, recording_id: int = 0,
               name: str = "cam") -> tuple[dict, Path]:
    video = folder / f"{name}.mp4"
    sample.make_video(video, n_frames=N_FRAMES, seed=recording_id)
    key = pipeline.model.VideoRecording.insert_recording(session, recording_id,
                                                         {"device": "cam0"}, [video])
    pipeline.model.RecordingInfo.populate(key)
    return key, video


def _load(pipeline, recording: dict, model_key: dict, output_dir: Path) -> dict:
    model = pipeline.model
    task = model.PoseEstimationTask.insert_estimation_task(
        {**recording, **model_key}, "load", output_dir=output_dir)
    model.PoseEstimation.populate(task, suppress_errors=False)
    return task


# --------------------------------------------------------------------- SLEAP
def _sleap_position(frame: int, track: int) -> np.ndarray:
    """Exact in float32 (quarters), inside a 160 x 120 frame."""
    return np.array([[10 + frame + 30 * track + 5 * k, 20 + 2 * frame + k] for k in
                     range(len(NODES))], dtype=float) + 0.25


def _sleap_scores(frame: int, track: int) -> np.ndarray:
    return np.array([0.5, 0.75, 0.875]) - 0.03125 * track


def _sleap_labels(video: Path, tracks: list[str]) -> sio.Labels:
    skeleton = sio.Skeleton(list(NODES), edges=list(EDGES))
    svideo = sio.Video(filename=str(video), open_backend=False)
    sio_tracks = [sio.Track(t) for t in tracks]
    frames = []
    for f in range(N_FRAMES):
        instances = [sio.PredictedInstance.from_numpy(
            _sleap_position(f, t), skeleton=skeleton, point_scores=_sleap_scores(f, t),
            score=0.9, track=track) for t, track in enumerate(sio_tracks)]
        frames.append(sio.LabeledFrame(video=svideo, frame_idx=f, instances=instances))
    return sio.Labels(frames, videos=[svideo], skeletons=[skeleton], tracks=sio_tracks)


def _check_sleap_pose(pose: PoseData, tracks: list[str]) -> None:
    assert pose.individuals == tracks and pose.keypoints == NODES
    assert pose.skeleton == EDGES
    for f in range(N_FRAMES):
        for t in range(len(tracks)):
            np.testing.assert_array_equal(pose.position[f, t], _sleap_position(f, t))
            np.testing.assert_array_equal(pose.confidence[f, t],
                                          _sleap_scores(f, t).astype(np.float32))


@pytest.mark.parametrize("kind", ["slp", "analysis.h5"])
def test_sleap_model_and_outputs_through_the_schemas(pipeline, session, raw_root, unique,
                                                     kind):
    model = pipeline.model
    folder = raw_root / f"sleap_{unique}"
    recording, video = _recording(pipeline, session, folder)
    tracks = ["mouse_a", "mouse_b"]
    labels = _sleap_labels(video, tracks)
    trained_on = folder / "model" / "labels.slp"  # the model: the file it was trained on
    trained_on.parent.mkdir()
    sio.save_slp(labels, str(trained_on))
    out = folder / "predictions"
    out.mkdir()
    if kind == "slp":
        sio.save_slp(labels, str(out / "cam.mp4.predictions.slp"))
    else:
        sio.save_analysis_h5(labels, str(out / "cam.analysis.h5"))

    model_key = model.Model.insert_new_model(f"sleap_{unique}", trained_on, "sleap")
    row = (model.Model & model_key).fetch1()
    assert row["engine"] == "sleap" and row["multi_animal"]
    assert row["project_path"] == f"sleap_{unique}/model/labels.slp"
    assert model.Model.body_parts(model_key) == NODES
    assert model.Model.skeleton(model_key) == EDGES
    # a load-only engine's model is never queued for evaluation
    assert not (model.ModelEvaluation.key_source & model_key)

    task = _load(pipeline, recording, model_key, out)
    stored = (model.PoseEstimation & task).fetch1()
    assert stored["nframes"] == N_FRAMES and stored["engine_version"].startswith("sleap ")
    assert stored["output_files"] == [
        f"sleap_{unique}/predictions/" + ("cam.mp4.predictions.slp" if kind == "slp"
                                          else "cam.analysis.h5")]
    # tracks are individuals: one part row per track and node
    assert len(model.PoseEstimation.BodyPartPosition & task) == len(tracks) * len(NODES)
    pose = model.PoseEstimation.fetch_pose(task)
    _check_sleap_pose(pose, tracks)
    assert pose.source_software == "SLEAP"
    direct = read_pose(out / Path(stored["output_files"][0]).name)
    np.testing.assert_array_equal(pose.position, direct.position.astype(np.float32))

    # SLEAP draws labelled videos of its .slp predictions (sleap-io's renderer); of an
    # analysis .h5 alone it cannot: a clear error, nothing stored
    options = model.LabeledVideoParamSet.insert_new_params(f"dots {unique}", {"dotsize": 3})
    model.LabeledVideoTask.insert1({**task, "labeled_video_paramset_idx": options})
    if kind == "slp":
        model.LabeledVideo.populate(task, suppress_errors=False)
        assert (model.LabeledVideo & task)
    else:
        with pytest.raises(EngineError, match=r"no SLEAP predictions of cam\.mp4"):
            model.LabeledVideo.populate(task, suppress_errors=False)
        assert not (model.LabeledVideo & task)


def test_an_outside_slp_without_its_last_frames_loads_every_frame(pipeline, session,
                                                                   raw_root, unique):
    """Predictions that stop 4 frames before the video's end (nothing found there): load
    mode stores the video's frame count, the last frames missing (NaN)."""
    model = pipeline.model
    folder = raw_root / f"sleapshort_{unique}"
    recording, video = _recording(pipeline, session, folder)
    labels = _sleap_labels(video, ["mouse_a"])
    labels.labeled_frames = [lf for lf in labels.labeled_frames if lf.frame_idx < N_FRAMES - 4]
    trained_on = folder / "model" / "labels.slp"
    trained_on.parent.mkdir()
    sio.save_slp(labels, str(trained_on))
    out = folder / "predictions"
    out.mkdir()
    sio.save_slp(labels, str(out / "cam.mp4.predictions.slp"))
    model_key = model.Model.insert_new_model(f"sleapshort_{unique}", trained_on, "sleap")
    task = _load(pipeline, recording, model_key, out)
    assert (model.PoseEstimation & task).fetch1("nframes") == N_FRAMES
    pose = model.PoseEstimation.fetch_pose(task)
    assert pose.n_frames == N_FRAMES and np.isnan(pose.position[N_FRAMES - 4:]).all()
    np.testing.assert_array_equal(pose.position[N_FRAMES - 5, 0],
                                  _sleap_position(N_FRAMES - 5, 0))


def test_sleap_estimation_exports_to_nwb_as_sleap(pipeline, session, raw_root, unique,
                                                  tmp_path):
    model = pipeline.model
    folder = raw_root / f"sleapnwb_{unique}"
    recording, video = _recording(pipeline, session, folder)
    out = folder / "predictions"
    out.mkdir()
    sio.save_slp(_sleap_labels(video, ["fly"]), str(out / "cam.mp4.predictions.slp"))
    model_key = model.Model.insert_new_model(f"sleapnwb_{unique}",
                                             out / "cam.mp4.predictions.slp", "sleap")
    task = _load(pipeline, recording, model_key, out)
    files = pipeline.publish.export_nwb(task, tmp_path)
    assert len(files) == 1
    with h5py.File(files[0].path, "r") as h5:
        software = h5["processing/behavior/PoseEstimation/source_software"]
        assert software[()].decode() == "SLEAP"


# ------------------------------------------------------------ Lightning Pose
LP_KEYPOINTS = ["paw_l", "paw_r", "nose"]


def test_lightning_pose_model_and_csv_through_the_schemas(pipeline, session, raw_root,
                                                          unique):
    model = pipeline.model
    folder = raw_root / f"lp_{unique}"
    recording, _ = _recording(pipeline, session, folder)
    model_dir = folder / "model"
    (model_dir / "video_preds").mkdir(parents=True)
    (model_dir / "config.yaml").write_text(yaml.safe_dump(
        {"data": {"keypoint_names": LP_KEYPOINTS}, "model": {"model_type": "heatmap"}}))
    rng = np.random.default_rng(7)
    position = (rng.integers(0, 400, (N_FRAMES, 1, 3, 2)) / 4).astype(np.float32)
    confidence = (rng.integers(0, 8, (N_FRAMES, 1, 3)) / 8).astype(np.float32)
    position[4, 0, 1] = np.nan
    confidence[4, 0, 1] = np.nan
    ds = load_poses.from_numpy(
        position_array=np.transpose(position, (0, 3, 2, 1)),
        confidence_array=np.transpose(confidence, (0, 2, 1)),
        individual_names=["individual_0"], keypoint_names=LP_KEYPOINTS, fps=30,
        source_software="LightningPose")
    save_poses.to_lp_file(ds, model_dir / "video_preds" / "cam.csv")
    written = sorted((model_dir / "video_preds").glob("cam*.csv"))
    assert len(written) == 1  # movement may add the individual to the name
    written[0].rename(model_dir / "video_preds" / "cam.csv")

    model_key = model.Model.insert_new_model(f"lp_{unique}", model_dir, "lightning_pose")
    row = (model.Model & model_key).fetch1()
    assert row["engine"] == "lightning_pose" and not row["multi_animal"]
    assert row["project_path"] == f"lp_{unique}/model/config.yaml"
    assert model.Model.body_parts(model_key) == LP_KEYPOINTS

    task = _load(pipeline, recording, model_key, model_dir)
    pose = model.PoseEstimation.fetch_pose(task)
    assert pose.keypoints == LP_KEYPOINTS and pose.individuals == [SINGLE_INDIVIDUAL]
    np.testing.assert_array_equal(pose.position, position)
    np.testing.assert_array_equal(pose.confidence, confidence)
    assert pose.source_software == "Lightning Pose"
    written = read_pose(model_dir / "video_preds" / "cam.csv")
    assert (model.PoseEstimation & task).fetch1("scorer") == written.scorer  # the file's


def test_lightning_pose_multi_view_views_are_recordings(pipeline, session, raw_root, unique):
    model = pipeline.model
    folder = raw_root / f"lpmv_{unique}"
    views = ["top", "side"]
    recordings = [_recording(pipeline, session, folder, i, name=v)[0]
                  for i, v in enumerate(views)]
    model_dir = folder / "model"
    (model_dir / "video_preds").mkdir(parents=True)
    (model_dir / "config.yaml").write_text(yaml.safe_dump(
        {"data": {"keypoint_names": LP_KEYPOINTS, "view_names": views},
         "model": {"model_type": "heatmap_multiview"}}))
    head = ["scorer" + ",heatmap_tracker" * 9,
            "bodyparts," + ",".join(k for k in LP_KEYPOINTS for _ in range(3)),
            "coords" + ",x,y,likelihood" * 3]
    for v, view in enumerate(views):
        rows = [f"{f}," + ",".join(f"{10 * v + f + k}.5,{k + 1}.25,0.5" for k in range(3))
                for f in range(N_FRAMES)]
        (model_dir / "video_preds" / f"{view}.csv").write_text("\n".join(head + rows) + "\n")
    model_key = model.Model.insert_new_model(f"lpmv_{unique}", model_dir, "lightning_pose")
    options = (model.Model & model_key).fetch1("engine_options")
    assert options["views"] == views
    for v, recording in enumerate(recordings):
        pose = model.PoseEstimation.fetch_pose(_load(pipeline, recording, model_key, model_dir))
        expected = np.array([[10 * v + f + k + 0.5 for k in range(3)] for f in range(N_FRAMES)])
        np.testing.assert_array_equal(pose.position[:, 0, :, 0], expected.astype(np.float32))


# ------------------------------------------------ a toy engine in one module
TOY_FORMAT = "toytracker_npz"


def _read_toy(path: Path, fps: float | None = None) -> PoseData:
    with np.load(path) as data:
        return PoseData(position=data["position"], confidence=data["confidence"],
                        keypoints=[str(k) for k in data["keypoints"]],
                        individuals=[SINGLE_INDIVIDUAL], fps=fps, scorer="toy-net",
                        source_software="ToyTracker", source_software_version="0.1")


def _validate_toy(path: Path) -> None:
    try:
        with np.load(path) as data:
            missing = {"position", "confidence", "keypoints"} - set(data.files)
    except (OSError, ValueError) as exc:
        raise PoseFormatError(f"{path}: not a ToyTracker file ({exc})") from exc
    if missing:
        raise PoseFormatError(f"{path}: ToyTracker file lacks {sorted(missing)}")


class ToyEngine(FileEngine):
    """A load-only engine: a JSON model file and ``<video stem>.toy`` outputs."""

    name = "toytracker"
    software = "ToyTracker"
    formats = (TOY_FORMAT,)

    def describe_model(self, source, **options):
        spec = json.loads(Path(source).read_text())
        return ModelDescription(
            engine=self.name, source=Path(source), keypoints=list(spec["keypoints"]),
            individuals=[SINGLE_INDIVIDUAL], skeleton=[tuple(e) for e in spec["skeleton"]],
            multi_animal=False, scorer="toy-net", software=SourceSoftware(self.software, "0.1"),
            options=dict(options))

    def find_outputs(self, video, output_dir, model=None):
        path = Path(output_dir) / f"{Path(video).stem}.toy"
        if not path.is_file():
            raise EngineError(f"no ToyTracker output for {Path(video).name} in {output_dir}")
        return VideoOutputs(video=Path(video), pose_files=[path], files=[path], fmt=TOY_FORMAT,
                            version="0.1")


register_format(TOY_FORMAT, _read_toy, validator=_validate_toy, suffixes=(".toy",),
                software="ToyTracker", replace=True)
register_engine(ToyEngine(), replace=True)


def test_a_new_engine_is_one_module_no_schema_edit(pipeline, session, raw_root, unique):
    model = pipeline.model
    folder = raw_root / f"toy_{unique}"
    recording, _ = _recording(pipeline, session, folder)
    spec = folder / "toy_model.json"
    spec.write_text(json.dumps({"keypoints": ["a", "b"], "skeleton": [["a", "b"]]}))
    position = np.arange(N_FRAMES * 2 * 2, dtype=np.float32).reshape(N_FRAMES, 1, 2, 2)
    confidence = np.full((N_FRAMES, 1, 2), 0.5, np.float32)
    out = folder / "out"
    out.mkdir()
    with open(out / "cam.toy", "wb") as f:
        np.savez(f, position=position, confidence=confidence, keypoints=np.array(["a", "b"]))

    model_key = model.Model.insert_new_model(f"toy_{unique}", spec, "toytracker")
    assert (model.Model & model_key).fetch1("engine") == "toytracker"
    task = _load(pipeline, recording, model_key, out)
    pose = model.PoseEstimation.fetch_pose(task)
    np.testing.assert_array_equal(pose.position, position)
    np.testing.assert_array_equal(pose.confidence, confidence)
    assert pose.skeleton == [("a", "b")]
    assert (pose.source_software, pose.source_software_version) == ("ToyTracker", "0.1")
    assert (model.PoseEstimation & task).fetch1("engine_version") == "toytracker 0.1"


class ToyTrainingParams(ParamSet):
    """The toy engine's own declared parameter set (validated at insert)."""

    engine: Literal["toytrainer"]
    epochs: int = Field(1, ge=1)
    model_type: str = "unet"


class ToyTrainer(ToyEngine):
    """A second engine that trains, in one class: the schemas need no edit for it."""

    name = "toytrainer"
    capabilities = frozenset({*ToyEngine.capabilities, "train", "evaluate"})
    training_params = ToyTrainingParams

    def train(self, source, workdir, params, *, device=None):
        labels = sorted(p.name for p in Path(source).rglob("*.labels"))
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        spec = workdir / "toy_model.json"
        spec.write_text(json.dumps({"keypoints": ["a", "b"], "skeleton": [["a", "b"]]}))
        checkpoint = workdir / "step-2.ckpt"
        checkpoint.write_bytes(b"weights")
        return TrainingResult(
            model=self.describe_model(spec, model_type=params.get("model_type", "unet"),
                                      run_name="run1"),
            snapshots=["step-2"], best_snapshot="step-2", last_snapshot="step-2",
            learning_stats={"loss": np.array([1.0, 0.5])}, wall_time=0.25,
            device=device or "cpu", software={"toytrainer": "0.1"},
            snapshot_epochs={"step-2": 2}, snapshot_paths={"step-2": checkpoint},
            training_config={"steps": 2}, details={"labels": labels, "steps": 2})

    def snapshots(self, model):
        return ["step-2"]


register_engine(ToyTrainer(), replace=True)


def test_a_second_engine_trains_with_no_schema_edit(pipeline, raw_root, unique, monkeypatch):
    """ModelTraining picks the engine from the parameters and stores what it returns:
    the engine's own facts in engine_details, its model options in Model.engine_options."""
    monkeypatch.delenv("ELEMENT_POSE_DEVICE", raising=False)  # an earlier test's worker device
    train, model = pipeline.train, pipeline.model
    project = raw_root / f"toytrain_{unique}"
    (project / "labels").mkdir(parents=True)
    (project / "labels" / "frames.labels").write_text("a b")
    set_id = int(unique, 16) % 100000
    train.VideoSet.insert1({"video_set_id": set_id})
    train.VideoSet.File.insert1({"video_set_id": set_id,
                                 "file_path": f"toytrain_{unique}/labels/frames.labels"})
    # checked by the engine's own parameter model, through the table's usual insert
    with pytest.raises(ValueError, match="epochs"):
        train.TrainingParamSet.insert_new_params(f"toy bad {unique}",
                                                 {"engine": "toytrainer", "epochs": 0})
    idx = train.TrainingParamSet.insert_new_params(f"toy {unique}",
                                                   {"engine": "toytrainer", "epochs": 2})
    task = {"video_set_id": set_id, "paramset_idx": idx, "training_id": 0}
    train.TrainingTask.insert1({**task, "project_path": f"toytrain_{unique}"})
    train.ModelTraining.populate(task)
    row = (train.ModelTraining & task).fetch1()
    assert row["engine"] == "toytrainer" and row["device"] == "cpu"
    assert row["engine_details"] == {
        "labels": ["frames.labels"], "steps": 2,
        "model_options": {"model_type": "unet", "run_name": "run1"}}
    assert row["training_config"] == {"steps": 2}
    assert row["best_snapshot"] == row["latest_snapshot"] == "step-2"
    assert (train.ModelTraining.Snapshot & task).fetch1("epoch") == 2
    assert not {"shuffle", "trainingsetindex", "pytorch_config"} & set(
        train.ModelTraining.heading.names)
    key = train.ModelTraining.register_model(task, f"toytrained_{unique}")
    registered = (model.Model & key).fetch1()
    assert registered["engine"] == "toytrainer"
    assert registered["engine_options"] == {"model_type": "unet", "run_name": "run1",
                                            "snapshot": "best"}
    assert model.Model.description(key).options["run_name"] == "run1"


def test_an_unknown_engine_is_refused_naming_it(pipeline, raw_root, unique):
    spec = raw_root / f"nothing_{unique}.json"
    spec.write_text("{}")
    with pytest.raises(ValueError, match="unknown pose engine 'nothing'"):
        pipeline.model.Model.insert_new_model(f"nothing_{unique}", spec, "nothing")
    assert not (pipeline.model.Model & {"model_name": f"nothing_{unique}"})
