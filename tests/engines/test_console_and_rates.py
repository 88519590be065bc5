"""DeepLabCut's console output goes to logging, its child processes get default
signal handlers, and labelled videos keep the source's exact frame rate (issue 13)."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys

import pytest

from element_pose import sample
from element_pose.engines import deeplabcut as engine
from element_pose.engines.deeplabcut.runtime import _keep_cwd
from element_pose.io.video import probe_video


def _report_sigterm(conn) -> None:
    conn.send(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
    conn.close()


def _parent_handler(signum, frame):  # stands in for DataJoint's populate handler
    raise SystemExit("parent handler ran in a child")


def test_children_forked_inside_deeplabcut_get_default_signal_handlers():
    previous = signal.signal(signal.SIGTERM, _parent_handler)
    try:
        context = multiprocessing.get_context("fork")
        parent, child = context.Pipe()
        with _keep_cwd():
            process = context.Process(target=_report_sigterm, args=(child,))
            process.start()
            default_in_child = parent.recv()
            process.join(10)
        assert default_in_child, "the child inherited the parent's SIGTERM handler"
        assert signal.getsignal(signal.SIGTERM) is _parent_handler  # parent untouched
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_console_output_goes_to_the_log(capsys, caplog):
    from tqdm import tqdm

    caplog.set_level(logging.DEBUG, logger="element_pose.engines.deeplabcut")
    with _keep_cwd():
        print("Video metadata: \n  Overall # of frames: 40")
        for _ in tqdm(range(40)):
            pass
        sys.stderr.write("a partial line")
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    console = [r for r in caplog.records if r.name == "element_pose.engines.deeplabcut.console"]
    debug = [r.getMessage() for r in console if r.levelno == logging.DEBUG]
    info = [r.getMessage() for r in console if r.levelno == logging.INFO]
    assert "Video metadata:" in debug and "a partial line" in debug
    assert info[-1].startswith("DeepLabCut progress: 40/40 (100%), ") and 1 <= len(info) <= 5


@pytest.mark.slow
def test_labelled_video_keeps_a_non_integer_rate(tiny_model, tmp_path, capsys):
    video = tmp_path / "session" / "cam.mp4"
    sample.make_video(video, n_frames=24, fps=30.0003, seed=0)
    assert probe_video(video).fps == 30.0003
    engine.infer(tiny_model.config, [video], tmp_path / "out", batch_size=8, device="cpu")
    labelled = engine.label_video(tiny_model.config, video, tmp_path / "labelled",
                                  analysis_dir=tmp_path / "out", dotsize=2)
    info = probe_video(labelled)
    assert info.fps == 30.0003 and info.n_frames == 24
    assert info.duration == pytest.approx(24 / 30.0003, abs=1e-9)
    out, _ = capsys.readouterr()
    assert "Video metadata" not in out and "Duration of video" not in out
