"""Pose-estimation engines: the only place that imports a pose-estimation package.

An engine is an object satisfying :class:`element_pose.engines.base.PoseEngine`,
registered by name (see :mod:`element_pose.engines.base`).  The schemas ask only
``get_engine(row["engine"])``.  Built-in engines: DeepLabCut
(:mod:`element_pose.engines.deeplabcut.engine`, over the :mod:`element_pose.engines.deeplabcut`
package), SLEAP and Lightning Pose (load-only).  Engines are imported lazily:
importing :mod:`element_pose` or :mod:`element_pose.engines` imports no
pose-estimation package.

Example:
    >>> from element_pose.engines import get_engine
    >>> get_engine("deeplabcut").software  # imports the adapter, not DeepLabCut
    'DeepLabCut'
"""

from __future__ import annotations

from element_pose.engines.base import (
    DEFAULT_ENGINE,
    available_engines,
    get_engine,
    register_engine,
)

__all__ = ["DEFAULT_ENGINE", "available_engines", "get_engine", "register_engine"]
