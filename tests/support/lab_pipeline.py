"""A lab's own pipeline module (not ``workflow.pipeline``): its own session and camera tables.

Used by ``tests/test_pipeline_module.py`` as ``element-pose --pipeline lab_pipeline``
(with ``tests/support`` on ``PYTHONPATH``): the minimal module that activates the
element, with a ``Session`` keyed by animal and experiment and a ``Device`` keyed by
rig, and only the ``model`` schema.
"""

from element_pose.db.config import connect, import_datajoint, schema_prefix
from element_pose.schemas import model

__all__ = ["Device", "Experiment", "Rig", "Session", "model", "schema"]

dj = import_datajoint()
connect()
_prefix = schema_prefix()
schema = dj.Schema(f"{_prefix}mylab")


@schema
class Rig(dj.Lookup):
    """The lab's cameras, one per rig."""

    definition = """
    rig: varchar(32)
    ---
    rig_note = '': varchar(255)
    """


@schema
class Experiment(dj.Manual):
    """The lab's sessions: one experiment on one animal."""

    definition = """
    animal: varchar(16)
    experiment: varchar(32)
    ---
    experiment_note = '': varchar(255)
    """


Session, Device = Experiment, Rig

model.activate(f"{_prefix}model", linking_module=__name__)
