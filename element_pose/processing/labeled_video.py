"""Options of labelled videos (``model.LabeledVideoParamSet``), for any engine that draws them.

Declared here, below the schemas and beside the other drawing code, so that the schema
names no engine; the names are DeepLabCut's (``pcutoff``, ``dotsize``...), which labs
know, and an engine's ``label_video`` maps them to its own drawing.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from element_pose.core.params import Int, ParamSet, register_params

__all__ = ["LabeledVideoParams"]

Fraction = Annotated[float, Field(ge=0, le=1)]


@register_params("labeled_video", "model.LabeledVideoParamSet")
class LabeledVideoParams(ParamSet):
    """Options of labelled videos (LabeledVideo), with DeepLabCut's names.

    Stored as given (not normalised), so existing parameter sets keep their hashes.
    """

    pcutoff: Fraction | None = Field(
        None, description="hide points below this likelihood (null: the config's)")
    dotsize: Annotated[Int, Field(ge=1, le=100)] | None = Field(
        None, description="marker radius in pixels (null: the config's)")
    colormap: str | None = Field(None, description="matplotlib colormap (null: the config's)")
    draw_skeleton: bool = Field(False, description="draw the config's skeleton")
    trailpoints: Annotated[Int, Field(ge=0, le=10_000)] = Field(
        0, description="previous positions drawn as a trail")
    keypoints_only: bool = Field(False, description="draw on a blank background")
    output_fps: Annotated[float, Field(gt=0, le=1000)] | None = Field(
        None, description="frame rate of the video (null: the source's)")
    filtered: bool = Field(False, description="draw the _filtered.h5 output")
