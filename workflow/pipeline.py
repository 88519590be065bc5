"""The activated pipeline: ``from workflow.pipeline import lab, subject, session, train, model``.

Importing this module connects to the database (the embedded PostgreSQL unless a
server is configured, see :mod:`element_pose.db.config`) and activates the schemas
``<prefix>lab``, ``<prefix>subject``, ``<prefix>session``, ``<prefix>model``,
``<prefix>train`` and the others (prefix: setting ``schema_prefix``, default
``pose_``).  Every
setting (database, server, prefix, roots, stores) comes from
:func:`element_pose.settings.get_settings`: the settings file that ``element-pose
config set`` writes, overridden by environment variables, exactly as for the
command line, so a script or a notebook needs no ``DJ_*`` variables of its own.

With the pose store on S3, a missing bucket is created here, at first use, unless
``ELEMENT_POSE_S3_CREATE_BUCKET`` is false (then a warning names the command that
creates it), so that ``populate()`` from Python finds it as workers do.

This module is also the linking module of element-pose: it provides ``Session``,
``Device`` and the root-directory functions.
"""

import logging
import sys

from element_pose.core.paths import default_processed_dir, default_root_dirs
from element_pose.db.config import connect, schema_prefix
from element_pose.ops.s3 import BucketMissing, ensure_bucket
from element_pose.schemas import analysis, model, multicam, publish, refine, train
from workflow import lab, session, subject

__all__ = ["Device", "Lab", "Session", "Subject", "analysis", "lab", "model", "multicam",
           "publish", "refine", "session", "subject", "train"]

connect()
try:
    ensure_bucket()  # S3 only: create the store's bucket at first use when allowed
except BucketMissing as _missing:
    logging.getLogger(__name__).warning("%s", _missing)
_prefix = schema_prefix()

lab.schema.activate(f"{_prefix}lab")
Lab, Device = lab.Lab, lab.Device
subject.schema.activate(f"{_prefix}subject", add_objects={"Lab": Lab})
Subject = subject.Subject
session.schema.activate(f"{_prefix}session", add_objects={"Subject": Subject})
Session = session.Session


def get_pose_root_data_dirs():
    """Raw root directories (setting ``root_dirs``: ``ELEMENT_POSE_ROOT_DIRS`` or the file)."""
    return default_root_dirs()


def get_pose_processed_data_dir():
    """Processed root directory (setting ``processed_dir``; default: the first raw root)."""
    return default_processed_dir()


model.activate(f"{_prefix}model", linking_module=__name__)
train.activate(f"{_prefix}train", linking_module=__name__)
analysis.activate(f"{_prefix}analysis")
refine.activate(f"{_prefix}refine")
multicam.activate(f"{_prefix}multicam", linking_module=__name__)
publish.activate(f"{_prefix}publish", linking_module=sys.modules[__name__])


def schemas_in_drop_order() -> list:
    """Every activated schema of the pipeline, dependants first (for teardown)."""
    import sys

    modules = [sys.modules.get(name) for name in (
        "element_pose.schemas.publish", "element_pose.schemas.multicam",
        "element_pose.schemas.refine", "element_pose.schemas.analysis",
        "element_pose.schemas.train", "element_pose.schemas.model",
        "workflow.session", "workflow.subject", "workflow.lab")]
    return [m.schema for m in modules if m is not None and m.schema.is_activated()]


def get_nwb_metadata(session_key: dict):
    """NWB subject and session metadata from the lab, subject and session tables."""
    import datetime
    import zoneinfo

    from element_pose.export.nwb import SessionMetadata, SubjectMetadata

    subject_row = (Subject & session_key).fetch1()
    session_row = (Session & session_key).fetch1()
    labs = (Lab * Subject.Lab & session_key).to_dicts()
    lab_row = labs[0] if labs else {}
    zone = zoneinfo.ZoneInfo(lab_row.get("time_zone") or "UTC")
    start = session_row["session_datetime"].replace(tzinfo=zone)
    birth = subject_row["subject_birth_date"]
    subject = SubjectMetadata(
        subject_id=str(subject_row["subject"]),
        species=subject_row["species"] or None,
        sex=subject_row["sex"],
        date_of_birth=(datetime.datetime.combine(birth, datetime.time(), tzinfo=zone)
                       if birth else None),
        description=subject_row["subject_description"] or None,
    )
    session = SessionMetadata(
        session_id=str(session_row["session_id"]),
        session_start_time=start,
        description=session_row["session_description"] or "pose estimation session",
        lab=lab_row.get("lab_name"),
        institution=lab_row.get("institution") or None,
        experimenters=list((Session.Experimenter & session_key).to_arrays("experimenter")),
    )
    return subject, session


def get_nwb_metadata_many(session_keys: list[dict]) -> list:
    """:func:`get_nwb_metadata` for many sessions with four queries in all (for syncs).

    Returns:
        One ``(SubjectMetadata, SessionMetadata)`` per key, in order.
    """
    import datetime
    import zoneinfo

    from element_pose.export.nwb import SessionMetadata, SubjectMetadata

    if not session_keys:
        return []
    sess_pk = Session.primary_key
    # many keys: whole tables in one query each (a long OR restriction costs more)
    many = len(session_keys) > 50
    restriction = {} if many else [{k: key[k] for k in sess_pk} for key in session_keys]
    by_subject = {} if many else [{"subject": k["subject"]} for k in session_keys]
    subjects = {r["subject"]: r for r in (Subject & by_subject).to_dicts()}
    sessions = {tuple(r[k] for k in sess_pk): r for r in (Session & restriction).to_dicts()}
    labs: dict = {}
    for row in (Lab * Subject.Lab & by_subject).to_dicts():
        labs.setdefault(row["subject"], row)
    people: dict = {}
    for row in (Session.Experimenter & restriction).to_dicts():
        people.setdefault(tuple(row[k] for k in sess_pk), []).append(row["experimenter"])
    result = []
    for key in session_keys:
        subject_row = subjects[key["subject"]]
        session_row = sessions[tuple(key[k] for k in sess_pk)]
        lab_row = labs.get(key["subject"], {})
        zone = zoneinfo.ZoneInfo(lab_row.get("time_zone") or "UTC")
        birth = subject_row["subject_birth_date"]
        result.append((
            SubjectMetadata(
                subject_id=str(subject_row["subject"]), species=subject_row["species"] or None,
                sex=subject_row["sex"],
                date_of_birth=(datetime.datetime.combine(birth, datetime.time(), tzinfo=zone)
                               if birth else None),
                description=subject_row["subject_description"] or None),
            SessionMetadata(
                session_id=str(session_row["session_id"]),
                session_start_time=session_row["session_datetime"].replace(tzinfo=zone),
                description=session_row["session_description"] or "pose estimation session",
                lab=lab_row.get("lab_name"), institution=lab_row.get("institution") or None,
                experimenters=people.get(tuple(key[k] for k in sess_pk), [])),
        ))
    return result
