"""Conformance: every registered engine honours the PoseEngine contract.

Each engine describes a model from real files, finds the outputs of a video written
by the tool's own writer (DeepLabCut layout, sleap-io, Lightning Pose CSV layout) and
reads them through the io registry.  Training, evaluation and inference are checked
where the engine declares them (the DeepLabCut runs themselves are covered in
tests/engines/test_deeplabcut.py); load-only engines refuse them clearly.
"""

import subprocess
import sys

import numpy as np
import pytest
import sleap_io as sio
import yaml

from element_pose import sample
from element_pose.core.pose import PoseData
from element_pose.engines.base import (
    ALL_CAPABILITIES,
    LOAD_CAPABILITIES,
    EngineCapabilityError,
    EngineError,
    FileEngine,
    PoseEngine,
    available_engines,
    get_engine,
    register_engine,
)

N_FRAMES = 9


def _dlc_case(tmp_path):
    config = sample.make_dlc_project(tmp_path / "proj", n_frames=N_FRAMES, n_labeled=4)
    truth = sample.ground_truth(n_frames=N_FRAMES, fps=30)
    video = tmp_path / "session.mp4"
    out = tmp_path / "out"
    sample.make_dlc_output(truth, video, out, scorer="DLC_Resnet50_demoJan1shuffle1_snapshot_5")
    return config, {}, video, out, list(truth.keypoints)


def _sleap_case(tmp_path):
    nodes = ["head", "thorax", "abdomen"]
    skeleton = sio.Skeleton(list(nodes), edges=[("head", "thorax")])
    video = sio.Video(filename=str(tmp_path / "fly.mp4"), open_backend=False)
    tracks = [sio.Track("fly1"), sio.Track("fly2")]
    frames = [sio.LabeledFrame(video=video, frame_idx=f, instances=[
        sio.PredictedInstance.from_numpy(np.full((3, 2), f + 10.0 * t), skeleton=skeleton,
                                         point_scores=np.full(3, 0.9), score=0.9, track=tr)
        for t, tr in enumerate(tracks)]) for f in range(N_FRAMES)]
    labels = sio.Labels(frames, videos=[video], skeletons=[skeleton], tracks=tracks)
    out = tmp_path / "out"
    out.mkdir()
    sio.save_slp(labels, str(out / "fly.mp4.predictions.slp"))
    return out / "fly.mp4.predictions.slp", {}, tmp_path / "fly.mp4", out, nodes


def _lightning_pose_case(tmp_path):
    keypoints = ["nose", "paw"]
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.yaml").write_text(yaml.safe_dump(
        {"data": {"keypoint_names": keypoints}, "model": {"model_type": "heatmap"}}))
    preds = model / "video_preds"
    preds.mkdir()
    head = ["scorer,heatmap_tracker,heatmap_tracker,heatmap_tracker,heatmap_tracker,"
            "heatmap_tracker,heatmap_tracker",
            "bodyparts,nose,nose,nose,paw,paw,paw", "coords,x,y,likelihood,x,y,likelihood"]
    rows = [f"{f},{f}.5,2,0.9,3,4,0.8" for f in range(N_FRAMES)]
    (preds / "mouse.csv").write_text("\n".join(head + rows) + "\n")
    return model, {}, tmp_path / "mouse.mp4", model, keypoints


CASES = {"deeplabcut": _dlc_case, "sleap": _sleap_case, "lightning_pose": _lightning_pose_case}


def test_every_builtin_engine_has_a_conformance_case():
    # engines that tests register for themselves (a toy engine) are not built in
    from element_pose.engines.base import BUILTIN_ENGINE_MODULES

    names = {get_engine(n).name for n in BUILTIN_ENGINE_MODULES}
    assert names == set(CASES)
    assert names <= set(available_engines())


@pytest.mark.parametrize("name", sorted(CASES))
def test_engine_conformance(name, tmp_path):
    engine = get_engine(name)
    assert isinstance(engine, PoseEngine) and engine.name == name
    assert LOAD_CAPABILITIES <= engine.capabilities <= ALL_CAPABILITIES
    source, options, video, out, keypoints = CASES[name](tmp_path)

    model = engine.describe_model(source, **options)
    assert model.engine == name and model.keypoints == keypoints
    assert model.software.name == engine.software
    assert set(model.individuals) and all(isinstance(e, tuple) for e in model.skeleton)

    outputs = engine.find_outputs(video, out, model)
    assert outputs.pose_files and all(p.is_file() for p in outputs.pose_files)
    pose = engine.read_outputs(outputs, model, fps=30)
    assert isinstance(pose, PoseData)
    assert pose.keypoints == model.keypoints and pose.n_frames == N_FRAMES
    assert pose.source_software == engine.software and pose.fps == 30
    assert np.isfinite(pose.position).any()

    with pytest.raises(EngineError, match=r"absent\.mp4"):
        engine.find_outputs(tmp_path / "absent.mp4", out, model)
    for op in ("train", "evaluate", "infer"):
        assert callable(getattr(engine, op))
        if op not in engine.capabilities:
            with pytest.raises(EngineCapabilityError, match=f"cannot {op}"):
                if op == "train":
                    engine.train(source, tmp_path / "w", {})
                elif op == "evaluate":
                    engine.evaluate(model)
                else:
                    engine.infer(model, [video], out)


def test_outputs_of_another_model_are_refused(tmp_path):
    engine = get_engine("lp")
    source, _, video, out, _ = _lightning_pose_case(tmp_path)
    model = engine.describe_model(source)
    model.keypoints = ["nose", "tail"]
    with pytest.raises(EngineError, match=r"mouse\.csv.*missing \['tail'\]"):
        engine.read_outputs(engine.find_outputs(video, out), model)


def test_dlc_outputs_of_another_model_are_a_format_error(tmp_path):
    """The same keypoint check, raised as DeepLabCut's reader error."""
    from element_pose.io.dlc import DLCFormatError

    engine = get_engine("deeplabcut")
    config, _, video, out, keypoints = _dlc_case(tmp_path)
    model = engine.describe_model(config)
    model.keypoints = [*keypoints[:-1], "tail"]
    last = keypoints[-1]
    with pytest.raises(DLCFormatError, match=rf"missing \['tail'\], unexpected \['{last}'\]"):
        engine.read_outputs(engine.find_outputs(video, out, model), model)


def test_registry_names_and_new_engines():
    assert get_engine("DLC") is get_engine("deeplabcut")
    assert get_engine("lightning-pose") is get_engine("lightning_pose")
    with pytest.raises(ValueError, match="unknown pose engine 'nope'"):
        get_engine("nope")
    with pytest.raises(TypeError, match="PoseEngine"):
        register_engine(object())

    class Other(FileEngine):
        name = "sleap"
        software = "Other"

    with pytest.raises(ValueError, match="already registered"):
        register_engine(Other())


def test_getting_engines_imports_no_pose_package():
    code = ("import sys; from element_pose.engines.base import get_engine;"
            "[get_engine(n) for n in ('deeplabcut', 'sleap', 'lightning_pose')];"
            "print([m for m in sys.modules if m.split('.')[0] in "
            "('deeplabcut', 'sleap_io', 'torch')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_sleap_model_from_a_skeleton_file_or_model_folder(tmp_path):
    skeleton = sio.Skeleton(["head", "tail"], edges=[("head", "tail")])
    folder = tmp_path / "model"
    folder.mkdir()
    sio.save_skeleton(skeleton, str(folder / "skeleton.json"))
    engine = get_engine("sleap")
    model = engine.describe_model(folder / "skeleton.json")
    assert model.keypoints == ["head", "tail"] and model.skeleton == [("head", "tail")]
    assert model.individuals == ["individual_0"] and not model.multi_animal
    with pytest.raises(EngineError, match=r"model.training_config\.json"):
        engine.describe_model(folder)


def test_lightning_pose_model_from_csv_and_multi_view_config(tmp_path):
    engine = get_engine("lightning_pose")
    model_dir, _, _, _, keypoints = _lightning_pose_case(tmp_path)
    from_csv = engine.describe_model(model_dir / "video_preds" / "mouse.csv")
    assert from_csv.keypoints == keypoints and from_csv.scorer == "heatmap_tracker"
    (model_dir / "config.yaml").write_text(yaml.safe_dump(
        {"data": {"keypoint_names": keypoints, "view_names": ["top", "side"]},
         "model": {"model_type": "heatmap_mhcrnn"}}))
    multi = engine.describe_model(model_dir)
    assert multi.options == {"views": ["top", "side"], "model_type": "heatmap_mhcrnn"}
    (model_dir / "config.yaml").write_text(yaml.safe_dump({"data": {}}))
    with pytest.raises(EngineError, match=r"config\.yaml names no keypoints"):
        engine.describe_model(model_dir)
