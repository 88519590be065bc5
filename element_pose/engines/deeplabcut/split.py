"""DeepLabCut's train/test split, made from element-pose's held-out frames, and read back.

DeepLabCut names labelled images by their position in the merged labelled data of a
project (``create_training_dataset``'s ``trainIndices`` / ``testIndices``): the rows of
every ``labeled-data/<video>/CollectedData_<scorer>.h5`` of the config's
``video_sets``, concatenated and sorted by image path.  :func:`labelled_frame_ids`
gives the frame ids (image paths relative to the project, ``/``-separated) in that
order, so :func:`held_out_split` can turn :func:`element_pose.core.labels.held_out`
into DeepLabCut's indices: a model trained through element-pose holds out the same
frames as every other engine trained on the set.  :func:`dataset_split` reads the
split a shuffle was trained with back from the training dataset
(``Documentation_data-*.pickle`` and the merged ``CollectedData_<scorer>.h5``), and
:func:`evaluation_predictions` aligns the predictions ``evaluate_network`` wrote on
every labelled image with the project's :class:`~element_pose.core.labels.LabelSet`
and that split.  No DeepLabCut import here.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from element_pose.core.labels import held_out
from element_pose.engines.deeplabcut.base import EngineError
from element_pose.engines.deeplabcut.layout import _train_fraction
from element_pose.io import dlc as dlc_io

__all__ = [
    "dataset_split",
    "evaluation_predictions",
    "held_out_split",
    "labelled_frame_ids",
    "training_set_folder",
]

log = logging.getLogger(__name__)


def _frame_id(index: Any) -> str:
    """A merged-data row's image path as a frame id (``labeled-data/<video>/<image>``)."""
    parts = index if isinstance(index, tuple) else Path(str(index).replace("\\", "/")).parts
    return "/".join(str(p) for p in parts)


def _video_stems(cfg: Mapping[str, Any]) -> list[str]:
    """Video names of ``video_sets``, first occurrence kept (DeepLabCut's
    ``parse_video_filenames``)."""
    return list(dict.fromkeys(Path(str(v).replace("\\", "/")).stem
                              for v in (cfg.get("video_sets") or {})))


def labelled_frame_ids(config_path: str | Path, cfg: Mapping[str, Any] | None = None
                       ) -> list[str]:
    """Frame ids of a project's labelled images, in DeepLabCut's index order.

    Args:
        config_path: The project's ``config.yaml``.
        cfg: Its contents, already read.

    Raises:
        EngineError: none of the ``video_sets`` has labelled frames.
    """
    from element_pose.io.dlc_labels import read_labeled_data

    config_path = Path(config_path)
    cfg = cfg if cfg is not None else dlc_io.read_config(config_path)
    root = config_path.resolve().parent
    rows: list[tuple[str, ...]] = []
    for stem in _video_stems(cfg):
        h5 = root / "labeled-data" / stem / f"CollectedData_{cfg['scorer']}.h5"
        if h5.is_file():
            rows.extend(read_labeled_data(h5).image_parts())
    if not rows:
        raise EngineError(f"no labelled frames in the video_sets of {config_path}")
    return [_frame_id(r) for r in sorted(rows)]


def held_out_split(config_path: str | Path, test_fraction: float,
                   train_only: Iterable[str] = (), cfg: Mapping[str, Any] | None = None
                   ) -> tuple[list[int], list[int]]:
    """DeepLabCut's ``(train indices, test indices)`` of element-pose's held-out frames.

    Args:
        config_path: The project's ``config.yaml``.
        test_fraction: Fraction of frames to hold out (:func:`held_out`).
        train_only: Frame ids never held out (frames a refinement iteration added).
        cfg: The config, already read.

    Raises:
        EngineError: no labelled frames.
    """
    frames = labelled_frame_ids(config_path, cfg)
    test = held_out(frames, test_fraction, train_only=train_only)
    return ([i for i, t in enumerate(test) if not t], [i for i, t in enumerate(test) if t])


def training_set_folder(config_path: str | Path, cfg: Mapping[str, Any] | None = None) -> Path:
    """``training-datasets/iteration-<N>/UnaugmentedDataSet_<Task><date>`` of a project."""
    config_path = Path(config_path)
    cfg = cfg if cfg is not None else dlc_io.read_config(config_path)
    return (config_path.resolve().parent / "training-datasets"
            / f"iteration-{cfg.get('iteration', 0)}"
            / f"UnaugmentedDataSet_{cfg['Task']}{cfg['date']}")


def dataset_split(config_path: str | Path, shuffle: int = 1, trainingsetindex: int = 0,
                  cfg: Mapping[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """``(train frame ids, test frame ids)`` a shuffle's training dataset was made with.

    Raises:
        EngineError: the training dataset's files are missing or do not agree.
    """
    import pandas as pd

    config_path = Path(config_path)
    cfg = cfg if cfg is not None else dlc_io.read_config(config_path)
    folder = training_set_folder(config_path, cfg)
    frac = _train_fraction(cfg, trainingsetindex, config_path)
    doc = folder / f"Documentation_data-{cfg['Task']}_{int(frac * 100)}shuffle{shuffle}.pickle"
    merged = folder / f"CollectedData_{cfg['scorer']}.h5"
    for path in (doc, merged):
        if not path.is_file():
            raise EngineError(f"the training dataset of shuffle {shuffle} of {config_path} "
                              f"has no {path.name} (in {folder})")
    with doc.open("rb") as f:
        documentation = pickle.load(f)
    train_idx, test_idx = documentation[1], documentation[2]
    frames = [_frame_id(i) for i in pd.read_hdf(merged).index]
    try:
        return [frames[int(i)] for i in train_idx], [frames[int(i)] for i in test_idx]
    except IndexError as exc:
        raise EngineError(f"{doc} names images beyond the {len(frames)} rows of "
                          f"{merged}") from exc


def _prediction_array(table: Any, labels: Any) -> Any:
    """``(n_frames, n_individuals, n_keypoints, 3)`` of a predictions table, in the order
    of ``labels.frames`` and ``labels.keypoints`` (NaN where missing).

    Individuals follow the labelled set's names where they match, then the rest in
    column order (matched to the labelled ones per frame when scored).
    """
    import numpy as np

    names = list(table.columns.names)
    cols = [dict(zip(names, c, strict=True)) for c in table.columns]
    found = list(dict.fromkeys(str(c.get("individuals", labels.individuals[0])) for c in cols))
    individuals = ([i for i in labels.individuals if i in found]
                   + [i for i in found if i not in labels.individuals])
    rows = {_frame_id(i): r for r, i in enumerate(table.index)}
    kp = {k: n for n, k in enumerate(labels.keypoints)}
    values = table.to_numpy(dtype=np.float64)
    out = np.full((labels.n_frames, len(individuals), len(labels.keypoints), 3), np.nan)
    where = [rows.get(f) for f in labels.frames]
    present = np.array([w is not None for w in where])
    taken = [w for w in where if w is not None]
    coord = {"x": 0, "y": 1, "likelihood": 2}
    for c, col in enumerate(cols):
        k, j = kp.get(str(col["bodyparts"])), coord.get(str(col["coords"]))
        if k is None or j is None:
            continue
        i = individuals.index(str(col.get("individuals", labels.individuals[0])))
        out[present, i, k, j] = values[taken, c]
    return out


def evaluation_predictions(config_path: str | Path, predictions_h5: str | Path,
                           shuffle: int = 1, trainingsetindex: int = 0,
                           cfg: Mapping[str, Any] | None = None
                           ) -> tuple[Any, Any, list[bool]]:
    """The labelled frames a shuffle was evaluated on, its predictions there, its split.

    Args:
        config_path: The project's ``config.yaml``.
        predictions_h5: The ``<scorer>.h5`` that ``evaluate_network`` wrote (x, y and
            likelihood of every labelled image of the training dataset).
        shuffle: Shuffle index.
        trainingsetindex: Index into ``TrainingFraction``.
        cfg: The config, already read.

    Returns:
        ``(labels, predictions, test)``: the :class:`~element_pose.core.labels.LabelSet`
        of the training dataset's frames (the project's labels, in DeepLabCut's order),
        ``(n_frames, n_individuals, n_keypoints, 3)`` predictions on them, and per
        frame whether the shuffle held it out.

    Raises:
        EngineError: the training dataset or the predictions cannot be read.
        element_pose.io.labels.LabelFormatError: the labelled data cannot be read.
    """
    import pandas as pd

    from element_pose.io.labels import read_label_set

    config_path = Path(config_path)
    cfg = cfg if cfg is not None else dlc_io.read_config(config_path)
    train_ids, test_ids = dataset_split(config_path, shuffle, trainingsetindex, cfg)
    labels = read_label_set(config_path)
    labels = labels.select(sorted({*train_ids, *test_ids}))
    try:
        table = pd.read_hdf(predictions_h5)
    except Exception as exc:
        raise EngineError(f"cannot read the evaluation predictions {predictions_h5}: "
                          f"{exc}") from exc
    held = set(test_ids)
    return labels, _prediction_array(table, labels), [f in held for f in labels.frames]
