"""DeepLabCut's parameter sets: training (``train.TrainingParamSet``) and labelled videos.

Declared as :class:`~element_pose.core.params.ParamSet` models: the engine exposes
:class:`DeepLabCutTrainingParams` as ``DeepLabCutEngine.training_params``, which
``train.TrainingParamSet.insert_new_params`` validates with.  The defaults match
:data:`element_pose.engines.deeplabcut.project.TRAINING_DEFAULTS` (a test checks it).
No DeepLabCut import here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from element_pose.core.params import Int, ParamSet, register_params

__all__ = ["DeepLabCutTrainingParams", "WeightInit"]

Fraction = Annotated[float, Field(ge=0, le=1)]
PositiveFraction = Annotated[float, Field(gt=0, le=1)]
NonNegative = Annotated[Int, Field(ge=0)]
Epochs = Annotated[Int, Field(ge=1, le=100_000)]
Pixels = Annotated[Int, Field(ge=1, le=8192)]
Mapping_ = dict[str, Any]


class WeightInit(ParamSet):
    """Initial weights as a mapping: a snapshot file or a registered model's snapshot."""

    snapshot_path: str | None = Field(
        None, description="a local .pt snapshot (relative to a root, or absolute)")
    model: str | None = Field(None, description="a registered model's name: start from its "
                                                "snapshot")
    with_decoder: bool = Field(False, description="also load the heads (same body parts)")
    resume: bool = Field(False, description="continue training from the snapshot")
    detector_snapshot_path: str | None = Field(
        None, description="detector weights (top-down models)")

    @model_validator(mode="after")
    def _needs_a_source(self) -> WeightInit:
        if not (self.snapshot_path or self.model):
            raise ValueError("'weight_init' as a mapping needs 'snapshot_path' or 'model'")
        return self


@register_params("training", "train.TrainingParamSet")
class DeepLabCutTrainingParams(ParamSet):
    """Training of a DeepLabCut model (ModelTraining). Absent keys keep DeepLabCut's defaults.

    Stored as given (not normalised), so existing parameter sets keep their hashes.
    """

    engine: Literal["deeplabcut", "dlc"] = Field("deeplabcut", description="engine that trains")
    shuffle: Annotated[Int, Field(ge=0, le=100_000)] = Field(
        1, description="DeepLabCut shuffle index")
    trainingsetindex: Annotated[Int, Field(ge=0, le=1000)] = Field(
        0, description="index into the config's TrainingFraction")
    train_fraction: PositiveFraction | None = Field(
        None, description="fraction of labelled frames used for training")
    net_type: str | None = Field(
        None, description="network, e.g. resnet_50, cspnext_s (null: the config's)")
    augmenter_type: str | None = Field(None, description="DeepLabCut augmenter")
    train_indices: list[NonNegative] | None = Field(
        None, description="explicit training frame indices")
    test_indices: list[NonNegative] | None = Field(
        None, description="explicit test frame indices")
    epochs: Epochs | None = Field(None, description="training epochs")
    batch_size: Annotated[Int, Field(ge=1, le=1024)] | None = Field(
        None, description="images per batch")
    save_epochs: Epochs | None = Field(None, description="save a snapshot every N epochs")
    max_snapshots: Annotated[Int, Field(ge=1, le=10_000)] | None = Field(
        None, description="snapshots kept")
    eval_interval: Epochs | None = Field(None, description="evaluate every N epochs")
    key_metric: str | None = Field(
        None, description="metric that picks the best snapshot, e.g. test.mAP")
    key_metric_asc: bool | None = Field(
        None, description="whether a larger key metric is better")
    display_iters: Annotated[Int, Field(ge=1, le=1_000_000)] | None = Field(
        None, description="log every N iterations")
    learning_rate: PositiveFraction | None = Field(None, description="optimizer learning rate")
    optimizer: Mapping_ | None = Field(None, description="pytorch_config runner.optimizer")
    scheduler: Mapping_ | Literal["none", False] | None = Field(
        None, description='runner.scheduler; "none" or false: none')
    crop_size: Literal["auto"] | Annotated[list[Pixels], Field(min_length=2, max_length=2)] = \
        Field("auto", description='training crop [width, height]; "auto": the frame size')
    augmentation: Mapping_ | None = Field(None, description="data.train augmentation settings")
    seed: Annotated[Int, Field(ge=0, le=2**32 - 1)] | None = Field(
        None, description="random seed")
    dataloader_workers: Annotated[Int, Field(ge=0, le=256)] | None = Field(
        None, description="data loader processes")
    device: str | None = Field(
        None, description="cpu, cuda, cuda:0, ... (null: ELEMENT_POSE_DEVICE or auto)")
    weight_init: (Literal["pretrained", "random"]
                  | Annotated[str, Field(pattern=r"^.+\.pt$")]
                  | WeightInit) = Field(
        "pretrained", description="initial weights: pretrained, random, a .pt snapshot or "
                                  "a mapping")
    pytorch_config_updates: Mapping_ | None = Field(
        None, description="{dotted.key: value} set in pytorch_config")
    pcutoff: Fraction | None = Field(
        None, description="likelihood cut-off written to the project config")
    copy_videos: bool = Field(
        False, description="copy the project's videos into the task's copy")
    track_method: Literal["ellipse", "box", "skeleton"] | None = Field(
        None, description="multi-animal tracker written to the copy's config "
                          "(default_track_method; null: the config's, else ellipse)")
