"""Inference (with multi-animal tracking) and labelled videos with DeepLabCut."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.engines.deeplabcut.base import (
    AnalyzedVideo,
    EngineError,
    SnapshotInfo,
    VideoAnalysis,
)
from element_pose.engines.deeplabcut.layout import (
    TRACK_METHODS,
    _dlc_snapshot_index,
    _track_method,
    read_pytorch_config,
    resolve_snapshot,
    scorer_name,
    snapshots,
)
from element_pose.engines.deeplabcut.runtime import (
    _dlc_errors,
    _import_deeplabcut,
    _keep_cwd,
    _link_or_copy,
    _plain,
    select_device,
    versions,
)
from element_pose.io import dlc as dlc_io

__all__ = [
    "infer",
    "label_video",
]

log = logging.getLogger(__name__)


# ==================================================================== infer
def infer(
    config_path: str | Path,
    video_paths: Sequence[str | Path],
    output_dir: str | Path,
    shuffle: int = 1,
    trainingsetindex: int = 0,
    snapshot: SnapshotInfo | str | int | Path | None = None,
    batch_size: int = 8,
    device: str | None = None,
    *,
    save_as_csv: bool = False,
    auto_track: bool = True,
    track_method: str | None = None,
    n_tracks: int | None = None,
    min_tracklet_length: int = 10,
) -> VideoAnalysis:
    """Run ``deeplabcut.analyze_videos`` with one exact snapshot.

    Videos are probed first.  DeepLabCut runs in a fresh temporary folder inside
    ``output_dir`` (so no stale output is reused and nothing half-written is left);
    its files are then moved into ``output_dir``, replacing earlier outputs of the
    same snapshot.  Outputs of other snapshots in ``output_dir`` are left alone and
    never returned: every returned path carries this snapshot's scorer.

    Multi-animal projects (``multianimalproject: true``) are tracked as DeepLabCut's
    ``auto_track`` does: after ``analyze_videos`` (assemblies in
    ``_full.pickle``/``_assemblies.pickle``), ``convert_detections2tracklets`` builds
    tracklets (``_<el|bx|sk>.pickle``) and ``stitch_tracklets`` joins them into one
    track per individual, written as ``<stem><scorer>_<el|bx|sk>.h5`` (columns
    scorer/individuals/bodyparts/coords, individuals named as in the config).  The
    two steps are run here one by one so that a failure names the step, and with
    the track method passed explicitly so DeepLabCut never rewrites ``config.yaml``.
    ``AnalyzedVideo.h5`` is that tracked file; DeepLabCut ends it at the last tracked
    frame, so it is padded with missing rows to the video's frame count.  With
    ``auto_track=False`` no tracking is done and ``AnalyzedVideo.h5`` is the untracked
    ``<stem><scorer>.h5`` (assemblies per frame; identities are not kept across
    frames).

    Args:
        config_path: Project ``config.yaml``.
        video_paths: Videos to analyse (file names must differ).
        output_dir: Folder for the outputs (created).
        shuffle: Shuffle index.
        trainingsetindex: Index into ``TrainingFraction``.
        snapshot: Which snapshot (see :func:`resolve_snapshot`); default the best.
        batch_size: Inference batch size.
        device: Torch device; default CUDA when available, else CPU.
        save_as_csv: Also write DeepLabCut's ``.csv``.
        auto_track: Multi-animal only: track identities across frames.
        track_method: Multi-animal only: ``ellipse``, ``box`` or ``skeleton``; default
            the config's ``default_track_method``, else ``ellipse`` (``box`` when the
            project has a single multi-animal body part, as DeepLabCut requires).
        n_tracks: Multi-animal only: number of tracks to stitch; default the number of
            individuals in the config.
        min_tracklet_length: Multi-animal only: tracklets shorter than this (frames)
            are only attached to tracks afterwards (``stitch_tracklets(min_length=)``;
            at least 3).

    Raises:
        EngineError: a video that cannot be opened, a missing snapshot, bad tracking
            options, a failure inside DeepLabCut, or (multi-animal) tracking that
            produced no tracks.
    """
    config_path = Path(config_path).resolve()
    videos = _videos_to_analyse(video_paths)
    try:
        cfg = dlc_io.read_config(config_path)
    except dlc_io.DLCFormatError as exc:
        raise EngineError(str(exc)) from exc
    tracking = _tracking_options(cfg, auto_track, track_method, n_tracks, min_tracklet_length)
    infos = _probe_videos(videos)
    snap = resolve_snapshot(config_path, shuffle, trainingsetindex, snapshot, cfg=cfg)
    index = _dlc_snapshot_index(snapshots(config_path, shuffle, trainingsetindex, cfg=cfg), snap)
    pt = read_pytorch_config(config_path, shuffle, trainingsetindex, cfg=cfg)
    metadata = pt.get("metadata") or {}
    bodyparts = [*(metadata.get("bodyparts") or []), *(metadata.get("unique_bodyparts") or [])]
    expected_scorer = scorer_name(config_path, shuffle, trainingsetindex, snap, cfg=cfg)
    dev = select_device(device)
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)

    deeplabcut = _import_deeplabcut()
    log.info(
        "analysing %d video(s) with %s on %s (batch %d) into %s",
        len(videos),
        snap.path,
        dev,
        batch_size,
        output_dir,
    )
    multi_kwargs: dict[str, Any] = {}
    if tracking is not None:
        # Tracking is run below, step by step; without it, keep the untracked table.
        multi_kwargs = {"auto_track": False, "save_as_df": not tracking["auto_track"]}
    with tempfile.TemporaryDirectory(prefix=".infer-", dir=output_dir) as tmp:
        tmp_dir = Path(tmp)
        t0 = time.perf_counter()
        what = f"analysing {[v.name for v in videos]} with {snap.path}"
        with _dlc_errors(what, t0=t0), _keep_cwd():
            scorer = deeplabcut.analyze_videos(
                str(config_path),
                [str(v) for v in videos],
                shuffle=shuffle,
                trainingsetindex=trainingsetindex,
                snapshot_index=index,
                device=dev,
                destfolder=str(tmp_dir),
                batch_size=int(batch_size),
                save_as_csv=save_as_csv,
                overwrite=True,
                **multi_kwargs,
            )
        run_time = time.perf_counter() - t0
        scorer = str(scorer)
        if f"snapshot_{snap.uid}" not in scorer:
            raise EngineError(
                f"DeepLabCut analysed with scorer {scorer}, not the requested snapshot "
                f"{snap.name} (expected {expected_scorer})"
            )
        tracked = tracking is not None and tracking["auto_track"]
        tracking_time = 0.0
        if tracked:
            t1 = time.perf_counter()
            track_options = {k: v for k, v in tracking.items() if k != "auto_track"}
            for video, info in zip(videos, infos, strict=True):
                _track_video(config_path, video, info.n_frames, tmp_dir, scorer,
                             shuffle=shuffle, trainingsetindex=trainingsetindex,
                             snapshot_index=index, save_as_csv=save_as_csv, **track_options)
            tracking_time = time.perf_counter() - t1
        suffix = f"_{tracking['suffix']}" if tracked else ""
        outputs = [_move_outputs(video, info, tmp_dir, output_dir, video.stem + scorer, suffix)
                   for video, info in zip(videos, infos, strict=True)]
    n_frames = sum(o.n_frames for o in outputs)
    result = VideoAnalysis(
        outputs=outputs,
        scorer=scorer,
        snapshot=snap,
        output_dir=output_dir,
        bodyparts=bodyparts,
        run_time=run_time,
        frames_per_second=n_frames / run_time if run_time > 0 else float("nan"),
        n_frames=n_frames,
        device=dev,
        batch_size=int(batch_size),
        versions=versions(),
        individuals=list(metadata.get("individuals") or []) if tracking is not None else [],
        track_method=(
            tracking["track_method"] if tracking is not None and tracking["auto_track"] else None
        ),
        tracking_time=tracking_time,
    )
    log.info(
        "analysed %d frame(s) in %.1f s (%.1f fps) with scorer %s%s",
        n_frames,
        run_time,
        result.frames_per_second,
        scorer,
        f"; tracked ({result.track_method}) in {tracking_time:.1f} s"
        if result.track_method
        else "",
    )
    return result


def _videos_to_analyse(video_paths: Sequence[str | Path]) -> list[Path]:
    """The videos, resolved; at least one, with distinct names (outputs are named by them)."""
    videos = [Path(v).resolve() for v in video_paths]
    if not videos:
        raise EngineError("no videos given to analyse")
    stems = [v.stem for v in videos]
    if len(set(stems)) != len(stems):
        raise EngineError(f"videos to analyse together must have distinct names: {stems}")
    return videos


def _probe_videos(videos: Sequence[Path]) -> list:
    """Frame count, rate and size of every video (before any inference)."""
    from element_pose.io.video import VideoError, probe_video

    infos = []
    for video in videos:
        try:
            infos.append(probe_video(video))
        except VideoError as exc:
            raise EngineError(f"cannot analyse {video}: {exc}") from exc
    return infos


def _move_outputs(video: Path, info: Any, tmp_dir: Path, output_dir: Path, prefix: str,
                  suffix: str) -> AnalyzedVideo:
    """Move one video's files (named ``<stem><scorer>...``) from the temporary folder
    into ``output_dir``; its pose file is ``<prefix><suffix>.h5`` (tracked: ``_el``...)."""
    written = sorted(p for p in tmp_dir.iterdir() if p.name.startswith(prefix))
    h5_name = f"{prefix}{suffix}.h5"
    if not (tmp_dir / h5_name).is_file():
        raise EngineError(
            f"DeepLabCut wrote no pose output {h5_name} for {video} "
            f"(found {[p.name for p in written]})"
        )
    moved = []
    for src in written:
        dst = output_dir / src.name
        os.replace(src, dst)
        moved.append(dst)
    meta = output_dir / f"{prefix}_meta.pickle"
    full = output_dir / f"{prefix}_full.pickle"
    run_duration = None
    if meta.is_file():
        with contextlib.suppress(dlc_io.DLCFormatError):
            run_duration = _plain(dlc_io.read_dlc_meta(meta).get("run_duration"))
    return AnalyzedVideo(
        video=video,
        h5=output_dir / h5_name,
        meta=meta if meta.is_file() else None,
        full_pickle=full if full.is_file() else None,
        files=moved,
        n_frames=info.n_frames,
        fps=info.fps,
        width=info.width,
        height=info.height,
        run_duration=run_duration,
    )


def _tracking_options(
    cfg: Mapping[str, Any],
    auto_track: bool,
    track_method: str | None,
    n_tracks: int | None,
    min_tracklet_length: int,
) -> dict[str, Any] | None:
    """Validated tracking options for a multi-animal project; ``None`` for single-animal.

    ``cfg`` comes from :func:`element_pose.io.dlc.read_config`, which checked its
    multi-animal keys (individuals, body parts).
    """
    if not dlc_io.is_multi_animal(cfg):
        return None
    individuals = dlc_io.config_individuals(cfg)
    animals = [i for i in individuals if i != dlc_io.UNIQUE_INDIVIDUAL]
    method = _track_method(cfg, track_method)
    tracks = len(animals) if n_tracks is None else int(n_tracks)
    if tracks < 1:
        raise EngineError(f"n_tracks must be at least 1, got {n_tracks}")
    if int(min_tracklet_length) < 3:
        raise EngineError(
            f"min_tracklet_length must be at least 3 (DeepLabCut), got {min_tracklet_length}"
        )
    return {
        "auto_track": bool(auto_track),
        "track_method": method,
        "suffix": TRACK_METHODS[method],
        "n_tracks": tracks,
        "min_tracklet_length": int(min_tracklet_length),
    }


def _track_video(
    config_path: Path,
    video: Path,
    n_frames: int,
    folder: Path,
    scorer: str,
    *,
    shuffle: int,
    trainingsetindex: int,
    snapshot_index: int,
    save_as_csv: bool,
    track_method: str,
    suffix: str,
    n_tracks: int,
    min_tracklet_length: int,
) -> Path:
    """Track one analysed multi-animal video in ``folder``; return the tracked ``.h5``.

    Runs what ``analyze_videos(auto_track=True)`` runs, step by step, with the
    PyTorch functions it calls (``deeplabcut.convert_detections2tracklets`` would
    drop ``snapshot_index`` and look for the outputs of the config's snapshot).

    Raises:
        EngineError: naming the step that failed, or saying that no track came out.
    """
    from deeplabcut.pose_estimation_pytorch.apis.tracklets import (
        convert_detections2tracklets,
    )
    from deeplabcut.refine_training_dataset.stitch import stitch_tracklets

    prefix = video.stem + scorer
    tracklets = folder / f"{prefix}_{suffix}.pickle"
    tracked = folder / f"{prefix}_{suffix}.h5"
    common = {
        "shuffle": shuffle,
        "trainingsetindex": trainingsetindex,
        "destfolder": str(folder),
        "track_method": track_method,
        "snapshot_index": snapshot_index,
    }
    log.info("tracking %s (%s tracker, %d tracks)", video.name, track_method, n_tracks)
    t0 = time.perf_counter()
    what = f"building {track_method} tracklets for {video.name}"
    with _dlc_errors(what, t0=t0), _keep_cwd(), _kalman_filter_fix():
        convert_detections2tracklets(str(config_path), str(video), overwrite=True, **common)
    if not tracklets.is_file():
        raise EngineError(f"DeepLabCut wrote no tracklets {tracklets.name} for {video}")
    try:
        with _keep_cwd():
            stitch_tracklets(
                str(config_path),
                [str(video)],
                n_tracks=n_tracks,
                min_length=min_tracklet_length,
                save_as_csv=save_as_csv,
                **common,
            )
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        hint = ""
        if "Tracklets are empty" in str(exc):
            hint = (
                f" (no animal was tracked for {min_tracklet_length} or more frames in a row: "
                "(an undertrained model, a video shorter than min_tracklet_length, or "
                "a pcutoff in the shuffle's test/inference_cfg.yaml that is too high); "
                "infer with auto_track=False to get the untracked detections)"
            )
            if track_method == "box":
                hint += (
                    "; the box tracker matches boxes of consecutive frames whose overlap "
                    "reaches iou_threshold, boxes widened by boundingboxslack (both in "
                    "test/inference_cfg.yaml; slack 0 by default): small or fast animals "
                    "need a larger boundingboxslack, or the ellipse tracker"
                )
        raise EngineError(
            f"DeepLabCut failed stitching the tracklets of {video.name} into {n_tracks} "
            f"track(s) after {time.perf_counter() - t0:.1f} s: {type(exc).__name__}: {exc}"
            f"{hint}"
        ) from exc
    if not tracked.is_file():
        raise EngineError(
            f"DeepLabCut stitched no tracks for {video} (no {tracked.name}; "
            f"found {sorted(p.name for p in folder.iterdir() if p.name.startswith(prefix))})"
        )
    _pad_tracks(tracked, n_frames)
    return tracked


@contextlib.contextmanager
def _kalman_filter_fix() -> Iterator[None]:
    """Give DeepLabCut's Kalman trackers a correct measurement matrix, if filterpy does not.

    DeepLabCut's ``ellipse`` and ``skeleton`` trackers build their filters with
    ``filterpy.common.kinematic_kf(dim, 1, dim_z=..., order_by_dim=False)`` and rely on
    filterpy 1.x, which measures the ``dim`` positions (``H`` = identity on them).
    filterpy 2.0.0 fills each row of ``H`` with ones instead, so every update mixes
    all coordinates, the tracks diverge after one frame and no tracklet is longer
    than a frame or two ("Tracklets are empty").  When the installed filterpy
    behaves so, DeepLabCut's reference is replaced by a 1.x-compatible builder for
    the duration of the block (pinning ``filterpy<2`` makes this a no-op).
    """
    from deeplabcut.core import trackingutils

    original = trackingutils.kinematic_kf
    probe = original(2, 1, dim_z=2, order_by_dim=False)
    if np.array_equal(probe.H, np.eye(2, 4)):
        yield
        return

    def kinematic_kf(dim, order, dt=1.0, dim_z=1, order_by_dim=True, kf=None):
        # filterpy 1.4.5: one measurement per dimension, of that dimension's position.
        out = original(dim, order, dt=dt, dim_z=dim, order_by_dim=order_by_dim)
        out.H[:] = 0.0
        for i in range(dim):
            out.H[i, i * (order + 1) if order_by_dim else i] = 1.0
        return out

    log.warning(
        "the installed filterpy builds a wrong Kalman measurement matrix "
        "(kinematic_kf, filterpy 2.x); using a filterpy 1.x-compatible one for "
        "DeepLabCut's tracker (pin filterpy<2 to avoid this)"
    )
    trackingutils.kinematic_kf = kinematic_kf
    try:
        yield
    finally:
        trackingutils.kinematic_kf = original


def _pad_tracks(h5: Path, n_frames: int) -> None:
    """Give a stitched ``.h5`` one row per video frame (DeepLabCut ends it at the last track).

    Raises:
        EngineError: if the file holds frames beyond the video's end.
    """
    import pandas as pd

    df = pd.read_hdf(h5)
    if len(df) and int(df.index.max()) >= n_frames:
        raise EngineError(
            f"{h5} holds frame {int(df.index.max())}, but the video has {n_frames} frames"
        )
    if len(df) == n_frames and list(df.index) == list(range(n_frames)):
        return
    log.info("padding %s from %d to %d frames (untracked: missing)", h5, len(df), n_frames)
    df = df.reindex(range(n_frames))
    tmp = h5.with_name(h5.name + ".tmp")
    df.to_hdf(tmp, key="tracks", format="table", mode="w")
    tmp.replace(h5)


# ============================================================== label video
def label_video(
    config_path: str | Path,
    video: str | Path,
    output_dir: str | Path,
    shuffle: int = 1,
    trainingsetindex: int = 0,
    snapshot: SnapshotInfo | str | int | Path | None = None,
    pcutoff: float | None = None,
    dotsize: int | None = None,
    colormap: str | None = None,
    draw_skeleton: bool = False,
    trailpoints: int = 0,
    keypoints_only: bool = False,
    output_fps: float | None = None,
    filtered: bool = False,
    *,
    analysis_dir: str | Path | None = None,
    track_method: str | None = None,
) -> Path:
    """Draw a snapshot's predictions on a video with ``deeplabcut.create_labeled_video``.

    The video must have been analysed with the same snapshot (:func:`infer`); its
    outputs are looked up in ``analysis_dir`` (default ``output_dir``).
    DeepLabCut renders in a temporary folder; the finished ``.mp4`` is moved into
    ``output_dir``.

    Args:
        config_path: Project ``config.yaml``.
        video: The analysed video.
        output_dir: Folder for the labelled video.
        shuffle: Shuffle index.
        trainingsetindex: Index into ``TrainingFraction``.
        snapshot: Which snapshot (see :func:`resolve_snapshot`); default the best.
        pcutoff: Hide points below this likelihood; default the config's.
        dotsize: Marker radius; default the config's ``dotsize``.
        colormap: Matplotlib colormap name; default the config's.
        draw_skeleton: Draw the config's skeleton.
        trailpoints: Number of previous positions to draw as a trail.
        keypoints_only: Draw the points on a blank background.
        output_fps: Frame rate of the labelled video; default the source's, exactly
            (a 30.0003 fps source gives a 30.0003 fps video).
        filtered: Use the ``_filtered.h5`` output.
        analysis_dir: Folder holding the ``.h5``/``_meta.pickle`` of ``video``.
        track_method: Multi-animal only: the tracker whose tracks to draw (the
            ``_<el|bx|sk>.h5`` written by :func:`infer`); default as in :func:`infer`.

    Returns:
        The labelled ``.mp4``.

    Raises:
        EngineError: a video that cannot be opened, missing analysis outputs, a
            missing snapshot, or a failure inside DeepLabCut.
    """
    from element_pose.io.video import VideoError, probe_video, set_frame_rate

    config_path = Path(config_path).resolve()
    video = Path(video).resolve()
    try:
        source_info = probe_video(video)
    except VideoError as exc:
        raise EngineError(f"cannot label {video}: {exc}") from exc
    cfg = dlc_io.read_config(config_path)
    snap = resolve_snapshot(config_path, shuffle, trainingsetindex, snapshot, cfg=cfg)
    index = _dlc_snapshot_index(snapshots(config_path, shuffle, trainingsetindex, cfg=cfg), snap)
    scorer = scorer_name(config_path, shuffle, trainingsetindex, snap, cfg=cfg)
    output_dir = Path(output_dir).resolve()
    source_dir = Path(analysis_dir).resolve() if analysis_dir is not None else output_dir
    prefix = video.stem + scorer
    method = _track_method(cfg, track_method) if dlc_io.is_multi_animal(cfg) else ""
    stem = f"{prefix}_{TRACK_METHODS[method]}" if method else prefix
    needed = [f"{stem}_filtered.h5" if filtered else f"{stem}.h5", f"{prefix}_meta.pickle"]
    optional = [f"{prefix}_full.pickle"]
    missing = [n for n in needed if not (source_dir / n).is_file()]
    if missing:
        raise EngineError(
            f"cannot label {video.name}: {missing} not found in {source_dir}; run infer with "
            f"snapshot {snap.name} first"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    deeplabcut = _import_deeplabcut()
    with tempfile.TemporaryDirectory(prefix=".label-", dir=output_dir) as tmp:
        tmp_dir = Path(tmp)
        for name in needed + [n for n in optional if (source_dir / n).is_file()]:
            _link_or_copy(source_dir / name, tmp_dir / name)
        kwargs: dict[str, Any] = {
            "shuffle": shuffle,
            "trainingsetindex": trainingsetindex,
            "filtered": filtered,
            "keypoints_only": keypoints_only,
            "draw_skeleton": draw_skeleton,
            "trailpoints": int(trailpoints),
            "destfolder": str(tmp_dir),
            "overwrite": True,
            "snapshot_index": index,
            "pcutoff": pcutoff,
            "dotsize": int(dotsize if dotsize is not None else cfg.get("dotsize", 8)),
            "colormap": colormap or cfg.get("colormap", "rainbow"),
            "max_workers": 1,
        }
        if method:
            kwargs["track_method"] = method
        if output_fps is not None:
            kwargs["outputframerate"] = output_fps
        log.info("labelling %s with %s", video, snap.name)
        t0 = time.perf_counter()
        with _dlc_errors(f"labelling {video} with {snap.path}", t0=t0), _keep_cwd():
            deeplabcut.create_labeled_video(str(config_path), [str(video)], **kwargs)
        made = sorted(tmp_dir.glob(f"{prefix}*labeled.mp4"))
        if not made or made[0].stat().st_size == 0:
            raise EngineError(
                f"DeepLabCut wrote no labelled video for {video} into {tmp_dir} "
                f"(found {sorted(p.name for p in tmp_dir.iterdir())})"
            )
        # OpenCV's writer rounds the rate (30.0003 -> 30): re-time to the exact one
        fps = float(output_fps) if output_fps is not None else source_info.fps
        try:
            if abs(probe_video(made[0]).fps - fps) > 1e-9 * fps:
                set_frame_rate(made[0], fps)
        except VideoError as exc:
            raise EngineError(f"cannot set the frame rate of {made[0]}: {exc}") from exc
        target = output_dir / made[0].name
        os.replace(made[0], target)
    log.info("labelled video %s written in %.1f s", target, time.perf_counter() - t0)
    return target
