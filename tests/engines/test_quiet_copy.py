"""The task's project copy keeps DeepLabCut quiet (issue 27 item 10a)."""

from __future__ import annotations

import logging

import pytest
import yaml

from element_pose import sample
from element_pose.engines import deeplabcut as engine

pytestmark = pytest.mark.slow


def test_empty_multianimalproject_is_false_in_the_copy_only(tmp_path, caplog, capsys):
    pytest.importorskip("deeplabcut")
    project = sample.make_dlc_project(tmp_path / "project", n_frames=12, n_labeled=8,
                                      width=64, height=48)
    text = project.read_text()
    assert "multianimalproject: false" in text
    project.write_text(text.replace("multianimalproject: false", "multianimalproject:"))
    user_config = project.read_bytes()
    assert yaml.safe_load(user_config)["multianimalproject"] is None

    caplog.set_level(logging.DEBUG)
    params = {"net_type": "cspnext_s", "weight_init": "random", "epochs": 1,
              "batch_size": 4, "save_epochs": 1, "device": "cpu", "train_fraction": 0.75}
    config = engine.prepare_training_project(project, tmp_path / "work", params)

    assert yaml.safe_load(config.read_text())["multianimalproject"] is False
    assert project.read_bytes() == user_config  # the user's project is untouched
    noise = [r.getMessage() for r in caplog.records
             if "multianimalproject" in r.getMessage() and r.levelno >= logging.WARNING]
    assert noise == []
    out, err = capsys.readouterr()
    assert "multianimalproject" not in out + err
