"""The DataJoint schemas: tables whose ``make()`` fetch, call the layers below, and insert.

* :mod:`element_pose.schemas.model`: recordings, models, evaluation, pose estimation;
* :mod:`element_pose.schemas.train`: labelled sets, parameter sets, training;
* :mod:`element_pose.schemas.analysis`: filtering, QC figures, tidy exports;
* :mod:`element_pose.schemas.refine`: frames to relabel and labelling sets;
* :mod:`element_pose.schemas.multicam`: calibration, camera groups, triangulation;
* :mod:`element_pose.schemas.publish`: NWB export and DANDI records.

Each module is one schema with a deferred ``activate(schema_name, ...)``; a pipeline
(:mod:`workflow.pipeline`) activates them.  No table names an engine: every call into an
engine goes through :func:`element_pose.engines.get_engine`.
"""

__all__: list[str] = []
