"""Lightning Pose as a load-only engine: models described from files, CSVs read via io.

A model is described from its folder (``config.yaml``, or ``.hydra/config.yaml``),
a ``config.yaml`` itself, or a prediction CSV; keypoints come from
``data.keypoint_names`` (``data.keypoints`` in older configs), multi-view models list
``data.view_names`` (kept in ``options["views"]``; each view is a separate recording).
Outputs of a video are ``<stem>.csv`` in the output folder or its ``video_preds``.
Training and inference stay in Lightning Pose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from element_pose.core.pose import SINGLE_INDIVIDUAL
from element_pose.engines.base import (
    EngineError,
    FileEngine,
    ModelDescription,
    SourceSoftware,
    VideoOutputs,
    register_engine,
)

__all__ = ["LightningPoseEngine"]


class LightningPoseEngine(FileEngine):
    """Load Lightning Pose prediction CSVs."""

    name = "lightning_pose"
    software = "Lightning Pose"
    distribution = "lightning-pose"
    formats = ("lightning_pose_csv",)

    def describe_model(self, source: str | Path, **options: Any) -> ModelDescription:
        """Describe a model from its folder, its ``config.yaml`` or a prediction CSV.

        Raises:
            EngineError: naming the source when it names no keypoints.
        """
        import yaml

        from element_pose.io import read_pose

        path = Path(source)
        if path.is_dir():
            found = [p for p in (path / "config.yaml", path / ".hydra" / "config.yaml")
                     if p.is_file()]
            if not found:
                raise EngineError(f"no config.yaml in Lightning Pose model folder {path}")
            path = found[0]
        if not path.is_file():
            raise EngineError(f"Lightning Pose model source not found: {path}")
        extra: dict[str, Any] = {}
        if path.suffix.lower() == ".csv":
            pose = read_pose(path, fmt="lightning_pose_csv")
            keypoints, scorer = pose.keypoints, pose.scorer
        else:
            try:
                cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise EngineError(f"{path} is not valid YAML: {exc}") from exc
            data = cfg.get("data") or {}
            keypoints = list(data.get("keypoint_names") or data.get("keypoints") or [])
            if not keypoints:
                raise EngineError(f"{path} names no keypoints (data.keypoint_names)")
            if data.get("view_names"):
                extra["views"] = [str(v) for v in data["view_names"]]
            model_type = (cfg.get("model") or {}).get("model_type")
            if model_type:
                extra["model_type"] = str(model_type)
            scorer = str(model_type or "")
        return ModelDescription(
            engine=self.name,
            source=path,
            keypoints=[str(k) for k in keypoints],
            individuals=[SINGLE_INDIVIDUAL],
            skeleton=[],
            multi_animal=False,
            scorer=scorer,
            software=SourceSoftware(self.software, self.version()),
            options={**extra, **options},
        )

    def find_outputs(self, video: str | Path, output_dir: str | Path,
                     model: ModelDescription | None = None) -> VideoOutputs:
        """The prediction CSV of one video (``<stem>.csv``; diagnostics skipped).

        Raises:
            EngineError: when there is none or several.
        """
        from element_pose.io.lightning_pose import (
            LightningPoseFormatError,
            find_lightning_pose_output,
        )

        try:
            path = find_lightning_pose_output(video, output_dir)
        except LightningPoseFormatError as exc:
            raise EngineError(str(exc)) from exc
        return VideoOutputs(video=Path(video), pose_files=[path], files=[path],
                            fmt="lightning_pose_csv")


register_engine(LightningPoseEngine(), aliases=("lightning-pose", "lp"))
