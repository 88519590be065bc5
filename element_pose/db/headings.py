"""Table headings cached by DataJoint, read again when they went stale.

DataJoint caches each table class's heading (columns and their *lineage*, used by
semantic joins) at first use.  A process that read a heading before another process
finished declaring the tables (a worker started on an empty database while the demo
creates them) holds it without lineage, and every join on it then fails with
"lineage missing on one side" until the process restarts.  :func:`reload_headings`
makes every table class read its heading again, as DataJoint itself does after an
``alter``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from element_pose.db.config import import_datajoint

__all__ = ["reload_headings", "retry_on_stale_lineage", "stale_lineage"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def stale_lineage(exc: BaseException) -> bool:
    """Whether an error is DataJoint's join check failing on a heading without lineage."""
    return "lineage missing on one side" in str(exc)


def _table_classes() -> list[type]:
    dj = import_datajoint()
    seen: list[type] = []
    stack = list(dj.Table.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return seen


def reload_headings() -> int:
    """Forget every cached table heading; the next use reads it from the database.

    Returns:
        How many table classes had a heading to forget.
    """
    from datajoint.heading import Heading

    count = 0
    for cls in _table_classes():
        heading = cls.__dict__.get("_heading")
        if heading is not None and getattr(heading, "table_info", None):
            cls._heading = Heading(table_info=heading.table_info)
            count += 1
    log.debug("reloaded %d table headings", count)
    return count


def retry_on_stale_lineage(run: Callable[[], T]) -> T:
    """``run()``; when it fails on headings without lineage, read them again and rerun once."""
    try:
        return run()
    except Exception as exc:
        if not stale_lineage(exc):
            raise
        log.warning("table headings were read before their lineage was recorded (another "
                    "process declared the tables): reading them again")
        reload_headings()
        return run()
