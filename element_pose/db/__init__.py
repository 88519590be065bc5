"""The database: connection, the embedded PostgreSQL, object stores, the pose-array codec.

* :mod:`element_pose.db.config`: which database and stores (embedded by default);
* :mod:`element_pose.db.embedded`: the embedded PostgreSQL server;
* :mod:`element_pose.db.arrays`: the ``<poseblock@pose>`` codec;
* :mod:`element_pose.db.limits`: text lengths checked against table headings.

The only layer below the schemas that imports DataJoint.
"""

__all__: list[str] = []
