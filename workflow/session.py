"""Schema ``session``: experimental sessions, keyed as element-session's session_with_id.

(The session start time is an attribute, not part of the key: DataJoint 2 cannot
build job tables over a datetime key on PostgreSQL, and DANDI wants short ids.)
"""

from element_pose.db.config import import_datajoint

dj = import_datajoint()
schema = dj.Schema()


@schema
class Session(dj.Manual):
    """One experimental session of a subject."""

    definition = """
    -> Subject
    session_id: int32
    ---
    session_datetime: datetime          # start time, in the lab's time zone
    session_description = '': varchar(1000)
    """

    class Experimenter(dj.Part):
        """Who ran the session."""

        definition = """
        -> master
        experimenter: varchar(64)
        """
