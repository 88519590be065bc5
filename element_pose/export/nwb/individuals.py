"""Multi-animal data: one file per individual, with the individual's name where readers look."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from element_pose.core.pose import PoseData
from element_pose.export.nwb.metadata import (
    MetadataError,
    NWBExportError,
    SessionMetadata,
    SubjectMetadata,
    metadata_problems,
)
from element_pose.export.nwb.write import write_nwb

__all__ = [
    "IndividualExport",
    "individual_metadata",
    "plan_individual_files",
    "write_nwb_per_individual",
]


# ---------------------------------------------------------------- multi-animal
@dataclasses.dataclass
class IndividualExport:
    """One file's worth of a multi-animal export (see :func:`plan_individual_files`).

    Attributes:
        individual: Individual name in the pose data.
        pose: The pose data of this individual only.
        subject: Subject metadata for this file.
        session: Session metadata for this file (a distinct identifier).
        relpath: Path inside a dandiset: ``sub-<id>/sub-<id>_ses-<id>_<suffix>.nwb``.
    """

    individual: str
    pose: PoseData
    subject: SubjectMetadata
    session: SessionMetadata
    relpath: str


def _safe_id(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", value).strip("-") or "x"


def individual_metadata(subject: SubjectMetadata, session: SessionMetadata, individual: str,
                        *, subject_id: str | None = None,
                        ) -> tuple[SubjectMetadata, SessionMetadata]:
    """Subject and session metadata of one individual's file of a multi-animal recording.

    The individual's original name (e.g. ``animal0``) goes where readers find it:

    * ``Subject.subject_id``: ``<subject_id>-<individual>`` (made safe for DANDI) unless
      ``subject_id`` is given; ``Subject.description`` names the individual;
    * ``NWBFile.identifier`` (movement names the individual after it):
      ``<individual>_sub-<subject id>_ses-<session id>``, or
      ``<session.identifier>-<individual>`` when the session has an identifier.

    The PoseEstimation's description names it too (see :func:`add_pose_estimation`).
    """
    sub_id = subject_id or f"{subject.subject_id}-{_safe_id(individual)}"
    note = f"individual {individual!r} of a multi-animal recording"
    sub = dataclasses.replace(
        subject, subject_id=sub_id,
        description=(subject.description + "; " if subject.description else "") + note)
    identifier = (f"{session.identifier}-{individual}" if session.identifier
                  else f"{individual}_sub-{subject.subject_id}_ses-{session.session_id}")
    return sub, dataclasses.replace(session, identifier=identifier)


def plan_individual_files(
    pose: PoseData,
    subject: SubjectMetadata,
    session: SessionMetadata,
    subjects: Mapping[str, SubjectMetadata] | None = None,
    individuals: Sequence[str] | None = None,
) -> list[IndividualExport]:
    """Split pose data per individual, with a subject and file path for each.

    Subject ids come from ``subjects[individual]`` when given, otherwise
    ``"<subject.subject_id>-<individual>"`` (the individual name made safe for DANDI),
    inheriting species, sex, age and the rest from ``subject``. Single-individual data
    keep ``subject`` as is. Each file gets its own NWB identifier.

    Args:
        pose: Pose data with one or more individuals.
        subject: The session's subject (or the template for derived subjects).
        session: The session.
        subjects: Optional explicit subject per individual name.
        individuals: Which individuals to export (all by default), e.g. to leave out
            DeepLabCut's ``"single"`` (unique body parts).

    Returns:
        One :class:`IndividualExport` per individual, in order; loop and write each
        with :func:`write_nwb`.
    """
    from element_pose.export.dandi import dandi_relpath

    subjects = dict(subjects or {})
    names = list(individuals) if individuals is not None else list(pose.individuals)
    plans = []
    for individual in names:
        sub, ses = subject, session
        if len(pose.individuals) > 1 or len(names) > 1:
            sub, ses = individual_metadata(subject, session, individual)
        sub = subjects.get(individual, sub)
        plans.append(IndividualExport(
            individual=individual,
            pose=pose.select(individuals=[individual]),
            subject=sub,
            session=ses,
            relpath=dandi_relpath(sub.subject_id, session.session_id),
        ))
    ids = [p.subject.subject_id for p in plans]
    if len(set(ids)) != len(ids):
        raise NWBExportError(f"individuals map to duplicate subject ids: {ids}")
    return plans


def write_nwb_per_individual(
    output_dir: str | Path,
    pose: PoseData,
    subject: SubjectMetadata,
    session: SessionMetadata,
    *,
    subjects: Mapping[str, SubjectMetadata] | None = None,
    individuals: Sequence[str] | None = None,
    overwrite: bool = False,
    **kwargs: Any,
) -> dict[str, Path]:
    """Write one NWB file per individual under ``output_dir`` in the DANDI layout.

    All files' metadata are checked before the first is written. Keyword arguments
    go to :func:`write_nwb` (camera, video, name, ...).

    Returns:
        Individual name -> written path.

    Raises:
        MetadataError: listing the problems of every file, before writing any.
    """
    plans = plan_individual_files(pose, subject, session, subjects, individuals)
    problems = []
    for plan in plans:
        problems += [f"[{plan.individual}] {p}" for p in metadata_problems(
            plan.subject, plan.session, plan.pose, kwargs.get("video"),
            dandi=kwargs.get("require_dandi", True))]
    if problems:
        raise MetadataError(problems)
    output_dir = Path(output_dir)
    return {
        plan.individual: write_nwb(output_dir / plan.relpath, plan.pose, plan.subject,
                                   plan.session, overwrite=overwrite, **kwargs)
        for plan in plans
    }
