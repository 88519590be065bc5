"""Probe and write videos with PyAV (FFmpeg), with no database.

:func:`probe_video` reads the container without decoding frames: size, frame
count, frame rate, duration and, when the container carries them, per-frame
presentation timestamps.  :func:`probe_recording` checks that the files of one
recording agree.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = [
    "RecordingInfo",
    "VideoError",
    "VideoInfo",
    "exact_rate",
    "probe_recording",
    "probe_video",
    "read_frames",
    "set_frame_rate",
    "write_video",
]

log = logging.getLogger(__name__)


class VideoError(ValueError):
    """A video is missing, cannot be opened, or disagrees with its siblings."""


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a video container says about itself.

    Attributes:
        path: The file.
        width: Frame width in pixels.
        height: Frame height in pixels.
        n_frames: Number of video frames (counted from the packets).
        fps: Average frame rate in frames per second.
        duration: ``n_frames / fps`` in seconds.
        timestamps: Per-frame presentation times in seconds, starting at 0, or
            ``None`` when the container has no usable timestamps.
        codec: Codec name.
    """

    path: Path
    width: int
    height: int
    n_frames: int
    fps: float
    duration: float
    timestamps: np.ndarray | None
    codec: str


def probe_video(path: str | Path) -> VideoInfo:
    """Read a video's geometry, frame count, rate and timestamps.

    Raises:
        VideoError: if the file is missing, not a video, or has no frames.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path} has no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            time_base = stream.time_base
            pts = [
                packet.pts
                for packet in container.demux(stream)
                if packet.size > 0 and packet.pts is not None
            ]
            codec = stream.codec_context.name
    except VideoError:
        raise
    except Exception as exc:  # av raises its own error family per FFmpeg code
        raise VideoError(f"cannot open video {path}: {type(exc).__name__}: {exc}") from exc
    if not pts:
        raise VideoError(f"video {path} has no frames")
    fps = float(rate) if rate else 0.0
    if not fps or not np.isfinite(fps):
        raise VideoError(f"video {path} does not declare a frame rate")
    times = np.sort(np.asarray(pts, dtype=np.float64)) * float(time_base)
    times -= times[0]
    timestamps = times if np.all(np.diff(times) > 0) else None
    n_frames = len(pts)
    return VideoInfo(
        path=path,
        width=int(width),
        height=int(height),
        n_frames=n_frames,
        fps=fps,
        duration=n_frames / fps,
        timestamps=timestamps,
        codec=codec,
    )


@dataclasses.dataclass(frozen=True)
class RecordingInfo:
    """The combined description of one recording's files (in order)."""

    files: tuple[VideoInfo, ...]
    width: int
    height: int
    n_frames: int
    fps: float
    duration: float
    timestamps: np.ndarray | None

    @property
    def frame_counts(self) -> list[int]:
        """Frames per file, in order."""
        return [f.n_frames for f in self.files]


def probe_recording(paths: Sequence[str | Path], fps_tolerance: float = 1e-3) -> RecordingInfo:
    """Probe every file of a recording and check they agree in size and rate.

    Timestamps of later files continue after the previous file's last frame
    plus one frame period.

    Raises:
        VideoError: naming the file whose size or rate differs from the first.
    """
    if not paths:
        raise VideoError("a recording needs at least one video file")
    infos = [probe_video(p) for p in paths]
    first = infos[0]
    for info in infos[1:]:
        if (info.width, info.height) != (first.width, first.height):
            raise VideoError(
                f"{info.path.name} is {info.width}x{info.height} but {first.path.name} is "
                f"{first.width}x{first.height}: all files of a recording must agree"
            )
        if abs(info.fps - first.fps) > fps_tolerance * first.fps:
            raise VideoError(
                f"{info.path.name} runs at {info.fps:g} fps but {first.path.name} at "
                f"{first.fps:g} fps: all files of a recording must agree"
            )
    timestamps = _join_timestamps(infos)
    n_frames = sum(i.n_frames for i in infos)
    return RecordingInfo(
        files=tuple(infos),
        width=first.width,
        height=first.height,
        n_frames=n_frames,
        fps=first.fps,
        duration=n_frames / first.fps,
        timestamps=timestamps,
    )


def _join_timestamps(infos: Iterable[VideoInfo]) -> np.ndarray | None:
    parts, offset = [], 0.0
    for info in infos:
        if info.timestamps is None:
            return None
        parts.append(info.timestamps + offset)
        offset = parts[-1][-1] + 1.0 / info.fps
    return np.concatenate(parts)


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> Path:
    """Write RGB ``uint8`` frames (H, W, 3) to an MPEG-4 file (used for sample data)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    with av.open(str(tmp), mode="w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(1000))
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.codec_context.bit_rate = 2_000_000
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise VideoError(f"no frames given for {path}")
        for packet in stream.encode():
            container.mux(packet)
    if Fraction(fps).limit_denominator(1000) != exact_rate(fps):  # e.g. 30.0003
        set_frame_rate(tmp, fps)
    tmp.replace(path)
    return path


def exact_rate(fps: float) -> Fraction:
    """A frame rate as an exact fraction (30.0003 -> 300003/10000, 29.97.. -> 30000/1001)."""
    return Fraction(repr(float(fps))).limit_denominator(1_000_000)


def set_frame_rate(path: str | Path, fps: float) -> Path:
    """Rewrite a video's timestamps to exactly ``fps`` without re-encoding (in place).

    Writers that round the rate (OpenCV writes 30 for 30.0003) give a video whose
    duration differs from its source; the packets are re-timed, frame ``i`` at
    ``i / fps`` seconds.

    Raises:
        VideoError: the file cannot be read or written.
    """
    import av

    path = Path(path)
    rate = exact_rate(fps)
    tmp = path.with_name(path.stem + ".rate" + path.suffix)
    try:
        with av.open(str(path)) as source, av.open(str(tmp), "w") as target:
            stream = source.streams.video[0]
            old_rate = stream.average_rate or stream.guessed_rate
            if not old_rate:
                raise VideoError(f"{path} has no frame rate")
            out = target.add_stream_from_template(stream)
            out.time_base = 1 / rate
            for packet in source.demux(stream):
                if packet.dts is None:
                    continue
                scale = packet.time_base * old_rate
                packet.pts = round(packet.pts * scale) if packet.pts is not None else None
                packet.dts = round(packet.dts * scale)
                packet.time_base = 1 / rate
                packet.duration = 1
                packet.stream = out
                target.mux(packet)
        tmp.replace(path)
    except av.error.FFmpegError as exc:
        raise VideoError(f"cannot set the frame rate of {path}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)  # nothing half-written is left beside the video
    return path


def read_frames(path: str | Path, indices: Sequence[int] | None = None) -> list[np.ndarray]:
    """Decode frames (all, or the given indices) as RGB ``uint8`` arrays."""
    import av

    wanted = None if indices is None else set(int(i) for i in indices)
    frames = []
    try:
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if wanted is None or i in wanted:
                    frames.append(frame.to_ndarray(format="rgb24"))
                if wanted is not None and len(frames) == len(wanted):
                    break
    except Exception as exc:
        raise VideoError(f"cannot decode video {path}: {exc}") from exc
    return frames
