"""Hash-keyed parameter sets, shared by every ``*ParamSet`` table.

A parameter set is identified by the md5 of its canonical JSON, so the same
parameters cannot hide under two ids, whatever their key order.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

PARAMSET_DEFINITION = """
    paramset_desc: varchar(1000)
    param_set_hash: char(32)   # md5 of the canonical JSON of params
    params: json
    unique index (param_set_hash)
"""


class DuplicateParamsError(ValueError):
    """The same parameters are already stored under another id."""


def params_hash(params: Any) -> str:
    """md5 hex of the canonical JSON of parameters (key order does not matter)."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.md5(canonical.encode()).hexdigest()


def insert_params(table, id_attribute: str, description: str, params: dict[str, Any],
                  paramset_id: int | None = None) -> int:
    """Insert a parameter set into ``table`` and return its id.

    Inserting the same parameters again (under the same id or none) returns the
    existing id.

    Raises:
        DuplicateParamsError: the parameters exist under another id (named).
    """
    digest = params_hash(params)
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
                   "param_set_hash": digest, "params": params})
    return paramset_id
