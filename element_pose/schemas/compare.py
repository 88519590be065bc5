"""Compare the models trained on one labelled set, whatever their engine.

Every model's evaluation stores element-pose's own scores
(:class:`~element_pose.schemas.model.ModelEvaluation.Accuracy` and
``.BodyPartAccuracy``): RMSE and PCK on the same held-out frames of the same labelled
set for every engine.  :func:`rank_models` walks from a labelled set
(:class:`~element_pose.schemas.train.VideoSet`) through
:class:`~element_pose.schemas.train.TrainedModel` to the models trained on it and
ranks them; :func:`body_part_scores` gives the same scores per body part.
:func:`element_pose.processing.ranking.plot_model_ranking` draws either.

No tables here: a module of queries over the ``model`` and ``train`` schemas.
"""

from __future__ import annotations

from typing import Any

from element_pose.db.query import as_restriction
from element_pose.schemas import model, train

__all__ = ["METRICS", "SCORE_COLUMNS", "body_part_scores", "rank_models"]

#: Metrics a ranking can sort by, and whether larger is better.
METRICS = {"rmse": False, "pck_2": True, "pck_5": True, "pck_10": True}
#: element-pose's score columns, per split.
SCORE_COLUMNS = ("rmse", "pck_2", "pck_5", "pck_10", "n_labelled", "n_predicted", "n_frames")
_TRAINING_KEY = ("video_set_id", "paramset_idx", "training_id")
_ENGINE_SCORES = ("train_rmse", "test_rmse", "train_map", "test_map")


def _trained(restriction: Any) -> Any:
    """``train.TrainedModel`` restricted to a labelled set id or any restriction."""
    if isinstance(restriction, int) and not isinstance(restriction, bool):
        restriction = {"video_set_id": restriction}
    return train.TrainedModel & as_restriction(restriction)


def _check(split: str, metric: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")


def rank_models(restriction: Any, split: str = "test", metric: str = "rmse") -> Any:
    """The models trained on a labelled set, best first by element-pose's scores.

    Args:
        restriction: A ``video_set_id`` (int), or a restriction of
            :class:`~element_pose.schemas.train.TrainedModel` (a dict such as
            ``{"video_set_id": 0, "paramset_idx": 2}``, a query, a list...).
        split: ``"test"`` (held-out frames) or ``"train"``.
        metric: ``"rmse"`` (lower is better) or ``"pck_2"``, ``"pck_5"``,
            ``"pck_10"`` (higher is better).

    Returns:
        A pandas DataFrame, one row per model, best first: ``rank`` (1 = best),
        ``model_name``, ``engine``, the training key (``video_set_id``,
        ``paramset_idx``, ``training_id``), ``epochs`` and ``evaluated_snapshot``
        (NaN / None when not evaluated), element-pose's scores on ``split``
        (:data:`SCORE_COLUMNS`), and the engine's own figures where it has them
        (``engine_train_rmse``, ``engine_test_rmse``, ``engine_train_map``,
        ``engine_test_map``).  Models without scores (not evaluated yet, or an engine
        that reported no predictions) come last, unranked (``rank`` NaN).

    Raises:
        ValueError: an unknown split or metric.
    """
    import pandas as pd

    _check(split, metric)
    trained = _trained(restriction)
    rows = (trained * model.Model.proj("engine")).to_dicts()
    evaluations = {r["model_name"]: r for r in (model.ModelEvaluation & trained.proj())
                   .to_dicts()}
    scores = {r["model_name"]: r for r in (model.ModelEvaluation.Accuracy & trained.proj()
                                           & {"split": split}).to_dicts()}
    records = []
    for row in rows:
        name = row["model_name"]
        ev, sc = evaluations.get(name, {}), scores.get(name, {})
        records.append({
            "model_name": name, "engine": row["engine"],
            **{k: row[k] for k in _TRAINING_KEY},
            "epochs": ev.get("training_epochs"),
            "evaluated_snapshot": ev.get("evaluated_snapshot"),
            "split": split,
            **{c: sc.get(c) for c in SCORE_COLUMNS},
            **{f"engine_{m}": ev.get(m) for m in _ENGINE_SCORES},
        })
    columns = ["rank", "model_name", "engine", *_TRAINING_KEY, "epochs", "evaluated_snapshot",
               "split", *SCORE_COLUMNS, *(f"engine_{m}" for m in _ENGINE_SCORES)]
    frame = pd.DataFrame.from_records(records, columns=columns[1:])
    for column in (*SCORE_COLUMNS, *(f"engine_{m}" for m in _ENGINE_SCORES)):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.sort_values([metric, "model_name"], ascending=[not METRICS[metric], True],
                              na_position="last", kind="stable").reset_index(drop=True)
    ranked = frame[metric].notna()
    frame.insert(0, "rank", pd.Series(range(1, len(frame) + 1), dtype="Int64")
                 .where(ranked.to_numpy(), pd.NA))
    frame.attrs.update(split=split, metric=metric)
    return frame


def body_part_scores(restriction: Any, split: str = "test") -> Any:
    """element-pose's scores per model and body part on one split.

    Args:
        restriction: As for :func:`rank_models`.
        split: ``"test"`` or ``"train"``.

    Returns:
        A pandas DataFrame with ``model_name``, ``body_part``, ``split`` and
        :data:`SCORE_COLUMNS`, in the models' and body parts' order (body parts in
        each model's output order).

    Raises:
        ValueError: an unknown split.
    """
    import pandas as pd

    _check(split, "rmse")
    trained = _trained(restriction)
    parts = (model.ModelEvaluation.BodyPartAccuracy * model.Model.BodyPart
             & trained.proj() & {"split": split}).to_dicts()
    parts.sort(key=lambda r: (r["model_name"], r["body_part_index"]))
    columns = ["model_name", "body_part", "split", *SCORE_COLUMNS]
    return pd.DataFrame.from_records([{c: r[c] for c in columns} for r in parts],
                                     columns=columns)
