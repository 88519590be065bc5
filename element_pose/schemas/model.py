"""DataJoint schema ``model``: recordings, models, evaluation and pose estimation.

Tables fetch, call the DB-free core (:mod:`element_pose.io`,
:mod:`element_pose.engines`), and insert; nothing else.  Every call into an engine
goes through ``get_engine(row["engine"])`` and the engine-neutral results of
:mod:`element_pose.engines.base`: adding an engine needs no edit here.

Linking module contract (passed to :func:`activate`):

* ``Session``: the table a recording belongs to (any primary key).
* ``Device``: the camera table (any primary key).
* optional ``get_pose_root_data_dirs() -> list[path]``: raw roots (videos,
  projects); default :func:`element_pose.core.paths.default_root_dirs`.
* optional ``get_pose_processed_data_dir() -> path``: where outputs are written;
  default :func:`element_pose.core.paths.default_processed_dir`.

Pose arrays are float32, compressed losslessly (``<poseblock@pose>``,
:mod:`element_pose.db.arrays`): one store file per estimation, read by range per body
part; per-frame timestamps are stored once per recording in :class:`RecordingInfo`.

Size: one DataJoint schema is one module (``activate`` binds every table of it), so
this module holds all the ``model`` tables and their fetch helpers (~1,100 lines).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import inspect
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from element_pose.core.paths import Roots, default_processed_dir, default_root_dirs, relative_json
from element_pose.core.pose import PoseData, all_missing, concatenate
from element_pose.core.util import path_safe, session_folder, worker_device
from element_pose.db import arrays
from element_pose.db.config import import_datajoint
from element_pose.db.query import as_restriction
from element_pose.engines import DEFAULT_ENGINE, get_engine
from element_pose.engines.base import (
    EngineCapabilityError,
    ModelDescription,
    SourceSoftware,
    VideoOutputs,
)
from element_pose.schemas.evaluation_once import ReusedEvaluation, evaluated_twin
from element_pose.schemas.paramsets import PARAMSET_DEFINITION, insert_params

__all__ = [
    "EVALUATION_METRICS",
    "LABELED_VIDEO_OPTIONS",
    "POSE_FIELDS",
    "BodyPart",
    "LabeledVideo",
    "LabeledVideoParamSet",
    "LabeledVideoTask",
    "Model",
    "ModelEvaluation",
    "PoseEstimation",
    "PoseEstimationError",
    "PoseEstimationTask",
    "RecordingInfo",
    "VideoRecording",
    "accuracy_rows",
    "activate",
    "linked",
    "pose_from_part_rows",
    "pose_part_rows",
    "read_estimation_outputs",
    "roots",
    "schema",
]

dj = import_datajoint()
log = logging.getLogger(__name__)

schema = dj.Schema()
_linking_module: ModuleType | None = None


class PoseEstimationError(ValueError):
    """Outputs or inputs of a pose estimation do not fit its model or recording."""


def activate(
    model_schema_name: str,
    *,
    create_schema: bool = True,
    create_tables: bool = True,
    linking_module: ModuleType | str | None = None,
) -> None:
    """Activate the ``model`` schema.

    Args:
        model_schema_name: Database schema name.
        create_schema: Create the schema if missing.
        create_tables: Create tables if missing.
        linking_module: Module (or its name) providing ``Session``, ``Device`` and,
            optionally, ``get_pose_root_data_dirs`` / ``get_pose_processed_data_dir``.
    """
    if isinstance(linking_module, str):
        linking_module = importlib.import_module(linking_module)
    if not inspect.ismodule(linking_module):
        raise TypeError("linking_module must be a module (or a module name)")
    missing = [name for name in ("Session", "Device") if not hasattr(linking_module, name)]
    if missing:
        raise AttributeError(f"linking module {linking_module.__name__} lacks {missing}")
    global _linking_module
    _linking_module = linking_module
    schema.activate(
        model_schema_name,
        create_schema=create_schema,
        create_tables=create_tables,
        add_objects=linking_module.__dict__,
    )


def linked(name: str):
    """A table of the linking module (e.g. ``linked("Device")``)."""
    if _linking_module is None:
        raise RuntimeError("element_pose.schemas.model is not activated")
    return getattr(_linking_module, name)


def roots() -> Roots:
    """Root directories, from the linking module when it defines them."""
    module = _linking_module
    root_fn = getattr(module, "get_pose_root_data_dirs", None) or default_root_dirs
    processed_fn = getattr(module, "get_pose_processed_data_dir", None) or default_processed_dir
    return Roots(root_fn, processed_fn)


# ============================================================== recordings
@schema
class VideoRecording(dj.Manual):
    """A video recording of a session by one camera, in one or more files."""

    definition = """
    -> Session
    recording_id: int32
    ---
    -> Device
    recording_description = '': varchar(1000)
    """

    class File(dj.Part):
        """One file of a recording, in playback order; path relative to a root."""

        definition = """
        -> master
        file_id: int16
        ---
        file_path: varchar(1000)   # relative to a root data directory
        """

    @classmethod
    def insert_recording(
        cls,
        session_key: dict,
        recording_id: int,
        device_key: dict,
        files: Sequence[str | Path],
        description: str = "",
        skip_duplicates: bool = False,
    ) -> dict:
        """Insert a recording and its files (absolute or root-relative paths).

        Raises:
            element_pose.core.paths.PathError: a file is missing or outside the roots.
        """
        if not files:
            raise ValueError("a recording needs at least one video file")
        from element_pose.db.limits import check_text_lengths

        r = roots()
        relative = [r.relative(r.find(f)) for f in files]
        key = {**session_key, "recording_id": recording_id}
        check_text_lengths(cls, {"recording_description": description})
        with cls.connection.transaction:
            cls.insert1({**key, **device_key, "recording_description": description},
                        skip_duplicates=skip_duplicates)
            cls.File.insert(
                [{**key, "file_id": i, "file_path": p} for i, p in enumerate(relative)],
                skip_duplicates=skip_duplicates,
            )
        return key

    @classmethod
    def file_paths(cls, key: dict) -> list[Path]:
        """Absolute paths of the recording's files, in order."""
        rows = (cls.File & key).to_dicts(order_by="file_id")
        return [roots().find(row["file_path"]) for row in rows]


@schema
class RecordingInfo(dj.Imported):
    """Geometry, frame count, frame rate and per-frame timestamps of a recording."""

    definition = """
    -> VideoRecording
    ---
    px_height: int32
    px_width: int32
    nframes: int64
    fps: float64                   # frames per second
    recording_duration: float64    # seconds
    timestamps = null: <npy@pose>  # per-frame seconds from the container, all files joined
    """

    class File(dj.Part):
        """Frame count and first frame of each file of the recording."""

        definition = """
        -> master
        -> VideoRecording.File
        ---
        nframes: int64
        frame_offset: int64        # index of the file's first frame in the recording
        """

    def make(self, key: dict) -> None:
        """Probe the recording's files (all must agree in size and rate)."""
        from element_pose.io.video import probe_recording

        paths = VideoRecording.file_paths(key)
        info = probe_recording(paths)
        file_ids = (VideoRecording.File & key).to_arrays("file_id", order_by="file_id")
        self.insert1({
            **key,
            "px_height": info.height,
            "px_width": info.width,
            "nframes": info.n_frames,
            "fps": info.fps,
            "recording_duration": info.duration,
            "timestamps": info.timestamps.astype(np.float64) if info.timestamps is not None
            else None,
        })
        offsets = np.concatenate([[0], np.cumsum(info.frame_counts)[:-1]])
        self.File.insert(
            {**key, "file_id": int(fid), "nframes": int(n), "frame_offset": int(o)}
            for fid, n, o in zip(file_ids, info.frame_counts, offsets, strict=True)
        )


# =================================================================== models
@schema
class BodyPart(dj.Lookup):
    """A body part (keypoint) name shared across models."""

    definition = """
    body_part: varchar(64)
    ---
    body_part_description = '': varchar(1000)
    """

    @classmethod
    def insert_from_names(cls, names: Sequence[str], descriptions: dict[str, str] | None = None
                          ) -> list[str]:
        """Insert body parts not yet known; return the new names (no prompt)."""
        from element_pose.db.limits import check_text_lengths

        descriptions = descriptions or {}
        known = set(cls.to_arrays("body_part"))
        rows = [{"body_part": n, "body_part_description": descriptions.get(n, "")}
                for n in names if n not in known]
        check_text_lengths(cls, rows)
        cls.insert(rows, skip_duplicates=True)
        new = [r["body_part"] for r in rows]
        return new


@schema
class Model(dj.Manual):
    """A pose-estimation model of any registered engine, as its files describe it.

    The row names its engine; what only that engine needs to find the model in its
    files (which training run, which snapshot...) is the engine's own description,
    :attr:`engine_options`, never a column every engine must fill.
    """

    definition = """
    model_name: varchar(64)
    ---
    engine: varchar(32)                 # registry name of the engine (element_pose.engines)
    scorer = '': varchar(255)           # prefix of output names; '' accepts a single output
    multi_animal: bool
    project_path: varchar(1000)         # the model's files (file or folder), relative to a root
    config_template: json               # the model's configuration at registration
    model_description = '': varchar(1000)
    engine_options = null: json         # locators and facts of the model, as its engine gives them
    """

    class BodyPart(dj.Part):
        """Body parts the model predicts, in output order."""

        definition = """
        -> master
        -> BodyPart
        ---
        body_part_index: int16
        """

    @classmethod
    def insert_new_model(
        cls,
        model_name: str,
        source: str | Path,
        engine: str = DEFAULT_ENGINE,
        *,
        scorer: str = "",
        model_description: str = "",
        body_part_descriptions: dict[str, str] | None = None,
        skip_duplicates: bool = False,
        **options: Any,
    ) -> dict:
        """Register a model of any registered engine from its files.

        The engine describes the model (``get_engine(engine).describe_model``) from the
        file or folder it takes (a project's ``config.yaml``, a SLEAP ``.slp``, a model
        folder...).  New body parts are
        added to :class:`BodyPart`; nothing is asked interactively.

        Engine options (e.g. ``shuffle=2, snapshot="best"``) go to the engine as they
        are; the engine resolves them (a snapshot label to one file, for engines with
        snapshots) and what it returns is stored in :attr:`engine_options`.  To use
        another snapshot, register it under another name (:meth:`insert_snapshot`).

        Args:
            model_name: Key of the new model.
            source: The model's file or folder, absolute or relative to a root.
            engine: A registered engine name (``element-pose`` lists them:
                :func:`element_pose.engines.available_engines`).
            scorer: Name its outputs carry (default: the engine's).
            model_description: Free text.
            body_part_descriptions: ``{body part: description}`` for new body parts.
            skip_duplicates: Skip a model already registered.
            **options: Engine options (``None`` values are left out: the engine's
                defaults apply), stored with the model.

        Raises:
            ValueError: an unknown engine, or an option the engine rejects.
            element_pose.engines.base.EngineError: the engine cannot describe the
                source (named), or the snapshot asked for does not exist; the
                engine's format errors for a missing or invalid model file.
            element_pose.core.paths.PathError: the source is outside the roots.
        """
        r = roots()
        path = r.find(source)
        desc = get_engine(engine).describe_model(
            path, **{k: v for k, v in options.items() if v is not None})
        key = {"model_name": model_name}
        row = {**key, **_model_columns(desc, r), "model_description": model_description}
        row["scorer"] = scorer or row["scorer"]
        from element_pose.db.limits import check_text_lengths

        check_text_lengths(cls, row, source=str(desc.source))
        bodyparts = list(desc.keypoints)
        with cls.connection.transaction:
            BodyPart.insert_from_names(bodyparts, body_part_descriptions)
            cls.insert1(row, skip_duplicates=skip_duplicates)
            cls.BodyPart.insert(
                ({**key, "body_part": bp, "body_part_index": i} for i, bp in enumerate(bodyparts)),
                skip_duplicates=skip_duplicates,
            )
        log.info("registered %s model %s with %d body parts", desc.engine, model_name,
                 len(bodyparts))
        return key

    @classmethod
    def insert_snapshot(cls, model_name: str, new_model_name: str, snapshot: str | int,
                        model_description: str = "") -> dict:
        """Register another snapshot of a registered model under a new name.

        A model's snapshot never changes under its name (evaluations and pose
        estimations refer to it); each snapshot is its own model.

        The engine gets the model's stored options with ``snapshot`` replaced.

        Raises:
            element_pose.engines.base.EngineCapabilityError: the engine has no
                snapshots (it cannot evaluate or run models).
            element_pose.engines.base.EngineError: the snapshot does not exist.
        """
        row = (cls & {"model_name": model_name}).fetch1()
        if "evaluate" not in get_engine(row["engine"]).capabilities:
            raise EngineCapabilityError(
                f"model {model_name!r}: engine {row['engine']!r} keeps no snapshots")
        options = {**(row["engine_options"] or {}), "snapshot": snapshot}
        return cls.insert_new_model(
            new_model_name, cls.source_path({"model_name": model_name}), row["engine"],
            model_description=model_description or f"{model_name} at snapshot {snapshot}",
            **options)

    @classmethod
    def body_parts(cls, key: dict) -> list[str]:
        """The model's body parts in output order."""
        return [str(b) for b in
                (cls.BodyPart & key).to_arrays("body_part", order_by="body_part_index")]

    @classmethod
    def source_path(cls, key: dict, must_exist: bool = True) -> Path:
        """Absolute path of the model's files (a file, or the folder holding them).

        Raises:
            element_pose.core.paths.PathError: (``must_exist``) the files are in no root.
        """
        return roots().find((cls & key).fetch1("project_path"), must_exist=must_exist)

    @classmethod
    def config_path(cls, key: dict) -> Path:
        """The model's ``config.yaml`` when its files are a folder, else its source file."""
        path = cls.source_path(key)
        return path / "config.yaml" if path.is_dir() or not path.suffix else path

    @classmethod
    def skeleton(cls, key: dict) -> list[tuple[str, str]]:
        """Skeleton edges from the registered configuration (between the model's body parts)."""
        return _skeleton((cls & key).fetch1("config_template"), cls.body_parts(key))

    @classmethod
    def description(cls, key: dict) -> ModelDescription:
        """The registered model as its engine takes it (no engine package imported)."""
        return _fetch_model(key)[1]


def _skeleton(template: dict | None, body_parts: Sequence[str]) -> list[tuple[str, str]]:
    """The edges of a registered configuration's skeleton between ``body_parts``."""
    known = set(body_parts)
    return [(str(e[0]), str(e[1])) for e in (template or {}).get("skeleton") or []
            if len(e) == 2 and e[0] in known and e[1] in known]


def _fetch_model(key: dict) -> tuple[dict, ModelDescription]:
    """The Model row of ``key`` and its description: two queries (row, body parts)."""
    row = (Model & key).fetch1()
    body_parts = Model.body_parts({"model_name": row["model_name"]})
    return row, _description(row, body_parts, _skeleton(row["config_template"], body_parts))


def _model_columns(desc: ModelDescription, r: Roots) -> dict[str, Any]:
    """The Model columns of a description: the engine's options stored as they are."""
    options = {k: v for k, v in desc.options.items() if k != "config"}
    template = desc.options.get("config")
    if not isinstance(template, dict):
        template = {"engine": desc.engine, "bodyparts": list(desc.keypoints),
                    "individuals": list(desc.individuals),
                    "skeleton": [list(e) for e in desc.skeleton],
                    "multianimalproject": bool(desc.multi_animal)}
    return {
        "engine": desc.engine,
        "scorer": desc.scorer or "",
        "multi_animal": bool(desc.multi_animal),
        "project_path": r.relative(desc.home or desc.source),
        "config_template": _stored_json(template, r),
        "engine_options": _stored_json(options, r),
    }


def _stored_json(value: Any, r: Roots) -> Any:
    """A JSON-able copy of ``value`` with paths under a root made relative."""
    return relative_json(json.loads(json.dumps(value, default=str)), r)


def _description(row: dict, keypoints: Sequence[str] = (),
                 skeleton: Sequence[tuple[str, str]] = ()) -> ModelDescription:
    """A Model row as a :class:`ModelDescription` (source: the stored model files).

    Options: the engine's stored options (``engine_options``), over those that
    rows registered before that column kept in their template.
    """
    engine = get_engine(row["engine"])
    template = row.get("config_template")
    template = template if isinstance(template, dict) else {}
    options = {**(template.get("options") or {}), **(row.get("engine_options") or {})}
    return ModelDescription(
        engine=engine.name, source=roots().find(row["project_path"], must_exist=False),
        keypoints=list(keypoints), individuals=[str(i) for i in template.get("individuals")
                                                 or []],
        skeleton=list(skeleton), multi_animal=bool(row["multi_animal"]),
        scorer=row["scorer"], software=SourceSoftware(engine.software, None),
        options=options)


@schema
class ModelEvaluation(dj.Computed):
    """Evaluation of a model's snapshot on its train and test images."""

    definition = """
    -> Model
    ---
    evaluated_snapshot: varchar(255)
    training_epochs = null: int32
    train_rmse = null: float64          # pixels
    test_rmse = null: float64
    train_rmse_pcutoff = null: float64
    test_rmse_pcutoff = null: float64
    train_map = null: float64
    test_map = null: float64
    train_mar = null: float64
    test_mar = null: float64
    pcutoff: float64
    evaluation_time: float64            # seconds
    results_file: varchar(1000)         # relative to a root
    """

    class BodyPartError(dj.Part):
        """Per body part pixel error on train and test images."""

        definition = """
        -> master
        -> Model.BodyPart
        ---
        train_error = null: float64
        test_error = null: float64
        """

    class Accuracy(dj.Part):
        """element-pose's own scores of the snapshot over all body parts, per split.

        Computed the same way for every engine
        (:func:`element_pose.processing.accuracy.score_predictions`) from the
        engine's predictions on the labelled frames and the held-out split that every
        engine shares (:func:`element_pose.core.labels.held_out`), so models of any
        engine trained on one labelled set compare by one query.  Empty when the
        engine reported no predictions.
        """

        definition = """
        -> master
        split: enum('train', 'test')
        ---
        rmse = null: float64       # pixels, over labelled points that were predicted
        pck_2 = null: float64      # fraction of labelled points predicted within 2 px
        pck_5 = null: float64      # ... within 5 px
        pck_10 = null: float64     # ... within 10 px
        n_labelled: int32          # labelled points scored
        n_predicted: int32         # of those, points the model predicted
        n_frames: int32            # frames of the split
        """

    class BodyPartAccuracy(dj.Part):
        """element-pose's own scores of the snapshot per body part and split."""

        definition = """
        -> master
        -> Model.BodyPart
        split: enum('train', 'test')
        ---
        rmse = null: float64       # pixels
        pck_2 = null: float64
        pck_5 = null: float64
        pck_10 = null: float64
        n_labelled: int32
        n_predicted: int32
        n_frames: int32
        """

    @property
    def key_source(self):
        """Models with a trained snapshot to evaluate.

        A model registered only to load existing outputs (no training dataset or
        snapshot in its project), or of an engine that cannot evaluate, is never
        queued: its evaluation could not succeed.
        """
        rows = Model.proj("engine", "project_path", "engine_options", "config_template",
                          "scorer", "multi_animal").to_dicts()
        return Model.proj() & [{"model_name": r["model_name"]} for r in rows
                               if _has_snapshot(r)]

    def make_fetch(self, key: dict):
        """Model needed to evaluate (small and deterministic)."""
        row, description = _fetch_model(key)
        return (row["engine"], json.dumps(description.to_dict(), sort_keys=True),
                tuple(description.keypoints))

    def make_compute(self, key, engine, description_json, body_parts):
        """Run the engine's evaluation outside the transaction."""
        model = ModelDescription.from_dict(json.loads(description_json))
        twin = evaluated_twin(ModelEvaluation, Model, key, engine, model)  # evaluate once
        if twin is not None:
            return (ReusedEvaluation(twin), body_parts)
        result = get_engine(engine).evaluate(model, device=worker_device())
        return (result, body_parts)

    def make_insert(self, key, result, body_parts):
        """Insert the evaluation and its per body part errors."""
        if isinstance(result, ReusedEvaluation):  # the same snapshot, evaluated before
            return result.insert(self, key, body_parts)
        metrics = result.metrics
        self.insert1({
            **key,
            "evaluated_snapshot": result.snapshot,
            "training_epochs": int(result.epochs) if result.epochs is not None else None,
            **{m: _finite(metrics.get(m)) for m in EVALUATION_METRICS},
            "pcutoff": float(metrics["pcutoff"]),
            "evaluation_time": float(result.wall_time),
            "results_file": roots().relative(result.files[0]),
        })
        per_part = result.per_keypoint
        if per_part:
            self.BodyPartError.insert(
                {**key, "body_part": bp,
                 "train_error": _finite(per_part[bp].get("train_rmse")),
                 "test_error": _finite(per_part[bp].get("test_rmse"))}
                for bp in body_parts if bp in per_part
            )
        overall, per_body_part = accuracy_rows(key, result, body_parts)
        self.Accuracy.insert(overall)
        self.BodyPartAccuracy.insert(per_body_part)


#: Scores of :class:`ModelEvaluation` (keys of ``EvaluationResult.metrics``).
EVALUATION_METRICS = ("train_rmse", "test_rmse", "train_rmse_pcutoff", "test_rmse_pcutoff",
                      "train_map", "test_map", "train_mar", "test_mar")


def accuracy_rows(key: dict, result: Any, body_parts: Sequence[str]
                  ) -> tuple[list[dict], list[dict]]:
    """Rows of :class:`ModelEvaluation.Accuracy` and ``.BodyPartAccuracy`` of an
    evaluation: element-pose's scores of the engine's predictions on the labelled
    frames (none when the engine reported none).

    Raises:
        element_pose.core.labels.LabelSetError: predictions that do not fit the labels.
    """
    from element_pose.processing.accuracy import score_predictions

    if getattr(result, "labels", None) is None or getattr(result, "predictions", None) is None:
        return [], []
    overall, per_part = [], []
    known = set(body_parts)
    for score in score_predictions(result.labels, result.predictions, result.test):
        row = {**key, "split": score.split, "rmse": _finite(score.rmse),
               **{f"pck_{int(t)}": _finite(score.pck.get(t)) for t in (2.0, 5.0, 10.0)},
               "n_labelled": score.n_labelled, "n_predicted": score.n_predicted,
               "n_frames": score.n_frames}
        if not score.body_part:
            overall.append(row)
        elif score.body_part in known:
            per_part.append({**row, "body_part": score.body_part})
    return overall, per_part


def _has_snapshot(row: dict) -> bool:
    """Whether a model's engine can evaluate it and it has a trained snapshot.

    False when that cannot be read (a moved project, an unknown engine).
    """
    try:
        engine = get_engine(row["engine"])
        return "evaluate" in engine.capabilities and bool(engine.snapshots(_description(row)))
    except Exception as exc:  # a moved project, an unknown engine: nothing to evaluate
        log.debug("model %s: no snapshot to evaluate (%s)", row["model_name"], exc)
        return False


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


# ========================================================== pose estimation
@schema
class PoseEstimationTask(dj.Manual):
    """Which model to run on which recording, and how (load or trigger)."""

    definition = """
    -> VideoRecording
    -> Model
    ---
    task_mode = 'load': enum('load', 'trigger')  # load existing outputs, or run inference
    output_dir = '': varchar(1000)  # relative to the processed root; '' = inferred
    pose_estimation_params = null: json  # engine options (batch_size, device, ...)
    """

    @classmethod
    def infer_output_dir(cls, key: dict, mkdir: bool = False) -> Path:
        """Default output folder: ``<processed>/<session key>/recording<id>/<model>``."""
        session_key = {k: v for k, v in key.items()
                       if k in VideoRecording.primary_key and k != "recording_id"}
        path = (roots().processed_dir() / session_folder(session_key)
                / f"recording{key['recording_id']}" / path_safe(key["model_name"]))
        if mkdir:
            path.mkdir(parents=True, exist_ok=True)
        return path

    @classmethod
    def insert_estimation_task(
        cls,
        key: dict,
        task_mode: str = "load",
        output_dir: str | Path | None = None,
        params: dict | None = None,
        skip_duplicates: bool = False,
    ) -> dict:
        """Insert a task; the output folder is stored relative to the root holding it.

        Existing outputs (load mode) may lie under any configured root, raw or
        processed; a relative ``output_dir`` is looked up in the processed root first,
        then in the raw roots.

        Raises:
            element_pose.core.paths.PathError: the folder is outside every root.
        """
        r = roots()
        if output_dir is None:
            relative = r.relative_to_processed(cls.infer_output_dir(key))
        else:
            path = Path(output_dir)
            if not path.is_absolute():
                path = _find_output_dir(str(path))
            relative = r.relative(path)
        task = {k: key[k] for k in cls.primary_key}
        cls.insert1({**task, "task_mode": task_mode, "output_dir": relative,
                     "pose_estimation_params": params}, skip_duplicates=skip_duplicates)
        return task

    @classmethod
    def output_path(cls, key: dict) -> Path:
        """Absolute output folder of a task."""
        relative = (cls & key).fetch1("output_dir")
        return _find_output_dir(relative) if relative else cls.infer_output_dir(key)


def _find_output_dir(relative: str) -> Path:
    """An output folder stored relative to a root: processed root first, then raw roots."""
    r = roots()
    processed = r.processed(relative)
    if processed.exists():
        return processed
    found = r.find(relative, must_exist=False)
    return found if found.exists() else processed


@schema
class PoseEstimation(dj.Computed):
    """Poses of one recording by one model: float32 arrays per individual and body part."""

    definition = """
    -> PoseEstimationTask
    ---
    pose_estimation_time: datetime     # when the outputs were made (trigger) or loaded
    nframes: int64
    scorer: varchar(255)
    engine_version = '': varchar(64)   # e.g. deeplabcut 3.0.2
    run_duration = null: float64       # seconds of inference (trigger mode)
    processing_fps = null: float64     # frames per second of inference (trigger mode)
    device = '': varchar(64)           # cpu, cuda:0, ... (trigger mode)
    batch_size = null: int32
    output_files: json                 # output files, relative to a root
    output_checksum: char(32)          # sha256 (128 bits) of the output files (older rows: md5)
    """

    class BodyPartPosition(dj.Part):
        """x, y (pixels, top-left origin) and likelihood for every frame."""

        definition = """
        -> master
        individual: varchar(64)
        -> Model.BodyPart
        ---
        x: <poseblock@pose>           # float32 (nframes,)
        y: <poseblock@pose>           # float32 (nframes,)
        likelihood: <poseblock@pose>  # float32 (nframes,)
        """

    @property
    def key_source(self):
        """Tasks whose recording has been probed (frame counts are checked against it)."""
        return PoseEstimationTask & RecordingInfo

    # ---- tripartite make: inference runs outside any transaction
    def make_fetch(self, key: dict):
        """Everything the computation needs, small and deterministic."""
        task = (PoseEstimationTask & key).fetch1()
        model, description = _fetch_model(key)
        files = [str(p) for p in VideoRecording.file_paths(key)]
        file_frames = tuple(int(n) for n in (RecordingInfo.File & key).to_arrays(
            "nframes", order_by="file_id"))
        return (
            task["task_mode"],
            str(PoseEstimationTask.output_path(key)),
            json.dumps(task["pose_estimation_params"] or {}, sort_keys=True),
            model["engine"],
            json.dumps(description.to_dict(), sort_keys=True),
            tuple(files),
            file_frames,
            tuple(int(v) for v in (RecordingInfo & key).fetch1("px_width", "px_height")),
        )

    def make_compute(self, key, task_mode, output_dir, params_json, engine, description_json,
                     files, file_frames, frame_size=None):
        """Run inference (trigger mode) or find the outputs (load mode), then read them.

        Both go through ``get_engine(engine)``: ``infer`` or ``find_outputs``, then
        ``read_outputs`` (:func:`read_estimation_outputs`).
        """
        params = json.loads(params_json)
        model = ModelDescription.from_dict(json.loads(description_json))
        pose_engine = get_engine(engine)
        run: dict[str, Any] = {}
        output_dir = Path(output_dir)
        if task_mode == "trigger":
            options = {k: v for k, v in params.items() if k != "device"}
            result = pose_engine.infer(model, files, output_dir,
                                       device=worker_device(params), **options)
            outputs = list(result.outputs)
            run = {
                "run_duration": float(result.run_time),
                "processing_fps": float(result.frames_per_second),
                "device": str(result.device),
                "batch_size": int(result.batch_size) if result.batch_size is not None else None,
                "engine_version": f"{engine} {result.software.get(engine, '')}".strip(),
            }
        else:
            if not output_dir.is_dir():
                raise PoseEstimationError(f"output folder not found: {output_dir}")
            outputs = [pose_engine.find_outputs(f, output_dir, model) for f in files]
        pose, checksum = read_estimation_outputs(pose_engine, outputs, model, file_frames,
                                                 frame_size=frame_size)
        if task_mode != "trigger":
            version = outputs[0].version or pose.source_software_version or "unknown"
            run = {"engine_version": f"{engine} {version}"}
        pose_files = [p for o in outputs for p in o.pose_files]
        return pose, [str(p) for p in pose_files], checksum, run

    def make_insert(self, key, pose: PoseData, h5_files, checksum, run):
        """Insert the master row and one part row per individual and body part."""
        r = roots()
        self.insert1({
            **key,
            "pose_estimation_time": datetime.datetime.now().replace(microsecond=0),
            "nframes": pose.n_frames,
            "scorer": pose.scorer,
            "output_files": [r.relative(p) for p in h5_files],
            "output_checksum": checksum,
            **run,
        })
        self.BodyPartPosition.insert(
            arrays.pack_rows(self.BodyPartPosition, pose_part_rows(key, pose), POSE_FIELDS, key))

    # ---- reading back
    @classmethod
    def fetch_pose(cls, key: dict, body_parts: Sequence[str] | None = None,
                   individuals: Sequence[str] | None = None) -> PoseData:
        """The estimation of exactly one key as :class:`PoseData`, with its time base.

        Three queries: the estimation joined with its recording info and model, the
        model's body parts, the part rows.

        Raises:
            datajoint.DataJointError: when ``key`` does not select exactly one estimation.
        """
        return cls._fetch_pose(key, body_parts, individuals)[0]

    @classmethod
    def _fetch_pose(cls, key: dict, body_parts: Sequence[str] | None,
                    individuals: Sequence[str] | None) -> tuple[PoseData, bool]:
        """:meth:`fetch_pose` and whether the model is multi-animal."""
        row = ((cls & as_restriction(key))
               * RecordingInfo.proj(rec_fps="fps", rec_timestamps="timestamps")
               * Model.proj(model_engine="engine", model_multi="multi_animal",
                            model_config="config_template")).fetch1()
        key = {k: row[k] for k in cls.primary_key}
        model_parts = Model.body_parts(key)
        timestamps = row["rec_timestamps"]
        pose = pose_from_part_rows(
            (cls.BodyPartPosition & key).to_dicts(), int(row["nframes"]), key,
            body_parts, individuals, model_parts=model_parts,
            skeleton=_skeleton(row["model_config"], model_parts),
            fps=float(row["rec_fps"]),
            timestamps=_load(timestamps) if timestamps is not None else None,
            scorer=row["scorer"],
            source_software=_software_name(row["model_engine"]),
            source_software_version=row["engine_version"].split(" ")[-1] or None,
        )
        return pose, bool(row["model_multi"])

    @classmethod
    def get_trajectory(cls, key: dict, body_parts: Sequence[str] | None = None,
                       individuals: Sequence[str] | None = None):
        """A DeepLabCut-style DataFrame (scorer/[individuals/]bodyparts/coords) for one key."""
        pose, multi = cls._fetch_pose(key, body_parts, individuals)
        return pose.to_dlc_dataframe(multi_animal=multi)

    @classmethod
    def to_xarray(cls, key: dict, body_parts: Sequence[str] | None = None,
                  individuals: Sequence[str] | None = None):
        """An ``xarray.Dataset`` in movement's layout (time, space, keypoints, individuals)."""
        return cls.fetch_pose(key, body_parts, individuals).to_xarray()

    @classmethod
    def show_frames(cls, key: dict, frames: Sequence[int] | None = None, *,
                    lowest: int | None = None, body_part: str | None = None,
                    individual: str | None = None, **options):
        """Video frames of one estimation with its keypoints and skeleton drawn on them.

        Args:
            key: Selects exactly one estimation.
            frames: Frame indices to show; default six frames spread over the recording.
            lowest: Instead, the ``lowest`` frames of lowest likelihood (of ``body_part``
                and ``individual`` when given): the frames worth relabelling.
            body_part: Body part that ranks frames for ``lowest``.
            individual: Individual that ranks frames for ``lowest`` (and the only one drawn).
            **options: Passed to :func:`element_pose.processing.viewer.show_frames`.

        Returns:
            A matplotlib Figure.
        """
        from element_pose.processing import viewer

        pose = cls.fetch_pose(key)
        key = (cls & as_restriction(key)).fetch1("KEY")
        chosen = viewer.frames_to_show(pose, frames, lowest, body_part, individual)
        counts = (RecordingInfo.File & key).to_arrays("nframes", order_by="file_id")
        images = viewer.read_recording_frames(VideoRecording.file_paths(key), counts, chosen)
        if individual is not None:
            options.setdefault("individuals", [individual])
        return viewer.show_frames(images, pose, **options)


def _software_name(engine: str) -> str:
    """The software an engine names in its outputs (the engine name when unregistered)."""
    try:
        return get_engine(engine).software
    except ValueError:
        return engine


def _load(value) -> np.ndarray:
    return np.asarray(value.load() if hasattr(value, "load") else value)


def _natural_key(name: str):
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def read_estimation_outputs(
    engine, outputs: Sequence[VideoOutputs], model: ModelDescription,
    file_frames: Sequence[int], frame_size: tuple[int, int] | None = None,
) -> tuple[PoseData, str]:
    """Read and validate the outputs of a recording's files (in order) and join them.

    Args:
        engine: The :class:`~element_pose.engines.base.PoseEngine` that reads them.
        outputs: One :class:`VideoOutputs` per video file, in playback order.
        model: The model (its keypoints order the data).
        file_frames: Frame count of each video file.
        frame_size: ``(width, height)`` of the video: bounds of x and y.

    Returns:
        The joined pose data in model body-part order and a digest of the pose files
        (:func:`_digest_files`).

    Raises:
        element_pose.io.registry.PoseFormatError: (or the engine's error) unreadable
            file, values out of range or body parts not the model's.
        PoseEstimationError: a file's frame count differs from its video's, or every
            value of the recording is missing (NaN): nothing was detected.
    """
    if len(outputs) != len(file_frames):
        raise PoseEstimationError(
            f"{len(outputs)} outputs for a recording of {len(file_frames)} video files"
        )
    from concurrent.futures import ThreadPoolExecutor

    pose_files = [p for o in outputs for p in o.pose_files]
    with ThreadPoolExecutor(max_workers=1) as pool:  # hashing overlaps the reading
        checksum = pool.submit(_digest_files, pose_files)
        parts = []
        for out, expected in zip(outputs, file_frames, strict=True):
            pose = engine.read_outputs(out, model, frame_size=frame_size)
            if pose.n_frames != expected:
                path = out.pose_files[0] if len(out.pose_files) == 1 else out.pose_files
                raise PoseEstimationError(
                    f"{path} has {pose.n_frames} frames but its video has {expected} "
                    "(RecordingInfo): the output does not belong to this video"
                )
            parts.append(pose)
        digest = checksum.result()
    if all(all_missing(p.position, p.confidence) for p in parts):
        raise PoseEstimationError(
            f"every x, y and likelihood in {[Path(p).name for p in pose_files]} is NaN: the "
            "outputs hold no detection at all; an estimation with no data is not stored")
    return (parts[0] if len(parts) == 1 else concatenate(parts)), digest


def _digest_files(paths: Sequence[Path]) -> str:
    """SHA-256 of the files' bytes in order, its first 128 bits in hex (32 characters,
    the width of ``output_checksum``; rows made before 2026-11 hold an md5 there).
    SHA-256 runs on the CPU's SHA instructions: ~2.4x md5's speed on a 52 MB h5."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(4 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:32]


POSE_FIELDS = ("x", "y", "likelihood")


def pose_part_rows(key: dict, pose: PoseData) -> list[dict]:
    """Part rows (one per individual and body part) holding float32 x, y, likelihood.

    Combinations absent from the data (all missing, e.g. multi-animal unique body
    parts on other individuals) are not stored.
    """
    # views, no copy: each array is made contiguous (one at a time) when it is encoded
    position, confidence = pose.position, pose.confidence
    rows = []
    for i, individual in enumerate(pose.individuals):
        for k, body_part in enumerate(pose.keypoints):
            x = position[:, i, k, 0]
            if all_missing(x, confidence[:, i, k]):
                continue
            rows.append({**key, "individual": individual, "body_part": body_part,
                         "x": x, "y": position[:, i, k, 1], "likelihood": confidence[:, i, k]})
    return rows


def pose_from_part_rows(rows: Sequence[dict], n_frames: int, key: dict,
                        body_parts: Sequence[str] | None = None,
                        individuals: Sequence[str] | None = None, *,
                        model_parts: Sequence[str] | None = None,
                        skeleton: Sequence[tuple[str, str]] | None = None,
                        **fields: Any) -> PoseData:
    """Assemble :class:`PoseData` from part rows (inverse of :func:`pose_part_rows`).

    Body parts default to the model's, in output order; the skeleton comes from the
    model's config.

    Args:
        rows: Part rows (``individual``, ``body_part``, ``x``, ``y``, ``likelihood``).
        n_frames: Frames of the estimation.
        key: Selects the estimation (and its model).
        body_parts: Body parts to read, in this order (default: the model's).
        individuals: Individuals to read, in this order (default: all present).
        model_parts: The model's body parts when the caller has them (else fetched).
        skeleton: The model's skeleton edges when the caller has them (else fetched).
        **fields: Further :class:`PoseData` fields (fps, timestamps, scorer, ...).

    Raises:
        PoseEstimationError: a requested body part is not the model's.
    """
    if model_parts is None:
        model_parts = Model.body_parts(key)
    if skeleton is None:
        skeleton = _skeleton((Model & key).fetch1("config_template"), model_parts)
    keypoints = list(body_parts) if body_parts is not None else model_parts
    unknown = [b for b in keypoints if b not in model_parts]
    if unknown:
        raise PoseEstimationError(f"unknown body parts {unknown}; model has {model_parts}")
    present = sorted({r["individual"] for r in rows}, key=_natural_key)
    if individuals is not None:
        missing = [i for i in individuals if i not in present]
        if missing:
            raise PoseEstimationError(f"unknown individuals {missing}; present: {present}")
    names = list(individuals) if individuals is not None else present
    k_pos = {b: i for i, b in enumerate(keypoints)}
    i_pos = {n: i for i, n in enumerate(names)}
    wanted = [r for r in rows if r["body_part"] in k_pos and r["individual"] in i_pos]
    # (individual, keypoint, coordinate, frame): each stored array decodes in place
    grid = np.empty((len(names), len(keypoints), len(POSE_FIELDS), n_frames), np.float32)
    filled = np.zeros(grid.shape[:2], dtype=bool)
    targets = []
    for row in wanted:  # only the requested rows' bytes are read
        i, k = i_pos[row["individual"]], k_pos[row["body_part"]]
        filled[i, k] = True
        targets += [(row[f], grid[i, k, c]) for c, f in enumerate(POSE_FIELDS)]
    arrays.load_into(targets)
    grid[~filled] = np.nan
    return PoseData(
        position=grid[:, :, :2].transpose(3, 0, 1, 2), confidence=grid[:, :, 2].transpose(2, 0, 1),
        keypoints=keypoints, individuals=names,
        skeleton=[e for e in skeleton if e[0] in keypoints and e[1] in keypoints],
        **fields,
    )


# ============================================================ labelled videos
LABELED_VIDEO_OPTIONS = ("pcutoff", "dotsize", "colormap", "draw_skeleton", "trailpoints",
                         "keypoints_only", "output_fps", "filtered")


@schema
class LabeledVideoParamSet(dj.Lookup):
    """Options of labelled videos: pcutoff, dotsize, colormap, draw_skeleton, trailpoints,
    keypoints_only, output_fps, filtered (DeepLabCut's names)."""

    definition = """
    labeled_video_paramset_idx: int16
    ---
    """ + PARAMSET_DEFINITION

    @classmethod
    def insert_new_params(cls, paramset_desc: str, params: dict[str, Any],
                          labeled_video_paramset_idx: int | None = None) -> int:
        """Insert video options and return the id.

        Raises:
            element_pose.core.params.ParamsError: an option that is unknown, of the wrong
                type or out of range (see ``element-pose params labeled_video``).
        """
        from element_pose.processing.labeled_video import LabeledVideoParams

        return insert_params(cls, "labeled_video_paramset_idx", paramset_desc, params,
                             labeled_video_paramset_idx, model=LabeledVideoParams)


@schema
class LabeledVideoTask(dj.Manual):
    """Which pose estimation to draw, with which options."""

    definition = """
    -> PoseEstimation
    -> LabeledVideoParamSet
    """


@schema
class LabeledVideo(dj.Computed):
    """Videos with the estimated poses drawn on them, one per recording file."""

    definition = """
    -> LabeledVideoTask
    ---
    run_duration: float64    # seconds
    """

    class File(dj.Part):
        """The labelled video of one recording file."""

        definition = """
        -> master
        -> VideoRecording.File
        ---
        file_path: varchar(1000)   # relative to the processed root
        """

    def make_fetch(self, key: dict):
        """Model, files and options (small and deterministic)."""
        row, description = _fetch_model(key)
        params = (LabeledVideoParamSet & key).fetch1("params")
        file_ids = tuple(int(i) for i in (VideoRecording.File & key).to_arrays(
            "file_id", order_by="file_id"))
        return (row["engine"], json.dumps(description.to_dict(), sort_keys=True),
                tuple(str(p) for p in VideoRecording.file_paths(key)), file_ids,
                str(PoseEstimationTask.output_path(key)), json.dumps(params, sort_keys=True))

    def make_compute(self, key, engine, description_json, files, file_ids, analysis_dir,
                     params_json):
        """Draw the videos (outside the transaction) into the task's output folder.

        Raises:
            element_pose.engines.base.EngineCapabilityError: the engine cannot draw.
        """
        import time

        pose_engine = get_engine(engine)
        if "label_video" not in pose_engine.capabilities:
            raise EngineCapabilityError(
                f"engine {engine!r} cannot draw labelled videos "
                f"(capabilities: {sorted(pose_engine.capabilities)})")
        model = ModelDescription.from_dict(json.loads(description_json))
        params = json.loads(params_json)
        base = Path(analysis_dir)
        processed = roots().processed_dir()
        if processed not in base.parents and base != processed:  # outputs loaded from a raw root
            base = PoseEstimationTask.infer_output_dir(key)
        out_dir = base / "labeled_videos" / f"options{key['labeled_video_paramset_idx']}"
        start = time.perf_counter()
        videos = [pose_engine.label_video(model, video, out_dir, analysis_dir=analysis_dir,
                                          **params)
                  for video in files]
        return [str(v) for v in videos], file_ids, time.perf_counter() - start

    def make_insert(self, key, videos, file_ids, run_duration):
        """Insert the master row and one file row per recording file."""
        r = roots()
        self.insert1({**key, "run_duration": float(run_duration)})
        self.File.insert({**key, "file_id": fid, "file_path": r.relative_to_processed(v)}
                         for fid, v in zip(file_ids, videos, strict=True))
