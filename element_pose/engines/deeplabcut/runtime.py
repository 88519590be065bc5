"""Running DeepLabCut: devices, versions, its import, errors, console and signals."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.engines.deeplabcut.base import (
    EngineError,
)
from element_pose.engines.deeplabcut.progress import ConsoleProgress

__all__ = [
    "device_info",
    "select_device",
    "versions",
]

log = logging.getLogger(__name__)


# ===================================================================== devices
def device_info() -> dict[str, Any]:
    """Describe the torch devices: ``{torch, cuda_available, cuda_devices, default}``.

    ``default`` is ``"cuda"`` when torch sees a GPU, else ``"cpu"``.
    """
    import torch

    cuda = torch.cuda.is_available()
    count = torch.cuda.device_count() if cuda else 0
    names = [torch.cuda.get_device_name(i) for i in range(count)]
    return {
        "torch": torch.__version__,
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "cuda_devices": names,
        "default": "cuda" if cuda else "cpu",
    }


def select_device(device: str | None = None) -> str:
    """The torch device to run on: ``device`` when given, else CUDA if available, else CPU.

    Raises:
        EngineError: if a CUDA device is requested but torch sees no GPU.
    """
    if device and device != "auto":
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise EngineError(f"device {device!r} requested but torch sees no CUDA GPU")
        return device
    return device_info()["default"]


def versions() -> dict[str, str]:
    """Versions of the software that trains/infers (without importing deeplabcut)."""
    from importlib import metadata

    from element_pose.version import __version__

    out = {"element_pose": __version__}
    for dist in ("deeplabcut", "torch", "torchvision", "timm"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


# ================================================================= helpers
_DLC_MODULE = None


def _import_deeplabcut():
    """Import deeplabcut once (about 9 s), with hub downloads kept quiet."""
    global _DLC_MODULE
    if _DLC_MODULE is None:
        t0 = time.perf_counter()
        try:
            import deeplabcut
        except ImportError as exc:
            raise EngineError(
                "DeepLabCut is not installed: pip install 'element-pose[dlc]' "
                f"(deeplabcut==3.0.2): {exc}"
            ) from exc
        _DLC_MODULE = deeplabcut
        took = time.perf_counter() - t0
        log.debug("imported deeplabcut %s in %.1f s", deeplabcut.__version__, took)
    return _DLC_MODULE


@contextlib.contextmanager
def _dlc_errors(what: str, t0: float | None = None) -> Iterator[None]:
    """Re-raise exceptions from DeepLabCut as :class:`EngineError` with context."""
    try:
        yield
    except EngineError:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # DLC raises anything, including SystemExit
        took = f" after {time.perf_counter() - t0:.1f} s" if t0 is not None else ""
        raise EngineError(f"DeepLabCut failed {what}{took}: {type(exc).__name__}: {exc}") from exc


#: Set while DeepLabCut runs: processes forked then get default signal handlers.
_IN_DEEPLABCUT = False


def _default_signals_in_child() -> None:
    """After a fork inside DeepLabCut: drop the parent's handlers (e.g. DataJoint's
    SIGTERM handler in ``populate``, which would log "Populate terminated by SIGTERM"
    when DeepLabCut ends its worker processes)."""
    if _IN_DEEPLABCUT:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_default_signals_in_child)

_console_log = logging.getLogger("element_pose.engines.deeplabcut.console")
_PROGRESS_RE = re.compile(r"(\d+)/(\d+) \[")


class _ConsoleToLog(io.TextIOBase):
    """A text stream that sends DeepLabCut's console output to logging.

    Every line goes to DEBUG; tqdm progress bars (``12/300 [``) are logged at INFO
    (see :class:`~element_pose.engines.deeplabcut.progress.ConsoleProgress`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._buffer = ""
        self._progress = ConsoleProgress(_console_log)  # records every quarter and >= 30 s

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        *lines, self._buffer = re.split(r"[\r\n]", self._buffer)
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            self._line(self._buffer)
            self._buffer = ""

    def _line(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        match = _PROGRESS_RE.search(line)
        if match:
            if self._progress.update(int(match.group(1)), int(match.group(2))):
                return
        _console_log.debug("%s", line)


@contextlib.contextmanager
def _keep_cwd() -> Iterator[None]:
    """Restore what DeepLabCut changes globally: working directory and root logging.

    ``create_labeled_video`` changes the working directory, and ``train_network``
    reconfigures the root logger (``logging.basicConfig(force=True)``, then removes
    every root handler when done), which would silence the host application's
    logging and pytest's log capture.  DeepLabCut's console output (config dumps,
    progress bars) goes to the logger ``element_pose.engines.deeplabcut.console``
    (DEBUG; progress at INFO), and processes it forks get default signal handlers.
    """
    global _IN_DEEPLABCUT
    cwd = os.getcwd()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    console = _ConsoleToLog()
    was_inside, _IN_DEEPLABCUT = _IN_DEEPLABCUT, True
    try:
        with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
            yield
    finally:
        _IN_DEEPLABCUT = was_inside
        console.flush()
        console._progress.close()
        os.chdir(cwd)
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                with contextlib.suppress(Exception):
                    handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    with open(path) as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise EngineError(f"{path} is not a YAML mapping")
    return data


def _write_yaml(data: Mapping[str, Any], path: Path) -> None:
    import yaml

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        yaml.safe_dump(_plain(data), f, sort_keys=False)
    tmp.replace(path)


def _set_nested(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def _config_device(pt: Mapping[str, Any]) -> str | None:
    device = pt.get("device")
    return None if device in (None, "auto") else str(device)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _round_up(value: int, multiple: int) -> int:
    return int(-(-int(value) // multiple) * multiple)


def _plain(value: Any) -> Any:
    """Numpy scalars/arrays and paths -> plain Python (YAML- and DataJoint-friendly)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value
