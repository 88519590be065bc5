"""Training parameters, labelled-data checks, and preparing a training project.

Size: the training parameters and the project copy they are written into change
together (~670 lines); splitting them would scatter one concern over two modules.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from element_pose.engines.deeplabcut.base import (
    PREPARED_MARKER,
    RANDOM_INIT_NAME,
    EngineError,
)
from element_pose.engines.deeplabcut.layout import (
    _track_method,
    _train_fraction,
    check_video_sets,
    pytorch_config_path,
    read_pytorch_config,
)
from element_pose.engines.deeplabcut.normalise import normalise_project_config
from element_pose.engines.deeplabcut.runtime import (
    _dlc_errors,
    _import_deeplabcut,
    _keep_cwd,
    _opt_int,
    _round_up,
    _set_nested,
    _write_yaml,
)
from element_pose.engines.deeplabcut.split import held_out_split
from element_pose.io import dlc as dlc_io

__all__ = [
    "TRAINING_DEFAULTS",
    "LabeledDataSummary",
    "patch_pytorch_config",
    "prepare_training_project",
    "training_params",
    "validate_labeled_data",
]

log = logging.getLogger(__name__)


# ============================================================== parameters
#: Training parameters accepted by :func:`prepare_training_project` and :func:`train`,
#: with their defaults (``None`` keeps DeepLabCut's value).
TRAINING_DEFAULTS: dict[str, Any] = {
    # dataset / shuffle
    "shuffle": 1,
    "trainingsetindex": 0,
    "train_fraction": None,
    "net_type": None,
    "augmenter_type": None,
    "train_indices": None,
    "test_indices": None,
    # pytorch_config.yaml
    "epochs": None,
    "batch_size": None,
    "save_epochs": None,
    "max_snapshots": None,
    "eval_interval": None,
    "key_metric": None,
    "key_metric_asc": None,
    "display_iters": None,
    "learning_rate": None,
    "optimizer": None,
    "scheduler": None,
    "crop_size": "auto",
    "augmentation": None,
    "seed": None,
    "dataloader_workers": None,
    "device": None,
    "weight_init": "pretrained",
    "pytorch_config_updates": None,
    # project config.yaml
    "pcutoff": None,
    "copy_videos": False,
    "track_method": None,
}


def training_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return the full training parameter dict: defaults updated with ``params``.

    Raises:
        EngineError: naming any key that is not in :data:`TRAINING_DEFAULTS`.
    """
    params = dict(params or {})
    unknown = sorted(set(params) - set(TRAINING_DEFAULTS))
    if unknown:
        raise EngineError(
            f"unknown DeepLabCut training parameters {unknown}; "
            f"accepted: {sorted(TRAINING_DEFAULTS)}"
        )
    out = {**TRAINING_DEFAULTS, **params}
    _weight_init_spec(out["weight_init"])  # validate early
    return out


# ============================================================ labelled data
@dataclasses.dataclass
class LabeledDataSummary:
    """What :func:`validate_labeled_data` found.

    Attributes:
        files: The ``CollectedData_<scorer>.h5`` files checked.
        n_images: Labelled images (rows with at least one labelled point).
        bodyparts: Body parts labelled.
        frame_size: ``(width, height)`` of the largest labelled image.
        individuals: Individuals of a multi-animal project, as in the config (plus
            ``single`` when it has unique body parts); empty for single-animal ones.
    """

    files: list[Path]
    n_images: int
    bodyparts: list[str]
    frame_size: tuple[int, int]
    individuals: list[str] = dataclasses.field(default_factory=list)

    @property
    def multi_animal(self) -> bool:
        """Whether the project is a multi-animal (maDLC) project."""
        return bool(self.individuals)


def read_project_config(config_path: str | Path) -> dict:
    """The validated project ``config.yaml``; a bad one raises :class:`EngineError`."""
    try:
        return dlc_io.read_config(config_path)
    except dlc_io.DLCFormatError as exc:
        raise EngineError(str(exc)) from exc


def validate_labeled_data(config_path: str | Path, cfg: dict | None = None
                          ) -> LabeledDataSummary:
    """Check a project's labelled frames against its ``config.yaml`` before training.

    For every video in ``video_sets`` with a ``labeled-data/<stem>`` folder, the
    ``CollectedData_<scorer>.h5`` must exist, use the config's scorer, label
    exactly the config's body parts and point at images that exist.  Labels of a
    multi-animal project (``multianimalproject: true``) must have an ``individuals``
    column level naming only the config's ``individuals`` (and ``single`` for
    ``uniquebodyparts``); a single-animal project must not.

    Args:
        config_path: The project's ``config.yaml``.
        cfg: Its contents when the caller has read them (:func:`read_project_config`).

    Raises:
        EngineError: naming the file and the body parts, images or scorer at fault,
            or saying that there are no labelled frames at all.
    """
    config_path = Path(config_path)
    if cfg is None:
        cfg = read_project_config(config_path)
    root = config_path.resolve().parent
    expected = dlc_io.config_bodyparts(cfg)
    # read_config checked the multi-animal keys (individuals, body parts)
    individuals = dlc_io.config_individuals(cfg) if dlc_io.is_multi_animal(cfg) else []
    videos = list((cfg.get("video_sets") or {}).keys())
    if not videos:
        raise EngineError(f"{config_path} lists no videos (video_sets); no labelled data")

    files: list[Path] = []
    n_images = 0
    frame_size = (0, 0)
    for video in videos:
        folder = root / "labeled-data" / Path(video).stem
        if not folder.is_dir():
            log.info("no labelled frames for video %s (no folder %s)", video, folder)
            continue
        h5, n, size = _check_labelled_folder(folder, config_path, cfg, individuals)
        files.append(h5)
        n_images += n
        frame_size = frame_size if frame_size[0] else size
    if not files:
        found, expected_folders = check_video_sets(config_path)
        raise EngineError(
            f"no labelled data for {config_path}: none of the videos of its video_sets has "
            f"a labeled-data folder (expected folders {expected_folders}, found {found})"
        )
    if n_images == 0:
        raise EngineError(
            f"the labelled data of {config_path} are empty: {[str(f) for f in files]}"
        )
    return LabeledDataSummary(
        files=files,
        n_images=n_images,
        bodyparts=expected,
        frame_size=frame_size,
        individuals=individuals,
    )


def _check_labelled_folder(folder: Path, config_path: Path, cfg: dict,
                           individuals: Sequence[str]) -> tuple[Path, int, tuple[int, int]]:
    """Check one ``labeled-data/<video>`` folder: its file, scorer, individuals, body
    parts and images.

    Returns:
        The ``CollectedData`` file, its labelled images and the first one's size.
    """
    from element_pose.io.dlc_labels import read_labeled_data

    scorer = cfg["scorer"]
    h5 = folder / f"CollectedData_{scorer}.h5"
    if not h5.is_file():
        others = sorted(p.name for p in folder.glob("CollectedData_*.h5"))
        raise EngineError(
            f"labelled frames in {folder} have no {h5.name}"
            + (f" (found {others}: labelled by another scorer?)" if others else "")
        )
    try:
        labels = read_labeled_data(h5)
    except dlc_io.DLCFormatError as exc:
        raise EngineError(str(exc)) from exc
    if labels.scorers != [scorer]:
        raise EngineError(f"{h5} is labelled by {labels.scorers}, but {config_path} names "
                          f"{scorer!r}")
    _check_labelled_individuals(labels.table, h5, config_path, individuals,
                                dlc_io.is_multi_animal(cfg))
    _check_labelled_bodyparts(labels.bodyparts, dlc_io.config_bodyparts(cfg), h5, config_path)
    rows = labels.labelled_rows()
    size = _check_labelled_images(labels, rows, config_path.resolve().parent, h5)
    return h5, int(rows.sum()), size


def _check_labelled_bodyparts(labelled: Sequence[str], expected: Sequence[str], h5: Path,
                              config_path: Path) -> None:
    """The labelled body parts are exactly the config's."""
    extra = [b for b in labelled if b not in expected]
    missing = [b for b in expected if b not in labelled]
    if extra or missing:
        raise EngineError(
            f"labelled data {h5} do not match the body parts of {config_path}: "
            + (f"body parts {extra} are missing from the config" if extra else "")
            + ("; " if extra and missing else "")
            + (f"config body parts {missing} are not labelled" if missing else "")
        )


def _check_labelled_images(labels: Any, rows: Any, root: Path, h5: Path) -> tuple[int, int]:
    """Every labelled row's image exists; the ``(width, height)`` of the first one."""
    from PIL import Image

    images = [root.joinpath(*parts)
              for parts, labelled in zip(labels.image_parts(), rows, strict=True) if labelled]
    missing = [str(image) for image in images if not image.is_file()]
    if missing:
        raise EngineError(f"{h5} refers to {len(missing)} missing image(s), e.g. {missing[:3]}")
    if not images:
        return (0, 0)
    with Image.open(images[0]) as im:
        return im.size


def _check_labelled_individuals(
    df: Any, h5: Path, config_path: Path, individuals: Sequence[str], multi: bool
) -> None:
    """Check the ``individuals`` level of labelled data against the project kind."""
    levels = list(df.columns.names)
    if multi and "individuals" not in levels:
        raise EngineError(
            f"{config_path} is a multi-animal project (multianimalproject: true), but the "
            f"labelled data {h5} have no 'individuals' column level (columns {levels}): "
            "they were labelled in a single-animal project"
        )
    if not multi and "individuals" in levels:
        raise EngineError(
            f"labelled data {h5} are multi-animal (columns {levels}), but {config_path} is a "
            "single-animal project: set multianimalproject: true with individuals and "
            "multianimalbodyparts"
        )
    if multi:
        labelled = list(dict.fromkeys(df.columns.get_level_values("individuals")))
        extra = [i for i in labelled if i not in individuals]
        if extra:
            raise EngineError(
                f"labelled data {h5} name individuals {extra} that are not in the "
                f"individuals {list(individuals)} of {config_path}"
            )


# ======================================================= preparing a project
def prepare_training_project(
    source_config: str | Path,
    workdir: str | Path,
    params: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
    train_only: Iterable[str] = (),
) -> Path:
    """Copy a labelled project into a work directory and create a training shuffle.

    The user's project is never modified: ``config.yaml`` and ``labeled-data/``
    (and ``videos/`` with ``copy_videos``) are copied into ``workdir``, the copy's
    config is updated (``project_path``, ``TrainingFraction``, ``default_net_type``,
    ``pcutoff``; ``default_track_method`` for multi-animal projects: the
    ``track_method`` parameter, else the config's, else ``ellipse``),
    ``deeplabcut.create_training_dataset`` makes the shuffle with the PyTorch engine,
    and the shuffle's ``pytorch_config.yaml`` is patched with the training
    parameters (see :func:`patch_pytorch_config`).

    Multi-animal projects (``multianimalproject: true``, labels with an
    ``individuals`` level) get a bottom-up model: a backbone net type
    (``cspnext_s``, ``resnet_50``, ``hrnet_w32``, ...) gets DeepLabCut's heatmap +
    part-affinity-field head, and ``dlcrnet_stride32_ms5`` / ``dekr_w18`` are
    multi-animal architectures.  Top-down net types (``top_down_*``, ``rtmpose_*``)
    also need an object detector, which ``weight_init="random"`` cannot provide.

    The shuffle holds out element-pose's test frames
    (:func:`element_pose.core.labels.held_out` of the labelled frame ids, a fraction
    ``1 - train_fraction``, default ``1 -`` the config's ``TrainingFraction``), the
    same frames every engine holds out, unless ``train_indices`` and
    ``test_indices`` are given; the copy's ``TrainingFraction`` becomes the fraction
    of that split (as DeepLabCut names the shuffle after it).

    On any error the half-made ``workdir`` is removed.

    Args:
        source_config: The user's project ``config.yaml``.
        workdir: Folder to create (must not exist, or be empty; with ``overwrite``, a
            folder made earlier by this function is replaced).
        params: Training parameters (keys of :data:`TRAINING_DEFAULTS`).
        overwrite: Replace a ``workdir`` previously prepared by this function.
        train_only: Frame ids (``labeled-data/<video>/<image>``) never held out, e.g.
            frames a refinement iteration added.

    Returns:
        The ``config.yaml`` inside ``workdir``.

    Raises:
        EngineError: bad parameters, labelled data that do not match the config, an
            occupied ``workdir``, or a failure inside DeepLabCut.
    """
    p = training_params(params)
    source_config = Path(source_config)
    cfg = read_project_config(source_config)
    summary = validate_labeled_data(source_config, cfg)
    source_root = source_config.resolve().parent
    workdir = Path(workdir).resolve()

    _claim_workdir(workdir, source_root, overwrite)
    _held_out_indices(source_config, cfg, p, train_only)
    _set_training_fraction(cfg, p, source_config)

    workdir.mkdir(parents=True, exist_ok=True)
    try:
        config_path = _write_work_project(cfg, p, source_root, workdir, summary)
        _create_training_dataset(config_path, p)
        patch_pytorch_config(config_path, p, frame_size=summary.frame_size)
        (workdir / PREPARED_MARKER).write_text(f"prepared from {source_config.resolve()}\n")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    log.info(
        "prepared DeepLabCut training project %s (shuffle %d, %d labelled images, %s)",
        workdir,
        int(p["shuffle"]),
        summary.n_images,
        p["net_type"] or cfg.get("default_net_type"),
    )
    return config_path


def _claim_workdir(workdir: Path, source_root: Path, overwrite: bool) -> None:
    """Refuse the user's project or an occupied folder; clear one prepared earlier."""
    if workdir == source_root:
        raise EngineError(f"work directory {workdir} is the user's project itself")
    if workdir.exists() and any(workdir.iterdir()):
        if overwrite and (workdir / PREPARED_MARKER).is_file():
            shutil.rmtree(workdir)
        else:
            raise EngineError(
                f"work directory {workdir} is not empty"
                + ("" if overwrite else "; pass overwrite=True to replace a prepared one")
            )


def _held_out_indices(source_config: Path, cfg: dict, p: dict[str, Any],
                      train_only: Iterable[str]) -> None:
    """Put element-pose's held-out split into ``p`` (unless it names its own split).

    The fraction held out is ``1 - train_fraction`` (default the config's
    ``TrainingFraction``); the split's own fraction then replaces ``train_fraction``.
    """
    if p["train_indices"] is not None or p["test_indices"] is not None:
        return
    tsi = int(p["trainingsetindex"])
    frac = (float(p["train_fraction"]) if p["train_fraction"] is not None
            else _train_fraction(cfg, tsi, source_config))
    if not 0 < frac <= 1:
        raise EngineError(f"train_fraction must be in (0, 1], got {frac}")
    train, test = held_out_split(source_config, 1.0 - frac, train_only, cfg)
    log.info("held out %d of %d labelled frames (element-pose's split)", len(test),
             len(train) + len(test))
    p["train_indices"], p["test_indices"], p["train_fraction"] = train, test, None


def _set_training_fraction(cfg: dict, p: dict[str, Any], source_config: Path) -> None:
    """Put the training fraction of the parameters (or of a given split) into ``cfg``.

    DeepLabCut names the shuffle after the fraction of a given split, rounded to 2
    decimals, whatever ``TrainingFraction`` says: the config is made to agree.
    """
    if p["train_indices"] is not None and p["test_indices"] is not None:
        n_train, n_test = len(p["train_indices"]), len(p["test_indices"])
        split_frac = round(n_train / max(n_train + n_test, 1), 2)
        if p["train_fraction"] is not None and abs(float(p["train_fraction"]) - split_frac) > 0.005:
            raise EngineError(
                f"train_fraction {p['train_fraction']} disagrees with the given split "
                f"({n_train} train / {n_test} test images = {split_frac})"
            )
        p["train_fraction"] = split_frac
    if p["train_fraction"] is None:
        _train_fraction(cfg, int(p["trainingsetindex"]), source_config)
        return
    frac = float(p["train_fraction"])
    if not 0 < frac <= 1:
        raise EngineError(f"train_fraction must be in (0, 1], got {frac}")
    tsi = int(p["trainingsetindex"])
    fractions = list(cfg.get("TrainingFraction") or [])
    if tsi == 0:
        cfg["TrainingFraction"] = [frac]
    elif tsi < len(fractions):
        fractions[tsi] = frac  # the copy's entry at trainingsetindex names this split
        cfg["TrainingFraction"] = fractions
    else:
        raise EngineError(f"trainingsetindex {tsi} is out of range for TrainingFraction "
                          f"{fractions} in {source_config}")


def _write_work_project(cfg: dict, p: Mapping[str, Any], source_root: Path, workdir: Path,
                        summary: LabeledDataSummary) -> Path:
    """Copy the labelled data (and videos) into ``workdir``; write its ``config.yaml``."""
    shutil.copytree(source_root / "labeled-data", workdir / "labeled-data")
    if p["copy_videos"] and (source_root / "videos").is_dir():
        shutil.copytree(source_root / "videos", workdir / "videos")
        cfg["video_sets"] = {
            (
                str(workdir / "videos" / Path(v).name)
                if (source_root / "videos" / Path(v).name).is_file()
                else v
            ): meta
            for v, meta in (cfg.get("video_sets") or {}).items()
        }
    cfg["project_path"] = str(workdir)
    cfg["engine"] = "pytorch"
    if p["net_type"]:
        cfg["default_net_type"] = p["net_type"]
    if p["pcutoff"] is not None:
        cfg["pcutoff"] = float(p["pcutoff"])
    if summary.multi_animal:
        # Written now so that DeepLabCut never rewrites the config while tracking.
        cfg["default_track_method"] = _track_method(cfg, p["track_method"])
    normalise_project_config(cfg)  # e.g. `multianimalproject:` empty: DLC warns
    return dlc_io.write_config(cfg, workdir / "config.yaml")


def _create_training_dataset(config_path: Path, p: Mapping[str, Any]) -> None:
    deeplabcut = _import_deeplabcut()
    from deeplabcut.core.engine import Engine

    kwargs: dict[str, Any] = {
        "Shuffles": [int(p["shuffle"])],
        "userfeedback": False,
        "engine": Engine.PYTORCH,
    }
    if p["net_type"]:
        kwargs["net_type"] = p["net_type"]
    if p["augmenter_type"]:
        kwargs["augmenter_type"] = p["augmenter_type"]
    if p["train_indices"] is not None or p["test_indices"] is not None:
        if p["train_indices"] is None or p["test_indices"] is None:
            raise EngineError("train_indices and test_indices must be given together")
        kwargs["trainIndices"] = [list(map(int, p["train_indices"]))]
        kwargs["testIndices"] = [list(map(int, p["test_indices"]))]
    cfg = dlc_io.read_config(config_path)
    log.info("creating DeepLabCut training dataset for %s (%s)", config_path, kwargs)
    with _dlc_errors(f"creating the training dataset for {config_path}"), _keep_cwd():
        out = deeplabcut.create_training_dataset(str(config_path), **kwargs)
    pt_cfg = pytorch_config_path(config_path, int(p["shuffle"]), int(p["trainingsetindex"]))
    # Multi-animal projects go through create_multianimaltraining_dataset, which
    # returns None even on success: the shuffle's pytorch_config.yaml is the proof.
    if not pt_cfg.is_file() or (out is None and not dlc_io.is_multi_animal(cfg)):
        raise EngineError(
            f"DeepLabCut did not create a training dataset for {config_path} "
            f"(no {pt_cfg}); check the labelled data"
        )


def patch_pytorch_config(
    config_path: str | Path,
    params: Mapping[str, Any] | None,
    frame_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Apply training parameters to a shuffle's ``pytorch_config.yaml`` (atomically).

    Keys used: ``epochs``, ``batch_size``, ``save_epochs``, ``max_snapshots``,
    ``eval_interval``, ``key_metric`` (what picks the best snapshot, e.g. ``test.mAP``
    or ``test.rmse``), ``key_metric_asc`` (``True`` when larger is better),
    ``display_iters``, ``learning_rate``, ``optimizer`` (a dict
    replacing ``runner.optimizer``), ``scheduler`` (a dict replacing
    ``runner.scheduler``, or ``False`` to remove it), ``crop_size`` (``"auto"``: crop
    to the labelled frame size rounded up to 32 px, but no larger than DeepLabCut's
    default crop (448 px), so small frames are not padded; ``[w, h]``; ``None``: keep),
    ``augmentation`` (dict merged into ``data.train``), ``seed``,
    ``dataloader_workers``, ``device``, ``weight_init`` and ``pytorch_config_updates``
    (``{"dotted.key": value}`` applied last).

    Returns:
        The patched configuration.
    """
    p = training_params(params)
    config_path = Path(config_path)
    shuffle, tsi = int(p["shuffle"]), int(p["trainingsetindex"])
    cfg = dlc_io.read_config(config_path)
    path = pytorch_config_path(config_path, shuffle, tsi, cfg=cfg)
    pt = read_pytorch_config(config_path, shuffle, tsi, cfg=cfg)

    _put_training_settings(pt, p)
    _put_crop(pt, p["crop_size"], frame_size, config_path)
    if p["augmentation"]:
        train = pt.setdefault("data", {}).setdefault("train", {})
        train.update(copy.deepcopy(dict(p["augmentation"])))
    _put_weight_init(pt, _weight_init_spec(p["weight_init"]), path.parent, p["seed"])
    for dotted, value in (p["pytorch_config_updates"] or {}).items():
        _set_nested(pt, dotted, copy.deepcopy(value))
    _write_yaml(pt, path)
    log.info("patched %s", path)
    return pt


def _put_training_settings(pt: dict, p: Mapping[str, Any]) -> None:
    """Training length, snapshots, evaluation, optimiser, scheduler and device."""

    def put(dotted: str, value: Any) -> None:
        if value is not None:
            _set_nested(pt, dotted, value)

    for dotted, key in (("train_settings.epochs", "epochs"),
                        ("train_settings.batch_size", "batch_size"),
                        ("train_settings.display_iters", "display_iters"),
                        ("train_settings.seed", "seed"),
                        ("train_settings.dataloader_workers", "dataloader_workers"),
                        ("runner.snapshots.save_epochs", "save_epochs"),
                        ("runner.snapshots.max_snapshots", "max_snapshots"),
                        ("runner.eval_interval", "eval_interval")):
        put(dotted, _opt_int(p[key]))
    put("runner.key_metric", p["key_metric"])
    if p["key_metric_asc"] is not None:
        put("runner.key_metric_asc", bool(p["key_metric_asc"]))
    if p["optimizer"] is not None:
        pt.setdefault("runner", {})["optimizer"] = copy.deepcopy(dict(p["optimizer"]))
    if p["learning_rate"] is not None:
        put("runner.optimizer.params.lr", float(p["learning_rate"]))
    if p["scheduler"] is False or p["scheduler"] == "none":
        pt.setdefault("runner", {})["scheduler"] = None
    elif p["scheduler"] is not None:
        pt.setdefault("runner", {})["scheduler"] = copy.deepcopy(dict(p["scheduler"]))
    put("device", p["device"])


def _put_crop(pt: dict, crop: Any, frame_size: tuple[int, int] | None,
              config_path: Path) -> None:
    """The training crop: ``"auto"`` (the labelled frame size, rounded up to 32 px, no
    larger than the configured crop), ``[w, h]``, or ``None`` (kept)."""
    if crop == "auto":
        if frame_size is None or not frame_size[0]:
            frame_size = validate_labeled_data(config_path).frame_size
        current = (pt.get("data", {}).get("train", {}) or {}).get("crop_sampling") or {}
        crop = [
            min(_round_up(frame_size[0], 32), int(current.get("width") or 448)),
            min(_round_up(frame_size[1], 32), int(current.get("height") or 448)),
        ]
    if crop is None:
        return
    train = pt.setdefault("data", {}).setdefault("train", {})
    sampling = dict(train.get("crop_sampling") or {})
    sampling.update({"width": int(crop[0]), "height": int(crop[1])})
    sampling.setdefault("max_shift", 0.1)
    sampling.setdefault("method", "hybrid")
    train["crop_sampling"] = sampling


def _put_weight_init(pt: dict, spec: dict[str, Any], train_folder: Path,
                     seed: int | None) -> None:
    """The initial weights: pretrained, random (built here), or a snapshot's."""
    if spec["mode"] == "pretrained":
        pt.setdefault("train_settings", {}).pop("weight_init", None)
        pt.pop("resume_training_from", None)
    elif spec["mode"] == "random":
        if pt.get("detector"):
            raise EngineError(
                f"net type {pt.get('net_type')!r} is a top-down model that needs an object "
                "detector, and weight_init='random' builds only the pose model; use a "
                "bottom-up net type (e.g. cspnext_s, resnet_50, dlcrnet_stride32_ms5, "
                "dekr_w18) or weight_init={'snapshot_path': ..., "
                "'detector_snapshot_path': ...}"
            )
        init = _make_random_init(pt, train_folder / RANDOM_INIT_NAME, seed=seed)
        pt.setdefault("train_settings", {})["weight_init"] = _weight_init_dict(init)
        pt.pop("resume_training_from", None)
    else:
        _put_snapshot_init(pt, spec)


def _put_snapshot_init(pt: dict, spec: dict[str, Any]) -> None:
    """Start from a snapshot: resume it, or take its backbone (and heads)."""
    snap = Path(spec["snapshot_path"]).resolve()
    if not snap.is_file():
        raise EngineError(f"weight_init snapshot {snap} does not exist")
    if spec["resume"]:
        pt.setdefault("train_settings", {}).pop("weight_init", None)
        pt["resume_training_from"] = str(snap)
        return
    conversion = None
    if spec["with_decoder"]:
        n_bodyparts = len(pt.get("metadata", {}).get("bodyparts") or [])
        n_unique = len(pt.get("metadata", {}).get("unique_bodyparts") or [])
        conversion = list(range(n_bodyparts + n_unique))
    pt.setdefault("train_settings", {})["weight_init"] = _weight_init_dict(
        snap,
        with_decoder=spec["with_decoder"],
        conversion_array=conversion,
        detector=spec["detector_snapshot_path"],
    )
    pt.pop("resume_training_from", None)


def _weight_init_spec(value: Any) -> dict[str, Any]:
    """Normalise ``params["weight_init"]``.

    Accepted: ``"pretrained"`` (DeepLabCut's default: ImageNet/hub weights, needs the
    internet), ``"random"`` (a random initialisation built locally, for offline use
    and tests), or a dict ``{"snapshot_path": <.pt>, "with_decoder": False,
    "resume": False, "detector_snapshot_path": None}``: backbone (and neck) weights
    from a local ``.pt`` (``{"model": state_dict}``, e.g. a previous model's
    snapshot); ``with_decoder=True`` also loads the heads (same body parts, same
    order); ``resume=True`` continues training from the snapshot (all weights,
    epoch count continues).
    """
    if value is None or value == "pretrained":
        return {"mode": "pretrained"}
    if value == "random":
        return {"mode": "random"}
    if isinstance(value, str | Path) and str(value).endswith(".pt"):
        value = {"snapshot_path": str(value)}
    if isinstance(value, Mapping):
        unknown = set(value) - {"snapshot_path", "with_decoder", "resume", "detector_snapshot_path"}
        if unknown or not value.get("snapshot_path"):
            raise EngineError(
                f"weight_init dict needs 'snapshot_path' and may have 'with_decoder', "
                f"'resume', 'detector_snapshot_path'; got {dict(value)}"
            )
        return {
            "mode": "snapshot",
            "snapshot_path": str(value["snapshot_path"]),
            "with_decoder": bool(value.get("with_decoder", False)),
            "resume": bool(value.get("resume", False)),
            "detector_snapshot_path": value.get("detector_snapshot_path"),
        }
    raise EngineError(
        f"weight_init must be 'pretrained', 'random' or {{'snapshot_path': ...}}, got {value!r}"
    )


def _weight_init_dict(
    snapshot: Path,
    with_decoder: bool = False,
    conversion_array: list[int] | None = None,
    detector: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "snapshot_path": str(snapshot),
        "detector_snapshot_path": str(detector) if detector else None,
        "with_decoder": bool(with_decoder),
        "memory_replay": False,
    }
    if conversion_array is not None:
        out["conversion_array"] = list(conversion_array)
    return out


def _make_random_init(pt: Mapping[str, Any], path: Path, seed: int | None = None) -> Path:
    """Build the configured pose model with random weights and save ``{"model": state_dict}``."""
    _import_deeplabcut()
    import torch
    from deeplabcut.pose_estimation_pytorch.models import PoseModel

    if seed is not None:
        torch.manual_seed(int(seed))
    model_cfg = copy.deepcopy(pt["model"])
    with _dlc_errors("building a randomly initialised model"):
        model = PoseModel.build(model_cfg, pretrained_backbone=False)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model.state_dict()}, tmp)
    tmp.replace(path)
    log.info("wrote random weight initialisation %s", path)
    return path
