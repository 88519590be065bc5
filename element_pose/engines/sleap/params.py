"""SLEAP's training parameter set (``train.TrainingParamSet`` rows with ``engine: sleap``).

Declared as a :class:`~element_pose.core.params.ParamSet` model: the engine exposes
:class:`SleapTrainingParams` as ``SleapEngine.training_params``, which
``train.TrainingParamSet.insert_new_params`` validates with.  The keys are the few
that matter for a sleap-nn UNet model; ``config_overrides`` sets any other key of
sleap-nn's training configuration (``{"trainer_config.optimizer.lr": ...}``).
No sleap-nn import here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from element_pose.core.labels import DEFAULT_TEST_FRACTION
from element_pose.core.params import Int, ParamSet, register_params

__all__ = ["MODEL_TYPES", "SleapTrainingParams", "SleapWeightInit"]

#: Model types element-pose trains (``auto``: single-instance for one animal per frame,
#: else top-down).
MODEL_TYPES = ("auto", "single_instance", "topdown", "bottomup")


class SleapWeightInit(ParamSet):
    """Start from a trained model's weights (fine-tuning; a refinement iteration)."""

    snapshot_path: str | None = Field(
        None, description="a sleap-nn best.ckpt (relative to a root, or absolute)")
    model: str | None = Field(None, description="a registered SLEAP model's name: start "
                                                "from its snapshot")
    with_heads: bool = Field(True, description="also load the heads (same body parts)")

    @model_validator(mode="after")
    def _needs_a_source(self) -> SleapWeightInit:
        if not (self.snapshot_path or self.model):
            raise ValueError("'weight_init' as a mapping needs 'snapshot_path' or 'model'")
        return self


@register_params("sleap_training", "train.TrainingParamSet")
class SleapTrainingParams(ParamSet):
    """Training of a SLEAP model with sleap-nn (ModelTraining, ``engine: sleap``).

    A UNet trained from scratch (no pretrained weights, no network access).  Stored
    as given (not normalised).
    """

    engine: Literal["sleap"] = Field("sleap", description="engine that trains")
    model_type: Literal["auto", "single_instance", "topdown", "bottomup"] = Field(
        "auto", description="single_instance, topdown (centroid + centered instance), "
                            "bottomup; auto: single_instance for one animal, else topdown")
    epochs: Annotated[Int, Field(ge=1, le=100_000)] = Field(
        100, description="training epochs (each network of a top-down model)")
    batch_size: Annotated[Int, Field(ge=1, le=1024)] = Field(4, description="images per batch")
    learning_rate: Annotated[float, Field(gt=0, le=1)] = Field(
        1e-4, description="Adam learning rate")
    min_train_steps_per_epoch: Annotated[Int, Field(ge=1, le=1_000_000)] = Field(
        200, description="least batches per epoch (sleap-nn's default 200)")
    filters: Annotated[Int, Field(ge=1, le=1024)] = Field(
        32, description="UNet filters of the first block")
    filters_rate: Annotated[float, Field(ge=1, le=4)] = Field(
        1.5, description="UNet filter growth per block")
    max_stride: Literal[4, 8, 16, 32, 64] = Field(
        16, description="UNet max stride (receptive field; input padded to a multiple)")
    output_stride: Literal[1, 2, 4, 8] = Field(
        2, description="confidence map stride (smaller: finer, slower)")
    sigma: Annotated[float, Field(gt=0, le=100)] = Field(
        2.5, description="confidence map spread (pixels)")
    scale: Annotated[float, Field(gt=0, le=4)] = Field(
        1.0, description="input image scale")
    crop_size: Annotated[Int, Field(ge=16, le=4096)] | None = Field(
        None, description="centered-instance crop (top-down; null: from the instances)")
    anchor_part: str | None = Field(
        None, description="body part the centroid network finds (top-down; null: the "
                          "instance's centre)")
    augmentation: bool = Field(False, description="rotation augmentation while training")
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = Field(
        DEFAULT_TEST_FRACTION, description="labelled frames held out (the same frames "
                                           "every engine holds out)")
    seed: Annotated[Int, Field(ge=0, le=2**32 - 1)] = Field(42, description="random seed")
    device: str | None = Field(
        None, description="cpu, cuda, cuda:0, ... (null: ELEMENT_POSE_DEVICE or auto)")
    weight_init: Literal["random"] | SleapWeightInit = Field(
        "random", description="initial weights: random, or a mapping naming a trained "
                              "model's snapshot (each network of a top-down pair from "
                              "its own)")
    config_overrides: dict[str, Any] | None = Field(
        None, description="{dotted.key: value} set in sleap-nn's training configuration")

    @model_validator(mode="after")
    def _strides(self) -> SleapTrainingParams:
        if self.output_stride > self.max_stride:
            raise ValueError(f"'output_stride' ({self.output_stride}) must not exceed "
                             f"'max_stride' ({self.max_stride})")
        return self
