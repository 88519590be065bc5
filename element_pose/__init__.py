"""element-pose: a DataJoint workflow element for animal pose estimation.

The DB-free core (:mod:`element_pose.core.pose`, :mod:`element_pose.io`,
:mod:`element_pose.engines`, :mod:`element_pose.processing`,
:mod:`element_pose.export`) imports no database code; the schemas
(:mod:`element_pose.schemas.model`, :mod:`element_pose.schemas.train`) are activated by a
pipeline such as :mod:`workflow.pipeline`.  Importing this package is cheap: it
does not import DeepLabCut, torch, pynwb or DataJoint.
"""

from element_pose.core.pose import PoseData
from element_pose.version import __version__

__all__ = ["PoseData", "__version__"]
