"""Which pipeline module the command line activates: any module that activates the element.

A lab's own pipeline (its own ``Session``, ``Device``, ... and the element's
``activate`` calls, like :mod:`workflow.pipeline`) is used by every command
(``status``, ``worker``, ``jobs``, ``export``, ``dandi-sync``, ``store gc``,
``slurm``) when named, first match wins, by:

1. ``element-pose --pipeline MODULE`` (sets the environment variable below, so
   worker processes started by the command use it too);
2. the setting ``pipeline`` (:func:`element_pose.settings.get_settings`): the
   environment variable ``ELEMENT_POSE_PIPELINE``, else the settings file;
3. else ``workflow.pipeline``.

Importing the module is what connects and activates the schemas.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType

from element_pose.db.config import ConfigError

__all__ = ["DEFAULT_PIPELINE", "PIPELINE_ENV", "PipelineError", "load_pipeline",
           "pipeline_name"]

log = logging.getLogger(__name__)

PIPELINE_ENV = "ELEMENT_POSE_PIPELINE"
DEFAULT_PIPELINE = "workflow.pipeline"


class PipelineError(ConfigError):
    """The configured pipeline module cannot be imported or activates no element schema."""


def pipeline_name(name: str | None = None) -> str:
    """The pipeline module's name: ``name``, else the environment, the settings file, default.

    Args:
        name: An explicit module name (``--pipeline``).
    """
    if name:
        return name
    from element_pose.db.config import current_settings

    return current_settings().pipeline or DEFAULT_PIPELINE


def load_pipeline(name: str | None = None) -> ModuleType:
    """Import (and so connect and activate) the configured pipeline module.

    Args:
        name: Module name; default :func:`pipeline_name`.

    Returns:
        The imported module.

    Raises:
        PipelineError: the module is not importable, or the element's ``model``
            schema is not activated after importing it.
    """
    module_name = pipeline_name(name)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise PipelineError(
                f"pipeline module {module_name!r} (from --pipeline, {PIPELINE_ENV} or the "
                f"settings file's 'pipeline') is not importable: {exc}") from exc
        raise
    from element_pose.schemas import model

    if not model.schema.is_activated():
        raise PipelineError(f"pipeline module {module_name!r} does not activate "
                            "element_pose.schemas.model (call model.activate(...) in it)")
    log.debug("pipeline %s", module_name)
    return module
