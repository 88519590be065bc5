"""Parameter sets: pydantic models, enforced once at insert, printed by the CLI and README."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

import element_pose.core.params as core_params
from element_pose.cli.params import load_param_sets
from element_pose.core.params import MARKDOWN_BEGIN as BEGIN
from element_pose.core.params import MARKDOWN_END as END
from element_pose.core.params import ParamsError, params_hash, params_markdown, update_markdown
from element_pose.engines.deeplabcut.params import DeepLabCutTrainingParams
from element_pose.processing.filters import FilterParams, FilterParamsError
from element_pose.processing.labeled_video import LabeledVideoParams
from element_pose.processing.threed import ThreeDParamsError
from element_pose.processing.threed.board import CalibrationParams
from element_pose.processing.threed.triangulation import TriangulationSetParams

README = Path(__file__).resolve().parents[1] / "README.md"
SCHEMAS = load_param_sets()
TRAINING = DeepLabCutTrainingParams
BOARD = {"squares_x": 6, "squares_y": 5, "square_length": 30.0, "marker_length": 22.0}


# ----------------------------------------------------------- models (no DB)
@pytest.mark.parametrize("params, fragment", [
    ({"epochs": "ten"}, "'epochs' must be integer in [1, 100000] or null, got 'ten'"),
    ({"epochs": -5}, "'epochs' must be integer in [1, 100000] or null, got -5"),
    ({"epochs": 2.5}, "'epochs'"),
    ({"train_fraction": 1.5}, "'train_fraction' must be number in (0, 1]"),
    ({"batch_size": 1e9}, "'batch_size' must be integer in [1, 1024]"),
    ({"batch_size": True}, "'batch_size'"),
    ({"epoch": 5}, "unknown key(s) ['epoch']"),
    ({"weight_init": "imagenet"}, '"pretrained", "random"'),
    ({"crop_size": [160]}, "'crop_size'"),
    ({"scheduler": True}, "'scheduler'"),
    ({"engine": "sleap"}, "one of \"deeplabcut\", \"dlc\""),
    ({"weight_init": {"snapshot_path": "a.pt", "extra": 1}},
     "'weight_init': unknown key(s) ['extra']; known keys: ['snapshot_path'"),
    ({"weight_init": {"with_decoder": True}}, "'snapshot_path' or 'model'"),
    ({"net_type": 50}, "'net_type' must be text or null, got 50"),
    ({"copy_videos": 1}, "'copy_videos' must be true/false, got 1"),
])
def test_training_model_refuses(params, fragment):
    with pytest.raises(ParamsError) as err:
        TRAINING.check(params)
    assert "train.TrainingParamSet params" in str(err.value)
    assert fragment in str(err.value)


def test_training_model_accepts_real_parameter_sets():
    for params in ({}, {"epochs": 10, "batch_size": 8, "train_fraction": 0.8,
                        "weight_init": "random", "crop_size": [160, 128]},
                   {"weight_init": {"snapshot_path": "m/snapshot-best-010.pt",
                                    "with_decoder": True}},
                   {"weight_init": {"model": "m1"}, "scheduler": "none", "epochs": 3.0},
                   {"weight_init": "x/snapshot-5.pt", "device": None, "pcutoff": 0.6},
                   None):
        stored = TRAINING.for_storage(params)
        assert stored == (params or {})  # stored as given: the hashes of old rows hold
    assert TRAINING.check({"epochs": 3.0}).epochs == 3


#: One bad value per model and kind of fault: (model, params, error, fragments).
REFUSALS = [
    (LabeledVideoParams, {"fps": 30}, ParamsError,
     ["model.LabeledVideoParamSet params", "unknown key(s) ['fps']", "'pcutoff'"]),
    (LabeledVideoParams, {"dotsize": "big"}, ParamsError,
     ["model.LabeledVideoParamSet params", "'dotsize' must be integer in [1, 100] or null"]),
    (LabeledVideoParams, {"pcutoff": 2}, ParamsError,
     ["model.LabeledVideoParamSet params", "'pcutoff' must be number in [0, 1] or null, got 2"]),
    (FilterParams, {"steps": [{"step": "median", "window": 5, "widow": 3}]},
     FilterParamsError, ["analysis.FilterParamSet params", "'steps[0]': unknown key(s) "
                         "['widow']; known keys: ['keypoints', 'individuals', 'step', 'window']"]),
    (FilterParams, {"steps": [{"step": "median", "window": "5"}]}, FilterParamsError,
     ["analysis.FilterParamSet params", "'steps[0].window' must be integer in [1, 100001]"]),
    (FilterParams, {"steps": [{"step": "confidence_threshold", "threshold": 5}]},
     FilterParamsError, ["analysis.FilterParamSet params",
                         "'steps[0].threshold' must be number in [0, 1], got 5"]),
    (FilterParams, {"steps": [{"step": "kalman"}]}, FilterParamsError,
     ["analysis.FilterParamSet params", "unknown step 'kalman'", "'median'"]),
    (FilterParams, {"steps": [{"step": "savgol", "window": 5, "polyorder": 5}]},
     FilterParamsError, ["'polyorder' must be >= 0 and < window (5), got 5"]),
    (CalibrationParams, {**BOARD, "colour": "red"}, ThreeDParamsError,
     ["multicam.CalibrationParamSet params", "unknown key(s) ['colour']", "'squares_x'"]),
    (CalibrationParams, {**BOARD, "fisheye": "no"}, ThreeDParamsError,
     ["multicam.CalibrationParamSet params", "'fisheye' must be true/false, got 'no'"]),
    (CalibrationParams, {**BOARD, "dict_size": 77}, ThreeDParamsError,
     ["multicam.CalibrationParamSet params",
      "'dict_size' must be integer in {50, 100, 250, 1000} or null, got 77"]),
    (CalibrationParams, {**BOARD, "bundle_adjust": {"n_iters": 0}}, ThreeDParamsError,
     ["'bundle_adjust.n_iters' must be integer >= 1, got 0"]),
    (CalibrationParams, {**BOARD, "marker_length": 30.0}, ThreeDParamsError,
     ["marker_length (30.0) must be smaller than square_length (30.0)"]),
    (TriangulationSetParams, {"ransack": True}, ThreeDParamsError,
     ["multicam.TriangulationParamSet params", "unknown key(s) ['ransack']", "'ransac'"]),
    (TriangulationSetParams, {"ransac": "yes"}, ThreeDParamsError,
     ["multicam.TriangulationParamSet params", "'ransac' must be true/false, got 'yes'"]),
    (TriangulationSetParams, {"filter_3d": {"score_threshold": 3}}, ThreeDParamsError,
     ["'filter_3d.score_threshold' must be number in [0, 1], got 3"]),
    (TriangulationSetParams, {"filter_3d": {"medfilt": 4}}, ThreeDParamsError,
     ["'medfilt' must be odd, got 4"]),
]


@pytest.mark.parametrize("model, params, error, fragments", REFUSALS)
def test_every_model_refuses_naming_table_key_and_allowed_values(model, params, error,
                                                                  fragments):
    with pytest.raises(error) as err:
        model.check(params)
    assert isinstance(err.value, ValueError)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_models_match_the_code_that_uses_the_parameters():
    from element_pose.engines.deeplabcut import TRAINING_DEFAULTS
    from element_pose.engines.deeplabcut.engine import DeepLabCutEngine
    from element_pose.processing.filters import INTERPOLATION_METHODS, STEP_NAMES
    from element_pose.processing.threed.calibration import (
        CALIBRATION_DEFAULTS,
        DEFAULT_BUNDLE_ADJUST,
    )
    from element_pose.processing.threed.postprocess import FILTER_3D_DEFAULTS
    from element_pose.processing.threed.triangulation import (
        TRIANGULATION_DEFAULTS,
        Filter3DParams,
    )
    from element_pose.schemas.model import LABELED_VIDEO_OPTIONS

    fields = TRAINING.model_fields
    assert set(fields) == {*TRAINING_DEFAULTS, "engine"}
    for name, default in TRAINING_DEFAULTS.items():
        assert fields[name].default == default, name
    assert DeepLabCutEngine.training_params is TRAINING
    assert list(LabeledVideoParams.model_fields) == list(LABELED_VIDEO_OPTIONS)
    schema = FilterParams.model_json_schema()
    steps = {(d := schema["$defs"][m["$ref"].rsplit("/", 1)[-1]])["properties"]["step"]["const"]:
             d for m in schema["properties"]["steps"]["items"]["oneOf"]}
    assert tuple(steps) == STEP_NAMES
    assert tuple(steps["interpolate"]["properties"]["method"]["enum"]) == INTERPOLATION_METHODS
    calibration = CalibrationParams.model_fields
    assert set(calibration) == {"squares_x", "squares_y", "square_length",
                                *CALIBRATION_DEFAULTS, "bundle_adjust"}
    for name, default in CALIBRATION_DEFAULTS.items():
        assert calibration[name].default == default, name
    assert calibration["bundle_adjust"].default.model_dump() == DEFAULT_BUNDLE_ADJUST
    tri = TriangulationSetParams.model_fields
    assert set(tri) == {*TRIANGULATION_DEFAULTS, "filter_3d", "angles"}
    for name, default in TRIANGULATION_DEFAULTS.items():
        assert tri[name].default == default, name
    assert {k: f.default for k, f in Filter3DParams.model_fields.items()} == FILTER_3D_DEFAULTS


#: md5 of the stored parameters, computed by the previous (hand-written schema) code.
OLD_HASHES = [
    (DeepLabCutTrainingParams,
     {"epochs": 3.0, "batch_size": 8, "train_fraction": 0.8, "crop_size": [160, 128],
      "weight_init": {"snapshot_path": "m/snapshot-best-010.pt", "with_decoder": True},
      "net_type": "resnet_50"}, "cf67d616bf4f305308b076c1e674aa54"),
    (LabeledVideoParams, {"dotsize": 3, "pcutoff": 0.6, "draw_skeleton": True},
     "61ef76e6d8178e296cc45b7b72b1dba9"),
    (FilterParams, {"steps": [
        {"step": "confidence_threshold", "threshold": 1},
        {"step": "median", "window": 5.0, "keypoints": ["b", "a"]},
        {"step": "savgol", "window": 7}, {"step": "interpolate", "max_gap": None},
        {"step": "offset_threshold", "window": 7, "threshold": 10}]},
     "46f95aab2f26fb18aabc125c54304740"),
    (CalibrationParams, {"squares_x": 6, "squares_y": 5, "square_length": 30,
                         "marker_length": 22, "type": "ChArUco", "units": " mm ",
                         "bundle_adjust": {"n_iters": 3}}, "ceb57e0d1e9ef189b36c078607abd3ae"),
    (CalibrationParams, {"type": "checkerboard", "squares_x": 8, "squares_y": 6,
                         "square_length": 20, "marker_length": 5},
     "203983c150723e7b5f1ec293d03cc600"),
    (TriangulationSetParams,
     {"score_threshold": 1, "constraints": [["a", "b"]],
      "axes": [["X", "a", "b"], ["y", "c", "d"]], "filter_3d": {"medfilt": 5},
      "angles": {"k": ["a", "b", "c"]}}, "5278ee0920900f5e6527556572acfae3"),
    (TriangulationSetParams, {"filter_3d": True}, "40725b3a4fc6510263855c4ca3b1bdb7"),
    (TriangulationSetParams, {}, "476e747b74d588e1255a5b453f19341d"),
]


@pytest.mark.parametrize("model, params, digest", OLD_HASHES)
def test_stored_parameters_keep_their_old_hashes(model, params, digest):
    assert params_hash(model.for_storage(params)) == digest
    assert params_hash(model.for_storage(model.for_storage(params))) == digest  # idempotent


def test_no_module_getattr_shim_and_no_central_schema_module():
    assert not hasattr(core_params, "__getattr__")
    with pytest.raises(ImportError):
        __import__("element_pose.core.param_schemas")


def test_readme_lists_every_model_and_is_not_stale():
    text = README.read_text()
    assert BEGIN in text and END in text, "README lacks the generated parameter tables"
    block = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert block == params_markdown().strip(), (
        "README parameter tables are stale: regenerate them with "
        "`element-pose params --update README.md`")
    assert set(SCHEMAS) == {"training", "labeled_video", "filter", "calibration",
                            "triangulation", "outliers"}
    for name, model in SCHEMAS.items():
        assert f"`{name}`: {model.table}" in block
        for key in model.model_fields:
            assert f"| `{key}` |" in block.split(f"`{name}`:", 1)[1], (name, key)
    for nested in ("weight_init.snapshot_path", "bundle_adjust.ftol", "filter_3d.medfilt",
                   "steps[step=median].window", "steps[step=interpolate].method"):
        assert f"`{nested}`" in block


def test_update_rewrites_only_the_block(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(f"before\n{BEGIN}\nSTALE-TABLE\n{END}\nafter\n")
    update_markdown(str(doc))
    text = doc.read_text()
    assert text.startswith("before\n") and text.endswith(f"{END}\nafter\n")
    assert "STALE-TABLE" not in text and "`epochs`" in text
    (tmp_path / "plain.md").write_text("no markers")
    with pytest.raises(ParamsError, match="markers"):
        update_markdown(str(tmp_path / "plain.md"))


def test_cli_prints_the_models():
    run = subprocess.run([sys.executable, "-m", "element_pose.cli", "params", "training"],
                         capture_output=True, text=True, check=True)
    assert "`epochs`" in run.stdout and "integer in [1, 100000]" in run.stdout
    assert "`filter`" not in run.stdout
    every = subprocess.run([sys.executable, "-m", "element_pose.cli", "params"],
                           capture_output=True, text=True, check=True).stdout
    assert all(f"`{name}`" in every for name in SCHEMAS)
    bad = subprocess.run([sys.executable, "-m", "element_pose.cli", "params", "nope"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "known:" in bad.stderr
    assert re.search(r"params\b", subprocess.run(
        [sys.executable, "-m", "element_pose.cli", "--help"], capture_output=True, text=True,
        check=True).stdout)


# --------------------------------------------------- insert (real database)
@pytest.mark.parametrize("params, fragment", [
    ({"epochs": "ten"}, "'epochs'"),
    ({"epochs": -5}, "'epochs'"),
    ({"train_fraction": 1.5}, "'train_fraction'"),
    ({"batch_size": 1e9}, "'batch_size'"),
    ({"weight_init": {"with_decoder": True}}, "'snapshot_path' or 'model'"),
])
def test_training_paramset_refuses_at_insert(pipeline, params, fragment):
    table = pipeline.train.TrainingParamSet
    before = len(table())
    with pytest.raises(ParamsError, match=re.escape(fragment)):
        table.insert_new_params("bad", params)
    assert len(table()) == before


def test_filter_paramset_refuses_confidence_threshold_5(pipeline):
    from element_pose.processing.filters import FilterParamsError

    table = pipeline.analysis.FilterParamSet
    with pytest.raises(FilterParamsError, match=re.escape("number in [0, 1], got 5")):
        table.insert_new_params("bad", {"steps": [{"step": "confidence_threshold",
                                                   "threshold": 5}]})
    assert not (table & {"paramset_desc": "bad"})


def test_labeled_video_paramset_refuses_bad_values(pipeline):
    table = pipeline.model.LabeledVideoParamSet
    for params, fragment in (({"pcutoff": 2}, "'pcutoff'"), ({"dotsize": "big"}, "'dotsize'"),
                             ({"draw_skeleton": "yes"}, "'draw_skeleton'"),
                             ({"fps": 30}, "unknown key(s) ['fps']")):
        with pytest.raises(ParamsError, match=re.escape(fragment)):
            table.insert_new_params("bad", params)
    assert not (table & {"paramset_desc": "bad"})


def test_calibration_and_triangulation_paramsets_refuse_bad_values(pipeline):
    from element_pose.processing.threed import ThreeDParamsError

    board = {"squares_x": 6, "squares_y": 5, "square_length": 30.0, "marker_length": 22.0}
    with pytest.raises(ThreeDParamsError, match=re.escape(
            "multicam.CalibrationParamSet params: 'dict_size' must be integer in {50,")):
        pipeline.multicam.CalibrationParamSet.insert_new_params("bad", {**board,
                                                                        "dict_size": 77})
    with pytest.raises(ThreeDParamsError, match=re.escape("'score_threshold' must be number "
                                                          "in [0, 1], got 5")):
        pipeline.multicam.TriangulationParamSet.insert_new_params("bad",
                                                                  {"score_threshold": 5})
    with pytest.raises(ThreeDParamsError, match="score_threshold"):
        pipeline.multicam.TriangulationParamSet.insert_new_params(
            "bad", {"filter_3d": {"score_threshold": 3}})
    assert not (pipeline.multicam.TriangulationParamSet & {"paramset_desc": "bad"})


def test_description_longer_than_its_column_is_named(pipeline):
    with pytest.raises(ParamsError, match=r"TrainingParamSet\.paramset_desc .* 1000"):
        pipeline.train.TrainingParamSet.insert_new_params("d" * 1001, {"epochs": 1})


def test_training_params_are_validated_by_the_engine_named(pipeline):
    table = pipeline.train.TrainingParamSet
    with pytest.raises(ParamsError, match=r"'engine' must be an engine that trains, one of "
                                          r"\[.*'deeplabcut'.*\], got 'sleap'"):
        table.insert_new_params("sleap", {"engine": "sleap", "epochs": 1})
    with pytest.raises(ParamsError, match=r"'engine'.*got 'nope'"):
        table.insert_new_params("nope", {"engine": "nope"})
    idx = table.insert_new_params("dlc alias", {"engine": "dlc", "epochs": 7})
    assert (table & {"paramset_idx": idx}).fetch1("params") == {"engine": "dlc", "epochs": 7}


def _counting(model):
    """A subclass of ``model`` that counts its validations."""
    class Counting(model):
        calls: ClassVar[int] = 0

        @classmethod
        def model_validate(cls, *args, **kwargs):
            Counting.calls += 1
            return super().model_validate(*args, **kwargs)

    Counting.name, Counting.table = model.name, model.table
    return Counting


def test_each_insert_validates_once(pipeline, monkeypatch):
    import element_pose.processing.filters as filters
    import element_pose.processing.labeled_video as labeled_video
    import element_pose.processing.threed.board as board
    import element_pose.processing.threed.triangulation as triangulation
    from element_pose.engines import get_engine

    engine = get_engine("deeplabcut")
    cases = [
        (engine, "training_params", pipeline.train.TrainingParamSet, {"epochs": 11}),
        (labeled_video, "LabeledVideoParams", pipeline.model.LabeledVideoParamSet, {"dotsize": 9}),
        (filters, "FilterParams", pipeline.analysis.FilterParamSet,
         {"steps": [{"step": "median", "window": 9}]}),
        (board, "CalibrationParams", pipeline.multicam.CalibrationParamSet,
         {**BOARD, "seed": 9}),
        (triangulation, "TriangulationSetParams", pipeline.multicam.TriangulationParamSet,
         {"min_cameras": 9}),
    ]
    for owner, attribute, table, params in cases:
        counting = _counting(getattr(owner, attribute))
        monkeypatch.setattr(owner, attribute, counting)
        table.insert_new_params(f"once {attribute}", params)
        assert counting.calls == 1, (attribute, counting.calls)
