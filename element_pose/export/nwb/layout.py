"""Where things go in and beside an NWB file, and the check that they got there.

* :func:`container_names` - unique ``PoseEstimation`` container names for the
  estimations of one file (the single-estimation case keeps ``PoseEstimation``,
  the name movement and keypoint-moseq read by default).
* :func:`place_videos` - put a recording's video files beside the NWB file
  (``<file stem>/<video name>``, hard link or copy), so the external-file links
  stay valid when the export folder is copied elsewhere.
* :func:`open_nwb` - an ``NWBHDF5IO`` opened only after ``ndx_pose`` is imported
  (opened before, pynwb maps the extension's groups to plain types and an append
  writes empty untyped groups without an error).
* :func:`preload` - import pynwb and ndx-pose in a background thread (a first export
  overlaps that ~1 s with its database queries).
* :func:`verify_pose_containers` - read a written file back (h5py, independent of
  pynwb's type map) and fail loudly when a container is missing, untyped or empty.

Container names for several estimations in one file (one session, one subject)::

    PoseEstimation_<camera>_<model>                 camera + model unique in the file
    PoseEstimation_<camera>_<model>_rec<recording>  several recordings of one camera
                                                    with one model
    ..._2, ..._3                                    what is still not unique (names
                                                    made HDF5-safe can collide)

Characters other than letters, digits, ``_``, ``-`` and ``.`` become ``_``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_NAME",
    "VIDEO_MODES",
    "ExpectedContainer",
    "NWBReadBackError",
    "PlacedVideos",
    "container_names",
    "open_nwb",
    "place_videos",
    "preload",
    "safe_name",
    "verify_pose_containers",
]

log = logging.getLogger(__name__)

DEFAULT_NAME = "PoseEstimation"
BEHAVIOR_MODULE = "behavior"
#: How :func:`place_videos` puts videos beside a file: ``hardlink`` (falls back to a
#: copy across file systems), ``copy``, ``symlink`` (relative; breaks when only the
#: export folder is copied), or ``none`` (link the original files by relative path).
VIDEO_MODES = ("hardlink", "copy", "symlink", "none")


class NWBReadBackError(ValueError):
    """A written NWB file does not hold what was written (missing, untyped or empty)."""


def safe_name(value: Any) -> str:
    """An HDF5-safe name part: letters, digits, ``_``, ``-``, ``.``; the rest ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value)).strip("_") or "x"


def container_names(entries: Sequence[Mapping[str, Any]], taken: Sequence[str] = ()
                    ) -> list[str]:
    """Unique container names for the estimations of one file, in order.

    Args:
        entries: One mapping per estimation with ``camera``, ``model`` and
            ``recording`` (any printable values).
        taken: Names already used in the file (an append); never returned.

    Returns:
        ``["PoseEstimation"]`` for one estimation when that name is free, otherwise
        names following the scheme in the module docstring.
    """
    taken = set(taken)
    if len(entries) == 1 and DEFAULT_NAME not in taken:
        return [DEFAULT_NAME]
    names = [f"{DEFAULT_NAME}_{safe_name(e['camera'])}_{safe_name(e['model'])}"
             for e in entries]
    clash = {n for n in names if names.count(n) > 1 or n in taken}
    names = [f"{n}_rec{safe_name(e['recording'])}" if n in clash else n
             for n, e in zip(names, entries, strict=True)]
    unique: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in unique or candidate in taken:
            n += 1
            candidate = f"{name}_{n}"
        unique.append(candidate)
    return unique


@dataclasses.dataclass
class PlacedVideos:
    """Videos put beside an NWB file by :func:`place_videos`.

    Attributes:
        paths: The files the NWB file links, in the order given.
        created: Files this call created (remove them when the export fails).
    """

    paths: list[Path]
    created: list[Path]

    def remove_created(self) -> None:
        """Delete the files this placement created (nothing else)."""
        for path in self.created:
            path.unlink(missing_ok=True)
        for folder in {p.parent for p in self.created}:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty


def _candidates(src: Path, prefix: str) -> Iterator[str]:
    yield src.name
    base = f"{prefix}_{src.stem}" if prefix else src.stem
    if prefix:
        yield base + src.suffix
    n = 2
    while True:
        yield f"{base}_{n}{src.suffix}"
        n += 1


def _same_file(a: Path, b: Path) -> bool:
    """The same file, or a copy of it (same size and modification time, as copy2 keeps)."""
    try:
        if os.path.samefile(a, b):
            return True
        sa, sb = a.stat(), b.stat()
    except OSError:
        return False
    return sa.st_size == sb.st_size and sa.st_mtime_ns == sb.st_mtime_ns


def place_videos(paths: Sequence[str | Path], nwb_path: str | Path, mode: str = "hardlink",
                 *, prefix: str = "") -> PlacedVideos:
    """Put video files beside an NWB file: ``<folder>/<file stem>/<video name>``.

    A file already there that is the same file (or a copy with the same size and
    modification time) is reused; a different one keeps its place and the video
    gets ``<prefix>_`` (then a counter) in front of its name.

    Args:
        paths: The video files.
        nwb_path: The NWB file's final path (its folder and stem decide the place).
        mode: One of :data:`VIDEO_MODES`.
        prefix: Put in front of a name that is taken by another file.

    Returns:
        The placed paths (the originals for ``mode="none"``) and the files created.

    Raises:
        ValueError: unknown mode.
        FileNotFoundError: a video does not exist.
    """
    if mode not in VIDEO_MODES:
        raise ValueError(f"video mode must be one of {VIDEO_MODES}, not {mode!r}")
    sources = [Path(p) for p in paths]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"video file(s) not found: {missing}")
    if mode == "none":
        return PlacedVideos(paths=sources, created=[])
    nwb_path = Path(nwb_path)
    folder = nwb_path.parent / nwb_path.stem
    placed, created = [], []
    try:
        for src in sources:
            target = next(folder / name for name in _candidates(src, prefix)
                          if not (folder / name).exists() or _same_file(src, folder / name))
            if not target.exists():
                folder.mkdir(parents=True, exist_ok=True)
                _link_or_copy(src, target, mode)
                created.append(target)
            placed.append(target)
    except BaseException:
        PlacedVideos(placed, created).remove_created()
        raise
    return PlacedVideos(paths=placed, created=created)


def _link_or_copy(src: Path, target: Path, mode: str) -> None:
    if mode == "symlink":
        target.symlink_to(os.path.relpath(src.resolve(), target.parent.resolve()))
        return
    if mode == "hardlink":
        try:
            os.link(src, target)
            return
        except OSError as exc:  # another file system, or links not allowed
            log.info("cannot hard-link %s (%s); copying", src, exc)
    shutil.copy2(src, target)


_PRELOAD_LOCK = threading.Lock()
_preload_started = False


def _import_ndx_pose() -> None:
    try:
        import ndx_pose  # noqa: F401
    except Exception as exc:  # pragma: no cover - re-raised by the real import
        log.debug("background import of ndx_pose failed: %s", exc)


def preload() -> None:
    """Start importing pynwb and ndx-pose in a background thread, once per process.

    A first export spends ~1 s importing them (their schemas are parsed from YAML);
    started before the database queries and the data fetch, the import runs while
    those wait on the server or decompress (both release the GIL).  A later import
    in another thread simply waits for this one; a failed import is left for that
    later import to raise.

    The thread is not a daemon: a process that ends (an export refused at once, say)
    while the import runs waits for it, instead of finalizing the interpreter under
    an import of C extensions (h5py), which crashed such processes (SIGSEGV).
    """
    global _preload_started
    if "ndx_pose" in sys.modules:
        return
    with _PRELOAD_LOCK:
        if _preload_started:
            return
        _preload_started = True
    threading.Thread(target=_import_ndx_pose, name="element-pose-nwb-import",
                     daemon=False).start()


def open_nwb(path: str | Path, mode: str = "r"):
    """``pynwb.NWBHDF5IO`` on ``path``, with the ndx-pose types registered first."""
    import ndx_pose  # noqa: F401  (registers PoseEstimation & co. with pynwb)
    from pynwb import NWBHDF5IO

    return NWBHDF5IO(str(path), mode=mode)


@dataclasses.dataclass
class ExpectedContainer:
    """What :func:`verify_pose_containers` expects of one container.

    Attributes:
        name: Container name in ``processing/behavior``.
        keypoints: Names of its PoseEstimationSeries.
        n_frames: Samples per series.
        n_space: 2 or 3.
        neurodata_type: ``PoseEstimation`` (or ``MultiCameraPoseEstimation``).
    """

    name: str
    keypoints: Sequence[str]
    n_frames: int
    n_space: int
    neurodata_type: str = "PoseEstimation"


def _attr(obj, name: str) -> str:
    value = obj.attrs.get(name)
    if value is None:
        return "?"
    return value.decode() if isinstance(value, bytes) else str(value)


def _container_problems(module, item: ExpectedContainer) -> list[str]:
    """What is missing or wrong in one expected container of the behavior module."""
    import h5py

    where = f"processing/{BEHAVIOR_MODULE}/{item.name}"
    group = module.get(item.name)
    if group is None:
        return [f"{where}: missing"]
    problems = []
    kind, ns = _attr(group, "neurodata_type"), _attr(group, "namespace")
    if kind != item.neurodata_type or ns != "ndx-pose":
        problems.append(f"{where}: type {ns}:{kind}, expected "
                        f"ndx-pose:{item.neurodata_type}")
    if not any(isinstance(group.get(k, getlink=True), h5py.SoftLink)
               and _attr(group[k], "neurodata_type") == "Skeleton" for k in group):
        problems.append(f"{where}: no link to a Skeleton")
    for keypoint in item.keypoints:
        problems += _series_problems(group, where, str(keypoint), item)
    return problems


def _series_problems(group, where: str, keypoint: str, item: ExpectedContainer) -> list[str]:
    """What is missing or wrong in one keypoint's PoseEstimationSeries."""
    series = group.get(keypoint)
    if series is None or _attr(series, "neurodata_type") != "PoseEstimationSeries":
        return [f"{where}/{keypoint}: missing or untyped series"]
    shape = series["data"].shape if "data" in series else None
    if shape != (item.n_frames, item.n_space):
        return [f"{where}/{keypoint}/data: shape {shape}, expected "
                f"{(item.n_frames, item.n_space)}"]
    return []


def verify_pose_containers(path: str | Path, expected: Sequence[ExpectedContainer]) -> None:
    """Read a written file back and check that every expected container is really there.

    Checks, with h5py (a fresh open, independent of pynwb's type map): the ndx-pose
    namespace is cached in the file; each container is typed (``neurodata_type``,
    namespace ``ndx-pose``) and links a skeleton in a typed ``Skeletons``; each
    keypoint is a typed ``PoseEstimationSeries`` whose data have the expected shape.

    Raises:
        NWBReadBackError: listing everything missing or wrong.
    """
    import h5py

    problems: list[str] = []
    with h5py.File(path, "r") as h5:
        if "ndx-pose" not in h5.get("specifications", {}):
            problems.append("the ndx-pose namespace is not cached in /specifications")
        module = h5.get(f"processing/{BEHAVIOR_MODULE}")
        if module is None:
            raise NWBReadBackError(f"{path}: no processing/{BEHAVIOR_MODULE} module")
        skeletons = module.get("Skeletons")
        if skeletons is None or _attr(skeletons, "neurodata_type") != "Skeletons":
            problems.append("processing/behavior/Skeletons is missing or untyped")
        for item in expected:
            problems += _container_problems(module, item)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise NWBReadBackError(f"{path} does not hold what was written:\n{lines}")
