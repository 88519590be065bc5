"""Labelled videos of SLEAP predictions, drawn by sleap-io's renderer.

:func:`label_video` draws a video's ``.slp`` predictions (as :func:`~element_pose.
engines.sleap.infer.infer` writes them, or as SLEAP names them) with
:func:`sleap_io.render_video`, mapping ``LabeledVideoParamSet``'s DeepLabCut-named
options to sleap-io's: ``pcutoff`` hides points whose score is below it, ``dotsize``
is the marker radius, ``colormap`` a sleap-io palette (``rainbow``, ``viridis``,
``tableau10``...; others fall back to ``standard``), ``draw_skeleton`` the edges,
``trailpoints`` the trail length, ``keypoints_only`` a black background,
``output_fps`` the frame rate.  Every frame of the video is drawn.  The video is
written as ``<stem>.predictions_labeled.mp4`` through a temporary folder, so nothing
half-written is left.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import typing
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.engines.base import EngineError, ModelDescription

__all__ = ["label_video", "labeled_name"]

log = logging.getLogger(__name__)


def labeled_name(video: str | Path) -> str:
    """The labelled video of a video: ``<stem>.predictions_labeled.mp4``."""
    return f"{Path(video).stem}.predictions_labeled.mp4"


def _predictions(video: Path, analysis_dir: Path) -> Path:
    names = [f"{video.stem}.predictions.slp", f"{video.name}.predictions.slp",
             f"{video.stem}.slp"]
    for name in names:
        if (analysis_dir / name).is_file():
            return analysis_dir / name
    raise EngineError(f"no SLEAP predictions of {video.name} in {analysis_dir} (looked for "
                      f"{names}); run inference first")


def _palette(colormap: str | None) -> str:
    from sleap_io.rendering.colors import PaletteName

    known = typing.get_args(PaletteName)
    if colormap in (None, "") or colormap in known:
        return colormap or "standard"
    log.info("colormap %r is no sleap-io palette %s: using 'standard'", colormap, known)
    return "standard"


def _hide_below(labels: Any, pcutoff: float) -> None:
    """Hide (NaN) predicted points whose score is below ``pcutoff``."""
    for frame in labels.labeled_frames:
        for inst in frame.predicted_instances:
            low = np.asarray(inst.points["score"]) < pcutoff
            inst.points["xy"][low] = np.nan
            inst.points["visible"][low] = False


def label_video(model: ModelDescription, video: str | Path, output_dir: str | Path, *,
                analysis_dir: str | Path | None = None, pcutoff: float | None = None,
                dotsize: int | None = None, colormap: str | None = None,
                draw_skeleton: bool = False, trailpoints: int = 0,
                keypoints_only: bool = False, output_fps: float | None = None,
                filtered: bool = False) -> Path:
    """Draw a video's SLEAP predictions; the labelled video's path.

    Args:
        model: The model (unused beyond naming it in messages; the ``.slp`` carries
            its skeleton).
        video: The video that was predicted.
        output_dir: Folder for the labelled video (created).
        analysis_dir: Folder holding the predictions (default: ``output_dir``).
        pcutoff: Hide points whose score is below this.
        dotsize: Marker radius in pixels (default 4).
        colormap: A sleap-io palette name.
        draw_skeleton: Draw the skeleton's edges.
        trailpoints: Previous positions drawn as a trail (0: none).
        keypoints_only: Draw on black instead of the video.
        output_fps: Frame rate of the labelled video (default: the video's).
        filtered: Not supported (SLEAP writes no filtered predictions).

    Raises:
        EngineError: ``filtered``, no predictions of the video, or a failure of the
            renderer (named).
    """
    import sleap_io as sio

    from element_pose.io.video import VideoError, probe_video

    if filtered:
        raise EngineError("SLEAP writes no filtered predictions: draw the filtered poses "
                          "another way, or set filtered to false")
    video = Path(video)
    output_dir = Path(output_dir)
    source = _predictions(video, Path(analysis_dir) if analysis_dir else output_dir)
    try:
        info = probe_video(video)
    except VideoError as exc:
        raise EngineError(f"cannot draw on {video}: {exc}") from exc
    labels = sio.load_slp(str(source), open_videos=False)
    labels.replace_filenames(new_filenames=[str(video)])
    if pcutoff is not None:
        _hide_below(labels, float(pcutoff))
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / labeled_name(video)
    log.info("labelling %s with %s (%s)", video, source.name, model.source)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".sleap-label-", dir=output_dir) as tmp:
        made = Path(tmp) / target.name
        try:
            sio.render_video(
                labels, str(made), include_unlabeled=True, show_progress=False,
                marker_size=float(dotsize or 4), palette=_palette(colormap),
                color_by="track" if labels.tracks else "node", show_edges=bool(draw_skeleton),
                show_trails=int(trailpoints) > 0, trail_length=max(1, int(trailpoints)),
                background="black" if keypoints_only else "video",
                fps=float(output_fps or info.fps))
        except Exception as exc:  # sleap-io/skia/ffmpeg raise many types
            raise EngineError(f"sleap-io could not draw {source} on {video}: "
                              f"{type(exc).__name__}: {exc}") from exc
        os.replace(made, target)
    log.info("labelled video %s written in %.1f s", target, time.perf_counter() - t0)
    return target
