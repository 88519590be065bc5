"""DB-free post-processing of pose estimates: pure functions on ``PoseData``.

Modules (import them directly; this package imports nothing heavy):

* :mod:`element_pose.processing.filters` -- a filter pipeline described by plain,
  JSON-able parameters (confidence threshold, median, offset/jump threshold,
  Savitzky-Golay, interpolation over short gaps), recorded in ``provenance``.
* :mod:`element_pose.processing.qc` -- quality-control figures (matplotlib, Agg).
* :mod:`element_pose.processing.tidy` -- per-frame tidy tables in the Inscopix
  "experiment annotations" layout, written as CSV or Parquet.
* :mod:`element_pose.processing.kinematics` -- centre of mass, speed and
  rest/movement states on the recording's time base.
"""

__all__: list[str] = []
