"""Progress of training, evaluation and inference (issue 27 item 9)."""

from __future__ import annotations

import io
import logging

import pytest

from element_pose import sample
from element_pose.engines import deeplabcut as engine
from element_pose.engines.deeplabcut.progress import ConsoleProgress, format_duration
from element_pose.engines.deeplabcut.runtime import _keep_cwd

PROGRESS = "element_pose.engines.deeplabcut.progress"


def test_console_progress_logs_each_interval_with_elapsed_and_eta(caplog):
    log = logging.getLogger("element_pose.engines.deeplabcut.console")
    caplog.set_level(logging.INFO, logger=log.name)
    every_update = ConsoleProgress(log, interval=0.0)
    for done in range(0, 11):
        every_update.update(done, 10)
    records = [r for r in caplog.records if getattr(r, "progress", None) == "console"]
    assert [r.done for r in records] == list(range(11))
    assert all(r.total == 10 and r.elapsed >= 0 for r in records)
    assert records[-1].eta == 0 and "10/10 (100%)" in records[-1].getMessage()
    assert "elapsed, about" in records[5].getMessage()

    caplog.clear()
    quarters = ConsoleProgress(log, interval=3600.0)
    for done in range(0, 101):
        quarters.update(done, 100)
    assert [r.done for r in caplog.records] == [0, 25, 50, 75, 100]


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_console_progress_draws_a_bar_on_a_terminal_only():
    tty = Terminal()
    progress = ConsoleProgress(logging.getLogger("t"), stream=tty)
    assert progress.stream is tty
    progress.update(5, 10)
    progress.close()
    assert "5/10" in tty.getvalue()
    assert ConsoleProgress(logging.getLogger("t"), stream=io.StringIO()).stream is None


def test_format_duration():
    assert format_duration(5.2) == "5 s"
    assert format_duration(75) == "1 min 15 s"
    assert format_duration(3 * 3600 + 120) == "3 h 02 min"
    assert format_duration(None) == "?"


@pytest.mark.slow
def test_training_logs_a_progress_record_per_epoch(tmp_path, caplog):
    pytest.importorskip("deeplabcut")
    project = sample.make_dlc_project(tmp_path / "project", n_frames=12, n_labeled=8,
                                      width=64, height=48)
    params = {"net_type": "cspnext_s", "weight_init": "random", "epochs": 3,
              "batch_size": 4, "save_epochs": 3, "device": "cpu", "train_fraction": 0.75}
    config = engine.prepare_training_project(project, tmp_path / "work", params)
    caplog.set_level(logging.INFO)
    engine.train(config, params, device="cpu")
    records = [r for r in caplog.records if r.name == PROGRESS]
    assert [(r.epoch, r.epochs) for r in records] == [(1, 3), (2, 3), (3, 3)]
    assert all(isinstance(r.loss, float) and r.loss == r.loss for r in records)
    assert all(r.eta is not None and r.eta >= 0 for r in records) and records[-1].eta == 0
    assert records[0].levelno == logging.INFO
    message = records[0].getMessage()
    assert message.startswith("training epoch 1/3: train loss ") and "left" in message
    # the application's logging is back after DeepLabCut's own set-up
    assert caplog.handler in logging.getLogger().handlers


def test_keep_cwd_console_is_closed(caplog):
    caplog.set_level(logging.INFO, logger="element_pose.engines.deeplabcut.console")
    with _keep_cwd():
        print("3/3 [")
    assert [r.getMessage().split(",")[0] for r in caplog.records] == [
        "DeepLabCut progress: 3/3 (100%)"]
