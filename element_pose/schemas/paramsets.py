"""What every ``*ParamSet`` table shares: its columns and a content-addressed insert.

A parameter set is validated once by its :class:`~element_pose.core.params.ParamSet`
model and stored under the md5 of its canonical JSON, so the same parameters cannot
hide under two ids.  Training parameters are validated by the model of the engine
named by their ``engine`` key (``DeepLabCutEngine.training_params``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from element_pose.core.params import DuplicateParamsError, ParamsError, ParamSet, params_hash

__all__ = ["DESCRIPTION_MAX_LENGTH", "PARAMSET_DEFINITION", "insert_params",
           "training_params_model"]

PARAMSET_DEFINITION = """
    paramset_desc: varchar(1000)
    param_set_hash: char(32)   # md5 of the canonical JSON of params
    params: json
    unique index (param_set_hash)
"""
DESCRIPTION_MAX_LENGTH = 1000


def training_params_model(params: Mapping[str, Any] | None,
                          table: str = "train.TrainingParamSet") -> type[ParamSet]:
    """The training parameter model of the engine that ``params["engine"]`` names.

    Raises:
        ParamsError: the engine is unknown or declares no training parameters.
    """
    from element_pose.engines import DEFAULT_ENGINE, available_engines, get_engine

    name = (params or {}).get("engine", DEFAULT_ENGINE) if isinstance(params, Mapping) \
        else DEFAULT_ENGINE
    trainable = [n for n in available_engines() if _trainable(n)]
    try:
        model = get_engine(name).training_params if isinstance(name, str) else None
    except ValueError:
        model = None
    if model is None:
        raise ParamsError(f"{table} params: 'engine' must be an engine that trains, one of "
                          f"{trainable}, got {name!r}")
    return model


def _trainable(name: str) -> bool:
    from element_pose.engines import get_engine

    try:
        return get_engine(name).training_params is not None
    except (ValueError, ImportError):
        return False


def insert_params(table, id_attribute: str, description: str, params: Mapping[str, Any] | None,
                  paramset_id: int | None = None, *, model: type[ParamSet]) -> int:
    """Validate ``params`` once with ``model``, insert them into ``table``; return the id.

    What is stored (and hashed) is ``model.for_storage(params)``: the normalised
    parameters for models that normalise, else the parameters as given.  Inserting
    the same parameters again (under the same id or none) returns the existing id.

    Raises:
        ParamsError: (or the model's error) invalid parameters, or a description longer
            than its column.
        DuplicateParamsError: the parameters exist under another id (named).
    """
    stored = model.for_storage(params)
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX_LENGTH:
        raise ParamsError(
            f"{table.__name__}.paramset_desc must be a text of at most "
            f"{DESCRIPTION_MAX_LENGTH} characters, got {str(description)[:60]!r}"
            f"{'...' if len(str(description)) > 60 else ''}")
    digest = params_hash(stored)
    existing = (table & {"param_set_hash": digest}).to_dicts()
    if existing:
        found = existing[0][id_attribute]
        if paramset_id is None or paramset_id == found:
            return found
        raise DuplicateParamsError(
            f"these parameters already exist as {id_attribute}={found} "
            f"({existing[0]['paramset_desc']!r}) in {table.__name__}"
        )
    if paramset_id is None:
        ids = table.to_arrays(id_attribute)
        paramset_id = int(max(ids) + 1) if len(ids) else 0
    table.insert1({id_attribute: paramset_id, "paramset_desc": description,
                   "param_set_hash": digest, "params": stored})
    return paramset_id
