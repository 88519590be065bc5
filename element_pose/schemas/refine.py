"""DataJoint schema ``refine``: frames to relabel, chosen from estimations, and labelling sets.

The first half of the refinement loop, as tables: a :class:`FrameSelection` names
pose estimations (of any engine) and an :class:`OutlierParamSet`;
:class:`SelectedFrames` scores their frames and keeps the ones worth relabelling
(:mod:`element_pose.processing.outliers`: low confidence, jumps, distance from a
filtered trajectory, k-means diversity, a cap per estimation); :class:`LabellingSet`
writes those frames with the model's predictions as initial guesses in the engine's
labelling layout (:mod:`element_pose.processing.labelling`): a DeepLabCut
``labeled-data/<video>/`` folder with ``machinelabels-iter<N>.h5`` that
napari-deeplabcut opens, or a SLEAP ``.pkg.slp`` with predicted instances.  The set is
written under the processed root (``refine/selection<id>/``), never into the user's
project.

Activate after :mod:`element_pose.schemas.model`.
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path
from typing import Any

from element_pose.db.config import import_datajoint
from element_pose.db.query import as_restriction
from element_pose.schemas import model
from element_pose.schemas.paramsets import PARAMSET_DEFINITION, insert_params

__all__ = [
    "FrameSelection",
    "LabellingSet",
    "OutlierParamSet",
    "SelectedFrames",
    "activate",
    "labelling_folder",
    "schema",
]

dj = import_datajoint()
log = logging.getLogger(__name__)

schema = dj.Schema()


def activate(schema_name: str, *, create_schema: bool = True, create_tables: bool = True
             ) -> None:
    """Activate the ``refine`` schema (after :func:`element_pose.schemas.model.activate`)."""
    if not model.schema.is_activated():
        raise RuntimeError("activate element_pose.schemas.model before "
                           "element_pose.schemas.refine")
    schema.activate(schema_name, create_schema=create_schema, create_tables=create_tables,
                    add_objects={"model": model})


@schema
class OutlierParamSet(dj.Lookup):
    """How frames to relabel are chosen (see :mod:`element_pose.processing.outliers`)."""

    definition = """
    outlier_paramset_idx: int16
    ---
    """ + PARAMSET_DEFINITION

    @classmethod
    def insert_new_params(cls, paramset_desc: str, params: dict[str, Any],
                          outlier_paramset_idx: int | None = None) -> int:
        """Validate, normalise and insert selection criteria; return their id.

        Raises:
            element_pose.processing.outliers.OutlierParamsError: invalid parameters (named).
            element_pose.core.params.DuplicateParamsError: the same criteria exist under
                another id.
        """
        from element_pose.processing.outliers import OutlierParams

        return insert_params(cls, "outlier_paramset_idx", paramset_desc, params,
                             outlier_paramset_idx, model=OutlierParams)


@schema
class FrameSelection(dj.Manual):
    """Which estimations to choose frames from, by which criteria, for which layout."""

    definition = """
    frame_selection_id: int32
    ---
    -> OutlierParamSet
    layout = '': varchar(16)      # deeplabcut or sleap; '' = the models' engine's
    selection_description = '': varchar(1000)
    """

    class Estimation(dj.Part):
        """One pose estimation the selection draws from."""

        definition = """
        -> master
        -> model.PoseEstimation
        """

    @classmethod
    def insert_selection(cls, estimations, outlier_paramset_idx: int, *,
                         description: str = "", layout: str = "",
                         frame_selection_id: int | None = None) -> dict:
        """Insert a selection of the estimations matching ``estimations``; return its key.

        Args:
            estimations: A restriction of ``model.PoseEstimation`` (dict, list of dicts,
                query).
            outlier_paramset_idx: The criteria (``OutlierParamSet``).
            description: Free text.
            layout: ``deeplabcut``, ``sleap`` or ``''`` (SLEAP's for SLEAP models, else
                DeepLabCut's).
            frame_selection_id: The id; default the next free one.

        Raises:
            ValueError: no estimation matches, an unknown layout or parameter set, or
                estimations of models predicting different body parts; nothing is
                inserted then.
        """
        from element_pose.processing.labelling import LAYOUTS

        keys = (model.PoseEstimation & as_restriction(estimations)).keys(
            order_by=model.PoseEstimation.primary_key)
        if not keys:
            raise ValueError(f"no pose estimation matches {estimations}")
        if layout not in ("", *LAYOUTS):
            raise ValueError(f"unknown labelling layout {layout!r}; one of {list(LAYOUTS)} "
                             "or '' (the models' engine's)")
        if not OutlierParamSet & {"outlier_paramset_idx": outlier_paramset_idx}:
            raise ValueError(f"no refine.OutlierParamSet {outlier_paramset_idx}")
        parts = {m["model_name"]: model.Model.body_parts(m)
                 for m in {k["model_name"]: k for k in keys}.values()}
        if len({tuple(p) for p in parts.values()}) > 1:
            raise ValueError(f"the estimations' models predict different body parts: {parts}")
        if frame_selection_id is None:
            ids = cls.to_arrays("frame_selection_id")
            frame_selection_id = int(max(ids) + 1) if len(ids) else 0
        key = {"frame_selection_id": int(frame_selection_id)}
        with cls.connection.transaction:
            cls.insert1({**key, "outlier_paramset_idx": outlier_paramset_idx,
                         "layout": layout, "selection_description": description})
            cls.Estimation.insert({**key, **k} for k in keys)
        return key


def _estimation_keys(key: dict) -> list[dict]:
    """The estimations of a selection, as PoseEstimation keys, in a fixed order."""
    part = FrameSelection.Estimation
    rows = (part & key).to_dicts(order_by=part.primary_key)
    return [{k: r[k] for k in model.PoseEstimation.primary_key} for r in rows]


@schema
class SelectedFrames(dj.Computed):
    """The frames chosen for relabelling from a selection's estimations."""

    definition = """
    -> FrameSelection
    ---
    n_frames: int32                # frames chosen, all estimations together
    selection_time: datetime
    """

    class Frame(dj.Part):
        """One chosen frame of one estimation, with the criterion that chose it."""

        definition = """
        -> master
        -> FrameSelection.Estimation
        frame_index: int64          # recording-wide frame index (file offsets added)
        ---
        criterion: varchar(16)      # uncertain, jump, fitting or kmeans
        score: float64              # that criterion's score (higher: more worth a look)
        pick_rank: int32            # order chosen within its estimation (0: first)
        """

    def make_fetch(self, key: dict):
        """The criteria, the estimations and their output checksums (small)."""
        params = (OutlierParamSet * FrameSelection & key).fetch1("params")
        keys = _estimation_keys(key)
        checksums = tuple((model.PoseEstimation & k).fetch1("output_checksum") for k in keys)
        return json.dumps(params, sort_keys=True), json.dumps(keys, default=str), checksums

    def make_compute(self, key, params_json, keys_json, checksums):
        """Score and choose the frames of each estimation (outside the transaction)."""
        from element_pose.processing.outliers import select_frames

        params = json.loads(params_json)
        rows = []
        for k in map(_typed_key, json.loads(keys_json)):
            chosen = select_frames(model.PoseEstimation.fetch_pose(k), params)
            rows += [{**key, **k, "frame_index": int(r.frame), "criterion": r.criterion,
                      "score": float(r.score), "pick_rank": int(r.rank)}
                     for r in chosen.itertuples()]
        return (rows,)

    def make_insert(self, key, rows):
        """The master row and one part row per chosen frame."""
        self.insert1({**key, "n_frames": len(rows),
                      "selection_time": datetime.datetime.now().replace(microsecond=0)})
        self.Frame.insert(rows)


def labelling_folder(key: dict) -> Path:
    """Where a selection's labelling set is written: ``<processed>/refine/selection<id>``."""
    return model.roots().processed_dir() / "refine" / f"selection{key['frame_selection_id']}"


@schema
class LabellingSet(dj.Computed):
    """The chosen frames written for a person to correct, with the predictions as guesses."""

    definition = """
    -> SelectedFrames
    ---
    layout: varchar(16)           # deeplabcut or sleap
    folder: varchar(1000)         # relative to the processed root
    n_images: int32
    writing_time: datetime
    """

    class File(dj.Part):
        """A file of the set."""

        definition = """
        -> master
        file_path: varchar(255)   # relative to the set's folder
        """

    class Image(dj.Part):
        """Where a chosen frame is in the set."""

        definition = """
        -> master
        -> SelectedFrames.Frame
        ---
        frame_id: varchar(255)    # labeled-data/<video>/img<N>.png (the image's path in the set)
        """

    @property
    def key_source(self):
        """Selections that chose at least one frame (nothing to write otherwise)."""
        return SelectedFrames & "n_frames > 0"

    def make_fetch(self, key: dict):
        """Layout, frames, videos, frame counts, the model's config and scorer (small)."""
        selection = (FrameSelection & key).fetch1()
        keys = _estimation_keys(key)
        engines = {(model.Model & k).fetch1("engine") for k in keys}
        layout = selection["layout"] or ("sleap" if engines == {"sleap"} else "deeplabcut")
        recordings = []
        for k in keys:
            frames = (SelectedFrames.Frame & key & k).to_arrays(
                "frame_index", order_by="frame_index")
            counts = (model.RecordingInfo.File & k).to_arrays("nframes", order_by="file_id")
            recordings.append((json.dumps(k, default=str),
                               tuple(str(p) for p in model.VideoRecording.file_paths(k)),
                               tuple(int(n) for n in counts), tuple(int(f) for f in frames)))
        first = (model.Model & keys[0]).fetch1()
        config = first["config_template"] if first["engine"] == "deeplabcut" else None
        scorer = (model.PoseEstimation & keys[0]).fetch1("scorer")
        return layout, tuple(recordings), json.dumps(config, sort_keys=True), scorer

    def make_compute(self, key, layout, recordings, config_json, scorer):
        """Decode the frames and write the set under the processed root."""
        from element_pose.processing.labelling import RecordingFrames, write_labelling_set

        keys, inputs = [], []
        for key_json, files, counts, frames in recordings:
            k = _typed_key(json.loads(key_json))
            keys.append(k)
            inputs.append(RecordingFrames(files=[Path(f) for f in files],
                                          frame_counts=list(counts), frames=list(frames),
                                          pose=model.PoseEstimation.fetch_pose(k)))
        written = write_labelling_set(labelling_folder(key), inputs, layout=layout,
                                      config=json.loads(config_json), scorer=scorer)
        images = [{**key, **keys[r], "frame_index": int(f), "frame_id": frame_id}
                  for r, f, frame_id in written.images]
        return layout, str(written.folder), list(written.files), images

    def make_insert(self, key, layout, folder, files, images):
        """The master row, its files and where each frame went."""
        self.insert1({**key, "layout": layout,
                      "folder": model.roots().relative_to_processed(folder),
                      "n_images": len(images),
                      "writing_time": datetime.datetime.now().replace(microsecond=0)})
        self.File.insert({**key, "file_path": f} for f in files)
        self.Image.insert(images)

    @classmethod
    def folder_path(cls, key: dict) -> Path:
        """The absolute folder of a key's labelling set."""
        return model.roots().processed((cls & key).fetch1("folder"))


def _typed_key(key: dict) -> dict:
    """A PoseEstimation key back from JSON: its date and datetime attributes restored."""
    heading = model.PoseEstimation.heading.attributes
    out = {}
    for name, value in key.items():
        kind = str(heading[name].type).lower()
        if kind.startswith("datetime") or kind.startswith("timestamp"):
            value = datetime.datetime.fromisoformat(value)
        elif kind.startswith("date"):
            value = datetime.date.fromisoformat(value)
        out[name] = value
    return out
