"""SLEAP as a load-only engine: models described from files, outputs read via sleap-io.

A SLEAP model is described from a ``.slp`` file (predictions or the labels it was
trained on), a ``training_config.json`` / skeleton JSON, or a model folder holding
``training_config.json``; its tracks (when the ``.slp`` has any) are the individuals.
Outputs of a video are found as SLEAP names them (``<video>.predictions.slp``,
``<stem>.predictions.slp``, ``<stem>.slp``, then the analysis ``.h5`` forms) and read
through :func:`element_pose.io.read_pose`.  Training and inference stay in SLEAP.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.pose import SINGLE_INDIVIDUAL, PoseData
from element_pose.engines.base import (
    LOAD_CAPABILITIES,
    EngineError,
    FileEngine,
    InferenceResult,
    ModelDescription,
    SourceSoftware,
    VideoOutputs,
    register_engine,
)

__all__ = ["SleapEngine"]


class SleapEngine(FileEngine):
    """Load SLEAP predictions (``.slp`` / analysis ``.h5``)."""

    name = "sleap"
    software = "SLEAP"
    distribution = "sleap-io"
    formats = ("sleap_slp", "sleap_analysis_h5")
    capabilities = LOAD_CAPABILITIES | {"infer"}

    def describe_model(self, source: str | Path, **options: Any) -> ModelDescription:
        """Describe a model from a ``.slp``, a skeleton/training-config JSON or a model folder.

        Raises:
            EngineError: naming the source when no skeleton can be read from it.
        """
        from element_pose.io.sleap import _software_version, _track_names, import_sleap_io

        sio = import_sleap_io()

        path = Path(source)
        if path.is_dir():
            path = path / "training_config.json"
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


register_engine(SleapEngine())
