"""Generated sample data with known truth (DB-free): the demo's and the tests' data.

* :mod:`element_pose.sample.project`: a synthetic video of coloured markers, a
  DeepLabCut project labelled from the known positions, and DeepLabCut-format outputs;
* :mod:`element_pose.sample.threed`: several calibrated views of the same markers.

The names of :mod:`~element_pose.sample.project` are re-exported here
(``from element_pose import sample; sample.make_video(...)``).
"""

from element_pose.sample.project import (
    BODY_OFFSETS,
    DEFAULT_BODYPARTS,
    DEFAULT_SKELETON,
    MARKER_COLOURS,
    accuracy,
    apply_glare,
    ground_truth,
    in_region,
    make_dlc_output,
    make_dlc_project,
    make_video,
    render,
    trajectories,
)

__all__ = [
    "BODY_OFFSETS",
    "DEFAULT_BODYPARTS",
    "DEFAULT_SKELETON",
    "MARKER_COLOURS",
    "accuracy",
    "apply_glare",
    "ground_truth",
    "in_region",
    "make_dlc_output",
    "make_dlc_project",
    "make_video",
    "render",
    "trajectories",
]
