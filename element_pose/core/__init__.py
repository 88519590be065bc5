"""The core: types every layer shares, with no database and no engine.

* :mod:`element_pose.core.pose`: :class:`~element_pose.core.pose.PoseData`, the in-memory
  pose model (frames x individuals x keypoints x space, confidence, time base, skeleton);
* :mod:`element_pose.core.params`: parameter sets (validation, hashing);
* :mod:`element_pose.core.paths`: root directories and the relative paths stored;
* :mod:`element_pose.core.util`: small helpers (names, JSON, versions, device);
* :mod:`element_pose.core.redact`: secrets hidden in text shown or logged.

Imports nothing above it (no ``io``, ``engines``, ``schemas``, no DataJoint).
"""

__all__: list[str] = []
