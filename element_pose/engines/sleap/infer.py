"""Inference with sleap-nn (SLEAP's PyTorch backend), with tracking for multi-animal models.

:func:`infer` runs :func:`sleap_nn.inference.predict` -- what ``sleap-nn predict`` runs,
with the command line's defaults (batch size 4) -- on each video and writes
``<video stem>.predictions.slp`` into the output folder.  Its positions equal those of
``sleap-nn predict`` for every model type, and those of ``sleap-nn track`` (sleap-nn's
legacy pipeline) for single-instance and bottom-up models; for top-down models
``track`` differs in the last float32 bits (measured up to 4e-6 px).  Everything is written in a
temporary folder inside the output folder first and moved in only when every video has
been predicted, so a failure leaves no file, half-written or not.

Models: a model set as :mod:`element_pose.engines.sleap.model` describes it (one
trained model folder with ``training_config.yaml`` -- or a SLEAP 1.x
``training_config.json`` -- and ``best.ckpt``, or a top-down centroid +
centered-instance pair), or a file in a model folder.  ``options["model_paths"]``
of the description, when given, names the folders (relative ones are taken relative
to the model's folder).  The snapshot is ``best`` unless another checkpoint of a
one-folder model is asked for.

Multi-animal models (bottom-up, top-down) are tracked (sleap-nn's classic tracker,
``local_queues`` candidates when the number of tracks is capped), so that each
individual of the pose data is one track; ``tracking=False`` keeps the untracked
instances (then read as ``instance_0``, ``instance_1``...: identities are not kept
across frames).  The number of tracks is ``max_tracks``, else the model's
individuals when it has several, else ``max_instances``, else unbounded.

Confidence: the reader (:mod:`element_pose.io.sleap`) stores each point's score as
its likelihood; the instance scores stay in the ``.slp`` file (read them with
``read_sleap(path, confidence="instance")``).  Progress is logged at the start, at
least every :data:`LOG_INTERVAL_S` seconds while a video is predicted (a heartbeat
thread, so a slow batch is no silence), and at the end of each video.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from element_pose.engines.base import (
    EngineError,
    InferenceResult,
    ModelDescription,
    VideoOutputs,
)

__all__ = [
    "INFER_OPTIONS",
    "LOG_INTERVAL_S",
    "MULTI_ANIMAL_HEADS",
    "infer",
    "model_folders",
    "model_heads",
    "output_name",
]

log = logging.getLogger(__name__)

#: Options :func:`infer` takes besides the model, videos and output folder.
INFER_OPTIONS = ("batch_size", "tracking", "max_instances", "max_tracks", "peak_threshold")

#: Head types of models that find several animals per frame.
MULTI_ANIMAL_HEADS = frozenset({"bottomup", "centroid", "centered_instance",
                                "multi_class_bottomup", "multi_class_topdown",
                                "multi_instance"})


def _interval() -> float:
    try:
        return max(0.01, float(os.environ.get("ELEMENT_POSE_PROGRESS_INTERVAL", "30")))
    except ValueError:
        return 30.0


#: Longest time between two progress records while a video is predicted (seconds).
LOG_INTERVAL_S = _interval()

def output_name(video: str | Path) -> str:
    """The predictions file of a video: ``<stem>.predictions.slp``."""
    return f"{Path(video).stem}.predictions.slp"


# ==================================================================== the model
def model_folders(model: ModelDescription) -> list[Path]:
    """The trained sleap-nn model folder(s) of a model description, in inference order.

    The model's folder is a model set (:func:`element_pose.engines.sleap.model.model_runs`:
    one model folder, or a top-down centroid + centered-instance pair); a file in a
    model folder stands for its folder.

    Raises:
        EngineError: naming the path when no trained model folder is there, or a
            folder lacks its trained weights.
    """
    from element_pose.engines.sleap import model as sm

    base = Path(model.home or model.source)
    if base.is_file():
        base = base.parent
    if not base.is_dir():
        raise EngineError(f"SLEAP model folder not found: {base}")
    named = model.options.get("model_paths")
    if named:
        folders = [Path(p) if Path(p).is_absolute() else base / p for p in named]
    else:
        try:
            folders = sm.model_runs(base)
        except EngineError as exc:
            raise EngineError(f"{base} is no trained sleap-nn model folder: {exc}") from exc
    for folder in folders:
        if not any((folder / n).is_file() for n in sm.CONFIG_NAMES):
            raise EngineError(f"{folder} is no trained sleap-nn model folder "
                              f"(no {' or '.join(sm.CONFIG_NAMES)})")
        if not any((folder / f).is_file() for f in sm.SNAPSHOTS["best"]):
            raise EngineError(f"{folder} has no trained weights "
                              f"({' or '.join(sm.SNAPSHOTS['best'])})")
    return folders


def model_heads(folder: str | Path) -> list[str]:
    """The head types of a trained model folder (``single_instance``, ``bottomup``...).

    Raises:
        EngineError: naming the file when its configuration cannot be read.
    """
    from element_pose.engines.sleap import model as sm

    config = sm.read_config(Path(folder))
    heads = (config.get("model_config") or {}).get("head_configs") \
        or (config.get("model") or {}).get("heads")  # SLEAP 1.x json
    if not isinstance(heads, dict):
        raise EngineError(f"cannot read the model heads of {folder}: its training "
                          "configuration names none")
    return [str(k) for k, v in heads.items() if v]


def _checkpoints(folders: list[Path], snapshot: Any) -> dict[str, str]:
    """``backbone_ckpt_path``/``head_ckpt_path`` for a snapshot other than ``best``."""
    if snapshot in (None, "", "best", "best.ckpt"):
        return {}
    if len(folders) != 1:
        raise EngineError(f"a snapshot ({snapshot!r}) can be chosen only for a model of one "
                          f"folder; this one has {[str(f) for f in folders]}")
    path = Path(str(snapshot))
    if not path.is_absolute():
        path = folders[0] / (path.name if path.suffix == ".ckpt" else f"{path.name}.ckpt")
    if not path.is_file():
        raise EngineError(f"snapshot {snapshot!r} not found: {path}")
    return {"backbone_ckpt_path": str(path), "head_ckpt_path": str(path)}


# ==================================================================== options
def _check_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(INFER_OPTIONS))
    if unknown:
        raise EngineError(f"unknown SLEAP inference options {unknown}; known: "
                          f"{list(INFER_OPTIONS)}")
    for name in ("batch_size", "max_instances", "max_tracks"):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or int(value) != value
                                  or int(value) < 1):
            raise EngineError(f"{name} must be a whole number of at least 1, got {value!r}")


def _track_count(model: ModelDescription, options: Mapping[str, Any]) -> int | None:
    if options.get("max_tracks") is not None:
        return int(options["max_tracks"])
    if len(model.individuals) > 1:
        return len(model.individuals)
    return int(options["max_instances"]) if options.get("max_instances") else None


def _tracker_config(multi: bool, model: ModelDescription, options: Mapping[str, Any]):
    """sleap-nn's tracker settings (``None``: no tracking), as ``sleap-nn track -t`` makes
    them: the classic tracker, ``local_queues`` candidates when tracks are capped."""
    tracking = options.get("tracking")
    if not (multi if tracking is None else bool(tracking)):
        return None
    from sleap_nn.inference.tracking import TrackerConfig

    max_tracks = _track_count(model, options)
    return TrackerConfig(
        window_size=5,
        candidates_method="fixed_window" if max_tracks is None else "local_queues",
        oks_stddev=0.025,
        max_tracks=max_tracks,
    )


def _device(device: str | None) -> str:
    if device not in (None, "", "auto"):
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ==================================================================== videos
def _probe_videos(video_paths: Sequence[str | Path]) -> list[tuple[Path, Any]]:
    """Each video, resolved, with its probed geometry; distinct names (outputs use them).

    Raises:
        EngineError: no video, two with one name, or one missing or unreadable.
    """
    from element_pose.io.video import VideoError, probe_video

    videos = [Path(v).resolve() for v in video_paths]
    if not videos:
        raise EngineError("no videos given to SLEAP inference")
    stems = [v.stem for v in videos]
    if len(set(stems)) != len(stems):
        raise EngineError(f"videos predicted together must have distinct names: {stems}")
    probed = []
    for video in videos:
        try:
            probed.append((video, probe_video(video)))
        except VideoError as exc:
            raise EngineError(f"cannot run SLEAP on {video}: {exc}") from exc
    return probed


class _Progress:
    """Logs a video's progress: from sleap-nn's callback, and a heartbeat in between."""

    def __init__(self, name: str, total: int, interval: float | None = None) -> None:
        self.name, self.total = name, total
        self.interval = LOG_INTERVAL_S if interval is None else interval
        self.done = 0
        self.start = time.perf_counter()
        self._last = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True,
                                        name=f"sleap-progress-{name}")

    def __enter__(self) -> _Progress:
        log.info("SLEAP: predicting %s (%d frames)", self.name, self.total)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def __call__(self, done: int, total: int) -> None:
        """sleap-nn's ``progress_callback(processed_frames, total_frames)``."""
        self.done, self.total = int(done), int(total) or self.total
        if time.perf_counter() - self._last >= self.interval:
            self._log()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval / 4):
            if time.perf_counter() - self._last >= self.interval:
                self._log()

    def _log(self) -> None:
        self._last = now = time.perf_counter()
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        log.info("SLEAP: %s %d/%d frames, %.0f s elapsed, %.1f fps, ~%.0f s left",
                 self.name, self.done, self.total, elapsed, rate, left)


# ==================================================================== infer
def infer(model: ModelDescription, videos: Sequence[str | Path], output_dir: str | Path,
          *, snapshot: Any = None, device: str | None = None,
          **options: Any) -> InferenceResult:
    """Run a trained sleap-nn model on videos; write ``<stem>.predictions.slp`` for each.

    Args:
        model: The model (:meth:`SleapEngine.describe_model` of a model folder).
        videos: Videos to predict (file names must differ).
        output_dir: Folder for the predictions (created).
        snapshot: ``None``/``"best"`` (``best.ckpt``), or another checkpoint of a
            one-folder model (``"last"``, a ``.ckpt`` name or path).
        device: Torch device; default CUDA when available, else CPU.
        **options: ``batch_size`` (default 4, as the command line),
            ``tracking`` (default: for multi-animal models), ``max_instances`` (per
            frame), ``max_tracks`` (see the module docstring), ``peak_threshold``.

    Returns:
        One :class:`VideoOutputs` per video (format ``sleap_slp``), in input order.

    Raises:
        EngineError: a missing or unreadable video, a folder that holds no trained
            model, an unknown or invalid option, or a failure inside sleap-nn (named,
            with the video).
    """
    _check_options(options)
    probed = _probe_videos(videos)
    folders = model_folders(model)
    heads = [h for f in folders for h in model_heads(f)]
    multi = bool(MULTI_ANIMAL_HEADS & set(heads))
    tracker_config = _tracker_config(multi, model, options)
    if snapshot is None:
        snapshot = model.options.get("snapshot")
    checkpoints = _checkpoints(folders, snapshot)
    dev = _device(device)
    batch_size = int(options.get("batch_size") or 4)
    kwargs: dict[str, Any] = {
        "model_paths": [str(f) for f in folders], "device": dev, "batch_size": batch_size,
        "tracker_config": tracker_config, **checkpoints}
    for name in ("max_instances", "peak_threshold"):
        if options.get(name) is not None:
            kwargs[name] = options[name]
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        from sleap_nn.inference import predict
        from sleap_nn.inference.run import save_predictions
    except ImportError as exc:
        raise EngineError("SLEAP inference needs sleap-nn: pip install "
                          "'element-pose[sleap]'") from exc
    log.info("SLEAP: %d video(s) with %s (%s) on %s, batch %d%s, into %s", len(probed),
             [f.name for f in folders], "+".join(heads), dev, batch_size,
             f", tracked (max {tracker_config.max_tracks} tracks)" if tracker_config else "",
             output_dir)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".sleap-infer-", dir=output_dir) as tmp:
        written = []
        for video, info in probed:
            with _Progress(video.name, info.n_frames) as progress:
                try:
                    labels = predict(str(video), progress_callback=progress, **kwargs)
                    path = Path(tmp) / output_name(video)
                    save_predictions(labels, path)
                except Exception as exc:  # sleap-nn/torch raise many types
                    raise EngineError(f"sleap-nn failed on {video} with {folders}: "
                                      f"{type(exc).__name__}: {exc}") from exc
            written.append(path)
        run_time = time.perf_counter() - t0
        outputs = []
        for (video, info), path in zip(probed, written, strict=True):
            target = output_dir / path.name
            os.replace(path, target)
            outputs.append(VideoOutputs(video=video, pose_files=[target], files=[target],
                                        fmt="sleap_slp", n_frames=info.n_frames,
                                        fps=info.fps, version=_version()))
    n_frames = sum(info.n_frames for _, info in probed)
    fps = n_frames / run_time if run_time > 0 else float("nan")
    log.info("SLEAP: predicted %d frame(s) in %.1f s (%.1f fps)", n_frames, run_time, fps)
    return InferenceResult(
        outputs=outputs, scorer=folders[0].name,  # what the reader names from provenance
        snapshot=str(snapshot or "best"), run_time=run_time, frames_per_second=fps,
        device=dev, batch_size=batch_size,
        software={"sleap": _version() or "", "sleap-nn": _version() or "",
                  "sleap-io": _version("sleap-io") or ""},
        native={"model_paths": kwargs["model_paths"], "heads": heads,
                "tracked": tracker_config is not None})


def _version(distribution: str = "sleap-nn") -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None
