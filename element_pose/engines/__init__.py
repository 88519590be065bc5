"""Pose-estimation engines: the only place that imports a pose-estimation package.

Each engine is a module with the same small interface (``prepare_training_project``,
``train``, ``evaluate``, ``infer``, ``label_video``, ``snapshots``, ...).  Engines are
imported lazily: importing :mod:`element_pose` or :mod:`element_pose.engines` never
imports DeepLabCut or torch.

Example:
    >>> from element_pose.engines import get_engine
    >>> dlc = get_engine("deeplabcut")  # imports element_pose.engines.deeplabcut only
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Engine name -> module path.  Aliases map to the same module.
ENGINES: dict[str, str] = {
    "deeplabcut": "element_pose.engines.deeplabcut",
    "dlc": "element_pose.engines.deeplabcut",
}

DEFAULT_ENGINE = "deeplabcut"


def available_engines() -> list[str]:
    """Names (and aliases) of the registered engines."""
    return sorted(ENGINES)


def get_engine(name: str = DEFAULT_ENGINE) -> ModuleType:
    """Return an engine module by name, importing it on first use.

    The engine module itself imports its pose-estimation package only inside the
    functions that need it.

    Args:
        name: Engine name, case-insensitive (``"deeplabcut"`` or ``"dlc"``).

    Raises:
        ValueError: if no engine of that name is registered.
    """
    key = str(name).strip().lower()
    if key not in ENGINES:
        raise ValueError(f"unknown pose engine {name!r}; available: {available_engines()}")
    return importlib.import_module(ENGINES[key])


__all__ = ["DEFAULT_ENGINE", "ENGINES", "available_engines", "get_engine"]
