"""DataJoint schema ``analysis``: filtered poses and QC figures, plus tidy and kinematics queries.

Raw estimates in :class:`element_pose.schemas.model.PoseEstimation` are never changed:
filtered results live beside them in :class:`FilteredPose`, each recording the
exact steps and parameters that made it.  The numerical work is in
:mod:`element_pose.processing`; tables fetch, call it and insert.

Activate after :mod:`element_pose.schemas.model`.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from element_pose.core.pose import PoseData
from element_pose.core.util import plain_json
from element_pose.db import arrays
from element_pose.db.config import import_datajoint
from element_pose.db.query import as_restriction
from element_pose.schemas import model
from element_pose.schemas.paramsets import PARAMSET_DEFINITION, insert_params

__all__ = [
    "FilterParamSet",
    "FilteredPose",
    "FilteredPoseQC",
    "FilteringTask",
    "PoseQC",
    "activate",
    "export_tidy",
    "fetch_pose",
    "locomotion",
    "qc_folder",
    "tidy_table",
]

dj = import_datajoint()
log = logging.getLogger(__name__)

schema = dj.Schema()


def activate(schema_name: str, *, create_schema: bool = True, create_tables: bool = True
             ) -> None:
    """Activate the ``analysis`` schema (after :func:`element_pose.schemas.model.activate`)."""
    if not model.schema.is_activated():
        raise RuntimeError("activate element_pose.schemas.model before "
                           "element_pose.schemas.analysis")
    schema.activate(schema_name, create_schema=create_schema, create_tables=create_tables,
                    add_objects={"model": model})


@schema
class FilterParamSet(dj.Lookup):
    """A filter pipeline (see :mod:`element_pose.processing.filters`), unique by content."""

    definition = """
    filter_paramset_idx: int16
    ---
    """ + PARAMSET_DEFINITION

    @classmethod
    def insert_new_params(cls, paramset_desc: str, params: dict[str, Any],
                          filter_paramset_idx: int | None = None) -> int:
        """Validate, normalise and insert a filter pipeline; return its id.

        Raises:
            element_pose.processing.filters.FilterParamsError: invalid steps (named).
            element_pose.core.params.DuplicateParamsError: the same pipeline exists under
                another id.
        """
        from element_pose.processing.filters import FilterParams

        return insert_params(cls, "filter_paramset_idx", paramset_desc, params,
                             filter_paramset_idx, model=FilterParams)


@schema
class FilteringTask(dj.Manual):
    """Which filter pipeline to apply to which pose estimation."""

    definition = """
    -> model.PoseEstimation
    -> FilterParamSet
    """


@schema
class FilteredPose(dj.Computed):
    """Filtered poses beside the raw ones, with the provenance of every step."""

    definition = """
    -> FilteringTask
    ---
    nframes: int64
    provenance: json         # steps applied, with parameters and software versions
    filtering_time: datetime
    """

    class BodyPartPosition(dj.Part):
        """Filtered x, y and likelihood (float32; NaN where removed)."""

        definition = """
        -> master
        individual: varchar(64)
        -> model.Model.BodyPart
        ---
        x: <poseblock@pose>
        y: <poseblock@pose>
        likelihood: <poseblock@pose>
        """

    def make(self, key: dict) -> None:
        """Fetch the raw poses, apply the pipeline, insert (nothing if a step fails)."""
        from element_pose.processing.filters import apply_filters

        raw = model.PoseEstimation.fetch_pose(key)
        params = (FilterParamSet & key).fetch1("params")
        filtered = apply_filters(raw, params)
        self.insert1({**key, "nframes": filtered.n_frames,
                      "provenance": plain_json(filtered.provenance),
                      "filtering_time": datetime.datetime.now().replace(microsecond=0)})
        self.BodyPartPosition.insert(arrays.pack_rows(
            self.BodyPartPosition, model.pose_part_rows(key, filtered), model.POSE_FIELDS, key))

    @classmethod
    def fetch_pose(cls, key: dict, body_parts: Sequence[str] | None = None,
                   individuals: Sequence[str] | None = None) -> PoseData:
        """The filtered poses of exactly one key, with the recording's time base."""
        master = (cls & key).fetch1()
        key = {k: master[k] for k in cls.primary_key}
        raw = model.PoseEstimation.fetch_pose(key, body_parts, individuals)
        filtered = model.pose_from_part_rows(
            (cls.BodyPartPosition & key).to_dicts(), int(master["nframes"]), key,
            raw.keypoints, raw.individuals, model_parts=raw.keypoints, skeleton=raw.skeleton,
            fps=raw.fps, timestamps=raw.timestamps,
            scorer=raw.scorer, source_software=raw.source_software,
            source_software_version=raw.source_software_version)
        return filtered.replace(provenance=list(master["provenance"]))


# ------------------------------------------------------------------ QC figures
#: the part table of both QC tables: one PNG per row
_FIGURE_PART = """
-> master
figure_name: varchar(64)
---
file_path: varchar(1000)  # relative to the processed root
"""


class _QCFigures:
    """Shared make() of the QC tables: write PNGs under the processed root, record them."""

    source: Any = None  # table whose fetch_pose gives the poses

    def make(self, key: dict) -> None:
        from element_pose.processing.qc import write_qc_figures

        pose = self.source.fetch_pose(key)
        info = (model.RecordingInfo & key).fetch1()
        config = (model.Model & key).fetch1("config_template")
        out_dir = qc_folder(key, type(self).__name__)
        figures = write_qc_figures(pose, out_dir, width=int(info["px_width"]),
                                   height=int(info["px_height"]),
                                   pcutoff=config.get("pcutoff"))
        roots = model.roots()
        self.insert1({**key, "figure_dir": roots.relative_to_processed(out_dir)})
        self.Figure.insert({**key, "figure_name": name,
                            "file_path": roots.relative_to_processed(path)}
                           for name, path in figures.items())

    @classmethod
    def figure_paths(cls, key: dict) -> dict[str, Path]:
        """Absolute paths of the figures of one key, by name."""
        roots = model.roots()
        rows = (cls.Figure & key).to_dicts()
        return {r["figure_name"]: roots.processed(r["file_path"]) for r in rows}


def qc_folder(key: dict, kind: str) -> Path:
    """Where QC figures of a key go: ``<task output folder>/qc/<kind>[_filter<idx>]``.

    Outputs loaded from outside the processed root (e.g. beside the videos in a raw
    root) get their figures in the task's default folder under the processed root.
    """
    folder = model.PoseEstimationTask.output_path(key)
    if not folder.resolve().is_relative_to(model.roots().processed_dir().resolve()):
        folder = model.PoseEstimationTask.infer_output_dir(key)
    folder = folder / "qc" / kind
    if "filter_paramset_idx" in key:
        folder = folder.with_name(f"{folder.name}_filter{key['filter_paramset_idx']}")
    return folder


@schema
class PoseQC(_QCFigures, dj.Computed):
    """QC figures of the raw poses: jumps histogram, likelihood, x/y and trajectory."""

    source = model.PoseEstimation
    definition = """
    -> model.PoseEstimation
    ---
    figure_dir: varchar(1000)     # relative to the processed root
    """

    class Figure(dj.Part):
        """One PNG figure."""

        definition = _FIGURE_PART


@schema
class FilteredPoseQC(_QCFigures, dj.Computed):
    """QC figures of filtered poses."""

    source = FilteredPose
    definition = """
    -> FilteredPose
    ---
    figure_dir: varchar(1000)     # relative to the processed root
    """

    class Figure(dj.Part):
        """One PNG figure."""

        definition = _FIGURE_PART


# --------------------------------------------------------- tidy and kinematics
def fetch_pose(key: dict, filter_paramset_idx: int | None = None) -> PoseData:
    """Raw poses of a key, or its filtered poses when a filter id is given."""
    if filter_paramset_idx is None:
        return model.PoseEstimation.fetch_pose(key)
    return FilteredPose.fetch_pose({**key, "filter_paramset_idx": filter_paramset_idx})


def tidy_table(query, filter_paramset_idx: int | None = None):
    """Per-frame tidy table of one or many estimations (Inscopix annotations layout).

    Columns: identifiers (subject, session, recording, model), ``Frame number``,
    ``Movie number``, ``Local frame number``, ``Time since start (s)``, then
    ``<body part> x``, ``<body part> y``, ``<body part> likelihood``.

    Args:
        query: PoseEstimation keys (a restriction, a dict or a list of dicts).
        filter_paramset_idx: Export filtered poses of this pipeline instead of raw.

    Raises:
        ValueError: the query selects no estimation.
    """
    from element_pose.processing.tidy import concat_tidy, to_tidy

    keys = (model.PoseEstimation & as_restriction(query)).keys(
        order_by=model.PoseEstimation.primary_key)
    if not keys:
        raise ValueError(f"no pose estimation matches {query}")
    tables = []
    for key in keys:
        pose = fetch_pose(key, filter_paramset_idx)
        counts = [int(n) for n in (model.RecordingInfo.File & key).to_arrays(
            "nframes", order_by="file_id")]
        identifiers = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
                       for k, v in key.items()}
        tables.append(to_tidy(pose, frame_counts=counts, identifiers=identifiers))
    return concat_tidy(tables)


def export_tidy(query, path: str | Path, filter_paramset_idx: int | None = None) -> Path:
    """Write :func:`tidy_table` as CSV or Parquet (by the file's suffix)."""
    from element_pose.processing.tidy import write_tidy

    return write_tidy(tidy_table(query, filter_paramset_idx), path)


def locomotion(key: dict, threshold: float, keypoints: Sequence[str] | None = None,
               min_bout_duration: float = 0.0, filter_paramset_idx: int | None = None):
    """Centre of mass, speed and rest/movement states of one estimation.

    Speeds are in pixels per second on the recording's own time base.
    See :func:`element_pose.processing.kinematics.locomotion`.
    """
    from element_pose.processing.kinematics import locomotion as compute

    pose = fetch_pose(key, filter_paramset_idx)
    return compute(pose, threshold, keypoints=keypoints, min_bout_duration=min_bout_duration)
