"""Small helpers shared across element-pose (one copy each, so they cannot drift).

* :func:`path_safe` and :func:`session_folder`: folder names made of key values;
* :func:`plain_json`: a JSON-able copy of values holding NumPy scalars/arrays and paths;
* :func:`package_version` and :func:`software_versions`: provenance of a result;
* :func:`set_device` and :func:`worker_device`: the accelerator of a worker process.

Cheap to import: the standard library only (NumPy when a value needs it; never torch).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DEVICE_ENV",
    "DeviceError",
    "atomic_write",
    "package_version",
    "path_safe",
    "plain_json",
    "session_folder",
    "set_device",
    "software_versions",
    "worker_device",
]

log = logging.getLogger(__name__)

#: environment variable holding the engine device chosen for this worker
DEVICE_ENV = "ELEMENT_POSE_DEVICE"


# ------------------------------------------------------------------ names
def path_safe(value: Any) -> str:
    """A file-name-safe text for a key value (datetimes as ``YYYYmmddTHHMMSS``).

    Args:
        value: Any key value (text, number, date or datetime).

    Returns:
        The value's text with every character other than letters, digits, ``-``, ``_``
        and ``.`` replaced by ``_``.
    """
    text = value.strftime("%Y%m%dT%H%M%S") if isinstance(value, datetime.datetime) else str(value)
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def session_folder(session_key: Mapping[str, Any], empty: str = "session") -> str:
    """The folder name of one session: ``name-value`` pairs of its key, sorted by name.

    Args:
        session_key: The session's primary key.
        empty: The name when the key is empty.
    """
    return "_".join(f"{k}-{path_safe(v)}" for k, v in sorted(session_key.items())) or empty


# ------------------------------------------------------------------ files
def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Write a file atomically: ``write(temporary path)`` in the same folder, then rename.

    A reader never sees a half-written file, and a failed write leaves nothing.  The
    file gets the permissions of any file the user creates (``0o666`` less the umask),
    not the owner-only mode of :func:`tempfile.mkstemp`.

    Args:
        path: The file to write (its folder is created).
        write: Writes the content to the path it is given.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------- JSON
def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def plain_json(value: Any) -> Any:
    """A JSON-able copy: NumPy scalars and arrays become numbers and lists, the rest text.

    Args:
        value: Nested dicts/lists of anything.

    Returns:
        The same structure after a JSON round trip (tuples become lists, keys text).
    """
    return json.loads(json.dumps(value, default=_json_default))


# --------------------------------------------------------------- versions
def package_version(name: str) -> str | None:
    """The installed version of a distribution, else of an importable module, else None.

    The distribution's metadata is read first (nothing is imported); a module name
    that is no distribution (``cv2``) is imported and its ``__version__`` read.
    """
    from importlib import metadata

    try:
        return metadata.version(name)
    except (metadata.PackageNotFoundError, ValueError):
        pass
    module = sys.modules.get(name)
    if module is None:
        try:
            import importlib

            module = importlib.import_module(name)
        except ImportError:
            return None
    version = getattr(module, "__version__", None)
    return str(version) if version is not None else None


def software_versions(packages: Mapping[str, str] | Iterable[str] = ()) -> dict[str, str]:
    """``{"element-pose": version}`` plus the version of each installed package.

    Args:
        packages: Names to look up with :func:`package_version`, or a mapping from the
            name to report to the name to look up (``{"opencv": "cv2"}``). Packages not
            installed are left out.
    """
    from element_pose.version import __version__

    wanted = dict(packages) if isinstance(packages, Mapping) else {p: p for p in packages}
    versions = {"element-pose": __version__}
    for label, name in wanted.items():
        version = package_version(name)
        if version is not None:
            versions[label] = version
    return versions


# ---------------------------------------------------------------- devices
class DeviceError(ValueError):
    """An accelerator that is not ``cpu``, ``cuda``, ``auto``, GPU indices or ``cuda:N``."""


def set_device(device: str | None) -> str | None:
    """Select the accelerator for this process (before torch is imported).

    Args:
        device: ``None`` (leave everything), ``"cpu"``, ``"cuda"``/``"auto"``, a GPU
            index or indices (``"1"``, ``"0,1"``) or ``"cuda:N"``.

    Returns:
        The value exported as ``ELEMENT_POSE_DEVICE``, or ``None``.

    Raises:
        DeviceError: an unrecognised device.
    """
    if device is None or device == "":
        return None
    value = device.strip().lower()
    if value == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        engine_device = "cpu"
    elif value in ("cuda", "gpu", "auto"):
        engine_device = "auto" if value == "auto" else "cuda"
    else:
        indices = value.split(":", 1)[1] if value.startswith(("cuda:", "gpu:")) else value
        if not all(part.strip().isdigit() for part in indices.split(",")):
            raise DeviceError(
                f"device must be cpu, cuda, auto, a GPU index (0, 0,1) or cuda:N, not {device!r}")
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(p.strip() for p in indices.split(","))
        engine_device = "cuda"
    os.environ[DEVICE_ENV] = engine_device
    if "torch" in sys.modules:
        log.warning("torch was imported before the device was chosen; "
                    "CUDA_VISIBLE_DEVICES may not take effect in this process")
    log.info("device %s: CUDA_VISIBLE_DEVICES=%r, %s=%s", device,
             os.environ.get("CUDA_VISIBLE_DEVICES"), DEVICE_ENV, engine_device)
    return engine_device


def worker_device(params: Mapping[str, Any] | None = None) -> str | None:
    """Device for engine work: the parameters' ``device``, else ``ELEMENT_POSE_DEVICE``."""
    return (params or {}).get("device") or os.environ.get(DEVICE_ENV) or None
