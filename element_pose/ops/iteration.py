"""The lab's refinement loop in the database (issue 29): corrected labels back in, the
next iteration fine-tuned from the last, and the estimations a newer model replaced.

* :func:`import_corrections` reads corrected labels (a ``CollectedData`` h5/csv as
  napari-deeplabcut writes it, or a SLEAP ``.slp``'s user instances), merges them with
  the labels of a :class:`~element_pose.schemas.train.VideoSet`, writes the merged
  project into a folder of its own under the processed root (``labels/videoset<N>``;
  never the user's project) and records it as a new VideoSet with a
  :class:`~element_pose.schemas.train.VideoSetVersion` row (parent, who, when, source)
  and the frames added or changed; all in one transaction, after the folder is
  complete.
* :func:`next_iteration` makes iteration N+1 of a lineage: a training task on the
  merged labels whose parameters fine-tune from the model of the previous run
  (``weight_init: {"model": name}``), recorded in
  :class:`~element_pose.schemas.train.TrainingIteration`; :func:`lineage` walks it.
  Frames added by corrections are trained on and never held out
  (:func:`element_pose.schemas.train.added_frames`), so every iteration is scored on
  the same held-out frames.
* :func:`superseded_estimations` lists estimations made by a model that a later
  iteration replaced; :func:`rerun_superseded` runs them again with the newest model;
  :func:`current_estimations` is what to publish (``dandi-sync`` then replaces the
  files, whose NWB description names the model and its iteration).
* :func:`lineage_scores` gives the error of every iteration, per body part.
"""

from __future__ import annotations

import datetime
import getpass
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.labels import LabelSet, LabelSetError
from element_pose.ops import versions
from element_pose.schemas import model, train

__all__ = [
    "CorrectionsError",
    "current_estimations",
    "import_corrections",
    "lineage",
    "lineage_scores",
    "merge_corrections",
    "newest_model",
    "next_iteration",
    "rerun_superseded",
    "set_project",
    "superseded_estimations",
]

log = logging.getLogger(__name__)

#: Positions closer than this (pixels) count as unchanged (csv round trips).
_SAME_PX = 1e-3
_TASK_KEY = ("video_set_id", "paramset_idx", "training_id")


class CorrectionsError(LabelSetError):
    """Corrected labels that cannot be imported (named frames, body parts or files)."""


# ------------------------------------------------------------------ the sets
def set_project(video_set_id: int) -> Path:
    """The project folder holding a VideoSet's labelled files (absolute).

    A version's own folder; for a set registered from a project, the folder above
    ``labeled-data`` of its ``CollectedData`` files; for one registered from SLEAP
    labels, the folder of its ``.slp``.

    Raises:
        ValueError: no such set, or its labelled files lie in several projects or none.
    """
    key = {"video_set_id": int(video_set_id)}
    if not (train.VideoSet & key):
        raise ValueError(f"VideoSet {video_set_id} does not exist")
    r = model.roots()
    version = (train.VideoSetVersion & key).to_dicts()
    if version:
        return r.find(version[0]["project_path"])
    slp = versions.set_slp(video_set_id)
    if slp is not None:
        return slp.parent
    files = [str(f) for f in (train.VideoSet.File & key).to_arrays("file_path")]
    projects = {Path(f).parents[2].as_posix() for f in files
                if Path(f).name.startswith("CollectedData_") and len(Path(f).parents) > 2}
    if len(projects) != 1:
        raise ValueError(f"VideoSet {video_set_id} has labelled files in "
                         f"{len(projects)} projects ({sorted(projects)}): one is needed")
    return r.find(projects.pop())


def _set_labels(video_set_id: int) -> LabelSet:
    """The labelled frames of a VideoSet: of a DeepLabCut project (its project's root)
    or of SLEAP labels (their images extracted)."""
    if versions.set_slp(video_set_id) is None:
        set_project(video_set_id)  # one project: what a version is written from
    return train.VideoSet.label_set({"video_set_id": int(video_set_id)})


def _aligned(corrections: LabelSet, parent: LabelSet, source: str) -> LabelSet:
    """The corrections with the parent's body parts and individuals, in its order.

    Raises:
        CorrectionsError: a body part or individual the parent does not have (renamed),
            or one of the parent's missing.
    """
    if set(corrections.keypoints) != set(parent.keypoints):
        try:
            corrections.check_keypoints(parent.keypoints, what=f"the labelled set ({source})")
        except LabelSetError as exc:
            raise CorrectionsError(f"{exc}: a body part was renamed, added or dropped; "
                               "nothing imported") from exc
    unknown = sorted(set(corrections.individuals) - set(parent.individuals))
    if unknown:
        raise CorrectionsError(f"{source} labels individuals {unknown} that the labelled set "
                           f"does not have ({parent.individuals}); nothing imported")
    xy = np.full((corrections.n_frames, len(parent.individuals), len(parent.keypoints), 2),
                 np.nan)
    k = [corrections.keypoints.index(name) for name in parent.keypoints]
    for i, individual in enumerate(parent.individuals):
        if individual in corrections.individuals:
            xy[:, i] = corrections.xy[:, corrections.individuals.index(individual)][:, k]
    return LabelSet(frames=list(corrections.frames), keypoints=list(parent.keypoints),
                    individuals=list(parent.individuals), xy=xy, skeleton=parent.skeleton,
                    root=corrections.root, scorer=corrections.scorer)


def merge_corrections(parent: LabelSet, corrections: LabelSet, source: str = "corrections"
                      ) -> tuple[LabelSet, list[str], list[str], dict[str, Path]]:
    """The parent's labels with the corrections applied.

    Frames are matched as DeepLabCut names them (``labeled-data/<video>/<image>``; a
    SLEAP frame ``<video>/<image>`` too); added frames get that id, changed ones keep
    the parent's.  A corrected frame replaces the parent's positions of that frame (all its body
    parts); a frame the corrections hold unchanged is left as it is.

    Returns:
        ``(merged, added, changed, images)``: frame ids added and changed, and the
        image file of each added frame.

    Raises:
        CorrectionsError: a body part renamed, an unknown individual, a corrected frame
            left unlabelled, or an added frame without its image (named).
    """
    from element_pose.io.dlc_labels_write import dlc_frame_id

    corrections = _aligned(corrections, parent, source)
    ids = [dlc_frame_id(f) for f in corrections.frames]
    files = {i: (None if corrections.root is None else corrections.image(f))
             for i, f in zip(ids, corrections.frames, strict=True)}
    empty = [f for f, ok in zip(ids, corrections.labelled(), strict=True) if not ok]
    if empty:
        raise CorrectionsError(f"{len(empty)} frame(s) of {source} are left unlabelled "
                               f"(no point): {empty[:5]}; label them or remove them, nothing "
                               "was imported")
    index = {dlc_frame_id(f): i for i, f in enumerate(parent.frames)}
    added, changed, rows = [], [], {}
    for j, frame in enumerate(ids):
        if frame not in index:
            added.append(frame)
        elif not np.allclose(parent.xy[index[frame]], corrections.xy[j], atol=_SAME_PX,
                             equal_nan=True):
            changed.append(parent.frames[index[frame]])
            rows[changed[-1]] = j
    missing = [f for f in added if files[f] is None or not files[f].is_file()]
    if missing:
        raise CorrectionsError(f"added frames of {source} have no image under "
                               f"{corrections.root}: {missing[:5]}; nothing imported")
    xy = parent.xy.copy()
    row = {f: j for j, f in enumerate(ids)}
    for frame in changed:
        xy[parent.frames.index(frame)] = corrections.xy[rows[frame]]
    if added:
        xy = np.concatenate([xy, corrections.xy[[row[f] for f in added]]])
    merged = LabelSet(frames=[*parent.frames, *added], keypoints=list(parent.keypoints),
                      individuals=list(parent.individuals), xy=xy, skeleton=parent.skeleton,
                      root=parent.root, scorer=parent.scorer)
    return merged, added, changed, {f: files[f] for f in added}


def _next_id(table, attribute: str, restriction: Any = None) -> int:
    values = (table & (restriction or {})).to_arrays(attribute)
    return int(max(values)) + 1 if len(values) else 0


def import_corrections(parent_video_set_id: int, corrected: str | Path, *,
                       video_set_id: int | None = None, imported_by: str | None = None,
                       description: str = "") -> dict:
    """Import corrected labels into a new version of a VideoSet.

    A set of SLEAP labels gets a version written as one ``.pkg.slp``
    (:mod:`element_pose.ops.versions`); corrections in either format apply to a set
    of either kind.

    Args:
        parent_video_set_id: The set the corrections apply to.
        corrected: A ``CollectedData_<scorer>.h5``/``.csv`` (napari-deeplabcut's, under
            ``labeled-data/<video>/`` beside the images) or a SLEAP ``.slp``.
        video_set_id: Key of the new set (default: the next free one).
        imported_by: Who imported (default: the system user).
        description: Free text for the new VideoSet.

    Returns:
        The new VideoSet's key.

    Raises:
        CorrectionsError: renamed body parts, a frame left unlabelled, an added frame
            without image, or nothing to import; nothing is written or inserted.
        ValueError: unknown parent, or the new key exists.
    """
    parent = _set_labels(parent_video_set_id)
    new_id = (_next_id(train.VideoSet, "video_set_id") if video_set_id is None
              else int(video_set_id))
    key = {"video_set_id": new_id}
    if train.VideoSet & key:
        raise ValueError(f"VideoSet {new_id} exists already")
    folder = model.roots().processed_dir() / "labels" / f"videoset{new_id}"
    if folder.exists():
        raise ValueError(f"{folder} exists already: remove it or choose another video_set_id")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".videoset{new_id}-", dir=folder.parent))
    try:
        added, changed = _merge_into(tmp, parent, parent_video_set_id, corrected)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        _insert_version(key, parent_video_set_id, folder, corrected, added, changed,
                        imported_by, description)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    log.info("VideoSet %s: %d frames added, %d changed from %s (parent %s)", new_id,
             len(added), len(changed), corrected, parent_video_set_id)
    return key


def _merge_into(tmp: Path, parent: LabelSet, parent_id: int, corrected: str | Path
                ) -> tuple[list[str], list[str]]:
    """Read the corrections (a SLEAP file's images into ``tmp``), merge them and write
    the merged project into ``tmp``; ``(added, changed)``."""
    from element_pose.io.labels import read_label_set

    scratch = tmp / ".corrections"
    corrections = read_label_set(corrected, images_to=scratch)  # images_to: SLEAP only
    merged, added, changed, images = merge_corrections(parent, corrections, str(corrected))
    if not added and not changed:
        raise CorrectionsError(f"{corrected} neither adds nor changes a frame of VideoSet "
                               f"{parent_id}: nothing to import")
    if versions.set_slp(parent_id) is not None:
        versions.write_slp_version(merged, images, tmp)
    else:
        versions.write_dlc_version(merged, set_project(parent_id), images, tmp)
    shutil.rmtree(scratch, ignore_errors=True)
    return added, changed


def _insert_version(key: dict, parent_id: int, folder: Path, corrected: str | Path,
                    added: list[str], changed: list[str], imported_by: str | None,
                    description: str) -> None:
    r = model.roots()
    slp = folder / versions.VERSION_FILE
    files = ([r.relative(slp, limit=train.VIDEO_SET_PATH_LENGTH)] if slp.is_file() else
             sorted(r.relative(p, limit=train.VIDEO_SET_PATH_LENGTH)
                    for p in (folder / "labeled-data").rglob("*")
                    if p.is_file() and p.suffix in (".h5", ".csv", ".png", ".jpg")))
    video_sets = None if slp.is_file() else {
        f"videos/{d.name}.mp4": {"crop": versions.crop(d)}
        for d in sorted((folder / "labeled-data").iterdir()) if d.is_dir()}
    description = description or (f"version of VideoSet {parent_id}: {len(added)} frames "
                                  f"added, {len(changed)} changed")
    with train.VideoSet.connection.transaction:
        train.VideoSet.insert1({**key, "video_set_description": description[:1000],
                                "video_sets": video_sets})
        train.VideoSet.File.insert({**key, "file_path": f} for f in files)
        train.VideoSetVersion.insert1({
            **key, "parent_video_set_id": int(parent_id),
            "project_path": r.relative(folder), "source": str(corrected)[:1000],
            "imported_by": (imported_by or _user())[:64],
            "imported_at": datetime.datetime.now(datetime.UTC).replace(tzinfo=None,
                                                                        microsecond=0)})
        train.VideoSetVersion.Frame.insert(
            [{**key, "frame_id": f, "change": "added"} for f in added]
            + [{**key, "frame_id": f, "change": "changed"} for f in changed])


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers)
        return "unknown"


def _ancestors(video_set_id: int) -> list[int]:
    """The set and its parents, newest first."""
    chain, current = [], int(video_set_id)
    while current not in chain:
        chain.append(current)
        parent = (train.VideoSetVersion & {"video_set_id": current}).to_arrays(
            "parent_video_set_id")
        if not len(parent):
            break
        current = int(parent[0])
    return chain


# --------------------------------------------------------------- iterations
def _task(key: dict) -> dict:
    return {k: int(key[k]) for k in _TASK_KEY}


def _parent(task: dict) -> dict | None:
    rows = (train.TrainingIteration & task).to_dicts()
    if not rows:
        return None
    return {k: int(rows[0][f"parent_{k}"]) for k in _TASK_KEY}


def _models_of(task: dict) -> list[str]:
    return sorted(str(m) for m in (train.TrainedModel & task).to_arrays("model_name"))


def next_iteration(previous: dict, video_set_id: int | None = None, *,
                   params: dict | None = None, model_name: str | None = None,
                   training_id: int | None = None, paramset_desc: str = "") -> dict:
    """Create the training task of the next iteration, fine-tuned from ``previous``.

    Args:
        previous: A finished :class:`~element_pose.schemas.train.ModelTraining` key.
        video_set_id: The labelled set to train on: ``previous``'s set or a version of
            it (default: the newest version made from it, else its own set).
        params: Parameters that change (e.g. ``{"epochs": 50}``); the rest are the
            previous run's, with ``weight_init: {"model": <previous model>}`` (and
            ``with_decoder: true`` for DeepLabCut: backbone and heads are loaded).
        model_name: Name to register the previous run under when it is not registered
            yet (default ``iter<N>_vs<set>_p<paramset>_t<training>``).
        training_id: Key of the new task (default the next free one).
        paramset_desc: Description of the parameter set (default names the model).

    Returns:
        The new TrainingTask key.

    Raises:
        ValueError: ``previous`` has not finished, or ``video_set_id`` is no version
            of its set.
    """
    prev = _task(previous)
    if not (train.ModelTraining & prev):
        raise ValueError(f"training {prev} has not finished (no ModelTraining row)")
    if video_set_id is None:
        video_set_id = _newest_version(prev["video_set_id"])
    if prev["video_set_id"] not in _ancestors(video_set_id):
        raise ValueError(f"VideoSet {video_set_id} is not {prev['video_set_id']} or a "
                         "version made from it: the next iteration trains on the merged "
                         "labels of the previous one")
    iteration = _iteration(prev) + 1
    models = _models_of(prev)
    source = models[0] if models else train.ModelTraining.register_model(
        prev, model_name or "iter{}_vs{}_p{}_t{}".format(iteration - 1, *prev.values())
    )["model_name"]
    base = dict((train.TrainingParamSet & prev).fetch1("params"))
    new_params = {**base, **(params or {}),
                  "weight_init": _weight_init(base, source, (params or {}).get("weight_init"))}
    paramset = train.TrainingParamSet.insert_new_params(
        paramset_desc or f"iteration {iteration}: fine-tuned from {source}", new_params)
    restriction = {"video_set_id": int(video_set_id), "paramset_idx": paramset}
    task = {**restriction, "training_id": (_next_id(train.TrainingTask, "training_id",
                                                     restriction)
                                           if training_id is None else int(training_id))}
    project = model.roots().relative(set_project(video_set_id))
    prefix = (train.TrainingTask & prev).fetch1("model_prefix")
    with train.TrainingTask.connection.transaction:
        train.TrainingTask.insert1({**task, "model_prefix": prefix, "project_path": project})
        train.TrainingIteration.insert1({
            **task, "iteration": iteration, "initial_model": source,
            **{f"parent_{k}": v for k, v in prev.items()}})
    return task


def _weight_init(base: dict, source: str, given: Any) -> dict:
    """``{"model": source}``; for DeepLabCut with its heads too (``with_decoder``: the
    body parts are the same, an import refuses renamed ones); a mapping given in
    ``params`` adds to it."""
    from element_pose.engines import DEFAULT_ENGINE

    init: dict[str, Any] = {"model": source}
    if base.get("engine", DEFAULT_ENGINE) == "deeplabcut":
        init["with_decoder"] = True
    return {**init, **(given if isinstance(given, dict) else {})}


def _newest_version(video_set_id: int) -> int:
    """The newest set made (over any chain of versions) from ``video_set_id``."""
    newest, frontier = int(video_set_id), [int(video_set_id)]
    while frontier:
        children = [int(c) for c in (train.VideoSetVersion & [
            {"parent_video_set_id": f} for f in frontier]).to_arrays("video_set_id")]
        if children:
            newest = max(newest, *children)
        frontier = children
    return newest


def _iteration(task: dict) -> int:
    rows = (train.TrainingIteration & task).to_arrays("iteration")
    return int(rows[0]) if len(rows) else 0


def lineage(key: dict) -> list[dict]:
    """Every training of the lineage of ``key``, ordered by iteration.

    Walks up to the first training (iteration 0) through the parents, then down
    through every later iteration (a lineage may branch).

    Returns:
        One dict per training: its key, ``iteration``, ``parent`` (key or None),
        ``initial_model``, ``trained`` (bool) and ``models`` (names registered from it).
    """
    root = _task(key)
    seen = {tuple(root.values())}
    while (parent := _parent(root)) is not None and tuple(parent.values()) not in seen:
        seen.add(tuple(parent.values()))
        root = parent
    rows, frontier = [], [root]
    while frontier:
        node = frontier.pop(0)
        info = (train.TrainingIteration & node).to_dicts()
        rows.append({**node, "iteration": _iteration(node), "parent": _parent(node),
                     "initial_model": info[0]["initial_model"] if info else None,
                     "trained": bool(train.ModelTraining & node), "models": _models_of(node)})
        children = (train.TrainingIteration & {f"parent_{k}": v for k, v in node.items()})
        frontier.extend(_task(c) for c in children.proj().to_dicts())
    return sorted(rows, key=lambda r: (r["iteration"], *(r[k] for k in _TASK_KEY)))


def newest_model(key: dict) -> tuple[str, int] | None:
    """``(model name, iteration)`` of the newest registered model of a lineage, or None."""
    with_models = [r for r in lineage(key) if r["models"]]
    if not with_models:
        return None
    last = with_models[-1]
    return last["models"][0], last["iteration"]


# ------------------------------------------------------- superseded results
def superseded_estimations(restriction: Any = None) -> list[dict]:
    """Estimations made by a model that a later iteration of its lineage replaced.

    Args:
        restriction: Restricts :class:`~element_pose.schemas.model.PoseEstimation`.

    Returns:
        One dict per estimation: its key, ``iteration`` (of its model),
        ``newest_model``, ``newest_iteration``, and ``rerun`` (whether the newest
        model's estimation of the same recording exists).
    """
    from element_pose.db.query import as_restriction

    query = model.PoseEstimation & as_restriction(restriction or {})
    rows = (query.proj() * train.TrainedModel).to_dicts()
    newest: dict[tuple, tuple[str, int] | None] = {}
    out = []
    recording = [k for k in model.PoseEstimation.primary_key if k != "model_name"]
    for row in rows:
        task = _task(row)
        if tuple(task.values()) not in newest:
            newest[tuple(task.values())] = newest_model(task)
        best = newest[tuple(task.values())]
        iteration = _iteration(task)
        if best is None or best[0] == row["model_name"] or best[1] <= iteration:
            continue
        again = {**{k: row[k] for k in recording}, "model_name": best[0]}
        out.append({**{k: row[k] for k in model.PoseEstimation.primary_key},
                    "iteration": iteration, "newest_model": best[0],
                    "newest_iteration": best[1],
                    "rerun": bool(model.PoseEstimation & again)})
    return out


def current_estimations(restriction: Any = None):
    """The estimations to publish: those of ``restriction`` less the ones a newer
    iteration's estimation of the same recording replaced (a query of their keys; pass
    it to :func:`element_pose.ops.dandi_sync.sync` as ``query``)."""
    from element_pose.db.query import as_restriction

    query = model.PoseEstimation & as_restriction(restriction or {})
    if not train.schema.is_activated():  # no training here: nothing is superseded
        return query.proj()
    replaced = [{k: r[k] for k in model.PoseEstimation.primary_key}
                for r in superseded_estimations(restriction) if r["rerun"]]
    return (query - replaced if replaced else query).proj()


def rerun_superseded(restriction: Any = None, *, params: dict | None = None,
                     populate: bool = True) -> list[dict]:
    """Run superseded estimations again with the newest model of their lineage.

    Each gets a trigger-mode :class:`~element_pose.schemas.model.PoseEstimationTask`
    with the newest model (the old task's engine options unless ``params``), then
    ``PoseEstimation.populate`` runs them.

    Returns:
        The new task keys.

    Raises:
        RuntimeError: an estimation failed (its error message; the others are kept).
    """
    tasks = []
    for row in superseded_estimations(restriction):
        if row["rerun"]:
            continue
        old = {k: row[k] for k in model.PoseEstimation.primary_key}
        options = params if params is not None else (
            model.PoseEstimationTask & old).fetch1("pose_estimation_params")
        key = {**old, "model_name": row["newest_model"]}
        tasks.append(model.PoseEstimationTask.insert_estimation_task(
            key, "trigger", params=options, skip_duplicates=True))
    if populate and tasks:
        model.PoseEstimation.populate(tasks, reserve_jobs=True, suppress_errors=True)
        errors = (model.PoseEstimation.jobs.errors & tasks).to_dicts()
        if errors:
            raise RuntimeError(f"{len(errors)} re-run(s) failed: "
                               f"{errors[0].get('error_message', '')}")
    return tasks


def lineage_scores(key: dict) -> Any:
    """The error of every iteration of a lineage, per body part (a DataFrame).

    Columns ``iteration, model_name, body_part ('' = all), split ('train'/'test'),
    rmse`` and, where the evaluation has them, ``pck_2, pck_5, pck_10``.  Rows come
    from the engine-neutral scores of ``ModelEvaluation.Accuracy`` /
    ``BodyPartAccuracy`` when the pipeline has them, else from the engine's own
    ``ModelEvaluation`` RMSE and ``BodyPartError``.
    """
    import pandas as pd

    rows = []
    for node in lineage(key):
        for name in node["models"]:
            rows.extend({"iteration": node["iteration"], "model_name": name, **score}
                        for score in _scores(name))
    columns = ["iteration", "model_name", "body_part", "split", "rmse"]
    return pd.DataFrame(rows, columns=list(dict.fromkeys(
        [*columns, *(k for r in rows for k in r)])))


def _scores(model_name: str) -> list[dict]:
    key = {"model_name": model_name}
    evaluation = model.ModelEvaluation
    accuracy = getattr(evaluation, "Accuracy", None)
    if accuracy is not None and (accuracy & key):
        return _accuracy_rows(evaluation, key)
    rows = []
    for row in (evaluation & key).to_dicts():
        rows += [{"body_part": "", "split": s, "rmse": row[f"{s}_rmse"]}
                 for s in ("train", "test")]
    for row in (evaluation.BodyPartError & key).to_dicts():
        rows += [{"body_part": row["body_part"], "split": s, "rmse": row[f"{s}_error"]}
                 for s in ("train", "test")]
    return rows


def _accuracy_rows(evaluation, key: dict) -> list[dict]:
    """Rows of the engine-neutral accuracy parts (overall and per body part)."""
    skip = set(evaluation.primary_key)
    rows = []
    for table in (evaluation.Accuracy, getattr(evaluation, "BodyPartAccuracy", None)):
        if table is None:
            continue
        for row in (table & key).to_dicts():
            rows.append({"body_part": str(row.get("body_part", "")),
                         **{k: v for k, v in row.items() if k not in skip
                            and k != "body_part"}})
    return rows
