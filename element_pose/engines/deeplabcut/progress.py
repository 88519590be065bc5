"""Progress of DeepLabCut's training, evaluation and inference: logging and a terminal bar.

Training: DeepLabCut 3.0.2's runner (``runners/train.py``) logs one line per epoch
through the root logger, ``Epoch 3/40 (lr=0.0005), train loss 0.01234[, valid loss
0.02345]``, after ``train_network`` has replaced the root logger's handlers with its
own (``train.txt`` and the console, ``logging.basicConfig(force=True)``).
:func:`training_progress` puts a filter on the root logger (filters survive that
reset) that turns each of those lines into an INFO record of the logger
``element_pose.engines.deeplabcut.progress`` (epoch/total, losses, elapsed, estimated
time left), delivered to the handlers the application had when training started.

Evaluation and inference: DeepLabCut draws tqdm bars, which
:mod:`~element_pose.engines.deeplabcut.runtime` sends to logging; a
:class:`ConsoleProgress` logs each bar at its first update, at every quarter, at
least every :data:`LOG_INTERVAL_S` seconds (``ELEMENT_POSE_PROGRESS_INTERVAL``) and at
the end, with elapsed and estimated time left.

Both draw a tqdm bar on the terminal when standard error is one (``isatty``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = [
    "EPOCH_RE",
    "LOG_INTERVAL_S",
    "ConsoleProgress",
    "format_duration",
    "training_progress",
]

progress_log = logging.getLogger(__name__)

#: DeepLabCut's per-epoch line (``runners/train.py``).
EPOCH_RE = re.compile(
    r"^Epoch (?P<epoch>\d+)/(?P<epochs>\d+)\b.*?train loss (?P<loss>[-+0-9.eEnaif]+)"
    r"(?:, valid loss (?P<valid>[-+0-9.eEnaif]+))?"
)


def _interval() -> float:
    try:
        return float(os.environ.get("ELEMENT_POSE_PROGRESS_INTERVAL", "30"))
    except ValueError:
        return 30.0


#: Longest time between two progress records of a bar (seconds).
LOG_INTERVAL_S = _interval()


def format_duration(seconds: float | None) -> str:
    """``75.2`` -> ``"1 min 15 s"``; ``None`` -> ``"?"``."""
    if seconds is None or seconds != seconds:
        return "?"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def _eta(elapsed: float, done: int, total: int) -> float | None:
    return elapsed / done * (total - done) if done > 0 else None


def _terminal(stream: TextIO | None) -> TextIO | None:
    """``stream`` when it is a terminal (a bar can be drawn there), else ``None``."""
    try:
        return stream if stream is not None and stream.isatty() else None
    except (AttributeError, ValueError):
        return None


def _bar(total: int, desc: str, stream: TextIO | None):
    if stream is None:
        return None
    from tqdm import tqdm

    # updates come at most as often as DeepLabCut redraws its own bar: draw each one
    return tqdm(total=total, desc=desc, file=stream, leave=False, dynamic_ncols=True,
                mininterval=0)


# ================================================================ training
class _HostLogging:
    """Deliver records to the application's handlers, as they were at the start.

    DeepLabCut replaces the root logger's handlers while it trains; records of
    this module then go to the root handlers saved here (and to the handlers of the
    loggers in between, as usual).
    """

    def __init__(self) -> None:
        root = logging.getLogger()
        self.handlers = list(root.handlers)
        self.level = root.level

    def enabled(self, logger: logging.Logger, level: int) -> bool:
        node: logging.Logger | None = logger
        while node is not None:
            if node.disabled:
                return False
            if node.level or node.parent is None:
                return level >= (node.level if node.parent is not None else self.level)
            node = node.parent
        return False

    def handle(self, record: logging.LogRecord) -> None:
        node: logging.Logger | None = logging.getLogger(record.name)
        while node is not None:
            for handler in self.handlers if node.parent is None else node.handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
            if not node.propagate:
                break
            node = node.parent


class _EpochFilter(logging.Filter):
    """A root-logger filter that reports DeepLabCut's epoch lines (and passes them on)."""

    def __init__(self, tracker: _TrainingTracker) -> None:
        super().__init__()
        self.tracker = tracker

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "root":
            with contextlib.suppress(Exception):  # progress must never break training
                match = EPOCH_RE.match(record.getMessage())
                if match:
                    self.tracker.epoch(match)
        return True


class _TrainingTracker:
    def __init__(self, total: int | None, host: _HostLogging, stream: TextIO | None) -> None:
        self.total = total
        self.host = host
        self.stream = stream
        self.t0 = time.perf_counter()
        self.first: int | None = None
        self.bar: Any = None

    def epoch(self, match: re.Match) -> None:
        epoch, epochs = int(match["epoch"]), int(match["epochs"])
        loss = float(match["loss"])
        valid = float(match["valid"]) if match["valid"] else None
        if self.first is None:
            self.first = epoch - 1  # resumed training starts after its snapshot's epoch
        elapsed = time.perf_counter() - self.t0
        eta = _eta(elapsed, epoch - self.first, epochs - self.first)
        fields = {"epoch": epoch, "epochs": epochs, "loss": loss, "valid_loss": valid,
                  "elapsed": elapsed, "eta": eta}
        self._log(fields)
        self._draw(fields)

    def _log(self, f: dict[str, Any]) -> None:
        if not self.host.enabled(progress_log, logging.INFO):
            return
        msg = "training epoch %d/%d: train loss %.5f%s, %s elapsed, about %s left"
        valid = f", valid loss {f['valid_loss']:.5f}" if f["valid_loss"] is not None else ""
        args = (f["epoch"], f["epochs"], f["loss"], valid, format_duration(f["elapsed"]),
                format_duration(f["eta"]))
        record = progress_log.makeRecord(progress_log.name, logging.INFO, __file__, 0, msg,
                                         args, None, extra={"progress": "training", **f})
        self.host.handle(record)

    def _draw(self, f: dict[str, Any]) -> None:
        if self.stream is None:
            return
        if self.bar is None:
            self.bar = _bar(f["epochs"] - (self.first or 0), "training", self.stream)
        self.bar.set_postfix(loss=f"{f['loss']:.4g}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def training_progress(total_epochs: int | None = None,
                      stream: TextIO | None = None) -> Iterator[None]:
    """Report each of DeepLabCut's training epochs while the block runs.

    Enter it before DeepLabCut reconfigures logging (outside ``_keep_cwd``): the
    application's handlers and standard error are taken at entry.

    Args:
        total_epochs: Epochs to train (informative; DeepLabCut's line has the total).
        stream: Where to draw a bar; default standard error, when it is a terminal.
    """
    tracker = _TrainingTracker(total_epochs, _HostLogging(),
                               _terminal(stream if stream is not None else sys.stderr))
    epoch_filter = _EpochFilter(tracker)
    root = logging.getLogger()
    root.addFilter(epoch_filter)
    try:
        yield
    finally:
        root.removeFilter(epoch_filter)
        tracker.close()


# ====================================================== evaluation/inference
class ConsoleProgress:
    """Progress records (and a terminal bar) from DeepLabCut's tqdm bars.

    Each bar (``done/total``) is logged at its first update, at every quarter, at
    least every ``interval`` seconds and when done, with elapsed and estimated time
    left.  A bar whose count goes back is a new bar.

    Args:
        logger: Logger of the records (INFO).
        interval: Longest time between two records of a bar (seconds).
        stream: Where to draw a bar; default standard error at creation, when it
            is a terminal.
    """

    def __init__(self, logger: logging.Logger, interval: float | None = None,
                 stream: TextIO | None = None) -> None:
        self.logger = logger
        self.interval = LOG_INTERVAL_S if interval is None else float(interval)
        self.stream = _terminal(stream if stream is not None else sys.stderr)
        self._bars: dict[int, dict[str, Any]] = {}

    def update(self, done: int, total: int) -> bool:
        """Record that ``done`` of ``total`` are done; True when a record was logged."""
        if total <= 0:
            return False
        now = time.perf_counter()
        bar = self._bars.get(total)
        if bar is None or done < bar["done"]:
            self._close(bar)
            bar = {"t0": now, "last": None, "quarter": 0, "done": 0,
                   "tqdm": _bar(total, "DeepLabCut", self.stream)}
            self._bars[total] = bar
        if bar["tqdm"] is not None:
            bar["tqdm"].update(done - bar["done"])
        bar["done"] = done
        quarter = 4 * done // total
        due = (bar["last"] is None or quarter > bar["quarter"] or done >= total
               or now - bar["last"] >= self.interval)
        if not due or (bar.get("finished") and done >= total):
            return False
        bar.update(last=now, quarter=quarter, finished=done >= total)
        elapsed = now - bar["t0"]
        self.logger.info(
            "DeepLabCut progress: %d/%d (%d%%), %s elapsed, about %s left", done, total,
            100 * done // total, format_duration(elapsed),
            format_duration(_eta(elapsed, done, total)),
            extra={"progress": "console", "done": done, "total": total,
                   "elapsed": elapsed, "eta": _eta(elapsed, done, total)})
        return True

    @staticmethod
    def _close(bar: dict[str, Any] | None) -> None:
        if bar is not None and bar["tqdm"] is not None:
            bar["tqdm"].close()

    def close(self) -> None:
        """Close the terminal bars."""
        for bar in self._bars.values():
            self._close(bar)
        self._bars.clear()
