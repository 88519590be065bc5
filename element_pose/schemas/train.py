"""DataJoint schema ``train``: labelled data, training parameters and training runs.

Activate after :mod:`element_pose.schemas.model` (trained models are registered there).
The linking module contract is the model schema's: root directories.

Training works on a copy of the user's project that the task owns, under the
processed root; the user's ``config.yaml`` is never rewritten.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from element_pose.core.params import DuplicateParamsError
from element_pose.core.paths import relative_json
from element_pose.core.util import worker_device
from element_pose.db.config import import_datajoint
from element_pose.engines import DEFAULT_ENGINE
from element_pose.schemas import model
from element_pose.schemas.paramsets import PARAMSET_DEFINITION, insert_params

__all__ = ["DuplicateParamsError", "ModelTraining", "TrainedModel", "TrainingIteration",
           "TrainingParamSet", "TrainingTask", "VideoSet", "VideoSetVersion", "activate",
           "added_frames"]

dj = import_datajoint()
log = logging.getLogger(__name__)

schema = dj.Schema()
VIDEO_SET_PATH_LENGTH = 767  # VideoSet.File.file_path is a primary key: varchar(767)


def activate(
    train_schema_name: str,
    *,
    create_schema: bool = True,
    create_tables: bool = True,
    linking_module: ModuleType | str | None = None,
) -> None:
    """Activate the ``train`` schema (after :func:`element_pose.schemas.model.activate`).

    Args:
        train_schema_name: Database schema name.
        create_schema: Create the schema if missing.
        create_tables: Create tables if missing.
        linking_module: Module (or its name) that may provide root-directory
            functions (see :mod:`element_pose.schemas.model`).
    """
    if isinstance(linking_module, str):
        linking_module = importlib.import_module(linking_module)
    if linking_module is not None and not inspect.ismodule(linking_module):
        raise TypeError("linking_module must be a module (or a module name)")
    if not model.schema.is_activated():
        raise RuntimeError("activate element_pose.schemas.model before element_pose.schemas.train")
    schema.activate(
        train_schema_name,
        create_schema=create_schema,
        create_tables=create_tables,
        add_objects=linking_module.__dict__ if linking_module else None,
    )


@schema
class VideoSet(dj.Manual):
    """A set of labelled frames (and their videos) used for training."""

    definition = """
    video_set_id: int32
    ---
    video_set_description = '': varchar(1000)
    video_sets = null: json   # video_sets to train with, relative to the project; null: config's
    """

    class File(dj.Part):
        """A labelled-data file (CollectedData h5/csv, frame png) or video; relative path."""

        definition = """
        -> master
        file_path: varchar(767)   # relative to a root data directory
        """

    @classmethod
    def insert_from_project(cls, video_set_id: int, dlc_config: str | Path,
                            description: str = "", include_videos: bool = True,
                            video_sets: str | None = None, engine: str = DEFAULT_ENGINE
                            ) -> dict:
        """Register every labelled-data file (and video) of a project with a
        ``config.yaml`` and ``labeled-data/<video stem>`` folders.

        The engine (its ``check_video_sets``) says which labelled folders the config's
        ``video_sets`` select for training; a project whose ``video_sets`` match none of its
        labelled folders (the public example projects ship with placeholder paths) is
        refused here, naming the folders found and the names expected.  With
        ``video_sets="labeled-data"`` the set trains on every labelled folder instead
        (recorded in :attr:`video_sets`; the user's ``config.yaml`` is not rewritten).

        Args:
            video_set_id: Key of the new set.
            dlc_config: The project's ``config.yaml`` (or its folder), under a root.
            description: Free text.
            include_videos: Also register the files of ``videos/``.
            video_sets: ``None`` (the config's ``video_sets``) or ``"labeled-data"``.
            engine: The engine that trains on the project (a registered name).

        Raises:
            ValueError: the project has no labelled data, or its ``video_sets`` match
                no labelled folder, or an unknown engine.
            element_pose.engines.base.EngineCapabilityError: the engine reads no
                project of labelled folders.
        """
        from element_pose.db.limits import check_text_lengths
        from element_pose.engines import get_engine

        if video_sets not in (None, "labeled-data"):
            raise ValueError(f"video_sets must be None or 'labeled-data', got {video_sets!r}")
        r = model.roots()
        config_path = r.find(dlc_config)
        project = config_path.parent if config_path.is_file() else config_path
        config_path = project / "config.yaml"
        labelled = sorted(p for p in (project / "labeled-data").rglob("*") if p.is_file()
                          and p.suffix in (".h5", ".csv", ".png", ".jpg"))
        if not any(p.name.startswith("CollectedData_") for p in labelled):
            raise ValueError(f"no labelled frames (CollectedData_*.h5) under {project}")
        found, expected = _video_set_checker(get_engine(engine))(config_path)
        stored = None
        if video_sets == "labeled-data":
            stored = {f"videos/{name}.mp4": {"crop": _crop_of(project / "labeled-data" / name)}
                      for name in found}
        elif not set(found) & set(expected):
            raise ValueError(
                f"the video_sets of {config_path} match no labeled-data folder: {engine} "
                f"would train on nothing. Folders found: {found}; names expected from "
                f"video_sets: {expected}. Fix video_sets in config.yaml, or pass "
                "video_sets='labeled-data' to train on the labelled folders"
            )
        elif set(found) - set(expected):
            log.warning("labelled folders %s of %s are not in its video_sets and are not "
                        "trained on", sorted(set(found) - set(expected)), config_path)
        videos = sorted((project / "videos").glob("*")) if include_videos else []
        files = [r.relative(p, limit=VIDEO_SET_PATH_LENGTH) for p in [*labelled, *videos]
                 if p.is_file()]
        key = {"video_set_id": video_set_id}
        check_text_lengths(cls, {"video_set_description": description})
        with cls.connection.transaction:
            cls.insert1({**key, "video_set_description": description, "video_sets": stored})
            cls.File.insert({**key, "file_path": f} for f in files)
        return key

    @classmethod
    def insert_from_slp(cls, video_set_id: int, slp_path: str | Path,
                        description: str = "") -> dict:
        """Register SLEAP labels (``.slp`` or ``.pkg.slp``) as a set of labelled frames.

        The file, and the videos (or images) it refers to when its frames are not
        embedded, become :class:`File` rows relative to a root.

        Args:
            video_set_id: Key of the new set.
            slp_path: The labels file, under a root.
            description: Free text.

        Raises:
            element_pose.io.sleap_labels.SlpLabelError: the file is not SLEAP labels,
                has no user-labelled frame or uses several skeletons (named).
            element_pose.core.paths.PathError: the file or a video outside every root.
        """
        from element_pose.db.limits import check_text_lengths
        from element_pose.io.sleap_labels import check_slp

        r = model.roots()
        path = r.find(slp_path)
        media = []
        for m in check_slp(path):
            m = m if m.is_absolute() else path.parent / m
            if m.is_file():
                media.append(m)
            else:
                log.warning("%s refers to %s, which is missing: not registered", path, m)
        files = [r.relative(p, limit=VIDEO_SET_PATH_LENGTH) for p in [path, *media]]
        key = {"video_set_id": video_set_id}
        check_text_lengths(cls, {"video_set_description": description})
        with cls.connection.transaction:
            cls.insert1({**key, "video_set_description": description})
            cls.File.insert({**key, "file_path": f} for f in dict.fromkeys(files))
        return key

    @classmethod
    def label_set(cls, key: dict, *, keypoints: Sequence[str] | None = None,
                  what: str = "the model"):
        """The labelled frames of a set as an engine-neutral ``LabelSet``.

        A set registered from SLEAP labels reads its ``.slp`` (images extracted under
        the processed root, ``video_sets/videoset<id>/images``); one registered from a
        DeepLabCut project reads the project's registered ``labeled-data`` folders.

        Args:
            key: Names one VideoSet.
            keypoints: When given, the body parts (in order) the set must label
                (e.g. a model's).
            what: Names whose body parts they are, in the error.

        Returns:
            A :class:`element_pose.core.labels.LabelSet`.

        Raises:
            ValueError: the set holds no labelled data.
            element_pose.core.labels.LabelSetError: unreadable labels, or body parts
                that are not ``keypoints`` (named).
        """
        from element_pose.io.labels import read_label_set

        set_id = (cls & key).fetch1("video_set_id")
        files = list((cls.File & {"video_set_id": set_id}).to_arrays("file_path"))
        r = model.roots()
        slp = [f for f in files if f.lower().endswith(".slp")]
        if slp:
            labels = read_label_set(r.find(slp[0]), images_to=r.processed(
                f"video_sets/videoset{set_id}/images"))
        else:
            collected = [f for f in files if Path(f).name.startswith("CollectedData_")]
            if not collected:
                raise ValueError(f"VideoSet {set_id} holds no labelled data")
            labels = read_label_set(r.find(collected[0]).parent.parent.parent)
            folders = {Path(f).parent.name for f in collected}
            labels = labels.select(f for f in labels.frames if f.split("/")[1] in folders)
        if keypoints is not None:
            labels.check_keypoints(keypoints, what=what)
        return labels


def _video_set_checker(engine):
    """The engine's ``check_video_sets``, which a project of labelled folders needs."""
    checker = getattr(engine, "check_video_sets", None)
    if checker is None:
        from element_pose.engines.base import EngineCapabilityError

        raise EngineCapabilityError(f"engine {engine.name!r} reads no project of labelled "
                                    "folders (it has no check_video_sets)")
    return checker


def _crop_of(folder: Path) -> str:
    """A ``video_sets`` ``crop`` entry (``"0, width, 0, height"``) from a labelled image."""
    from PIL import Image

    image = next((p for p in sorted(folder.iterdir()) if p.suffix in (".png", ".jpg")), None)
    if image is None:
        return "0, 640, 0, 480"
    with Image.open(image) as im:
        width, height = im.size
    return f"0, {width}, 0, {height}"


@schema
class TrainingParamSet(dj.Lookup):
    """Training parameters, unique by content (the hash)."""

    definition = """
    paramset_idx: int16
    ---
    """ + PARAMSET_DEFINITION

    @classmethod
    def insert_new_params(cls, paramset_desc: str, params: dict[str, Any],
                          paramset_idx: int | None = None) -> int:
        """Insert a parameter set and return its id.

        Inserting the same parameters again under the same id is a no-op.  The
        parameters are checked by the training model of the engine named by their
        ``engine`` key (``element-pose params training``).

        Raises:
            element_pose.core.params.ParamsError: unknown key, wrong type or value (named).
            DuplicateParamsError: the parameters exist under another id (named).
        """
        from element_pose.schemas.paramsets import training_params_model

        return insert_params(cls, "paramset_idx", paramset_desc, params, paramset_idx,
                             model=training_params_model(params))


@schema
class TrainingTask(dj.Manual):
    """A training run to do: labelled data + parameters + project."""

    definition = """
    -> VideoSet
    -> TrainingParamSet
    training_id: int32
    ---
    model_prefix = '': varchar(32)
    project_path: varchar(1000)   # folder of the source config.yaml, relative to a root
    """

    @classmethod
    def training_dir(cls, key: dict) -> Path:
        """The folder this task owns under the processed root."""
        name = (f"training/videoset{key['video_set_id']}_param{key['paramset_idx']}"
                f"_train{key['training_id']}")
        return model.roots().processed(name)


@schema
class ModelTraining(dj.Computed):
    """A finished training run: snapshots, learning curves, time, device, versions.

    The row names its engine; what only that engine reports about the run is its
    own description, :attr:`engine_details` (with ``model_options``: how the engine
    finds the trained model again, used by :meth:`register_model`).
    """

    definition = """
    -> TrainingTask
    ---
    training_dir: varchar(1000)      # the task's working copy, relative to the processed root
    config_path: varchar(1000)       # the trained model's source, relative to the processed root
    best_snapshot: varchar(255)      # file name
    latest_snapshot: varchar(255)    # file name
    train_time: float64              # seconds
    device: varchar(64)
    engine_versions: json            # software versions, by package name
    learning_stats = null: json      # per-epoch losses and metrics, as columns
    training_config = null: json     # the engine's effective training configuration
    engine: varchar(32)              # registry name of the engine (element_pose.engines)
    engine_details = null: json      # what only the engine reports (model_options, ...)
    """

    class Snapshot(dj.Part):
        """A snapshot file written by the run."""

        definition = """
        -> master
        snapshot_name: varchar(255)
        ---
        epoch: int32
        snapshot_path: varchar(1000)   # relative to the processed root
        """

    def make_fetch(self, key: dict):
        """Task, parameters and labelled files (small and deterministic)."""
        task = (TrainingTask & key).fetch1()
        params = (TrainingParamSet & key).fetch1("params")
        files = tuple(sorted((VideoSet.File & key).to_arrays("file_path")))
        video_sets = json.dumps((VideoSet & key).fetch1("video_sets"), sort_keys=True)
        train_only = tuple(added_frames(key["video_set_id"]))
        return (json.dumps(params, sort_keys=True), task["project_path"], files, video_sets,
                train_only)

    def make_compute(self, key, params_json, project_path, files, video_sets="null",
                     train_only=()):
        """Prepare the task's own project copy and train, outside the transaction.

        The engine is the parameters' ``engine`` (default
        :data:`element_pose.engines.DEFAULT_ENGINE`), through ``get_engine``.  Frames
        that corrections added to the labelled set (:func:`added_frames`) go to the
        engine as ``train_only``: never held out, so the held-out frames stay those of
        the lineage's first set.
        """
        from element_pose.engines import get_engine

        params = resolve_weight_init(json.loads(params_json))
        if not files:
            raise ValueError(f"VideoSet {key['video_set_id']} is empty: nothing to train on")
        engine = get_engine(params.pop("engine", DEFAULT_ENGINE))
        workdir = TrainingTask.training_dir(key)
        source = _source_view(model.roots().find(project_path), files,
                              workdir.with_name(workdir.name + "-source"),
                              json.loads(video_sets))
        device = worker_device(params)
        params.pop("device", None)
        result = engine.train(source, workdir, params, device=device,
                              **_train_only(engine, train_only))
        return (result,)

    def make_insert(self, key, result):
        """Insert the run and its snapshots."""
        r = model.roots()
        trained = result.model
        config_path = Path(trained.source)
        details = {**result.details, "model_options": result.model_options()}
        self.insert1({
            **key,
            "training_dir": r.relative_to_processed(config_path.parent),
            "config_path": r.relative_to_processed(config_path),
            "best_snapshot": result.best_snapshot or result.last_snapshot,
            "latest_snapshot": result.last_snapshot,
            "train_time": float(result.wall_time),
            "device": str(result.device),
            "engine_versions": dict(result.software),
            "learning_stats": _json_columns(result.learning_stats or None),
            "training_config": _stored_json(result.training_config, r),
            "engine": trained.engine,
            "engine_details": _stored_json(details, r),
        })
        self.Snapshot.insert(
            {**key, "snapshot_name": name, "epoch": int(result.snapshot_epochs[name]),
             "snapshot_path": r.relative_to_processed(result.snapshot_paths[name])}
            for name in result.snapshots
        )

    @classmethod
    def register_model(cls, key: dict, model_name: str, snapshot: str = "best",
                       model_description: str = "") -> dict:
        """Register the trained run as a :class:`element_pose.schemas.model.Model`.

        The run's engine describes it from ``engine_details["model_options"]``, with
        ``snapshot`` (``"best"``, ``"last"``, an epoch or a name) chosen here.
        """
        row = (cls & key).fetch1()
        r = model.roots()
        config = r.processed(row["config_path"])
        options = dict((row["engine_details"] or {}).get("model_options") or {})
        options.pop("scorer", None)
        out = model.Model.insert_new_model(  # its own transaction (they do not nest)
            model_name, config, row["engine"],
            model_description=model_description or f"trained by {key}",
            **{**options, "snapshot": snapshot},
        )
        TrainedModel.insert1({"model_name": model_name, **{k: row[k] for k in cls.primary_key}})
        return out


@schema
class TrainedModel(dj.Manual):
    """Which training run a registered model came from (filled by ``register_model``).

    A query walks from a labelled set to its models through this table (e.g. to rank
    the models of every engine trained on one VideoSet).
    """

    definition = """
    -> model.Model
    ---
    -> ModelTraining
    """


# ---------------------------------------------------- refinement iterations (issue 29)
@schema
class VideoSetVersion(dj.Manual):
    """A VideoSet made from another by importing corrected labels.

    The new set's labelled files are its parent's merged with the corrections, in a
    project folder of their own (never the user's project); :class:`Frame` lists the
    frames the corrections added or changed.  Filled by
    :func:`element_pose.ops.iteration.import_corrections`.
    """

    definition = """
    -> VideoSet
    ---
    -> VideoSet.proj(parent_video_set_id='video_set_id')
    project_path: varchar(1000)    # the merged project folder, relative to a root
    source: varchar(1000)          # the corrected labels imported (as given)
    imported_by: varchar(64)
    imported_at: datetime          # UTC
    """

    class Frame(dj.Part):
        """A frame the corrections added to the parent's labels or changed."""

        definition = """
        -> master
        frame_id: varchar(255)     # labeled-data/<video>/<image>, relative to the project
        ---
        change: enum('added', 'changed')
        """


_PARENT_TRAINING = ("parent_video_set_id='video_set_id', parent_paramset_idx='paramset_idx', "
                    "parent_training_id='training_id'")


@schema
class TrainingIteration(dj.Manual):
    """A training task that is iteration N+1 of a lineage: fine-tuned from the model of
    the previous iteration's run (its parent).  A task without a row here is the
    lineage's first (iteration 0).  Filled by
    :func:`element_pose.ops.iteration.next_iteration`.
    """

    definition = """
    -> TrainingTask
    ---
    iteration: int16
    -> ModelTraining.proj(""" + _PARENT_TRAINING + """)
    -> model.Model.proj(initial_model='model_name')   # the model it was fine-tuned from
    """


def added_frames(video_set_id: int) -> list[str]:
    """Frames that corrections added to a set, over its chain of versions (sorted).

    These are trained on and never held out, so that the held-out frames of every
    iteration are those of the first set.  Empty for a set that is no version.
    """
    added: set[str] = set()
    seen: set[int] = set()
    current: int | None = int(video_set_id)
    while current is not None and current not in seen:
        seen.add(current)
        key = {"video_set_id": current}
        added.update((VideoSetVersion.Frame & key & {"change": "added"}).to_arrays("frame_id"))
        parent = (VideoSetVersion & key).to_arrays("parent_video_set_id")
        current = int(parent[0]) if len(parent) else None
    return sorted(str(f) for f in added)


def resolve_weight_init(params: dict[str, Any]) -> dict[str, Any]:
    """Turn ``weight_init: {"model": name}`` into the model's snapshot file.

    Other forms (``"pretrained"``, ``"random"``, ``{"snapshot_path": ...}``) pass through,
    with relative snapshot paths resolved against the roots.
    """
    init = params.get("weight_init")
    if isinstance(init, dict) and "model" in init:
        from element_pose.engines import get_engine

        model_key = {"model_name": init["model"]}
        if not (model.Model & model_key):
            raise ValueError(f"weight_init names model {init['model']!r}, which is not registered")
        engine = (model.Model & model_key).fetch1("engine")
        snapshot = get_engine(engine).snapshot_file(model.Model.description(model_key))
        params = {**params, "weight_init": {**init, "snapshot_path": str(snapshot)}}
        params["weight_init"].pop("model")
    elif isinstance(init, dict) and "snapshot_path" in init:
        path = model.roots().find(init["snapshot_path"])
        params = {**params, "weight_init": {**init, "snapshot_path": str(path)}}
    return params


def _train_only(engine, frames: Sequence[str]) -> dict[str, list[str]]:
    """``{"train_only": frames}`` for an engine that accepts it, when there are any."""
    if not frames:
        return {}
    if "train_only" in inspect.signature(engine.train).parameters:
        return {"train_only": list(frames)}
    log.warning("engine %r holds out frames by its own split: the %d frames added by "
                "corrections may be held out, so this iteration's test frames differ from "
                "the first one's", engine.name, len(frames))
    return {}


def _stored_json(value: Any, r) -> Any:
    """A JSON-able copy of ``value`` with paths under a root made relative."""
    return relative_json(json.loads(json.dumps(value, default=str)), r)


def _json_columns(stats) -> dict[str, list] | None:
    if stats is None:
        return None
    stats = {str(c): [float(v) for v in values] for c, values in stats.items()}  # {column: array}
    return json.loads(json.dumps(stats, default=float).replace("NaN", "null"))


def _source_view(project: Path, files: Sequence[str], view: Path,
                 video_sets: dict | None = None) -> Path:
    """A folder holding the project's ``config.yaml`` (when it has one) and exactly the
    VideoSet's files: what the engine trains on (the view's config, else the view).

    Files are linked at their place inside the project, so the engine trains on
    the VideoSet and nothing else, and the user's project stays untouched.  The
    VideoSet's own ``video_sets`` (relative to the project), when set, replace the
    config's in the view's copy.

    Raises:
        ValueError: a VideoSet file lies outside the project folder.
    """
    import shutil

    r = model.roots()
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir(parents=True)
    has_config = (project / "config.yaml").is_file()
    if has_config:
        shutil.copy2(project / "config.yaml", view / "config.yaml")
    if video_sets and has_config:
        from element_pose.io import dlc

        cfg = dlc.read_config(view / "config.yaml")
        cfg["video_sets"] = {str(view / name): meta for name, meta in video_sets.items()}
        dlc.write_config(cfg, view / "config.yaml")
    for relative in files:
        path = r.find(relative)
        if project not in path.parents:
            raise ValueError(f"VideoSet file {relative} is outside the project {project}")
        target = view / path.relative_to(project)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path, target)
    return view / "config.yaml" if has_config else view
