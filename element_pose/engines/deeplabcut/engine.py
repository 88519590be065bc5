"""DeepLabCut behind the :class:`~element_pose.engines.base.PoseEngine` contract.

A thin adapter over :mod:`element_pose.engines.deeplabcut` (which it imports only
inside methods, so neither it nor DeepLabCut is imported by ``get_engine("deeplabcut")``
until something runs) and :mod:`element_pose.io.dlc`.  The DeepLabCut locators
(``shuffle``, ``trainingsetindex``, ``snapshot``) travel in
:attr:`ModelDescription.options`; the engine's own result objects stay available as
``native`` on the neutral results.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from element_pose.core.pose import PoseData, check_keypoints
from element_pose.engines.base import (
    ALL_CAPABILITIES,
    EngineError,
    EvaluationResult,
    InferenceResult,
    ModelDescription,
    SourceSoftware,
    TrainingResult,
    VideoOutputs,
    register_engine,
)
from element_pose.engines.deeplabcut.params import DeepLabCutTrainingParams
from element_pose.io import dlc as dlc_io

__all__ = ["DeepLabCutEngine", "snapshot_argument"]

log = logging.getLogger(__name__)

_METRICS = ("train_rmse", "train_rmse_pcutoff", "train_map", "train_mar", "test_rmse",
            "test_rmse_pcutoff", "test_map", "test_mar")


def _engine():
    from element_pose.engines import deeplabcut

    return deeplabcut


def _config_file(source: str | Path) -> Path:
    """A project's ``config.yaml`` from itself or its folder."""
    path = Path(source)
    return path / "config.yaml" if path.is_dir() else path


def snapshot_argument(snapshot: str | int) -> str | int:
    """A stored snapshot label as DeepLabCut takes it (epoch numbers as int)."""
    return int(snapshot) if str(snapshot).isdigit() else str(snapshot)


def _snapshot(label: Any) -> Any:
    """A snapshot option for the engine: ``None`` (its default) for an empty label."""
    if label is None or label == "":
        return None
    return label if not isinstance(label, str | int) else snapshot_argument(label)


def _labelled_predictions(config: Path, native: Any, trainingsetindex: int
                          ) -> tuple[Any, Any, Any]:
    """``(labels, predictions, test)`` of an evaluation, or ``(None,) * 3`` (logged)."""
    from element_pose.core.labels import LabelSetError
    from element_pose.engines.deeplabcut.split import evaluation_predictions

    if native.predictions_h5 is None:
        log.warning("DeepLabCut's evaluation of %s wrote no predictions: no element-pose "
                    "scores", config)
        return None, None, None
    try:
        return evaluation_predictions(config, native.predictions_h5, int(native.shuffle),
                                      int(trainingsetindex))
    except (EngineError, LabelSetError, dlc_io.DLCFormatError, KeyError, OSError,
            ValueError) as exc:  # e.g. a project moved without its labelled data
        log.warning("no element-pose scores for %s: %s", config, exc)
        return None, None, None


def _fmt(path: str | Path) -> str:
    return "dlc_csv" if str(path).lower().endswith(".csv") else "dlc_h5"


class DeepLabCutEngine:
    """DeepLabCut 3 (PyTorch): describe, train, evaluate, infer, label, load outputs."""

    name = "deeplabcut"
    software = "DeepLabCut"
    capabilities = ALL_CAPABILITIES
    training_params = DeepLabCutTrainingParams

    def version(self) -> str | None:
        """Installed DeepLabCut version (read from the distribution, not imported)."""
        return _engine().versions().get("deeplabcut")

    def describe_model(self, source: str | Path, **options: Any) -> ModelDescription:
        """Describe a project's model from its ``config.yaml`` (or the project folder).

        The snapshot is resolved once, here, to one file (stored by its name, with the
        scorer of its outputs); a project without snapshots (outputs made elsewhere,
        only loaded) keeps the label.

        Args:
            source: The project ``config.yaml`` or its folder.
            **options: ``shuffle`` (1), ``trainingsetindex`` (0), ``snapshot``
                (``"best"``, ``"last"``, an epoch or a name), ``scorer`` (the name of
                its outputs; default the snapshot's) and any other JSON-able options.

        Raises:
            element_pose.io.dlc.DLCFormatError: the config is missing or invalid.
            ValueError: ``trainingsetindex`` does not exist in the config.
            element_pose.engines.deeplabcut.EngineError: the shuffle has snapshots,
                but not the one asked for (those found are listed).
        """
        config = _config_file(source)
        cfg = dlc_io.read_config(config)
        opts = {"shuffle": 1, "trainingsetindex": 0, "snapshot": "best", **options}
        shuffle, index = int(opts["shuffle"]), int(opts["trainingsetindex"])
        fractions = cfg.get("TrainingFraction") or []
        if not 0 <= index < len(fractions):
            raise ValueError(f"trainingsetindex {index} not in {config} "
                             f"TrainingFraction {fractions}")
        scorer = str(opts.pop("scorer", "") or "")
        snapshot = opts["snapshot"] if opts["snapshot"] is not None else "best"
        found = _engine().registered_snapshot(config, shuffle, index,
                                              snapshot_argument(snapshot), cfg=cfg)
        if found is not None:
            name, snapshot_scorer = found
            if str(snapshot) != name:
                log.info("snapshot %r of %s resolved to %s", snapshot, config, name)
            snapshot, scorer = name, scorer or snapshot_scorer
        return ModelDescription(
            engine=self.name,
            source=config,
            keypoints=dlc_io.config_bodyparts(cfg),
            individuals=dlc_io.config_individuals(cfg),
            skeleton=dlc_io.config_skeleton(cfg),
            multi_animal=dlc_io.is_multi_animal(cfg),
            scorer=scorer,
            software=SourceSoftware(self.software, self.version()),
            options={**opts, "shuffle": shuffle, "trainingsetindex": index,
                     "snapshot": str(snapshot), "task": cfg.get("Task"),
                     "project_date": str(cfg.get("date", "")),
                     "iteration": int(cfg.get("iteration", 0)),
                     "train_fraction": float(fractions[index]),
                     "net_type": str(opts.get("net_type") or cfg.get("default_net_type", "")),
                     "config": json.loads(json.dumps(cfg, default=str))},
            home=config.parent,
        )

    def check_video_sets(self, source: str | Path) -> tuple[list[str], list[str]]:
        """Labelled folders of a project and the names its ``video_sets`` expect.

        See :func:`element_pose.engines.deeplabcut.check_video_sets`.
        """
        return _engine().check_video_sets(_config_file(source))

    def snapshots(self, model: ModelDescription) -> list[str]:
        """Names of the trained snapshots of the model's shuffle (none when unreadable)."""
        o = model.options
        found = _engine().snapshots(_config_file(model.source), shuffle=o.get("shuffle", 1),
                                    trainingsetindex=o.get("trainingsetindex", 0))
        return [s.name for s in found]

    def snapshot_file(self, model: ModelDescription, snapshot: Any = None) -> Path:
        """The ``.pt`` file of the model's snapshot (its own unless one is named).

        Raises:
            element_pose.engines.deeplabcut.EngineError: no such snapshot.
        """
        o = model.options
        snap = _engine().resolve_snapshot(
            _config_file(model.source), o.get("shuffle", 1), o.get("trainingsetindex", 0),
            _snapshot(snapshot if snapshot is not None else o.get("snapshot")))
        return Path(snap.path)

    def find_outputs(self, video: str | Path, output_dir: str | Path,
                     model: ModelDescription | None = None) -> VideoOutputs:
        """The raw ``.h5`` or ``.csv`` (and ``_meta.pickle``) of one video.

        With a model, its scorer chooses among several outputs, else its snapshot.

        Raises:
            EngineError: none, or several and no scorer to choose (the message of
                :func:`element_pose.io.dlc.find_outputs`).
        """
        scorer = (model.scorer if model else None) or None
        uid = None
        if model is not None and not scorer and model.options.get("snapshot"):
            uid = _engine().snapshot_uid(model.options["snapshot"])
        try:
            h5, meta = dlc_io.find_outputs(video, output_dir, scorer, uid)
        except dlc_io.DLCFormatError as exc:
            raise EngineError(str(exc)) from exc
        fps = n_frames = None
        data = None
        try:
            data = dlc_io.read_dlc_meta(meta) if meta is not None else None
        except dlc_io.DLCFormatError as exc:
            log.warning("%s", exc)
        if data:
            fps = float(data["fps"]) if data.get("fps") else None
            n_frames = int(data["nframes"]) if data.get("nframes") else None
        return VideoOutputs(video=Path(video), pose_files=[h5],
                            files=[h5, *([meta] if meta else [])], fmt=_fmt(h5),
                            n_frames=n_frames, fps=fps,
                            version=dlc_io.meta_engine_version(data))

    def read_outputs(self, outputs: VideoOutputs, model: ModelDescription | None = None,
                     *, fps: float | None = None,
                     frame_size: tuple[int, int] | None = None) -> PoseData:
        """Read the outputs through the one DeepLabCut reader (values checked).

        Raises:
            element_pose.io.dlc.DLCFormatError: unreadable file, values out of range or
                body parts not the model's.
        """
        from element_pose.core.pose import concatenate

        fps = fps if fps is not None else outputs.fps
        parts = []
        for path in outputs.pose_files:
            pose = dlc_io.read_dlc_output(path, fps=fps, frame_size=frame_size)
            if model is not None:
                pose = check_keypoints(pose, model.keypoints, path, model=model.source,
                                       error=dlc_io.DLCFormatError)
            parts.append(pose)
        return parts[0] if len(parts) == 1 else concatenate(parts)

    def train(self, source: str | Path, workdir: str | Path, params: Mapping[str, Any],
              *, device: str | None = None, train_only: Sequence[str] = ()) -> TrainingResult:
        """Prepare the task's own project copy in ``workdir`` and train it.

        The shuffle holds out element-pose's test frames
        (:func:`element_pose.core.labels.held_out`) unless the parameters name their
        own split; ``train_only`` frame ids are never held out.
        """
        engine = _engine()
        config = engine.prepare_training_project(source, workdir, params, overwrite=True,
                                                 train_only=train_only)
        native = engine.train(config, params, device=device)
        model = self.describe_model(config, shuffle=native.shuffle,
                                    trainingsetindex=native.trainingsetindex,
                                    net_type=params.get("net_type", ""))
        return TrainingResult(
            model=model,
            snapshots=[s.name for s in native.snapshots],
            best_snapshot=native.best_snapshot.name if native.best_snapshot else None,
            last_snapshot=native.last_snapshot.name,
            learning_stats=native.learning_stats_arrays(),
            wall_time=float(native.wall_time),
            device=str(native.device),
            software=dict(native.versions),
            native=native,
            snapshot_epochs={s.name: int(s.epoch) for s in native.snapshots},
            snapshot_paths={s.name: Path(s.path) for s in native.snapshots},
            training_config=native.pytorch_config,
            details={"shuffle": int(native.shuffle),
                     "trainingsetindex": int(native.trainingsetindex),
                     "train_fraction": float(native.train_fraction),
                     "net_type": str(native.net_type),
                     "scorer_prefix": str(native.scorer_prefix)},
        )

    def evaluate(self, model: ModelDescription, *, snapshot: Any = None,
                 device: str | None = None) -> EvaluationResult:
        """Evaluate a snapshot on the labelled train/test images.

        Besides DeepLabCut's own scores, the result carries its predictions on every
        labelled image of the training dataset with those labels and the shuffle's
        held-out flags (``labels``, ``predictions``, ``test``), for element-pose to
        score every engine alike; they are ``None`` (logged) when DeepLabCut wrote no
        predictions or the training dataset cannot be read.
        """
        o = model.options
        config = _config_file(model.source)
        native = _engine().evaluate(
            config, shuffle=o.get("shuffle", 1),
            trainingsetindex=o.get("trainingsetindex", 0),
            snapshot=_snapshot(snapshot if snapshot is not None else o.get("snapshot")),
            device=device)
        per_keypoint: dict[str, dict[str, float]] = {}
        if native.per_bodypart is not None:
            per_keypoint = {str(k): {str(c): float(v) for c, v in row.items()}
                            for k, row in native.per_bodypart.iterrows()}
        files = [p for p in (native.results_csv, native.predictions_h5,
                             native.keypoint_results_csv) if p is not None]
        labels, predictions, test = _labelled_predictions(
            config, native, o.get("trainingsetindex", 0))
        return EvaluationResult(
            snapshot=native.snapshot.name, epochs=int(native.snapshot.epoch),
            metrics={**{m: float(getattr(native, m)) for m in _METRICS},
                     "pcutoff": float(native.pcutoff)},
            per_keypoint=per_keypoint, files=[Path(p) for p in files],
            device=str(native.device), wall_time=float(native.wall_time),
            software=dict(native.versions), native=native, labels=labels,
            predictions=predictions, test=test)

    def infer(self, model: ModelDescription, videos: Sequence[str | Path],
              output_dir: str | Path, *, snapshot: Any = None, device: str | None = None,
              **options: Any) -> InferenceResult:
        """Analyse videos (and track multi-animal ones) into ``output_dir``."""
        o = model.options
        native = _engine().infer(
            _config_file(model.source), videos, output_dir, shuffle=o.get("shuffle", 1),
            trainingsetindex=o.get("trainingsetindex", 0),
            snapshot=_snapshot(snapshot if snapshot is not None else o.get("snapshot")),
            device=device, **options)
        outputs = [VideoOutputs(video=Path(v.video), pose_files=[Path(v.h5)],
                                files=[Path(f) for f in v.files], fmt=_fmt(v.h5),
                                n_frames=int(v.n_frames), fps=float(v.fps))
                   for v in native.outputs]
        return InferenceResult(
            outputs=outputs, scorer=native.scorer, snapshot=native.snapshot.name,
            run_time=float(native.run_time), frames_per_second=float(native.frames_per_second),
            device=str(native.device),
            batch_size=int(native.batch_size) if native.batch_size is not None else None,
            software=dict(native.versions), native=native)

    def label_video(self, model: ModelDescription, video: str | Path,
                    output_dir: str | Path, **options: Any) -> Any:
        """Draw the model's predictions on a video (DeepLabCut's labelled video)."""
        o = model.options
        return _engine().label_video(
            _config_file(model.source), video, output_dir, shuffle=o.get("shuffle", 1),
            trainingsetindex=o.get("trainingsetindex", 0),
            snapshot=_snapshot(options.pop("snapshot", o.get("snapshot"))), **options)


register_engine(DeepLabCutEngine(), aliases=("dlc",))
