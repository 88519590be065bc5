"""DeepLabCut behind the :class:`~element_pose.engines.base.PoseEngine` contract.

A thin adapter over :mod:`element_pose.engines.deeplabcut` (which it imports only
inside methods, so neither it nor DeepLabCut is imported by ``get_engine("deeplabcut")``
until something runs) and :mod:`element_pose.io.dlc`.  The DeepLabCut locators
(``shuffle``, ``trainingsetindex``, ``snapshot``) travel in
:attr:`ModelDescription.options`; the engine's own result objects stay available as
``native`` on the neutral results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from element_pose.engines.base import (
    ALL_CAPABILITIES,
    EngineError,
    EvaluationResult,
    InferenceResult,
    ModelDescription,
    SourceSoftware,
    TrainingResult,
    VideoOutputs,
    check_model_keypoints,
    register_engine,
)
from element_pose.io import dlc as dlc_io
from element_pose.pose import PoseData

__all__ = ["DeepLabCutEngine"]

_METRICS = ("train_rmse", "train_rmse_pcutoff", "train_map", "train_mar", "test_rmse",
            "test_rmse_pcutoff", "test_map", "test_mar")


def _engine():
    from element_pose.engines import deeplabcut

    return deeplabcut


class DeepLabCutEngine:
    """DeepLabCut 3 (PyTorch): describe, train, evaluate, infer, label, load outputs."""

    name = "deeplabcut"
    software = "DeepLabCut"
    capabilities = ALL_CAPABILITIES

    def version(self) -> str | None:
        """Installed DeepLabCut version (read from the distribution, not imported)."""
        return _engine().versions().get("deeplabcut")

    def describe_model(self, source: str | Path, **options: Any) -> ModelDescription:
        """Describe a project's model from its ``config.yaml``.

        Args:
            source: The project ``config.yaml``.
            **options: ``shuffle`` (1), ``trainingsetindex`` (0), ``snapshot`` (None:
                the engine's default) and any other JSON-able options.

        Raises:
            element_pose.io.dlc.DLCFormatError: the config is missing or invalid.
        """
        cfg = dlc_io.read_config(source)
        opts = {"shuffle": 1, "trainingsetindex": 0, "snapshot": None, **options}
        scorer = ""
        engine = _engine()
        try:
            snap = engine.resolve_snapshot(source, opts["shuffle"], opts["trainingsetindex"],
                                           opts["snapshot"])
            scorer = engine.scorer_name(source, opts["shuffle"], opts["trainingsetindex"], snap)
        except (engine.EngineError, OSError, KeyError) as exc:  # nothing trained yet
            if opts["snapshot"] is not None:
                raise EngineError(f"{source}: {exc}") from exc
        return ModelDescription(
            engine=self.name,
            source=Path(source),
            keypoints=dlc_io.config_bodyparts(cfg),
            individuals=dlc_io.config_individuals(cfg),
            skeleton=dlc_io.config_skeleton(cfg),
            multi_animal=dlc_io.is_multi_animal(cfg),
            scorer=scorer,
            software=SourceSoftware(self.software, self.version()),
            options={**opts, "task": cfg.get("Task")},
        )

    def find_outputs(self, video: str | Path, output_dir: str | Path,
                     model: ModelDescription | None = None) -> VideoOutputs:
        """The raw ``.h5`` (and ``_meta.pickle``) of one video.

        Raises:
            EngineError: none, or several and no scorer to choose.
        """
        try:
            h5, meta = dlc_io.find_outputs(video, output_dir,
                                           (model.scorer if model else None) or None)
        except dlc_io.DLCFormatError as exc:
            raise EngineError(str(exc)) from exc
        fps = n_frames = None
        if meta is not None:
            data = dlc_io.read_dlc_meta(meta)
            fps = float(data["fps"]) if data.get("fps") else None
            n_frames = int(data["nframes"]) if data.get("nframes") else None
        return VideoOutputs(video=Path(video), pose_files=[h5],
                            files=[h5, *([meta] if meta else [])], fmt="dlc_h5",
                            n_frames=n_frames, fps=fps)

    def read_outputs(self, outputs: VideoOutputs, model: ModelDescription | None = None,
                     *, fps: float | None = None) -> PoseData:
        """Read the ``.h5`` output through the one DeepLabCut reader."""
        from element_pose.io import read_pose
        from element_pose.pose import concatenate

        fps = fps if fps is not None else outputs.fps
        parts = [check_model_keypoints(read_pose(p, fmt=outputs.fmt, fps=fps), model, p)
                 for p in outputs.pose_files]
        return parts[0] if len(parts) == 1 else concatenate(parts)

    def train(self, source: str | Path, workdir: str | Path, params: Mapping[str, Any],
              *, device: str | None = None) -> TrainingResult:
        """Prepare the task's own project copy in ``workdir`` and train it."""
        engine = _engine()
        config = engine.prepare_training_project(source, workdir, params, overwrite=True)
        native = engine.train(config, params, device=device)
        model = self.describe_model(config, shuffle=native.shuffle,
                                    trainingsetindex=native.trainingsetindex)
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
        )

    def evaluate(self, model: ModelDescription, *, snapshot: Any = None,
                 device: str | None = None) -> EvaluationResult:
        """Evaluate a snapshot on the labelled train/test images."""
        o = model.options
        native = _engine().evaluate(
            model.source, shuffle=o.get("shuffle", 1),
            trainingsetindex=o.get("trainingsetindex", 0),
            snapshot=snapshot if snapshot is not None else o.get("snapshot"), device=device)
        per_keypoint: dict[str, dict[str, float]] = {}
        if native.per_bodypart is not None:
            per_keypoint = {str(k): {str(c): float(v) for c, v in row.items()}
                            for k, row in native.per_bodypart.iterrows()}
        files = [p for p in (native.results_csv, native.predictions_h5,
                             native.keypoint_results_csv) if p is not None]
        return EvaluationResult(
            snapshot=native.snapshot.name, epochs=int(native.snapshot.epoch),
            metrics={m: float(getattr(native, m)) for m in _METRICS},
            per_keypoint=per_keypoint, files=[Path(p) for p in files],
            device=str(native.device), wall_time=float(native.wall_time),
            software=dict(native.versions), native=native)

    def infer(self, model: ModelDescription, videos: Sequence[str | Path],
              output_dir: str | Path, *, snapshot: Any = None, device: str | None = None,
              **options: Any) -> InferenceResult:
        """Analyse videos (and track multi-animal ones) into ``output_dir``."""
        o = model.options
        native = _engine().infer(
            model.source, videos, output_dir, shuffle=o.get("shuffle", 1),
            trainingsetindex=o.get("trainingsetindex", 0),
            snapshot=snapshot if snapshot is not None else o.get("snapshot"),
            device=device, **options)
        outputs = [VideoOutputs(video=Path(v.video), pose_files=[Path(v.h5)],
                                files=[Path(f) for f in v.files], fmt="dlc_h5",
                                n_frames=int(v.n_frames), fps=float(v.fps))
                   for v in native.outputs]
        return InferenceResult(
            outputs=outputs, scorer=native.scorer, snapshot=native.snapshot.name,
            run_time=float(native.run_time), frames_per_second=float(native.frames_per_second),
            device=str(native.device), batch_size=int(native.batch_size),
            software=dict(native.versions), native=native)

    def label_video(self, model: ModelDescription, video: str | Path,
                    output_dir: str | Path, **options: Any) -> Any:
        """Draw the model's predictions on a video (DeepLabCut's labelled video)."""
        o = model.options
        return _engine().label_video(
            model.source, video, output_dir, shuffle=o.get("shuffle", 1),
            trainingsetindex=o.get("trainingsetindex", 0),
            snapshot=options.pop("snapshot", o.get("snapshot")), **options)


register_engine(DeepLabCutEngine(), aliases=("dlc",))
