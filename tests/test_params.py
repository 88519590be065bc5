"""Parameter-set schemas: declarative, enforced at insert, printed by the CLI and README."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from element_pose.core.param_schemas import (
    CALIBRATION,
    FILTER,
    LABELED_VIDEO,
    SCHEMAS,
    TRAINING,
    TRIANGULATION,
)
from element_pose.core.params import MARKDOWN_BEGIN as BEGIN
from element_pose.core.params import MARKDOWN_END as END
from element_pose.core.params import ParamsError, params_markdown, update_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


# ----------------------------------------------------------- schema (no DB)
@pytest.mark.parametrize("params, fragment", [
    ({"epochs": "ten"}, "'epochs' must be integer in [1, 100000]"),
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
    ({"weight_init": {"snapshot_path": "a.pt", "extra": 1}}, "unknown key(s) ['extra']"),
])
def test_training_schema_refuses(params, fragment):
    with pytest.raises(ParamsError) as err:
        TRAINING.validate(params)
    assert "train.TrainingParamSet params" in str(err.value)
    assert fragment in str(err.value)


def test_training_schema_accepts_real_parameter_sets():
    for params in ({}, {"epochs": 10, "batch_size": 8, "train_fraction": 0.8,
                        "weight_init": "random", "crop_size": [160, 128]},
                   {"weight_init": {"snapshot_path": "m/snapshot-best-010.pt",
                                    "with_decoder": True}},
                   {"weight_init": {"model": "m1"}, "scheduler": "none", "epochs": 3.0},
                   {"weight_init": "x/snapshot-5.pt", "device": None, "pcutoff": 0.6}):
        assert TRAINING.validate(params) is params


def test_schemas_match_the_code_that_uses_the_parameters():
    from element_pose.engines.deeplabcut import TRAINING_DEFAULTS
    from element_pose.processing.filters import INTERPOLATION_METHODS, STEP_NAMES
    from element_pose.processing.threed.calibration import (
        BOARD_TYPES,
        CALIBRATION_DEFAULTS,
        DEFAULT_BUNDLE_ADJUST,
        DICT_SIZES,
        MARKER_BITS,
    )
    from element_pose.processing.threed.postprocess import FILTER_3D_DEFAULTS
    from element_pose.processing.threed.triangulation import (
        REPROJ_LOSSES,
        TRIANGULATION_DEFAULTS,
    )
    from element_pose.schemas.model import LABELED_VIDEO_OPTIONS

    assert set(TRAINING.keys) == {*TRAINING_DEFAULTS, "engine"}
    for param in TRAINING.params:
        if param.name in TRAINING_DEFAULTS:
            assert param.default == TRAINING_DEFAULTS[param.name], param.name
    assert LABELED_VIDEO.keys == list(LABELED_VIDEO_OPTIONS)
    steps = FILTER.params[0].variants
    assert tuple(steps) == STEP_NAMES
    assert steps["interpolate"].params[1].choices == INTERPOLATION_METHODS
    by_name = {p.name: p for p in CALIBRATION.params}
    assert set(by_name) == {"squares_x", "squares_y", "square_length", *CALIBRATION_DEFAULTS,
                            "bundle_adjust"}
    assert by_name["type"].choices == BOARD_TYPES
    assert by_name["marker_bits"].choices == MARKER_BITS
    assert by_name["dict_size"].choices == DICT_SIZES
    for name, default in CALIBRATION_DEFAULTS.items():
        assert by_name[name].default == default, name
    assert {p.name: p.default for p in by_name["bundle_adjust"].schema.params} == \
        DEFAULT_BUNDLE_ADJUST
    tri = {p.name: p for p in TRIANGULATION.params}
    assert set(tri) == {*TRIANGULATION_DEFAULTS, "filter_3d", "angles"}
    for name, default in TRIANGULATION_DEFAULTS.items():
        assert tri[name].default == default, name
    assert tri["reproj_loss"].choices == REPROJ_LOSSES
    assert {p.name: p.default for p in tri["filter_3d"].schema.params} == FILTER_3D_DEFAULTS


def test_readme_lists_every_schema_and_is_not_stale():
    text = README.read_text()
    assert BEGIN in text and END in text, "README lacks the generated parameter tables"
    block = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert block == params_markdown().strip(), (
        "README parameter tables are stale: regenerate them with "
        "`element-pose params --update README.md`")
    for name, schema in SCHEMAS.items():
        assert f"`{name}`: {schema.title}" in block
        assert all(f"`{row['key']}`" in block for row in schema.rows())


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


def test_cli_prints_the_schemas():
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
    with pytest.raises(FilterParamsError, match=re.escape("number in [0, 1], got 5.0")):
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
    with pytest.raises(ThreeDParamsError, match="dict_size must be one of"):
        pipeline.multicam.CalibrationParamSet.insert_new_params("bad", {**board,
                                                                        "dict_size": 77})
    with pytest.raises(ThreeDParamsError, match=re.escape("'score_threshold' must be number "
                                                          "in [0, 1], got 5.0")):
        pipeline.multicam.TriangulationParamSet.insert_new_params("bad",
                                                                  {"score_threshold": 5})
    with pytest.raises(ThreeDParamsError, match="score_threshold"):
        pipeline.multicam.TriangulationParamSet.insert_new_params(
            "bad", {"filter_3d": {"score_threshold": 3}})
    assert not (pipeline.multicam.TriangulationParamSet & {"paramset_desc": "bad"})


def test_description_longer_than_its_column_is_named(pipeline):
    with pytest.raises(ParamsError, match=r"TrainingParamSet\.paramset_desc .* 1000"):
        pipeline.train.TrainingParamSet.insert_new_params("d" * 1001, {"epochs": 1})
