"""The engine contract: one Protocol, engine-neutral results, and a registry.

An *engine* is whatever produces pose data for a video: a tool that trains and
infers (DeepLabCut), or one whose outputs are only loaded (SLEAP, Lightning Pose).
Every engine is one module that defines a class satisfying :class:`PoseEngine` and
registers an instance::

    class MyEngine(FileEngine):           # or any class with PoseEngine's members
        name = "mytool"
        software = "MyTool"
        formats = ("mytool_csv",)         # element_pose.io formats its outputs use
        ...
    register_engine(MyEngine(), aliases=("my-tool",))

Schemas ask only ``get_engine(row["engine"])`` and the neutral results below;
:attr:`PoseEngine.capabilities` says which operations an engine supports
(``describe``, ``find_outputs``, ``read_outputs`` for all; ``train``, ``evaluate``,
``infer``, ``label_video`` where the tool can).  Unsupported operations raise
:class:`EngineCapabilityError`.

Engine modules import their tool lazily (inside methods), so importing this module,
or getting a load-only engine, imports no pose-estimation package.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from element_pose.core.labels import LabelSet
from element_pose.core.pose import PoseData, check_keypoints, concatenate

log = logging.getLogger(__name__)

__all__ = [
    "ALL_CAPABILITIES",
    "BUILTIN_ENGINE_MODULES",
    "DEFAULT_ENGINE",
    "LOAD_CAPABILITIES",
    "EngineCapabilityError",
    "EngineError",
    "EvaluationResult",
    "FileEngine",
    "InferenceResult",
    "ModelDescription",
    "PoseEngine",
    "SourceSoftware",
    "TrainingResult",
    "VideoOutputs",
    "available_engines",
    "get_engine",
    "register_engine",
]

#: What every engine can do: describe a model, find and read the outputs of a video.
LOAD_CAPABILITIES = frozenset({"describe", "find_outputs", "read_outputs"})
ALL_CAPABILITIES = LOAD_CAPABILITIES | {"train", "evaluate", "infer", "label_video"}


class EngineError(RuntimeError):
    """An engine cannot do what was asked (bad model source, missing outputs...)."""


class EngineCapabilityError(EngineError, NotImplementedError):
    """The engine does not support this operation (see its ``capabilities``)."""


# ==================================================================== results
@dataclasses.dataclass(frozen=True)
class SourceSoftware:
    """The software that made a model or its outputs.

    Attributes:
        name: As NWB's ``source_software`` wants it (e.g. ``"SLEAP"``).
        version: Its version, when known.
    """

    name: str
    version: str | None = None


@dataclasses.dataclass
class ModelDescription:
    """A model as the schemas store it, whatever the engine.

    Attributes:
        engine: Registry name of the engine (``"deeplabcut"``, ``"sleap"``...).
        source: The file or folder that describes the model (DeepLabCut
            ``config.yaml``, SLEAP ``.slp``/``training_config.json``, Lightning Pose
            model folder or ``config.yaml``...).
        keypoints: Keypoint names, in model order.
        individuals: Individual names (``["individual_0"]`` for single-animal).
        skeleton: Edges as pairs of keypoint names.
        multi_animal: Whether the model tracks several animals.
        scorer: The name its outputs carry, or ``""``.
        software: The software and version.
        options: Engine-specific locators and settings, JSON-able: whatever the
            engine needs to find this model in its files again (e.g. which training
            run and which snapshot of it) and what it reports about it.  The schemas
            store them as they are (``Model.engine_options``) and give them back;
            only the ``config`` entry (the engine's own configuration) is stored
            apart, as the model's template.
        home: The file or folder the schemas store as the model's location and give
            back as :attr:`source` (default: :attr:`source`; e.g. the project folder
            of a model whose source is a file in it).
    """

    engine: str
    source: Path
    keypoints: list[str]
    individuals: list[str]
    skeleton: list[tuple[str, str]]
    multi_animal: bool
    scorer: str
    software: SourceSoftware
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    home: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (for passing between ``make_fetch`` and ``make_compute``)."""
        return {
            "engine": self.engine, "source": str(self.source), "keypoints": list(self.keypoints),
            "individuals": list(self.individuals),
            "skeleton": [list(e) for e in self.skeleton], "multi_animal": bool(self.multi_animal),
            "scorer": self.scorer,
            "software": [self.software.name, self.software.version],
            "options": dict(self.options),
            "home": str(self.home) if self.home is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelDescription:
        """The inverse of :meth:`to_dict`."""
        name, version = data["software"]
        return cls(
            engine=data["engine"], source=Path(data["source"]),
            keypoints=list(data["keypoints"]), individuals=list(data["individuals"]),
            skeleton=[(str(a), str(b)) for a, b in data["skeleton"]],
            multi_animal=bool(data["multi_animal"]), scorer=str(data["scorer"]),
            software=SourceSoftware(name, version), options=dict(data["options"]),
            home=Path(data["home"]) if data.get("home") else None)


@dataclasses.dataclass
class VideoOutputs:
    """The output files of one video.

    Attributes:
        video: The video.
        pose_files: Files holding its poses, read in order (usually one).
        files: Every file that belongs to the output (pose files, metadata...).
        fmt: The :mod:`element_pose.io` format of the pose files.
        n_frames: Frames in the video, when known.
        fps: Frame rate, when known.
        version: Version of the tool that wrote them, when recorded beside them.
    """

    video: Path
    pose_files: list[Path]
    files: list[Path]
    fmt: str
    n_frames: int | None = None
    fps: float | None = None
    version: str | None = None


@dataclasses.dataclass
class TrainingResult:
    """What a training run produced, whatever the engine.

    Attributes:
        model: The trained model, described like any other; its ``options`` are what
            :meth:`PoseEngine.describe_model` takes to find it again.
        snapshots: Saved snapshot names, oldest first.
        best_snapshot: The snapshot the engine marks best, or ``None``.
        last_snapshot: The newest snapshot.
        learning_stats: Per-epoch statistics, ``{name: float array}``.
        wall_time: Seconds spent training.
        device: Device trained on.
        software: Versions of the software involved.
        native: The engine's own result object (not stored).
        snapshot_epochs: Epoch of each snapshot, by name, when known.
        snapshot_paths: File of each snapshot, by name, when known.
        training_config: The effective training configuration, JSON-able, when known.
        details: What only this engine reports about the run, JSON-able (stored as
            ``ModelTraining.engine_details``).
    """

    model: ModelDescription
    snapshots: list[str]
    best_snapshot: str | None
    last_snapshot: str
    learning_stats: dict[str, np.ndarray]
    wall_time: float
    device: str
    software: dict[str, str]
    native: Any = None
    snapshot_epochs: dict[str, int] = dataclasses.field(default_factory=dict)
    snapshot_paths: dict[str, Path] = dataclasses.field(default_factory=dict)
    training_config: dict[str, Any] | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def model_options(self) -> dict[str, Any]:
        """The trained model's options without its configuration (JSON-able)."""
        return {k: v for k, v in self.model.options.items() if k != "config"}


@dataclasses.dataclass
class EvaluationResult:
    """Evaluation of one snapshot.

    Attributes:
        snapshot: The snapshot evaluated.
        epochs: Training epochs of that snapshot, when known.
        metrics: Named scores (``train_rmse``, ``test_map``...; pixels or percent;
            ``pcutoff``, the confidence cut-off of the ``*_pcutoff`` scores).
        per_keypoint: ``{keypoint: {metric: value}}``.
        files: Files the evaluation wrote, the summary of scores first.
        device: Device used.
        wall_time: Seconds spent.
        software: Versions.
        native: The engine's own result object.
        labels: The labelled frames the snapshot was run on (the truth), when the
            engine reports its predictions on them; element-pose then scores every
            engine the same way (:func:`element_pose.processing.accuracy.score_predictions`).
        predictions: ``(n_frames, n_individuals, n_keypoints, 3)`` (x, y, confidence)
            on ``labels.frames``, in ``labels.keypoints`` order.
        test: Per frame of ``labels``: whether it was held out of training.
    """

    snapshot: str
    epochs: int | None
    metrics: dict[str, float]
    per_keypoint: dict[str, dict[str, float]]
    files: list[Path]
    device: str
    wall_time: float
    software: dict[str, str]
    native: Any = None
    labels: LabelSet | None = None
    predictions: np.ndarray | None = None
    test: list[bool] | None = None


@dataclasses.dataclass
class InferenceResult:
    """What inference on some videos produced.

    Attributes:
        outputs: One :class:`VideoOutputs` per video, in input order.
        scorer: Name the outputs carry.
        snapshot: The snapshot used.
        run_time: Seconds spent (all videos).
        frames_per_second: Total frames / ``run_time``.
        device: Device used.
        batch_size: Batch size, when the engine has one.
        software: Versions.
        native: The engine's own result object.
    """

    outputs: list[VideoOutputs]
    scorer: str
    snapshot: str
    run_time: float
    frames_per_second: float
    device: str
    batch_size: int | None
    software: dict[str, str]
    native: Any = None


# ==================================================================== contract
@runtime_checkable
class PoseEngine(Protocol):
    """What every engine provides (see the module docstring)."""

    name: str
    software: str
    capabilities: frozenset[str]
    #: The engine's training parameter set (a ``ParamSet`` model), or None.
    training_params: type | None

    def version(self) -> str | None:
        """Version of the tool, when installed (without importing it)."""
        ...

    def describe_model(self, source: str | Path, **options: Any) -> ModelDescription:
        """Describe a model from its files."""
        ...

    def find_outputs(self, video: str | Path, output_dir: str | Path,
                     model: ModelDescription | None = None) -> VideoOutputs:
        """Locate the outputs of one video in a folder."""
        ...

    def read_outputs(self, outputs: VideoOutputs, model: ModelDescription | None = None,
                     *, fps: float | None = None,
                     frame_size: tuple[int, int] | None = None) -> PoseData:
        """Read the outputs of one video (keypoints in model order when a model is given).

        ``frame_size`` is the video's ``(width, height)``, for engines whose readers
        check positions against it.
        """
        ...

    def train(self, source: str | Path, workdir: str | Path, params: Mapping[str, Any],
              *, device: str | None = None) -> TrainingResult:
        """Train a model (capability ``train``).

        Engines that hold frames out for evaluation use
        :func:`element_pose.core.labels.held_out` (so every engine trained on a labelled
        set holds out the same frames).  ``ModelTraining`` passes ``train_only=[frame
        ids]`` as a further keyword only when a refinement iteration added frames that
        must never be held out; an engine that supports iterations accepts it.
        """
        ...

    def evaluate(self, model: ModelDescription, *, snapshot: Any = None,
                 device: str | None = None) -> EvaluationResult:
        """Evaluate a snapshot (capability ``evaluate``)."""
        ...

    def infer(self, model: ModelDescription, videos: Sequence[str | Path],
              output_dir: str | Path, *, snapshot: Any = None, device: str | None = None,
              **options: Any) -> InferenceResult:
        """Run a model on videos (capability ``infer``)."""
        ...


class FileEngine:
    """Base of load-only engines: outputs are found and read through the io registry.

    Subclasses set :attr:`name`, :attr:`software`, :attr:`formats` and implement
    :meth:`describe_model` and :meth:`find_outputs`.
    """

    name: ClassVar[str] = ""
    software: ClassVar[str] = ""
    distribution: ClassVar[str] = ""
    formats: ClassVar[tuple[str, ...]] = ()
    capabilities: frozenset[str] = LOAD_CAPABILITIES
    training_params: ClassVar[type | None] = None

    def version(self) -> str | None:
        """Installed version of :attr:`distribution` (``None`` when not installed)."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.distribution) if self.distribution else None
        except PackageNotFoundError:
            return None

    def describe_model(self, source: str | Path, **options: Any) -> ModelDescription:
        raise EngineCapabilityError(f"engine {self.name!r} cannot describe models")

    def find_outputs(self, video: str | Path, output_dir: str | Path,
                     model: ModelDescription | None = None) -> VideoOutputs:
        raise EngineCapabilityError(f"engine {self.name!r} cannot find outputs")

    def read_outputs(self, outputs: VideoOutputs, model: ModelDescription | None = None,
                     *, fps: float | None = None,
                     frame_size: tuple[int, int] | None = None) -> PoseData:
        """Read every pose file (joined along time) through :func:`element_pose.io.read_pose`.

        ``frame_size`` is accepted for the contract; the io readers check their own values.
        """
        from element_pose.io import read_pose

        if not outputs.pose_files:
            raise EngineError(f"no pose files for video {outputs.video}")
        fps = fps if fps is not None else outputs.fps
        parts = [read_pose(p, fmt=outputs.fmt, fps=fps) for p in outputs.pose_files]
        if model is not None:
            parts = [check_keypoints(pose, model.keypoints, p, model=model.source,
                                     error=EngineError)
                     for pose, p in zip(parts, outputs.pose_files, strict=True)]
        return parts[0] if len(parts) == 1 else concatenate(parts)

    def snapshots(self, model: ModelDescription) -> list[str]:
        """Trained snapshots of a model that this engine can evaluate or run (none)."""
        return []

    def snapshot_file(self, model: ModelDescription, snapshot: Any = None) -> Path:
        """The file of a model's snapshot, e.g. to fine-tune from (capability ``train``)."""
        raise self._unsupported("give a snapshot file")

    def label_video(self, model: ModelDescription, video: str | Path,
                    output_dir: str | Path, **options: Any) -> Path:
        """Draw a model's predictions on a video (capability ``label_video``)."""
        raise self._unsupported("draw labelled videos")

    def _unsupported(self, what: str) -> EngineCapabilityError:
        return EngineCapabilityError(
            f"engine {self.name!r} ({self.software}) only loads outputs; it cannot {what} "
            f"(capabilities: {sorted(self.capabilities)})")

    def train(self, source: str | Path, workdir: str | Path, params: Mapping[str, Any],
              *, device: str | None = None) -> TrainingResult:
        raise self._unsupported("train")

    def evaluate(self, model: ModelDescription, *, snapshot: Any = None,
                 device: str | None = None) -> EvaluationResult:
        raise self._unsupported("evaluate")

    def infer(self, model: ModelDescription, videos: Sequence[str | Path],
              output_dir: str | Path, *, snapshot: Any = None, device: str | None = None,
              **options: Any) -> InferenceResult:
        raise self._unsupported("infer")


# ==================================================================== registry
#: Engine name or alias -> module that registers it on import.
BUILTIN_ENGINE_MODULES: dict[str, str] = {
    "deeplabcut": "element_pose.engines.deeplabcut.engine",
    "dlc": "element_pose.engines.deeplabcut.engine",
    "sleap": "element_pose.engines.sleap.engine",
    "lightning_pose": "element_pose.engines.lightning_pose",
    "lightning-pose": "element_pose.engines.lightning_pose",
    "lp": "element_pose.engines.lightning_pose",
}

_ENGINES: dict[str, PoseEngine] = {}

#: The engine of a model registered without naming one.
DEFAULT_ENGINE = "deeplabcut"


def _key(name: str) -> str:
    return str(name).strip().lower()


def register_engine(engine: PoseEngine, *, aliases: Sequence[str] = (),
                    replace: bool = False) -> PoseEngine:
    """Register an engine instance under its name and aliases.

    Raises:
        TypeError: if the object does not satisfy :class:`PoseEngine`.
        ValueError: if a name is taken by another engine and ``replace`` is false, or
            the capabilities name unknown operations.
    """
    if not isinstance(engine, PoseEngine):
        raise TypeError(f"{engine!r} does not implement the PoseEngine protocol")
    unknown = set(engine.capabilities) - ALL_CAPABILITIES
    if unknown or not LOAD_CAPABILITIES <= set(engine.capabilities):
        raise ValueError(f"engine {engine.name!r}: capabilities must include "
                         f"{sorted(LOAD_CAPABILITIES)} and be among {sorted(ALL_CAPABILITIES)}")
    for name in (engine.name, *aliases):
        key = _key(name)
        held = _ENGINES.get(key)
        if held is not None and held is not engine and not replace \
                and type(held) is not type(engine):
            raise ValueError(f"engine name {key!r} is already registered to {held.name!r}")
        _ENGINES[key] = engine
    return engine


def get_engine(name: str = DEFAULT_ENGINE) -> PoseEngine:
    """The engine registered under a name or alias (importing a built-in one on demand).

    Raises:
        ValueError: naming the known engines when none has that name.
    """
    key = _key(name)
    if key not in _ENGINES and key in BUILTIN_ENGINE_MODULES:
        importlib.import_module(BUILTIN_ENGINE_MODULES[key])
    if key not in _ENGINES:
        raise ValueError(f"unknown pose engine {name!r}; available: {available_engines()}")
    return _ENGINES[key]


def available_engines() -> list[str]:
    """Names and aliases of the built-in and registered engines."""
    return sorted(set(_ENGINES) | set(BUILTIN_ENGINE_MODULES))
