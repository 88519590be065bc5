"""Check text values against their database columns before inserting.

A value longer than its ``varchar(n)`` column would otherwise fail inside the
database with an error that names neither the table nor the field
("value too long for type character varying(64)").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ColumnLengthError", "check_text_lengths", "column_length"]

_CHAR = re.compile(r"^\s*(?:var)?char\s*\(\s*(\d+)\s*\)", re.IGNORECASE)


class ColumnLengthError(ValueError):
    """A text value is longer than its database column."""


def column_length(table, attribute: str) -> int | None:
    """The character limit of a ``char``/``varchar`` attribute (``None`` if none)."""
    attr = table.heading.attributes.get(attribute)
    if attr is None:
        return None
    for text in (getattr(attr, "type", ""), getattr(attr, "sql_type", ""),
                 getattr(attr, "original_type", "")):
        match = _CHAR.match(str(text or ""))
        if match:
            return int(match[1])
    return None


def check_text_lengths(table, rows: Mapping[str, Any] | Iterable[Mapping[str, Any]],
                       source: str = "") -> None:
    """Refuse text values longer than their columns, naming table, field and limit.

    Args:
        table: The DataJoint table the rows are for.
        rows: One row or several.
        source: Where the values came from (a file), for the message.

    Raises:
        ColumnLengthError: the first value that does not fit.
    """
    rows = [rows] if isinstance(rows, Mapping) else list(rows)
    name = getattr(table, "__name__", None) or type(table).__name__
    for row in rows:
        for attribute, value in row.items():
            if not isinstance(value, str):
                continue
            limit = column_length(table, attribute)
            if limit is not None and len(value) > limit:
                shown = value if len(value) <= 60 else value[:57] + "..."
                raise ColumnLengthError(
                    f"{name}.{attribute} holds at most {limit} characters; {shown!r} has "
                    f"{len(value)}" + (f" (from {source})" if source else ""))
