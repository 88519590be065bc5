"""Restrictions as users write them, made safe for DataJoint 2's semantic matching.

Functions of the schemas that take "a restriction" accept a dict, a list of dicts, a
restriction string or a query (``model.PoseEstimation & key``).  DataJoint 2.3 refuses
``T & (T & key)`` for a table with secondary attributes ("lineage missing on one side"),
so a query is applied by its primary key (:func:`as_restriction`), which selects the
same rows.
"""

from __future__ import annotations

from typing import Any

from element_pose.db.config import import_datajoint

__all__ = ["as_restriction"]


def as_restriction(restriction: Any) -> Any:
    """``restriction`` in a form any table can be restricted by.

    Args:
        restriction: A dict, a list (or tuple) of dicts or queries, a string, a query,
            or ``None`` (no restriction: ``{}``).

    Returns:
        Dicts and strings as they are; a query projected to its primary key; a list
        with each element converted.
    """
    dj = import_datajoint()
    if restriction is None:
        return {}
    if isinstance(restriction, dj.expression.QueryExpression):
        return restriction.proj()
    if isinstance(restriction, list | tuple):
        return [as_restriction(item) for item in restriction]
    return restriction
