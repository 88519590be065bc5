"""A minimal linking module (``Session``, ``Device``) for ``tests/test_migrate.py``.

Used twice: to declare release 0's tables (:mod:`support.release0_tables`) and,
after the migration, as the linking module of the current schemas on that prefix.
"""

from element_pose.db.config import import_datajoint

__all__ = ["Device", "Session", "activate", "schema"]

dj = import_datajoint()
schema = dj.Schema()


def activate(prefix: str) -> None:
    """Declare the linking tables in ``<prefix>link``."""
    schema.activate(f"{prefix}link")


@schema
class Session(dj.Manual):
    """A session."""

    definition = """
    session_id: int32
    """


@schema
class Device(dj.Manual):
    """A camera."""

    definition = """
    device: varchar(32)
    """
