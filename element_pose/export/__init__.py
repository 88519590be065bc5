"""Export of pose data, with no database.

* :mod:`element_pose.export.nwb`: :class:`~element_pose.core.pose.PoseData` plus metadata ->
  NWB files with the ndx-pose extension (``PoseEstimation``, ``Skeletons``,
  ``PoseTraining``), append into existing files, read back, NWB Inspector checks.
* :mod:`element_pose.export.dandi`: DANDI layout (organize), ``dandiset.yaml``,
  validation, upload with the ``dandi`` client, and the pure bookkeeping that lets
  a sync upload only what is new or changed.

Both modules import pynwb / dandi lazily or only inside themselves, so importing
this package is cheap.
"""

__all__: list[str] = []
