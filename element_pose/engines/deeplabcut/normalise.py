"""Quiet project copies: entries that make DeepLabCut warn on every call, normalised.

DeepLabCut's example projects (and projects made by older versions) leave
``multianimalproject:`` empty (``None``).  DeepLabCut 3's ``ProjectConfig`` then logs
"Found invalid empty/null/None value for `multianimalproject`..." each time it reads
the config, i.e. on every call.  The task's own project copy gets ``false`` there
(what DeepLabCut assumes anyway); the user's project is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

__all__ = ["EMPTY_DEFAULTS", "normalise_project_config"]

log = logging.getLogger(__name__)

#: Entries of ``config.yaml`` that DeepLabCut reads as their default when empty.
EMPTY_DEFAULTS: dict[str, Any] = {"multianimalproject": False}


def normalise_project_config(cfg: MutableMapping[str, Any]) -> list[str]:
    """Replace empty entries of a (copied) project config by DeepLabCut's defaults.

    Args:
        cfg: The copy's configuration, changed in place.

    Returns:
        The names of the entries that were replaced.
    """
    changed = [k for k, v in EMPTY_DEFAULTS.items() if k in cfg and cfg[k] is None]
    for name in changed:
        cfg[name] = EMPTY_DEFAULTS[name]
    if changed:
        log.debug("project copy: empty %s set to DeepLabCut's defaults", changed)
    return changed
