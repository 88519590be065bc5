"""SLEAP as an engine: outputs loaded through sleap-io; training, evaluation and
inference through sleap-nn (SLEAP's PyTorch backend), imported lazily.

Modules: :mod:`~element_pose.engines.sleap.engine` (the engine class, registered as
``"sleap"``).
"""

from element_pose.engines.sleap.engine import SleapEngine

__all__ = ["SleapEngine"]
