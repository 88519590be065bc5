"""SLEAP as an engine: train, evaluate and infer with sleap-nn; outputs read via sleap-io.

A trained SLEAP model is a *model set* folder (one sleap-nn model folder, or a
top-down centroid + centered-instance pair; :mod:`~element_pose.engines.sleap.model`),
trained by :mod:`~element_pose.engines.sleap.run`, evaluated by
:mod:`~element_pose.engines.sleap.evaluate` and run on videos by
:mod:`~element_pose.engines.sleap.infer`.  Load-only models are described from a
``.slp`` file (predictions or the labels it was trained on) or a
``training_config.json`` / skeleton JSON; their tracks (when the ``.slp`` has any) are
the individuals.  Outputs of a video are found as SLEAP names them
(``<video>.predictions.slp``, ``<stem>.predictions.slp``, ``<stem>.slp``, then the
analysis ``.h5`` forms) and read through :func:`element_pose.io.read_pose`.  sleap-nn
is imported only inside the methods that run it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.pose import SINGLE_INDIVIDUAL, PoseData
from element_pose.engines.base import (
    LOAD_CAPABILITIES,
    EngineError,
    EvaluationResult,
    FileEngine,
    InferenceResult,
    ModelDescription,
    SourceSoftware,
    TrainingResult,
    VideoOutputs,
    register_engine,
)
from element_pose.engines.sleap.params import SleapTrainingParams

__all__ = ["SleapEngine"]


class SleapEngine(FileEngine):
    """SLEAP (sleap-nn): describe, train, evaluate, infer, label videos, load outputs."""

    name = "sleap"
    software = "SLEAP"
    distribution = "sleap-io"
    formats = ("sleap_slp", "sleap_analysis_h5")
    capabilities = LOAD_CAPABILITIES | {"train", "evaluate", "infer", "label_video"}
    training_params = SleapTrainingParams

    def describe_model(self, source: str | Path, **options: Any) -> ModelDescription:
        """Describe a model from a model set or folder, a ``.slp`` or a skeleton JSON.

        A folder is a sleap-nn *model set* (see :mod:`~element_pose.engines.sleap.model`):
        one model folder (``training_config.yaml``), or a folder holding one model
        folder or a top-down centroid + centered-instance pair (in any order; the
        manifest of a set element-pose trained lists them).  Files (a ``.slp``, a
        ``training_config.json``) describe load-only models.

        Args:
            source: The model set or folder, or a file.
            **options: ``snapshot`` (``"best"``), ``scorer`` and any other JSON-able
                options (kept).

        Raises:
            EngineError: naming the source when no skeleton can be read from it, or a
                snapshot asked for that a trained model set lacks.
        """
        path = Path(source)
        if path.is_dir():
            return self._describe_model_set(path, options)
        return self._describe_file(path, options)

    def _describe_model_set(self, folder: Path, options: dict[str, Any]) -> ModelDescription:
        from element_pose.engines.sleap import model as sm

        runs = sm.model_runs(folder)
        config = sm.read_config(runs[-1])
        keypoints, skeleton = sm.config_skeleton(config, runs[-1])
        model_type = sm.set_model_type(runs)
        manifest = sm.read_manifest(folder) or {}
        found = sm.snapshot_names(runs)
        opts = {k: v for k, v in options.items() if k != "scorer"}
        snapshot = str(opts.get("snapshot") or "best")
        if found and snapshot not in found:
            raise EngineError(f"SLEAP model {folder} has no snapshot {snapshot!r} "
                              f"(found: {found})")
        individuals = list(manifest.get("individuals") or [])
        multi = model_type not in ("single_instance", "unknown")
        if not individuals:
            individuals = [SINGLE_INDIVIDUAL] if not multi else ["instance_0"]
        return ModelDescription(
            engine=self.name,
            source=folder,
            keypoints=keypoints,
            individuals=individuals,
            skeleton=skeleton,
            multi_animal=multi,
            scorer=str(options.get("scorer", "")),
            software=SourceSoftware(self.software, config.get("sleap_nn_version")),
            options={**opts, "snapshot": snapshot, "model_type": model_type,
                     "runs": [r.relative_to(folder).as_posix() if r != folder else "."
                              for r in runs]},
        )

    def _describe_file(self, path: Path, options: dict[str, Any]) -> ModelDescription:
        from element_pose.io.sleap import _software_version, _track_names, import_sleap_io

        sio = import_sleap_io()
        if not path.is_file():
            raise EngineError(f"SLEAP model source not found: {path}")
        tracks: list[str] = []
        version = None
        try:
            if path.suffix.lower() == ".slp":
                labels = sio.load_slp(str(path), open_videos=False)
                skeletons = list(labels.skeletons)
                tracks = _track_names(labels.tracks)  # the reader's names: same individuals
                version = _software_version(labels)
            else:
                loaded = sio.load_skeleton(path)
                skeletons = loaded if isinstance(loaded, list) else [loaded]
        except Exception as exc:  # sleap-io raises many types on foreign files
            raise EngineError(f"cannot read a SLEAP skeleton from {path}: "
                              f"{type(exc).__name__}: {exc}") from exc
        if len(skeletons) != 1:
            raise EngineError(f"{path} holds {len(skeletons)} skeletons; one is needed")
        skeleton = skeletons[0]
        return ModelDescription(
            engine=self.name,
            source=path,
            keypoints=[str(n) for n in skeleton.node_names],
            individuals=tracks or [SINGLE_INDIVIDUAL],
            skeleton=[(str(a), str(b)) for a, b in skeleton.edge_names],
            multi_animal=len(tracks) > 1,
            scorer=str(options.get("scorer", "")),
            software=SourceSoftware(self.software, version),
            options={k: v for k, v in options.items() if k != "scorer"},
        )

    def check_video_sets(self, source: str | Path) -> tuple[list[str], list[str]]:
        """Labelled folders of a DeepLabCut project and the names its ``video_sets`` expect
        (SLEAP trains on those, as DeepLabCut does; see
        :func:`element_pose.engines.sleap.labels.check_video_sets`)."""
        from element_pose.engines.sleap.labels import check_video_sets

        return check_video_sets(source)

    def snapshots(self, model: ModelDescription) -> list[str]:
        """Trained snapshots of a model set (``["best"]``); none for a file (load-only)."""
        from element_pose.engines.sleap import model as sm

        source = Path(model.source)
        if not source.is_dir():
            return []
        return sm.snapshot_names(sm.model_runs(source))

    def snapshot_file(self, model: ModelDescription, snapshot: Any = None) -> Path:
        """The checkpoint of a snapshot (the last network of a top-down pair).

        Raises:
            EngineError: the model is no trained model set, or lacks the snapshot.
        """
        from element_pose.engines.sleap import model as sm

        source = Path(model.source)
        if not source.is_dir():
            raise EngineError(f"SLEAP model {source} is a file: it has no snapshots")
        name = str(snapshot if snapshot not in (None, "") else
                   model.options.get("snapshot") or "best")
        return sm.snapshot_path(sm.model_runs(source)[-1], name)

    def train(self, source: str | Path, workdir: str | Path, params: Mapping[str, Any],
              *, device: str | None = None, train_only: Iterable[str] = ()) -> TrainingResult:
        """Train a model set with sleap-nn (see :func:`element_pose.engines.sleap.run.train`).

        Raises:
            EngineError: bad or no labels, or sleap-nn failing (named).
        """
        from element_pose.engines.sleap import model as sm
        from element_pose.engines.sleap.run import train

        done = train(source, workdir, params, device=device, train_only=train_only)
        model = self.describe_model(done.folder)
        names = sm.snapshot_names(done.runs)
        last_run = done.runs[-1]
        stats = {}
        for run in done.runs:
            prefix = "" if len(done.runs) == 1 else f"{run.name}."
            stats.update({prefix + k: np.asarray(v, dtype=float)
                          for k, v in sm.learning_stats(run).items()})
        return TrainingResult(
            model=model, snapshots=names, best_snapshot="best" if "best" in names else None,
            last_snapshot=names[-1], learning_stats=stats, wall_time=done.wall_time,
            device=done.device, software=self._versions(),
            snapshot_epochs={n: sm.snapshot_epoch(last_run, n) or 0 for n in names},
            snapshot_paths={n: sm.snapshot_path(last_run, n) for n in names},
            training_config=done.configs,
            details={"model_type": done.model_type,
                     "runs": [r.name for r in done.runs],
                     "labels_file": str(done.folder / "train.slp"),
                     "test_labels_file": str(done.folder / "test.slp") if done.test else None,
                     "test_frames": list(done.test)})

    def evaluate(self, model: ModelDescription, *, snapshot: Any = None,
                 device: str | None = None) -> EvaluationResult:
        """Predict on the model set's labelled frames; sleap-nn's scores and the predictions.

        See :func:`element_pose.engines.sleap.evaluate.evaluate`.

        Raises:
            EngineError: the model is no model set element-pose trained, or lacks the
                snapshot.
        """
        from element_pose.engines.sleap.evaluate import evaluate

        result = evaluate(model, snapshot=snapshot, device=device)
        result.software = self._versions()
        return result

    @staticmethod
    def _versions() -> dict[str, str]:
        from importlib.metadata import PackageNotFoundError, version

        out = {}
        for name in ("sleap-nn", "sleap-io", "torch", "lightning"):
            with contextlib.suppress(PackageNotFoundError):
                out[name] = version(name)
        return out

    def find_outputs(self, video: str | Path, output_dir: str | Path,
                     model: ModelDescription | None = None) -> VideoOutputs:
        """The predictions of one video, as SLEAP names them (``.slp`` before ``.h5``).

        Raises:
            EngineError: when none is found.
        """
        video, output_dir = Path(video), Path(output_dir)
        names = [f"{video.name}.predictions.slp", f"{video.stem}.predictions.slp",
                 f"{video.stem}.slp", f"{video.name}.predictions.analysis.h5",
                 f"{video.stem}.predictions.analysis.h5", f"{video.stem}.analysis.h5"]
        for name in names:
            path = output_dir / name
            if path.is_file():
                fmt = "sleap_slp" if name.endswith(".slp") else "sleap_analysis_h5"
                return VideoOutputs(video=video, pose_files=[path], files=[path], fmt=fmt)
        raise EngineError(f"no SLEAP predictions for video {video.name} in {output_dir} "
                          f"(looked for {names})")

    def read_outputs(self, outputs: VideoOutputs, model: ModelDescription | None = None,
                     *, fps: float | None = None,
                     frame_size: tuple[int, int] | None = None) -> PoseData:
        """Read the predictions; when the video's frame count is known (inference), the
        frames after the last predicted one are added as missing (a ``.slp`` ends at its
        last labelled frame)."""
        pose = super().read_outputs(outputs, model, fps=fps, frame_size=frame_size)
        if outputs.n_frames is None or pose.n_frames >= outputs.n_frames:
            return pose
        n = outputs.n_frames - pose.n_frames
        return pose.replace(
            position=np.concatenate([pose.position, np.full((n, *pose.position.shape[1:]),
                                                            np.nan, pose.position.dtype)]),
            confidence=np.concatenate([pose.confidence,
                                       np.full((n, *pose.confidence.shape[1:]), np.nan,
                                               pose.confidence.dtype)]),
            timestamps=None)

    def infer(self, model: ModelDescription, videos: Sequence[str | Path],
              output_dir: str | Path, *, snapshot: Any = None, device: str | None = None,
              **options: Any) -> InferenceResult:
        """Run a trained sleap-nn model on videos
        (:func:`element_pose.engines.sleap.infer.infer`)."""
        from element_pose.engines.sleap.infer import infer

        return infer(model, videos, output_dir, snapshot=snapshot, device=device, **options)

    def label_video(self, model: ModelDescription, video: str | Path,
                    output_dir: str | Path, **options: Any) -> Path:
        """Draw a video's predictions with sleap-io's renderer
        (:func:`element_pose.engines.sleap.label.label_video`)."""
        from element_pose.engines.sleap.label import label_video

        return label_video(model, video, output_dir, **options)


register_engine(SleapEngine())
