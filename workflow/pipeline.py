"""The activated pipeline: ``from workflow.pipeline import lab, subject, session, train, model``.

Importing this module connects to the database (the embedded PostgreSQL unless a
server is configured, see :mod:`element_pose.config`) and activates the schemas
``<prefix>lab``, ``<prefix>subject``, ``<prefix>session``, ``<prefix>model`` and
``<prefix>train`` (prefix: ``ELEMENT_POSE_SCHEMA_PREFIX``, default ``pose_``).

This module is also the linking module of element-pose: it provides ``Session``,
``Device`` and the root-directory functions.
"""

from element_pose import model, train
from element_pose.config import connect, schema_prefix
from element_pose.paths import default_processed_dir, default_root_dirs
from workflow import lab, session, subject

__all__ = ["Device", "Lab", "Session", "Subject", "lab", "model", "session", "subject", "train"]

connect()
_prefix = schema_prefix()

lab.schema.activate(f"{_prefix}lab")
Lab, Device = lab.Lab, lab.Device
subject.schema.activate(f"{_prefix}subject", add_objects={"Lab": Lab})
Subject = subject.Subject
session.schema.activate(f"{_prefix}session", add_objects={"Subject": Subject})
Session = session.Session


def get_pose_root_data_dirs():
    """Raw root directories (``ELEMENT_POSE_ROOT_DIRS``)."""
    return default_root_dirs()


def get_pose_processed_data_dir():
    """Processed root directory (``ELEMENT_POSE_PROCESSED_DIR``)."""
    return default_processed_dir()


model.activate(f"{_prefix}model", linking_module=__name__)
train.activate(f"{_prefix}train", linking_module=__name__)
