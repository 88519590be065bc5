"""A small registry of pose file formats: one reader and one validator per format.

Each format lives in its own module of :mod:`element_pose.io` and registers itself
at import time::

    register_format(
        "sleap_slp",
        read_sleap,                  # (path, **kw) -> PoseData
        validator=validate_slp,      # (path) -> None, raises PoseFormatError naming the file
        detector=looks_like_slp,     # (path) -> bool, cheap (suffix, a peek at the header)
        suffixes=(".slp",),
        software="SLEAP",
    )

:func:`read_pose` validates a file and reads it with the format given, or with the
one format whose detector accepts the file.  Nothing here imports a pose-estimation
package: readers import theirs (sleap-io, ...) inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from element_pose.core.pose import PoseData

log = logging.getLogger(__name__)

__all__ = [
    "BUILTIN_FORMAT_MODULES",
    "PoseFormat",
    "PoseFormatError",
    "available_formats",
    "check_scores",
    "detect_format",
    "get_format",
    "hdf5_keys",
    "is_hdf5",
    "present_mask",
    "read_pose",
    "reason",
    "register_format",
    "require_file",
    "require_hdf5_keys",
    "validate_pose_file",
]

Reader = Callable[..., PoseData]
Validator = Callable[[Path], None]
Detector = Callable[[Path], bool]

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class PoseFormatError(ValueError):
    """A pose file is missing, unreadable, of an unknown format or not in its layout."""


@dataclasses.dataclass(frozen=True)
class PoseFormat:
    """One registered file format.

    Attributes:
        name: Registry name, e.g. ``"dlc_h5"`` or ``"sleap_slp"``.
        reader: ``reader(path, **kw) -> PoseData``.
        validator: ``validator(path)``; raises :class:`PoseFormatError` (or a
            subclass of ``ValueError``) naming the file when it is not of this format.
        detector: ``detector(path) -> bool``: a cheap guess (suffix, header) used
            when no format is given.
        suffixes: File name endings, lower case with the dot.
        software: The tool that writes the format (``"SLEAP"``).
        description: One line for listings and the README.
    """

    name: str
    reader: Reader
    validator: Validator
    detector: Detector
    suffixes: tuple[str, ...] = ()
    software: str = ""
    description: str = ""


_FORMATS: dict[str, PoseFormat] = {}


def register_format(
    name: str,
    reader: Reader,
    *,
    validator: Validator,
    detector: Detector | None = None,
    suffixes: tuple[str, ...] = (),
    software: str = "",
    description: str = "",
    replace: bool = False,
) -> PoseFormat:
    """Register a file format (call it at the bottom of the format's module).

    Args:
        name: Registry name (lower case, no spaces).
        reader: Reads one file into :class:`~element_pose.core.pose.PoseData`.
        validator: Checks one file and raises a clear error naming it.
        detector: Guesses whether a file is of this format; defaults to a suffix test.
        suffixes: File name endings the format uses (``(".slp",)``).
        software: The tool that writes it.
        description: One line describing it.
        replace: Allow replacing an already registered format of that name.

    Returns:
        The registered :class:`PoseFormat`.

    Raises:
        ValueError: if the name is taken (and ``replace`` is false) or malformed.
    """
    key = str(name).strip().lower()
    if not key or " " in key:
        raise ValueError(f"format name must be a non-empty word, got {name!r}")
    if key in _FORMATS and not replace and _FORMATS[key].reader is not reader:
        raise ValueError(f"pose format {key!r} is already registered")
    endings = tuple(s.lower() for s in suffixes)
    if detector is None:

        def detector(path: Path, _endings: tuple[str, ...] = endings) -> bool:
            return path.name.lower().endswith(_endings) if _endings else False

    fmt = PoseFormat(key, reader, validator, detector, endings, software, description)
    _FORMATS[key] = fmt
    return fmt


#: Modules that register the built-in formats when imported (by name, on the first call
#: that needs the registry, so that importing the registry imports none of them).
BUILTIN_FORMAT_MODULES: tuple[str, ...] = (
    "element_pose.io.dlc_formats",
    "element_pose.io.sleap",
    "element_pose.io.lightning_pose",
    "element_pose.io.anipose",
)

_builtins_loaded = False


def _load_builtins() -> None:
    """Import the built-in format modules once (each registers itself)."""
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for module in BUILTIN_FORMAT_MODULES:
        importlib.import_module(module)


def available_formats() -> list[str]:
    """Names of the registered formats (the built-in ones included)."""
    _load_builtins()
    return sorted(_FORMATS)


def get_format(name: str) -> PoseFormat:
    """A registered format by name.

    Raises:
        PoseFormatError: naming the known formats when there is none of that name.
    """
    _load_builtins()
    key = str(name).strip().lower()
    if key not in _FORMATS:
        raise PoseFormatError(f"unknown pose format {name!r}; known: {sorted(_FORMATS)}")
    return _FORMATS[key]


def require_file(
    path: str | Path, what: str, error: type[ValueError] = PoseFormatError
) -> Path:
    """The path as a :class:`Path`, or an ``error`` naming it when it is not a file."""
    path = Path(path)
    if not path.exists():
        raise error(f"{what} not found: {path}")
    if not path.is_file():
        raise error(f"{what} is not a file: {path}")
    return path


def is_hdf5(path: Path) -> bool:
    """Whether the file starts with the HDF5 signature (False when unreadable)."""
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def hdf5_keys(path: Path) -> list[str]:
    """The top-level keys of an HDF5 file (read with h5py: no PyTables import).

    Raises:
        OSError: the file cannot be opened as HDF5.
    """
    import h5py

    with h5py.File(path, "r") as f:
        return list(f.keys())


def require_hdf5_keys(
    path: str | Path,
    what: str,
    required: tuple[str, ...],
    error: type[ValueError] = PoseFormatError,
) -> list[str]:
    """Check that a file is HDF5 with the top-level keys ``required``; return its keys.

    Args:
        path: The file.
        what: What it should be (``"SLEAP .slp file"``), for the messages.
        required: Keys it must have.
        error: The exception type to raise.

    Raises:
        error: naming the file when it is missing, not HDF5, unreadable, or lacks a
            key (naming the missing keys and the ones it has).
    """
    path = require_file(path, what, error)
    if not is_hdf5(path):
        raise error(f"{path} is not an HDF5 file ({what} expected)")
    try:
        keys = hdf5_keys(path)
    except (OSError, ValueError) as exc:
        raise error(f"cannot open {what} {path}: {exc}") from exc
    missing = [k for k in required if k not in keys]
    if missing:
        raise error(f"{path} is not a {what}: it lacks {missing} (has {keys})")
    return keys


def detect_format(path: str | Path) -> str:
    """The one registered format whose detector accepts the file.

    Raises:
        PoseFormatError: when the file is missing, or no or several formats match
            (the message names the file and the candidates).
    """
    path = require_file(path, "pose file")
    _load_builtins()
    matches = []
    for fmt in _FORMATS.values():
        try:
            if fmt.detector(path):
                matches.append(fmt.name)
        except Exception as exc:  # a detector must not hide the other formats
            log.debug("format %s could not inspect %s: %s", fmt.name, path, exc)
    if not matches:
        raise PoseFormatError(
            f"{path}: not a known pose file format; known formats: {sorted(_FORMATS)}"
        )
    if len(matches) > 1:
        raise PoseFormatError(
            f"{path}: several pose formats match ({sorted(matches)}); pass fmt= to choose"
        )
    return matches[0]


def validate_pose_file(path: str | Path, fmt: str | None = None) -> str:
    """Check that a file is a readable pose file of a format; return the format name.

    Raises:
        PoseFormatError: (or the format's own ``ValueError``) naming the file.
    """
    path = require_file(path, "pose file")
    name = fmt or detect_format(path)
    get_format(name).validator(path)
    return get_format(name).name


def read_pose(path: str | Path, fmt: str | None = None, **kw: Any) -> PoseData:
    """Read a pose file of any registered format into :class:`PoseData`.

    Args:
        path: The file.
        fmt: A registered format name; detected from the file when ``None``.
        **kw: Options of the format's reader (e.g. ``fps``).

    Returns:
        The pose data.

    Raises:
        PoseFormatError: (or the format's own ``ValueError`` subclass) naming the file
            when it is missing, of no known format, or not valid.
    """
    name = validate_pose_file(path, fmt)
    pose = get_format(name).reader(Path(path), **kw)
    log.debug("read %s as %s: %d frames", path, name, pose.n_frames)
    return pose


def present_mask(pose: PoseData) -> np.ndarray:
    """``(n_frames, n_individuals, n_keypoints)`` mask of points that have a position."""
    return ~np.isnan(pose.position).any(axis=-1)


def reason(exc: BaseException) -> str:
    """One line saying why a file could not be read: ``Type: message``.

    HDF5's multi-line back traces (h5py, PyTables) become their innermost reason and
    their last line, e.g. ``HDF5ExtError: file signature not found (Unable to open/create
    file 'x.h5')``, so that errors and ``element-pose status`` show one readable line.
    """
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "HDF5 error back trace" in text:
        causes = [lines[i + 1] for i, line in enumerate(lines[:-1])
                  if line.startswith("File ") and " in " in line]
        last = lines[-1] if lines else ""
        text = f"{causes[-1]} ({last})" if causes and last != causes[-1] else last
    elif len(lines) > 1:
        text = " ".join(lines)
    return f"{type(exc).__name__}: {text}"


def check_scores(
    scores: np.ndarray,
    source: str | Path,
    what: str,
    low: float = 0.0,
    high: float | None = 1.0,
    present: np.ndarray | None = None,
    error: type[ValueError] = PoseFormatError,
) -> None:
    """Check that scores lie in ``[low, high]`` (NaN allowed).

    Args:
        scores: Score values (any shape).
        source: The file, for the message.
        what: What the scores are (``"likelihood"``), for the message.
        low: Smallest valid value.
        high: Largest valid value, or ``None`` for no upper bound.
        present: Optional mask of where a point was detected; only there are scores
            checked.
        error: The exception type to raise.

    Raises:
        error: naming the file, the score, the range and the first offending index.
    """
    values = np.asarray(scores, dtype=np.float64)
    if present is not None:
        values = np.where(present, values, np.nan)
    with np.errstate(invalid="ignore"):
        bad = np.isinf(values) | (values < low)
        if high is not None:
            bad |= values > high
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise error(
            f"{source}: {int(bad.sum())} {what} value(s) outside {bound}, "
            f"first {values[where]!r} at index {where}"
        )
